"""DiskSnapshotHook against fleetsim's Compute Engine: google-cloud-compute over REST, configured only by
an Airflow ``google_cloud_platform`` connection.

Checks that a create returns at once and is idempotent, that one labelled list call shows a stage's
snapshots as they become READY (or FAILED), and that failures name the project and the ask.
"""

from __future__ import annotations

import json

import pytest
from fleetsim_testkit import Fleet, group, patch, scenario_dict, wait_for
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from patchcycle.hooks.gcp_base import GcpNotFound
from patchcycle.hooks.gcp_compute import DiskSnapshotHook, label_filter

CONN_ID = "gcp_fleetsim_compute"
PROJECT = "acme-gcp-prod"
ZONE = "europe-west2-a"
LABELS = {"patchcycle-tenant": "acme", "patchcycle-cycle": "2026-11-22", "patchcycle-environment": "prod"}

SCENARIO = scenario_dict(
    [
        {
            "id": "acme",
            "gcp": {"project_id": PROJECT, "groups": [group("bk", 4, "ubuntu_22_04", zone=ZONE)]},
            "faults": {"backup_fails": ["bk-02"]},
        }
    ],
    [patch("USN-1", "ubuntu_22_04", title="openssl 3.0.2-0ubuntu1.19")],
)


@pytest.fixture
def hook(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> DiskSnapshotHook:
    conn = {"conn_type": "google_cloud_platform", "extra": {"api_endpoint": fleet.url, "anonymous": True}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    return DiskSnapshotHook(gcp_conn_id=CONN_ID, project_id=PROJECT)


def test_snapshots_of_a_stage_become_ready_or_failed(fleet, hook) -> None:
    names = {}
    for disk in ("bk-01", "bk-02"):
        names[disk] = hook.create_snapshot(ZONE, disk, f"pc-{disk}", {**LABELS, "patchcycle-host": disk})
    assert names == {"bk-01": "pc-bk-01", "bk-02": "pc-bk-02"}
    pending = {s["name"]: s["status"] for s in hook.snapshots_labelled(LABELS)}
    assert sorted(pending) == ["pc-bk-01", "pc-bk-02"]
    assert set(pending.values()) <= {"CREATING", "UPLOADING"}  # a create does not wait

    calls = fleet.calls()
    before, gets = calls["gcp.compute.ListSnapshots"], calls.get("gcp.compute.GetSnapshot", 0)
    final = wait_for(
        lambda: {s["name"]: s for s in hook.snapshots_labelled(LABELS)},
        lambda seen: all(s["status"] in ("READY", "FAILED") for s in seen.values()),
        timeout=5,
    )
    polls = fleet.calls()["gcp.compute.ListSnapshots"] - before
    assert {n: s["status"] for n, s in final.items()} == {"pc-bk-01": "READY", "pc-bk-02": "FAILED"}
    assert final["pc-bk-01"]["labels"]["patchcycle-host"] == "bk-01"
    assert final["pc-bk-01"]["sourceDisk"].endswith(f"/zones/{ZONE}/disks/bk-01")
    assert polls >= 1 and fleet.calls().get("gcp.compute.GetSnapshot", 0) == gets  # one list per poll
    assert hook.snapshot("pc-bk-01")["status"] == "READY"
    assert hook.snapshots_labelled({**LABELS, "patchcycle-host": "bk-02"})[0]["name"] == "pc-bk-02"


def test_create_is_idempotent(fleet, hook) -> None:
    first = hook.create_snapshot(ZONE, "bk-03", "pc-bk-03", LABELS)
    again = hook.create_snapshot(ZONE, "bk-03", "pc-bk-03", LABELS)  # same requestId: same operation
    assert first == again == "pc-bk-03"
    # A snapshot of that name made by another request (an earlier attempt's) answers 409: taken as ours.
    disks = compute_v1.DisksClient(
        credentials=AnonymousCredentials(), client_options={"api_endpoint": fleet.url}
    )
    disks.create_snapshot_unary(
        project=PROJECT, zone=ZONE, disk="bk-04", snapshot_resource=compute_v1.Snapshot(name="pc-bk-04")
    )
    assert hook.create_snapshot(ZONE, "bk-04", "pc-bk-04", LABELS) == "pc-bk-04"
    created = [a for a in fleet.truth("acme")["bk-03"]["actions"] if a["action"] == "gcp.createSnapshot"]
    assert len(created) == 1


def test_failures_name_the_project_and_the_ask(hook) -> None:
    with pytest.raises(GcpNotFound, match=rf"snapshot pc-none in project {PROJECT}"):
        hook.snapshot("pc-none")
    with pytest.raises(GcpNotFound, match="disk europe-west2-a/no-disk"):
        hook.create_snapshot(ZONE, "no-disk", "pc-no-disk", LABELS)
    with pytest.raises(ValueError, match="'a b'"):
        label_filter({"a b": "x"})


def test_instances_of_a_zone(fleet, hook) -> None:
    truth = fleet.truth("acme")
    rows = {r["name"]: r for r in hook.instances(ZONE)}
    assert sorted(rows) == ["bk-01", "bk-02", "bk-03", "bk-04"]
    assert rows["bk-01"]["id"] == truth["bk-01"]["host_id"]
    assert rows["bk-01"]["labels"]["environment"] == "prod"
    assert rows["bk-01"]["networkInterfaces"][0]["networkIP"] == truth["bk-01"]["private_ip"]
    assert rows["bk-01"]["zone"].rsplit("/", 1)[-1] == ZONE
    assert hook.instances("europe-west9-z") == []
