"""What a trigger's conf may hold, checked before a run changes anything.

Airflow validates each declared parameter against its JSON Schema, but it merges any other key of a
trigger's conf into the run's params unchecked: ``{"dryrun": true}`` (for ``dry_run``) would start a
real cycle. The first task of each DAG calls :func:`conf_problems` and refuses the run, naming every
problem, before its first change. Pure and free of Airflow.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from croniter import croniter

from patchcycle.domain.plan import FULL
from patchcycle.domain.schedule import CYCLE_CRON

CYCLE_PARAMS = (
    "environments",
    "dry_run",
    "cycle_date",
    "soak_hours_override",
    "soak_override_reason",
    "window_override_reason",
)
"""The keys a cycle's trigger may carry (its trigger form: ``patchcycle.dag_factory.cycle_params``)."""

ROLLBACK_PARAMS = ("cycle", "hosts", "reason")
"""The keys a rollback's trigger may carry (``patchcycle.rollback_dag.rollback_params``)."""

DEFAULT_LOOKBACK_DAYS = 400
"""Without an onboarding date, how far back a cycle date may go: a year of missed cycles and a margin."""


def conf_problems(conf: Mapping[str, Any] | None, allowed: Collection[str], *, dag: str) -> list[str]:
    """Every problem with a trigger's ``conf``: keys the DAG does not take, and non-finite numbers.

    An unknown key names its closest allowed key, since it is most often a typo of one.
    """
    problems: list[str] = []
    for key in sorted(str(k) for k in (conf or {})):
        if key in allowed:
            continue
        near = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        listed = ", ".join(allowed)
        problems.append(f"conf key {key!r} is not a parameter of {dag} (it takes {listed}){hint}")
    for where, value in _numbers(conf or {}, "conf"):
        if not math.isfinite(value):
            problems.append(f"{where} is {value!r}; give a finite number")
    return problems


def _numbers(value: Any, where: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, float):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _numbers(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{where}[{index}]")


def cycle_date_problem(
    cycle_date: dt.date, *, now: dt.datetime, onboarded_on: dt.date | None, what: str = "cycle date"
) -> str | None:
    """Why ``cycle_date`` cannot be planned at ``now``, or None.

    Not after the next scheduled cycle (a date further ahead would approve every patch released until
    then, none of which a person has seen), and not before the tenant was onboarded (or, without an
    onboarding date, more than :data:`DEFAULT_LOOKBACK_DAYS` days back).
    """
    upcoming = croniter(CYCLE_CRON, now.astimezone(dt.UTC)).get_next(dt.datetime).date()
    if cycle_date > upcoming:
        return (
            f"{what} {cycle_date.isoformat()} is after the next scheduled cycle ({upcoming.isoformat()}); "
            "a cycle cannot be planned ahead of its time"
        )
    if onboarded_on is not None:
        if cycle_date < onboarded_on:
            return (
                f"{what} {cycle_date.isoformat()} is before the tenant was onboarded "
                f"({onboarded_on.isoformat()}, the tenant file's onboarded_on)"
            )
        return None
    earliest = now.astimezone(dt.UTC).date() - dt.timedelta(days=DEFAULT_LOOKBACK_DAYS)
    if cycle_date < earliest:
        return (
            f"{what} {cycle_date.isoformat()} is more than {DEFAULT_LOOKBACK_DAYS} days back "
            f"(earliest {earliest.isoformat()}); set the tenant's onboarded_on to go further back"
        )
    return None


def late_scheduled_run_problem(
    *,
    run_type: str,
    scheduled_for: dt.datetime | None,
    started_at: dt.datetime | None,
    late_after: dt.timedelta,
    dag_id: str,
    cycle_date: dt.date,
) -> str | None:
    """Why a scheduled run is too late to patch without a person asking for it, or None.

    Airflow creates the latest missed scheduled run as soon as a paused DAG is unpaused (with catchup
    off, ``CronTriggerTimetable.next_dagrun_info`` takes the latest cron point before now), and after a
    scheduler outage. Such a run would patch every environment with the default soak, weeks after its
    fourth Sunday, with nobody expecting it. Only scheduled runs are judged: a run triggered by a person
    or a backfill is a decision. ``started_at`` is when the run started (fixed for the run, so a retry
    judges the same way).
    """
    if run_type != "scheduled" or scheduled_for is None or started_at is None:
        return None
    late = started_at - scheduled_for
    if late <= late_after:
        return None
    day = cycle_date.isoformat()
    return (
        f"scheduled run for the {day} cycle started {_duration(late)} after its scheduled time "
        f"({scheduled_for.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC; late after {_duration(late_after)}): "
        "an unpaused DAG or a scheduler that was down creates such a run. To patch this cycle on "
        f"purpose, trigger {dag_id} with cycle_date {day}, or backfill it "
        f"(airflow backfill create --dag-id {dag_id} --from-date {day} --to-date {day}); "
        "to patch late scheduled runs without asking, set schedule.patch_late_runs in the tenant file"
    )


def _duration(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"


def run_info(
    *,
    cycle_date: str,
    plan_hash: str,
    plan_url: str,
    install_list_urls: Mapping[str, str] | None = None,
    approved_patches: int = 0,
    environments: list[str] | None = None,
    params: Mapping[str, Any] | None = None,
    refused: list[str] | None = None,
    unplanned: str | None = None,
) -> dict[str, Any]:
    """The run's facts every later task reads (the plan task's XCom and its ``plan-info`` record).

    A frozen plan gives its hash, URLs, the environments the run covers and the run's params (dry run,
    overrides with their reasons). A refused run (``refused``: why) and a run whose plan never finished
    (``unplanned``: why) carry an empty plan: no environment, no install list, not a dry run, so the
    tasks after the stages record what happened and patch nothing.
    """
    params = params or {}
    urls = dict(install_list_urls or {})
    info: dict[str, Any] = {
        "cycle_date": cycle_date,
        "plan_hash": plan_hash,
        "plan_url": plan_url,
        "install_list_url": urls.get(FULL),
        "install_list_urls": urls,
        "approved_patches": approved_patches,
        "environments": list(environments or []),
        "dry_run": bool(params.get("dry_run")),
        "soak_hours_override": params.get("soak_hours_override"),
        "soak_override_reason": params.get("soak_override_reason"),
        "window_override_reason": (params.get("window_override_reason") or "").strip() or None,
    }
    if refused is not None:
        info["refused"] = list(refused)
    if unplanned is not None:
        info["unplanned"] = unplanned
    return info
