"""AMI backups that take time and can fail, the Object-Locked evidence buckets, and the call counts."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from fleetsim_testkit import FAST_TIMINGS, group, patch, scenario_dict, wait_for

# One worker per module under xdist, so the module shares one fleetsim.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-backups-evidence")]

ACCOUNT = "111111111111"
BUCKETS = ["pc-evidence-alpha", "pc-evidence-birch"]
LOCK_DAYS = 30

PENDING_SECONDS = FAST_TIMINGS["ami_pending_seconds"]
SLOW_SECONDS = 6.0  # slow-01's backups
SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "alpha",
            "aws": {
                "account_id": ACCOUNT,
                "region": "us-east-1",
                "groups": [group("ami", 2), group("slow", 1), group("calls", 2), group("snap", 2)],
            },
            "faults": {
                "backup_fails": ["ami-02", "snap-02"],
                "backup_slow_seconds": {"slow-01": SLOW_SECONDS},
            },
        }
    ],
    catalog=[patch("ALAS2-1", "amazon_linux_2")],
    evidence={"buckets": BUCKETS, "object_lock_days": LOCK_DAYS},
)


def _image_state(ec2, image_id: str) -> str:
    (image,) = ec2.describe_images(ImageIds=[image_id])["Images"]
    return image["State"]


def _create_image(fleet, name: str) -> tuple[str, float]:
    ec2 = fleet.client("ec2", ACCOUNT)
    (host_id,) = fleet.ids("alpha", name)
    created = time.monotonic()
    image_id = ec2.create_image(
        InstanceId=host_id,
        Name=f"patchcycle-{name}",
        NoReboot=True,
        TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "PatchcycleHost", "Value": name}]}],
    )["ImageId"]
    return image_id, created


def test_image_is_pending_then_available_after_the_configured_delay(fleet):
    ec2 = fleet.client("ec2", ACCOUNT)
    image_id, created = _create_image(fleet, "ami-01")
    first = _image_state(ec2, image_id)
    if time.monotonic() - created < PENDING_SECONDS:  # a busy machine may read it later than that
        assert first == "pending"
    wait_for(lambda: _image_state(ec2, image_id), lambda s: s != "pending", timeout=30)
    waited = time.monotonic() - created
    assert _image_state(ec2, image_id) == "available"
    assert waited >= PENDING_SECONDS - 0.1  # never available before ami_pending_seconds

    (image,) = ec2.describe_images(
        Owners=["self"], Filters=[{"Name": "tag:PatchcycleHost", "Values": ["ami-01"]}]
    )["Images"]
    assert image["ImageId"] == image_id
    assert image["SourceInstanceId"] == fleet.ids("alpha", "ami-01")[0]

    (action,) = fleet.truth("alpha")["ami-01"]["actions"]
    assert (action["action"], action["image_id"], action["result"]) == (
        "ec2.create_image",
        image_id,
        "available",
    )


def test_image_of_a_backup_fails_host_ends_failed(fleet):
    ec2 = fleet.client("ec2", ACCOUNT)
    image_id, created = _create_image(fleet, "ami-02")
    first = _image_state(ec2, image_id)
    if time.monotonic() - created < PENDING_SECONDS:
        assert first == "pending"
    assert wait_for(lambda: _image_state(ec2, image_id), lambda s: s != "pending", timeout=30) == "failed"
    failed = ec2.describe_images(Owners=["self"], Filters=[{"Name": "state", "Values": ["failed"]}])["Images"]
    assert [i["ImageId"] for i in failed] == [image_id]
    (action,) = fleet.truth("alpha")["ami-02"]["actions"]
    assert (action["action"], action["image_id"], action["result"]) == (
        "ec2.create_image",
        image_id,
        "failed",
    )


def test_slow_backup_stays_pending_longer(fleet):
    ec2 = fleet.client("ec2", ACCOUNT)
    image_id, created = _create_image(fleet, "slow-01")
    # Still pending well past ami_pending_seconds: read at once, with the host's SLOW_SECONDS of margin.
    assert _image_state(ec2, image_id) == "pending"
    wait_for(lambda: _image_state(ec2, image_id), lambda s: s != "pending", timeout=60)
    assert time.monotonic() - created >= SLOW_SECONDS - 0.1
    assert _image_state(ec2, image_id) == "available"


def test_evidence_buckets_are_object_locked_in_compliance_mode(fleet):
    s3 = fleet.evidence_s3()
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert set(BUCKETS) <= names
    for bucket in BUCKETS:
        lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        assert lock["ObjectLockEnabled"] == "Enabled"
        assert lock["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
        assert lock["Rule"]["DefaultRetention"]["Days"] == LOCK_DAYS
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    # The tenants' accounts do not own them.
    tenant_buckets = {b["Name"] for b in fleet.client("s3", ACCOUNT).list_buckets()["Buckets"]}
    assert not tenant_buckets & set(BUCKETS)


def test_locked_evidence_version_cannot_be_deleted(fleet):
    s3 = fleet.evidence_s3()
    bucket, key = BUCKETS[0], "cycles/2026-11/evidence.json"
    version = s3.put_object(Bucket=bucket, Key=key, Body=b'{"outcome": "success"}')["VersionId"]
    head = s3.head_object(Bucket=bucket, Key=key, VersionId=version)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert (head["ObjectLockRetainUntilDate"] - head["LastModified"]).days in (LOCK_DAYS - 1, LOCK_DAYS)

    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    # Bypassing governance does not help in compliance mode.
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True)
    body = s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
    assert body == b'{"outcome": "success"}'


def test_calls_are_counted_by_service_and_action_and_reset(fleet):
    ssm, ec2 = fleet.client("ssm", ACCOUNT), fleet.client("ec2", ACCOUNT)
    host_ids = fleet.ids("alpha", "calls-01", "calls-02")
    fleet.post("/fleetsim/calls/reset")
    assert fleet.calls() == {}

    ssm.describe_instance_information()
    ssm.describe_instance_information()
    ssm.send_command(
        DocumentName="AWS-RunPatchBaseline", InstanceIds=host_ids, Parameters={"Operation": ["Scan"]}
    )
    ec2.create_image(InstanceId=host_ids[0], Name="patchcycle-calls-01")
    ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["instance"]}])
    fleet.evidence_s3().list_objects_v2(Bucket=BUCKETS[1])
    fleet.credentials(ACCOUNT)
    fleet.get("/fleetsim/health")  # the control plane is not counted

    counts = fleet.calls()
    assert counts == {
        "aws.ssm.DescribeInstanceInformation": 2,
        "aws.ssm.SendCommand": 1,
        "aws.ec2.CreateImage": 1,
        "aws.ec2.DescribeTags": 1,
        "aws.s3.GET": 1,
        "aws.sts.AssumeRole": 1,
    }
    reset = fleet.post("/fleetsim/calls/reset")
    assert reset["calls"] == counts  # the counts as they were
    assert fleet.calls() == {}


def _root_volume(ec2, host_id: str) -> str:
    (reservation,) = ec2.describe_instances(InstanceIds=[host_id])["Reservations"]
    return reservation["Instances"][0]["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]


def _snapshot_state(ec2, snapshot_id: str) -> tuple[str, str]:
    (snapshot,) = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    return snapshot["State"], snapshot["Progress"]


@pytest.mark.parametrize(("name", "final"), [("snap-01", "completed"), ("snap-02", "error")])
def test_ebs_snapshot_of_a_fleet_volume_is_pending_then_completes_or_errors(fleet, name, final):
    ec2 = fleet.client("ec2", ACCOUNT)
    (host_id,) = fleet.ids("alpha", name)
    volume = _root_volume(ec2, host_id)
    created = time.monotonic()
    snapshot = ec2.create_snapshot(VolumeId=volume, Description=f"pre-patch {name}")
    assert snapshot["State"] == "pending"
    state, progress = _snapshot_state(ec2, snapshot["SnapshotId"])
    if time.monotonic() - created < PENDING_SECONDS:  # a busy machine may read it later than that
        assert state == "pending" and progress.endswith("%")
    wait_for(lambda: _snapshot_state(ec2, snapshot["SnapshotId"])[0], lambda s: s != "pending", timeout=30)
    assert _snapshot_state(ec2, snapshot["SnapshotId"])[0] == final
    actions = [a for a in fleet.truth("alpha")[name]["actions"] if a["action"] == "ec2.create_snapshot"]
    assert [(a["snapshot_id"], a["result"]) for a in actions] == [(snapshot["SnapshotId"], final)]


def test_patch_baseline_approval_rules_round_trip(fleet):
    ssm = fleet.client("ssm", ACCOUNT)
    rules = {
        "PatchRules": [
            {
                "PatchFilterGroup": {
                    "PatchFilters": [{"Key": "SEVERITY", "Values": ["Critical", "Important"]}]
                },
                "ApproveAfterDays": 7,
                "ComplianceLevel": "HIGH",
            }
        ]
    }
    baseline_id = ssm.create_patch_baseline(
        Name="banking-linux-baseline-prod", OperatingSystem="AMAZON_LINUX_2", ApprovalRules=rules
    )["BaselineId"]
    ssm.register_patch_baseline_for_patch_group(BaselineId=baseline_id, PatchGroup="banking-prod")
    baseline = ssm.get_patch_baseline(BaselineId=baseline_id)
    assert baseline["ApprovalRules"] == rules
    assert (baseline["Name"], baseline["OperatingSystem"]) == (
        "banking-linux-baseline-prod",
        "AMAZON_LINUX_2",
    )
    assert baseline["PatchGroups"] == ["banking-prod"]
    with pytest.raises(ClientError, match="DoesNotExistException"):
        ssm.get_patch_baseline(BaselineId="pb-0123456789abcdef0")
