"""A human approval before a stage (prod) is touched: Airflow 3.3's human-in-the-loop approval task.

The task parks in ``awaiting_input`` (no worker slot, no triggerer) until someone answers in the Airflow
UI (Required Actions) or through the REST API. Who answered and when is written to the evidence store
with the plan hash it approved. A rejection stops the stage before anything in it is touched: its
backups, window wait and patching are skipped, and the evidence shows the stage rejected, by whom.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from patchcycle.operators.base import CycleTaskMixin, EventLog, utcnow


class StageApprovalOperator(CycleTaskMixin, ApprovalOperator):
    """Ask for approval of a stage of this cycle's frozen plan; record the answer as evidence."""

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "tenant_id", "environment")

    def __init__(self, *, tenant_id: str, environment: str, **kwargs: Any) -> None:
        super().__init__(
            subject=f"Approve patching {environment} of {tenant_id}",
            body=f"Approve the patch cycle's {environment} stage of {tenant_id}.",
            ignore_downstream_trigger_rules=False,
            **kwargs,
        )
        self.tenant_id = tenant_id
        self.environment = environment

    def execute(self, context: Any) -> Any:
        """Compose the request's body (the plan, the stage's hosts, the earlier stages' status), record
        ``approval.requested`` and wait for the answer (ApprovalOperator); skipped when the stage is not
        part of the run."""
        cycle = self.cycle_context(context)
        info = cycle.stage_info(str(self.environment))
        hosts = cycle.stage_hosts(self.environment)
        earlier = [
            f"- {env}: {(cycle.stage_record(env) or {}).get('status', 'not run')}"
            for env in info["environments"]
            if env != self.environment
            and [e.name.value for e in self.tenant.environments].index(env)
            < [e.name.value for e in self.tenant.environments].index(self.environment)
        ]
        self.body = "\n".join(
            [
                f"**{self.tenant.display_name}** cycle {info['cycle_date']}, plan `{info['plan_hash'][:12]}` "
                f"({info['approved_patches']} approved patches).",
                f"{len(hosts)} {self.environment} hosts passed pre-flight and will be patched.",
                "Earlier stages:",
                *earlier,
            ]
        )
        log = EventLog(cycle.actor)
        log.record("approval.requested", target=self.environment, plan_hash=info["plan_hash"])
        self.flush_events(cycle, log, phase="")
        # ApprovalOperator's own execute (the mixin's execute, first in the MRO, runs ``run`` instead).
        return ApprovalOperator.execute(self, context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Write the answer to ``approval.json`` (decision, by whom, when, the plan hash) and record
        ``approval.answered``; then ApprovalOperator's own step, which skips the stage's next tasks on a
        rejection."""
        cycle = self.cycle_context(context)
        chosen = (event.get("chosen_options") or [None])[0] if "error" not in event else None
        by = event.get("responded_by_user") or {}
        at = event.get("responded_at")
        record = {
            "environment": self.environment,
            "decision": "approved" if chosen == self.APPROVE else "rejected" if chosen else "no answer",
            "by": by.get("name") or by.get("id"),
            "by_id": by.get("id"),
            "at": at.isoformat() if hasattr(at, "isoformat") else at,
            "recorded_at": utcnow().isoformat(),
            "plan_hash": cycle.info["plan_hash"],
            "error": event.get("error"),
        }
        cycle.write_record(cycle.paths.stage_file(self.environment, "approval.json"), record)
        log = EventLog(cycle.actor)
        log.record(
            "approval.answered",
            target=self.environment,
            result=record["decision"],
            by=record["by"],
            at=record["at"],
            plan_hash=record["plan_hash"],
        )
        self.flush_events(cycle, log, phase=".resumed")
        return ApprovalOperator.execute_complete(self, context, event)
