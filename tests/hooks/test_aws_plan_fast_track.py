"""The plan's AWS step with a fast-track policy, against fleetsim through boto3: the fixes the plan will
fast-track are put into each SSM baseline's ApprovedPatches before the Scan (advisory ids on Amazon Linux
2, read from DescribeAvailablePatches; KEV CVE ids on RHEL, whose catalog is the Scan itself), so the Scan
reports them Missing and the plan approves them with the reason; without the policy nothing changes.

Documents: UpdatePatchBaseline ApprovedPatches (at most 50);
https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_UpdatePatchBaseline.html;
Package name formats for approved and rejected patch lists (CVE and advisory ids for YUM families),
https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-approved-rejected-package-name-formats.html.
"""

from __future__ import annotations

import datetime as dt

import pytest
from fleetsim_testkit import Fleet, group, patch, scenario_dict, wait_command

from devtools.local import aws_connection
from patchcycle.config.models import Tenant
from patchcycle.domain.fast_track import AGE_UNKNOWN, FastTrackPolicy
from patchcycle.domain.plan import PlanRisk, build_cycle_plan
from patchcycle.feeds import FeedSnapshot, KevCatalog, KevEntry, load_feed_snapshots
from patchcycle.operators.base import EventLog
from patchcycle.operators.plan import aws_approved_lists, prepare_aws_catalog, read_aws_catalog

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hooks-aws-plan-fast-track")]

ACCOUNT = "111111111111"
TODAY = dt.date.today()
FRESH = (TODAY - dt.timedelta(days=1)).isoformat()  # after the 7-day cutoff
KEV_CVE = "CVE-2026-1111"
ZERO_DAY_CVE = "CVE-2026-2222"  # on no list: a zero-day cycle is started for it by hand

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "cu_fast",
            "aws": {
                "account_id": ACCOUNT,
                "region": "us-east-1",
                "groups": [
                    group("al", 2, "amazon_linux_2", environment="nonprod"),
                    group("rh", 2, "rhel_8", environment="nonprod"),
                ],
            },
        }
    ],
    catalog=[
        patch(
            "ALAS2-2026-0001", "amazon_linux_2", severity="Important", title="openssl-1.0.2k-24.amzn2.0.14"
        ),
        patch(
            "ALAS2-2026-0002",
            "amazon_linux_2",
            severity="Critical",
            title="glibc-2.26-66.amzn2",
            released=FRESH,
            cves=[KEV_CVE],
        ),
        patch(
            "ALAS2-2026-0003",
            "amazon_linux_2",
            severity="Critical",
            title="curl-8.3.0-1.amzn2",
            released=FRESH,
            cves=[ZERO_DAY_CVE],
        ),
        patch("RHSA-2026:0004", "rhel_8", severity="Important", title="openssl-3.0.7-27.el8"),
        patch(
            "RHSA-2026:0005",
            "rhel_8",
            severity="Important",
            title="curl-7.61.1-34.el8",
            released=FRESH,
            cves=[KEV_CVE],
        ),
    ],
)


def tenant(risk: dict | None = None) -> Tenant:
    data = {
        "id": "cu_fast",
        "display_name": "Fast",
        "owner": "sre",
        "contacts": {
            "sre": [{"name": "SRE", "email": "sre@example.com"}],
            "compliance": [{"name": "C", "email": "c@example.com"}],
        },
        "frameworks": ["soc2"],
        "clouds": {"aws": {"accounts": [{"account_id": ACCOUNT, "regions": ["us-east-1"]}]}},
        "environments": [
            {"name": "nonprod", "rate_control": {"max_concurrency": "50%", "max_errors": "50%"}}
        ],
        "baselines": [
            {
                "os_family": family,
                "classifications": ["Security"],
                "severities": ["Critical", "High"],
                "approve_after_days": 7,
            }
            for family in ("amazon_linux_2", "rhel_8")
        ],
        "preflight": {"max_held_share": 0.5},
        "evidence": {"bucket": "pc-evidence-fast"},
    }
    if risk is not None:
        data["risk"] = risk
    return Tenant.model_validate(data)


def feeds() -> FeedSnapshot:
    listed = KevEntry(KEV_CVE, TODAY - dt.timedelta(days=1), TODAY + dt.timedelta(days=20), False)
    committed = load_feed_snapshots()
    return FeedSnapshot(KevCatalog("test", "test", {KEV_CVE: listed}), committed.epss, committed.cvss, "test")


