"""Patch a stage: one Run Command per account and region, fanned out by SSM under the rate control."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from patchcycle.operators.backup import scopes_of
from patchcycle.operators.base import CycleOperator, EventLog, poll_seconds
from patchcycle.triggers.aws import COMMAND_TERMINAL, RunCommandTrigger, command_states

TARGET_TAG = "patchcycle:target"


def target_tag_value(cycle_date: str, environment: str, run_id: str) -> str:
    """The tag value that selects this run's hosts of a stage (and no host held since an earlier run)."""
    return f"{cycle_date}.{environment}.{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


class PatchStageOperator(CycleOperator):
    """Install the frozen plan's patch list on every host of the stage whose backup is complete."""

    template_fields: Sequence[str] = ("tenant_id", "environment")

    def __init__(
        self,
        *,
        environment: str,
        deferrable: bool = True,
        waiter_delay: float | None = None,
        waiter_max_attempts: int = 720,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def run(self, context: Any, log: EventLog) -> Any:
        paths = self.paths(context)
        commands_key = paths.stage_file(self.environment, "commands.json")
        commands = self.read_record(commands_key, required=False)
        if commands is not None:
            log.record(
                "patch.resumed", target=self.environment, command_ids=[c["command_id"] for c in commands]
            )
        else:
            commands = self._send(context, log)
            self.write_record(context, commands_key, commands)
        if not commands:
            return self.resume(context, {"status": "done", "commands": {}}, self._complete)
        delay = self.waiter_delay if self.waiter_delay is not None else poll_seconds()
        states = command_states(commands)
        if all(s in COMMAND_TERMINAL for s in states.values()) or not self.deferrable:
            # Non-deferrable mode is for tests of the operator alone; deferral is the default.
            return self.resume(context, {"status": "done", "commands": states}, self._complete)
        self.defer(
            trigger=RunCommandTrigger(commands, delay, self.waiter_max_attempts),
            method_name="execute_complete",
            timeout=timedelta(seconds=delay * (self.waiter_max_attempts + 2)),
        )

    def _send(self, context: Any, log: EventLog) -> list[dict[str, Any]]:
        from patchcycle.hooks.aws import Ec2BackupHook, SsmFleetHook

        info = self.plan_info(context)
        paths = self.paths(context)
        status = self.read_record(paths.stage_file(self.environment, "backup-status.json"))
        rows = [
            r
            for r in self.stage_hosts(context, self.environment)
            if status.get(r["host_id"], {}).get("ready")
        ]
        rate = self.tenant.environment(self.environment).rate_control
        value = target_tag_value(info["cycle_date"], self.environment, context["run_id"])
        plan_id = info["plan_hash"][:12]
        comment = f"patchcycle {self.tenant_id} {info['cycle_date']} {self.environment} plan {plan_id}"
        commands = []
        for (account, region), hosts in sorted(scopes_of(rows).items()):
            conn_id = self.aws_conn_id(account)
            ids = sorted(h["host_id"] for h in hosts)
            Ec2BackupHook(aws_conn_id=conn_id, region_name=region).tag_instances(ids, {TARGET_TAG: value})
            command = SsmFleetHook(aws_conn_id=conn_id, region_name=region).send_patch_install(
                target_tag=(TARGET_TAG, value),
                override_list_url=info["install_list_url"],
                max_concurrency=rate.max_concurrency,
                max_errors=rate.max_errors,
                comment=comment,
            )
            commands.append(
                {
                    "command_id": command["CommandId"],
                    "conn_id": conn_id,
                    "account": account,
                    "region": region,
                    "hosts": ids,
                }
            )
            log.record(
                "patch.sent",
                target=f"aws:{account}:{region}",
                command_id=command["CommandId"],
                hosts=len(ids),
                document="AWS-RunPatchBaseline",
                max_concurrency=rate.max_concurrency,
                max_errors=rate.max_errors,
                install_list=info["install_list_url"],
                plan_hash=info["plan_hash"],
            )
        return commands

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        return self.resume(context, event, self._complete)

    def _complete(self, context: Any, event: dict[str, Any], log: EventLog) -> dict[str, Any]:
        from patchcycle.hooks.aws import SsmFleetHook

        if event.get("status") not in ("done", "timeout"):
            raise AirflowFailException(f"unexpected trigger event: {event}")
        paths = self.paths(context)
        commands = self.read_record(paths.stage_file(self.environment, "commands.json"))
        invocations: dict[str, dict[str, Any]] = {}
        for command in commands:
            hook = SsmFleetHook(aws_conn_id=command["conn_id"], region_name=command["region"])
            for inv in hook.command_invocations(command["command_id"]):
                plugin = (inv.get("CommandPlugins") or [{}])[0]
                invocations[inv["InstanceId"]] = {
                    "command_id": command["command_id"],
                    "status": inv["Status"],
                    "status_details": inv.get("StatusDetails"),
                    "response_code": plugin.get("ResponseCode"),
                    "output": (plugin.get("Output") or "")[:500],
                }
            log.record(
                "patch.finished",
                target=f"aws:{command['account']}:{command['region']}",
                result=event.get("commands", {}).get(command["command_id"], "unknown"),
                command_id=command["command_id"],
                wait=event.get("status"),
            )
        self.write_record(context, paths.stage_file(self.environment, "invocations.json"), invocations)
        return {"invocations": len(invocations)}
