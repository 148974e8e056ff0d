"""A stage's verification, merged per host: what the backup gate, the cloud's answer, the reboot watch
and the pre-flight's kernel hold say about each host, folded into one final state and one reason.

Pure: the verify operator reads the records and the clouds, calls these functions, and writes what they
return. Each cloud's answer is classified before it arrives here (``outcomes.classify_*``); this module
decides what a host's state is when several sources speak about it, and how a canary batch and the rest
of its stage make one record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from patchcycle.config.models import RateControl
from patchcycle.domain import outcomes
from patchcycle.domain.canary import CANARY
from patchcycle.domain.plan import FULL

NO_RESULT = "no result from the cloud"
NO_BACKUP = "no completed backup"
CANARY_FIRST = "not started: the canary must pass verification and the health gate first"


@dataclass(frozen=True)
class HostFinding:
    """A host that did not end patched, as the verify step logs it."""

    host_id: str
    name: str | None
    final_state: str
    reason: str | None


@dataclass(frozen=True)
class StageHosts:
    """Every host of the batch with its final state (``hosts``), the states that count against the
    stage's error budget (``budget_states``: only hosts the install was sent to), and the hosts that
    did not end patched (``findings``)."""

    hosts: dict[str, dict[str, Any]]
    budget_states: dict[str, str]
    findings: list[HostFinding] = field(default_factory=list)

    @property
    def patched(self) -> int:
        """How many of the batch's hosts ended patched."""
        return sum(1 for e in self.hosts.values() if e["final_state"] == outcomes.PATCHED)


def held_kernel_reasons(preflight: Mapping[str, Any]) -> dict[str, str]:
    """Per host, why the pre-flight held its kernel update (the host was still sent the rest)."""
    return {
        d["host_id"]: d.get("reason") or ""
        for d in preflight.get("decisions", [])
        if d.get("variant", FULL) != FULL and d["verdict"] == "eligible"
    }


def apply_reboots(
    checked: Mapping[str, dict[str, Any]],
    rows: Iterable[Mapping[str, Any]],
    reboots: Mapping[str, Mapping[str, Any]],
    *,
    expected_kernel: Callable[[Mapping[str, Any]], str | None],
    timeout_minutes: float,
) -> list[HostFinding]:
    """Fold the reboot watch into each host's classified result, in place; return the hosts it failed.

    A host the install reached is patched only if it came back: agent answering, the expected kernel
    running, Falcon's sensor not in reduced-functionality mode (:func:`outcomes.reboot_verdict`).
    ``expected_kernel``: the kernel a host should run after the install (the plan's, unless its kernel
    update was held). A host the watch did not see, or the cloud gave no result for, is left as it is.
    """
    failed: list[HostFinding] = []
    for row in rows:
        look = reboots.get(row["host_id"])
        result = checked.get(row["host_id"])
        if look is None or result is None:
            continue
        expected = expected_kernel(row)
        verdict = outcomes.reboot_verdict(
            back=look["back"],
            agent=look.get("agent"),
            kernel=look.get("kernel"),
            expected_kernel=expected,
            rfm=look.get("rfm"),
            timeout_minutes=timeout_minutes,
        )
        result["reboot"] = {
            "back": look["back"],
            "agent": look.get("agent"),
            "kernel": look.get("kernel"),
            "expected_kernel": expected,
            "falcon_rfm": look.get("rfm"),
        }
        if verdict and result["final"] in (outcomes.PATCHED, outcomes.NON_COMPLIANT):
            result["final"], result["reason"] = outcomes.FAILED, verdict
            failed.append(HostFinding(row["host_id"], row.get("name"), outcomes.FAILED, verdict))
    return failed


def merge_hosts(
    rows: Sequence[Mapping[str, Any]],
    *,
    backups: Mapping[str, Mapping[str, Any]],
    checked: Mapping[str, Mapping[str, Any]],
    window_closed: str | None,
    held_kernels: Mapping[str, str],
    batch: str | None,
) -> StageHosts:
    """Each host's final state and reason, from the sources in the order they decide it.

    1. No completed backup: ``held`` with the backup's reason; not sent, so outside the error budget.
    2. Otherwise the cloud's classified answer; no answer is ``not_run`` ("no result from the cloud",
       or the change window's reason when the window had not opened or had closed).
    3. A host that installed all it was sent while the plan's kernel update was held for it is
       ``non_compliant``: it still lacks a planned patch (the reason names the hold).
    """
    hosts: dict[str, dict[str, Any]] = {}
    budget: dict[str, str] = {}
    findings: list[HostFinding] = []
    for row in rows:
        host_id = row["host_id"]
        backup = backups.get(host_id, {})
        variant = row.get("install_variant", FULL)
        entry: dict[str, Any] = {
            "backup_id": backup.get("backup_id"),
            "backup_kind": backup.get("kind"),
            "backup_state": backup.get("state"),
            "install_variant": variant,
        }
        final: str
        reason: str | None
        if not backup.get("ready"):
            final, reason = outcomes.HELD, backup.get("reason") or NO_BACKUP
        else:
            result = dict(checked.get(host_id) or {"final": outcomes.NOT_RUN, "reason": NO_RESULT})
            if window_closed and result["final"] == outcomes.NOT_RUN:
                result["reason"] = window_closed
            final, reason = result.pop("final"), result.pop("reason")
            entry.update(result)
            budget[host_id] = final
            if final == outcomes.PATCHED and variant != FULL:
                final = outcomes.NON_COMPLIANT
                reason = f"kernel update held: {held_kernels.get(host_id) or 'sensor gate'}"
        entry.update(final_state=final, reason=reason)
        if batch == CANARY:
            entry["batch"] = CANARY
        hosts[host_id] = entry
        if final != outcomes.PATCHED:
            findings.append(HostFinding(host_id, row.get("name"), final, reason))
    return StageHosts(hosts, budget, findings)


def batch_rate(rate: RateControl, batch: str | None) -> RateControl:
    """The error budget a batch is judged by: the environment's, except that a canary is judged on its
    own and strictly (one failed canary host stops the rollout)."""
    if batch == CANARY:
        return rate.model_copy(update={"max_errors": "0"})
    return rate


def canary_stage(canary: Mapping[str, Any], rest: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The stage as it stands after its canary: the canary's hosts verified, the rest not started until
    the canary passes; the canary's own verdict kept in a ``canary`` section."""
    hosts = dict(canary["hosts"])
    for row in rest:
        hosts[row["host_id"]] = {
            "final_state": outcomes.NOT_RUN,
            "reason": CANARY_FIRST,
            "install_variant": row.get("install_variant", FULL),
        }
    reason = None if canary["status"] == "succeeded" else f"canary failed: {canary['reason']}"
    return {
        **canary,
        "reason": reason,
        "hosts": hosts,
        "canary": {
            "status": canary["status"],
            "reason": canary["reason"],
            "hosts": sorted(canary["hosts"]),
            "budget": canary["budget"],
        },
    }


def stage_with_canary(
    main: Mapping[str, Any], canary: Mapping[str, Any] | None, canary_health: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The whole stage after its main batch: the canary's hosts as the canary left them (with its
    health gate), the rest as verified now; started when the canary started."""
    canary = canary or {}
    section = dict(canary.get("canary") or {})
    section["health"] = canary_health
    hosts = {h: e for h, e in (canary.get("hosts") or {}).items() if e.get("batch") == CANARY}
    hosts.update(main["hosts"])
    return {
        **main,
        "started_at": canary.get("started_at") or main["started_at"],
        "command_ids": [*canary.get("command_ids", []), *main["command_ids"]],
        "hosts": hosts,
        "canary": section,
    }
