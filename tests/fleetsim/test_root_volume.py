"""EC2 root volume replacement from an AMI through boto3: the task's lifecycle, the errors EC2 answers,
and the host really back at what the AMI captured (ground truth), with a reboot."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from fleetsim_testkit import OLD, group, patch, scenario_dict, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-root-volume")]

ACCOUNT = "111111111111"
NEW_KERNEL = "4.14.400-1.amzn2.x86_64"
SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "alpha",
            "aws": {
                "account_id": ACCOUNT,
                "region": "us-east-1",
                "groups": [group("rv", 4, kernel="4.14.300-1.amzn2.x86_64")],
            },
            "faults": {"backup_fails": ["rv-04"]},
        }
    ],
    catalog=[
        patch("ALAS2-1", "amazon_linux_2"),
        patch("ALAS2-K", "amazon_linux_2", kernel=NEW_KERNEL, released=OLD),
    ],
)


def _ec2(fleet):
    return fleet.client("ec2", ACCOUNT)


def _backup(fleet, name: str) -> tuple[str, str]:
    ec2 = _ec2(fleet)
    (host_id,) = fleet.ids("alpha", name)
    image_id = ec2.create_image(InstanceId=host_id, Name=f"pc-{name}", NoReboot=True)["ImageId"]
    wait_for(
        lambda: ec2.describe_images(ImageIds=[image_id])["Images"][0]["State"],
        lambda s: s != "pending",
        timeout=5,
    )
    return host_id, image_id


def _patch_with_kernel(fleet, name: str) -> None:
    state = fleet.server.state
    host = state.host_by_id[fleet.ids("alpha", name)[0]]
    with state.lock:
        state.install(host, {"ALAS2-1", "ALAS2-K"}, fails=False, reboot=True)


def _task(ec2, task_id: str) -> dict:
    (task,) = ec2.describe_replace_root_volume_tasks(ReplaceRootVolumeTaskIds=[task_id])[
        "ReplaceRootVolumeTasks"
    ]
    return task


def test_a_task_restores_the_host_to_what_its_ami_captured(fleet) -> None:
    host_id, image_id = _backup(fleet, "rv-01")
    before = fleet.truth("alpha")["rv-01"]
    _patch_with_kernel(fleet, "rv-01")
    patched = fleet.truth("alpha")["rv-01"]
    assert patched["kernel"] == NEW_KERNEL and not patched["missing"]

    ec2 = _ec2(fleet)
    task = ec2.create_replace_root_volume_task(
        InstanceId=host_id, ImageId=image_id, DeleteReplacedRootVolume=False, ClientToken="tok-rv-01"
    )["ReplaceRootVolumeTask"]
    assert task["TaskState"] == "pending" and task["ImageId"] == image_id and task["InstanceId"] == host_id
    seen = {task["TaskState"]}
    final = wait_for(
        lambda: _task(ec2, task["ReplaceRootVolumeTaskId"]),
        lambda t: seen.add(t["TaskState"]) or t["TaskState"] in ("succeeded", "failed"),
        timeout=8,
        every=0.05,
    )
    assert final["TaskState"] == "succeeded" and "CompleteTime" in final
    assert seen >= {"pending", "in-progress", "succeeded"}

    truth = fleet.truth("alpha")["rv-01"]
    for key in ("kernel", "missing", "installed", "failed", "agent_status"):
        assert truth[key] == before[key], key
    (restore,) = [a for a in truth["actions"] if a["action"] == "ec2.replace_root_volume"]
    assert restore["image_id"] == image_id and restore["rebooted"] is True
    assert restore["kernel"] == before["kernel"]

    # A retried create with the same client token is the same task, not a second restore.
    again = ec2.create_replace_root_volume_task(
        InstanceId=host_id, ImageId=image_id, ClientToken="tok-rv-01"
    )["ReplaceRootVolumeTask"]
    assert again["ReplaceRootVolumeTaskId"] == task["ReplaceRootVolumeTaskId"]
    by_instance = ec2.describe_replace_root_volume_tasks(
        Filters=[{"Name": "instance-id", "Values": [host_id]}]
    )
    assert [t["ReplaceRootVolumeTaskId"] for t in by_instance["ReplaceRootVolumeTasks"]] == [
        task["ReplaceRootVolumeTaskId"]
    ]


def test_one_task_at_a_time_per_instance(fleet) -> None:
    host_id, image_id = _backup(fleet, "rv-02")
    ec2 = _ec2(fleet)
    ec2.create_replace_root_volume_task(InstanceId=host_id, ImageId=image_id)
    with pytest.raises(ClientError) as err:
        ec2.create_replace_root_volume_task(InstanceId=host_id, ImageId=image_id)
    assert err.value.response["Error"]["Code"] == "IncorrectState"


def test_refusals_name_the_instance_or_image(fleet) -> None:
    ec2 = _ec2(fleet)
    (host_id,) = fleet.ids("alpha", "rv-03")
    _, failed_image = _backup(fleet, "rv-04")  # its backup fails
    cases = [
        ({"InstanceId": host_id, "ImageId": "ami-0123456789abcdef0"}, "InvalidAMIID.NotFound"),
        ({"InstanceId": host_id, "ImageId": failed_image}, "InvalidAMIID.Unavailable"),
        ({"InstanceId": "i-0000000000000dead", "ImageId": failed_image}, "InvalidInstanceID.NotFound"),
    ]
    for kwargs, code in cases:
        with pytest.raises(ClientError) as err:
            ec2.create_replace_root_volume_task(**kwargs)
        assert err.value.response["Error"]["Code"] == code, kwargs
    with pytest.raises(ClientError) as err:
        ec2.describe_replace_root_volume_tasks(ReplaceRootVolumeTaskIds=["replacevol-00000000000000000"])
    assert err.value.response["Error"]["Code"] == "InvalidReplaceRootVolumeTaskId.NotFound"
    assert not [a for a in fleet.truth("alpha")["rv-03"]["actions"] if "replace" in a["action"]]
