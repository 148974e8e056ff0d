"""Wait until a stage's backups are complete: a hard gate before any patch is sent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from patchcycle.operators.backup import backup_labels, backup_tags
from patchcycle.operators.base import CycleContext, CycleTaskMixin, EventLog, WaitArguments
from patchcycle.triggers import checks


class BackupsCompleteSensor(WaitArguments, CycleTaskMixin, BaseSensorOperator):
    """Succeeds once no backup of the stage is pending; hosts whose backup failed are held.

    Deferrable by default: the wait runs in the triggerer and holds no worker slot. A backup that
    fails, or is still pending after ``waiter_delay * waiter_max_attempts``, holds its host (it will not
    be patched) with the reason recorded; the stage goes on with the hosts that have a backup.
    """

    template_fields: Sequence[str] = ("tenant_id", "environment")

    def __init__(
        self,
        *,
        tenant_id: str,
        environment: str,
        deferrable: bool = True,
        waiter_delay: float | None = None,
        waiter_max_attempts: int = 240,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
        self.environment = environment
        self.set_wait_arguments(deferrable, waiter_delay, waiter_max_attempts)

    def _payload(self, cycle: CycleContext) -> dict[str, Any]:
        """The backups to await, grouped into one scope per kind and account/project (one call each)."""
        info = cycle.info
        backups = cycle.read_record(cycle.paths.stage_file(self.environment, "backups.json"))
        scopes: dict[tuple[str, ...], dict[str, Any]] = {}
        for host_id, b in sorted(backups.items()):
            kind = b["kind"]
            if kind == "ami":
                key: tuple[str, ...] = (kind, b["account"], b["region"])
                scope = scopes.setdefault(
                    key,
                    {
                        "kind": kind,
                        "conn_id": cycle.aws_conn_id(b["account"]),
                        "region": b["region"],
                        "tags": backup_tags(self.tenant_id, info["cycle_date"], self.environment),
                        "hosts": {},
                    },
                )
            elif kind == "db_snapshot":
                key = (kind, b["account"], b["region"])
                scope = scopes.setdefault(
                    key,
                    {
                        "kind": kind,
                        "conn_id": cycle.aws_conn_id(b["account"]),
                        "region": b["region"],
                        "hosts": {},
                    },
                )
            elif kind == "disk_snapshot":
                key = (kind, b["account"])
                scope = scopes.setdefault(
                    key,
                    {
                        "kind": kind,
                        "conn_id": cycle.gcp_conn_id(b["account"]),
                        "project": b["account"],
                        "labels": backup_labels(self.tenant_id, info["cycle_date"], self.environment),
                        "hosts": {},
                    },
                )
            else:
                key = (kind,)
                scope = scopes.setdefault(
                    key,
                    {
                        "kind": kind,
                        "conn_id": self.tenant.backup_attestation_connection_id(),
                        "not_before": b["not_before"],
                        "hosts": {},
                    },
                )
            scope["hosts"][host_id] = b["backup_id"]
        return {"scopes": [scopes[k] for k in sorted(scopes)]}

    def execute(self, context: Any) -> Any:
        """Check the stage's backups once: complete at once when none is pending, else wait for them
        (deferred, or polled in the worker)."""
        cycle = self.cycle_context(context)
        payload = self._payload(cycle)
        answer = checks.backups(payload)
        if answer["done"]:
            return self.resume(cycle, {**answer, "status": "done", "attempts": 1}, self._complete)
        return self.wait_for(cycle, "backups", payload)

    def poke(self, context: Any) -> bool:
        """Not used: :meth:`execute` waits by the cycle's one waiting contract (deferred, or polled in the
        worker with the same check, delay and attempts), never by the sensor's own poke loop."""
        raise NotImplementedError("BackupsCompleteSensor waits through WaitArguments.wait_for")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the wait: write each host's backup status to ``backup-status.json`` (a failed or
        still pending backup holds its host, with the reason); return the ready and held counts."""
        return self.resume(context, event, self._complete)

    def _complete(self, cycle: CycleContext, event: dict[str, Any], log: EventLog) -> dict[str, Any]:
        if event.get("status") not in ("done", "timeout"):
            raise AirflowFailException(f"unexpected trigger event: {event}")
        paths = cycle.paths
        backups = cycle.read_record(paths.stage_file(self.environment, "backups.json"))
        seen = event.get("backups", {})
        status: dict[str, dict[str, Any]] = {}
        for host_id, backup in sorted(backups.items()):
            answer = seen.get(host_id) or {
                "backup_id": backup["backup_id"],
                "state": "unknown",
                "verdict": "pending",
            }
            backup_id, state, verdict = answer["backup_id"], answer["state"], answer["verdict"]
            what = f"{backup['kind'].replace('_', ' ')} {backup_id}" if backup_id else backup["kind"]
            reason = None
            if verdict == "failed":
                reason = f"backup {what} {state}; not patched without a backup"
            elif verdict == "pending":
                reason = f"backup {what} still {state} when the wait ended; not patched"
            status[host_id] = {
                "kind": backup["kind"],
                "backup_id": backup_id,
                "state": state,
                "ready": verdict == "ready",
                "reason": reason,
            }
            log.record(
                "backup.completed" if verdict == "ready" else "backup.failed",
                target=host_id,
                result="ok" if verdict == "ready" else "held",
                backup_id=backup_id,
                kind=backup["kind"],
                state=state,
                reason=reason,
            )
        cycle.write_record(paths.stage_file(self.environment, "backup-status.json"), status)
        ready = sum(1 for s in status.values() if s["ready"])
        return {"ready": ready, "held": len(status) - ready}
