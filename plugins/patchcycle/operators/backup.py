"""Take the pre-patch backup of every host in a stage, once per cycle and stage, in each host's cloud.

EC2 hosts get an AMI; RDS DB instances a manual DB snapshot; GCE instances a snapshot of their boot
disk (Compute API); Azure Arc machines,
which have no cloud snapshot API (they run anywhere), need an attestation of a recent good backup from
the tenant's backup system. Every backup is tagged or labelled with tenant, cycle, environment and host,
so a retry finds the earlier attempt's backup instead of taking a second one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from patchcycle.domain.backups import attempt_names, choose_backup, states_by_name
from patchcycle.domain.inventory import is_rds
from patchcycle.operators.base import CycleContext, CycleOperator, EventLog, utcnow


def backup_tags(tenant_id: str, cycle_date: str, environment: str) -> dict[str, str]:
    """The tags that identify a cycle stage's backups (and make a retry find them again)."""
    return {
        "patchcycle:tenant": tenant_id,
        "patchcycle:cycle": cycle_date,
        "patchcycle:environment": environment,
    }


def backup_labels(tenant_id: str, cycle_date: str, environment: str) -> dict[str, str]:
    """The same identity as GCP labels (lowercase letters, digits, '-' and '_' only)."""
    return {
        "patchcycle-tenant": tenant_id.replace(".", "-"),
        "patchcycle-cycle": cycle_date,
        "patchcycle-environment": environment,
    }


def snapshot_name(tenant_id: str, cycle_date: str, environment: str, host_id: str, name: str) -> str:
    """A GCE snapshot name (RFC 1035, at most 63 characters) unique to the host, cycle and stage."""
    digest = hashlib.sha256(f"{tenant_id}|{cycle_date}|{environment}|{host_id}".encode()).hexdigest()[:10]
    stem = re.sub(r"[^a-z0-9-]", "-", name.lower())[:40].strip("-") or "host"
    return f"pc-{digest}-{stem}"


