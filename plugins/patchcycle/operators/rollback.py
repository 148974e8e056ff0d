"""Roll hosts back from the backups their cycle took, each in its own cloud, then verify and record it.

- EC2: replace the instance's root volume with one restored from the cycle's AMI
  (``CreateReplaceRootVolumeTask``); the instance reboots onto it.
- GCE: stop the instance, create a disk from the cycle's boot-disk snapshot, detach the old boot disk
  (kept, for forensics), attach the new one as boot, start.
- Azure Arc: no cloud snapshot API, so the tenant's backup system restores the machine from the backup
  it attested for the cycle.

The manual ``patchcycle_rollback__<tenant>`` DAG runs :class:`SelectRollbackOperator` (refuses the whole
request, naming each host, before anything is touched) -> :class:`RestoreHostsOperator` (deferrable) ->
:class:`VerifyRollbackOperator` (host back online, kernel equals the backup's where the cloud reports it;
writes the rollback record). :class:`RollbackFailedHostsOperator` does the same in one task for a cycle
stage's failed hosts, for tenants that opted in (``rollback: {automatic: true}``).

Everything is written under the cycle's prefix in the evidence bucket, one object per attempt and step,
never over an earlier one. Every cloud call carries an idempotency token derived from the tenant, cycle,
rollback run and host, so a retried task finds the restores it started instead of starting new ones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from patchcycle.domain import rollback as policy
from patchcycle.domain.rollback import RollbackRefused, RollbackTarget
from patchcycle.domain.run_conf import ROLLBACK_PARAMS, conf_problems
from patchcycle.operators.base import (
    CycleContext,
    CycleOperator,
    CycleTaskMixin,
    EventLog,
    WaitArguments,
    utcnow,
)
from patchcycle.reports.store import CyclePaths

SELECT_TASK_ID = "select"
RESTORE_TASK_ID = "restore"
GCE_STEPS = ("prepare", "detach", "attach", "start")  # prepare = stop the instance + disk from snapshot


def _token(*parts: str, size: int = 32) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:size]


def restored_disk_name(instance: str, key: str) -> str:
    """The GCE disk a rollback restores an instance's boot disk into (RFC 1035, at most 63 characters)."""
    stem = re.sub(r"[^a-z0-9-]", "-", instance.lower())[:45].strip("-") or "host"
    return f"{stem}-rb-{_token(instance, key, size=10)}"


