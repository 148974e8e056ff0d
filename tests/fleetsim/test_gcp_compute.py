"""fleetsim's Compute Engine disk snapshots through the unmodified ``google-cloud-compute`` clients.

Each test snapshots its own disk (hosts are disks: GCE names a boot disk after its instance).
"""

from __future__ import annotations

import time

import pytest
from fleetsim_testkit import group, patch, scenario_dict, wait_for
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

PROJECT = "acme-gcp-prod"
ZONE = "europe-west2-a"
SLOW_SECONDS = 6.0  # snap-03's snapshots (the others take the test kit's 0.5 s)

SCENARIO = scenario_dict(
    [
        {
            "id": "acme",
            "gcp": {
                "project_id": PROJECT,
                "groups": [
                    group("snap", 6, "ubuntu_22_04", zone=ZONE, kernel="5.15.0-119-generic"),
                    group("wsnap", 1, "windows_2022", zone=ZONE),
                ],
            },
            "faults": {"backup_fails": ["snap-02"], "backup_slow_seconds": {"snap-03": SLOW_SECONDS}},
        }
    ],
    [patch("USN-1", "ubuntu_22_04", title="openssl 3.0.2-0ubuntu1.19")],
)


@pytest.fixture(scope="module")
def clients(fleet) -> dict[str, object]:
    kw = {"credentials": AnonymousCredentials(), "client_options": {"api_endpoint": fleet.url}}
    return {
        "disks": compute_v1.DisksClient(**kw),
        "snapshots": compute_v1.SnapshotsClient(**kw),
        "operations": compute_v1.ZoneOperationsClient(**kw),
    }


def _create(
    clients, disk: str, name: str, labels: dict[str, str] | None = None, **kw
) -> compute_v1.Operation:
    request = compute_v1.CreateSnapshotDiskRequest(
        project=PROJECT,
        zone=ZONE,
        disk=disk,
        snapshot_resource=compute_v1.Snapshot(name=name, labels=labels or {}),
        **kw,
    )
    return clients["disks"].create_snapshot_unary(request=request)


def _status(clients, name: str) -> str:
    return clients["snapshots"].get(project=PROJECT, snapshot=name).status


def test_snapshot_goes_creating_uploading_ready_and_its_operation_done(fleet, clients) -> None:
    op = _create(clients, "snap-01", "pc-snap-01", {"patchcycle-cycle": "2026-11-22"})
    assert op.status == compute_v1.Operation.Status.RUNNING
    assert op.operation_type == "createSnapshot" and op.target_link.endswith(f"/zones/{ZONE}/disks/snap-01")
    assert _status(clients, "pc-snap-01") in ("CREATING", "UPLOADING")  # CREATING for the first 30%

    seen = []
    wait_for(
        lambda: seen.append(_status(clients, "pc-snap-01")) or seen[-1], lambda s: s == "READY", timeout=5
    )

    assert "UPLOADING" in seen
    snapshot = clients["snapshots"].get(project=PROJECT, snapshot="pc-snap-01")
    assert snapshot.labels == {"patchcycle-cycle": "2026-11-22"}
    assert snapshot.source_disk.endswith(f"/projects/{PROJECT}/zones/{ZONE}/disks/snap-01")
    assert snapshot.disk_size_gb == 10
    done = clients["operations"].get(project=PROJECT, zone=ZONE, operation=op.name)
    assert done.status == compute_v1.Operation.Status.DONE and not done.error.errors
    action = [a for a in fleet.truth("acme")["snap-01"]["actions"] if a["action"] == "gcp.createSnapshot"]
    assert [(a["snapshot"], a["result"]) for a in action] == [("pc-snap-01", "READY")]


def test_backup_fails_host_ends_failed_with_an_operation_error(fleet, clients) -> None:
    op = _create(clients, "snap-02", "pc-snap-02")
    wait_for(lambda: _status(clients, "pc-snap-02"), lambda s: s == "FAILED", timeout=5)

    done = clients["operations"].get(project=PROJECT, zone=ZONE, operation=op.name)
    assert done.status == compute_v1.Operation.Status.DONE
    assert "pc-snap-02" in done.error.errors[0].message
    assert done.http_error_status_code == 500


def test_slow_host_takes_its_backup_slow_seconds(clients) -> None:
    started = time.monotonic()
    _create(clients, "snap-03", "pc-snap-03")
    # Read at once, with the host's SLOW_SECONDS of margin (the usual snapshot takes 0.5 s).
    assert _status(clients, "pc-snap-03") in ("CREATING", "UPLOADING")
    wait_for(lambda: _status(clients, "pc-snap-03"), lambda s: s == "READY", timeout=60)
    assert time.monotonic() - started >= SLOW_SECONDS - 0.1


