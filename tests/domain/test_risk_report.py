"""The risk and SLA section of the evidence, over the committed feed snapshots."""

from __future__ import annotations

import datetime as dt

from patchcycle.domain.risk_report import kev_clock, risk_and_sla
from patchcycle.feeds import load_feed_snapshots

FEEDS = load_feed_snapshots()
APPROVED = {
    "amazon_linux_2": [
        {
            "id": "ALAS2-2026-2644",
            "severity": "Critical",
            "cves": ["CVE-2023-0386"],
            "released": "2026-10-06",
        },
        {"id": "ALAS2-2026-9999", "severity": "Medium", "cves": [], "released": "2026-08-01"},
    ]
}


def host(host_id: str, state: str, criticality: str = "high") -> dict:
    return {
        "host_id": host_id,
        "name": host_id,
        "environment": "prod",
        "os_family": "amazon_linux_2",
        "criticality": criticality,
        "final_state": state,
    }


def test_kev_window_runs_from_the_later_of_listing_and_release() -> None:
    entry = FEEDS.kev.get("CVE-2023-0386")
    window = entry.due_date - entry.date_added
    released = dt.date(2026, 10, 6)
    assert kev_clock(["CVE-2023-0386"], released, FEEDS) == (released + window, "CVE-2023-0386")
    assert kev_clock(["CVE-0000-0000"], released, FEEDS) == (None, None)


def test_patched_hosts_meet_their_clocks_and_left_hosts_stay_open() -> None:
    report = risk_and_sla(
        hosts=[host("i-ok", "patched"), host("i-bad", "failed"), host("i-out", "out_of_scope")],
        approved=APPROVED,
        feeds=FEEDS,
        frameworks=["pci_dss"],
        as_of=dt.date(2026, 11, 22),
    )
    summary = report["summary"]
    assert summary["open"] == 2
    assert {r["host_id"] for r in report["open"]} == {"i-bad"}
    kev_row = next(r for r in report["open"] if r["patch_id"] == "ALAS2-2026-2644")
    assert kev_row["kev"] is True and kev_row["priority"] == "P1"
    # PCI 6.3.3: critical within one calendar month of release; KEV's window is shorter and wins.
    assert kev_row["due"] <= "2026-11-06"
    assert kev_row["status"] == "overdue" and kev_row["days_overdue"] > 0
    medium = next(r for r in report["open"] if r["patch_id"] == "ALAS2-2026-9999")
    # PCI would allow 90 days for medium; the tenant's internal policy (60 days) is stricter and wins.
    assert medium["due"] == "2026-09-30" and "tenant policy" in medium["due_source"]
    assert summary["overdue_by_severity"]["Critical"] == 1
    # The patched host resolved both on the cycle date, after their clocks ran out: late, not met.
    assert summary["by_status"] == {"late": 2, "overdue": 2}
    assert report["feeds"]["kev_catalog_version"] == "2025.08.25"


def test_open_rows_are_capped_but_counted() -> None:
    hosts = [host(f"i-{n:04d}", "held") for n in range(30)]
    report = risk_and_sla(
        hosts=hosts,
        approved=APPROVED,
        feeds=FEEDS,
        frameworks=["soc2"],
        as_of=dt.date(2026, 11, 22),
        open_rows_limit=10,
    )
    assert len(report["open"]) == 10 and report["summary"]["open"] == 60 and report["open_truncated"] is True


def test_feeds_older_than_a_week_on_the_cycle_date_are_flagged_with_their_age() -> None:
    from patchcycle.domain.risk_report import feed_warnings

    kev_day = dt.date.fromisoformat(FEEDS.kev.date_released[:10])  # 2025-08-25; EPSS of 2025-09-03
    assert feed_warnings(FEEDS, kev_day) == []
    assert feed_warnings(FEEDS, kev_day + dt.timedelta(days=7)) == []  # a week old: not stale yet
    late = kev_day + dt.timedelta(days=454)
    warnings = feed_warnings(FEEDS, late)
    assert warnings[0] == (
        f"CISA KEV catalog of {kev_day.isoformat()} is 454 days older than the cycle ({late.isoformat()}): "
        "exploited CVEs listed since are not ranked as such"
    )
    assert warnings[1].startswith("EPSS scores of 2025-09-03 is 445 days older") and len(warnings) == 2


def test_the_committed_snapshots_are_named_as_such_not_by_a_machine_path() -> None:
    assert FEEDS.source == "committed snapshots (include/feeds of the patchcycle release)"
    report = risk_and_sla(
        hosts=[host("i-1", "failed")],
        approved=APPROVED,
        feeds=FEEDS,
        frameworks=["pci_dss"],
        as_of=dt.date(2026, 11, 22),
    )
    assert report["feeds"]["warnings"] and report["feeds"]["source"] == FEEDS.source
