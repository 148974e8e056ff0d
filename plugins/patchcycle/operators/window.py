"""The prod change window in front of each batch of a stage: wait for it to open, or record that it closed.

Before the stage's first batch the gate defers (no worker slot) until the window opens, so a cycle whose
staging soak ends on a Monday patches prod in the next opening. Once a batch of the stage has run inside
an opening, the rest is bound to that opening: a later batch that cannot start before it closes (with
``min_minutes_left`` to spare) is not started, and that is recorded. Its hosts end ``not_run`` with the
reason, the stage fails and pages; the change is not carried into another week's window unasked, since a
change ticket covers one window. An emergency change (``window_override_reason`` in the trigger form)
patches outside the window, with the reason and the triggering user recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from patchcycle.domain.window import window_gate
from patchcycle.operators.base import CycleContext, CycleOperator, EventLog, WaitArguments, utcnow


class ChangeWindowGateOperator(WaitArguments, CycleOperator):
    """May this batch of the stage start now? Wait (deferred) for the first opening, never for a second."""

    template_fields: Sequence[str] = ("tenant_id", "environment")
    ui_color = "#fff4e5"

    def __init__(
        self,
        *,
        environment: str,
        batch: str | None = None,
        first: bool = True,
        deferrable: bool = True,
        waiter_delay: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.environment = environment
        self.batch = batch
        self.first = first
        self.set_wait_arguments(deferrable, waiter_delay, 0)  # the opening bounds the wait

    def record_name(self) -> str:
        """The name of the batch's window record: ``window-<batch>.json``, or ``window-stage.json`` without
        a batch."""
        return f"window-{self.batch or 'stage'}.json"

    def run(self, cycle: CycleContext, log: EventLog) -> Any:
        """Decide whether the batch may start now: record the decision (``window-<batch>.json``) and return
        it when it may, wait (deferred) for the opening when it is the first batch, else skip it with
        the closed window recorded; skipped too when the stage is not part of the run."""
        info = cycle.stage_info(str(self.environment))
        return self._decide(cycle, log, info)

    def execute_complete(self, context: Any, event: Any = None, opens: str | None = None) -> Any:
        """Resume when the window has opened, and decide again."""
        return self.resume(context, {"status": "opened", "opens": opens}, self._reopened)

    def _reopened(self, cycle: CycleContext, event: dict[str, Any], log: EventLog) -> Any:
        log.record("window.wait_ended", target=self.environment, batch=self.batch, opens=event.get("opens"))
        return self._decide(cycle, log, cycle.info)

    def _decide(self, cycle: CycleContext, log: EventLog, info: dict[str, Any]) -> Any:
        window = self.tenant.environment(self.environment).change_window
        now = utcnow()
        override = (info.get("window_override_reason") or "").strip()
        if override:
            return self._open(
                cycle,
                log,
                {
                    "may_start": True,
                    "closes_at": None,
                    "override_reason": override,
                    "reason": "emergency change",
                },
                "window.overridden",
            )
        decision = window_gate(window, now, window.min_minutes_left if window else 0.0)
        record = {
            "may_start": decision.may_start,
            "closes_at": decision.closes_at.isoformat() if decision.closes_at else None,
            "next_opening": decision.wait_until.isoformat() if decision.wait_until else None,
            "reason": decision.reason,
        }
        if decision.may_start:
            return self._open(cycle, log, record, "window.open")
        if self.first:
            assert decision.wait_until is not None
            log.record(
                "window.waiting",
                target=self.environment,
                batch=self.batch,
                until=decision.wait_until.isoformat(),
                reason=decision.reason,
            )
            return self.wait_until(
                cycle, decision.wait_until, kwargs={"opens": decision.wait_until.isoformat()}
            )
        # A later batch after the opening it started in has closed: not started, and recorded.
        cycle.write_record(
            cycle.paths.stage_file(self.environment, self.record_name()),
            {
                **record,
                "batch": self.batch,
                "decided_at": now.isoformat(),
                "started": False,
            },
        )
        log.record(
            "window.closed",
            target=self.environment,
            batch=self.batch,
            result="not_started",
            reason=decision.reason,
        )
        raise AirflowSkipException(
            f"{self.environment} {self.batch or ''} batch not started: {decision.reason}"
        )

    def _open(
        self, cycle: CycleContext, log: EventLog, record: dict[str, Any], action: str
    ) -> dict[str, Any]:
        now = utcnow().isoformat()
        full = {**record, "batch": self.batch, "decided_at": now, "started": True}
        cycle.write_record(cycle.paths.stage_file(self.environment, self.record_name()), full)
        log.record(
            action,
            target=self.environment,
            batch=self.batch,
            closes_at=record.get("closes_at"),
            reason=record.get("reason"),
            override_reason=record.get("override_reason"),
        )
        return full


def window_not_started(records: Sequence[dict[str, Any] | None]) -> str | None:
    """The reason a batch of the stage was not started because its window closed, if one was not."""
    for record in records:
        if record and not record.get("started"):
            return f"change window closed: {record.get('reason')}"
    return None
