"""The checks the cycle's waits poll (see :mod:`patchcycle.triggers.waits`): one batched look per scope.

Each takes the JSON payload its task stored in the trigger and answers ``{"done": bool, ...}``. They
only read; every write (start an install, take a snapshot) happens in a task, never in the triggerer.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

# Backup states by kind, mapped to a verdict (anything else is still pending).
AMI_VERDICTS = {
    "available": "ready",
    "failed": "failed",
    "invalid": "failed",
    "deregistered": "failed",
    "error": "failed",
    "missing": "failed",
}
SNAPSHOT_VERDICTS = {"READY": "ready", "FAILED": "failed", "DELETING": "failed", "missing": "failed"}
DB_SNAPSHOT_VERDICTS = {
    "available": "ready",
    "failed": "failed",
    "incompatible-restore": "failed",
    "deleting": "failed",
    "missing": "failed",
}
ATTESTATION_VERDICTS = {"succeeded": "ready", "failed": "failed", "none": "failed"}
# Rollback restores by cloud, mapped to a verdict (anything else is still pending).
ROOT_VOLUME_TASK_VERDICTS = {"succeeded": "succeeded", "failed": "failed", "failed-detached": "failed"}
BACKUP_RESTORE_VERDICTS = {"succeeded": "succeeded", "failed": "failed"}
DB_RESTORE_VERDICTS = {
    "available": "succeeded",
    "failed": "failed",
    "incompatible-restore": "failed",
    "incompatible-parameters": "failed",
    "storage-full": "failed",
}
COMMAND_TERMINAL = {"Success", "Failed", "Cancelled", "TimedOut"}
OSCONFIG_JOB_TERMINAL = {"SUCCEEDED", "COMPLETED_WITH_ERRORS", "CANCELED", "TIMED_OUT"}


def _ami_states(scope: dict[str, Any]) -> dict[str, tuple[str, str]]:
    from patchcycle.hooks.aws import Ec2BackupHook

    hook = Ec2BackupHook(aws_conn_id=scope["conn_id"], region_name=scope["region"])
    seen = {img["ImageId"]: img["State"] for img in hook.images_tagged(scope["tags"])}
    return {h: (b, seen.get(b, "missing")) for h, b in scope["hosts"].items()}


def _db_snapshot_states(scope: dict[str, Any]) -> dict[str, tuple[str, str]]:
    from patchcycle.hooks.aws import RdsHook

    hook = RdsHook(aws_conn_id=scope["conn_id"], region_name=scope["region"])
    seen = {
        name: s.get("Status", "") for name, s in hook.snapshots_named(list(scope["hosts"].values())).items()
    }
    return {h: (b, seen.get(b, "missing")) for h, b in scope["hosts"].items()}


def _snapshot_states(scope: dict[str, Any]) -> dict[str, tuple[str, str]]:
    from patchcycle.hooks.gcp_compute import DiskSnapshotHook

    hook = DiskSnapshotHook(gcp_conn_id=scope["conn_id"], project_id=scope["project"])
    seen = {s["name"]: s.get("status", "") for s in hook.snapshots_labelled(scope["labels"])}
    return {h: (b, seen.get(b, "missing")) for h, b in scope["hosts"].items()}


def _attestation_states(scope: dict[str, Any]) -> dict[str, tuple[str, str]]:
    from patchcycle.hooks.backup_attestation import BackupAttestationHook

    hook = BackupAttestationHook(scope["conn_id"])
    found = hook.attestations(sorted(scope["hosts"]), dt.datetime.fromisoformat(scope["not_before"]))
    out = {}
    for host_id in scope["hosts"]:
        att = found.get(host_id) or found.get(host_id.lower()) or {}
        out[host_id] = (
            att.get("backupId") or f"attestation:{host_id.rsplit('/', 1)[-1]}",
            att.get("status", "none"),
        )
    return out


_BACKUP_KINDS = {
    "ami": (_ami_states, AMI_VERDICTS),
    "db_snapshot": (_db_snapshot_states, DB_SNAPSHOT_VERDICTS),
    "disk_snapshot": (_snapshot_states, SNAPSHOT_VERDICTS),
    "attestation": (_attestation_states, ATTESTATION_VERDICTS),
}


def backups(payload: dict[str, Any]) -> dict[str, Any]:
    """Every awaited backup of a stage: ``{host_id: {backup_id, state, verdict}}``; done when none pends."""
    out: dict[str, dict[str, Any]] = {}
    for scope in payload["scopes"]:
        read, verdicts = _BACKUP_KINDS[scope["kind"]]
        for host_id, (backup_id, state) in read(scope).items():
            out[host_id] = {"backup_id": backup_id, "state": state, "verdict": verdicts.get(state, "pending")}
    return {"done": all(b["verdict"] != "pending" for b in out.values()), "backups": out}


def run_commands(payload: dict[str, Any]) -> dict[str, Any]:
    """Status of each Run Command of a stage; done when all are terminal."""
    from patchcycle.hooks.aws import SsmFleetHook

    hooks: dict[tuple[str, str], SsmFleetHook] = {}  # one per scope: its session (and role) reused
    states = {}
    for c in payload["commands"]:
        key = (c["conn_id"], c["region"])
        if key not in hooks:
            hooks[key] = SsmFleetHook(aws_conn_id=c["conn_id"], region_name=c["region"])
        states[c["command_id"]] = hooks[key].command(c["command_id"])["Status"]
    return {"done": all(s in COMMAND_TERMINAL for s in states.values()), "commands": states}


# DB instance states from which RDS will not finish an OS update by itself.
RDS_STUCK = {"failed", "stopped", "storage-full", "incompatible-parameters", "incompatible-restore"}


def rds_updates(payload: dict[str, Any]) -> dict[str, Any]:
    """One look at every RDS instance an OS update was applied to: its status and whether the update is
    still pending. Done when every instance is settled: ``available`` with no update still opted in (it
    was applied, or RDS gave up on it), or in a state RDS will not leave by itself."""
    from patchcycle.hooks.aws import RdsHook

    out: dict[str, dict[str, Any]] = {}
    for scope in payload["scopes"]:
        hook = RdsHook(aws_conn_id=scope["conn_id"], region_name=scope["region"])
        status = {db["DBInstanceArn"]: db.get("DBInstanceStatus", "") for db in hook.db_instances()}
        pending = hook.pending_os_updates()
        for arn in scope["hosts"]:
            update = pending.get(arn) or {}
            state = status.get(arn, "missing")
            opted_in = update.get("OptInStatus") == "immediate"
            out[arn] = {
                "status": state,
                "pending": update.get("Description"),
                "opt_in": update.get("OptInStatus"),
                "settled": (state == "available" and not opted_in)
                or state in RDS_STUCK
                or state == "missing",
            }
    return {"done": all(i["settled"] for i in out.values()), "instances": out}


def arc_installs(payload: dict[str, Any]) -> dict[str, Any]:
    """One poll of every Arc installPatches operation still in flight.

    Done when all have finished and none is queued; wakes the task early once ``wake_after`` of them
    have finished while machines are still queued, so it can start the next ones (bounded concurrency).
    """
    from patchcycle.hooks.azure_arc import ArcHook

    results: dict[str, Any] = {}
    hooks: dict[tuple[str, str], ArcHook] = {}
    for host_id, op in payload["operations"].items():
        key = (op["conn_id"], op["subscription"])
        if key not in hooks:
            hooks[key] = ArcHook(azure_conn_id=op["conn_id"], subscription_id=op["subscription"])
        results[host_id] = hooks[key].install_result(op["location"])
    finished = sum(1 for r in results.values() if r is not None)
    queued = int(payload.get("queued", 0))
    return {
        "done": finished == len(results) and not queued,
        "wake": queued > 0
        and (finished >= max(1, int(payload.get("wake_after", 1))) or finished == len(results)),
        "results": {h: r for h, r in results.items() if r is not None},
    }


# ARM's terminal statuses of an asynchronous operation (Learn, "Track asynchronous Azure operations").
ARM_OPERATION_TERMINAL = {"Succeeded", "Failed", "Canceled"}


def arc_extensions(payload: dict[str, Any]) -> dict[str, Any]:
    """One read of every Arc machine-extension operation still in flight (its ``Azure-AsyncOperation``
    status); as :func:`arc_installs`: done when all have ended and none is queued, a wake once
    ``wake_after`` have ended while machines are queued. Each ended one is answered with its ``status``
    and ``error`` only."""
    from patchcycle.hooks.azure_arc import ArcHook

    hooks: dict[tuple[str, str], ArcHook] = {}
    results: dict[str, dict[str, Any]] = {}
    for host_id, op in payload["operations"].items():
        key = (op["conn_id"], op["subscription"])
        if key not in hooks:
            hooks[key] = ArcHook(azure_conn_id=op["conn_id"], subscription_id=op["subscription"])
        answer = hooks[key].extension_operation(op["operation"])
        if answer.get("status") in ARM_OPERATION_TERMINAL:
            results[host_id] = {"status": answer["status"], "error": answer.get("error")}
    queued = int(payload.get("queued", 0))
    ended = len(results)
    return {
        "done": ended == len(payload["operations"]) and not queued,
        "wake": queued > 0
        and (ended >= max(1, int(payload.get("wake_after", 1))) or ended == len(payload["operations"])),
        "results": results,
    }


def osconfig_jobs(payload: dict[str, Any]) -> dict[str, Any]:
    """State of each OS Config patch job of a stage; done when all are terminal."""
    from patchcycle.hooks.gcp_osconfig import OsConfigHook

    states = {
        j["name"]: OsConfigHook(gcp_conn_id=j["conn_id"], project_id=j["project"]).patch_job(j["name"])[
            "state"
        ]
        for j in payload["jobs"]
    }
    return {"done": all(s in OSCONFIG_JOB_TERMINAL for s in states.values()), "jobs": states}


def os_policy_assignments(payload: dict[str, Any]) -> dict[str, Any]:
    """One look at each OS policy assignment's long-running operation (create or update): done when every
    operation is (it is "done" when the rollout is; its ``error`` when the rollout stopped), with each
    operation's ``done``, ``rolloutState`` and error message."""
    from patchcycle.hooks.gcp_osconfig import OsConfigHook

    out: dict[str, dict[str, Any]] = {}
    for sent in payload["assignments"]:
        hook = OsConfigHook(gcp_conn_id=sent["conn_id"], project_id=sent["project"])
        operation = hook.os_policy_assignment_operation(sent["operation"])
        out[sent["operation"]] = {
            "done": bool(operation.get("done")),
            "rollout_state": (operation.get("metadata") or {}).get("rolloutState"),
            "error": (operation.get("error") or {}).get("message"),
        }
    return {"done": all(o["done"] for o in out.values()), "operations": out}


