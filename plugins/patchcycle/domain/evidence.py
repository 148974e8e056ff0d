"""The cycle's evidence document: every host's final state, every stage, the plan and the event log.

Built from what the stages wrote to the evidence store, after success or failure alike, so an auditor
sees the same structure whatever happened. Pure: plain data in, plain data out.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from patchcycle.config.models import Tenant
from patchcycle.domain import outcomes as o
from patchcycle.domain.plan import host_patch_ids

# 1.1 adds the not_assessed state, a host's installed_versions and the plan's catalog facts (see the
# schema's description); packs written as 1.0 stay valid against evidence-1.0.schema.json.
EVIDENCE_SCHEMA_VERSION = "1.4"
EVIDENCE_SCHEMA_VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4")
_COUNTED = ("patched", "failed", "held", "excepted", "not_run", "out_of_scope")


def evidence_schema_path(version: str = EVIDENCE_SCHEMA_VERSION) -> Path:
    """The published JSON Schema of an evidence document version (``include/schemas``).

    Validate a pack against the schema of the ``schema_version`` it declares, so packs written
    before a minor version keep validating against the one they were written to.
    """
    if version not in EVIDENCE_SCHEMA_VERSIONS:
        raise ValueError(f"unknown evidence schema_version {version!r}; known: {EVIDENCE_SCHEMA_VERSIONS}")
    # plugins/patchcycle/domain/evidence.py -> repository root
    return Path(__file__).resolve().parents[3] / "include" / "schemas" / f"evidence-{version}.schema.json"


def _host_record(
    row: Mapping[str, Any],
    final_state: str,
    reason: str | None,
    stage_host: Mapping[str, Any],
    plan: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    state_after = stage_host.get("patch_state") or {}
    sent = final_state in _TARGETED and stage_host.get("final_state") == final_state
    return {
        "host_id": row["host_id"],
        "name": row.get("name"),
        "cloud": row.get("cloud"),
        "account": row.get("account"),
        "region": row.get("region"),
        "environment": row.get("environment"),
        "os_family": row.get("os_family"),
        "platform": row.get("platform"),
        "criticality": row.get("criticality"),
        "agent_status": row.get("agent_status"),
        "kernel": row.get("kernel"),
        "falcon_device_id": row.get("falcon_device_id"),
        "falcon_sensor_version": row.get("falcon_sensor_version"),
        "falcon_rfm": row.get("falcon_rfm"),
        "final_state": final_state,
        "reason": reason,
        "install_variant": stage_host.get("install_variant"),
        "backup_kind": stage_host.get("backup_kind"),
        "backup_id": stage_host.get("backup_id"),
        "command_id": stage_host.get("command_id"),
        "missing_before": row.get("missing_count"),
        "missing_after": state_after.get("MissingCount") if state_after else None,
        "failed_after": state_after.get("FailedCount") if state_after else None,
        "installed_after": state_after.get("InstalledCount") if state_after else None,
        # Where the cloud cannot pin a version (OS Config): the plan's version against the one verify
        # read back, per package. None where the install pinned the version or nothing was read back.
        "installed_versions": _installed_versions(stage_host.get("installed_versions")),
        # 1.3: what was sent to the host and when its cloud says the install ended.
        "patch_ids": host_patch_ids(plan or {}, row, stage_host.get("install_variant")) if sent else None,
        "patched_at": _timestamp(state_after.get("OperationEndTime")) if sent else None,
    }


def _timestamp(value: Any) -> str | None:
    """An ISO 8601 date-time from what a record kept (a datetime, or its ``str()`` with a space)."""
    if value is None or value == "":
        return None
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return when.isoformat()


def _installed_versions(entries: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    if entries is None:
        return None
    return [{**e, "planned": e.get("planned"), "installed": e.get("installed")} for e in entries]


def host_records(
    inventory: Iterable[Mapping[str, Any]],
    preflight: Mapping[str, Any] | None,
    stages: Mapping[str, Mapping[str, Any] | None],
    stage_reasons: Mapping[str, str],
    plan: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Each inventoried host's final state: from the gate, the stage that patched it, or why none did;
    with the plan, the patch ids each host that was sent a patch took."""
    decisions = {d["host_id"]: d for d in (preflight or {}).get("decisions", [])}
    records = []
    for row in inventory:
        host_id = row["host_id"]
        decision = decisions.get(host_id)
        env = row.get("environment")
        stage = stages.get(env) if env else None
        stage_host = (stage or {}).get("hosts", {}).get(host_id, {})
        if decision is None:
            state, reason = o.NOT_RUN, "pre-flight did not run"
        elif decision["verdict"] == "out_of_scope":
            state, reason = o.OUT_OF_SCOPE, decision.get("reason")
        elif decision["verdict"] == "held":
            state, reason = o.HELD, decision.get("reason")
        elif decision["verdict"] == "excepted":
            state, reason = o.EXCEPTED, decision.get("reason")
        elif stage_host:
            state, reason = stage_host["final_state"], stage_host.get("reason")
        else:
            state, reason = o.NOT_RUN, stage_reasons.get(env or "", f"stage {env} did not run")
        records.append(_host_record(row, state, reason, stage_host, plan))
    records.sort(key=lambda r: (r.get("environment") or "~", r.get("name") or "", r["host_id"]))
    return records


