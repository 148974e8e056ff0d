"""The zero-day cycle's pure policy: its trigger's CVE ids, which new KEV listings affect which tenant,
the emergency facts it runs with, and what it says when no fix exists yet."""

from __future__ import annotations

import datetime as dt

from patchcycle.config.models import OsFamily
from patchcycle.domain.zero_day import (
    MAX_CVES,
    cve_problems,
    emergency_facts,
    emergency_policy,
    exposed_hosts,
    kev_triggers,
    new_kev_entries,
    product_families,
)
from patchcycle.feeds import KevCatalog, KevEntry

ADDED = dt.date(2026, 11, 24)


def entry(cve: str, vendor: str, product: str) -> KevEntry:
    return KevEntry(cve, ADDED, ADDED + dt.timedelta(days=21), False, vendor, product)


WINDOWS = entry("CVE-2026-5001", "Microsoft", "Windows")
KERNEL = entry("CVE-2026-5002", "Linux", "Kernel")
ROUTER = entry("CVE-2026-5003", "Cisco", "IOS XE")


def test_cve_ids_are_checked_before_anything_runs() -> None:
    assert cve_problems(["CVE-2026-5001"]) == []
    assert "at least one CVE id" in cve_problems([])[0]
    assert "are not CVE ids" in cve_problems(["CVE-26-1", "cve-2026-5001"])[0]
    assert "more than once" in cve_problems(["CVE-2026-5001", "CVE-2026-5001"])[0]
    assert f"at most {MAX_CVES}" in cve_problems([f"CVE-2026-{i:05d}" for i in range(MAX_CVES + 1)])[0]


def test_a_kev_product_names_the_os_families_it_affects() -> None:
    assert product_families(WINDOWS) == {f for f in OsFamily if f.is_windows}
    assert product_families(KERNEL) == {f for f in OsFamily if f.is_linux}
    assert product_families(entry("CVE-2026-5004", "Red Hat", "Enterprise Linux")) == {
        OsFamily.rhel_7,
        OsFamily.rhel_8,
        OsFamily.rhel_9,
    }
    assert product_families(ROUTER) == set()


def test_only_new_listings_count_and_the_first_refresh_sets_the_baseline() -> None:
    before = KevCatalog("v1", "d", {KERNEL.cve_id: KERNEL})
    after = KevCatalog("v2", "d", {KERNEL.cve_id: KERNEL, WINDOWS.cve_id: WINDOWS})
    assert new_kev_entries(after, before) == [WINDOWS]
    assert new_kev_entries(after, None) == []


def test_a_new_listing_triggers_only_the_tenants_that_patch_its_os_and_start_automatically(
    make_tenant,
) -> None:
    zero_day = {
        "emergency_soak_hours": 0,
        "emergency_change_window": "patch_outside_window",
        "approver": "J. Alvarez",
        "approver_role": "CISO",
        "approved_on": "2026-10-01",
    }
    windows_tenant = make_tenant(id="cu_win", risk={"zero_day": zero_day})  # amazon_linux_2 + windows_2019
    linux_only = make_tenant(
        id="cu_lin",
        risk={"zero_day": zero_day},
        baselines=[
            {
                "os_family": "rhel_8",
                "classifications": ["Security"],
                "severities": ["Critical"],
                "approve_after_days": 7,
            }
        ],
    )
    manual_only = make_tenant(id="cu_man", risk={"zero_day": {**zero_day, "automatic": False}})
    no_policy = make_tenant(id="cu_none")
    triggers = kev_triggers([WINDOWS, ROUTER], [windows_tenant, linux_only, manual_only, no_policy], "v2")
    assert [(t.tenant_id, t.cve_ids, t.families) for t in triggers] == [
        ("cu_win", ("CVE-2026-5001",), ("windows_2019",))
    ]
    assert triggers[0].extra("feeds/2026-11-24/run") == {
        "tenant_id": "cu_win",
        "cve_ids": ["CVE-2026-5001"],
        "affected_os_families": ["windows_2019"],
        "kev_catalog_version": "v2",
        "feeds": "feeds/2026-11-24/run",
    }


def test_the_emergency_policy_becomes_the_runs_overrides_with_its_approver(make_tenant) -> None:
    tenant = make_tenant(
        risk={
            "zero_day": {
                "emergency_soak_hours": 2,
                "emergency_change_window": "patch_outside_window",
                "approver": "J. Alvarez",
                "approver_role": "CISO",
                "approved_on": "2026-10-01",
            }
        }
    )
    facts = emergency_facts(tenant.risk.zero_day, ["CVE-2026-5001"])
    assert facts["soak_hours_override"] == 2
    assert "approved by J. Alvarez (CISO) on 2026-10-01" in facts["soak_override_reason"]
    assert "outside the change window" in facts["window_override_reason"]
    waits = tenant.risk.zero_day.model_copy(update={"emergency_change_window": "wait_for_window"})
    assert emergency_facts(waits, ["CVE-2026-5001"])["window_override_reason"] is None
    assert emergency_policy(tenant.risk.zero_day)["approver"] == "J. Alvarez"


def test_exposure_without_a_fix_is_what_the_cloud_reports_or_what_the_kev_product_names(host_row) -> None:
    rows = [
        host_row("i-1", os_family="windows_2019"),
        host_row("i-2", missing_cves=["CVE-2026-5003"]),
        host_row("i-3"),
        host_row("i-4", os_family="windows_2019", environment=""),
    ]
    assert [h["host_id"] for h in exposed_hosts(rows, WINDOWS.cve_id, WINDOWS)] == ["i-1"]
    (reported,) = exposed_hosts(rows, ROUTER.cve_id, ROUTER)
    assert (reported["host_id"], reported["basis"]) == ("i-2", "its cloud reports the CVE missing")
    assert exposed_hosts(rows, "CVE-2026-9999", None) == []


def test_a_zero_day_cycle_leaves_the_hosts_it_has_no_fix_for_out_of_scope(tenant, host_row) -> None:
    from patchcycle.domain.preflight import evaluate_preflight

    plan = {
        "approved": {"windows_2019": [{"id": "KB5049999"}], "amazon_linux_2": []},
        "risk": {"zero_day": {"cves": ["CVE-2026-21001"], "without_fix": []}},
    }
    rows = [host_row("i-1", os_family="windows_2019"), host_row("i-2"), host_row("i-3", agent_online=False)]
    decisions = {
        d.host_id: (d.verdict, d.reason) for d in evaluate_preflight(tenant, rows, plan=plan).decisions
    }
    assert decisions["i-1"] == ("eligible", None)
    assert decisions["i-2"] == (
        "out_of_scope",
        "the zero-day cycle for CVE-2026-21001 planned no fix for amazon_linux_2",
    )
    assert decisions["i-3"][0] == "out_of_scope"  # not held: it is not this cycle's
    monthly = {"approved": {"amazon_linux_2": []}}
    assert evaluate_preflight(tenant, rows[1:2], plan=monthly).decisions[0].verdict == "eligible"
