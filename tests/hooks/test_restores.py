"""The restore methods of the hooks against fleetsim, each cloud's way: EC2 root volume replacement from
the AMI (``Ec2BackupHook``), a GCE boot disk rebuilt from the snapshot (``DiskSnapshotHook``), an Arc
machine restored by the tenant's backup system (``BackupAttestationHook``). Each test backs a host up,
patches it behind the API (as a cycle would), restores it through the hook, and checks fleetsim's ground
truth shows the host back at its backed-up packages and kernel."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fleetsim_testkit import OLD, Fleet, group, patch, scenario_dict, wait_for

from devtools.local import aws_connection
from patchcycle.hooks.aws import Ec2BackupHook
from patchcycle.hooks.backup_attestation import BackupAttestationError, BackupAttestationHook
from patchcycle.hooks.gcp_base import GcpError
from patchcycle.hooks.gcp_compute import DiskSnapshotHook

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hooks-restores")]

ACCOUNT = "111111111111"
PROJECT = "rb-gcp"
ZONE = "us-central1-a"
AWS_CONN, GCP_CONN, BACKUP_CONN = "aws_rb", "gcp_rb", "backup_rb"
AL2_KERNEL, AL2_NEW = "4.14.300-1.amzn2.x86_64", "4.14.400-1.amzn2.x86_64"
UBU_KERNEL, UBU_NEW = "5.15.0-119-generic", "5.15.0-126-generic"

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "rb",
            "aws": {
                "account_id": ACCOUNT,
                "region": "us-east-1",
                "groups": [group("ec2", 1, kernel=AL2_KERNEL)],
            },
            "azure": {
                "subscription_id": "00000000-0000-0000-0000-00000000c402",
                "resource_group": "rg-rb",
                "groups": [group("arc", 2, "ubuntu_22_04", kernel=UBU_KERNEL)],
            },
            "gcp": {
                "project_id": PROJECT,
                "groups": [group("gce", 2, "ubuntu_22_04", kernel=UBU_KERNEL, zone=ZONE)],
            },
            "faults": {"backup_fails": ["arc-02"]},
        }
    ],
    catalog=[
        patch("ALAS2-K", "amazon_linux_2", kernel=AL2_NEW, released=OLD),
        patch("USN-K", "ubuntu_22_04", kernel=UBU_NEW, released=OLD, title=f"linux-image {UBU_NEW}"),
        patch("USN-1", "ubuntu_22_04", title="openssl 3.0.2-0ubuntu1.19"),
    ],
)

CHANGED = ("kernel", "missing", "installed", "failed")


@pytest.fixture
def connections(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{AWS_CONN.upper()}", aws_connection(fleet.url, "us-east-1", ACCOUNT))
    gcp = {"conn_type": "google_cloud_platform", "extra": {"api_endpoint": fleet.url, "anonymous": True}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{GCP_CONN.upper()}", json.dumps(gcp))
    backup = {"conn_type": "http", "host": fleet.url, "password": "token"}
    monkeypatch.setenv(f"AIRFLOW_CONN_{BACKUP_CONN.upper()}", json.dumps(backup))


def patch_behind_the_api(fleet: Fleet, name: str) -> None:
    """Install every missing patch with a reboot, as a cycle's patch step would."""
    state = fleet.server.state
    host = state.host_by_id[fleet.ids("rb", name)[0]]
    with state.lock:
        state.install(host, set(host.missing), fails=False, reboot=True)


def assert_restored(fleet: Fleet, name: str, before: dict, action: str) -> dict:
    after = fleet.truth("rb")[name]
    for key in CHANGED:
        assert after[key] == before[key], (name, key)
    (restore,) = [a for a in after["actions"] if a["action"] == action]
    assert restore["rebooted"] is True and restore["kernel"] == before["kernel"]
    return restore


def test_ec2_root_volume_replaced_from_the_ami(fleet, connections) -> None:
    hook = Ec2BackupHook(aws_conn_id=AWS_CONN, region_name="us-east-1")
    (instance,) = fleet.ids("rb", "ec2-01")
    image = hook.create_image(instance, "pc-ec2-01", {"patchcycle:host": instance})
    wait_for(
        lambda: hook.images_tagged({"patchcycle:host": instance})[0]["State"], lambda s: s == "available"
    )
    before = fleet.truth("rb")["ec2-01"]
    patch_behind_the_api(fleet, "ec2-01")
    assert fleet.truth("rb")["ec2-01"]["kernel"] == AL2_NEW

    task = hook.replace_root_volume(instance, image, "rollback-ec2-01", {"patchcycle:rollback": "t"})
    assert task["TaskState"] == "pending"
    again = hook.replace_root_volume(instance, image, "rollback-ec2-01", {"patchcycle:rollback": "t"})
    assert again["ReplaceRootVolumeTaskId"] == task["ReplaceRootVolumeTaskId"]  # idempotent retry
    task_id = task["ReplaceRootVolumeTaskId"]
    final = wait_for(
        lambda: hook.root_volume_tasks([task_id])[task_id],
        lambda t: t["TaskState"] in ("succeeded", "failed", "failed-detached"),
    )
    assert final["TaskState"] == "succeeded" and final["ImageId"] == image
    assert assert_restored(fleet, "ec2-01", before, "ec2.replace_root_volume")["image_id"] == image


