"""The cycle plan: approval rules, the frozen and hashed plan, SSM catalog rows and the install list."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json

import pytest
import yaml

from patchcycle.config.models import Baseline, OsFamily, Severity
from patchcycle.domain.plan import (
    PLAN_SCHEMA_VERSION,
    approval_cutoff,
    build_cycle_plan,
    canonical_json,
    catalog_patch_from_ssm,
    install_override_list,
    is_approved,
)

CYCLE = dt.date(2026, 11, 22)  # fourth Sunday of November 2026; 7-day cutoff 2026-11-15
EARLIER_CYCLE = dt.date(2026, 10, 25)  # 7-day cutoff 2026-10-18

AL2 = Baseline(
    os_family=OsFamily.amazon_linux_2,
    classifications=["Security", "Bugfix"],
    severities=[Severity.Critical, Severity.High],
    approve_after_days=7,
)


@pytest.fixture
def catalog(make_patch):
    """A catalog for the base tenant (amazon_linux_2 and windows_2019 baselines), with decoys."""
    return [
        make_patch(id="ALAS2-2026-2610", title="openssl-1.0.2k-24.amzn2.0.14", released=dt.date(2026, 9, 14)),
        make_patch(
            id="ALAS2-2026-2644",
            title="glibc-2.26-66.amzn2",
            vendor_severity="Critical",
            severity=Severity.Critical,
            cves=("CVE-2023-0386", "CVE-2023-0001"),
            released=dt.date(2026, 10, 6),
        ),
        make_patch(
            id="ALAS2-2026-2671",
            title="kernel-5.10.230-223.885.amzn2",
            vendor_severity="Critical",
            severity=Severity.Critical,
            released=dt.date(2026, 10, 29),
        ),
        make_patch(
            id="ALAS2-2026-2690",
            title="bind-9.11.4-26.amzn2",
            classification="Bugfix",
            released=dt.date(2026, 11, 15),
        ),
        # Listed by SSM out of order: an older advisory id released later, and two on the same day.
        make_patch(id="ALAS2-2026-2400", title="nss-3.90.0-2.amzn2", released=dt.date(2026, 10, 20)),
        make_patch(id="ALAS2-2026-2399", title="nspr-4.35.0-1.amzn2", released=dt.date(2026, 10, 20)),
        # Decoys: too new, too mild, wrong classification, unknown severity, no baseline for the family.
        make_patch(id="ALAS2-2026-2702", title="sudo-1.8.23-10.amzn2.3.5", released=dt.date(2026, 11, 16)),
        make_patch(
            id="ALAS2-2026-2688",
            vendor_severity="Medium",
            severity=Severity.Medium,
            released=dt.date(2026, 11, 4),
        ),
        make_patch(id="ALAS2-2026-2500", classification="Enhancement", released=dt.date(2026, 8, 1)),
        make_patch(
            id="ALAS2-2026-2501", vendor_severity="Unspecified", severity=None, released=dt.date(2026, 8, 1)
        ),
        make_patch(
            id="RHSA-2026:1234", os_family=OsFamily.rhel_8, title="kernel-4.18", released=dt.date(2026, 9, 1)
        ),
        make_patch(
            id="KB5046615",
            os_family=OsFamily.windows_2019,
            title="2026-11 Cumulative Update for Windows Server 2019",
            classification="SecurityUpdates",
            vendor_severity="Critical",
            severity=Severity.Critical,
            cves=("CVE-2025-32709",),
            released=dt.date(2026, 11, 10),
        ),
        make_patch(
            id="KB5040000",
            os_family=OsFamily.windows_2019,
            title="2026-07 Servicing Stack Update",
            classification="ServicePacks",
            vendor_severity="Important",
            released=dt.date(2026, 7, 9),
        ),
    ]


APPROVED_ON_CYCLE = {
    # By release date, then id.
    "amazon_linux_2": [
        "ALAS2-2026-2610",  # 2026-09-14
        "ALAS2-2026-2644",  # 2026-10-06
        "ALAS2-2026-2399",  # 2026-10-20
        "ALAS2-2026-2400",  # 2026-10-20
        "ALAS2-2026-2671",  # 2026-10-29
        "ALAS2-2026-2690",  # 2026-11-15, exactly on the cutoff
    ],
    "windows_2019": ["KB5046615"],
}


# --- approval_cutoff / is_approved -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cycle_date", "days", "expected"),
    [
        (dt.date(2026, 11, 22), 7, dt.date(2026, 11, 15)),
        (dt.date(2026, 11, 22), 0, dt.date(2026, 11, 22)),
        (dt.date(2026, 1, 4), 14, dt.date(2025, 12, 21)),
        (dt.date(2028, 3, 5), 7, dt.date(2028, 2, 27)),
        (dt.date(2028, 3, 1), 1, dt.date(2028, 2, 29)),
        (dt.date(2026, 11, 22), 365, dt.date(2025, 11, 22)),
    ],
)
def test_approval_cutoff(cycle_date, days, expected):
    assert approval_cutoff(cycle_date, days) == expected


@pytest.mark.parametrize(
    ("changes", "baseline_changes", "approved"),
    [
        pytest.param({}, {}, True, id="security-high-old-enough"),
        pytest.param({"severity": Severity.Critical}, {}, True, id="critical"),
        pytest.param({"classification": "Bugfix"}, {}, True, id="second-classification"),
        pytest.param({"classification": "Enhancement"}, {}, False, id="classification-not-in-baseline"),
        pytest.param({"severity": Severity.Medium}, {}, False, id="medium-not-in-baseline"),
        pytest.param({"severity": Severity.Low}, {}, False, id="low-not-in-baseline"),
        pytest.param({"severity": None}, {}, False, id="unknown-severity-never-approved"),
        pytest.param(
            {"severity": Severity.Medium},
            {"severities": [Severity.Medium]},
            True,
            id="medium-when-baseline-has-it",
        ),
        pytest.param({"title": "kernel-5.10.230-223.885.amzn2"}, {}, True, id="kernel-included-by-default"),
        pytest.param(
            {"title": "kernel-5.10.230-223.885.amzn2"},
            {"include_kernel_updates": False},
            False,
            id="kernel-excluded",
        ),
        pytest.param(
            {"title": "Kernel-headers-5.10"},
            {"include_kernel_updates": False},
            False,
            id="kernel-title-any-case",
        ),
        pytest.param(
            {"title": "linux-image-5.15.0-1051-aws"},
            {"include_kernel_updates": False},
            False,
            id="linux-image",
        ),
        pytest.param(
            {"title": "linux-generic-hwe-22.04"}, {"include_kernel_updates": False}, False, id="linux-generic"
        ),
        pytest.param(
            {"title": "libkernel-utils-1.0"},
            {"include_kernel_updates": False},
            True,
            id="not-a-kernel-by-prefix",
        ),
        pytest.param({"released": dt.date(2026, 11, 15)}, {}, True, id="released-on-cutoff-day"),
        pytest.param({"released": dt.date(2026, 11, 16)}, {}, False, id="released-day-after-cutoff"),
        pytest.param({"released": dt.date(2026, 11, 22)}, {}, False, id="released-on-cycle-day"),
        pytest.param(
            {"released": dt.date(2026, 11, 22)}, {"approve_after_days": 0}, True, id="zero-day-aging"
        ),
        pytest.param(
            {"released": dt.date(2026, 11, 23)}, {"approve_after_days": 0}, False, id="released-after-cycle"
        ),
        pytest.param({"os_family": OsFamily.amazon_linux_2023}, {}, False, id="wrong-os-family"),
        pytest.param({"os_family": OsFamily.windows_2019}, {}, False, id="windows-patch-linux-baseline"),
    ],
)
def test_is_approved(make_patch, changes, baseline_changes, approved):
    patch = make_patch(**changes)
    baseline = Baseline.model_validate({**AL2.model_dump(), **baseline_changes})
    assert is_approved(patch, baseline, CYCLE) is approved


@pytest.mark.parametrize(
    ("title", "kernel"),
    [
        ("kernel-5.10.230", True),
        ("kernel", True),
        ("KERNEL-tools-5.10", True),
        ("linux-image-5.15.0-1051-aws", True),
        ("linux-generic", True),
        ("openssl-1.0.2k", False),
        ("linux-firmware-2024", False),
        ("2026-11 Cumulative Update for Windows Server 2019", False),
    ],
)
def test_is_kernel_update(make_patch, title, kernel):
    assert make_patch(title=title).is_kernel_update is kernel


# --- build_cycle_plan -----------------------------------------------------------------------------------


def approved_ids(plan):
    return {family: [p.id for p in patches] for family, patches in plan.approved.items()}


def test_build_cycle_plan_approves_the_expected_patches(tenant, catalog):
    plan = build_cycle_plan(tenant, CYCLE, catalog)
    assert plan.tenant_id == "cu_test"
    assert plan.cycle_date == "2026-11-22"
    assert plan.environments == ("nonprod", "staging", "prod")
    assert plan.schema_version == PLAN_SCHEMA_VERSION
    # Sorted by release date then id, and keyed by every baseline's family.
    assert approved_ids(plan) == APPROVED_ON_CYCLE
    assert plan.patch_ids == sorted(sum(APPROVED_ON_CYCLE.values(), []))


def test_build_cycle_plan_records_each_baseline_decision(tenant, catalog):
    plan = build_cycle_plan(tenant, CYCLE, catalog)
    decisions = {d.os_family: d for d in plan.baselines}
    assert [d.os_family for d in plan.baselines] == ["amazon_linux_2", "windows_2019"]
    al2 = decisions["amazon_linux_2"]
    assert al2.classifications == ("Bugfix", "Security")
    assert al2.severities == ("Critical", "High")
    assert al2.approve_after_days == 7
    assert al2.cutoff == "2026-11-15"
    assert al2.include_kernel_updates is True
    assert decisions["windows_2019"].classifications == ("CriticalUpdates", "SecurityUpdates")


def test_build_cycle_plan_approved_patch_fields(tenant, catalog):
    plan = build_cycle_plan(tenant, CYCLE, catalog)
    patches = {p.id: p for p in plan.approved["amazon_linux_2"]}
    glibc, kernel = patches["ALAS2-2026-2644"], patches["ALAS2-2026-2671"]
    assert glibc.id == "ALAS2-2026-2644"
    assert glibc.severity == "Critical"
    assert glibc.cves == ("CVE-2023-0001", "CVE-2023-0386")  # sorted
    assert glibc.released == "2026-10-06"
    assert glibc.classification == "Security"
    assert glibc.kernel_update is False
    assert kernel.kernel_update is True
    assert plan.approved["windows_2019"][0].severity == "Critical"


def test_build_cycle_plan_with_the_demo_tenant_covers_every_baseline(alpha, make_patch):
    catalog = [
        make_patch(id="ALAS2-1", released=dt.date(2026, 11, 1)),
        make_patch(id="RHSA-1", os_family=OsFamily.rhel_8, released=dt.date(2026, 11, 1)),
        make_patch(
            id="RHSA-2", os_family=OsFamily.rhel_8, classification="Bugfix", released=dt.date(2026, 11, 1)
        ),
    ]
    plan = build_cycle_plan(alpha, CYCLE, catalog)
    assert plan.tenant_id == "cu_alpha"
    assert approved_ids(plan) == {
        "amazon_linux_2": ["ALAS2-1"],
        "rhel_8": ["RHSA-1"],
        "ubuntu_22_04": [],
        "windows_2019": [],
    }


def test_plan_hash_is_sha256_of_canonical_json(tenant, catalog):
    plan = build_cycle_plan(tenant, CYCLE, catalog)
    assert plan.hash == hashlib.sha256(canonical_json(plan.to_dict())).hexdigest()
    assert len(plan.hash) == 64 and int(plan.hash, 16) >= 0


def test_plan_hash_is_deterministic(tenant, catalog):
    first = build_cycle_plan(tenant, CYCLE, catalog)
    again = build_cycle_plan(tenant, CYCLE, list(catalog))
    shuffled = build_cycle_plan(tenant, CYCLE, list(reversed(catalog)))
    from_generator = build_cycle_plan(tenant, CYCLE, (p for p in catalog))
    assert first.hash == again.hash == shuffled.hash == from_generator.hash
    assert first.to_dict() == shuffled.to_dict()


def test_plan_hash_ignores_baseline_listing_order(make_tenant, catalog):
    tenant = make_tenant()
    reordered = make_tenant(
        baselines=[
            {
                "os_family": "windows_2019",
                "classifications": ["CriticalUpdates", "SecurityUpdates"],
                "severities": ["High", "Critical"],
                "approve_after_days": 7,
            },
            {
                "os_family": "amazon_linux_2",
                "classifications": ["Bugfix", "Security"],
                "severities": ["High", "Critical"],
                "approve_after_days": 7,
            },
        ]
    )
    assert build_cycle_plan(tenant, CYCLE, catalog).hash == build_cycle_plan(reordered, CYCLE, catalog).hash


def _replace(catalog, patch_id, **changes):
    return [dataclasses.replace(p, **changes) if p.id == patch_id else p for p in catalog]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda c, mp: c[1:], id="approved-patch-removed"),
        pytest.param(
            lambda c, mp: [*c, mp(id="ALAS2-2026-2600", released=dt.date(2026, 9, 1))], id="patch-added"
        ),
        pytest.param(lambda c, mp: _replace(c, "ALAS2-2026-2644", title="glibc-2.26-67"), id="title-changed"),
        pytest.param(lambda c, mp: _replace(c, "ALAS2-2026-2644", cves=("CVE-2099-1",)), id="cves-changed"),
        pytest.param(
            lambda c, mp: _replace(c, "ALAS2-2026-2644", released=dt.date(2026, 10, 7)),
            id="release-date-changed",
        ),
        pytest.param(
            lambda c, mp: _replace(c, "ALAS2-2026-2610", severity=Severity.Critical), id="severity-changed"
        ),
        pytest.param(
            lambda c, mp: _replace(c, "ALAS2-2026-2702", released=dt.date(2026, 11, 15)),
            id="decoy-becomes-approvable",
        ),
        pytest.param(
            lambda c, mp: _replace(c, "ALAS2-2026-2644", classification="Enhancement"),
            id="approved-becomes-decoy",
        ),
    ],
)
def test_plan_hash_changes_when_the_catalog_changes_what_is_approved(tenant, catalog, make_patch, change):
    base = build_cycle_plan(tenant, CYCLE, catalog)
    changed = build_cycle_plan(tenant, CYCLE, change(catalog, make_patch))
    assert changed.hash != base.hash


def test_plan_hash_ignores_catalog_entries_no_baseline_approves(tenant, catalog):
    # The hash identifies the plan (what gets installed), not the catalog it was resolved from.
    base = build_cycle_plan(tenant, CYCLE, catalog)
    changed = _replace(catalog, "ALAS2-2026-2688", title="curl-8.4.0")
    changed = _replace(changed, "RHSA-2026:1234", released=dt.date(2026, 9, 2))
    assert build_cycle_plan(tenant, CYCLE, changed).hash == base.hash


@pytest.mark.parametrize(
    "baseline_change",
    [
        pytest.param({"approve_after_days": 8}, id="aging-days"),
        pytest.param({"severities": ["Critical"]}, id="severities"),
        pytest.param({"classifications": ["Security"]}, id="classifications"),
        pytest.param({"include_kernel_updates": False}, id="kernel-flag"),
    ],
)
def test_plan_hash_changes_when_a_baseline_changes(make_tenant, catalog, baseline_change):
    base_tenant = make_tenant()
    data = [b.model_dump(mode="json") for b in base_tenant.baselines]
    data[0].update(baseline_change)
    changed_tenant = make_tenant(baselines=data)
    assert (
        build_cycle_plan(changed_tenant, CYCLE, catalog).hash
        != build_cycle_plan(base_tenant, CYCLE, catalog).hash
    )


def test_plan_hash_changes_with_the_cycle_date_even_when_the_same_patches_are_approved(tenant, catalog):
    # 2026-11-23 has cutoff 2026-11-16, which would admit ALAS2-2026-2702; drop it to keep the set equal.
    catalog = [p for p in catalog if p.id != "ALAS2-2026-2702"]
    base = build_cycle_plan(tenant, CYCLE, catalog)
    next_day = build_cycle_plan(tenant, CYCLE + dt.timedelta(days=1), catalog)
    assert next_day.patch_ids == base.patch_ids
    assert next_day.hash != base.hash


def test_plan_hash_changes_with_the_tenant_environments(make_tenant, catalog):
    full = make_tenant()
    without_staging = make_tenant(
        environments=[e for e in full.model_dump(mode="json")["environments"] if e["name"] != "staging"]
    )
    assert (
        build_cycle_plan(without_staging, CYCLE, catalog).hash != build_cycle_plan(full, CYCLE, catalog).hash
    )


def test_backfilled_earlier_cycle_approves_fewer_patches(tenant, catalog):
    now = build_cycle_plan(tenant, CYCLE, catalog)
    backfill = build_cycle_plan(tenant, EARLIER_CYCLE, catalog)
    assert backfill.cycle_date == "2026-10-25"
    assert {d.cutoff for d in backfill.baselines} == {"2026-10-18"}
    # What was approvable on 25 October: only patches released on or before 18 October.
    assert approved_ids(backfill) == {
        "amazon_linux_2": ["ALAS2-2026-2610", "ALAS2-2026-2644"],
        "windows_2019": [],
    }
    assert set(backfill.patch_ids) < set(now.patch_ids)
    assert backfill.hash != now.hash


def test_plan_to_dict_is_plain_json(tenant, catalog):
    plan = build_cycle_plan(tenant, CYCLE, catalog)
    data = json.loads(canonical_json(plan.to_dict()))
    assert data["tenant_id"] == "cu_test"
    assert data["schema_version"] == PLAN_SCHEMA_VERSION
    assert list(data["approved"]) == ["amazon_linux_2", "windows_2019"]
    assert [p["id"] for p in data["approved"]["amazon_linux_2"]] == APPROVED_ON_CYCLE["amazon_linux_2"]
    assert data["baselines"][0]["cutoff"] == "2026-11-15"


def test_empty_catalog_plans_nothing_for_every_family(tenant):
    plan = build_cycle_plan(tenant, CYCLE, [])
    assert plan.approved == {"amazon_linux_2": (), "windows_2019": ()}
    assert plan.patch_ids == []


# --- catalog_patch_from_ssm -------------------------------------------------------------------------------

LINUX_ROW = {
    "Id": "ALAS2-2026-2644",
    "ReleaseDate": dt.datetime(2026, 10, 6, 0, 0, tzinfo=dt.UTC),
    "Title": "glibc-2.26-66.amzn2",
    "Description": "Security update for glibc",
    "Vendor": "Amazon Linux",
    "Product": "AmazonLinux2",
    "Classification": "Security",
    "Severity": "Critical",
    "CVEIds": ["CVE-2023-0386"],
}

WINDOWS_ROW = {
    "Id": "KB5046615",
    "ReleaseDate": dt.datetime(2026, 11, 10, 18, 0, tzinfo=dt.UTC),
    "Title": "2026-11 Cumulative Update for Windows Server 2019 for x64-based Systems (KB5046615)",
    "Vendor": "Microsoft",
    "Product": "WindowsServer2019",
    "Classification": "SecurityUpdates",
    "MsrcSeverity": "Important",
    "KbNumber": "KB5046615",
    "CVEIds": ["CVE-2025-32709", "CVE-2025-32701"],
}


def test_catalog_patch_from_ssm_linux_row():
    patch = catalog_patch_from_ssm(LINUX_ROW, OsFamily.amazon_linux_2)
    assert patch.id == "ALAS2-2026-2644"
    assert patch.os_family is OsFamily.amazon_linux_2
    assert patch.title == "glibc-2.26-66.amzn2"
    assert patch.classification == "Security"
    assert patch.vendor_severity == "Critical"
    assert patch.severity is Severity.Critical
    assert patch.cves == ("CVE-2023-0386",)
    assert patch.released == dt.date(2026, 10, 6)
    assert is_approved(patch, AL2, CYCLE) is True


def test_catalog_patch_from_ssm_windows_row_uses_msrc_severity():
    patch = catalog_patch_from_ssm(WINDOWS_ROW, OsFamily.windows_2019)
    assert patch.vendor_severity == "Important"
    assert patch.severity is Severity.High
    assert patch.classification == "SecurityUpdates"
    assert patch.cves == ("CVE-2025-32709", "CVE-2025-32701")
    assert patch.released == dt.date(2026, 11, 10)
    assert patch.is_kernel_update is False


def test_catalog_patch_from_ssm_prefers_severity_over_msrc_severity():
    row = {**WINDOWS_ROW, "Severity": "Critical"}
    assert catalog_patch_from_ssm(row, OsFamily.windows_2019).severity is Severity.Critical
    row = {**WINDOWS_ROW, "Severity": ""}  # an empty Severity falls back to MsrcSeverity
    assert catalog_patch_from_ssm(row, OsFamily.windows_2019).severity is Severity.High


@pytest.mark.parametrize(
    ("release_date", "expected"),
    [
        pytest.param(dt.datetime(2026, 10, 6, 0, 0, tzinfo=dt.UTC), dt.date(2026, 10, 6), id="utc-datetime"),
        pytest.param(
            dt.datetime(2026, 10, 6, 23, 59, 59, tzinfo=dt.UTC), dt.date(2026, 10, 6), id="utc-late"
        ),
        pytest.param(
            dt.datetime(2026, 10, 6, 21, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            dt.date(2026, 10, 7),
            id="offset-datetime-to-utc-date",
        ),
        pytest.param(
            dt.datetime(2026, 10, 7, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=9))),
            dt.date(2026, 10, 6),
            id="positive-offset-to-utc-date",
        ),
        pytest.param("2026-10-06", dt.date(2026, 10, 6), id="iso-date-string"),
        pytest.param("2026-10-06T00:00:00Z", dt.date(2026, 10, 6), id="iso-datetime-string"),
        pytest.param("2026-10-06 00:00:00+00:00", dt.date(2026, 10, 6), id="str-of-datetime"),
        pytest.param(dt.date(2026, 10, 6), dt.date(2026, 10, 6), id="date"),
    ],
)
def test_catalog_patch_from_ssm_release_dates(release_date, expected):
    patch = catalog_patch_from_ssm({**LINUX_ROW, "ReleaseDate": release_date}, OsFamily.amazon_linux_2)
    assert patch.released == expected
    assert type(patch.released) is dt.date


def test_catalog_patch_from_ssm_sparse_row_defaults():
    row = {"Id": "ALAS2-2026-9999", "ReleaseDate": "2026-10-06", "CVEIds": None}
    patch = catalog_patch_from_ssm(row, OsFamily.amazon_linux_2)
    assert patch.title == "ALAS2-2026-9999"
    assert patch.classification == ""
    assert patch.vendor_severity == ""
    assert patch.severity is None
    assert patch.cves == ()
    assert is_approved(patch, AL2, CYCLE) is False


def test_catalog_patch_from_ssm_unknown_vendor_severity_is_not_approved():
    patch = catalog_patch_from_ssm({**WINDOWS_ROW, "MsrcSeverity": "Unspecified"}, OsFamily.windows_2019)
    assert patch.vendor_severity == "Unspecified"
    assert patch.severity is None


# --- install_override_list / summary_lines ----------------------------------------------------------------


def test_install_override_list_parses_back_to_the_plan_ids(tenant, catalog):
    plan = build_cycle_plan(tenant, CYCLE, catalog)
    document = yaml.safe_load(install_override_list(plan))
    assert list(document) == ["patches"]
    ids = [p["id"] for p in document["patches"]]
    assert ids == APPROVED_ON_CYCLE["amazon_linux_2"] + APPROVED_ON_CYCLE["windows_2019"]
    assert sorted(ids) == plan.patch_ids
    titles = {p["id"]: p["title"] for p in document["patches"]}
    assert titles["KB5046615"] == "2026-11 Cumulative Update for Windows Server 2019"
    assert titles["ALAS2-2026-2671"] == "kernel-5.10.230-223.885.amzn2"


def test_install_override_list_survives_yaml_special_characters(tenant, make_patch):
    tricky = 'fix: "quoted" #not-a-comment - [x] {y} & *z'
    plan = build_cycle_plan(tenant, CYCLE, [make_patch(id="RHSA-2026:1234", title=tricky)])
    assert yaml.safe_load(install_override_list(plan)) == {
        "patches": [{"id": "RHSA-2026:1234", "title": tricky}]
    }


def test_install_override_list_of_an_empty_plan(tenant):
    assert yaml.safe_load(install_override_list(build_cycle_plan(tenant, CYCLE, []))) == {"patches": []}


def test_summary_lines_mention_every_family_and_patch(alpha, make_patch):
    catalog = [
        make_patch(id="ALAS2-2026-2644", cves=("CVE-2023-0386",)),
        make_patch(id="ALAS2-2026-2645", cves=()),
        make_patch(id="RHSA-2026:0001", os_family=OsFamily.rhel_8, title="openssl-3.0.7"),
    ]
    plan = build_cycle_plan(alpha, CYCLE, catalog)
    lines = plan.summary_lines()
    text = "\n".join(lines)
    assert lines[0] == f"Cycle plan for cu_alpha, cycle date 2026-11-22, plan {plan.hash[:12]}"
    assert len(lines) == 1 + 4 + 3  # header, one line per family, one per patch
    for family, count in [("amazon_linux_2", 2), ("rhel_8", 1), ("windows_2019", 0)]:
        family_lines = [line for line in lines if line.startswith(f"  {family}: ")]
        assert len(family_lines) == 1
        assert f"{count} patch(es) approved" in family_lines[0]
        assert "released on or before 2026-11-15" in family_lines[0]
    for patch_id in plan.patch_ids:
        assert sum(patch_id in line for line in lines) == 1
    assert "ALAS2-2026-2644 [High]" in text and "CVE-2023-0386" in text
    assert "no CVE" in next(line for line in lines if "ALAS2-2026-2645" in line)
    assert "Critical/High" in text


# --- kernels, install variants and what each cloud is told to install ----------------------------------

from patchcycle.domain.plan import (  # noqa: E402
    NO_KERNEL,
    install_selection,
    kernel_release,
    target_kernel,
)


@pytest.mark.parametrize(
    ("family", "name", "version", "release", "expected"),
    [
        (OsFamily.rhel_9, "kernel", "5.14.0", "503.21.1.el9_5", "5.14.0-503.21.1.el9_5.x86_64"),
        (OsFamily.amazon_linux_2, "kernel", "5.10.230", "223.885.amzn2", "5.10.230-223.885.amzn2.x86_64"),
        (
            OsFamily.ubuntu_22_04,
            "linux-image-5.15.0-126-generic",
            "5.15.0-126.136",
            None,
            "5.15.0-126-generic",
        ),
        (OsFamily.rhel_9, "openssl", "3.0.7", "29.el9_5", None),
        (OsFamily.ubuntu_22_04, "linux-image-generic", "5.15.0.126", None, None),  # a meta package
        (OsFamily.windows_2022, "kernel", "1", "2", None),
    ],
)
def test_kernel_release_of_a_package(family, name, version, release, expected):
    assert kernel_release(family, name, version, release, "x86_64") == expected


def test_ssm_rows_carry_package_kb_and_kernel_into_the_catalog():
    linux = catalog_patch_from_ssm(
        {
            "Id": "RHSA-1",
            "Title": "kernel-5.14.0-503.21.1.el9_5",
            "Classification": "Security",
            "Severity": "Important",
            "ReleaseDate": "2026-10-15",
            "Name": "kernel",
            "Version": "5.14.0",
            "Release": "503.21.1.el9_5",
            "Arch": "x86_64",
        },
        OsFamily.rhel_9,
    )
    assert (linux.package, linux.kb, linux.kernel_release) == ("kernel", None, "5.14.0-503.21.1.el9_5.x86_64")
    assert linux.is_kernel_update
    windows = catalog_patch_from_ssm(
        {
            "Id": "KB5046616",
            "Title": "2026-11 CU",
            "MsrcSeverity": "Important",
            "ReleaseDate": "2026-11-10",
            "KbNumber": "KB5046616",
            "Classification": "SecurityUpdates",
        },
        OsFamily.windows_2022,
    )
    assert (windows.package, windows.kb, windows.kernel_release) == (None, "5046616", None)


def test_no_kernel_variant_leaves_only_the_kernel_out(make_tenant, make_patch):
    tenant = make_tenant()
    kernel = make_patch(
        id="ALAS2-K",
        title="kernel-5.10.230-223.885.amzn2",
        package="kernel",
        kernel_release="5.10.230-223.885.amzn2.x86_64",
    )
    ssl = make_patch(id="ALAS2-S", package="openssl")
    plan = build_cycle_plan(tenant, dt.date(2026, 11, 22), [kernel, ssl])
    full = install_selection(plan, "amazon_linux_2")
    held = install_selection(plan, "amazon_linux_2", NO_KERNEL)
    assert set(full.patch_ids) == {"ALAS2-K", "ALAS2-S"} and full.packages == ("kernel", "openssl")
    assert held.patch_ids == ("ALAS2-S",) and held.packages == ("openssl",)
    assert target_kernel(plan, "amazon_linux_2") == "5.10.230-223.885.amzn2.x86_64"
    assert target_kernel(plan, "rhel_8") is None
    assert "ALAS2-K" in install_override_list(plan) and "ALAS2-K" not in install_override_list(
        plan, NO_KERNEL
    )
    with pytest.raises(ValueError, match="unknown install variant 'partial'"):
        install_selection(plan, "amazon_linux_2", "partial")


# -- the first-seen ledger ------------------------------------------------------------------------
def test_undated_entries_age_from_the_first_day_a_plan_saw_them(make_patch):
    from patchcycle.domain.plan import age_by_ledger, ledger_key

    undated = make_patch(id="pkg-a", released=None, package="openssl", version="3.0.2-1")
    dated = make_patch(id="pkg-b", package="curl", version="8.0-1")
    by_baseline = make_patch(id="pkg-c", released=None, approved_by_source=True, package="sudo", version="1")
    seen_before = {ledger_key(undated): "2026-10-01"}

    aged, ledger = age_by_ledger([undated, dated, by_baseline], seen_before, dt.date(2026, 11, 20))

    assert aged[0].first_seen == dt.date(2026, 10, 1)  # an earlier plan saw it: that day counts
    assert aged[1] is dated and aged[2] is by_baseline  # dated, or judged by its own baseline: as is
    assert ledger == seen_before  # nothing new to record


def test_a_new_undated_entry_is_seen_today_and_never_moves_later(make_patch):
    from patchcycle.domain.plan import age_by_ledger, ledger_key

    new = make_patch(id="pkg-a", released=None, package="openssl", version="3.0.2-1")
    aged, ledger = age_by_ledger([new], {}, dt.date(2026, 11, 20))
    assert aged[0].first_seen == dt.date(2026, 11, 20)
    assert ledger == {ledger_key(new): "2026-11-20"}

    # A source that knows an earlier first detection moves the day earlier, never later.
    earlier = make_patch(
        id="pkg-a", released=None, package="openssl", version="3.0.2-1", first_seen=dt.date(2026, 11, 2)
    )
    aged, ledger = age_by_ledger([earlier], ledger, dt.date(2026, 12, 20))
    assert aged[0].first_seen == dt.date(2026, 11, 2)
    assert ledger == {ledger_key(new): "2026-11-02"}


def test_an_entry_first_seen_after_the_cutoff_is_not_approved(make_patch):
    from patchcycle.domain.plan import Baseline, is_approved

    baseline = Baseline(
        os_family="amazon_linux_2", classifications=["Security"], severities=["High"], approve_after_days=7
    )
    seen = make_patch(released=None, first_seen=dt.date(2026, 11, 20))
    assert not is_approved(seen, baseline, dt.date(2026, 11, 22))
    assert is_approved(seen, baseline, dt.date(2026, 11, 27))
    nothing = make_patch(released=None)
    assert not is_approved(nothing, baseline, dt.date(2027, 1, 1))  # no date at all: never by age


def test_the_ledger_is_append_only_and_the_earliest_day_counts():
    from patchcycle.domain.plan import ledger_additions, merge_ledgers

    merged = merge_ledgers([{"a": "2026-10-25", "b": "2026-11-22"}, {"b": "2026-11-08", "c": "2026-12-03"}])
    assert merged == {"a": "2026-10-25", "b": "2026-11-08", "c": "2026-12-03"}
    after = {**merged, "d": "2026-12-03", "c": "2026-12-01"}
    assert ledger_additions(merged, after) == {"c": "2026-12-01", "d": "2026-12-03"}