def _set_aside_by_earlier_rollback(instances: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The DB instance an earlier rollback renamed ``name`` to (``<name>-pre-rollback-<token>``); when there
    are several, the newest by ``InstanceCreateTime`` (a later rollback sets aside the instance an earlier
    one restored, which was created after the one that one set aside); ``None`` if there is none."""
    stem = f"{name}-pre-rollback-"[:55]  # the 8-character token fits within RDS's 63 characters
    found = [db for db in instances if str(db.get("DBInstanceIdentifier", "")).startswith(stem)]
    return max(found, key=lambda db: str(db.get("InstanceCreateTime") or ""), default=None)


class RollbackContext(CycleContext):
    """Where a rollback reads its cycle and writes its records.

    Manual (the rollback DAG): the cycle is the ``cycle`` param and records go to this rollback run under
    ``cycles/<cycle>/runs/<rollback run>/rollback/``. Automatic (in the cycle DAG, ``environment`` set):
    the cycle run's own plan, records under ``cycles/<cycle>/runs/<run>/<environment>/rollback/``.
    """

    def __init__(self, airflow: Any, *, environment: str | None, **kwargs: Any) -> None:
        super().__init__(airflow, **kwargs)
        self.environment = environment

    @property
    def automatic(self) -> bool:
        """True in the cycle DAG (``environment`` set), False in the manual rollback DAG."""
        return self.environment is not None

    @property
    def cycle_date(self) -> str:
        """The cycle rolled back: the run's plan's (automatic), or the ``cycle`` param (manual)."""
        if self.automatic:
            return str(self.info["cycle_date"])
        return str(self.params["cycle"])

    @property
    def paths(self) -> CyclePaths:
        """The cycle run's evidence keys (automatic), or this rollback run's under the ``cycle`` param's
        cycle (manual)."""
        return CyclePaths(self.cycle_date, self.run_id)

    def record_key(self, name: str) -> str:
        """Where the rollback's record ``name`` lives: under the stage's ``rollback/`` (automatic) or the
        rollback run's (manual)."""
        if self.automatic:
            return self.paths.stage_file(str(self.environment), f"rollback/{name}")
        return self.paths.run_file(f"rollback/{name}")

    @property
    def rollback_key(self) -> str:
        """What makes this rollback's idempotency tokens unique: tenant, cycle, run (and stage)."""
        return f"{self.tenant.id}|{self.cycle_date}|{self.run_id}|{self.environment or ''}"

    @property
    def request_reason(self) -> str:
        """Why the hosts are rolled back: the ``reason`` param (manual), or the automatic rollback's own."""
        if self.automatic:
            return f"automatic rollback of the failed hosts of stage {self.environment}"
        return str(self.params["reason"])


class RollbackContextMixin(CycleTaskMixin):
    """A rollback task: its execution is a :class:`RollbackContext`."""

    environment: str | None = None

    @property
    def automatic(self) -> bool:
        """True in the cycle DAG (``environment`` set), False in the manual rollback DAG."""
        return self.environment is not None

    context_class = RollbackContext

    def context_arguments(self) -> dict[str, Any]:
        """A rollback's context knows its stage (automatic) or that it has none (manual)."""
        return {"environment": self.environment}

    # -- connections per cloud -----------------------------------------------------------------------
    def conn_for(self, cycle: RollbackContext, target: RollbackTarget) -> str:
        """The connection a target's restore goes through: its AWS account's or GCP project's, or for Arc
        the backup system's."""
        if target.cloud == "aws":
            return cycle.aws_conn_id(target.account)
        if target.cloud == "gcp":
            return cycle.gcp_conn_id(target.account)
        return self.tenant.backup_attestation_connection_id()


class RestoreEngineMixin(RollbackContextMixin):
    """Start each target's restore, advance GCE's steps as they finish, and verify the hosts after."""

    # -- starting ---------------------------------------------------------------------------------------
    def start_restores(
        self, cycle: RollbackContext, targets: list[RollbackTarget], log: EventLog
    ) -> dict[str, Any]:
        """Start each target's restore in its cloud (a host whose restore cannot start is failed, the
        others go on); return the restore state to record and wait on."""
        key = cycle.rollback_key
        hosts: dict[str, dict[str, Any]] = {}
        for target in targets:
            host: dict[str, Any] = {
                "cloud": target.cloud,
                "conn_id": self.conn_for(cycle, target),
                "region": target.region,
                "project": target.account,
                "name": target.name,
                "step": None,
                "ops": [],
                "restore_id": None,
                "state": "pending",
                "reason": None,
            }
            hosts[target.host_id] = host
            try:
                if target.backup_kind == "db_snapshot":
                    self._start_rds(target, host, key)
                elif target.cloud == "aws":
                    self._start_ec2(target, host, key)
                elif target.cloud == "azure":
                    self._start_arc(cycle, target, host, key)
                else:
                    self._start_gce(target, host, key)
            except Exception as exc:  # noqa: BLE001 - any cloud's refusal fails this host, not the others
                host.update(state="failed", reason=f"restore could not start: {exc}")
            log.record(
                "rollback.restore_started" if host["state"] == "pending" else "rollback.restore_failed",
                target=target.host_id,
                result="ok" if host["state"] == "pending" else "failed",
                cloud=target.cloud,
                backup_id=target.backup_id,
                restore_id=host["restore_id"],
                reason=host["reason"],
                name=target.name,
            )
        return {"targets": [t.to_dict() for t in targets], "hosts": hosts, "round": 0}

    def _start_ec2(self, target: RollbackTarget, host: dict[str, Any], key: str) -> None:
        from patchcycle.hooks.aws import Ec2BackupHook

        hook = Ec2BackupHook(aws_conn_id=host["conn_id"], region_name=target.region)
        task = hook.replace_root_volume(
            target.host_id,
            target.backup_id,
            client_token=_token(key, target.host_id),
            tags={"patchcycle:tenant": self.tenant_id, "patchcycle:rollback": _token(key, size=16)},
        )
        host.update(step="replace", ops=[task["ReplaceRootVolumeTaskId"]])
        host["restore_id"] = task["ReplaceRootVolumeTaskId"]

    def _start_rds(self, target: RollbackTarget, host: dict[str, Any], key: str) -> None:
        """Rename the patched DB instance out of the way (kept for forensics), then restore the cycle's
        DB snapshot under the original name, shaped and tagged like the instance it replaces, so the
        endpoint the applications use comes back. A retry that finds the rename done goes on from there."""
        from botocore.exceptions import ClientError

        from patchcycle.hooks.aws import RdsHook

        hook = RdsHook(aws_conn_id=host["conn_id"], region_name=target.region)
        aside = f"{target.name}-pre-rollback-{_token(key, target.host_id, size=8)}"[:63]
        by_id = hook.db_instances_named([target.name, aside])
        current, renamed = by_id.get(target.name), by_id.get(aside)
        if current is None and renamed is None:
            # An earlier rollback run renamed it aside and its restore never started (a throttled call):
            # its aside name carries that run's token, so it is found by the name's stem instead.
            earlier = _set_aside_by_earlier_rollback(hook.db_instances(), target.name)
            if earlier is not None:
                aside, renamed = earlier["DBInstanceIdentifier"], earlier
        like = current or renamed
        if like is None:
            raise RuntimeError(
                f"DB instance {target.name} is not in {target.region}; nothing to restore over"
            )
        tags = {t["Key"]: t["Value"] for t in like.get("TagList") or []}
        if current is not None and renamed is None:
            hook.rename_db_instance(target.name, aside)
        try:
            hook.restore_from_snapshot(target.name, target.backup_id, like, tags)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "DBInstanceAlreadyExists" or renamed is None:
                raise
        host.update(
            kind="db_snapshot",
            step="restore",
            ops=[target.name],
            restore_id=f"{target.backup_id} -> {target.name}",
            renamed_to=aside,
        )

    def _start_arc(
        self, cycle: RollbackContext, target: RollbackTarget, host: dict[str, Any], key: str
    ) -> None:
        from patchcycle.hooks.backup_attestation import BackupAttestationHook

        restore = BackupAttestationHook(host["conn_id"]).request_restore(
            target.host_id, target.backup_id, _token(key, target.host_id), cycle.request_reason
        )
        host.update(step="restore", ops=[restore["restoreId"]], restore_id=restore["restoreId"])

    def _gce_hook(self, host: dict[str, Any]) -> Any:
        from patchcycle.hooks.gcp_compute import DiskSnapshotHook

        return DiskSnapshotHook(gcp_conn_id=host["conn_id"], project_id=host["project"])

    def _start_gce(self, target: RollbackTarget, host: dict[str, Any], key: str) -> None:
        hook = self._gce_hook(host)
        instance = hook.instance(target.region, target.name)
        boot = [d for d in instance.get("disks", []) if d.get("boot")]
        host["device_name"] = (boot[0].get("deviceName") if boot else None) or "persistent-disk-0"
        host["disk"] = restored_disk_name(target.name, key)
        token = _token(key, target.host_id)
        stop = hook.stop_instance(target.region, target.name, token)
        disk = hook.create_disk_from_snapshot(
            target.region, host["disk"], target.backup_id, {"patchcycle-rollback": token[:16]}, token
        )
        host.update(step="prepare", ops=[stop, disk], restore_id=disk)

    def _next_gce_step(self, host_id: str, host: dict[str, Any], key: str) -> None:
        hook = self._gce_hook(host)
        token = _token(key, host_id)
        zone, name = host["region"], host["name"]
        step = GCE_STEPS[GCE_STEPS.index(host["step"]) + 1]
        if step == "detach":
            op = hook.detach_boot_disk(zone, name, host["device_name"], token)
        elif step == "attach":
            op = hook.attach_boot_disk(zone, name, host["disk"], host["device_name"], token)
        else:
            op = hook.start_instance(zone, name, token)
        host.update(step=step, ops=[op], restore_id=op)
        host["last"] = step == GCE_STEPS[-1]

    # -- waiting ----------------------------------------------------------------------------------------
    def wait_payload(self, state: dict[str, Any]) -> dict[str, Any]:
        """The restore wait's payload: the hosts whose restore is pending."""
        return {"hosts": {h: dict(host) for h, host in state["hosts"].items() if host["state"] == "pending"}}

    def advance(
        self, cycle: RollbackContext, state: dict[str, Any], event: dict[str, Any], log: EventLog
    ) -> None:
        """Fold one look at the clouds into the state; start the next GCE step where one finished."""
        key = cycle.rollback_key
        timed_out = event.get("status") == "timeout"
        for host_id, seen in (event.get("hosts") or {}).items():
            host = state["hosts"].get(host_id)
            if host is None or host["state"] != "pending":
                continue
            verdict = seen.get("verdict")
            if verdict == "step_done":
                try:
                    self._next_gce_step(host_id, host, key)
                    log.record("rollback.step", target=host_id, step=host["step"], operation=host["ops"][0])
                except Exception as exc:
                    host.update(state="failed", reason=f"GCE step after {host['step']} failed: {exc}")
            elif verdict in ("succeeded", "failed"):
                host.update(state=verdict, reason=seen.get("detail") if verdict == "failed" else None)
            if host["state"] != "pending":
                log.record(
                    f"rollback.restore_{host['state']}",
                    target=host_id,
                    result="ok" if host["state"] == "succeeded" else "failed",
                    restore_id=host["restore_id"],
                    reason=host["reason"],
                    name=host["name"],
                )
        if timed_out:
            for host_id, host in state["hosts"].items():
                if host["state"] == "pending":
                    host.update(state="timed_out", reason=f"restore still {host['step']} when the wait ended")
                    log.record("rollback.restore_timed_out", target=host_id, result="failed")
        state["round"] += 1

    def pending(self, state: dict[str, Any]) -> bool:
        """Whether any host's restore is still pending."""
        return any(h["state"] == "pending" for h in state["hosts"].values())

    def defer_wait(self, cycle: RollbackContext, state: dict[str, Any]) -> Any:
        """Wait (the ``restores`` check) for the pending hosts' restores."""
        # The operator that restores waits by the one contract (WaitArguments); verifying never waits.
        return self.wait_for(cycle, "restores", self.wait_payload(state))  # type: ignore[attr-defined]

    # -- verifying --------------------------------------------------------------------------------------
    def verify(self, cycle: RollbackContext, state: dict[str, Any]) -> list[policy.HostRollback]:
        """Read each restored host back from its cloud and judge it against its backup."""
        targets = [RollbackTarget.from_dict(t) for t in state["targets"]]
        restored = [t for t in targets if state["hosts"][t.host_id]["state"] == "succeeded"]
        seen: dict[str, tuple[bool | None, str | None]] = {}
        by_cloud: dict[str, list[RollbackTarget]] = defaultdict(list)
        for target in restored:
            by_cloud[target.cloud].append(target)
        seen.update(self._read_ec2(cycle, [t for t in by_cloud["aws"] if t.backup_kind != "db_snapshot"]))
        seen.update(self._read_rds(cycle, [t for t in by_cloud["aws"] if t.backup_kind == "db_snapshot"]))
        seen.update(self._read_arc(cycle, by_cloud["azure"]))
        seen.update(self._read_gce(cycle, by_cloud["gcp"]))
        judged = []
        for target in targets:
            host = state["hosts"][target.host_id]
            online, kernel = seen.get(target.host_id, (None, None))
            judged.append(
                policy.judge_host(
                    target,
                    restore_id=host["restore_id"],
                    restore_state=host["state"],
                    restore_reason=host["reason"],
                    online=online,
                    kernel_after=kernel,
                )
            )
        return judged

    def _read_ec2(
        self, cycle: RollbackContext, targets: list[RollbackTarget]
    ) -> dict[str, tuple[bool | None, str | None]]:
        """SSM's ping status; SSM does not report the running kernel (None)."""
        from patchcycle.hooks.aws import SsmFleetHook

        out: dict[str, tuple[bool | None, str | None]] = {}
        scopes: dict[tuple[str, str], list[str]] = defaultdict(list)
        for t in targets:
            scopes[(t.account, t.region)].append(t.host_id)
        for (account, region), ids in scopes.items():
            hook = SsmFleetHook(aws_conn_id=cycle.aws_conn_id(account), region_name=region)
            pings = {i["InstanceId"]: i.get("PingStatus") for i in hook.managed_instances()}
            out.update({host_id: (pings.get(host_id) == "Online", None) for host_id in ids})
        return out

    def _read_rds(
        self, cycle: RollbackContext, targets: list[RollbackTarget]
    ) -> dict[str, tuple[bool | None, str | None]]:
        """The restored DB instance ``available`` under its own name (AWS reports no kernel for RDS)."""
        from patchcycle.hooks.aws import RdsHook

        out: dict[str, tuple[bool | None, str | None]] = {}
        scopes: dict[tuple[str, str], list[RollbackTarget]] = defaultdict(list)
        for t in targets:
            scopes[(t.account, t.region)].append(t)
        for (account, region), hosts in scopes.items():
            hook = RdsHook(aws_conn_id=cycle.aws_conn_id(account), region_name=region)
            status = {db["DBInstanceArn"]: db.get("DBInstanceStatus") for db in hook.db_instances()}
            out.update({t.host_id: (status.get(t.host_id) == "available", None) for t in hosts})
        return out

    def _read_arc(
        self, cycle: RollbackContext, targets: list[RollbackTarget]
    ) -> dict[str, tuple[bool | None, str | None]]:
        """Arc's connection status and ``osVersion`` (the running kernel release on Linux)."""
        from patchcycle.hooks.azure_arc import ArcHook

        out: dict[str, tuple[bool | None, str | None]] = {}
        for t in targets:
            hook = ArcHook(azure_conn_id=cycle.azure_conn_id(t.account), subscription_id=t.account)
            props = hook.machine(str(t.resource_group), t.name).get("properties") or {}
            out[t.host_id] = (props.get("status") == "Connected", props.get("osVersion"))
        return out

    def _read_gce(
        self, cycle: RollbackContext, targets: list[RollbackTarget]
    ) -> dict[str, tuple[bool | None, str | None]]:
        """The instance RUNNING with its OS Config agent reporting, and the inventory's kernel release."""
        from patchcycle.hooks.gcp_compute import DiskSnapshotHook
        from patchcycle.hooks.gcp_osconfig import OsConfigHook
        from patchcycle.operators.verify import inventory_instance_id

        out: dict[str, tuple[bool | None, str | None]] = {}
        zones: dict[tuple[str, str], list[RollbackTarget]] = defaultdict(list)
        for t in targets:
            zones[(t.account, t.region)].append(t)
        for (project, zone), hosts in zones.items():
            conn_id = cycle.gcp_conn_id(project)
            compute = DiskSnapshotHook(gcp_conn_id=conn_id, project_id=project)
            inventories = {
                inventory_instance_id(inv): inv
                for inv in OsConfigHook(gcp_conn_id=conn_id, project_id=project).inventories(zone)
            }
            for t in hosts:
                running = compute.instance(zone, t.name).get("status") == "RUNNING"
                inventory = inventories.get(t.host_id)
                kernel = (inventory or {}).get("osInfo", {}).get("kernelRelease")
                out[t.host_id] = (running and inventory is not None, kernel)
        return out

    def write_rollback_record(
        self,
        cycle: RollbackContext,
        state: dict[str, Any],
        judged: list[policy.HostRollback],
        source_run: str,
    ) -> tuple[dict[str, Any], str]:
        """The rollback record, written beside (never over) earlier attempts'; (record, its URL)."""
        started = state.get("started_at")
        record = policy.rollback_record(
            tenant_id=self.tenant_id,
            cycle_date=cycle.cycle_date,
            trigger="automatic" if self.automatic else "manual",
            requested_by=cycle.actor,
            reason=cycle.request_reason,
            source_run=source_run,
            started_at=utcnow() if started is None else dt.datetime.fromisoformat(started),
            finished_at=utcnow(),
            hosts=judged,
        )
        return record, cycle.write_record(cycle.record_key("rollback.json"), record)


def _read_cycle_backups(cycle: RollbackContext, run_segment: str) -> tuple[list, dict]:
    """A cycle run's inventory rows and each stage's backup status, as its tasks recorded them."""
    paths = CyclePaths(cycle.cycle_date, run_segment)
    inventory = cycle.read_record(paths.run_file("inventory.json"))
    backups = {}
    for env in cycle.tenant.environments:
        status = cycle.read_record(paths.stage_file(env.name.value, "backup-status.json"), required=False)
        if status is not None:
            backups[env.name.value] = status
    return inventory, backups


class SelectRollbackOperator(RollbackContextMixin, CycleOperator):
    """Choose the hosts and their cycle backups; refuse the whole request (naming each host) if any
    cannot be rolled back, before any cloud is asked to restore anything."""

    template_fields: Sequence[str] = ("tenant_id",)

    def run(self, cycle: RollbackContext, log: EventLog) -> dict[str, Any]:
        """Check the request (the conf's keys, a reason), choose the targets from the backups of the
        cycle's latest finished run and write ``selection.json``; fail, restoring nothing, if any host
        cannot be rolled back. Return the host count, the selection's URL and the source run."""
        params = cycle.params
        problems = conf_problems(getattr(cycle.dag_run, "conf", None), ROLLBACK_PARAMS, dag=self.dag_id)
        if problems:
            # A rollback has no dry run: {"dry_run": true} would otherwise restore for real.
            raise AirflowFailException(
                "the rollback is refused; nothing was restored:\n- " + "\n- ".join(problems)
            )
        cycle_date = cycle.cycle_date
        reason = str(params.get("reason") or "").strip()
        if not reason:
            raise AirflowFailException(
                "a rollback needs a reason (the 'reason' parameter); nothing was restored"
            )
        source_run = self.source_run(cycle)
        inventory, backups = _read_cycle_backups(cycle, source_run)
        requested = [str(h) for h in params.get("hosts") or []]
        try:
            targets = policy.select_rollback(
                requested, inventory, backups, tenant_id=self.tenant_id, cycle_date=cycle_date
            )
        except RollbackRefused as refused:
            log.record(
                "rollback.refused", target=",".join(requested), result="refused", reasons=refused.reasons
            )
            raise AirflowFailException(str(refused)) from refused
        selection = {
            "cycle_date": cycle_date,
            "source_run": source_run,
            "requested": requested,
            "reason": reason,
            "requested_by": cycle.actor,
            "selected_at": utcnow().isoformat(),
            "targets": [t.to_dict() for t in targets],
        }
        url = cycle.write_record(cycle.record_key("selection.json"), selection)
        for t in targets:
            log.record(
                "rollback.selected", target=t.host_id, backup_id=t.backup_id, kind=t.backup_kind, name=t.name
            )
        return {"hosts": len(targets), "selection_url": url, "source_run": source_run}

    def source_run(self, cycle: RollbackContext) -> str:
        """The cycle's latest finished run (the one with an evidence pack): its backups are the cycle's."""
        prefix = f"cycles/{cycle.cycle_date}/runs/"
        finished: list[tuple[str, str]] = []
        for key in cycle.store.keys(prefix):
            if key.endswith("/pack/evidence.json"):
                run = key.removeprefix(prefix).split("/", 1)[0]
                evidence = cycle.store.get_json(key)
                finished.append((str(evidence.get("cycle", {}).get("finished_at") or ""), run))
        if not finished:
            raise AirflowFailException(
                f"cycle {cycle.cycle_date} of tenant {self.tenant_id} has no finished run (no evidence pack "
                f"under {cycle.store.url(prefix)}); nothing was restored"
            )
        return max(finished)[1]


class RestoreHostsOperator(WaitArguments, RestoreEngineMixin, CycleOperator):
    """Restore the selected hosts from their cycle backups, each through its cloud's API; deferrable."""

    template_fields: Sequence[str] = ("tenant_id",)

    def __init__(
        self,
        *,
        deferrable: bool = True,
        waiter_delay: float | None = None,
        waiter_max_attempts: int = 720,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.set_wait_arguments(deferrable, waiter_delay, waiter_max_attempts)

    def targets(self, cycle: RollbackContext, log: EventLog) -> list[RollbackTarget]:
        """The hosts the select task chose, from ``selection.json``."""
        selection = cycle.read_record(cycle.record_key("selection.json"))
        return [RollbackTarget.from_dict(t) for t in selection["targets"]]

    def run(self, cycle: RollbackContext, log: EventLog) -> Any:
        """Start the restores, record them in ``restores.json`` and wait for them; skipped when there is no
        host to roll back."""
        targets = self.targets(cycle, log)
        if not targets:
            raise AirflowSkipException("no host to roll back")
        state = self.start_restores(cycle, targets, log)
        state["started_at"] = utcnow().isoformat()
        cycle.write_record(cycle.record_key("restores.json"), state, step=0)
        return self.wait_or_finish(cycle, state, log)

    def wait_or_finish(self, cycle: RollbackContext, state: dict[str, Any], log: EventLog) -> Any:
        """Wait again while a restore is pending, else finish."""
        if self.pending(state):
            return self.defer_wait(cycle, state)
        return self.finish(cycle, state, log)

    def finish(self, cycle: RollbackContext, state: dict[str, Any], log: EventLog) -> Any:
        """The restored and failed host counts (the final state is already recorded)."""
        # The state is already recorded (the latest step record is the final one).
        states = [h["state"] for h in state["hosts"].values()]
        return {"restored": states.count("succeeded"), "failed": len(states) - states.count("succeeded")}

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Resume after a look at the clouds: advance the restores, record the round in ``restores.json``,
        then wait again or finish."""
        return self.resume(context, event, self._complete)

    def _complete(self, cycle: RollbackContext, event: dict[str, Any], log: EventLog) -> Any:
        if event.get("status") not in ("done", "wake", "timeout"):
            raise AirflowFailException(f"unexpected trigger event: {event}")
        state = cycle.read_record(cycle.record_key("restores.json"))
        self.advance(cycle, state, event, log)
        cycle.write_record(cycle.record_key("restores.json"), state, step=state["round"])
        return self.wait_or_finish(cycle, state, log)


class VerifyRollbackOperator(RestoreEngineMixin, CycleOperator):
    """Read the restored hosts back (online, the backup's kernel) and write the rollback record; fails
    the run if any host was not rolled back."""

    template_fields: Sequence[str] = ("tenant_id",)

    def run(self, cycle: RollbackContext, log: EventLog) -> dict[str, Any]:
        """Read the restored hosts back, write the rollback record, and fail the task if any host was not
        rolled back; else return the rolled-back count and the record's URL."""
        selection = cycle.read_record(cycle.record_key("selection.json"))
        state = cycle.read_record(cycle.record_key("restores.json"))
        judged = self.verify(cycle, state)
        record, url = self.write_rollback_record(cycle, state, judged, selection["source_run"])
        for host in judged:
            log.record(
                "rollback.verified",
                target=host.host_id,
                result=host.result,
                backup_id=host.backup_id,
                kernel=host.kernel_after,
                reason=host.reason,
                name=host.name,
            )
        if record["outcome"] != "succeeded":
            failed = [f"{h.name}: {h.reason}" for h in judged if h.result != policy.ROLLED_BACK]
            raise AirflowFailException(f"rollback of {len(failed)} host(s) failed: " + "; ".join(failed))
        return {"rolled_back": record["summary"]["rolled_back"], "record_url": url}


class RollbackFailedHostsOperator(RestoreHostsOperator):
    """In a cycle, after a stage's verify: roll the stage's failed hosts back from that stage's backups,
    when the tenant opted in (``rollback: {automatic: true}``); restore, verify and record in one task.

    Meant for prod (wire it after the prod stage's verify with ``trigger_rule=ALL_DONE``); it skips when
    the tenant did not opt in, the stage did not run, or no host failed.
    """

    template_fields: Sequence[str] = ("tenant_id", "environment")

    def __init__(self, *, environment: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = environment

    def targets(self, cycle: RollbackContext, log: EventLog) -> list[RollbackTarget]:
        """The stage's failed hosts with their backups; skipped when the tenant has not opted in, the stage
        is not part of the run, or no host failed. Fails if one cannot be rolled back."""
        policy_set = self.tenant.rollback
        if policy_set is None or not policy_set.automatic:
            raise AirflowSkipException(f"tenant {self.tenant_id} has not opted in to automatic rollback")
        cycle.stage_info(str(self.environment))
        paths = cycle.paths
        # The stage as verified (a stage stopped at its canary is the canary's record).
        stage = cycle.stage_record(str(self.environment))
        failed = policy.failed_hosts(stage)
        if not failed:
            raise AirflowSkipException(f"no failed host in stage {self.environment}")
        inventory = cycle.read_record(paths.run_file("inventory.json"))
        backups = cycle.read_record(paths.stage_file(str(self.environment), "backup-status.json"))
        try:
            return policy.select_rollback(
                failed,
                inventory,
                {str(self.environment): backups},
                tenant_id=self.tenant_id,
                cycle_date=cycle.cycle_date,
            )
        except RollbackRefused as refused:
            # A failed host always had a completed backup (none is patched without one); refuse loudly.
            raise AirflowFailException(str(refused)) from refused

    def finish(self, cycle: RollbackContext, state: dict[str, Any], log: EventLog) -> Any:
        """Verify the restored hosts and write the rollback record; fail the task if any host was not
        rolled back, else return the rolled-back count and the record's URL."""
        super().finish(cycle, state, log)
        judged = self.verify(cycle, state)
        record, url = self.write_rollback_record(cycle, state, judged, cycle.run_id)
        for host in judged:
            log.record("rollback.verified", target=host.host_id, result=host.result, reason=host.reason)
        if record["outcome"] != "succeeded":
            raise AirflowFailException(
                f"automatic rollback of stage {self.environment}: "
                f"{record['summary']['failed']} host(s) failed; see {url}"
            )
        return {"rolled_back": record["summary"]["rolled_back"], "record_url": url}
