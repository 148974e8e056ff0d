"""Cycle dates: the fourth Sunday of each month at 02:00 UTC, and which date a run plans as of.

Expected dates are computed here by plain calendar arithmetic, independently of croniter.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from patchcycle.domain.schedule import CYCLE_CRON, most_recent_cycle_date, resolve_cycle_date

UTC = dt.UTC
SECOND = dt.timedelta(seconds=1)


def fourth_sunday(year: int, month: int) -> dt.date:
    """The fourth Sunday of a month, by hand: the first Sunday is within days 1-7, then three weeks on."""
    first = dt.date(year, month, 1)
    first_sunday = 1 + (6 - first.weekday()) % 7  # weekday(): Monday=0 ... Sunday=6
    return dt.date(year, month, first_sunday + 21)


def previous_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def cycle_instant(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)


def test_hand_arithmetic_is_itself_right():
    # Anchors checked against a calendar, so the oracle the other tests use can be trusted.
    assert fourth_sunday(2026, 3) == dt.date(2026, 3, 22)  # 1 March 2026 is a Sunday
    assert fourth_sunday(2025, 12) == dt.date(2025, 12, 28)  # 1 December 2025 is a Monday
    assert fourth_sunday(2028, 2) == dt.date(2028, 2, 27)
    for year, month in [(2026, 3), (2025, 12), (2028, 2), (2024, 9)]:
        day = fourth_sunday(year, month)
        assert day.weekday() == 6 and 22 <= day.day <= 28


def test_cycle_cron_is_the_fourth_sunday_at_two():
    assert CYCLE_CRON == "0 2 * * SUN#4"


@pytest.mark.parametrize(
    ("year", "month"),
    [pytest.param(y, m, id=f"{y}-{m:02d}") for y in range(2024, 2031) for m in range(1, 13)],
)
def test_most_recent_cycle_date_matches_hand_arithmetic_every_month(year, month):
    day = fourth_sunday(year, month)
    at = cycle_instant(day)
    assert most_recent_cycle_date(at) == day
    assert most_recent_cycle_date(at + SECOND) == day
    assert most_recent_cycle_date(at - SECOND) == fourth_sunday(*previous_month(year, month))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # On the cycle instant itself: that cycle.
        pytest.param(dt.datetime(2025, 3, 23, 2, 0, 0, tzinfo=UTC), dt.date(2025, 3, 23), id="at-instant"),
        pytest.param(dt.datetime(2025, 3, 23, 2, 0, 1, tzinfo=UTC), dt.date(2025, 3, 23), id="second-after"),
        pytest.param(
            dt.datetime(2025, 3, 23, 1, 59, 59, tzinfo=UTC), dt.date(2025, 2, 23), id="second-before"
        ),
        # A fraction of a second before the cycle is still before it.
        pytest.param(
            dt.datetime(2025, 3, 23, 1, 59, 59, 999_999, tzinfo=UTC),
            dt.date(2025, 2, 23),
            id="microsecond-before",
        ),
        pytest.param(
            dt.datetime(2025, 3, 23, 1, 59, 59, 500_000, tzinfo=UTC),
            dt.date(2025, 2, 23),
            id="half-second-before",
        ),
        pytest.param(
            dt.datetime(2025, 3, 23, 2, 0, 0, 1, tzinfo=UTC), dt.date(2025, 3, 23), id="microsecond-after"
        ),
        # Fourth Sunday on the 22nd (month starts on a Sunday) and on the 28th (month starts on a Monday).
        pytest.param(dt.datetime(2026, 3, 22, 2, 0, tzinfo=UTC), dt.date(2026, 3, 22), id="22nd-at"),
        pytest.param(dt.datetime(2026, 3, 22, 1, 59, 59, tzinfo=UTC), dt.date(2026, 2, 22), id="22nd-before"),
        pytest.param(dt.datetime(2026, 3, 28, 12, 0, tzinfo=UTC), dt.date(2026, 3, 22), id="22nd-not-28th"),
        pytest.param(dt.datetime(2025, 12, 28, 2, 0, tzinfo=UTC), dt.date(2025, 12, 28), id="28th-at"),
        pytest.param(
            dt.datetime(2025, 12, 28, 1, 59, 59, tzinfo=UTC), dt.date(2025, 11, 23), id="28th-before"
        ),
        pytest.param(dt.datetime(2025, 12, 22, 12, 0, tzinfo=UTC), dt.date(2025, 11, 23), id="28th-not-22nd"),
        # Year boundary: early January belongs to December's cycle.
        pytest.param(dt.datetime(2026, 1, 1, 0, 0, tzinfo=UTC), dt.date(2025, 12, 28), id="new-year"),
        pytest.param(dt.datetime(2026, 1, 25, 1, 59, 59, tzinfo=UTC), dt.date(2025, 12, 28), id="jan-before"),
        pytest.param(dt.datetime(2026, 1, 25, 2, 0, tzinfo=UTC), dt.date(2026, 1, 25), id="jan-at"),
        # Leap-year February 2028: the cycle is the 27th, and the 29th still belongs to it.
        pytest.param(dt.datetime(2028, 2, 27, 2, 0, tzinfo=UTC), dt.date(2028, 2, 27), id="feb-2028-at"),
        pytest.param(
            dt.datetime(2028, 2, 27, 1, 59, 59, tzinfo=UTC), dt.date(2028, 1, 23), id="feb-2028-before"
        ),
        pytest.param(
            dt.datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC), dt.date(2028, 2, 27), id="feb-29-2028"
        ),
        pytest.param(dt.datetime(2028, 3, 1, 0, 0, tzinfo=UTC), dt.date(2028, 2, 27), id="mar-1-2028"),
        # Other Sundays of the month are not cycles.
        pytest.param(dt.datetime(2025, 3, 16, 2, 0, tzinfo=UTC), dt.date(2025, 2, 23), id="third-sunday"),
        pytest.param(dt.datetime(2025, 3, 30, 2, 0, tzinfo=UTC), dt.date(2025, 3, 23), id="fifth-sunday"),
    ],
)
def test_most_recent_cycle_date(now, expected):
    assert most_recent_cycle_date(now) == expected
    assert expected == fourth_sunday(expected.year, expected.month)


def test_most_recent_cycle_date_converts_other_timezones_to_utc():
    new_york = ZoneInfo("America/New_York")
    # 22:00 EDT on Saturday 22 March 2025 is 02:00 UTC on the cycle Sunday.
    assert most_recent_cycle_date(dt.datetime(2025, 3, 22, 22, 0, tzinfo=new_york)) == dt.date(2025, 3, 23)
    assert most_recent_cycle_date(dt.datetime(2025, 3, 22, 21, 59, 59, tzinfo=new_york)) == dt.date(
        2025, 2, 23
    )
    # 01:00 in Tokyo on the cycle Sunday is still Saturday in UTC.
    tokyo = ZoneInfo("Asia/Tokyo")
    assert most_recent_cycle_date(dt.datetime(2025, 3, 23, 10, 59, tzinfo=tokyo)) == dt.date(2025, 2, 23)
    assert most_recent_cycle_date(dt.datetime(2025, 3, 23, 11, 0, tzinfo=tokyo)) == dt.date(2025, 3, 23)


# --- resolve_cycle_date: requested > logical_date > latest cycle -----------------------------------------

RUN_AFTER = dt.datetime(2026, 11, 30, 9, 15, tzinfo=UTC)  # latest cycle then: Sunday 22 November 2026
LOGICAL = dt.datetime(2026, 10, 25, 2, 0, tzinfo=UTC)  # a scheduled (or backfilled) October cycle


@pytest.mark.parametrize(
    ("requested", "logical_date", "expected"),
    [
        pytest.param("2026-09-27", LOGICAL, dt.date(2026, 9, 27), id="requested-beats-logical"),
        pytest.param("2026-09-27", None, dt.date(2026, 9, 27), id="requested-beats-latest"),
        pytest.param("2026-11-18", None, dt.date(2026, 11, 18), id="requested-need-not-be-a-cycle-sunday"),
        pytest.param(None, LOGICAL, dt.date(2026, 10, 25), id="logical-beats-latest"),
        pytest.param("", LOGICAL, dt.date(2026, 10, 25), id="empty-request-is-no-request"),
        pytest.param(None, None, dt.date(2026, 11, 22), id="latest-cycle"),
        pytest.param("", None, dt.date(2026, 11, 22), id="empty-request-latest-cycle"),
    ],
)
def test_resolve_cycle_date_precedence(requested, logical_date, expected):
    assert resolve_cycle_date(requested=requested, logical_date=logical_date, run_after=RUN_AFTER) == expected


def test_resolve_cycle_date_uses_the_utc_date_of_the_logical_date():
    eastern = ZoneInfo("America/New_York")
    logical = dt.datetime(2026, 10, 24, 22, 0, tzinfo=eastern)  # 02:00 UTC on 25 October
    assert resolve_cycle_date(requested=None, logical_date=logical, run_after=RUN_AFTER) == dt.date(
        2026, 10, 25
    )


@pytest.mark.parametrize(
    ("logical_date", "expected"),
    [
        pytest.param(dt.datetime(2026, 12, 3, 14, 5, tzinfo=UTC), dt.date(2026, 11, 22), id="ui-thursday"),
        pytest.param(
            dt.datetime(2026, 11, 22, 0, 0, tzinfo=UTC), dt.date(2026, 11, 22), id="cycle-day-early"
        ),
        pytest.param(dt.datetime(2026, 11, 21, 23, 59, tzinfo=UTC), dt.date(2026, 10, 25), id="day-before"),
        pytest.param(dt.datetime(2026, 11, 29, 2, 0, tzinfo=UTC), dt.date(2026, 11, 22), id="fifth-sunday"),
    ],
)
def test_resolve_cycle_date_of_a_triggered_run_is_the_cycle_of_its_day(logical_date, expected):
    """A run triggered from the UI with no cycle date carries its trigger time as logical date: it plans
    the latest fourth Sunday on or before that day, as the trigger form says."""
    assert resolve_cycle_date(requested=None, logical_date=logical_date, run_after=RUN_AFTER) == expected


def test_resolve_cycle_date_latest_cycle_is_taken_at_run_after():
    just_before = dt.datetime(2026, 11, 22, 1, 59, 59, tzinfo=UTC)
    assert resolve_cycle_date(requested=None, logical_date=None, run_after=just_before) == dt.date(
        2026, 10, 25
    )


@pytest.mark.parametrize("bad", ["2026-13-01", "2026-02-30", "27/09/2026", "next sunday", "2026-9-27"])
def test_resolve_cycle_date_rejects_a_bad_requested_date_naming_the_param(bad):
    with pytest.raises(ValueError) as caught:
        resolve_cycle_date(requested=bad, logical_date=LOGICAL, run_after=RUN_AFTER)
    message = str(caught.value)
    assert message.startswith("params.cycle_date: ")
    assert repr(bad) in message
    assert "YYYY-MM-DD" in message
    assert isinstance(caught.value.__cause__, ValueError)