def health(payload: dict[str, Any]) -> dict[str, Any]:
    """One look at a stage's health in Dynatrace: problems that opened since the stage began on its
    hosts or services, and its services' error rate since the stage ended against the baseline.

    Done at once when unhealthy; healthy is done only when the watch period is over.
    """
    from patchcycle.domain.health import health_verdict
    from patchcycle.hooks.dynatrace import DynatraceHook

    hook = DynatraceHook(dynatrace_conn_id=payload["conn_id"])
    began = dt.datetime.fromisoformat(payload["stage_started_at"])
    problems = [
        p
        for p in hook.open_problems(payload["host_selector"], since=began - dt.timedelta(days=7))
        + hook.open_problems(payload["service_selector"], since=began - dt.timedelta(days=7))
        if int(p.get("startTime") or 0) >= int(began.timestamp() * 1000)
    ]
    unique = list({p.get("problemId") or p.get("displayId"): p for p in problems}.values())
    now = dt.datetime.now(dt.UTC)
    current = hook.metric_average(
        ERROR_RATE_METRIC,
        payload["service_selector"],
        dt.datetime.fromisoformat(payload["stage_ended_at"]),
        now,
    )
    verdict = health_verdict(
        unique,
        payload.get("baseline_rate"),
        current,
        payload["tolerance"],
        payload.get("require_data", False),
    )
    watch_over = now >= dt.datetime.fromisoformat(payload["watch_until"])
    return {
        "done": (not verdict.healthy) or watch_over,
        "healthy": verdict.healthy,
        "reasons": verdict.reasons,
        "current_rate": current,
        "problems": [p.get("displayId") or p.get("problemId") for p in unique],
        "checked_at": now.isoformat(),
    }


