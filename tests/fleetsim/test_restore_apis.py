"""The restore APIs fleetsim serves beside EC2's, on the wire: Compute Engine's boot-disk swap (stop,
disk from snapshot, detach, attach as boot, start) and the backup system's restores. The happy paths
through the vendor SDKs are in ``tests/hooks/test_restores.py``; here, the order the clouds enforce and
the refusals, which must leave nothing half-done."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from fleetsim_testkit import group, patch, scenario_dict, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-restore-apis")]

PROJECT, ZONE = "rs-gcp", "europe-west1-b"
BASE = f"/compute/v1/projects/{PROJECT}/zones/{ZONE}"
SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "rs",
            "azure": {
                "subscription_id": "00000000-0000-0000-0000-00000000c403",
                "resource_group": "rg-rs",
                "groups": [group("arc", 1, "ubuntu_22_04")],
            },
            "gcp": {"project_id": PROJECT, "groups": [group("vm", 2, "ubuntu_22_04", zone=ZONE)]},
        }
    ],
    catalog=[patch("USN-1", "ubuntu_22_04", title="openssl 3.0.2-0ubuntu1.19")],
)


def call(
    fleet, method: str, path: str, body: dict | None = None, token: str | None = "t"
) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(fleet.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def done(fleet, op: dict) -> dict:
    return wait_for(
        lambda: call(fleet, "GET", f"{BASE}/operations/{op['name']}")[1], lambda o: o["status"] == "DONE"
    )


def test_gce_enforces_the_order_of_a_boot_disk_swap(fleet) -> None:
    status, snap = call(fleet, "POST", f"{BASE}/disks/vm-01/createSnapshot", {"name": "pc-vm-01"})
    assert status == 200
    # The snapshot is not READY yet: no disk from it; and a refused request leaves no operation behind
    # for its requestId, so the retry once it is READY really creates the disk.
    status, err = call(
        fleet,
        "POST",
        f"{BASE}/disks?requestId=r1",
        {"name": "vm-01-rb", "sourceSnapshot": "global/snapshots/pc-vm-01"},
    )
    assert status == 400 and err["error"]["errors"][0]["reason"] == "resourceNotReady"
    done(fleet, snap)
    status, insert = call(
        fleet,
        "POST",
        f"{BASE}/disks?requestId=r1",
        {"name": "vm-01-rb", "sourceSnapshot": "global/snapshots/pc-vm-01"},
    )
    assert status == 200 and insert["operationType"] == "insert"
    # Not done at once: read from the insert's own answer (a GET of the disk may come after the 0.5 s it
    # takes, on a busy machine).
    assert insert["status"] in ("PENDING", "RUNNING")

    # A running instance's boot disk cannot be detached; a stopped one's can, and it cannot start without one.
    status, err = call(fleet, "POST", f"{BASE}/instances/vm-01/detachDisk?deviceName=persistent-disk-0")
    assert status == 400 and "RUNNING" in err["error"]["message"]
    done(fleet, call(fleet, "POST", f"{BASE}/instances/vm-01/stop")[1])
    done(fleet, call(fleet, "POST", f"{BASE}/instances/vm-01/detachDisk?deviceName=persistent-disk-0")[1])
    instance = call(fleet, "GET", f"{BASE}/instances/vm-01")[1]
    assert instance["status"] == "TERMINATED" and instance["disks"] == []
    status, err = call(fleet, "POST", f"{BASE}/instances/vm-01/start")
    assert status == 400 and "no boot disk" in err["error"]["message"]

    done(fleet, insert)
    disk = {"source": f"projects/{PROJECT}/zones/{ZONE}/disks/vm-01-rb", "boot": True}
    done(fleet, call(fleet, "POST", f"{BASE}/instances/vm-01/attachDisk", disk)[1])
    # Another stopped instance may not take a disk that is in use.
    done(fleet, call(fleet, "POST", f"{BASE}/instances/vm-02/stop")[1])
    done(fleet, call(fleet, "POST", f"{BASE}/instances/vm-02/detachDisk?deviceName=persistent-disk-0")[1])
    status, err = call(fleet, "POST", f"{BASE}/instances/vm-02/attachDisk", disk)
    assert status == 400 and err["error"]["errors"][0]["reason"] == "resourceInUseByAnotherResource"
    done(fleet, call(fleet, "POST", f"{BASE}/instances/vm-01/start")[1])
    assert call(fleet, "GET", f"{BASE}/instances/vm-01")[1]["status"] == "RUNNING"
    actions = [a["action"] for a in fleet.truth("rs")["vm-01"]["actions"]]
    assert actions[-1] == "gcp.restore_boot_disk" and actions.count("gcp.restore_boot_disk") == 1


def test_backup_system_restore_refusals(fleet) -> None:
    path = "/backup-system/v1/restores"
    machine = fleet.ids("rs", "arc-01")[0]
    assert call(fleet, "POST", path, {"machine": machine}, token=None)[0] == 401
    status, err = call(fleet, "POST", path, {"machine": machine, "backupId": "bk-1"})
    assert status == 400 and "requestId" in err["error"]["message"]
    status, err = call(fleet, "POST", path, {"machine": machine, "backupId": "bk-never", "requestId": "r"})
    assert status == 404 and err["error"]["code"] == "backup_not_found" and machine in err["error"]["message"]
    assert call(fleet, "GET", f"{path}/rs-nothing")[0] == 404
    assert not [a for a in fleet.truth("rs")["arc-01"]["actions"] if a["action"].startswith("backup.")]
