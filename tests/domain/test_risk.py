"""Risk ranking: CVSS base scores, the pinned formula (criticality weight, bands, EPSS bump, KEV), fallbacks.

Most tests build a tiny in-memory feed snapshot with synthetic CVE ids (CVE-2099-…) so that each states only
the inputs it cares about; a few run the demo's patches against the committed snapshots in include/feeds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from cvss import CVSS3, CVSS4

from patchcycle.config.models import OsFamily, Severity
from patchcycle.domain.plan import ApprovedPatch, CatalogPatch
from patchcycle.domain.risk import (
    CRITICALITY_WEIGHT,
    PRIORITIES,
    PatchRisk,
    assess_patch_risk,
    base_score,
    rank_risks,
)
from patchcycle.feeds import (
    CvssVector,
    CvssVectors,
    EpssScore,
    EpssScores,
    FeedSnapshot,
    KevCatalog,
    KevEntry,
    load_feed_snapshots,
)

V_98 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
V_88 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H"  # 8.8
V_78 = "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"  # 7.8
V_55 = "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N"  # 5.5
V_31 = "CVSS:3.0/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N"  # 3.1

CRITICALITY_ORDER = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class Patch:
    id: str
    severity: str
    cves: tuple[str, ...]


def snapshot(
    cvss: dict[str, str] | None = None,
    epss: dict[str, float] | None = None,
    kev: dict[str, bool] | None = None,
) -> FeedSnapshot:
    """Feeds from plain maps: CVE -> vector, CVE -> EPSS percentile, CVE -> known ransomware use."""
    return FeedSnapshot(
        kev=KevCatalog(
            catalog_version="test",
            date_released="2025-08-25T00:00:00Z",
            entries={
                cve: KevEntry(cve, dt.date(2025, 8, 1), dt.date(2025, 8, 22), ransomware)
                for cve, ransomware in (kev or {}).items()
            },
        ),
        epss=EpssScores(
            model_version="test",
            score_date=None,
            scores={cve: EpssScore(round(p / 10, 4), p) for cve, p in (epss or {}).items()},
        ),
        cvss=CvssVectors({cve: CvssVector(v.split("/")[0][5:], v) for cve, v in (cvss or {}).items()}),
    )


def assess(cves=("CVE-2099-0001",), severity="High", criticality="medium", **feeds) -> PatchRisk:
    return assess_patch_risk(Patch("P-1", severity, tuple(cves)), criticality, snapshot(**feeds))


# ------------------------------------------------------------------------------------------- base_score


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        (V_98, 9.8),
        (V_88, 8.8),
        (V_78, 7.8),
        (V_55, 5.5),
        (V_31, 3.1),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:N", 9.9),
    ],
)
def test_base_score_is_pinned_and_agrees_with_the_cvss_library(vector, expected):
    assert base_score(vector) == expected
    library = CVSS4(vector).base_score if vector.startswith("CVSS:4.0/") else CVSS3(vector).scores()[0]
    assert base_score(vector) == float(library)


def test_base_score_ignores_surrounding_whitespace():
    assert base_score(f"  {V_78}\n") == 7.8


@pytest.mark.parametrize(
    "vector",
    [
        "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # unknown value
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",  # missing A
        "CVSS:4.0/AV:N",  # missing mandatory v4 metrics
        "AV:N/AC:L/Au:N/C:P/I:P/A:P",  # CVSS v2: no prefix, not accepted
        "CVSS:2.0/AV:N",
        "",
    ],
)
def test_invalid_vector_raises_value_error_naming_it(vector):
    with pytest.raises(ValueError, match="invalid CVSS vector") as excinfo:
        base_score(vector)
    assert repr(vector) in str(excinfo.value)


def test_invalid_vector_in_the_feed_names_the_patch_and_the_cve():
    with pytest.raises(ValueError, match=r"P-1, CVE-2099-0001: invalid CVSS vector 'CVSS:3.1/AV:X"):
        assess(cvss={"CVE-2099-0001": "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"})


# ----------------------------------------------------------------------------------------- the formula


@pytest.mark.parametrize(
    ("vector", "criticality", "score", "priority"),
    [
        (V_98, "medium", 9.8, "P1"),
        (V_98, "low", 7.84, "P2"),
        (V_88, "medium", 8.8, "P2"),
        (V_88, "critical", 11.44, "P1"),
        (V_78, "low", 6.24, "P3"),
        (V_78, "medium", 7.8, "P2"),
        (V_78, "high", 8.97, "P2"),
        (V_78, "critical", 10.14, "P1"),
        (V_55, "medium", 5.5, "P3"),
        (V_55, "critical", 7.15, "P2"),
        (V_31, "medium", 3.1, "P4"),
        (V_31, "critical", 4.03, "P3"),
    ],
)
def test_score_is_cvss_times_criticality_weight_and_bands_are_9_7_4(vector, criticality, score, priority):
    risk = assess(criticality=criticality, cvss={"CVE-2099-0001": vector})
    assert risk.score == score
    assert risk.priority == priority
    assert risk.cvss == base_score(vector)
    assert not risk.kev and risk.epss is None


@pytest.mark.parametrize(
    ("vector", "score", "priority"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:H/I:H/A:H", 9.0, "P1"),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:L/A:L", 7.0, "P2"),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:C/C:L/I:N/A:N", 4.0, "P3"),
    ],
)
def test_band_lower_edges_are_inclusive(vector, score, priority):
    assert base_score(vector) == score
    assert assess(cvss={"CVE-2099-0001": vector}).priority == priority


def test_highest_cvss_among_the_patch_cves_counts():
    risk = assess(
        cves=("CVE-2099-0001", "CVE-2099-0002", "CVE-2099-0003"),
        cvss={"CVE-2099-0001": V_55, "CVE-2099-0002": V_88},
    )
    assert risk.cvss == 8.8
    assert risk.reasons[0] == "CVSS 8.8 (CVE-2099-0002)"


def test_criticality_weights_are_the_documented_ones():
    assert CRITICALITY_WEIGHT == {"low": 0.8, "medium": 1.0, "high": 1.15, "critical": 1.3}


@pytest.mark.parametrize("vector", [V_98, V_88, V_78, V_55, V_31])
@pytest.mark.parametrize("percentile", [None, 0.5, 0.95])
@pytest.mark.parametrize("in_kev", [False, True])
def test_priority_and_score_are_monotone_in_host_criticality(vector, percentile, in_kev):
    cve = "CVE-2099-0001"
    risks = [
        assess(
            criticality=level,
            cvss={cve: vector},
            epss={cve: percentile} if percentile is not None else None,
            kev={cve: False} if in_kev else None,
        )
        for level in CRITICALITY_ORDER
    ]
    scores = [r.score for r in risks]
    ranks = [PRIORITIES.index(r.priority) for r in risks]
    assert scores == sorted(scores)
    assert ranks == sorted(ranks, reverse=True)  # P4 -> P1 never goes back down


@pytest.mark.parametrize("criticality", CRITICALITY_ORDER)
def test_priority_is_monotone_in_cvss(criticality):
    vectors = sorted([V_31, V_55, V_78, V_88, V_98], key=base_score)
    ranks = [
        PRIORITIES.index(assess(criticality=criticality, cvss={"CVE-2099-0001": v}).priority) for v in vectors
    ]
    assert ranks == sorted(ranks, reverse=True)


@pytest.mark.parametrize("criticality", ["HIGH", " high "])
def test_criticality_is_case_and_space_insensitive(criticality):
    assert assess(criticality=criticality, cvss={"CVE-2099-0001": V_78}).criticality == "high"


def test_unknown_criticality_is_refused():
    with pytest.raises(ValueError, match=r"unknown host criticality 'tier-0'"):
        assess(criticality="tier-0")


# ----------------------------------------------------------------------------------------------- KEV


@pytest.mark.parametrize("criticality", CRITICALITY_ORDER)
def test_kev_raises_to_p1_whatever_the_score(criticality):
    risk = assess(criticality=criticality, cvss={"CVE-2099-0001": V_31}, kev={"CVE-2099-0001": False})
    assert risk.priority == "P1"
    assert risk.kev and not risk.known_ransomware
    assert risk.score == round(3.1 * CRITICALITY_WEIGHT[criticality], 2)  # the score itself is not changed
    assert "in CISA KEV (CVE-2099-0001, due 2025-08-22)" in risk.reasons
    assert not any("ransomware" in reason for reason in risk.reasons)


def test_known_ransomware_use_is_a_reason():
    risk = assess(
        cves=("CVE-2099-0001", "CVE-2099-0002"),
        kev={"CVE-2099-0001": False, "CVE-2099-0002": True},
    )
    assert risk.priority == "P1"
    assert risk.known_ransomware
    assert "known ransomware use (CVE-2099-0002)" in risk.reasons


def test_kev_entry_for_another_cve_does_not_count():
    risk = assess(cves=("CVE-2099-0001",), cvss={"CVE-2099-0001": V_55}, kev={"CVE-2099-0009": True})
    assert not risk.kev and risk.priority == "P3"


# ---------------------------------------------------------------------------------------------- EPSS


@pytest.mark.parametrize(
    ("vector", "without", "with_bump"),
    [(V_31, "P4", "P3"), (V_55, "P3", "P2"), (V_78, "P2", "P1"), (V_98, "P1", "P1")],
)
def test_epss_percentile_at_or_above_090_raises_one_band(vector, without, with_bump):
    cve = "CVE-2099-0001"
    assert assess(cvss={cve: vector}, epss={cve: 0.8999}).priority == without
    bumped = assess(cvss={cve: vector}, epss={cve: 0.9})
    assert bumped.priority == with_bump
    assert bumped.epss_percentile == 0.9 and bumped.epss == 0.09
    if without != with_bump:
        assert "EPSS percentile 0.90 (CVE-2099-0001): up one band" in bumped.reasons


def test_epss_uses_the_highest_percentile_among_the_cves():
    risk = assess(
        cves=("CVE-2099-0001", "CVE-2099-0002"),
        cvss={"CVE-2099-0001": V_55},
        epss={"CVE-2099-0001": 0.2, "CVE-2099-0002": 0.97},
    )
    assert risk.epss_percentile == 0.97
    assert risk.priority == "P2"


# ------------------------------------------------------------------------------------- severity fallback


@pytest.mark.parametrize(
    ("severity", "score", "priority"),
    [("Critical", 9.5, "P1"), ("High", 8.0, "P2"), ("Medium", 5.5, "P3"), ("Low", 2.5, "P4")],
)
def test_without_cvss_the_vendor_severity_stands_in(severity, score, priority):
    for cves in ((), ("CVE-2099-0001",)):  # no CVE at all, or a CVE without a vector
        risk = assess(cves=cves, severity=severity)
        assert (risk.cvss, risk.score, risk.priority) == (None, score, priority)
        assert risk.reasons[0] == f"no CVSS vector: {severity} severity as {score:.1f}"


def test_fallback_is_weighted_by_criticality_too():
    assert assess(cves=(), severity="High", criticality="critical").score == 10.4
    assert assess(cves=(), severity="Critical", criticality="low").priority == "P2"  # 7.6


def test_fallback_needs_a_known_severity():
    with pytest.raises(ValueError, match=r"P-1: no CVSS vector .* unknown severity 'Important'"):
        assess(cves=(), severity="Important")


def test_catalog_patch_with_severity_enum_is_accepted():
    patch = CatalogPatch(
        id="RHBA-1",
        os_family=OsFamily.rhel_8,
        title="tzdata",
        classification="Bugfix",
        vendor_severity="Low",
        severity=Severity.Low,
        cves=(),
        released=dt.date(2026, 11, 5),
    )
    assert assess_patch_risk(patch, "medium", snapshot()).priority == "P4"


# ------------------------------------------------------------------------------------------- ranking


def test_rank_risks_orders_by_band_then_score_then_id():
    feeds = snapshot(cvss={"CVE-2099-0001": V_78, "CVE-2099-0002": V_55}, kev={"CVE-2099-0003": False})
    risks = [
        assess_patch_risk(Patch("b", "High", ("CVE-2099-0002",)), "medium", feeds),  # P3 5.5
        assess_patch_risk(Patch("c", "High", ("CVE-2099-0001",)), "high", feeds),  # P2 8.97
        assess_patch_risk(Patch("a", "High", ("CVE-2099-0001",)), "medium", feeds),  # P2 7.8
        assess_patch_risk(Patch("z", "Low", ("CVE-2099-0003",)), "low", feeds),  # P1 (KEV) 2.0
        assess_patch_risk(Patch("d", "High", ("CVE-2099-0001",)), "medium", feeds),  # P2 7.8
    ]
    assert [r.patch_id for r in rank_risks(risks)] == ["z", "c", "a", "d", "b"]


# ---------------------------------------------------------------------------- the committed snapshots


@pytest.fixture(scope="module")
def committed() -> FeedSnapshot:
    return load_feed_snapshots()


def approved(patch_id: str, severity: str, cves: tuple[str, ...]) -> ApprovedPatch:
    return ApprovedPatch(
        id=patch_id,
        title="",
        classification="Security",
        severity=severity,
        cves=cves,
        released="2026-10-13",
        kernel_update=False,
    )


def test_demo_windows_cumulative_update_is_p1_with_ransomware(committed):
    risk = assess_patch_risk(
        approved("KB5044277", "Critical", ("CVE-2025-29824", "CVE-2025-24993")), "high", committed
    )
    assert risk.priority == "P1"
    assert risk.kev and risk.known_ransomware
    assert risk.cvss == 7.8 and risk.score == 8.97
    assert "known ransomware use (CVE-2025-29824)" in risk.reasons
    assert "in CISA KEV (CVE-2025-24993, due 2025-04-01)" in risk.reasons  # the earlier due date is named


def test_demo_patch_without_cves_falls_back_to_severity(committed):
    risk = assess_patch_risk(approved("ALAS2023-2026-1233", "Medium", ()), "medium", committed)
    assert (risk.priority, risk.score, risk.kev) == ("P3", 5.5, False)
