"""Risk drives the plan: KEV and EPSS fast-track as of the cycle date, the reasons recorded, the feed
versions read, reproducibility, the zero-day selection and the KEV clocks a dry run shows."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from patchcycle.config.models import OsFamily, Severity
from patchcycle.domain.fast_track import (
    AGE_UNKNOWN,
    EPSS,
    KEV,
    ZERO_DAY,
    FastTrackPolicy,
    capped,
    epss_usable,
    exposure_by_cve,
    fast_track_for,
    kev_as_of,
    kev_clock_lines,
    kev_clocks,
    kev_cves_newest_first,
)
from patchcycle.domain.plan import PlanRisk, build_cycle_plan
from patchcycle.feeds import EpssScore, EpssScores, FeedSnapshot, KevCatalog, KevEntry, load_feed_snapshots

CYCLE = dt.date(2026, 11, 22)  # the base tenant's amazon_linux_2 cutoff: 2026-11-15
FRESH = dt.date(2026, 11, 19)  # released after the cutoff: the baseline alone does not approve it


def kev(cve: str, added: dt.date, due_days: int = 21) -> KevEntry:
    return KevEntry(cve, added, added + dt.timedelta(days=due_days), False)


def feeds(
    entries: list[KevEntry] = (), scores: dict[str, float] | None = None, score_date: str = "2026-11-21"
) -> FeedSnapshot:
    committed = load_feed_snapshots()
    return FeedSnapshot(
        kev=KevCatalog("2026.11.21", "2026-11-21T17:00:00Z", {e.cve_id: e for e in entries}),
        epss=EpssScores(
            "v2025.03.14",
            f"{score_date}T12:55:00Z",
            {c: EpssScore(s, 0.99) for c, s in (scores or {}).items()},
        ),
        cvss=committed.cvss,
        source="test feeds",
    )


KEV_ON = FastTrackPolicy(kev=True)


@pytest.fixture
def fresh(make_patch):
    return make_patch(id="ALAS2-2026-2801", cves=("CVE-2026-1111",), released=FRESH)


def test_a_kev_listed_fix_skips_the_wait_and_the_plan_says_why(tenant, make_patch, fresh) -> None:
    old = make_patch(id="ALAS2-2026-2700", released=dt.date(2026, 11, 1))
    listed = feeds([kev("CVE-2026-1111", dt.date(2026, 11, 20))])
    plan = build_cycle_plan(tenant, CYCLE, [old, fresh], risk=PlanRisk(listed, KEV_ON))
    approved = {p.id: p for p in plan.approved["amazon_linux_2"]}
    assert set(approved) == {"ALAS2-2026-2700", "ALAS2-2026-2801"}
    assert approved["ALAS2-2026-2700"].fast_track is None  # its age approved it
    assert approved["ALAS2-2026-2801"].fast_track == {
        "cve": "CVE-2026-1111",
        "basis": KEV,
        "how": "approved before its approve-after-days wait ended",
        "kev_date_added": "2026-11-20",
        "kev_due_date": "2026-12-11",
    }
    assert approved["ALAS2-2026-2801"].released == FRESH.isoformat()
    assert plan.risk["feeds"] == {
        "kev_catalog_version": "2026.11.21",
        "kev_date_released": "2026-11-21T17:00:00Z",
        "epss_model_version": "v2025.03.14",
        "epss_score_date": "2026-11-21T12:55:00Z",
        "source": "test feeds",
    }
    assert plan.risk["fast_tracked"] == ["ALAS2-2026-2801"]
    lines = "\n".join(plan.summary_lines())
    assert "fast-tracked: KEV CVE-2026-1111 (listed 2026-11-20, CISA due 2026-12-11)" in lines
    assert "KEV catalog 2026.11.21" in lines


def test_kev_counts_as_of_the_cycle_date_so_a_backfill_plans_as_it_would_have(tenant, fresh) -> None:
    # Listed the day after the cycle: a backfill of the cycle, run later with the newer feed, does not
    # fast-track it (the cycle could not have known).
    later = feeds([kev("CVE-2026-1111", dt.date(2026, 11, 23))])
    plan = build_cycle_plan(tenant, CYCLE, [fresh], risk=PlanRisk(later, KEV_ON))
    assert plan.approved["amazon_linux_2"] == ()
    on_the_day = feeds([kev("CVE-2026-1111", CYCLE)])
    assert build_cycle_plan(tenant, CYCLE, [fresh], risk=PlanRisk(on_the_day, KEV_ON)).patch_ids == [fresh.id]
    assert set(kev_as_of(later, CYCLE)) == set()


def test_the_fast_track_never_widens_what_the_baseline_takes(tenant, make_patch) -> None:
    listed = feeds([kev("CVE-2026-1111", dt.date(2026, 11, 1))])
    medium = make_patch(
        id="ALAS2-2026-2802", severity=Severity.Medium, cves=("CVE-2026-1111",), released=FRESH
    )
    windows = make_patch(
        id="KB5099999",
        os_family=OsFamily.windows_2022,  # the tenant patches no windows_2022
        classification="SecurityUpdates",
        cves=("CVE-2026-1111",),
        released=FRESH,
    )
    plan = build_cycle_plan(tenant, CYCLE, [medium, windows], risk=PlanRisk(listed, KEV_ON))
    assert plan.patch_ids == []


def test_epss_at_or_above_the_threshold_fast_tracks_with_the_score_and_its_date(tenant, make_patch) -> None:
    scores = feeds(scores={"CVE-2026-2222": 0.41, "CVE-2026-3333": 0.09})
    high = make_patch(id="ALAS2-2026-2803", cves=("CVE-2026-3333", "CVE-2026-2222"), released=FRESH)
    low = make_patch(id="ALAS2-2026-2804", cves=("CVE-2026-3333",), released=FRESH)
    policy = FastTrackPolicy(epss_at_least=0.41)
    plan = build_cycle_plan(tenant, CYCLE, [high, low], risk=PlanRisk(scores, policy))
    (chosen,) = plan.approved["amazon_linux_2"]
    assert chosen.id == "ALAS2-2026-2803"
    assert chosen.fast_track == {
        "cve": "CVE-2026-2222",
        "basis": EPSS,
        "how": "approved before its approve-after-days wait ended",
        "epss": 0.41,
        "epss_score_date": "2026-11-21T12:55:00Z",
    }
    assert plan.risk["policy"] == {"kev": False, "epss_at_least": 0.41}


def test_epss_scores_dated_after_the_cycle_fast_track_nothing_and_the_plan_says_so(
    tenant, make_patch
) -> None:
    newer = feeds(scores={"CVE-2026-2222": 0.9}, score_date="2026-12-01")
    patch = make_patch(id="ALAS2-2026-2803", cves=("CVE-2026-2222",), released=FRESH)
    plan = build_cycle_plan(tenant, CYCLE, [patch], risk=PlanRisk(newer, FastTrackPolicy(epss_at_least=0.5)))
    assert plan.patch_ids == []
    assert not epss_usable(newer, CYCLE)
    (note,) = plan.risk["notes"]
    assert "not dated on or before the cycle date (2026-11-22)" in note


def test_kev_wins_over_epss_and_the_choice_is_deterministic(make_patch) -> None:
    both = feeds(
        [kev("CVE-2026-0002", dt.date(2026, 11, 2)), kev("CVE-2026-0003", dt.date(2026, 10, 30))],
        scores={"CVE-2026-0001": 0.99},
    )
    policy = FastTrackPolicy(kev=True, epss_at_least=0.1)
    reason = fast_track_for(["CVE-2026-0002", "CVE-2026-0001", "CVE-2026-0003"], CYCLE, both, policy)
    # The earliest listing, whatever the order the catalog gave the CVEs in.
    assert (reason.basis, reason.cve) == (KEV, "CVE-2026-0003")
    assert reason == fast_track_for(["CVE-2026-0003", "CVE-2026-0001", "CVE-2026-0002"], CYCLE, both, policy)
    tie = feeds(scores={"CVE-2026-0009": 0.5, "CVE-2026-0008": 0.5})
    assert fast_track_for(["CVE-2026-0009", "CVE-2026-0008"], CYCLE, tie, policy).cve == "CVE-2026-0008"


def test_the_same_catalog_and_feeds_freeze_the_same_plan(tenant, make_patch, fresh) -> None:
    listed = feeds([kev("CVE-2026-1111", dt.date(2026, 11, 20))], scores={"CVE-2024-0001": 0.8})
    catalog = [make_patch(id="ALAS2-2026-2700", released=dt.date(2026, 11, 1)), fresh]
    policy = FastTrackPolicy(kev=True, epss_at_least=0.5)
    first = build_cycle_plan(tenant, CYCLE, catalog, risk=PlanRisk(listed, policy))
    again = build_cycle_plan(tenant, CYCLE, list(reversed(catalog)), risk=PlanRisk(listed, policy))
    assert first.hash == again.hash and first.to_dict() == again.to_dict()
    # Another KEV catalog version is another plan, even when it selects the same patches.
    newer = dataclasses.replace(listed, kev=KevCatalog("2026.11.22", "x", listed.kev.entries))
    assert build_cycle_plan(tenant, CYCLE, catalog, risk=PlanRisk(newer, policy)).hash != first.hash


def test_without_a_risk_policy_the_plan_is_what_it_always_was(tenant, make_patch) -> None:
    catalog = [make_patch(id="ALAS2-2026-2700", released=dt.date(2026, 11, 1))]
    plan = build_cycle_plan(tenant, CYCLE, catalog)
    data = plan.to_dict()
    assert "risk" not in data and "fast_track" not in data["approved"]["amazon_linux_2"][0]
    assert tenant.risk.fast_track is False and tenant.risk.zero_day is None


def test_scan_rows_approved_by_cve_id_record_that_their_age_is_unknown(make_tenant, make_patch) -> None:
    rhel = make_tenant(
        baselines=[
            {
                "os_family": "rhel_8",
                "classifications": ["Security"],
                "severities": ["Critical", "High"],
                "approve_after_days": 7,
            }
        ]
    )
    row = make_patch(
        id="kernel.x86_64:0:4.18.0-553.30.1.el8_10",
        os_family=OsFamily.rhel_8,
        cves=("CVE-2026-1111",),
        released=None,
        approved_by_source=True,
        source="ssm:Scan+DescribeInstancePatches",
    )
    listed = feeds([kev("CVE-2026-1111", dt.date(2026, 11, 20))])
    risk = PlanRisk(listed, KEV_ON, source_approved_cves={"rhel_8": ["CVE-2026-1111"]})
    (patch,) = build_cycle_plan(rhel, CYCLE, [row], risk=risk).approved["rhel_8"]
    assert patch.fast_track["how"] == AGE_UNKNOWN and patch.fast_track["cve"] == "CVE-2026-1111"
    # Not put into the baseline's list: approved by its age, no reason recorded.
    (plain,) = build_cycle_plan(rhel, CYCLE, [row], risk=PlanRisk(listed, KEV_ON)).approved["rhel_8"]
    assert plain.fast_track is None


def test_a_zero_day_plan_holds_only_the_fixes_of_its_cves_whatever_their_age(tenant, make_patch) -> None:
    listed = feeds([kev("CVE-2026-1111", dt.date(2026, 11, 24))])
    fix = make_patch(id="ALAS2-2026-2901", severity=Severity.Medium, cves=("CVE-2026-1111",), released=CYCLE)
    other = make_patch(id="ALAS2-2026-2700", released=dt.date(2026, 11, 1))
    risk = PlanRisk(listed, zero_day_cves=("CVE-2026-1111", "CVE-2026-4444"))
    plan = build_cycle_plan(tenant, dt.date(2026, 11, 25), [fix, other], ["an RDS update"], risk=risk)
    assert plan.patch_ids == ["ALAS2-2026-2901"]
    (patch,) = plan.approved["amazon_linux_2"]
    assert patch.fast_track["basis"] == ZERO_DAY and patch.fast_track["kev_date_added"] == "2026-11-24"
    assert plan.risk["zero_day"] == {
        "cves": ["CVE-2026-1111", "CVE-2026-4444"],
        "without_fix": ["CVE-2026-4444"],
    }
    assert plan.rds_os_updates == ()
    assert "NO FIX YET for CVE-2026-4444" in "\n".join(plan.summary_lines())


def test_the_kev_clocks_of_a_plan_as_the_dry_run_shows_them(tenant, make_patch) -> None:
    listed = feeds([kev("CVE-2026-1111", dt.date(2026, 11, 1)), kev("CVE-2026-5555", dt.date(2026, 12, 1))])
    catalog = [
        make_patch(id="ALAS2-2026-2700", cves=("CVE-2026-1111",), released=dt.date(2026, 11, 3)),
        make_patch(id="ALAS2-2026-2701", cves=("CVE-2026-5555",), released=dt.date(2026, 11, 2)),
    ]
    plan = build_cycle_plan(tenant, CYCLE, catalog).to_dict()
    (clock,) = kev_clocks(plan, listed, CYCLE)
    # CISA's 21-day window, counted from the later of the listing and the release.
    assert (clock.patch_id, clock.cve, clock.due, clock.status) == (
        "ALAS2-2026-2700",
        "CVE-2026-1111",
        "2026-11-24",
        "due_soon",
    )
    assert clock.days_left == 2
    lines = kev_clock_lines([clock])
    assert lines[0].startswith("  KEV SLA clocks (1 open KEV item(s)")
    assert "due 2026-11-24, due_soon, 2 day(s) left" in lines[1]
    assert kev_clock_lines([]) == []


def test_hosts_exposed_to_kev_cves_of_the_plan(host_row) -> None:
    listed = feeds([kev("CVE-2026-1111", dt.date(2026, 11, 1)), kev("CVE-2026-7777", dt.date(2026, 11, 1))])
    plan = {"approved": {"amazon_linux_2": [{"id": "A", "cves": ["CVE-2026-1111", "CVE-2020-0001"]}]}}
    rows = [
        host_row("i-1"),
        host_row("i-2", os_family="windows_2019", missing_cves=["CVE-2026-7777"]),
        host_row("i-3", os_family="windows_2019"),
        host_row("i-4", environment=""),  # out of scope
    ]
    assert exposure_by_cve(rows, plan, kev_as_of(listed, CYCLE)) == {
        "i-1": ["CVE-2026-1111"],
        "i-2": ["CVE-2026-7777"],
    }


def test_the_ssm_approved_list_is_capped_at_fifty_newest_listings_first() -> None:
    entries = [kev(f"CVE-2026-{1000 + i}", dt.date(2026, 1, 1) + dt.timedelta(days=i)) for i in range(60)]
    listed = feeds(entries)
    order = kev_cves_newest_first(listed, dt.date(2026, 2, 25))  # day 55 and later not yet listed
    assert order[0] == "CVE-2026-1055" and len(order) == 56
    kept, left = capped(order)
    assert len(kept) == 50 and left == tuple(order[50:])


def test_a_zero_day_puts_its_fixes_first_and_keeps_the_listed_ones_within_ssms_50() -> None:
    from patchcycle.domain.fast_track import SSM_APPROVED_PATCHES_MAX, zero_day_approved_patches

    assert zero_day_approved_patches(["KB2"], ["KB1", "KB2"]) == ["KB2", "KB1"]
    assert zero_day_approved_patches([], ["KB1"]) == ["KB1"]
    current = [f"KB{n}" for n in range(SSM_APPROVED_PATCHES_MAX)]
    merged = zero_day_approved_patches(["KB-NEW"], current)
    assert merged[0] == "KB-NEW" and len(merged) == SSM_APPROVED_PATCHES_MAX
    assert merged[1:] == current[:-1]
