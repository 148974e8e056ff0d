"""AWS catalog policy: which SSM source each family reads, the tenant's SSM baseline as of the cutoff,
SSM titles parsed into exact packages, the InstallOverrideList formats, and each planned item's state.

Documents (cited in patchcycle.domain.catalog, where the code depends on them):
- DescribeAvailablePatches, Note (Amazon Linux 1/2 and Windows Server only):
  https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DescribeAvailablePatches.html
- PatchRule, ApproveUntilDate/ApproveAfterDays "Not supported for Debian Server or Ubuntu Server":
  https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PatchRule.html
- AWS-RunPatchBaseline, "Parameter name: InstallOverrideList", "Valid YAML content formats":
  https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-about-aws-runpatchbaseline.html
- Understanding patch compliance state values:
  https://docs.aws.amazon.com/systems-manager/latest/userguide/about-patch-compliance-states.html
"""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from patchcycle.config.models import Baseline, OsFamily, Severity
from patchcycle.domain import catalog as c
from patchcycle.domain.plan import build_cycle_plan, install_override_list

CUTOFF = dt.date(2026, 11, 15)


@pytest.mark.parametrize(
    ("family", "source"),
    [
        (OsFamily.amazon_linux_2, c.AVAILABLE_PATCHES_SOURCE),
        (OsFamily.windows_2019, c.AVAILABLE_PATCHES_SOURCE),
        (OsFamily.windows_2022, c.AVAILABLE_PATCHES_SOURCE),
        (OsFamily.amazon_linux_2023, c.SCAN_SOURCE),
        (OsFamily.rhel_8, c.SCAN_SOURCE),
        (OsFamily.centos_7, c.SCAN_SOURCE),
        (OsFamily.ubuntu_22_04, c.SCAN_SOURCE),
    ],
)
def test_describe_available_patches_is_read_only_where_aws_documents_it(family, source):
    assert c.catalog_source(family) == source


def _baseline(family: OsFamily, **kw) -> Baseline:
    data = {
        "os_family": family,
        "classifications": ["Security"],
        "severities": [Severity.High, Severity.Critical],
        "approve_after_days": 7,
        **kw,
    }
    return Baseline(**data)


def test_rhel_baseline_approves_until_the_cutoff_in_red_hat_words():
    request = c.baseline_request("cu_x", _baseline(OsFamily.rhel_8), CUTOFF)
    (rule,) = request.approval_rules["PatchRules"]
    assert rule["ApproveUntilDate"] == "2026-11-15" and "ApproveAfterDays" not in rule
    assert rule["PatchFilterGroup"]["PatchFilters"] == [
        {"Key": "CLASSIFICATION", "Values": ["Security"]},
        {"Key": "SEVERITY", "Values": ["Critical", "Important"]},
    ]
    assert rule["EnableNonSecurity"] is False
    assert request.operating_system == "REDHAT_ENTERPRISE_LINUX"
    assert request.patch_group == request.name == "patchcycle-cu_x-rhel_8"
    assert request.notes == ()


def test_windows_baseline_uses_msrc_severity():
    request = c.baseline_request(
        "cu_x", _baseline(OsFamily.windows_2019, classifications=["SecurityUpdates"]), CUTOFF
    )
    (rule,) = request.approval_rules["PatchRules"]
    assert {"Key": "MSRC_SEVERITY", "Values": ["Critical", "Important"]} in rule["PatchFilterGroup"][
        "PatchFilters"
    ]
    assert "EnableNonSecurity" not in rule and request.operating_system == "WINDOWS"


def test_ubuntu_baseline_carries_no_date_and_says_so():
    request = c.baseline_request("cu_x", _baseline(OsFamily.ubuntu_22_04), CUTOFF)
    (rule,) = request.approval_rules["PatchRules"]
    assert "ApproveUntilDate" not in rule and "ApproveAfterDays" not in rule
    assert not c.supports_approval_date(OsFamily.ubuntu_22_04)
    assert request.notes and "Ubuntu" in request.notes[0]


@pytest.mark.parametrize(
    ("kb", "title", "apt", "expected"),
    [
        (
            "openssl.x86_64",
            "openssl.x86_64:1:3.0.7-27.el9",
            False,
            c.PackageTitle("openssl", "x86_64", "1", "3.0.7-27.el9"),
        ),
        (
            "openssl.amd64",
            "openssl.amd64:3.0.2-0ubuntu1.18",
            True,
            c.PackageTitle("openssl", "amd64", None, "3.0.2-0ubuntu1.18"),
        ),
        ("openssl.x86_64", "openssl 3.0.7", False, None),  # not the documented format
        ("openssl.x86_64", "openssl.x86_64:3.0.7", False, None),  # YUM title without an epoch
    ],
)
def test_parse_package_title(kb, title, apt, expected):
    assert c.parse_package_title(kb, title, apt) == expected