def _done(hook: DiskSnapshotHook, *names: str) -> list[dict]:
    return wait_for(
        lambda: [hook.zone_operation(ZONE, n) for n in names],
        lambda ops: all(op["status"] == "DONE" for op in ops),
    )


def test_gce_boot_disk_rebuilt_from_the_snapshot(fleet, connections) -> None:
    hook = DiskSnapshotHook(gcp_conn_id=GCP_CONN, project_id=PROJECT)
    hook.create_snapshot(ZONE, "gce-01", "pc-gce-01", {"patchcycle-host": "gce-01"})
    wait_for(lambda: hook.snapshot("pc-gce-01")["status"], lambda s: s == "READY")
    before = fleet.truth("rb")["gce-01"]
    patch_behind_the_api(fleet, "gce-01")
    assert fleet.truth("rb")["gce-01"]["kernel"] == UBU_NEW

    key = "rollback-1"
    stop = hook.stop_instance(ZONE, "gce-01", key)
    disk = hook.create_disk_from_snapshot(ZONE, "gce-01-rb-1", "pc-gce-01", {"patchcycle-rollback": "1"}, key)
    assert hook.stop_instance(ZONE, "gce-01", key) == stop  # the same requestId: the first operation
    _done(hook, stop, disk)
    assert hook.instance(ZONE, "gce-01")["status"] == "TERMINATED"
    _done(hook, hook.detach_boot_disk(ZONE, "gce-01", "persistent-disk-0", key))
    _done(hook, hook.attach_boot_disk(ZONE, "gce-01", "gce-01-rb-1", "persistent-disk-0", key))
    start = hook.start_instance(ZONE, "gce-01", key)
    assert fleet.truth("rb")["gce-01"]["kernel"] == UBU_NEW  # not before it boots
    _done(hook, start)
    instance = hook.instance(ZONE, "gce-01")
    assert instance["status"] == "RUNNING"
    (boot,) = [d for d in instance["disks"] if d.get("boot")]
    assert boot["source"].endswith("/disks/gce-01-rb-1")
    restore = assert_restored(fleet, "gce-01", before, "gcp.restore_boot_disk")
    assert restore["snapshot"] == "pc-gce-01"


def test_gce_refuses_steps_out_of_order_naming_the_instance(fleet, connections) -> None:
    hook = DiskSnapshotHook(gcp_conn_id=GCP_CONN, project_id=PROJECT)
    with pytest.raises(GcpError, match="gce-02"):
        hook.detach_boot_disk(ZONE, "gce-02", "persistent-disk-0", "x")  # still RUNNING
    with pytest.raises(GcpError, match="pc-none"):
        hook.create_disk_from_snapshot(ZONE, "gce-02-rb", "pc-none", {}, "x")
    assert not [a for a in fleet.truth("rb")["gce-02"]["actions"] if a["action"].startswith("gcp.")]


def test_arc_machine_restored_by_the_backup_system(fleet, connections) -> None:
    hook = BackupAttestationHook(BACKUP_CONN)
    machine = fleet.ids("rb", "arc-01")[0]
    (att,) = hook.attestations([machine], dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).values()
    assert att["status"] == "succeeded"
    before = fleet.truth("rb")["arc-01"]
    patch_behind_the_api(fleet, "arc-01")

    restore = hook.request_restore(machine, att["backupId"], "rollback-arc-01", "failed patch")
    assert restore["status"] == "queued" and restore["backupId"] == att["backupId"]
    assert (
        hook.request_restore(machine, att["backupId"], "rollback-arc-01", "again")["restoreId"]
        == (restore["restoreId"])
    )
    final = wait_for(lambda: hook.restore_status(restore["restoreId"]), lambda r: r["status"] == "succeeded")
    assert final["completedAt"]
    assert assert_restored(fleet, "arc-01", before, "backup.restore")["backup_id"] == att["backupId"]


def test_arc_backup_that_was_never_good_is_refused(fleet, connections) -> None:
    hook = BackupAttestationHook(BACKUP_CONN)
    machine = fleet.ids("rb", "arc-02")[0]  # its backups fail
    (att,) = hook.attestations([machine], dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).values()
    assert att["status"] == "failed"
    with pytest.raises(BackupAttestationError, match="backup_not_found"):
        hook.request_restore(machine, att["backupId"], "rollback-arc-02", "failed patch")
    assert not [a for a in fleet.truth("rb")["arc-02"]["actions"] if a["action"].startswith("backup.")]
