"""``SsmFleetHook``'s plan seams against fleetsim through boto3: the tenant's patch baseline created and
updated, its patch group registered, hosts tagged ``Patch Group``, one Scan by tag, and each host's
Missing patches read back per instance (DescribeInstancePatches has no batch form), in the documented
KBId/Title formats that the plan and the InstallOverrideList reuse.

Documents: About patch groups (tag key "Patch Group"),
https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-patch-patchgroups.html;
PatchRule ApproveUntilDate, https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PatchRule.html;
DescribeInstancePatches (InstanceId required, MaxResults 10-100),
https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DescribeInstancePatches.html.
"""

from __future__ import annotations

import datetime as dt

import pytest
from fleetsim_testkit import OLD, Fleet, group, patch, scenario_dict, wait_command

from devtools.local import aws_connection
from patchcycle.config.models import Baseline, OsFamily, Severity
from patchcycle.domain.catalog import (
    PATCH_GROUP_TAG,
    baseline_request,
    catalog_patch_from_instance_patch,
)
from patchcycle.hooks.aws import Ec2BackupHook, SsmFleetHook

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hooks-aws-plan")]

ACCOUNT = "111111111111"
CONN = "aws_planhook"
RECENT = (dt.date.today() - dt.timedelta(days=2)).isoformat()  # after the cutoff below

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "planhook",
            "aws": {
                "account_id": ACCOUNT,
                "region": "us-east-1",
                "groups": [group("rh", 3, "rhel_8", environment="prod")],
            },
        }
    ],
    catalog=[
        patch("RHSA-1", "rhel_8", severity="Important", title="openssl-3.0.7-27.el8", package="openssl"),
        patch("RHSA-2", "rhel_8", severity="Important", title="curl-7.61.1-34.el8", released=RECENT),
        patch("RHSA-3", "rhel_8", severity="Low", title="zlib-1.2.11-25.el8"),
    ],
)


@pytest.fixture
def ssm(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> SsmFleetHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", aws_connection(fleet.url, "us-east-1", ACCOUNT))
    return SsmFleetHook(aws_conn_id=CONN, region_name="us-east-1")


@pytest.fixture
def ec2(ssm: SsmFleetHook) -> Ec2BackupHook:
    return Ec2BackupHook(aws_conn_id=CONN, region_name="us-east-1")


def test_the_tenants_baseline_scans_and_reads_back_only_what_it_approves(fleet, ssm, ec2) -> None:
    cutoff = dt.date.today() - dt.timedelta(days=7)
    baseline = Baseline(
        os_family=OsFamily.rhel_8,
        classifications=["Security"],
        severities=[Severity.Critical, Severity.High],
        approve_after_days=7,
    )
    request = baseline_request("planhook", baseline, cutoff)
    assert ssm.patch_baseline_named(request.name) is None
    baseline_id = ssm.create_patch_baseline(request.create_kwargs(), "token-1")
    assert ssm.patch_baseline_named(request.name) == baseline_id
    assert ssm.register_patch_group(baseline_id, request.patch_group, request.operating_system) is True

    ids = sorted(h["host_id"] for h in fleet.truth("planhook").values())
    assert ec2.tag_instances(ids, {PATCH_GROUP_TAG: request.patch_group}) == 1
    command = ssm.send_patch_scan(
        target_tags=(PATCH_GROUP_TAG, [request.patch_group]),
        snapshot_id="0b6a6f1e-1d2c-4b8e-9a51-0c3f2f7f6d10",
        max_concurrency="50%",
        max_errors="25%",
        comment="plan scan",
    )
    assert command["Parameters"]["Operation"] == ["Scan"]
    done = wait_command(ssm.conn, command["CommandId"])
    assert done["Status"] == "Success" and done["TargetCount"] == len(ids)

    states = ssm.patch_states(ids)
    assert {s["BaselineId"] for s in states.values()} == {baseline_id}
    rows, calls = ssm.instance_patches(ids[0], ["Missing"])
    assert calls == 1
    # Only the Important update released before the cutoff: not the recent one, not the Low one.
    assert [(r["KBId"], r["Title"]) for r in rows] == [("openssl.x86_64", "openssl.x86_64:0:3.0.7-27.el8")]
    entry = catalog_patch_from_instance_patch(rows[0], OsFamily.rhel_8, approved_by_source=True)
    assert (entry.package, entry.arch, entry.epoch, entry.version) == (
        "openssl",
        "x86_64",
        "0",
        "3.0.7-27.el8",
    )

    # The next cycle moves the cutoff: the same baseline is updated, not a second one created.
    later = baseline_request("planhook", baseline, dt.date.today())
    ssm.update_patch_baseline(baseline_id, later.update_kwargs())
    assert ssm.patch_baseline_named(request.name) == baseline_id
    assert ssm.register_patch_group(baseline_id, request.patch_group, request.operating_system) is False
    assert OLD < RECENT
