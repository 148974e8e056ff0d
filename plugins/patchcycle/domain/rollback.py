"""Rollback policy: which hosts may be restored from which backup of a cycle, and what the record says.

Pure: plain data in (the cycle run's inventory rows and each stage's backup status, as the evidence store
holds them), plain data out. A rollback restores a host from the backup its cycle took before patching
it: an AMI (EC2), a boot-disk snapshot (GCE) or the backup system's attested backup (Azure Arc). A host
is refused, with a reason that names it, when it is not the tenant's, when the cycle took no backup of
it, or when that backup never completed; one refusal refuses the whole request, so nothing is half done.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from patchcycle.domain import outcomes

ROLLBACK_RECORD_VERSION = "1.0"
ROLLED_BACK = "rolled_back"
ROLLBACK_FAILED = "rollback_failed"


@dataclass(frozen=True)
class RollbackTarget:
    """One host to restore, with the backup of the cycle it is restored from."""

    host_id: str
    name: str
    cloud: str  # aws | azure | gcp
    account: str  # AWS account, Azure subscription, GCP project
    region: str  # AWS region, Azure location, GCP zone
    environment: str
    backup_kind: str  # ami | disk_snapshot | attestation
    backup_id: str
    expected_kernel: str | None  # the kernel the cycle inventoried before the backup (None: not reported)
    resource_group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The target as plain data, every field by name."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RollbackTarget:
        """A target from :meth:`to_dict`'s data; a field it lacks is None, other keys are ignored."""
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