@pytest.fixture
def aws(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_CU_FAST", aws_connection(fleet.url, "us-east-1", ACCOUNT))
    return fleet


def plan_once(fleet: Fleet, who: Tenant, risk: PlanRisk | None):
    log = EventLog("test")
    lists = aws_approved_lists(who, TODAY, risk, log)
    prepared = prepare_aws_catalog(who, TODAY, f"run-{id(risk)}", ["nonprod"], log, lists)
    ssm = fleet.client("ssm", ACCOUNT)
    for scope in prepared["scans"]:
        wait_command(ssm, scope["command_id"])
    read = read_aws_catalog(who, TODAY, prepared, log)
    approved = {f: {"entries": list(a.entries), "notes": list(a.notes)} for f, a in (lists or {}).items()}
    if risk is not None:
        risk = PlanRisk(
            risk.feeds, risk.policy, source_approved_cves={"rhel_8": tuple(approved["rhel_8"]["entries"])}
        )
    return build_cycle_plan(who, TODAY, read.patches, risk=risk), lists, log


def test_without_a_policy_the_baselines_and_the_plan_are_as_before(aws) -> None:
    plain = tenant()
    plan, lists, log = plan_once(aws, plain, None)
    assert lists is None
    assert plan.patch_ids == ["ALAS2-2026-0001", "openssl.x86_64:0:3.0.7-27.el8"]
    baseline = next(e for e in log.events if e["action"] == "plan.patch_baseline")
    assert "approved_patches" not in baseline["details"]


def test_kev_fixes_are_approved_by_list_before_the_scan_and_planned_with_the_reason(aws) -> None:
    fast = tenant({"fast_track_kev": True})
    plan, lists, _ = plan_once(aws, fast, PlanRisk(feeds(), FastTrackPolicy(kev=True)))
    # Amazon Linux 2: the advisory id of the KEV fix, from AWS's catalog; RHEL: the KEV CVE id.
    assert lists["amazon_linux_2"].entries == ("ALAS2-2026-0002",)
    assert lists["rhel_8"].entries == (KEV_CVE,)
    ssm = aws.client("ssm", ACCOUNT)
    got = {
        b["BaselineName"]: ssm.get_patch_baseline(BaselineId=b["BaselineId"])["ApprovedPatches"]
        for b in ssm.describe_patch_baselines(Filters=[{"Key": "OWNER", "Values": ["Self"]}])[
            "BaselineIdentities"
        ]
    }
    assert got["patchcycle-cu_fast-amazon_linux_2"] == ["ALAS2-2026-0002"]
    assert got["patchcycle-cu_fast-rhel_8"] == [KEV_CVE]
    approved = {p.id: p for ps in plan.approved.values() for p in ps}
    # The fresh non-KEV fix still waits; the KEV fixes do not.
    assert set(approved) == {
        "ALAS2-2026-0001",
        "ALAS2-2026-0002",
        "openssl.x86_64:0:3.0.7-27.el8",
        "curl.x86_64:0:7.61.1-34.el8",
    }
    assert approved["ALAS2-2026-0002"].fast_track["basis"] == "kev"
    assert approved["curl.x86_64:0:7.61.1-34.el8"].fast_track["how"] == AGE_UNKNOWN
    assert approved["openssl.x86_64:0:3.0.7-27.el8"].fast_track is None
    # The next plan of a tenant without the policy for that cycle empties the lists (cycle-owned).
    again, lists, _ = plan_once(aws, fast, PlanRisk(feeds(), FastTrackPolicy(kev=False)))
    assert lists["rhel_8"].entries == () and "curl.x86_64:0:7.61.1-34.el8" not in again.patch_ids


def own_baselines(ssm) -> dict[str, dict]:
    return {
        b["BaselineName"]: ssm.get_patch_baseline(BaselineId=b["BaselineId"])
        for b in ssm.describe_patch_baselines(Filters=[{"Key": "OWNER", "Values": ["Self"]}])[
            "BaselineIdentities"
        ]
    }


def test_a_zero_day_plan_adds_its_fixes_and_leaves_the_monthly_plans_cutoff(aws) -> None:
    """Three days after the monthly plan, a zero-day plan for a CVE whose fix the monthly left waiting:
    the fix joins the baseline's ApprovedPatches beside the monthly's fast-tracked fix, and the approval
    rules keep the monthly's cutoff (three days later it would approve three more days of releases)."""
    fast = tenant({"fast_track_kev": True})
    plan_once(aws, fast, PlanRisk(feeds(), FastTrackPolicy(kev=True)))
    ssm = aws.client("ssm", ACCOUNT)
    monthly = own_baselines(ssm)

    later, log = TODAY + dt.timedelta(days=3), EventLog("zero-day")
    risk = PlanRisk(feeds(), zero_day_cves=(ZERO_DAY_CVE,))
    lists = aws_approved_lists(fast, later, risk, log)
    assert lists["amazon_linux_2"].entries == ("ALAS2-2026-0003",)
    prepare_aws_catalog(fast, later, "run-zero-day", ["nonprod"], log, lists, zero_day=True)
    after = own_baselines(ssm)
    al2, rhel = after["patchcycle-cu_fast-amazon_linux_2"], after["patchcycle-cu_fast-rhel_8"]
    assert al2["ApprovedPatches"] == ["ALAS2-2026-0003", "ALAS2-2026-0002"]
    for name, baseline in after.items():
        assert baseline["ApprovalRules"] == monthly[name]["ApprovalRules"], name
        assert baseline["Description"] == monthly[name]["Description"], name
    # RHEL's catalog is the Scan itself: the CVE id is listed (a CVE id approves its fixes there), beside
    # the monthly's KEV CVE.
    assert monthly["patchcycle-cu_fast-rhel_8"]["ApprovedPatches"] == [KEV_CVE]
    assert rhel["ApprovedPatches"] == [ZERO_DAY_CVE, KEV_CVE]
    recorded = {e["details"]["os_family"]: e for e in log.events if e["action"] == "plan.patch_baseline"}
    assert recorded["amazon_linux_2"]["result"] == "approved_patches_extended"
    assert recorded["amazon_linux_2"]["details"]["approved_patches"] == ["ALAS2-2026-0003", "ALAS2-2026-0002"]
    assert (
        recorded["amazon_linux_2"]["details"]["approval_rules"]
        == monthly["patchcycle-cu_fast-amazon_linux_2"]["ApprovalRules"]
    )