def _compliant_before(record: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    # A host with no recorded patch operation (never scanned, or no agent at all) is not known compliant.
    if not row.get("last_patch_operation"):
        return False
    # Its cloud could not say what it is missing: no figure vouches for it, before or after.
    if record["final_state"] == o.NOT_ASSESSED:
        return False
    return not row.get("missing_count") and not row.get("failed_count")


def _rollup(records: list[dict[str, Any]], rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    counts = Counter(r["final_state"] for r in records)
    in_scope = [r for r in records if r["final_state"] != o.OUT_OF_SCOPE]
    before = sum(1 for r in in_scope if _compliant_before(r, rows[r["host_id"]]))
    after = 0
    for r in in_scope:
        if r["final_state"] == o.PATCHED:
            after += 1
        elif r["final_state"] in (o.HELD, o.NOT_RUN, o.EXCEPTED) and _compliant_before(r, rows[r["host_id"]]):
            after += 1

    def share(n: int) -> float:
        return round(n / len(in_scope), 4) if in_scope else 1.0

    result: dict[str, Any] = {"in_scope": len(in_scope)}
    result.update({k: counts.get(k, 0) for k in _COUNTED})
    result["non_compliant"] = counts.get(o.NON_COMPLIANT, 0)
    # In scope and never compliant: counted on its own, so the state neither vanishes nor passes as patched.
    result["not_assessed"] = counts.get(o.NOT_ASSESSED, 0)
    result["compliance_before"], result["compliance_after"] = share(before), share(after)
    return result


_TARGETED = (o.PATCHED, o.FAILED, o.NON_COMPLIANT, o.NOT_ASSESSED)
"""A stage host's final states that mean the stage patched or judged it (held and not-run hosts were not)."""


def cycle_outcome(
    dry_run: bool,
    preflight: Mapping[str, Any] | None,
    stage_status: Mapping[str, str],
    records: list[dict[str, Any]],
    failed_scopes: int = 0,
    refused: bool = False,
) -> str:
    """refused (the run was refused before any change: a bad conf, a late scheduled run) | planned (dry
    run) | failed (a gate halted, a stage failed, or a scope could not be inventoried) | partial (hosts
    left, including a stage its approver rejected, or hosts not assessed) | completed."""
    if refused:
        return "refused"
    if dry_run:
        return "planned"
    settled = ("succeeded", "rejected")  # a rejection is a person's decision, not a failure
    if preflight is None or preflight.get("halted") or any(s not in settled for s in stage_status.values()):
        return "failed"
    if failed_scopes:
        return "failed"
    left = (o.FAILED, o.HELD, o.NON_COMPLIANT, o.NOT_RUN, o.NOT_ASSESSED)
    if any(r["final_state"] in left for r in records):
        return "partial"
    return "completed"


def build_evidence_document(
    *,
    tenant: Tenant,
    cycle: Mapping[str, Any],
    plan: Mapping[str, Any] | None,
    inventory: list[Mapping[str, Any]] | None,
    preflight: Mapping[str, Any] | None,
    stages: Mapping[str, Mapping[str, Any] | None],
    selected_environments: list[str],
    events: list[Mapping[str, Any]],
    access: Mapping[str, Any] | None = None,
    exceptions: Any = None,
    scopes: list[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The evidence document (schema :data:`EVIDENCE_SCHEMA_VERSION`) of one cycle run.

    ``scopes`` are the inventory's scopes (account and region, subscription, project, Falcon) with
    their status: a scope that could not be read halted, and its error is part of the evidence.
    """
    inventory = inventory or []
    rows = {r["host_id"]: r for r in inventory}
    stage_status: dict[str, str] = {}
    stage_reasons: dict[str, str] = {}
    stage_entries = []
    blocked_by: str | None = None
    if preflight is None:
        blocked_by = "inventory or pre-flight did not complete"
    elif preflight.get("halted") and not preflight.get("in_scope", 1):
        blocked_by = "pre-flight halted the scope: no host in scope"
    elif preflight.get("halted"):
        blocked_by = f"pre-flight halted the scope: {preflight.get('held_share', 0):.0%} of hosts held"
    for env in selected_environments:
        stage = stages.get(env)
        reason: str | None
        if cycle.get("dry_run"):
            status, reason = "skipped", "dry run: plan only"
        elif stage is None:
            status = "not_run"
            reason = blocked_by or "an earlier stage failed or this stage did not complete"
        else:
            status, reason = stage["status"], stage.get("reason")
        if stage and stage["status"] == "failed" and blocked_by is None:
            blocked_by = f"stage {env} failed"
        stage_status[env], stage_reasons[env] = status, (reason or "")
        hosts = (stage or {}).get("hosts", {})
        stage_entries.append(
            {
                "environment": env,
                "status": status,
                "started_at": (stage or {}).get("started_at"),
                "finished_at": (stage or {}).get("finished_at"),
                # Every host the stage patched or judged, on every cloud (not only those with an SSM
                # command id): targeted = succeeded + failed + not assessed, so the row adds up.
                "hosts_targeted": sum(1 for h in hosts.values() if h["final_state"] in _TARGETED),
                "hosts_succeeded": sum(1 for h in hosts.values() if h["final_state"] == o.PATCHED),
                "hosts_failed": sum(
                    1 for h in hosts.values() if h["final_state"] in (o.FAILED, o.NON_COMPLIANT)
                ),
                "hosts_not_assessed": sum(1 for h in hosts.values() if h["final_state"] == o.NOT_ASSESSED),
                "backups": sum(1 for h in hosts.values() if h.get("backup_id")),
                "command_ids": list((stage or {}).get("command_ids", [])),
                "health": (stage or {}).get("health"),
                # Prod's gates: the canary batch, the change-window decisions, the human approval.
                "canary": (stage or {}).get("canary"),
                "windows": (stage or {}).get("windows"),
                "approval": (stage or {}).get("approval"),
                "reason": reason,
            }
        )
    if cycle.get("dry_run"):
        stage_status = {}
    records = host_records(inventory, preflight, stages, stage_reasons, plan)
    exception_report = None
    if exceptions is not None:
        # Hosts left unpatched (failed, held) that an active risk acceptance covers become "excepted".
        from patchcycle.domain.exceptions import apply_exceptions

        records, exception_report = apply_exceptions(
            records, None, exceptions, dt.date.fromisoformat(str(cycle["cycle_date"]))
        )
    summary = {"hosts_total": len(records), **_rollup(records, rows)}
    summary["by_environment"] = {
        env: _rollup([r for r in records if r["environment"] == env], rows) for env in selected_environments
    }
    summary["by_cloud"] = {
        cloud: _rollup([r for r in records if r["cloud"] == cloud], rows)
        for cloud in sorted({r["cloud"] for r in records if r["cloud"]})
    }
    failed_scopes = [dict(sc) for sc in scopes or [] if sc.get("status") == "failed"]
    outcome = cycle_outcome(
        bool(cycle.get("dry_run")),
        preflight,
        stage_status,
        records,
        len(failed_scopes),
        refused=bool(cycle.get("refused_reasons")),
    )
    return {
        "schema_version": EVIDENCE_SCHEMA_VERSION,
        "tenant": {
            "id": tenant.id,
            "display_name": tenant.display_name,
            "frameworks": [f.value for f in tenant.frameworks],
        },
        "cycle": {**cycle, "outcome": outcome},
        "summary": summary,
        "stages": stage_entries,
        "scopes": [dict(sc) for sc in scopes or []],
        "hosts": records,
        "plan": {"hash": cycle.get("plan_hash"), **(dict(plan) if plan else {})},
        # SOC 2 CC6.1: who could execute this cycle, reviewed at its end; None when the review did not run.
        "access": dict(access) if access else None,
        "exceptions": exception_report.to_dict() if exception_report is not None else None,
        "events": sorted(events, key=lambda e: (e.get("at") or "", e.get("action") or "")),
    }


def counts_for_compliance(evidence: Mapping[str, Any]) -> bool:
    """Whether a pack's figures describe the fleet after a cycle: not a dry run's (it patched nothing)
    and not a refused run's (it was stopped before any change)."""
    cycle = evidence.get("cycle") or {}
    return not cycle.get("dry_run") and cycle.get("outcome") not in ("refused", "planned")


def compliance_trend(
    cycle_date: str, keys: Iterable[str], read: Callable[[str], Mapping[str, Any]], cycles: int = 11
) -> list[dict[str, Any]]:
    """The compliance of up to ``cycles`` cycles before ``cycle_date`` (oldest first), each from the
    latest of its packs that counts (:func:`counts_for_compliance`); ``keys`` list an evidence store,
    ``read`` reads one evidence document. A cycle with only dry runs or refusals is left out."""
    packs: dict[str, list[str]] = {}
    for key in keys:
        parts = key.split("/")
        if key.endswith("/evidence.json") and "/pack" in key and len(parts) > 2 and parts[1] < cycle_date:
            packs.setdefault(parts[1], []).append(key)
    points: list[dict[str, Any]] = []
    for cycle in sorted(packs, reverse=True):
        # The latest by when the run finished (run ids of different run types do not sort by time).
        counted = [e for e in map(read, packs[cycle]) if counts_for_compliance(e)]
        if not counted:
            continue
        latest = max(counted, key=lambda e: str(e["cycle"].get("finished_at") or ""))
        points.append(
            {
                "cycle_date": cycle,
                "compliance_before": latest["summary"]["compliance_before"],
                "compliance_after": latest["summary"]["compliance_after"],
                "outcome": latest["cycle"]["outcome"],
            }
        )
        if len(points) == cycles:
            break
    return points[::-1]
