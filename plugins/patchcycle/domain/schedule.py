"""When cycles happen: the fourth Sunday of each month at 02:00 UTC, and which cycle a run belongs to."""

from __future__ import annotations

import datetime as dt

from croniter import croniter

# Standard cron cannot say "fourth Sunday" ("0 2 22-28 * 0" fires every Sunday *or* day 22-28);
# croniter's nth-weekday syntax, which Airflow 3.3 uses, can.
CYCLE_CRON = "0 2 * * SUN#4"


def most_recent_cycle_date(now: dt.datetime) -> dt.date:
    """The latest scheduled cycle date at or before ``now`` (an aware datetime)."""
    # Whole seconds: croniter's get_prev is strictly-before, so flooring then adding one second makes a
    # fire time exactly at ``now`` count, and one a fraction of a second after ``now`` not.
    start = now.astimezone(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
    previous: dt.datetime = croniter(CYCLE_CRON, start).get_prev(dt.datetime)
    return previous.date()


def resolve_cycle_date(
    *, requested: str | None, logical_date: dt.datetime | None, run_after: dt.datetime
) -> dt.date:
    """The date a run plans as of: the requested date, else the cycle of the run's logical date, else the
    latest cycle.

    Scheduled and backfilled runs carry the cycle's logical date (a fourth Sunday). A run triggered from
    the UI carries the moment it was triggered (a Thursday, say): it plans the latest cycle on or
    before that day, never the trigger's own day. Runs triggered through the API may carry no logical
    date, and then the most recent scheduled cycle at the time the run was created is used.
    """
    if requested:
        try:
            return dt.date.fromisoformat(requested)
        except ValueError as exc:
            raise ValueError(f"params.cycle_date: {requested!r} is not a date (YYYY-MM-DD)") from exc
    if logical_date is not None:
        day = logical_date.astimezone(dt.UTC).date()
        return most_recent_cycle_date(dt.datetime.combine(day, dt.time(23, 59, 59), dt.UTC))
    return most_recent_cycle_date(run_after)