ERROR_RATE_METRIC = "builtin:service.errors.total.rate:avg"


def _gce_step(hooks: dict[tuple[str, str], Any], host: dict[str, Any]) -> tuple[str, str, str | None]:
    """(state, verdict, detail) of a GCE restore's current step: its zone operations, all DONE or not."""
    from patchcycle.hooks.gcp_compute import DiskSnapshotHook

    key = (host["conn_id"], host["project"])
    if key not in hooks:
        hooks[key] = DiskSnapshotHook(gcp_conn_id=host["conn_id"], project_id=host["project"])
    ops = [hooks[key].zone_operation(host["region"], name) for name in host["ops"]]
    errors = [e.get("message", "") for op in ops for e in (op.get("error") or {}).get("errors", [])]
    if errors:
        return "DONE", "failed", f"{host['step']}: " + "; ".join(errors)
    if all(op.get("status") == "DONE" for op in ops):
        return "DONE", "succeeded" if host.get("last") else "step_done", None
    return "RUNNING", "pending", None


def restores(payload: dict[str, Any]) -> dict[str, Any]:
    """One look at every rollback restore in flight: EC2 root volume tasks (one call per account and
    region), the backup system's restores, GCE zone operations of each instance's current step.

    Done when every host's restore has succeeded or failed; wakes the task early when a GCE instance has
    finished a step, so it can start the next one (stop, swap the boot disk, start)."""
    from patchcycle.hooks.aws import Ec2BackupHook
    from patchcycle.hooks.backup_attestation import BackupAttestationHook

    hosts = payload["hosts"]
    out: dict[str, dict[str, Any]] = {}
    by_scope: dict[tuple[str, str], dict[str, str]] = {}
    databases: dict[tuple[str, str], dict[str, str]] = {}
    for host_id, host in hosts.items():
        if host["cloud"] == "aws" and host.get("kind") == "db_snapshot":
            databases.setdefault((host["conn_id"], host["region"]), {})[host["ops"][0]] = host_id
        elif host["cloud"] == "aws":
            by_scope.setdefault((host["conn_id"], host["region"]), {})[host["ops"][0]] = host_id
    for (conn_id, region), names in databases.items():
        from patchcycle.hooks.aws import RdsHook

        status = {
            db["DBInstanceIdentifier"]: db.get("DBInstanceStatus", "")
            for db in RdsHook(aws_conn_id=conn_id, region_name=region).db_instances()
        }
        for name, host_id in names.items():
            state = status.get(name, "missing")
            out[host_id] = {
                "state": state,
                "verdict": DB_RESTORE_VERDICTS.get(state, "pending"),
                "detail": f"DB instance {name} restored from its snapshot: {state}",
            }
    for (conn_id, region), ids in by_scope.items():
        tasks = Ec2BackupHook(aws_conn_id=conn_id, region_name=region).root_volume_tasks(list(ids))
        for task_id, host_id in ids.items():
            state = (tasks.get(task_id) or {}).get("TaskState", "missing")
            verdict = ROOT_VOLUME_TASK_VERDICTS.get(state, "failed" if state == "missing" else "pending")
            out[host_id] = {
                "state": state,
                "verdict": verdict,
                "detail": f"root volume task {task_id} {state}",
            }
    gce_hooks: dict[tuple[str, str], Any] = {}
    for host_id, host in hosts.items():
        if host["cloud"] == "azure":
            answer = BackupAttestationHook(host["conn_id"]).restore_status(host["ops"][0])
            state = answer.get("status", "unknown")
            out[host_id] = {
                "state": state,
                "verdict": BACKUP_RESTORE_VERDICTS.get(state, "pending"),
                "detail": answer.get("message"),
            }
        elif host["cloud"] == "gcp":
            state, verdict, detail = _gce_step(gce_hooks, host)
            out[host_id] = {"state": state, "verdict": verdict, "detail": detail}
    terminal = all(h["verdict"] in ("succeeded", "failed") for h in out.values())
    return {
        "done": terminal,
        "wake": not terminal and any(h["verdict"] == "step_done" for h in out.values()),
        "hosts": out,
    }


