"""The zero-day cycle's own tasks: its plan (the cycle's plan task with another source: only the fixes of
its CVEs, whatever their age, under the tenant's emergency soak and change-window policy) and the wait
that keeps it from overlapping a running monthly cycle of the same tenant.

Its CVEs come from the trigger form (``cve_ids`` and a ``justification``) or from the KEV asset events
that started it (the daily feed refresh lists the new KEV CVEs affecting the tenant in each event's
extra). Everything after the plan is the monthly cycle's own tasks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from patchcycle.domain.run_conf import conf_problems, cycle_date_problem
from patchcycle.domain.zero_day import (
    ZERO_DAY_PARAMS,
    cve_problems,
    emergency_facts,
    emergency_policy,
)
from patchcycle.operators.plan import PlanContext, PlanCycleOperator, run_params_problems

MANUAL = "manual"
KEV_ASSET_EVENT = "kev_asset_event"


@dataclass(frozen=True)
class ZeroDayRequest:
    """What a zero-day run was started for: its CVEs, why, and by what (a person, or KEV asset events)."""

    cves: tuple[str, ...]
    given: tuple[Any, ...]  # the trigger form's cve_ids as given (checked for format and repeats)
    justification: str | None
    trigger: str
    events: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """As the run's facts and the evidence record it."""
        return {
            "cve_ids": list(self.cves),
            "justification": self.justification,
            "trigger": self.trigger,
            "asset_events": list(self.events),
        }


def zero_day_request(
    params: Mapping[str, Any], triggering: Mapping[Any, Sequence[Any]] | None
) -> ZeroDayRequest:
    """The request of a run from its params and the asset events that triggered it (Airflow's
    ``triggering_asset_events``: per asset, events with ``extra``, ``source_dag_id``, ``source_run_id``
    and ``timestamp``)."""
    given = tuple(params.get("cve_ids") or ())
    cves = [str(c) for c in given]
    events = []
    for asset_events in (triggering or {}).values():
        for event in asset_events:
            extra = dict(getattr(event, "extra", None) or {})
            when = getattr(event, "timestamp", None)
            source = (getattr(event, "source_dag_id", None), getattr(event, "source_run_id", None))
            events.append(
                {
                    "source": "/".join(str(part) for part in source),
                    "at": when.isoformat() if isinstance(when, dt.datetime) else None,
                    "extra": extra,
                }
            )
            cves.extend(str(c) for c in extra.get("cve_ids") or ())
    justification = (params.get("justification") or "").strip() or None
    trigger = KEV_ASSET_EVENT if events else MANUAL
    if justification is None and events:
        versions = sorted({str(e["extra"].get("kev_catalog_version")) for e in events})
        justification = (
            f"CISA KEV catalog {', '.join(versions)} lists {', '.join(sorted(set(cves)))}, affecting the "
            "tenant's OS families (KEV asset event of the daily feed refresh)"
        )
    return ZeroDayRequest(tuple(sorted(set(cves))), given, justification, trigger, tuple(events))


class ZeroDayPlanOperator(PlanCycleOperator):
    """The zero-day cycle's plan: the cycle's plan task, planning only the fixes of the run's CVEs
    (frozen and hashed as usual, each with the reason), under the tenant's emergency overrides."""

    def request(self, cycle: PlanContext) -> ZeroDayRequest:
        """This run's CVEs, justification and trigger."""
        return zero_day_request(cycle.params, cycle.airflow.get("triggering_asset_events"))

    def zero_day_cves(self, cycle: PlanContext) -> tuple[str, ...] | None:
        """The run's CVEs: only their fixes are planned."""
        return self.request(cycle).cves

    def run_params(self, cycle: PlanContext) -> Mapping[str, Any]:
        """The run's params with the tenant's emergency soak and change-window policy as its overrides."""
        zero_day = self.tenant.risk.zero_day
        if zero_day is None:
            return cycle.params
        return {**cycle.params, **emergency_facts(zero_day, self.request(cycle).cves)}

    def run_extras(self, cycle: PlanContext) -> dict[str, Any]:
        """The zero-day facts the evidence keeps: the request and the emergency policy with its approver."""
        zero_day = self.tenant.risk.zero_day
        return {
            "kind": "zero_day",
            "zero_day": {
                **self.request(cycle).to_dict(),
                "policy": emergency_policy(zero_day) if zero_day is not None else None,
            },
        }

    def _run_scope(self, cycle: PlanContext) -> tuple[dt.date, list[str], list[str]]:
        """The run's date (a zero-day cycle is planned as of the day it runs), its environments, and why it
        must be refused: a conf key it does not take, no or malformed CVE ids, a run by hand without a
        justification, a tenant without an emergency policy, a date before onboarding."""
        params, dag_run, tenant = cycle.params, cycle.dag_run, self.tenant
        request = self.request(cycle)
        problems = conf_problems(getattr(dag_run, "conf", None), ZERO_DAY_PARAMS, dag=self.dag_id)
        environments, param_problems = run_params_problems(
            params, [e.name.value for e in tenant.environments]
        )
        problems += param_problems
        problems += cve_problems(list(request.given)) if request.trigger == MANUAL else []
        problems += [] if request.cves else ["no CVE to plan: give cve_ids, or start from a KEV asset event"]
        if request.trigger == MANUAL and not request.justification:
            problems.append("params.justification: a zero-day cycle started by hand needs a justification")
        if tenant.risk.zero_day is None:
            problems.append(
                f"tenant {tenant.id} declares no risk.zero_day policy (emergency soak and window)"
            )
        moment = cycle.airflow.get("logical_date") or dag_run.run_after
        cycle_date = moment.astimezone(dt.UTC).date()
        if problem := cycle_date_problem(cycle_date, now=dag_run.run_after, onboarded_on=tenant.onboarded_on):
            problems.append(problem)
        cycle.cycle_date = cycle_date
        return cycle_date, ([] if problems else environments), list(dict.fromkeys(problems))
