"""The health gate after a stage: Dynatrace must show no new problem on the stage's hosts or services
and an error rate within the tenant's tolerance of the pre-patch baseline, for the whole watch period.

The baseline is the stage services' error rate over ``health.baseline_minutes`` before the stage's
backups began (before anything was touched). The watch defers to the triggerer; an unhealthy look ends
it at once and fails the task, so the tenant's later stages do not start (and the incident pages).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from patchcycle.operators.base import CycleContext, CycleOperator, EventLog, WaitArguments, utcnow
from patchcycle.triggers import checks


def selectors(tenant_id: str, environment: str) -> tuple[str, str]:
    """Dynatrace entity selectors for a stage's hosts and its services (by the tags Patchcycle expects)."""
    tags = f'tag("tenant:{tenant_id}"),tag("environment:{environment}")'
    return f'type("HOST"),{tags}', f'type("SERVICE"),{tags}'


class HealthGateOperator(WaitArguments, CycleOperator):
    """Watch a patched stage in Dynatrace before the next stage may start."""

    template_fields: Sequence[str] = ("tenant_id", "environment")

    def __init__(
        self,
        *,
        environment: str,
        batch: str | None = None,
        deferrable: bool = True,
        waiter_delay: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.batch = batch
        # The watch's length is the tenant's (health.watch_minutes): the attempts follow from the delay.
        self.set_wait_arguments(deferrable, waiter_delay, 0)

    def run(self, cycle: CycleContext, log: EventLog) -> Any:
        """Read the services' baseline error rate over ``health.baseline_minutes`` before the batch began,
        then watch its hosts and services (deferred) for ``health.watch_minutes`` from its end, or from
        now if later; skipped when the stage is not part of the run."""
        from patchcycle.hooks.dynatrace import DynatraceHook

        cycle.stage_info(str(self.environment))
        policy = self.tenant.health
        stage = cycle.read_record(cycle.batch_file(self.environment, self.batch, "stage.json"))
        started = dt.datetime.fromisoformat(stage["started_at"])
        ended = dt.datetime.fromisoformat(stage["finished_at"])
        host_selector, service_selector = selectors(self.tenant_id, self.environment)
        conn_id = self.tenant.dynatrace_connection_id()
        baseline = DynatraceHook(dynatrace_conn_id=conn_id).metric_average(
            checks.ERROR_RATE_METRIC,
            service_selector,
            started - timedelta(minutes=policy.baseline_minutes),
            started,
        )
        watch_until = max(utcnow(), ended) + timedelta(minutes=policy.watch_minutes)
        payload = {
            "conn_id": conn_id,
            "host_selector": host_selector,
            "service_selector": service_selector,
            "stage_started_at": started.isoformat(),
            "stage_ended_at": ended.isoformat(),
            "baseline_rate": baseline,
            "tolerance": self.tenant.environment(self.environment).health_error_rate_tolerance,
            "require_data": policy.require_data,
            "watch_until": watch_until.isoformat(),
        }
        log.record(
            "health.watch_started",
            target=self.environment,
            baseline_rate=baseline,
            tolerance=payload["tolerance"],
            watch_until=payload["watch_until"],
        )
        answer = checks.health(payload)
        if answer["done"]:
            return self.resume(cycle, {**answer, "status": "done"}, self._complete)
        return self.wait_for(
            cycle, "health", payload, max_attempts=int(policy.watch_minutes * 60 / self.delay) + 3
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Resume after the watch: write the batch's ``health.json``, and fail the task when the stage was
        unhealthy or the watch timed out; else return ``healthy``."""
        return self.resume(context, event, self._complete)

    def _complete(self, cycle: CycleContext, event: dict[str, Any], log: EventLog) -> dict[str, Any]:
        if event.get("status") == "timeout":
            event = {
                **event,
                "healthy": False,
                "reasons": [*event.get("reasons", []), "the health watch timed out"],
            }
        elif event.get("status") != "done":
            raise AirflowFailException(f"unexpected trigger event: {event}")
        record = {
            "environment": self.environment,
            "batch": self.batch,
            "healthy": event["healthy"],
            "reasons": event.get("reasons", []),
            "current_rate": event.get("current_rate"),
            "problems": event.get("problems", []),
            "checked_at": event.get("checked_at"),
        }
        cycle.write_record(cycle.batch_file(self.environment, self.batch, "health.json"), record)
        log.record(
            "health.checked",
            target=self.environment,
            batch=self.batch,
            result="healthy" if event["healthy"] else "unhealthy",
            reasons=record["reasons"],
            problems=record["problems"],
            current_rate=record["current_rate"],
        )
        if not event["healthy"]:
            after = f"the canary of {self.environment}" if self.batch == "canary" else self.environment
            raise AirflowFailException(
                f"health gate after {after} of {self.tenant_id}: " + "; ".join(record["reasons"])
            )
        return {"healthy": True, "reasons": record["reasons"]}
