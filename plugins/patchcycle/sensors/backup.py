"""Wait until a stage's backups are complete: a hard gate before any patch is sent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from patchcycle.operators.backup import backup_tags
from patchcycle.operators.base import CycleTaskMixin, EventLog, poll_seconds
from patchcycle.triggers.aws import AMI_TERMINAL, AmiBackupsTrigger, ami_states


class BackupsCompleteSensor(CycleTaskMixin, BaseSensorOperator):
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
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def _scopes(self, context: Any) -> list[dict[str, Any]]:
        info = self.plan_info(context)
        backups = self.read_record(self.paths(context).stage_file(self.environment, "backups.json"))
        scopes: dict[tuple[str, str], list[str]] = {}
        for b in backups.values():
            scopes.setdefault((b["account"], b["region"]), []).append(b["image_id"])
        tags = backup_tags(self.tenant_id, info["cycle_date"], self.environment)
        return [
            {"conn_id": self.aws_conn_id(account), "region": region, "tags": tags, "image_ids": sorted(ids)}
            for (account, region), ids in sorted(scopes.items())
        ]

    def execute(self, context: Any) -> Any:
        scopes = self._scopes(context)
        states = ami_states(scopes) if scopes else {}
        if all(s in AMI_TERMINAL for s in states.values()):
            return self.resume(context, {"status": "done", "images": states, "attempts": 1}, self._complete)
        if not self.deferrable:
            return super().execute(context)
        delay = self.waiter_delay if self.waiter_delay is not None else poll_seconds()
        self.defer(
            trigger=AmiBackupsTrigger(scopes, delay, self.waiter_max_attempts),
            method_name="execute_complete",
            timeout=timedelta(seconds=delay * (self.waiter_max_attempts + 2)),
        )

    def poke(self, context: Any) -> bool:
        states = ami_states(self._scopes(context))
        if all(s in AMI_TERMINAL for s in states.values()):
            self.resume(context, {"status": "done", "images": states, "attempts": 0}, self._complete)
            return True
        return False

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        return self.resume(context, event, self._complete)

    def _complete(self, context: Any, event: dict[str, Any], log: EventLog) -> dict[str, Any]:
        if event.get("status") not in ("done", "timeout"):
            raise AirflowFailException(f"unexpected trigger event: {event}")
        paths = self.paths(context)
        backups = self.read_record(paths.stage_file(self.environment, "backups.json"))
        images = event.get("images", {})
        status: dict[str, dict[str, Any]] = {}
        for host_id, backup in sorted(backups.items()):
            state = images.get(backup["image_id"], "missing")
            verdict = AMI_TERMINAL.get(state, "timed_out")
            reason = None
            if verdict == "failed":
                reason = f"backup {backup['image_id']} {state}; not patched without a backup"
            elif verdict == "timed_out":
                reason = f"backup {backup['image_id']} still {state} when the wait ended; not patched"
            status[host_id] = {
                "image_id": backup["image_id"],
                "state": state,
                "ready": verdict == "ready",
                "reason": reason,
            }
            log.record(
                "backup.completed" if verdict == "ready" else "backup.failed",
                target=host_id,
                result="ok" if verdict == "ready" else "held",
                image_id=backup["image_id"],
                state=state,
                reason=reason,
            )
        self.write_record(context, paths.stage_file(self.environment, "backup-status.json"), status)
        ready = sum(1 for s in status.values() if s["ready"])
        return {"ready": ready, "held": len(status) - ready}