def test_a_missing_row_after_a_scan_becomes_an_exact_catalog_entry():
    row = {
        "KBId": "kernel.x86_64",
        "Title": "kernel.x86_64:0:5.14.0-503.21.1.el9_5",
        "Classification": "Security",
        "Severity": "Important",
        "State": "Missing",
        "CVEIds": "CVE-2024-1,CVE-2024-2",
    }
    patch = c.catalog_patch_from_instance_patch(row, OsFamily.rhel_9, approved_by_source=True)
    assert (patch.id, patch.package, patch.arch, patch.epoch, patch.version) == (
        "kernel.x86_64:0:5.14.0-503.21.1.el9_5",
        "kernel",
        "x86_64",
        "0",
        "5.14.0-503.21.1.el9_5",
    )
    assert patch.released is None and patch.approved_by_source and patch.source == c.SCAN_SOURCE
    assert patch.severity is Severity.High and patch.cves == ("CVE-2024-1", "CVE-2024-2")
    assert patch.kernel_release == "5.14.0-503.21.1.el9_5.x86_64"
    bad = c.catalog_patch_from_instance_patch(
        {**row, "Title": "kernel"}, OsFamily.rhel_9, approved_by_source=True
    )
    assert bad is None


def test_scan_entries_are_approved_by_the_source_unless_the_os_takes_no_date(make_tenant):
    tenant = make_tenant(
        baselines=[
            {
                "os_family": "rhel_9",
                "classifications": ["Security"],
                "severities": ["High"],
                "approve_after_days": 7,
            },
            {
                "os_family": "ubuntu_22_04",
                "classifications": ["Security"],
                "severities": ["High"],
                "approve_after_days": 7,
            },
        ]
    )
    rhel = c.catalog_patch_from_instance_patch(
        {
            "KBId": "curl.x86_64",
            "Title": "curl.x86_64:0:7.76.1-31.el9",
            "Classification": "Security",
            "Severity": "Important",
        },
        OsFamily.rhel_9,
        approved_by_source=True,
    )
    ubuntu = c.catalog_patch_from_instance_patch(
        {
            "KBId": "curl.amd64",
            "Title": "curl.amd64:7.81.0-1ubuntu1.20",
            "Classification": "Security",
            "Severity": "Important",
        },
        OsFamily.ubuntu_22_04,
        approved_by_source=False,
        first_seen=dt.date(2026, 11, 22),  # the Scan: after the cutoff, so not approved
    )
    plan = build_cycle_plan(
        tenant, dt.date(2026, 11, 22), [rhel, ubuntu], source_notes={"ubuntu_22_04": ["no date"]}
    )
    assert [p.id for p in plan.approved["rhel_9"]] == ["curl.x86_64:0:7.76.1-31.el9"]
    assert plan.approved["rhel_9"][0].released_basis == "baseline"
    assert plan.approved["ubuntu_22_04"] == ()
    ubuntu_decision = next(d for d in plan.baselines if d.os_family == "ubuntu_22_04")
    assert "no date" in ubuntu_decision.notes


def test_install_override_list_uses_each_os_format(make_tenant):
    tenant = make_tenant(
        baselines=[
            {"os_family": f, "classifications": [cl], "severities": ["High"], "approve_after_days": 0}
            for f, cl in (
                ("rhel_9", "Security"),
                ("ubuntu_22_04", "Security"),
                ("windows_2019", "SecurityUpdates"),
            )
        ]
    )
    rows = [
        ({"KBId": "curl.x86_64", "Title": "curl.x86_64:0:7.76.1-31.el9"}, OsFamily.rhel_9),
        ({"KBId": "curl.amd64", "Title": "curl.amd64:7.81.0-1ubuntu1.20"}, OsFamily.ubuntu_22_04),
        ({"KBId": "KB5034127", "Title": "2024-01 Cumulative Update"}, OsFamily.windows_2019),
    ]
    patches = [
        c.catalog_patch_from_instance_patch(
            {
                **r,
                "Classification": "SecurityUpdates" if f.is_windows else "Security",
                "Severity": "Important",
            },
            f,
            approved_by_source=True,
        )
        for r, f in rows
    ]
    plan = build_cycle_plan(tenant, dt.date(2026, 11, 22), patches)
    document = yaml.safe_load(install_override_list(plan))
    assert document["patches"] == [
        {"id": "curl.x86_64", "title": "curl.x86_64:0:7.76.1-31.el9"},
        {"id": "curl.amd64", "title": "curl.amd64:7.81.0-1ubuntu1.20"},
        {"id": "KB5034127", "title": "2024-01 Cumulative Update"},
    ]


