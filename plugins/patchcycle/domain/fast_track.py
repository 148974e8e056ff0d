"""Risk drives the plan: which catalog patches skip the approve-after-days wait, and why.

A tenant's ``risk`` policy may fast-track a patch its baseline would approve but for its age: one of its
CVEs is on CISA's KEV list **as of the cycle date** (``dateAdded`` on or before it, so a backfilled cycle
plans as it would have on its date), or has an EPSS probability at or above the tenant's threshold in
scores dated on or before the cycle date. The plan records, per fast-tracked patch, the CVE, its KEV
``dateAdded`` or EPSS score and that score's date, and the feed versions it read, so the frozen plan and
its hash are reproducible from the same feeds.

A zero-day cycle selects instead: only the patches that fix the CVEs it was started for, whatever their
age.

Pure: the feeds and the cycle date are passed in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from patchcycle.feeds import FeedSnapshot, KevEntry

KEV = "kev"
EPSS = "epss"
ZERO_DAY = "zero_day"

AGE_WAIVED = "approved before its approve-after-days wait ended"
AGE_UNKNOWN = (
    "approved through the SSM baseline's ApprovedPatches (by CVE id); SSM publishes no release date for "
    "this family, so whether its age alone would have approved it is not known"
)


@dataclass(frozen=True)
class FastTrackPolicy:
    """The tenant's fast-track rule: KEV listings, and an EPSS threshold (None: EPSS is not used)."""

    kev: bool = False
    epss_at_least: float | None = None

    @property
    def enabled(self) -> bool:
        """Whether anything is fast-tracked."""
        return self.kev or self.epss_at_least is not None

    @classmethod
    def of(cls, risk: Any) -> FastTrackPolicy:
        """The policy of a tenant's ``risk`` section (:class:`patchcycle.config.risk.RiskPolicy`)."""
        return cls(kev=bool(risk.fast_track_kev), epss_at_least=risk.fast_track_epss_at_least)

    def to_dict(self) -> dict[str, Any]:
        """The policy as the plan records it."""
        return {"kev": self.kev, "epss_at_least": self.epss_at_least}


@dataclass(frozen=True)
class FeedVersions:
    """Which feeds a plan read: enough to read them again and get the same plan."""

    kev_catalog_version: str
    kev_date_released: str
    epss_model_version: str | None
    epss_score_date: str | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        """As recorded in the plan."""
        return asdict(self)


def feed_versions(feeds: FeedSnapshot) -> FeedVersions:
    """The versions of the feeds in ``feeds``."""
    return FeedVersions(
        kev_catalog_version=feeds.kev.catalog_version,
        kev_date_released=feeds.kev.date_released,
        epss_model_version=feeds.epss.model_version,
        epss_score_date=feeds.epss.score_date,
        source=feeds.source,
    )


@dataclass(frozen=True)
class FastTrack:
    """Why one patch was approved without its wait (or, in a zero-day cycle, why it was selected)."""

    cve: str
    basis: str  # KEV, EPSS or ZERO_DAY
    how: str = AGE_WAIVED
    kev_date_added: str | None = None
    kev_due_date: str | None = None
    epss: float | None = None
    epss_score_date: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """As the plan records it next to the patch (unset fields left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        """One line for the plan's summary."""
        if self.basis == KEV:
            return f"KEV {self.cve} (listed {self.kev_date_added}, CISA due {self.kev_due_date})"
        if self.basis == EPSS:
            return f"EPSS {self.cve} {self.epss:.3f} (scores of {self.epss_score_date})"
        return f"zero-day {self.cve}" + (
            f" (KEV listed {self.kev_date_added})" if self.kev_date_added else ""
        )


def score_day(value: str | None) -> dt.date | None:
    """The calendar day (UTC) of an EPSS ``score_date`` (``2025-09-03T12:55:00Z`` or ``2025-09-03``)."""
    try:
        return dt.date.fromisoformat(str(value or "")[:10])
    except ValueError:
        return None


def epss_usable(feeds: FeedSnapshot, cycle_date: dt.date) -> bool:
    """Whether the EPSS scores may decide for a cycle: dated on or before the cycle date.

    EPSS scores change daily and the feed carries only one day's; scores published after the cycle date
    are not what the cycle would have read on its date (a backfill), and scores without a date cannot be
    placed at all. The conservative reading: such scores fast-track nothing.
    """
    day = score_day(feeds.epss.score_date)
    return day is not None and day <= cycle_date


def kev_as_of(feeds: FeedSnapshot, cycle_date: dt.date) -> dict[str, KevEntry]:
    """The KEV entries listed on or before the cycle date, by CVE id."""
    return {cve: e for cve, e in feeds.kev.entries.items() if e.date_added <= cycle_date}