# Agent states that mean the host answered again after its reboot, by cloud.
AGENT_BACK = {"aws": {"Online"}, "azure": {"Connected"}, "gcp": {"ACTIVE"}}


def reboots(payload: dict[str, Any]) -> dict[str, Any]:  # noqa: C901 - one look per cloud's reboot evidence (agent, kernel source, Falcon mode), each a branch
    """One look at every patched host after its install: agent back, running kernel, Falcon's mode.

    Done when every host's agent answers again, or when the deadline has passed (the hosts still away
    are then the ones that did not come back). The running kernel comes from the cloud where it reports
    one (Arc ``osVersion``, OS Config ``kernelRelease``), else from Falcon's device record.
    """
    from patchcycle.hooks.aws import SsmFleetHook
    from patchcycle.hooks.azure_arc import ArcHook
    from patchcycle.hooks.falcon import FalconHook
    from patchcycle.hooks.gcp_osconfig import OsConfigHook

    seen: dict[str, dict[str, Any]] = {}
    for scope in payload.get("aws", []):
        wanted = set(scope["hosts"])
        for info in SsmFleetHook(
            aws_conn_id=scope["conn_id"], region_name=scope["region"]
        ).managed_instances():
            if info["InstanceId"] in wanted:
                seen[info["InstanceId"]] = {"agent": info.get("PingStatus"), "kernel": None}
    for scope in payload.get("azure", []):
        wanted = {h.lower() for h in scope["hosts"]}
        hook = ArcHook(azure_conn_id=scope["conn_id"], subscription_id=scope["subscription"])
        for machine in hook.machines(scope["resource_group"]):
            if str(machine.get("id", "")).lower() in wanted:
                props = machine.get("properties") or machine
                seen[machine["id"].lower()] = {"agent": props.get("status"), "kernel": props.get("osVersion")}
    for scope in payload.get("gcp", []):
        wanted = set(scope["hosts"])
        hook = OsConfigHook(gcp_conn_id=scope["conn_id"], project_id=scope["project"])
        for inv in hook.inventories(scope["zone"]):
            instance = inv["name"].split("/instances/", 1)[1].split("/", 1)[0]
            if instance in wanted:
                seen[instance] = {"agent": "ACTIVE", "kernel": (inv.get("osInfo") or {}).get("kernelRelease")}
    falcon = payload.get("falcon") or {}
    if falcon.get("devices"):
        details = {
            d["device_id"]: d
            for d in FalconHook(falcon["conn_id"]).device_details(sorted(falcon["devices"].values()))
        }
        for host_id, device_id in falcon["devices"].items():
            device = details.get(device_id) or {}
            entry = seen.setdefault(_host_key(host_id), {"agent": None, "kernel": None})
            entry["rfm"] = str(device.get("reduced_functionality_mode", "")).lower() == "yes"
            entry["kernel"] = entry.get("kernel") or device.get("kernel_version")
    hosts: dict[str, dict[str, Any]] = {}
    for cloud in ("aws", "azure", "gcp"):
        for scope in payload.get(cloud, []):
            for host_id in scope["hosts"]:
                entry = dict(seen.get(_host_key(host_id)) or {"agent": None, "kernel": None})
                entry["back"] = entry.get("agent") in AGENT_BACK[cloud]
                hosts[host_id] = entry
    deadline = dt.datetime.fromisoformat(payload["deadline"])
    passed = dt.datetime.now(dt.UTC) >= deadline
    return {
        "done": passed or all(h["back"] for h in hosts.values()),
        "deadline_passed": passed,
        "hosts": hosts,
    }


