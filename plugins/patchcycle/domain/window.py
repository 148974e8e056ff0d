"""The prod change window as time arithmetic: when it next opens, when the open one closes.

The window is written in the tenant's local time (``ChangeWindow``: days, start, end, IANA time zone).
All answers are timezone-aware UTC instants, computed day by day in local time and converted with
``zoneinfo``, so a window that spans a daylight-saving change keeps its local hours (and is an hour
shorter or longer in UTC that night). A local time skipped by a spring-forward is shifted forward by
the gap (02:30 becomes 03:30 daylight time); a local time repeated by a fall-back means its first
occurrence (PEP 495, ``fold=0``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from patchcycle.config.models import ChangeWindow

_SEARCH_DAYS = 8  # every weekly window opens within a week


@dataclass(frozen=True)
class WindowSpan:
    """One opening of the window: [opens, closes) in UTC."""

    opens: dt.datetime
    closes: dt.datetime

    def contains(self, moment: dt.datetime) -> bool:
        """Whether ``moment`` falls in this opening: at or after ``opens``, before ``closes``."""
        return self.opens <= moment < self.closes


def _local_instant(day: dt.date, clock: dt.time, window: ChangeWindow) -> dt.datetime:
    """The UTC instant of a local wall-clock time (gaps shifted forward, folds at their first occurrence)."""
    return dt.datetime.combine(day, clock).replace(tzinfo=window.zone, fold=0).astimezone(dt.UTC)


def spans_around(window: ChangeWindow, moment: dt.datetime) -> list[WindowSpan]:
    """Every opening of the window that starts within a week before or after ``moment``, in order."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    local_day = moment.astimezone(window.zone).date()
    days = {d.number for d in window.days}
    spans = []
    for offset in range(-_SEARCH_DAYS, _SEARCH_DAYS + 1):
        day = local_day + dt.timedelta(days=offset)
        if day.weekday() not in days:
            continue
        end_day = day + dt.timedelta(days=1) if window.crosses_midnight else day
        spans.append(
            WindowSpan(_local_instant(day, window.start, window), _local_instant(end_day, window.end, window))
        )
    return sorted(spans, key=lambda s: s.opens)


def current_span(window: ChangeWindow, moment: dt.datetime) -> WindowSpan | None:
    """The opening ``moment`` falls in, or None when the window is closed."""
    return next((s for s in spans_around(window, moment) if s.contains(moment)), None)


def next_opening(window: ChangeWindow, moment: dt.datetime) -> WindowSpan:
    """The opening in progress at ``moment``, else the next one to open."""
    for span in spans_around(window, moment):
        if span.contains(moment) or span.opens > moment:
            return span
    raise AssertionError("a weekly window opens within a week")  # pragma: no cover - days is non-empty


@dataclass(frozen=True)
class WindowDecision:
    """What the change-window gate says a prod batch may do at ``moment``."""

    may_start: bool
    wait_until: dt.datetime | None  # when to look again (the next opening) if it may not start
    closes_at: dt.datetime | None  # when the open window closes, if it is open
    reason: str


def window_gate(
    window: ChangeWindow | None, moment: dt.datetime, batch_minutes: float = 0.0
) -> WindowDecision:
    """May a new prod batch start now? Only inside an opening with ``batch_minutes`` still left in it.

    No window configured: always. Outside one: wait for the next opening. Inside one that closes
    before the batch could finish: not now, and the next opening is when to look again.
    """
    if window is None:
        return WindowDecision(True, None, None, "no change window configured")
    span = current_span(window, moment)
    if span is not None and moment + dt.timedelta(minutes=batch_minutes) <= span.closes:
        return WindowDecision(
            True, None, span.closes, f"inside the change window until {span.closes.isoformat()}"
        )
    later = moment + dt.timedelta(seconds=1)
    nxt = next_opening(window, span.closes if span else later)
    if span is not None:
        reason = (
            f"the change window closes at {span.closes.isoformat()}, before a {batch_minutes:g}-minute batch "
            f"could finish; next opening {nxt.opens.isoformat()}"
        )
    else:
        reason = f"outside the change window; next opening {nxt.opens.isoformat()}"
    return WindowDecision(False, nxt.opens, None, reason)