class RollbackRefused(ValueError):
    """The request names hosts that cannot be rolled back; nothing was restored. One reason per host."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("rollback refused, nothing was restored: " + "; ".join(self.reasons))


def _resolve(
    requested: str, by_id: Mapping[str, Mapping[str, Any]], by_name: Mapping[str, list[Mapping[str, Any]]]
) -> Mapping[str, Any] | str:
    """The inventory row a requested name or id means, or why it means none."""
    if requested in by_id:
        return by_id[requested]
    lowered = {k.lower(): v for k, v in by_id.items()}
    if requested.lower() in lowered:  # Arc machine ids are case-insensitive
        return lowered[requested.lower()]
    rows = by_name.get(requested, [])
    if len(rows) == 1:
        return rows[0]
    if len(rows) > 1:
        ids = ", ".join(sorted(str(r["host_id"]) for r in rows))
        return f"host {requested!r} is ambiguous ({len(rows)} hosts have that name: {ids}); name it by id"
    return ""


def select_rollback(
    requested: Iterable[str],
    inventory: Iterable[Mapping[str, Any]],
    backup_status: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    tenant_id: str,
    cycle_date: str,
) -> list[RollbackTarget]:
    """The hosts to roll back, each with its backup of the cycle; :class:`RollbackRefused` otherwise.

    ``requested``: host names or ids (duplicates count once). ``inventory``: the cycle run's inventory
    rows (the tenant's hosts as the cycle saw them). ``backup_status``: per environment, each host's
    backup as the stage's wait recorded it (``kind``, ``backup_id``, ``state``, ``ready``, ``reason``).
    """
    rows = list(inventory)
    by_id = {str(r["host_id"]): r for r in rows}
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("name"):
            by_name.setdefault(str(row["name"]), []).append(row)
    targets: dict[str, RollbackTarget] = {}
    refusals: list[str] = []
    names = list(dict.fromkeys(str(r).strip() for r in requested))
    if not names or not all(names):
        raise RollbackRefused(["no host named: give at least one host name or id"])
    for name in names:
        resolved = _resolve(name, by_id, by_name)
        if isinstance(resolved, str):
            refusals.append(
                resolved or f"host {name!r} is not a host of tenant {tenant_id} in cycle {cycle_date}"
            )
            continue
        row = resolved
        host_id = str(row["host_id"])
        shown = row.get("name")
        label = f"host {shown} ({host_id})" if shown and shown != host_id else f"host {host_id}"
        backup = (backup_status.get(str(row.get("environment"))) or {}).get(host_id)
        if backup is None:
            refusals.append(
                f"{label} has no backup from cycle {cycle_date}: its stage "
                f"{row.get('environment') or '?'} did not back it up (held, out of scope, or not run)"
            )
        elif not backup.get("ready") or not backup.get("backup_id"):
            what = f"{str(backup.get('kind', 'backup')).replace('_', ' ')} {backup.get('backup_id') or ''}"
            refusals.append(
                f"{label}: its backup from cycle {cycle_date} ({what.strip()}) is {backup.get('state')}, "
                "not a completed backup to restore from"
            )
        elif host_id not in targets:
            targets[host_id] = RollbackTarget(
                host_id=host_id,
                name=str(row.get("name") or host_id),
                cloud=str(row["cloud"]),
                account=str(row["account"]),
                region=str(row["region"]),
                environment=str(row["environment"]),
                backup_kind=str(backup["kind"]),
                backup_id=str(backup["backup_id"]),
                expected_kernel=row.get("kernel"),
                resource_group=row.get("resource_group"),
            )
    if refusals:
        raise RollbackRefused(refusals)
    return list(targets.values())


def failed_hosts(stage: Mapping[str, Any] | None) -> list[str]:
    """Ids of the hosts a verified stage left failed (what automatic rollback restores), in order."""
    hosts = (stage or {}).get("hosts") or {}
    return sorted(h for h, entry in hosts.items() if entry.get("final_state") == outcomes.FAILED)


@dataclass(frozen=True)
class HostRollback:
    """What happened to one host: the backup, the cloud's restore, and what the host looks like after."""

    host_id: str
    name: str
    cloud: str
    environment: str
    backup_kind: str
    backup_id: str
    restore_id: str | None  # the cloud's id: root volume task, restore, or the last zone operation
    restore_state: str  # succeeded | failed | timed_out | not_started
    online: bool | None
    kernel_expected: str | None
    kernel_after: str | None
    result: str  # rolled_back | rollback_failed
    reason: str | None


def judge_host(
    target: RollbackTarget,
    *,
    restore_id: str | None,
    restore_state: str,
    restore_reason: str | None,
    online: bool | None,
    kernel_after: str | None,
) -> HostRollback:
    """A host is rolled back when its restore succeeded, it is back online, and (where the cloud reports
    the running kernel) it runs the kernel the cycle saw before the backup."""
    reason: str | None = None
    if restore_state != "succeeded":
        reason = restore_reason or f"restore {restore_state}"
    elif online is not True:
        reason = "restored, but the host is not back online"
    elif target.expected_kernel and kernel_after != target.expected_kernel:
        reason = f"restored, but it runs kernel {kernel_after}, not the backup's {target.expected_kernel}"
    return HostRollback(
        host_id=target.host_id,
        name=target.name,
        cloud=target.cloud,
        environment=target.environment,
        backup_kind=target.backup_kind,
        backup_id=target.backup_id,
        restore_id=restore_id,
        restore_state=restore_state,
        online=online,
        kernel_expected=target.expected_kernel,
        kernel_after=kernel_after,
        result=ROLLBACK_FAILED if reason else ROLLED_BACK,
        reason=reason,
    )


def rollback_record(
    *,
    tenant_id: str,
    cycle_date: str,
    trigger: str,
    requested_by: str,
    reason: str,
    source_run: str,
    started_at: dt.datetime,
    finished_at: dt.datetime,
    hosts: Sequence[HostRollback],
) -> dict[str, Any]:
    """The rollback record written to the evidence: who asked, why, when, which backup, and each result."""
    rolled = sum(1 for h in hosts if h.result == ROLLED_BACK)
    return {
        "record_version": ROLLBACK_RECORD_VERSION,
        "tenant_id": tenant_id,
        "cycle_date": cycle_date,
        "trigger": trigger,  # manual | automatic
        "requested_by": requested_by,
        "reason": reason,
        "source_run": source_run,
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "outcome": "succeeded" if hosts and rolled == len(hosts) else "failed",
        "summary": {"hosts": len(hosts), "rolled_back": rolled, "failed": len(hosts) - rolled},
        "hosts": [asdict(h) for h in hosts],
    }