def fast_track_for(
    cves: Iterable[str], cycle_date: dt.date, feeds: FeedSnapshot, policy: FastTrackPolicy
) -> FastTrack | None:
    """The reason to fast-track a patch fixing ``cves``, or None.

    KEV first (the CVE listed earliest, then by id), then EPSS (the highest score, then by id): a known
    exploitation is the stronger reason, and the choice is deterministic so the plan hashes the same.
    """
    cves = sorted(set(cves))
    if policy.kev:
        listed = [e for c in cves if (e := feeds.kev.get(c)) is not None and e.date_added <= cycle_date]
        if listed:
            entry = min(listed, key=lambda e: (e.date_added, e.cve_id))
            return FastTrack(
                cve=entry.cve_id,
                basis=KEV,
                kev_date_added=entry.date_added.isoformat(),
                kev_due_date=entry.due_date.isoformat(),
            )
    threshold = policy.epss_at_least
    if threshold is not None and epss_usable(feeds, cycle_date):
        scored = [(s.epss, c) for c in cves if (s := feeds.epss.get(c)) is not None and s.epss >= threshold]
        if scored:
            score, cve = min(scored, key=lambda t: (-t[0], t[1]))
            return FastTrack(
                cve=cve,
                basis=EPSS,
                epss=score,
                epss_score_date=feeds.epss.score_date,
            )
    return None


def zero_day_reason(cves: Iterable[str], wanted: Iterable[str], feeds: FeedSnapshot) -> FastTrack | None:
    """Why a patch is in a zero-day plan: the first (by id) of the cycle's CVEs it fixes, or None."""
    fixed = sorted(set(cves) & set(wanted))
    if not fixed:
        return None
    entry = feeds.kev.get(fixed[0])
    return FastTrack(
        cve=fixed[0],
        basis=ZERO_DAY,
        how="selected by the zero-day cycle, whatever its age",
        kev_date_added=entry.date_added.isoformat() if entry else None,
        kev_due_date=entry.due_date.isoformat() if entry else None,
    )


def risk_notes(policy: FastTrackPolicy, feeds: FeedSnapshot, cycle_date: dt.date) -> list[str]:
    """What the plan must say about the fast-track rule it applied (nothing when it applied it whole)."""
    notes = []
    if policy.epss_at_least is not None and not epss_usable(feeds, cycle_date):
        notes.append(
            f"EPSS scores of {feeds.epss.score_date or 'an unknown date'} are not dated on or before the "
            f"cycle date ({cycle_date.isoformat()}): nothing was fast-tracked by EPSS (a backfilled cycle "
            "has no scores of its own date to read)"
        )
    return notes


# -- AWS: what the tenant's SSM baselines are told to approve before the Scan ---------------------------
SSM_APPROVED_PATCHES_MAX = 50
"""CreatePatchBaseline / UpdatePatchBaseline ``ApprovedPatches``: "Maximum number of 50 items"."""


def zero_day_approved_patches(fixes: Sequence[str], current: Sequence[str]) -> list[str]:
    """A baseline's ApprovedPatches after a zero-day plan: its fixes first, then what the baseline already
    lists (the monthly plan's fast-tracked patches stay approved, so hosts that still miss them stay
    non-compliant in Patch Manager), at most :data:`SSM_APPROVED_PATCHES_MAX`: the oldest entries of the
    current list give way, since the next monthly plan rewrites the list anyway."""
    merged = list(dict.fromkeys([*fixes, *current]))
    return merged[:SSM_APPROVED_PATCHES_MAX]


