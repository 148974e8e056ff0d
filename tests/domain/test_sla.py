"""SLA clocks: calendar-month arithmetic, which rule sets the due date, statuses at the edges, UTC dates.

Expected dates are written out by hand from a calendar, not computed with the code under test.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from patchcycle.config.models import Framework, Severity
from patchcycle.domain.sla import (
    CISA_KEV,
    PCI_DSS_633,
    SlaItem,
    SlaPolicy,
    add_months,
    days_overdue,
    due_date,
    sla_status,
    sla_table,
    utc_date,
)
from patchcycle.feeds import load_feed_snapshots

D = dt.date
PCI = ["soc2", "pci_dss"]
SOC2 = ["soc2"]
# A tenant policy lenient enough that the framework rule under test is the one that binds.
LENIENT = SlaPolicy(critical_days=120, high_days=120, medium_days=120, low_days=120)
NEW_YORK = ZoneInfo("America/New_York")


# ------------------------------------------------------------------------------------ calendar months


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (D(2027, 1, 31), D(2027, 2, 28)),  # clamped to the end of February
        (D(2028, 1, 31), D(2028, 2, 29)),  # 2028 is a leap year
        (D(2028, 1, 30), D(2028, 2, 29)),
        (D(2028, 2, 29), D(2028, 3, 29)),
        (D(2027, 3, 31), D(2027, 4, 30)),  # 30-day month
        (D(2027, 4, 30), D(2027, 5, 30)),
        (D(2026, 12, 15), D(2027, 1, 15)),  # year rollover
        (D(2026, 12, 31), D(2027, 1, 31)),
        (D(2026, 10, 6), D(2026, 11, 6)),
    ],
)
def test_add_one_calendar_month(day, expected):
    assert add_months(day, 1) == expected


def test_add_months_across_several_months_and_backwards():
    assert add_months(D(2026, 8, 31), 6) == D(2027, 2, 28)
    assert add_months(D(2027, 3, 31), -1) == D(2027, 2, 28)
    assert add_months(D(2026, 1, 15), 0) == D(2026, 1, 15)


# ------------------------------------------------------------------------------------------ PCI DSS 6.3.3


@pytest.mark.parametrize(
    ("released", "expected"),
    [
        (D(2027, 1, 31), D(2027, 2, 28)),
        (D(2028, 1, 31), D(2028, 2, 29)),
        (D(2027, 3, 31), D(2027, 4, 30)),
        (D(2026, 12, 31), D(2027, 1, 31)),
        (D(2026, 12, 1), D(2027, 1, 1)),
    ],
)
@pytest.mark.parametrize("severity", [Severity.Critical, Severity.High])
def test_pci_critical_and_high_are_due_one_calendar_month_after_release(released, expected, severity):
    due = due_date(released, severity, PCI, None, LENIENT)
    assert (due.date, due.source) == (expected, PCI_DSS_633)


def test_pci_month_end_beats_thirty_days_in_february():
    # High, default tenant policy (30 days): 31 Jan 2027 + 30 days = 2 Mar; PCI's one month = 28 Feb.
    due = due_date(D(2027, 1, 31), Severity.High, PCI, None, SlaPolicy())
    assert (due.date, due.source) == (D(2027, 2, 28), PCI_DSS_633)


def test_equal_dates_name_pci_before_the_tenant_policy():
    # 31 Mar + 30 days = 30 Apr = 31 Mar + one month (clamped).
    due = due_date(D(2027, 3, 31), Severity.High, PCI, None, SlaPolicy())
    assert (due.date, due.source) == (D(2027, 4, 30), PCI_DSS_633)
    assert {d.source for d in due.considered} == {PCI_DSS_633, "tenant policy (high: 30 days)"}


@pytest.mark.parametrize("severity", [Severity.Medium, Severity.Low])
def test_pci_other_severities_are_due_in_90_days(severity):
    due = due_date(D(2026, 11, 4), severity, PCI, None, LENIENT)
    assert (due.date, due.source) == (D(2027, 2, 2), "PCI DSS 6.3.3 (other: 90 days)")


def test_medium_under_pci_with_default_policy_is_the_tenants_60_days():
    due = due_date(D(2026, 11, 4), Severity.Medium, PCI, None, SlaPolicy())
    assert (due.date, due.source) == (D(2027, 1, 3), "tenant policy (medium: 60 days)")


def test_pci_v401_applies_one_month_to_critical_only():
    policy = SlaPolicy(critical_days=120, high_days=120, pci_dss_version="4.0.1")
    assert due_date(D(2026, 10, 1), Severity.Critical, PCI, None, policy).date == D(2026, 11, 1)
    high = due_date(D(2026, 10, 1), Severity.High, PCI, None, policy)
    assert (high.date, high.source) == (D(2026, 12, 30), "PCI DSS 6.3.3 (other: 90 days)")


def test_pci_does_not_apply_to_tenants_without_it():
    due = due_date(D(2027, 1, 31), Severity.High, SOC2, None, LENIENT)
    assert (due.date, due.source) == (D(2027, 5, 31), "tenant policy (high: 120 days)")


def test_frameworks_may_be_enum_members():
    due = due_date(D(2027, 1, 31), Severity.High, [Framework.pci_dss], None, LENIENT)
    assert due.source == PCI_DSS_633


# ------------------------------------------------------------------------------------------ tenant policy


def test_tenant_policy_stricter_than_pci_wins():
    # Critical: 15 days (6 Oct -> 21 Oct) beats PCI's one month (6 Nov).
    due = due_date(D(2026, 10, 6), Severity.Critical, PCI, None, SlaPolicy())
    assert (due.date, due.source) == (D(2026, 10, 21), "tenant policy (critical: 15 days)")


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (Severity.Critical, D(2026, 11, 16)),
        (Severity.High, D(2026, 12, 1)),
        (Severity.Medium, D(2026, 12, 31)),
        (Severity.Low, D(2027, 1, 30)),
    ],
)
def test_default_tenant_policy_is_15_30_60_90_days(severity, expected):
    due = due_date(D(2026, 11, 1), severity, SOC2, None)
    assert due.date == expected
    assert due.source.startswith("tenant policy")


def test_severity_may_be_given_as_its_value():
    assert due_date(D(2026, 11, 1), "high", SOC2, None).date == D(2026, 12, 1)
    with pytest.raises(ValueError, match="unknown severity 'Important'"):
        due_date(D(2026, 11, 1), "Important", SOC2, None)


@pytest.mark.parametrize("field", ["critical_days", "high_days", "pci_other_days"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_policy_days_must_be_positive_whole_numbers(field, value):
    with pytest.raises(ValueError, match=f"SlaPolicy.{field}"):
        SlaPolicy(**{field: value})


def test_policy_rejects_unknown_pci_version():
    with pytest.raises(ValueError, match="pci_dss_version"):
        SlaPolicy(pci_dss_version="3.2.1")


# ----------------------------------------------------------------------------------------------- KEV


def test_kev_due_earlier_than_pci_wins():
    due = due_date(D(2026, 10, 1), Severity.High, PCI, D(2026, 10, 20), LENIENT)
    assert (due.date, due.source) == (D(2026, 10, 20), CISA_KEV)


def test_pci_earlier_than_kev_due_wins():
    due = due_date(D(2026, 10, 1), Severity.High, PCI, D(2026, 12, 15), LENIENT)
    assert (due.date, due.source) == (D(2026, 11, 1), PCI_DSS_633)


def test_kev_and_pci_on_the_same_day_name_kev():
    due = due_date(D(2026, 10, 1), Severity.High, PCI, D(2026, 11, 1), LENIENT)
    assert due.source == CISA_KEV


def test_kev_due_before_release_still_applies():
    # The demo's 2026 patches carry CVEs whose real KEV due dates are in 2025.
    due = due_date(D(2026, 10, 6), Severity.Critical, PCI, D(2025, 7, 8))
    assert (due.date, due.source) == (D(2025, 7, 8), CISA_KEV)


def test_all_rules_considered_are_kept():
    due = due_date(D(2026, 10, 1), Severity.High, PCI, D(2026, 12, 15))
    assert sorted((d.source, d.date) for d in due.considered) == [
        (CISA_KEV, D(2026, 12, 15)),
        (PCI_DSS_633, D(2026, 11, 1)),
        ("tenant policy (high: 30 days)", D(2026, 10, 31)),
    ]


# ---------------------------------------------------------------------------------------- HIPAA NPRM


def test_hipaa_nprm_is_not_applied_by_default():
    due = due_date(D(2026, 10, 1), Severity.Critical, ["hipaa"], None, LENIENT)
    assert due.source == "tenant policy (critical: 120 days)"
    assert not any(d.source.startswith("HIPAA") for d in due.considered)


def test_hipaa_nprm_is_opt_in_for_hipaa_tenants():
    policy = SlaPolicy(critical_days=120, high_days=120, hipaa_nprm=True)
    critical = due_date(D(2026, 10, 1), Severity.Critical, ["hipaa"], None, policy)
    assert (critical.date, critical.source) == (D(2026, 10, 16), "HIPAA NPRM (proposed) (critical: 15 days)")
    high = due_date(D(2026, 10, 1), Severity.High, ["hipaa"], None, policy)
    assert (high.date, high.source) == (D(2026, 10, 31), "HIPAA NPRM (proposed) (high: 30 days)")
    medium = due_date(D(2026, 10, 1), Severity.Medium, ["hipaa"], None, policy)
    assert medium.source == "tenant policy (medium: 60 days)"
    # Opting in does nothing for tenants that do not report against HIPAA.
    assert due_date(D(2026, 10, 1), Severity.Critical, SOC2, None, policy).source.startswith("tenant")


# ------------------------------------------------------------------------------------------- statuses


DUE = D(2026, 11, 30)


def test_on_the_due_date_itself_a_patch_is_not_overdue():
    assert sla_status(DUE, None, as_of=DUE) == "due_soon"
    assert sla_status(DUE, None, as_of=DUE + dt.timedelta(days=1)) == "overdue"


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (D(2026, 11, 22), "open"),  # 8 days left
        (D(2026, 11, 23), "due_soon"),  # 7 days left: inside the window
        (D(2026, 11, 30), "due_soon"),
        (D(2026, 12, 1), "overdue"),
    ],
)
def test_due_soon_window_edges(as_of, expected):
    assert sla_status(DUE, None, as_of) == expected


def test_due_soon_window_is_configurable():
    assert sla_status(DUE, None, D(2026, 11, 16), due_soon_days=14) == "due_soon"
    assert sla_status(DUE, None, D(2026, 11, 15), due_soon_days=14) == "open"
    assert sla_status(DUE, None, D(2026, 11, 29), due_soon_days=0) == "open"
    assert sla_status(DUE, None, DUE, due_soon_days=0) == "due_soon"
    with pytest.raises(ValueError, match="due_soon_days"):
        sla_status(DUE, None, DUE, due_soon_days=-1)


@pytest.mark.parametrize(
    ("resolved_on", "expected", "overdue_days"),
    [
        (D(2026, 11, 2), "met", 0),
        (DUE, "met", 0),  # resolved on the due date is in time
        (D(2026, 12, 1), "late", 1),
        (D(2026, 12, 10), "late", 10),
    ],
)
def test_resolved_patches_are_met_or_late(resolved_on, expected, overdue_days):
    as_of = D(2026, 12, 20)
    assert sla_status(DUE, resolved_on, as_of) == expected
    assert days_overdue(DUE, resolved_on, as_of) == overdue_days


def test_resolution_after_as_of_is_not_known_yet():
    # A backfilled cycle dated 25 Nov does not see a resolution on 2 Dec.
    assert sla_status(DUE, D(2026, 12, 2), as_of=D(2026, 11, 25)) == "due_soon"
    assert sla_status(DUE, D(2026, 12, 2), as_of=D(2026, 12, 1)) == "overdue"
    assert days_overdue(DUE, D(2026, 12, 2), as_of=D(2026, 12, 1)) == 1


def test_days_overdue_of_unresolved_patches_counts_to_as_of():
    assert days_overdue(DUE, None, D(2026, 12, 31)) == 31
    assert days_overdue(DUE, None, D(2026, 11, 1)) == 0


# -------------------------------------------------------------------------------------- time zones


def test_release_late_in_the_evening_in_new_york_starts_the_clock_on_the_next_utc_day():
    # Published 31 Jan 2027, 22:30 in New York = 1 Feb 2027, 03:30 UTC. The clock runs on UTC dates, so
    # PCI's one month ends on 1 Mar, not on 28 Feb as the local date would give.
    published = dt.datetime(2027, 1, 31, 22, 30, tzinfo=NEW_YORK)
    released = utc_date(published)
    assert released == D(2027, 2, 1)
    assert due_date(released, Severity.High, PCI, None, LENIENT).date == D(2027, 3, 1)
    assert due_date(published.date(), Severity.High, PCI, None, LENIENT).date == D(2027, 2, 28)


def test_cycle_as_of_is_the_utc_date_of_the_run():
    # The cycle runs at 02:00 UTC on 22 Nov 2026, still 21 Nov (21:00) in New York. as_of is 22 Nov:
    # a patch due on 21 Nov is already overdue in the cycle's report.
    run = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)
    assert run.astimezone(NEW_YORK).date() == D(2026, 11, 21)
    assert sla_status(D(2026, 11, 21), None, as_of=utc_date(run)) == "overdue"


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="no time zone"):
        utc_date(dt.datetime(2027, 1, 31, 22, 30))
    with pytest.raises(TypeError, match="utc_date"):
        due_date(dt.datetime(2027, 1, 31, 22, 30, tzinfo=dt.UTC), Severity.High, PCI, None)


# ------------------------------------------------------------------------------------------ the table


def test_sla_table_with_the_committed_kev_snapshot():
    kev = load_feed_snapshots().kev.due_dates()
    items = [
        # host, patch, released, severity, cves, resolved_on
        ("alpha-prd-web-01", "ALAS2-2026-2644", "2026-10-06", "Critical", ["CVE-2023-0386"], None),
        # resolved_on may be left out
        (
            "alpha-prd-win-01",
            "KB5044277",
            D(2026, 10, 13),
            Severity.Critical,
            ("CVE-2025-29824", "CVE-2025-24993"),
        ),
        ("alpha-prd-db-01", "RHBA-2026:8950", "2026-11-05", "Low", [], None),
        SlaItem("alpha-prd-db-02", "RHBA-2026:8950", D(2026, 11, 5), "Low", (), "2026-11-20"),
        ("alpha-stg-app-01", "ALAS2023-2026-1233", D(2026, 11, 10), "Medium", [], None),
    ]
    rows = sla_table(items, frameworks=PCI, as_of=D(2026, 11, 22), kev_due_dates=kev)
    table = [(r.patch_id, r.due_date, r.source, r.status, r.days_overdue) for r in rows]
    assert table == [
        ("ALAS2-2026-2644", D(2025, 7, 8), CISA_KEV, "overdue", 502),
        ("KB5044277", D(2025, 4, 1), CISA_KEV, "overdue", 600),
        ("RHBA-2026:8950", D(2027, 2, 3), "PCI DSS 6.3.3 (other: 90 days)", "open", 0),
        ("RHBA-2026:8950", D(2027, 2, 3), "PCI DSS 6.3.3 (other: 90 days)", "met", 0),
        ("ALAS2023-2026-1233", D(2027, 1, 9), "tenant policy (medium: 60 days)", "open", 0),
    ]
    assert rows[1].kev_cve == "CVE-2025-24993"  # the CVE with the earlier KEV due date
    assert rows[1].notes == ("KEV due date 2025-04-01 (CVE-2025-24993) is before the patch's release",)
    assert rows[2].kev_cve is None and rows[2].notes == ()
    assert rows[3].to_dict() == {
        "host_id": "alpha-prd-db-02",
        "patch_id": "RHBA-2026:8950",
        "severity": "Low",
        "released": "2026-11-05",
        "due_date": "2027-02-03",
        "source": "PCI DSS 6.3.3 (other: 90 days)",
        "status": "met",
        "days_overdue": 0,
        "resolved_on": "2026-11-20",
        "kev_cve": None,
        "notes": "",
    }


def test_sla_table_without_kev_uses_framework_and_policy_rules():
    rows = sla_table(
        [("h1", "P-1", "2027-01-31", "High", ["CVE-2099-0001"], "2027-03-01")],
        frameworks=PCI,
        as_of=D(2027, 3, 5),
    )
    assert (rows[0].due_date, rows[0].source, rows[0].status, rows[0].days_overdue) == (
        D(2027, 2, 28),
        PCI_DSS_633,
        "late",
        1,
    )


def test_sla_table_rejects_bad_dates():
    with pytest.raises(ValueError, match=r"P-1: released: not a YYYY-MM-DD date: '31/01/2027'"):
        sla_table([("h1", "P-1", "31/01/2027", "High", [], None)], frameworks=PCI, as_of=D(2027, 3, 5))
    with pytest.raises(TypeError, match="as_of"):
        sla_table([], frameworks=PCI, as_of=dt.datetime(2027, 3, 5, tzinfo=dt.UTC))
