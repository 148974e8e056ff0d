"""A patch baseline's ApprovedPatches and approval-rule filter keys, as AWS documents them.

Documents:
- UpdatePatchBaseline / CreatePatchBaseline, ApprovedPatches: "Maximum number of 50 items", each 1 to 100
  characters; ApprovedPatchesEnableNonSecurity "Indicates whether the list of approved patches includes
  non-security updates ... The default value is false. Applies to Linux managed nodes only."
  https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_UpdatePatchBaseline.html
- Package name formats for approved and rejected patch lists: YUM families' approved lists take CVE ids and
  advisory ids; Windows takes KB ids.
  https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-approved-rejected-package-name-formats.html
- DescribePatchProperties: the keys a baseline's filters may use per operating system (no CVE_ID).
  https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DescribePatchProperties.html
- AWS-RunPatchBaseline, Operation Scan: "identifies where updates are missing that are approved and
  applicable to the node"; InstallOverrideList "overrides the patches specified by the current default
  patch baseline", and "Scan operations ignore the InstallOverrideList parameter".
  https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-aws-runpatchbaseline.html
"""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from botocore.exceptions import ClientError
from fleetsim_testkit import OLD, group, patch, scenario_dict, wait_command

from fleetsim.aws import baselines
from fleetsim.scenario import CatalogPatch

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-approved-patches")]

ACCOUNT = "111111111111"
BUCKET = "pc-evidence-approved"
FRESH = (dt.date.today() - dt.timedelta(days=1)).isoformat()  # after every cutoff below
CUTOFF = (dt.date.today() - dt.timedelta(days=7)).isoformat()
KEV_CVE = "CVE-2026-1111"

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "approved",
            "aws": {
                "account_id": ACCOUNT,
                "region": "us-east-1",
                "groups": [group("rh", 2, "rhel_8"), group("al", 2, "amazon_linux_2"), group("ao", 1)],
            },
        }
    ],
    catalog=[
        patch("RHSA-2026:0001", "rhel_8", severity="Important", title="openssl-3.0.7-27.el8"),
        patch(
            "RHSA-2026:0002",
            "rhel_8",
            severity="Important",
            title="curl-7.61.1-34.el8",
            released=FRESH,
            cves=[KEV_CVE],
        ),
        patch(
            "RHBA-2026:0003",
            "rhel_8",
            severity="Important",
            classification="Bugfix",
            title="tzdata-2026a-1.el8",
            released=FRESH,
            cves=[KEV_CVE],
        ),
        patch(
            "ALAS2-2026-0004",
            "amazon_linux_2",
            severity="Important",
            title="sudo-1.8.23-10.amzn2.3.5",
            released=FRESH,
        ),
    ],
    evidence={"buckets": [BUCKET]},
)
RULES = {
    "PatchRules": [
        {
            "PatchFilterGroup": {
                "PatchFilters": [
                    {"Key": "CLASSIFICATION", "Values": ["Security", "Bugfix"]},
                    {"Key": "SEVERITY", "Values": ["Critical", "Important"]},
                ]
            },
            "ApproveUntilDate": CUTOFF,
        }
    ]
}


def _baseline(fleet, os: str, name: str, **extra) -> str:
    ssm = fleet.client("ssm", ACCOUNT)
    baseline_id = ssm.create_patch_baseline(OperatingSystem=os, Name=name, ApprovalRules=RULES, **extra)[
        "BaselineId"
    ]
    ssm.register_patch_baseline_for_patch_group(BaselineId=baseline_id, PatchGroup=name)
    return baseline_id


def _scan(fleet, prefix: str, group_name: str) -> dict[str, list[str]]:
    """Tag the group's hosts, Scan them, and return each host's Missing KBIds."""
    ssm, ec2 = fleet.client("ssm", ACCOUNT), fleet.client("ec2", ACCOUNT)
    ids = [h["host_id"] for n, h in fleet.truth("approved").items() if n.startswith(prefix)]
    ec2.create_tags(Resources=ids, Tags=[{"Key": "Patch Group", "Value": group_name}])
    command = ssm.send_command(
        DocumentName="AWS-RunPatchBaseline",
        Targets=[{"Key": "InstanceIds", "Values": ids}],
        Parameters={"Operation": ["Scan"]},
    )["Command"]
    wait_command(ssm, command["CommandId"])
    return {
        i: sorted(
            p["KBId"]
            for p in ssm.describe_instance_patches(
                InstanceId=i, Filters=[{"Key": "State", "Values": ["Missing"]}]
            )["Patches"]
        )
        for i in ids
    }