def test_list_filters_on_labels_and_pages(fleet, clients) -> None:
    _create(clients, "snap-04", "pc-list-prod", {"cycle": "c9", "env": "prod"})
    _create(clients, "wsnap-01", "pc-list-dev", {"cycle": "c9", "env": "dev"})
    listing = clients["snapshots"]

    def names(text: str, **kw) -> list[str]:
        request = compute_v1.ListSnapshotsRequest(project=PROJECT, filter=text, **kw)
        return sorted(s.name for s in listing.list(request=request))

    assert names('(labels.cycle = "c9") (labels.env = "prod")') == ["pc-list-prod"]
    assert names('labels.cycle = "c9" AND labels.env != "prod"') == ["pc-list-dev"]
    before = fleet.calls().get("gcp.compute.ListSnapshots", 0)
    assert names("labels.cycle = c9", max_results=1) == ["pc-list-dev", "pc-list-prod"]
    assert fleet.calls()["gcp.compute.ListSnapshots"] - before == 2
    assert names('labels.cycle = "c10"') == []
    windows = listing.get(project=PROJECT, snapshot="pc-list-dev")
    assert windows.disk_size_gb == 50


def test_request_id_makes_a_retried_create_return_the_first_operation(clients) -> None:
    request_id = "0b6f9e4c-3f7c-4a5e-9a43-4f6a3a0d6c11"
    first = _create(clients, "snap-05", "pc-retry", request_id=request_id)
    again = _create(clients, "snap-05", "pc-retry", request_id=request_id)
    assert again.name == first.name
    with pytest.raises(exceptions.Conflict, match="pc-retry' already exists"):
        _create(clients, "snap-05", "pc-retry")


def test_errors_name_the_value(clients) -> None:
    with pytest.raises(exceptions.NotFound, match="disks/no-such-disk"):
        _create(clients, "no-such-disk", "pc-x")
    with pytest.raises(exceptions.BadRequest, match="Bad_Name"):
        _create(clients, "snap-06", "Bad_Name")
    with pytest.raises(exceptions.BadRequest, match="Owner"):
        _create(clients, "snap-06", "pc-bad-label", {"Owner": "x"})
    with pytest.raises(exceptions.NotFound, match="snapshots/pc-none"):
        clients["snapshots"].get(project=PROJECT, snapshot="pc-none")
    with pytest.raises(exceptions.BadRequest, match="maxResults"):
        list(
            clients["snapshots"].list(
                request=compute_v1.ListSnapshotsRequest(project=PROJECT, max_results=501)
            )
        )
    with pytest.raises(exceptions.BadRequest, match="filter"):
        odd = compute_v1.ListSnapshotsRequest(project=PROJECT, filter="(labels.a = b) OR (labels.c = d)")
        list(clients["snapshots"].list(request=odd))


def test_extended_operation_polls_google_not_the_endpoint(clients, fleet) -> None:
    """Why the hook calls create_snapshot_unary: create_snapshot's ExtendedOperation polls through a
    ZoneOperationsClient built without the client options (so against compute.googleapis.com)."""
    transport = clients["disks"]._transport
    assert transport._host == fleet.url
    assert transport._zone_operations_client._transport._host == "https://compute.googleapis.com"


def test_instances_of_a_zone_with_labels_ips_and_boot_disks(fleet) -> None:
    truth = fleet.truth("acme")
    instances = compute_v1.InstancesClient(
        credentials=AnonymousCredentials(), client_options={"api_endpoint": fleet.url}
    )
    before = fleet.calls().get("gcp.compute.ListInstances", 0)
    listed = {
        i.name: i
        for i in instances.list(
            request=compute_v1.ListInstancesRequest(project=PROJECT, zone=ZONE, max_results=4)
        )
    }
    assert fleet.calls()["gcp.compute.ListInstances"] - before == 2  # 7 instances, 4 per page
    assert sorted(listed) == [f"snap-0{i}" for i in range(1, 7)] + ["wsnap-01"]
    one = listed["snap-01"]
    assert str(one.id) == truth["snap-01"]["host_id"]
    assert one.status == "RUNNING" and one.zone.endswith(f"/zones/{ZONE}")
    assert one.network_interfaces[0].network_i_p == truth["snap-01"]["private_ip"]
    assert one.labels == {
        "environment": "prod",
        "criticality": "medium",
        "tenant": "acme",
        "os-family": "ubuntu-22-04",
    }
    assert one.disks[0].boot and one.disks[0].source.endswith(f"/zones/{ZONE}/disks/snap-01")
    windows = instances.list(
        request=compute_v1.ListInstancesRequest(
            project=PROJECT, zone=ZONE, filter='labels.os-family = "windows-2022"'
        )
    )
    assert [i.name for i in windows] == ["wsnap-01"]
    assert instances.get(project=PROJECT, zone=ZONE, instance="snap-02").name == "snap-02"
    with pytest.raises(exceptions.NotFound, match="instances/snap-99"):
        instances.get(project=PROJECT, zone=ZONE, instance="snap-99")
