"""Soak a stage: wait N hours after its patching before the next stage may start, holding no worker slot."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from patchcycle.operators.base import CycleContext, CycleOperator, EventLog, WaitArguments, utcnow


def soak_hours_for(configured: float, override: float | None) -> float:
    """The run's soak: the tenant's configured hours unless the trigger form overrode them (with a reason)."""
    return configured if override is None else float(override)


class SoakOperator(WaitArguments, CycleOperator):
    """Defer until the stage has soaked; the override and its reason are recorded as evidence."""

    template_fields: Sequence[str] = ("tenant_id", "environment")

    def __init__(
        self,
        *,
        environment: str,
        soak_hours: float,
        deferrable: bool = True,
        waiter_delay: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.soak_hours = soak_hours
        self.set_wait_arguments(deferrable, waiter_delay, 0)  # the soak's length bounds the wait

    def run(self, cycle: CycleContext, log: EventLog) -> Any:
        """Wait until the soak's hours (the run's override, if any) after the stage finished, deferred;
        complete at once when that has passed."""
        info = cycle.info
        hours = soak_hours_for(self.soak_hours, info.get("soak_hours_override"))
        stage = cycle.read_record(cycle.paths.stage_file(self.environment, "stage.json"))
        finished = dt.datetime.fromisoformat(stage["finished_at"])
        until = finished + dt.timedelta(hours=hours)
        log.record(
            "soak.started",
            target=self.environment,
            configured_hours=self.soak_hours,
            hours=hours,
            until=until.isoformat(),
            override_reason=info.get("soak_override_reason")
            if info.get("soak_hours_override") is not None
            else None,
        )
        if until <= utcnow():
            return self.resume(cycle, {"status": "elapsed", "until": until.isoformat()}, self._complete)
        return self.wait_until(cycle, until, kwargs={"until": until.isoformat()})

    def execute_complete(self, context: Any, event: Any = None, until: str | None = None) -> Any:
        """Resume when the soak has elapsed: record it and return ``soaked_until``."""
        return self.resume(context, {"status": "elapsed", "until": until}, self._complete)

    def _complete(self, cycle: CycleContext, event: dict[str, Any], log: EventLog) -> dict[str, Any]:
        if event.get("status") != "elapsed":
            raise AirflowFailException(f"unexpected soak event: {event}")
        log.record("soak.completed", target=self.environment, until=event.get("until"))
        return {"soaked_until": event.get("until")}