@dataclass(frozen=True)
class ApprovedList:
    """What one SSM baseline's ``ApprovedPatches`` holds for a cycle, and what did not fit."""

    entries: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def capped(
    entries: Iterable[str], limit: int = SSM_APPROVED_PATCHES_MAX
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``entries`` without repeats, in their order, cut at ``limit``: (kept, left out)."""
    unique = list(dict.fromkeys(entries))
    return tuple(unique[:limit]), tuple(unique[limit:])


def kev_cves_newest_first(feeds: FeedSnapshot, cycle_date: dt.date) -> list[str]:
    """KEV CVEs listed on or before the cycle date, the most recently listed first (then by id).

    The order an SSM baseline's 50 ``ApprovedPatches`` places are filled in on families whose catalog is
    the Scan itself: a fix released since the cutoff most likely belongs to a recent listing.
    """
    listed = kev_as_of(feeds, cycle_date).values()
    return [e.cve_id for e in sorted(listed, key=lambda e: (-e.date_added.toordinal(), e.cve_id))]


def exposure_by_cve(
    rows: Iterable[Mapping[str, Any]], plan: Mapping[str, Any], kev: Mapping[str, KevEntry]
) -> dict[str, list[str]]:
    """Per in-scope host (by host id), the KEV CVEs it is exposed to: those of the plan's patches for its
    OS family (a host takes every patch of its family; until patched it is taken to miss them, the same
    conservative reading the risk report makes) and those its cloud reports it missing."""
    approved = plan.get("approved") or {}
    by_family = {
        family: sorted({c for p in patches for c in p.get("cves") or () if c in kev})
        for family, patches in approved.items()
    }
    out: dict[str, list[str]] = {}
    for row in rows:
        if not row.get("environment"):
            continue
        cves = set(by_family.get(row.get("os_family") or "", ()))
        cves |= {c for c in row.get("missing_cves") or () if c in kev}
        if cves:
            out[str(row["host_id"])] = sorted(cves)
    return out


@dataclass(frozen=True)
class KevClock:
    """The SLA clock of one open KEV item of a plan: a planned patch fixing a KEV-listed CVE."""

    patch_id: str
    os_family: str
    cve: str
    date_added: str
    due: str
    status: str  # sla_status on the cycle date, the patch not yet installed
    days_left: int

    def to_dict(self) -> dict[str, Any]:
        """As the plan.frozen event and the dry run show it."""
        return asdict(self)

    def describe(self) -> str:
        """One line for the dry run's output."""
        when = f"{self.days_left} day(s) left" if self.days_left >= 0 else f"{-self.days_left} day(s) overdue"
        return (
            f"    - {self.patch_id} ({self.os_family}) {self.cve}: KEV since {self.date_added}, "
            f"due {self.due}, {self.status}, {when}"
        )


def kev_clocks(plan: Mapping[str, Any], feeds: FeedSnapshot, cycle_date: dt.date) -> list[KevClock]:
    """The SLA clock of each open KEV item of a frozen plan (its JSON) on the cycle date: CISA's window
    counted from the later of the listing and the fix's release (:func:`risk_report.kev_clock`), KEV
    entries listed on or before the cycle date only. Most urgent first."""
    from patchcycle.domain.risk_report import kev_clock
    from patchcycle.domain.sla import sla_status

    listed = kev_as_of(feeds, cycle_date)
    clocks = []
    for family, patches in sorted((plan.get("approved") or {}).items()):
        for patch in patches:
            cves = [c for c in patch.get("cves") or () if c in listed]
            if not cves:
                continue
            due, cve = kev_clock(cves, dt.date.fromisoformat(patch["released"]), feeds)
            if due is None or cve is None:
                continue
            clocks.append(
                KevClock(
                    patch_id=patch["id"],
                    os_family=family,
                    cve=cve,
                    date_added=listed[cve].date_added.isoformat(),
                    due=due.isoformat(),
                    status=sla_status(due, None, cycle_date),
                    days_left=(due - cycle_date).days,
                )
            )
    return sorted(clocks, key=lambda c: (c.due, c.patch_id))


def kev_clock_lines(clocks: Iterable[KevClock]) -> list[str]:
    """The dry run's lines for the KEV clocks (a heading and one line each; nothing when there are none)."""
    clocks = list(clocks)
    if not clocks:
        return []
    return [f"  KEV SLA clocks ({len(clocks)} open KEV item(s), as of the cycle date):"] + [
        c.describe() for c in clocks
    ]


def kev_exposure(
    rows: Iterable[Mapping[str, Any]],
    plan: Mapping[str, Any],
    feeds: FeedSnapshot,
    as_of: dt.date,
    verdicts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The pre-flight record's KEV section: every in-scope host exposed to a KEV CVE (listed on or before
    the cycle date) that the plan's patches fix, fast-tracked ones included, or that its cloud reports
    missing; each with its pre-flight verdict, and per CVE its listing and how many hosts it exposes."""
    rows = list(rows)
    listed = kev_as_of(feeds, as_of)
    by_host = exposure_by_cve(rows, plan, listed)
    fast = {
        c
        for patches in (plan.get("approved") or {}).values()
        for p in patches
        if p.get("fast_track")
        for c in p.get("cves") or ()
        if c in listed
    }
    hosts = [
        {
            "host_id": row["host_id"],
            "name": row.get("name"),
            "environment": row.get("environment"),
            "os_family": row.get("os_family"),
            "verdict": (verdicts or {}).get(str(row["host_id"])),
            "cves": by_host[str(row["host_id"])],
        }
        for row in rows
        if str(row.get("host_id")) in by_host
    ]
    hosts.sort(key=lambda h: (str(h["environment"]), str(h["name"])))
    counts: dict[str, int] = {}
    for host in hosts:
        for cve in host["cves"]:
            counts[cve] = counts.get(cve, 0) + 1
    return {
        "as_of": as_of.isoformat(),
        "feeds": feed_versions(feeds).to_dict(),
        "hosts": hosts,
        "cves": {
            cve: {
                "date_added": listed[cve].date_added.isoformat(),
                "due_date": listed[cve].due_date.isoformat(),
                "hosts": n,
                "fast_tracked": cve in fast,
            }
            for cve, n in sorted(counts.items())
        },
    }
