"""Verify a stage: each host's patch state after the install; the stage's verdict against its budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from patchcycle.domain import outcomes
from patchcycle.operators.backup import scopes_of
from patchcycle.operators.base import CycleOperator, EventLog, utcnow


class VerifyStageOperator(CycleOperator):
    """Read patch states back, classify each host, write the stage record, and stop the cycle on failure."""

    template_fields: Sequence[str] = ("tenant_id", "environment")

    def __init__(self, *, environment: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = environment

    def run(self, context: Any, log: EventLog) -> dict[str, Any]:
        from patchcycle.hooks.aws import SsmFleetHook

        paths = self.paths(context)
        rows = self.stage_hosts(context, self.environment)
        backups = self.read_record(paths.stage_file(self.environment, "backup-status.json"))
        invocations = self.read_record(paths.stage_file(self.environment, "invocations.json"))
        commands = self.read_record(paths.stage_file(self.environment, "commands.json"))
        states: dict[str, dict[str, Any]] = {}
        invoked = [r for r in rows if r["host_id"] in invocations]
        for (account, region), hosts in scopes_of(invoked).items():
            hook = SsmFleetHook(aws_conn_id=self.aws_conn_id(account), region_name=region)
            states.update(hook.patch_states([h["host_id"] for h in hosts]))
        hosts_out: dict[str, dict[str, Any]] = {}
        for row in rows:
            host_id = row["host_id"]
            backup = backups.get(host_id, {})
            inv = invocations.get(host_id)
            entry: dict[str, Any] = {"backup_id": backup.get("image_id"), "backup_state": backup.get("state")}
            if not backup.get("ready"):
                final, reason = outcomes.HELD, backup.get("reason") or "no completed backup"
            else:
                state = states.get(host_id)
                final, reason = outcomes.classify_patched_host(
                    inv and inv["status"], state, inv and inv.get("status_details")
                )
                entry.update(
                    command_id=inv and inv["command_id"],
                    invocation=inv and inv["status"],
                    patch_state=state
                    and {
                        k: state.get(k)
                        for k in (
                            "Operation",
                            "MissingCount",
                            "FailedCount",
                            "InstalledCount",
                            "InstalledPendingRebootCount",
                            "OperationEndTime",
                            "InstallOverrideList",
                        )
                    },
                )
            entry.update(final_state=final, reason=reason)
            hosts_out[host_id] = entry
            if final != outcomes.PATCHED:
                log.record("verify.host", target=host_id, result=final, reason=reason, name=row.get("name"))
        patched_states = {
            h: e["final_state"] for h, e in hosts_out.items() if e["final_state"] != outcomes.HELD
        }
        verdict = outcomes.stage_verdict(
            patched_states, self.tenant.environment(self.environment).rate_control
        )
        stage = {
            "environment": self.environment,
            "status": "succeeded" if verdict.succeeded else "failed",
            "reason": verdict.reason,
            "started_at": (context["ti"].xcom_pull(task_ids=f"{self.environment}.backup") or {}).get(
                "started_at"
            ),
            "finished_at": utcnow().isoformat(),
            "command_ids": [c["command_id"] for c in commands],
            "budget": {
                "targets": verdict.targets,
                "errors": verdict.errors,
                "allowed_errors": verdict.allowed_errors,
            },
            "hosts": hosts_out,
        }
        self.write_record(context, paths.stage_file(self.environment, "stage.json"), stage)
        log.record(
            "stage.verified",
            target=self.environment,
            result=stage["status"],
            reason=verdict.reason,
            patched=sum(1 for e in hosts_out.values() if e["final_state"] == outcomes.PATCHED),
            errors=verdict.errors,
            allowed_errors=verdict.allowed_errors,
        )
        if not verdict.succeeded:
            raise AirflowFailException(
                f"stage {self.environment} of {self.tenant_id} failed: {verdict.reason}"
            )
        return {"status": stage["status"], "errors": verdict.errors, "targets": verdict.targets}