def test_a_cve_id_in_approved_patches_approves_a_fix_released_after_the_cutoff(fleet) -> None:
    # Without the list the Scan lists only what the rule approves (released on or before the cutoff).
    _baseline(fleet, "REDHAT_ENTERPRISE_LINUX", "pg-rhel-plain")
    assert set(map(tuple, _scan(fleet, "rh", "pg-rhel-plain").values())) == {("openssl.x86_64",)}
    # With the CVE approved by id, its security fix is approved and Missing; the non-security fix of the
    # same CVE is not, ApprovedPatchesEnableNonSecurity being false (its default).
    ssm = fleet.client("ssm", ACCOUNT)
    listed = _baseline(fleet, "REDHAT_ENTERPRISE_LINUX", "pg-rhel-kev", ApprovedPatches=[KEV_CVE])
    assert set(map(tuple, _scan(fleet, "rh", "pg-rhel-kev").values())) == {("curl.x86_64", "openssl.x86_64")}
    ssm.update_patch_baseline(BaselineId=listed, ApprovedPatchesEnableNonSecurity=True)
    assert set(map(tuple, _scan(fleet, "rh", "pg-rhel-kev").values())) == {
        ("curl.x86_64", "openssl.x86_64", "tzdata.x86_64")
    }
    # Emptied the next cycle: the fix is no longer approved.
    ssm.update_patch_baseline(BaselineId=listed, ApprovedPatches=[])
    assert set(map(tuple, _scan(fleet, "rh", "pg-rhel-kev").values())) == {("openssl.x86_64",)}


def test_an_advisory_id_in_approved_patches_approves_it_on_amazon_linux_2(fleet) -> None:
    _baseline(fleet, "AMAZON_LINUX_2", "pg-al2", ApprovedPatches=["ALAS2-2026-0004"])
    assert set(map(tuple, _scan(fleet, "al", "pg-al2").values())) == {("sudo.x86_64",)}


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"ApprovedPatches": [f"CVE-2026-{i:04d}" for i in range(51)]}, "at most 50"),
        ({"ApprovedPatches": ["x" * 101]}, "1 to 100 characters"),
        (
            {
                "ApprovalRules": {
                    "PatchRules": [
                        {
                            "PatchFilterGroup": {"PatchFilters": [{"Key": "CVE_ID", "Values": [KEV_CVE]}]},
                            "ApproveUntilDate": CUTOFF,
                        }
                    ]
                }
            },
            "'CVE_ID' is not valid for operating system REDHAT_ENTERPRISE_LINUX",
        ),
    ],
)
def test_what_the_api_reference_refuses_is_refused(fleet, extra: dict, says: str) -> None:
    ssm = fleet.client("ssm", ACCOUNT)
    kwargs = {
        "OperatingSystem": "REDHAT_ENTERPRISE_LINUX",
        "Name": "pg-refused",
        "ApprovalRules": RULES,
        **extra,
    }
    with pytest.raises(ClientError) as caught:
        ssm.create_patch_baseline(**kwargs)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert says in caught.value.response["Error"]["Message"]


def test_msrc_severity_is_a_windows_key_and_severity_a_linux_one() -> None:
    windows_rule = {
        "PatchRules": [
            {
                "PatchFilterGroup": {"PatchFilters": [{"Key": "SEVERITY", "Values": ["*"]}]},
                "ApproveAfterDays": 7,
            }
        ]
    }
    with pytest.raises(baselines.BaselineError, match="not valid for operating system WINDOWS"):
        baselines.validate("WINDOWS", windows_rule, None)
    baselines.validate("AMAZON_LINUX_2", windows_rule, None)


def test_an_approved_windows_kb_is_approved_whatever_its_date() -> None:
    kb = CatalogPatch(
        id="KB5099999",
        os_family="windows_2019",
        title="t",
        classification="SecurityUpdates",
        severity="Critical",
        released=dt.date.today(),
    )
    rule = baselines.PatchRule(filters=(("CLASSIFICATION", ("SecurityUpdates",)),), approve_after_days=7)
    plain = baselines.Baseline("pb-1", "WINDOWS", (rule,))
    assert baselines.approvals(plain, [kb], dt.date.today()) == {}
    listed = baselines.Baseline("pb-1", "WINDOWS", (rule,), approved_patches=("KB5099999",))
    assert baselines.approvals(listed, [kb], dt.date.today()) == {"KB5099999": "UNSPECIFIED"}


def test_an_override_list_installs_a_patch_no_baseline_approves_and_compliance_says_installed_other(fleet):
    # The install of a fast-tracked patch needs no approval (the override list "overrides the patches
    # specified by the current default patch baseline"); its compliance follows the baseline.
    ssm, s3 = fleet.client("ssm", ACCOUNT), fleet.evidence_s3()
    name = "ao-01"  # in no patch group: AWS's default baseline (7 days) does not approve a fix of yesterday
    host = fleet.truth("approved")[name]["host_id"]
    doc = {"patches": [{"id": "sudo.x86_64", "title": "sudo.x86_64:*:1.8.23-10.amzn2.3.5"}]}
    s3.put_object(Bucket=BUCKET, Key="fast.yaml", Body=yaml.safe_dump(doc).encode())
    command = ssm.send_command(
        DocumentName="AWS-RunPatchBaseline",
        InstanceIds=[host],
        Parameters={"Operation": ["Install"], "InstallOverrideList": [f"s3://{BUCKET}/fast.yaml"]},
    )["Command"]
    assert wait_command(ssm, command["CommandId"])["Status"] == "Success"
    assert "ALAS2-2026-0004" in fleet.truth("approved")[name]["installed"]
    states = {p["KBId"]: p["State"] for p in ssm.describe_instance_patches(InstanceId=host)["Patches"]}
    assert states["sudo.x86_64"] == "INSTALLED_OTHER"
    assert OLD < FRESH
