"""Page on what failed, once: one PagerDuty incident per tenant, cycle and failed step, resolved when a
re-run of the same cycle gets the step through.

Runs after the stages whatever their outcome. The dedup key (``patchcycle/<tenant>/<cycle>/<step>``)
makes every retry or re-run of the same cycle update the same incident instead of paging again.
Steps: ``plan`` (the plan task did not finish), ``inventory`` (a scope could not be read),
``preflight`` (the scope halted), each environment (its stage failed). Hosts the pre-flight held are
one warning per cycle (``preflight-held``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from patchcycle.domain import outcomes
from patchcycle.domain.incidents import incident_details, incident_key, incident_summary
from patchcycle.operators.base import CycleContext, CycleOperator, EventLog


class IncidentsOperator(CycleOperator):
    """Trigger or resolve the cycle's incidents from what its steps recorded."""

    after_the_run = True

    def run(self, cycle: CycleContext, log: EventLog) -> dict[str, Any]:
        """Trigger an incident for each step that failed and resolve those of steps that went through;
        nothing when the tenant has no incident routing or the run is a dry run. Return the steps paged
        and resolved."""
        conn_id = self.tenant.pagerduty_connection_id()
        if conn_id is None:
            return {"paged": [], "resolved": [], "note": "tenant has no incident routing"}
        from patchcycle.hooks.pagerduty import PagerDutyEventsHook

        info = cycle.info
        if info["dry_run"]:
            return {"paged": [], "resolved": [], "note": "dry run"}
        hook = PagerDutyEventsHook(pagerduty_conn_id=conn_id)
        cycle_date = dt.date.fromisoformat(info["cycle_date"])
        paged, resolved = [], []
        for step, failure in self._steps(cycle, info).items():
            key = incident_key(self.tenant_id, cycle_date, step)
            if failure is None:
                hook.resolve(key)
                resolved.append(step)
                log.record("incident.resolved", target=key, step=step)
                continue
            reason, hosts, severity = failure
            hook.trigger(
                dedup_key=key,
                summary=incident_summary(self.tenant.display_name, cycle_date, step, reason, hosts),
                source=f"patchcycle/{self.tenant_id}",
                severity=severity,
                component=step,
                group=self.tenant_id,
                custom_details=incident_details(
                    tenant_id=self.tenant_id,
                    cycle_date=cycle_date,
                    stage=step,
                    reason=reason,
                    failing_hosts=hosts,
                    dag_run_id=cycle.run_id,
                    plan_hash=info["plan_hash"],
                    runbook_url=self.tenant.incident_runbook_url,
                ),
                links=[{"href": self.tenant.incident_runbook_url, "text": "Runbook"}]
                if self.tenant.incident_runbook_url
                else None,
            )
            paged.append(step)
            log.record(
                "incident.triggered", target=key, result=severity, step=step, hosts=len(hosts), reason=reason
            )
        return {"paged": paged, "resolved": resolved}

    def _steps(
        self, cycle: CycleContext, info: dict[str, Any]
    ) -> dict[str, tuple[str, list[str], str] | None]:
        """Each step's failure (reason, failing hosts, severity), or None when it went through."""
        paths = cycle.paths
        inventory = {
            r["host_id"]: r for r in cycle.read_record(paths.run_file("inventory.json"), required=False) or []
        }
        name = {h: (r.get("name") or h) for h, r in inventory.items()}
        steps: dict[str, tuple[str, list[str], str] | None] = {}
        if info.get("unplanned"):
            steps["plan"] = (info["unplanned"], [], "error")
            return steps  # nothing after the plan ran
        steps["plan"] = None  # planned: an earlier run's plan incident of this cycle is resolved
        scopes = cycle.read_record(paths.run_file("scopes.json"), required=False) or []
        failed_scopes = [s for s in scopes if s["status"] == "failed"]
        steps["inventory"] = (
            (
                "scopes not inventoried: "
                + "; ".join(f"{s['scope']}: {s.get('error')}" for s in failed_scopes),
                [],
                "error",
            )
            if failed_scopes
            else None
        )
        preflight = cycle.read_record(paths.run_file("preflight.json"), required=False)
        if preflight is None:
            return steps  # nothing later ran; the inventory step (or the task logs) say why
        held = [d for d in preflight["decisions"] if d["verdict"] == "held"]
        steps["preflight"] = (
            (
                f"scope halted: {preflight['held_share']:.0%} of in-scope hosts held",
                [name.get(d["host_id"], d["host_id"]) for d in held],
                "critical",
            )
            if preflight.get("halted")
            else None
        )
        steps["preflight-held"] = (
            (
                f"{len(held)} host(s) held by the pre-flight gates",
                [name.get(d["host_id"], d["host_id"]) for d in held],
                "warning",
            )
            if held and not preflight.get("halted")
            else None
        )
        for env in info["environments"]:
            stage = cycle.stage_record(env)
            if stage is None:
                continue  # the stage did not run (an earlier one failed): that one pages
            if stage["status"] == "failed":
                failing = [
                    name.get(h, h)
                    for h, e in stage["hosts"].items()
                    if e["final_state"] in (outcomes.FAILED, outcomes.NON_COMPLIANT, outcomes.NOT_RUN)
                ]
                if stage.get("health") and not stage["health"]["healthy"]:
                    failing = []  # every host installed; the environment is what is unhealthy
                steps[env] = (
                    stage.get("reason") or "stage failed",
                    failing,
                    "critical" if env == "prod" else "error",
                )
            else:
                steps[env] = None
        return steps
