"""The prod change window as UTC instants, across daylight-saving changes and midnight."""

from __future__ import annotations

import datetime as dt

import pytest

from patchcycle.config.models import ChangeWindow
from patchcycle.domain.window import current_span, next_opening, window_gate

UTC = dt.UTC


def window(**kw) -> ChangeWindow:
    base = {"timezone": "America/New_York", "days": ["sun"], "start": "01:00", "end": "06:00"}
    return ChangeWindow.model_validate({**base, **kw})


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


def test_opening_in_standard_and_daylight_time_keeps_local_hours():
    nov = next_opening(window(), at("2026-11-20T12:00:00+00:00"))  # EST: UTC-5
    assert (nov.opens, nov.closes) == (at("2026-11-22T06:00:00+00:00"), at("2026-11-22T11:00:00+00:00"))
    jul = next_opening(window(), at("2026-07-20T12:00:00+00:00"))  # EDT: UTC-4
    assert (jul.opens, jul.closes) == (at("2026-07-26T05:00:00+00:00"), at("2026-07-26T10:00:00+00:00"))


def test_fall_back_night_is_an_hour_longer_in_utc():
    # 2026-11-01: clocks go from 02:00 EDT back to 01:00 EST; 01:00 happens twice, the first counts.
    span = next_opening(window(), at("2026-10-31T12:00:00+00:00"))
    assert span.opens == at("2026-11-01T05:00:00+00:00")  # 01:00 EDT, the first 01:00
    assert span.closes == at("2026-11-01T11:00:00+00:00")  # 06:00 EST
    assert span.closes - span.opens == dt.timedelta(hours=6)


def test_spring_forward_gap_start_is_shifted_forward():
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist on that night.
    w = window(start="02:30", end="05:00")
    span = next_opening(w, at("2026-03-07T12:00:00+00:00"))
    assert span.opens == at("2026-03-08T07:30:00+00:00")  # 03:30 EDT
    assert span.closes == at("2026-03-08T09:00:00+00:00")  # 05:00 EDT


def test_window_crossing_midnight_belongs_to_the_day_it_opens():
    w = window(days=["sat"], start="22:00", end="03:00", timezone="Europe/London")
    sunday_early = at("2026-11-22T02:30:00+00:00")
    span = current_span(w, sunday_early)
    assert span is not None and span.opens == at("2026-11-21T22:00:00+00:00")
    assert current_span(w, at("2026-11-22T03:00:00+00:00")) is None  # end is exclusive


def test_gate_waits_outside_the_window_and_starts_inside():
    outside = window_gate(window(), at("2026-11-22T04:00:00+00:00"))  # 23:00 EST Saturday
    assert not outside.may_start and outside.wait_until == at("2026-11-22T06:00:00+00:00")
    assert outside.reason.startswith("outside the change window; next opening 2026-11-22T06:00:00")
    inside = window_gate(window(), at("2026-11-22T06:00:00+00:00"))  # the opening instant itself
    assert inside.may_start and inside.closes_at == at("2026-11-22T11:00:00+00:00")


def test_no_new_batch_when_the_window_closes_before_it_could_finish():
    late = window_gate(window(), at("2026-11-22T10:30:00+00:00"), batch_minutes=45)
    assert not late.may_start
    assert late.wait_until == at("2026-11-29T06:00:00+00:00")  # next Sunday
    assert "closes at 2026-11-22T11:00:00+00:00, before a 45-minute batch could finish" in late.reason
    assert window_gate(window(), at("2026-11-22T10:30:00+00:00"), batch_minutes=30).may_start


def test_no_window_means_always_and_naive_times_are_refused():
    assert window_gate(None, at("2026-11-24T15:00:00+00:00")).may_start
    with pytest.raises(ValueError, match="timezone-aware"):
        next_opening(window(), dt.datetime(2026, 11, 22, 6, 0))
