"""The cycle's risk and SLA section: every approved patch on every in-scope host, ranked and on a clock.

Per-host patch lists are not collected (the clouds report counts), so a host that was not patched is
taken to miss every patch the plan approved for its OS family: conservative, and never flattering.
A patched host resolved them on the cycle date.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any

from patchcycle.domain.risk import assess_patch_risk
from patchcycle.domain.sla import SlaPolicy, due_date, sla_status
from patchcycle.feeds import FeedSnapshot

SEVERITY_ORDER = ("Critical", "High", "Medium", "Low", "Unspecified")


FEED_MAX_AGE_DAYS = 7
"""A feed older than this on the cycle's date is stale: CISA adds KEV entries most weekdays, and FIRST
publishes EPSS scores daily, so a week-old snapshot may miss newly exploited CVEs."""


def feed_warnings(feeds: FeedSnapshot, as_of: dt.date, max_age_days: int = FEED_MAX_AGE_DAYS) -> list[str]:
    """Why the threat feeds the ranking used cannot be trusted as current on ``as_of``: each feed older
    than ``max_age_days`` (or with a date that cannot be read), said with its age."""
    dated = {
        "CISA KEV catalog": (
            feeds.kev.date_released or feeds.kev.catalog_version,
            "exploited CVEs listed since are not ranked as such",
        ),
        "EPSS scores": (feeds.epss.score_date, "the exploitation probabilities ranked by are out of date"),
    }
    warnings = []
    for name, (value, consequence) in dated.items():
        day = _feed_day(value)
        if day is None:
            warnings.append(f"{name}: no readable date ({value!r}); its age is unknown")
        elif (as_of - day).days > max_age_days:
            warnings.append(
                f"{name} of {day.isoformat()} is {(as_of - day).days} days older than the cycle "
                f"({as_of.isoformat()}): {consequence}"
            )
    return warnings


def _feed_day(value: Any) -> dt.date | None:
    text = str(value or "").strip().replace(".", "-")[:10]
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def kev_clock(
    cves: Iterable[str], released: dt.date, feeds: FeedSnapshot
) -> tuple[dt.date | None, str | None]:
    """The KEV deadline for a patch: CISA's remediation window, counted from when the fix was available.

    CISA's ``dueDate`` binds federal agencies; for a bank it is a yardstick. Its window
    (``dueDate - dateAdded``) is applied from the later of the listing and the patch's release, so a fix
    released after the listing is not overdue on the day it ships.
    """
    best: tuple[dt.date, str] | None = None
    for cve in cves:
        entry = feeds.kev.get(cve)
        if entry is None:
            continue
        window = entry.due_date - entry.date_added
        due = max(released, entry.date_added) + window
        if best is None or due < best[0]:
            best = (due, cve)
    return (best[0], best[1]) if best else (None, None)


def risk_and_sla(
    *,
    hosts: Iterable[Mapping[str, Any]],
    approved: Mapping[str, list[Mapping[str, Any]]],
    feeds: FeedSnapshot,
    frameworks: list[str],
    as_of: dt.date,
    policy: SlaPolicy | None = None,
    open_rows_limit: int = 5000,
) -> dict[str, Any]:
    """Rank each approved patch per in-scope host and put it on its SLA clock as of ``as_of``."""
    risk_cache: dict[tuple[str, str], Any] = {}
    due_cache: dict[str, tuple[dt.date, str, str | None]] = {}
    statuses: Counter[str] = Counter()
    overdue_by_severity: Counter[str] = Counter()
    by_priority: Counter[str] = Counter()
    open_rows: list[dict[str, Any]] = []
    for host in hosts:
        if host.get("final_state") in ("out_of_scope", None):
            continue
        resolved_on = as_of if host["final_state"] == "patched" else None
        for patch in approved.get(host.get("os_family") or "", []):
            key = (patch["id"], host.get("criticality") or "medium")
            if key not in risk_cache:
                risk_cache[key] = assess_patch_risk(
                    SimpleNamespace(id=patch["id"], severity=patch["severity"], cves=tuple(patch["cves"])),
                    key[1],
                    feeds,
                )
            risk = risk_cache[key]
            if patch["id"] not in due_cache:
                released = dt.date.fromisoformat(patch["released"])
                kev_due, kev_cve = kev_clock(patch["cves"], released, feeds)
                due = due_date(released, patch["severity"], frameworks, kev_due, policy)
                due_cache[patch["id"]] = (due.date, due.source, kev_cve)
            due_on, source, kev_cve = due_cache[patch["id"]]
            status = sla_status(due_on, resolved_on, as_of)
            statuses[status] += 1
            if resolved_on is None:
                by_priority[risk.priority] += 1
                if status == "overdue":
                    overdue_by_severity[patch["severity"]] += 1
                open_rows.append(
                    {
                        "host_id": host["host_id"],
                        "name": host.get("name"),
                        "environment": host.get("environment"),
                        "patch_id": patch["id"],
                        "severity": patch["severity"],
                        "priority": risk.priority,
                        "score": risk.score,
                        "kev": risk.kev,
                        "epss_percentile": risk.epss_percentile,
                        "due": due_on.isoformat(),
                        "due_source": source,
                        "status": status,
                        "days_overdue": max(0, (as_of - due_on).days),
                        "reasons": list(risk.reasons),
                    }
                )
    # Most urgent first, then cap: the rows kept are the ones that matter most.
    open_rows.sort(key=lambda r: (r["priority"], r["due"], r["name"] or "", r["patch_id"]))
    open_rows = open_rows[:open_rows_limit]
    return {
        "as_of": as_of.isoformat(),
        "feeds": {
            "kev_catalog_version": feeds.kev.catalog_version,
            "epss_model_version": feeds.epss.model_version,
            "epss_score_date": feeds.epss.score_date,
            "source": feeds.source,
            "warnings": feed_warnings(feeds, as_of),
        },
        "summary": {
            "by_status": dict(sorted(statuses.items())),
            "open_by_priority": dict(sorted(by_priority.items())),
            "overdue_by_severity": {s: overdue_by_severity.get(s, 0) for s in SEVERITY_ORDER[:4]},
            "open": sum(by_priority.values()),
        },
        "open": open_rows,
        "open_truncated": sum(by_priority.values()) > len(open_rows),
    }
