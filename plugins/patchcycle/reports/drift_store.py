"""The daily drift reports in a tenant's evidence store: their layout, their chain, and reading them back.
The same daily chain, under another prefix, keeps the Falcon roll-out's packs (``falcon-rollout/``).

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


class DailyPaths:
    """Keys of one run's evidence in a daily chain (``<prefix><day>/runs/<run>/``), under the day it
    reports."""

    def __init__(self, day: str, run_id: str, prefix: str = PREFIX) -> None:
        self.day = f"{prefix}{day}"
        self.run = f"{self.day}/runs/{safe_run_segment(run_id)}"

    def pack(self, name: str = "") -> str:
        """Key of a file of the run's first pack (``pack/<name>``)."""
        return f"{self.run}/pack/{name}"

    def file(self, name: str) -> str:
        """Key of a working record of the run (``records/<name>``), beside its pack and events."""
        return f"{self.run}/records/{name}"

    def events(self, task_id: str, try_number: int) -> str:
        """Key of one task attempt's event log."""
        return f"{self.run}/events/{task_id}.try-{try_number}.json"

    @property
    def events_prefix(self) -> str:
        """Prefix of every event log of the run."""
        return f"{self.run}/events/"

    @property
    def alert(self) -> str:
        """The marker that the day's mail to the SREs went out (one mail per day, whatever the runs)."""
        return f"{self.day}/alerts/sre.json"


def free_pack(store: _Store, paths: DailyPaths, attempt: int) -> str:
    """Where a run's pack goes: ``pack`` on the first attempt; a retry writes beside it, never over it."""
    base = paths.pack().rstrip("/")
    return base if not store.keys(f"{base}/") else f"{base}-try{attempt}"


DriftPaths = DailyPaths
"""Keys of one drift run's evidence (``drift/<day>/runs/<run>/``)."""


def _manifests_by_day(store: _Store, prefix: str = PREFIX) -> dict[str, list[str]]:
    days: dict[str, list[str]] = {}
    for key in store.keys(prefix):
        parts = key[len(prefix) :].split("/")
        if key.endswith(f"/{MANIFEST_NAME}") and len(parts) >= 5 and parts[3].startswith("pack"):
            days.setdefault(parts[0], []).append(key)
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


def previous_manifest_sha256(store: _Store, day: str, prefix: str = PREFIX) -> str | None:
    """The chain link of a pack of ``day`` in the daily chain under ``prefix`` (drift reports unless
    told): the digest of the latest pack of the most recent earlier day, or None for the first."""
    earlier = {d: keys for d, keys in _manifests_by_day(store, prefix).items() if d < day}
    if not earlier:
        return None
    return sha256_hex(_latest(store, earlier[max(earlier)])[1])


def latest_reports(
    store: _Store, first: dt.date, last: dt.date, prefix: str = PREFIX, report_name: str = REPORT_NAME
) -> dict[dt.date, dict[str, Any]]:
    """The report (``drift.json`` unless told) of the latest pack of each day from ``first`` to ``last``
    that has one."""
    found: dict[dt.date, dict[str, Any]] = {}
    for day, manifests in _manifests_by_day(store, prefix).items():
        try:
            when = dt.date.fromisoformat(day)
        except ValueError:
            continue
        if first <= when <= last:
            key, _ = _latest(store, manifests)
            found[when] = json.loads(store.get_bytes(key.rsplit("/", 1)[0] + f"/{report_name}"))
    return found


def latest_report(
    store: _Store, on_or_before: dt.date, prefix: str = PREFIX, report_name: str = REPORT_NAME
) -> dict[str, Any] | None:
    """The report of the latest pack of a day on or before ``on_or_before`` (drift unless told)."""
    days = sorted(d for d in _manifests_by_day(store, prefix) if d <= on_or_before.isoformat())
    if not days:
        return None
    day = dt.date.fromisoformat(days[-1])
    return latest_reports(store, day, day, prefix, report_name).get(day)