PLANNED = [
    {"id": "curl.x86_64:0:7.76.1-31.el9", "package": "curl", "arch": "x86_64", "version": "7.76.1-31.el9"},
    {"id": "zlib.x86_64:0:1.2.11-40.el9", "package": "zlib", "arch": "x86_64", "version": "1.2.11-40.el9"},
    {"id": "bash.x86_64:0:5.1.8-9.el9", "package": "bash", "arch": "x86_64", "version": "5.1.8-9.el9"},
]


def test_planned_item_states_on_linux():
    rows = [
        {"KBId": "curl.x86_64", "Title": "curl.x86_64:0:7.76.1-31.el9", "State": "Installed"},
        {"KBId": "zlib.x86_64", "Title": "zlib.x86_64:0:1.2.11-39.el9", "State": "Installed"},
    ]
    assert c.planned_item_states(PLANNED, rows, "rhel_9") == {
        "curl.x86_64:0:7.76.1-31.el9": c.INSTALLED,
        "zlib.x86_64:0:1.2.11-40.el9": c.OTHER_VERSION,
        "bash.x86_64:0:5.1.8-9.el9": c.NOT_REPORTED,  # the host has no bash package to update
    }
    failed = [{"KBId": "bash.x86_64", "Title": "bash.x86_64:0:5.1.8-9.el9", "State": "FAILED"}]
    assert c.planned_item_states(PLANNED, failed, "rhel_9")["bash.x86_64:0:5.1.8-9.el9"] == c.FAILED


def test_planned_item_states_on_windows_match_by_kb():
    planned = [{"id": "guid-1", "kb": "5034127"}]
    rows = [{"KBId": "KB5034127", "Title": "", "State": "InstalledOther"}]
    assert c.planned_item_states(planned, rows, "windows_2019") == {"guid-1": c.INSTALLED}
    rows = [{"KBId": "KB5034127", "Title": "", "State": "InstalledPendingReboot"}]
    assert c.planned_item_states(planned, rows, "windows_2019") == {"guid-1": c.PENDING_REBOOT}


# -- Reading a Scan's missing patches ------------------------------------------------------------
REQUESTED = dt.datetime(2026, 11, 22, 2, 5, tzinfo=dt.UTC)


def _state(operation="Scan", baseline="pb-al2023", ended="2026-11-22T02:09:00+00:00", missing=3):
    return {
        "Operation": operation,
        "BaselineId": baseline,
        "OperationEndTime": ended,
        "MissingCount": missing,
    }


def test_only_this_cycles_scan_against_the_tenant_baseline_is_read():
    states = {
        "i-current": _state(),
        "i-nothing-missing": _state(missing=0),
        "i-install": _state(operation="Install"),
        "i-other-baseline": _state(baseline="pb-default"),
        "i-stale": _state(ended="2026-11-21T23:00:00+00:00"),
        "i-aware-boto": _state(ended=dt.datetime(2026, 11, 22, 2, 6, tzinfo=dt.UTC)),
        "i-naive": _state(ended="2026-11-22T02:06:00"),  # read as UTC
    }
    hosts = [*states, "i-no-state"]
    found = c.scanned_hosts(hosts, states, "pb-al2023", REQUESTED)
    assert found.to_read == ["i-current", "i-aware-boto", "i-naive"]
    assert found.unread == ["i-install", "i-other-baseline", "i-stale", "i-no-state"]


def test_without_a_requested_time_any_scan_against_the_baseline_is_read():
    stale = {"i-1": _state(ended="2026-10-01T00:00:00+00:00")}
    assert c.scanned_hosts(["i-1"], stale, "pb-al2023", None).to_read == ["i-1"]


def test_ubuntu_patches_are_aged_from_the_scan_that_found_them_others_by_their_baseline():
    ended = dt.datetime(2026, 11, 22, 2, 9, tzinfo=dt.UTC)
    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    assert c.scan_first_seen(OsFamily.ubuntu_22_04, ended, REQUESTED, now) == dt.date(2026, 11, 22)
    assert c.scan_first_seen(OsFamily.ubuntu_22_04, None, None, now) == dt.date(2026, 11, 23)
    assert c.scan_first_seen(OsFamily.rhel_9, ended, REQUESTED, now) is None


def test_scan_notes_name_the_scope_and_what_was_left_out():
    assert c.scan_notes("aws:111122223333:eu-west-1", 0, 0) == []
    unread, unparsed = c.scan_notes("aws:111122223333:eu-west-1", 2, 1)
    assert unread.startswith("2 host(s) in aws:111122223333:eu-west-1 had no Scan")
    assert unparsed.startswith("1 missing patch row(s) not in the documented KBId/Title format")


def test_moment_reads_boto_and_record_timestamps_as_aware():
    assert c.moment(None) is None and c.moment("") is None
    assert c.moment("2026-11-22T02:00:00Z") == dt.datetime(2026, 11, 22, 2, tzinfo=dt.UTC)
    assert c.moment(dt.datetime(2026, 11, 22, 2)).tzinfo is dt.UTC
