"""The daily drift reports in a tenant's evidence store: their layout, their chain, and reading them back.

Layout under ``drift/<YYYY-MM-DD>/`` (beside ``cycles/``, in the same write-once, locked bucket)::

    runs/<run>/pack/drift.json, summary.csv, manifest.json     the day's report (a retry: pack-try<n>/)
    runs/<run>/events/<task>.try-<n>.json                       the run's event log, one object per attempt
    alerts/sre.json                                             the SREs were mailed for the day

Drift packs form their own manifest chain, apart from the cycles' (each ``manifest.json`` names the
digest of the latest drift pack of the most recent earlier day): the two are written by different DAGs on
different cadences, and one chain per kind keeps each linear when a drift run and a cycle's evidence
task write at the same time. The manifest is the cycles' format (``reports/manifest.py``), its
``cycle_date`` the report's day.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Protocol

from patchcycle.reports.manifest import MANIFEST_NAME, sha256_hex
from patchcycle.reports.store import safe_run_segment

PREFIX = "drift/"
REPORT_NAME = "drift.json"
SUMMARY_NAME = "summary.csv"


class _Store(Protocol):
    def keys(self, prefix: str) -> list[str]: ...

    def get_bytes(self, key: str) -> bytes: ...


class DriftPaths:
    """Keys of one drift run's evidence, under the day it reports."""

    def __init__(self, day: str, run_id: str) -> None:
        self.day = f"{PREFIX}{day}"
        self.run = f"{self.day}/runs/{safe_run_segment(run_id)}"

    def pack(self, name: str = "") -> str:
        """Key of a file of the run's first pack (``pack/<name>``)."""
        return f"{self.run}/pack/{name}"

    def events(self, task_id: str, try_number: int) -> str:
        """Key of one task attempt's event log."""
        return f"{self.run}/events/{task_id}.try-{try_number}.json"

    @property
    def alert(self) -> str:
        """The marker that the day's mail to the SREs went out (one mail per day, whatever the runs)."""
        return f"{self.day}/alerts/sre.json"


def _manifests_by_day(store: _Store) -> dict[str, list[str]]:
    days: dict[str, list[str]] = {}
    for key in store.keys(PREFIX):
        parts = key.split("/")
        if key.endswith(f"/{MANIFEST_NAME}") and len(parts) >= 6 and parts[4].startswith("pack"):
            days.setdefault(parts[1], []).append(key)
    return days


def _latest(store: _Store, manifests: list[str]) -> tuple[str, bytes]:
    """The manifest its own ``created_at`` says was written last (key names do not sort by time)."""
    written = []
    for key in manifests:
        data = store.get_bytes(key)
        try:
            created_at = str(json.loads(data).get("created_at") or "")
        except (ValueError, AttributeError):
            created_at = ""
        written.append((created_at, key, data))
    _, key, data = max(written)
    return key, data


def previous_manifest_sha256(store: _Store, day: str) -> str | None:
    """The chain link of a drift pack of ``day``: the digest of the latest pack of the most recent
    earlier day, or None for the tenant's first drift report."""
    earlier = {d: keys for d, keys in _manifests_by_day(store).items() if d < day}
    if not earlier:
        return None
    return sha256_hex(_latest(store, earlier[max(earlier)])[1])


def latest_reports(store: _Store, first: dt.date, last: dt.date) -> dict[dt.date, dict[str, Any]]:
    """The ``drift.json`` of the latest pack of each day from ``first`` to ``last`` that has one."""
    found: dict[dt.date, dict[str, Any]] = {}
    for day, manifests in _manifests_by_day(store).items():
        try:
            when = dt.date.fromisoformat(day)
        except ValueError:
            continue
        if first <= when <= last:
            key, _ = _latest(store, manifests)
            found[when] = json.loads(store.get_bytes(key.rsplit("/", 1)[0] + f"/{REPORT_NAME}"))
    return found


def latest_report(store: _Store, on_or_before: dt.date) -> dict[str, Any] | None:
    """The ``drift.json`` of the tenant's latest drift report of a day on or before ``on_or_before``."""
    days = sorted(d for d in _manifests_by_day(store) if d <= on_or_before.isoformat())
    if not days:
        return None
    day = dt.date.fromisoformat(days[-1])
    return latest_reports(store, day, day).get(day)
