"""Risk ranking of missing patches: which to chase first, from CVSS, host criticality, KEV and EPSS.

Pure: the feeds are passed in as a :class:`~patchcycle.feeds.FeedSnapshot`; nothing is fetched here.

The formula (pinned by ``tests/domain/test_risk.py``) is deliberately simple and monotone: a higher CVSS,
a more critical host, a KEV listing or a higher EPSS percentile never lowers a patch's priority.

1. **Base.** The highest CVSS base score among the patch's CVEs that have a vector in the feed, computed
   with the ``cvss`` library (v3.0/v3.1 or v4.0, by the vector's prefix). When none of its CVEs has a vector
   (or it lists no CVE), the vendor severity stands in: Critical 9.5, High 8.0, Medium 5.5, Low 2.5
   (values inside the CVSS v3.1 qualitative bands of the same names).
2. **Score** = round(base x criticality weight, 2), weights: low 0.8, medium 1.0, high 1.15, critical 1.3.
   The score is on the CVSS scale but not capped, so it can exceed 10 on critical hosts (keeps the order).
3. **Band** from the score: P1 if score >= 9, P2 if >= 7, P3 if >= 4, else P4 (the lower edges of the
   CVSS v3.1 Critical, High and Medium ratings).
4. **EPSS.** When the highest EPSS percentile among the CVEs is >= 0.90, the band is raised by one
   (P4 -> P3 -> P2 -> P1).
5. **KEV.** When any CVE is in the CISA KEV catalog the priority is P1, whatever the score; if a KEV entry
   says ``knownRansomwareCampaignUse: Known`` that is recorded as a reason (it cannot go above P1).

Within a band, patches sort by score (highest first); :func:`rank_risks` does that.

Sources: CVSS v3.1 qualitative bands (FIRST CVSS v3.1 specification, section 5); CISA KEV as "exploited in
the wild, fix first" (BOD 22-01, revoked by BOD 26-04 in June 2026, which still uses KEV status as a
criterion); EPSS percentile (FIRST EPSS). The criticality weights and the 0.90 EPSS threshold are our
assumptions, not from a standard.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cvss import CVSS3, CVSS4
from cvss.exceptions import CVSSError

from patchcycle.config.models import Severity
from patchcycle.domain.sla import parse_severity
from patchcycle.feeds import FeedSnapshot

PRIORITIES: tuple[str, ...] = ("P1", "P2", "P3", "P4")
"""Priority bands, most urgent first."""

CRITICALITY_WEIGHT: dict[str, float] = {"low": 0.8, "medium": 1.0, "high": 1.15, "critical": 1.3}
"""Multiplier per host criticality (the inventory's ``criticality`` column)."""

SEVERITY_FALLBACK_SCORE: dict[Severity, float] = {
    Severity.Critical: 9.5,
    Severity.High: 8.0,
    Severity.Medium: 5.5,
    Severity.Low: 2.5,
}
"""Stand-in base score when none of a patch's CVEs has a CVSS vector."""

BAND_THRESHOLDS: tuple[tuple[str, float], ...] = (("P1", 9.0), ("P2", 7.0), ("P3", 4.0))
"""Lowest score of each band; anything lower is P4."""

EPSS_BUMP_PERCENTILE = 0.9
"""An EPSS percentile at or above this raises the band by one."""


class PatchLike(Protocol):
    """What risk ranking needs of a patch (an ``ApprovedPatch`` or ``CatalogPatch`` fits)."""

    @property
    def id(self) -> str:
        """The patch's id."""

    @property
    def severity(self) -> str | Severity | None:
        """Its severity (member or name), used when no CVE has a vector; None: unknown (then an error)."""

    @property
    def cves(self) -> Sequence[str]:
        """The CVE ids the patch fixes (a repeated id counts once)."""


@dataclass(frozen=True)
class PatchRisk:
    """A missing patch's priority on one host, and the reasons for it."""

    patch_id: str
    criticality: str
    cvss: float | None
    """Highest CVSS base score among the patch's CVEs; ``None`` when no CVE has a vector."""
    kev: bool
    known_ransomware: bool
    epss: float | None
    """Highest EPSS probability among the CVEs; ``None`` when no CVE has a score."""
    epss_percentile: float | None
    priority: str
    score: float
    reasons: tuple[str, ...]

    @property
    def sort_key(self) -> tuple[int, float, str]:
        """Most urgent first: band, then higher score, then patch id for a stable order."""
        return (PRIORITIES.index(self.priority), -self.score, self.patch_id)


def base_score(vector: str) -> float:
    """The CVSS base score of a vector: ``CVSS:3.0/`` and ``CVSS:3.1/`` via CVSS3, ``CVSS:4.0/`` via CVSS4.

    Raises ValueError naming the vector when it is malformed or of an unsupported version (CVSS v2 vectors
    have no prefix and are not accepted).
    """
    text = vector.strip() if isinstance(vector, str) else ""
    try:
        if text.startswith("CVSS:4.0/"):
            return float(CVSS4(text).base_score)
        if text.startswith(("CVSS:3.0/", "CVSS:3.1/")):
            return float(CVSS3(text).scores()[0])
    except CVSSError as exc:
        raise ValueError(f"invalid CVSS vector {vector!r}: {exc}") from exc
    raise ValueError(f"invalid CVSS vector {vector!r}: expected a CVSS:3.0/, CVSS:3.1/ or CVSS:4.0/ prefix")


def priority_for_score(score: float) -> str:
    """The band of a score before the EPSS and KEV adjustments."""
    for priority, threshold in BAND_THRESHOLDS:
        if score >= threshold:
            return priority
    return PRIORITIES[-1]


def assess_patch_risk(patch: PatchLike, criticality: str, feeds: FeedSnapshot) -> PatchRisk:  # noqa: C901 - the risk formula's inputs each have a documented fallback (CVSS vector, severity, KEV, EPSS), one branch each
    """Rank one missing patch on a host of the given criticality (see the module docstring for the formula).

    Raises ValueError for an unknown criticality, an unknown severity when the fallback is needed, or an
    invalid CVSS vector in the feed (naming the CVE and the vector).
    """
    level = (criticality or "").strip().lower()
    if level not in CRITICALITY_WEIGHT:
        raise ValueError(
            f"patch {patch.id}: unknown host criticality {criticality!r} "
            f"(expected one of {', '.join(CRITICALITY_WEIGHT)})"
        )
    weight = CRITICALITY_WEIGHT[level]
    cves = tuple(dict.fromkeys(patch.cves))
    reasons: list[str] = []

    # 1. Base: highest CVSS among the CVEs, else the severity fallback.
    cvss_max: float | None = None
    cvss_cve = ""
    for cve in cves:
        vector = feeds.cvss.get(cve)
        if vector is None:
            continue
        try:
            score = base_score(vector.vector)
        except ValueError as exc:
            raise ValueError(f"patch {patch.id}, {cve}: {exc}") from exc
        if cvss_max is None or score > cvss_max:
            cvss_max, cvss_cve = score, cve
    if cvss_max is not None:
        base = cvss_max
        reasons.append(f"CVSS {cvss_max:.1f} ({cvss_cve})")
    else:
        severity = _severity(patch)
        base = SEVERITY_FALLBACK_SCORE[severity]
        reasons.append(f"no CVSS vector: {severity.value} severity as {base:.1f}")

    # 2-3. Score and band.
    score = round(base * weight, 2)
    if weight != 1.0:
        reasons.append(f"{level} criticality x{weight:g} = {score:g}")
    rank = PRIORITIES.index(priority_for_score(score))

    # 4. EPSS bump.
    epss_max: float | None = None
    percentile_max: float | None = None
    percentile_cve = ""
    for cve in cves:
        epss = feeds.epss.get(cve)
        if epss is None:
            continue
        epss_max = epss.epss if epss_max is None else max(epss_max, epss.epss)
        if percentile_max is None or epss.percentile > percentile_max:
            percentile_max, percentile_cve = epss.percentile, cve
    if percentile_max is not None and percentile_max >= EPSS_BUMP_PERCENTILE and rank > 0:
        rank -= 1
        reasons.append(f"EPSS percentile {percentile_max:.2f} ({percentile_cve}): up one band")

    # 5. KEV.
    kev_entries = [entry for cve in cves if (entry := feeds.kev.get(cve)) is not None]
    if kev_entries:
        rank = 0
        first = min(kev_entries, key=lambda e: (e.due_date, e.cve_id))
        reasons.append(f"in CISA KEV ({first.cve_id}, due {first.due_date.isoformat()})")
    ransomware = [e.cve_id for e in kev_entries if e.known_ransomware]
    if ransomware:
        reasons.append(f"known ransomware use ({', '.join(ransomware)})")

    return PatchRisk(
        patch_id=patch.id,
        criticality=level,
        cvss=cvss_max,
        kev=bool(kev_entries),
        known_ransomware=bool(ransomware),
        epss=epss_max,
        epss_percentile=percentile_max,
        priority=PRIORITIES[rank],
        score=score,
        reasons=tuple(reasons),
    )


def rank_risks(risks: Iterable[PatchRisk]) -> list[PatchRisk]:
    """Risks most urgent first: P1 before P2…, higher score first within a band, then by patch id."""
    return sorted(risks, key=lambda r: r.sort_key)


def _severity(patch: PatchLike) -> Severity:
    try:
        return parse_severity(patch.severity)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"patch {patch.id}: no CVSS vector for its CVEs and {exc}") from None