def scopes_of(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Hosts grouped by (account, region): the unit every AWS call works in."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[(row["account"], row["region"])].append(row)
    return grouped


def by_cloud(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Hosts grouped by cloud."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row["cloud"]].append(row)
    return grouped


def taken(
    log: EventLog,
    host: dict[str, Any],
    kind: str,
    backup_id: str,
    account: str,
    region: str,
    created: bool,
    failed: list[str] | None = None,
) -> dict[str, Any]:
    """A host's backup as the stage records it (created now, or found again on a retry), logged with
    the earlier backups of the host that failed and were not reused."""
    log.record(
        "backup.created" if created else "backup.reused",
        target=host["host_id"],
        backup_id=backup_id,
        kind=kind,
        name=host.get("name"),
        **({"replaces_failed": failed} if failed else {}),
    )
    return {
        "kind": kind,
        "backup_id": backup_id,
        "cloud": host["cloud"],
        "account": account,
        "region": region,
        "created": created,
    }


class CreateBackupsOperator(CycleOperator):
    """Create (or find, on a retry) the backup of each eligible host of the environment."""

    template_fields: Sequence[str] = ("tenant_id", "environment")

    def __init__(self, *, environment: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = environment

    def run(self, cycle: CycleContext, log: EventLog) -> dict[str, Any]:
        """Create (or find, on a retry) the backup of each of the stage's eligible hosts in its cloud (for
        an Arc machine, ask for an attestation), and write them to ``backups.json``; return how many
        there are, how many were created now, and when the task started. Skipped when the stage is not
        part of the run."""

        started_at = utcnow().isoformat()
        cycle.stage_info(str(self.environment))
        paths = cycle.paths
        rows = by_cloud(cycle.stage_hosts(self.environment))
        aws = rows.get("aws", [])
        backups: dict[str, dict[str, Any]] = {}
        backups.update(self._amis(cycle, [r for r in aws if not is_rds(r)], log))
        backups.update(self._db_snapshots(cycle, [r for r in aws if is_rds(r)], log))
        backups.update(self._disk_snapshots(cycle, rows.get("gcp", []), log))
        backups.update(self._attestations(rows.get("azure", []), log))
        cycle.write_record(paths.stage_file(self.environment, "backups.json"), backups)
        return {
            "backups": len(backups),
            "created": sum(1 for b in backups.values() if b["created"]),
            "started_at": started_at,
        }

    def _amis(self, cycle: CycleContext, rows: list[dict[str, Any]], log: EventLog) -> dict[str, Any]:
        from patchcycle.hooks.aws import Ec2BackupHook

        tags = backup_tags(self.tenant_id, cycle.info["cycle_date"], self.environment)
        backups: dict[str, dict[str, Any]] = {}
        for (account, region), hosts in scopes_of(rows).items():
            hook = Ec2BackupHook(aws_conn_id=cycle.aws_conn_id(account), region_name=region)
            images = hook.images_tagged(tags)
            by_name = {img["Name"]: img for img in images}
            states = states_by_name(images, "Name", "State")
            for host in hosts:
                host_id = host["host_id"]
                base = f"patchcycle-{self.tenant_id}-{cycle.info['cycle_date']}-{self.environment}-{host_id}"
                name, create, failed = choose_backup("ami", base, states)
                if create:
                    image_id = hook.create_image(
                        host_id,
                        name,
                        {**tags, "patchcycle:host": host_id, "patchcycle:plan": cycle.info["plan_hash"]},
                    )
                else:
                    image_id = by_name[name]["ImageId"]
                backups[host_id] = taken(log, host, "ami", image_id, account, region, create, failed)
        return backups

    def _db_snapshots(self, cycle: CycleContext, rows: list[dict[str, Any]], log: EventLog) -> dict[str, Any]:
        """A manual DB snapshot of each RDS instance, named for the host, cycle and stage, so a retry
        finds it by name instead of taking another."""
        from patchcycle.hooks.aws import RdsHook

        tags = backup_tags(self.tenant_id, cycle.info["cycle_date"], self.environment)
        backups: dict[str, dict[str, Any]] = {}
        for (account, region), hosts in sorted(scopes_of(rows).items()):
            hook = RdsHook(aws_conn_id=cycle.aws_conn_id(account), region_name=region)
            bases = {
                h["host_id"]: snapshot_name(
                    self.tenant_id, cycle.info["cycle_date"], self.environment, h["host_id"], h["name"]
                )
                for h in hosts
            }
            found = hook.snapshots_named([n for base in bases.values() for n in attempt_names(base)])
            states = states_by_name(found.values(), "DBSnapshotIdentifier", "Status")
            for host in hosts:
                host_id = host["host_id"]
                name, create, failed = choose_backup("db_snapshot", bases[host_id], states)
                if create:
                    hook.create_db_snapshot(
                        host["name"],
                        name,
                        {**tags, "patchcycle:host": host_id, "patchcycle:plan": cycle.info["plan_hash"]},
                    )
                backups[host_id] = taken(log, host, "db_snapshot", name, account, region, create, failed)
        return backups

    def _disk_snapshots(
        self, cycle: CycleContext, rows: list[dict[str, Any]], log: EventLog
    ) -> dict[str, Any]:
        from patchcycle.hooks.gcp_compute import DiskSnapshotHook

        labels = backup_labels(self.tenant_id, cycle.info["cycle_date"], self.environment)
        backups: dict[str, dict[str, Any]] = {}
        projects: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            projects[row["account"]].append(row)
        for project, hosts in sorted(projects.items()):
            hook = DiskSnapshotHook(gcp_conn_id=cycle.gcp_conn_id(project), project_id=project)
            states = states_by_name(hook.snapshots_labelled(labels), "name", "status")
            for host in hosts:
                base = snapshot_name(
                    self.tenant_id, cycle.info["cycle_date"], self.environment, host["host_id"], host["name"]
                )
                name, created, failed = choose_backup("disk_snapshot", base, states)
                if created:
                    # The boot disk as the instance lists it (a rolled-back instance boots from the
                    # disk its restore made); GCE's default, the instance's name, if none is listed.
                    hook.create_snapshot(
                        host["region"],
                        host.get("boot_disk") or host["name"],
                        name,
                        {
                            **labels,
                            "patchcycle-host": str(host["host_id"]),
                            "patchcycle-plan": cycle.info["plan_hash"][:12],
                        },
                    )
                backups[host["host_id"]] = taken(
                    log, host, "disk_snapshot", name, project, host["region"], created, failed
                )
        return backups

    def _attestations(self, rows: list[dict[str, Any]], log: EventLog) -> dict[str, Any]:
        if not rows:
            return {}
        policy = self.tenant.clouds.azure.backup_attestation if self.tenant.clouds.azure else None
        hours = policy.max_age_hours if policy else 24
        not_before = (utcnow() - dt.timedelta(hours=hours)).isoformat()
        backups = {}
        for host in rows:
            backups[host["host_id"]] = {
                "kind": "attestation",
                "backup_id": None,  # the backup system names it when it attests
                "cloud": "azure",
                "account": host["account"],
                "region": host["region"],
                "created": False,
                "not_before": not_before,
            }
            log.record(
                "backup.attestation_requested",
                target=host["host_id"],
                kind="attestation",
                not_before=not_before,
                name=host.get("name"),
            )
        return backups