def _host_key(host_id: str) -> str:
    # Arc machine ids are case-insensitive resource ids; the others are exact.
    return host_id.lower() if host_id.startswith("/subscriptions/") else host_id


def falcon_sensors(payload: dict[str, Any]) -> dict[str, Any]:
    """The Falcon roll-out's validation: every host of ``payload["hosts"]`` validated against the tenant's
    device records (:func:`patchcycle.domain.falcon_rollout.validate_hosts`); done when every host passes or
    is not awaited (nothing this run did can still change it).
    One read of the CID's devices per look (a scroll and one details call per 5,000 devices)."""
    from patchcycle.domain.falcon_rollout import Expectation, validate_hosts
    from patchcycle.hooks.falcon import FalconHook

    devices = FalconHook(falcon_conn_id=payload["conn_id"]).devices()
    expectations = {
        (e["environment"], e["platform"]): Expectation(
            e.get("host_group_id"),
            e.get("prevention_policy_id"),
            e.get("sensor_update_policy_id"),
            e.get("problem"),
        )
        for e in payload["expectations"]
    }
    results = validate_hosts(payload["hosts"], devices, expectations, payload["expected_versions"])
    # A host no install reached this run (or whose install failed) will not change by waiting.
    awaited = set(payload.get("awaited") or [])
    # A sensor that registered since the task looked is not yet in its static group: the task adds it
    # (a write, so the wait wakes it), then waits again.
    static = {
        (e["environment"], e["platform"]): e["host_group_id"]
        for e in payload["expectations"]
        if e.get("host_group_type") in ("static", "staticByID") and e.get("host_group_id")
    }
    where = {str(h["host_id"]): (str(h["environment"]), str(h["platform"])) for h in payload["hosts"]}
    joined = set(payload.get("joined") or [])  # added once already: never woken for again
    join: dict[str, list[str]] = {}
    for r in results:
        group = static.get(where.get(r.host_id, ("", "")))
        outside = any(reason.startswith("not in host group") for reason in r.reasons)
        if r.device_id and group and outside and r.device_id not in joined:
            join.setdefault(group, []).append(r.device_id)
    return {
        "wake": bool(join),
        "join": join,
        "joined": sorted(joined),
        "done": all(r.passed or r.host_id not in awaited for r in results),
        "validations": [r.to_dict() for r in results],
        "failed": sum(1 for r in results if not r.passed),
    }
