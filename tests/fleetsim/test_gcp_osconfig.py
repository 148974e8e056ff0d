"""fleetsim's OS Config through the unmodified ``google-cloud-os-config`` REST clients.

Every test uses its own hosts (its own zone), so the tests hold in any order and when xdist splits the
module; the ground truth is read through fleetsim's control plane.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from fleetsim_testkit import OLDER, group, patch, scenario_dict, wait_for
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import osconfig_v1
from google.protobuf import duration_pb2

PROJECT = "acme-gcp-prod"
UBUNTU_KERNEL = "5.15.0-119-generic"
RHEL_KERNEL = "4.18.0-477.10.1.el8_8.x86_64"
RECENT = (dt.date.today() - dt.timedelta(days=3)).isoformat()
TERMINAL = {"SUCCEEDED", "COMPLETED_WITH_ERRORS", "CANCELED", "TIMED_OUT"}
JOB_ORDER = ["STARTED", "INSTANCE_LOOKUP", "PATCHING"]

CATALOG = [
    patch("USN-0", "ubuntu_22_04", title="bash 5.1-6ubuntu1.1", released=OLDER),
    patch(
        "USN-1",
        "ubuntu_22_04",
        title="linux-image-5.15.0-126-generic 5.15.0-126.136",
        kernel="5.15.0-126-generic",
        cves=["CVE-2024-1001"],
    ),
    patch(
        "USN-2",
        "ubuntu_22_04",
        title="openssl 3.0.2-0ubuntu1.19",
        severity="Important",
        cves=["CVE-2024-1002", "CVE-2024-1003"],
    ),
    patch("USN-3", "ubuntu_22_04", title="curl 7.81.0-1ubuntu1.20", severity="Low", cves=["CVE-2024-1004"]),
    patch("RHSA-0", "rhel_8", title="glibc-2.28-225.el8", released=OLDER),
    patch(
        "RHSA-1",
        "rhel_8",
        title="kernel-4.18.0-553.33.1.el8_10",
        kernel="4.18.0-553.33.1.el8_10.x86_64",
        severity="Important",
        cves=["CVE-2024-2001"],
    ),
    patch("RHSA-2", "rhel_8", title="openssl-1.1.1k-14.el8_6", severity="Moderate", cves=["CVE-2024-2002"]),
    # Two builds of one package: the older inside any plan's cutoff, the newer released since.
    patch("RHSA9-1", "rhel_9", title="openssl-3.0.7-27.el9", cves=["CVE-2024-4001"]),
    patch("RHSA9-2", "rhel_9", title="openssl-3.0.7-28.el9", cves=["CVE-2024-4002"], released=RECENT),
    patch(
        "KB5046615",
        "windows_2022",
        title="2024-11 Cumulative Update for Windows Server 2022 (KB5046615)",
        classification="SecurityUpdates",
        cves=["CVE-2024-3001"],
    ),
    patch(
        "KB5044281",
        "windows_2022",
        title="2024-10 Cumulative Update for Windows Server 2022 (KB5044281)",
        classification="SecurityUpdates",
        severity="Important",
        cves=["CVE-2024-3002"],
    ),
]


def _ubuntu(prefix: str, count: int, zone: str, **kw: Any) -> dict[str, Any]:
    return group(prefix, count, "ubuntu_22_04", zone=zone, kernel=UBUNTU_KERNEL, **kw)


SCENARIO = scenario_dict(
    [
        {
            "id": "acme",
            "gcp": {
                "project_id": PROJECT,
                "groups": [
                    _ubuntu("inv", 3, "europe-west2-a"),
                    group("rh", 1, "rhel_8", zone="europe-west2-b", kernel=RHEL_KERNEL),
                    group("winv", 1, "windows_2022", zone="europe-west2-b"),
                    _ubuntu("life", 1, "europe-west3-a"),
                    group("lifedb", 1, "rhel_8", zone="europe-west3-b", kernel=RHEL_KERNEL),
                    group("lifewin", 1, "windows_2022", zone="europe-west3-b"),
                    _ubuntu("bud-a", 2, "us-central1-a"),
                    _ubuntu("bud-b", 2, "us-central1-b"),
                    _ubuntu("seq-a", 2, "asia-east1-a"),
                    _ubuntu("seq-b", 1, "asia-east1-b"),
                    _ubuntu("na", 2, "us-east1-b"),
                    _ubuntu("dry", 2, "us-west1-a"),
                    _ubuntu("can", 3, "us-west2-a"),
                    _ubuntu("slow", 1, "us-west3-a"),
                    _ubuntu("flt", 2, "us-west4-a", environment="staging"),
                    _ubuntu("fltx", 1, "us-west4-a"),
                    _ubuntu("raw", 1, "us-west4-b"),
                    group("ver", 1, "rhel_9", zone="europe-west6-a", kernel=RHEL_KERNEL),
                    _ubuntu("kimg", 1, "europe-west6-b"),
                ],
            },
            "faults": {"agent_offline": ["inv-03", "na-02"], "install_fails": ["bud-a-01"]},
        }
    ],
    CATALOG,
)


@pytest.fixture(scope="module")
def svc(fleet) -> osconfig_v1.OsConfigServiceClient:
    return osconfig_v1.OsConfigServiceClient(
        transport="rest", credentials=AnonymousCredentials(), client_options={"api_endpoint": fleet.url}
    )


@pytest.fixture(scope="module")
def zonal(fleet) -> osconfig_v1.OsConfigZonalServiceClient:
    return osconfig_v1.OsConfigZonalServiceClient(
        transport="rest", credentials=AnonymousCredentials(), client_options={"api_endpoint": fleet.url}
    )


def _parent(zone: str) -> str:
    return f"projects/{PROJECT}/locations/{zone}/instances/-"


def _execute(svc: Any, instances: list[str], *, config: Any = None, rollout: Any = None, **kw: Any) -> Any:
    request = osconfig_v1.ExecutePatchJobRequest(
        parent=f"projects/{PROJECT}",
        display_name=kw.pop("display_name", "test-job"),
        instance_filter=kw.pop("instance_filter", None)
        or osconfig_v1.PatchInstanceFilter(instances=instances),
        patch_config=config
        or osconfig_v1.PatchConfig(reboot_config=osconfig_v1.PatchConfig.RebootConfig.DEFAULT),
        duration=kw.pop("duration", duration_pb2.Duration(seconds=600)),
        rollout=rollout,
        **kw,
    )
    return svc.execute_patch_job(request=request)


def _wait_job(svc: Any, name: str, seen: list[str] | None = None) -> Any:
    def probe() -> Any:
        job = svc.get_patch_job(name=name)
        if seen is not None and (not seen or seen[-1] != job.state.name):
            seen.append(job.state.name)
        return job

    return wait_for(probe, lambda j: j.state.name in TERMINAL, timeout=10)


def _details(svc: Any, name: str, page_size: int = 0) -> dict[str, Any]:
    request = osconfig_v1.ListPatchJobInstanceDetailsRequest(parent=name, page_size=page_size)
    return {d.name.rsplit("/", 1)[-1]: d for d in svc.list_patch_job_instance_details(request=request)}


def _budget(mode: str, **budget: int) -> osconfig_v1.PatchRollout:
    return osconfig_v1.PatchRollout(
        mode=osconfig_v1.PatchRollout.Mode[mode], disruption_budget=osconfig_v1.FixedOrPercent(**budget)
    )


def _patch_actions(host: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in host["actions"] if a["action"] == "gcp.patchJob"]


# -- inventories and vulnerability reports ------------------------------------------------------------
def test_inventories_page_through_the_agent_instances_of_a_zone(fleet, zonal) -> None:
    truth = fleet.truth("acme")
    before = fleet.calls().get("gcp.osconfig.ListInventories", 0)
    request = osconfig_v1.ListInventoriesRequest(
        parent=_parent("europe-west2-a"), view=osconfig_v1.InventoryView.FULL, page_size=1
    )
    inventories = {i.os_info.hostname: i for i in zonal.list_inventories(request=request)}

    assert sorted(inventories) == ["inv-01", "inv-02"]  # inv-03 has no agent: no inventory
    assert fleet.calls()["gcp.osconfig.ListInventories"] - before == 2  # one page per instance
    inv = inventories["inv-01"]
    assert (
        inv.name
        == f"projects/{PROJECT}/locations/europe-west2-a/instances/{truth['inv-01']['host_id']}/inventory"
    )
    assert (inv.os_info.short_name, inv.os_info.version) == ("ubuntu", "22.04")
    assert inv.os_info.kernel_release == truth["inv-01"]["kernel"] == UBUNTU_KERNEL
    available = {
        it.available_package.apt_package.package_name: it.available_package.apt_package.version
        for it in inv.items.values()
        if it.type_ == osconfig_v1.Inventory.Item.Type.AVAILABLE_PACKAGE
    }
    assert available == {
        "linux-image-5.15.0-126-generic": "5.15.0-126.136",
        "openssl": "3.0.2-0ubuntu1.19",
        "curl": "7.81.0-1ubuntu1.20",
    }
    assert len(available) == len(truth["inv-01"]["missing"])
    installed = {
        it.installed_package.apt_package.package_name: it.installed_package.apt_package.version
        for it in inv.items.values()
        if it.type_ == osconfig_v1.Inventory.Item.Type.INSTALLED_PACKAGE
    }
    # A package manager only updates what is installed: an instance with an openssl update pending
    # runs an older openssl (Ubuntu's kernel images are a package per release, never installed before).
    assert installed == {
        "bash": "5.1-6ubuntu1.1",
        "openssl": "3.0.2-0ubuntu1.18",
        "curl": "7.81.0-1ubuntu1.19",
    }
    assert all(key == item.id for key, item in inv.items.items())


def test_inventories_of_yum_and_windows_instances(zonal) -> None:
    request = osconfig_v1.ListInventoriesRequest(
        parent=_parent("europe-west2-b"), view=osconfig_v1.InventoryView.FULL
    )
    inventories = {i.os_info.hostname: i for i in zonal.list_inventories(request=request)}

    rh = inventories["rh-01"]
    assert (rh.os_info.short_name, rh.os_info.kernel_release) == ("rhel", RHEL_KERNEL)
    yum = {
        it.available_package.yum_package.package_name: it.available_package.yum_package.version
        for it in rh.items.values()
        if it.type_ == osconfig_v1.Inventory.Item.Type.AVAILABLE_PACKAGE
    }
    assert yum == {"kernel": "4.18.0-553.33.1.el8_10", "openssl": "1.1.1k-14.el8_6"}

    win = inventories["winv-01"]
    assert win.os_info.short_name == "windows"
    assert win.os_info.kernel_release == "10.0.20348.6414"
    wua = {
        tuple(it.available_package.wua_package.kb_article_ids): it.available_package.wua_package
        for it in win.items.values()
        if it.type_ == osconfig_v1.Inventory.Item.Type.AVAILABLE_PACKAGE
    }
    assert sorted(wua) == [("5044281",), ("5046615",)]
    assert [c.name for c in wua[("5046615",)].categories] == ["Security Updates"]
    assert wua[("5046615",)].update_id


def test_basic_view_has_no_items_and_an_instance_without_agent_has_no_inventory(fleet, zonal) -> None:
    basic = list(zonal.list_inventories(parent=_parent("europe-west2-a")))
    assert basic and all(not inv.items for inv in basic)

    one = zonal.get_inventory(
        request=osconfig_v1.GetInventoryRequest(
            name=f"projects/{PROJECT}/locations/europe-west2-a/instances/inv-02/inventory",
            view=osconfig_v1.InventoryView.FULL,
        )
    )
    assert one.os_info.hostname == "inv-02" and one.items
    with pytest.raises(exceptions.NotFound, match="inv-03"):
        zonal.get_inventory(name=f"projects/{PROJECT}/locations/europe-west2-a/instances/inv-03/inventory")


def test_vulnerability_reports_map_catalog_severity_and_point_at_inventory_items(zonal) -> None:
    reports = list(zonal.list_vulnerability_reports(parent=_parent("europe-west2-a")))
    assert len(reports) == 2  # inv-03 has no agent: no report
    inventory = zonal.get_inventory(
        request=osconfig_v1.GetInventoryRequest(
            name=reports[0].name.replace("/vulnerabilityReport", "/inventory"),
            view=osconfig_v1.InventoryView.FULL,
        )
    )
    vulns = {v.details.cve: v for v in reports[0].vulnerabilities}
    assert sorted(vulns) == ["CVE-2024-1001", "CVE-2024-1002", "CVE-2024-1003", "CVE-2024-1004"]
    assert {c: (v.details.severity, round(v.details.cvss_v3.base_score, 1)) for c, v in vulns.items()} == {
        "CVE-2024-1001": ("CRITICAL", 9.8),
        "CVE-2024-1002": ("HIGH", 7.8),
        "CVE-2024-1003": ("HIGH", 7.8),
        "CVE-2024-1004": ("LOW", 3.3),
    }
    assert reports[0].highest_upgradable_cve_severity.name == "CRITICAL"
    for vuln in vulns.values():
        for item_id in vuln.available_inventory_item_ids:
            assert inventory.items[item_id].type_ == osconfig_v1.Inventory.Item.Type.AVAILABLE_PACKAGE
    openssl = vulns["CVE-2024-1002"].available_inventory_item_ids
    assert [inventory.items[i].available_package.apt_package.package_name for i in openssl] == ["openssl"]

    rhel = {r.name: r for r in zonal.list_vulnerability_reports(parent=_parent("europe-west2-b"))}
    severities = {v.details.cve: v.details.severity for r in rhel.values() for v in r.vulnerabilities}
    assert severities == {
        "CVE-2024-2001": "HIGH",
        "CVE-2024-2002": "MEDIUM",
        "CVE-2024-3001": "CRITICAL",
        "CVE-2024-3002": "HIGH",
    }


# -- patch jobs ---------------------------------------------------------------------------------------
def test_patch_job_with_explicit_instances_and_exclusive_packages(fleet, svc, zonal) -> None:
    before = fleet.truth("acme")
    config = osconfig_v1.PatchConfig(
        reboot_config=osconfig_v1.PatchConfig.RebootConfig.DEFAULT,
        apt=osconfig_v1.AptSettings(exclusive_packages=["openssl"]),
        yum=osconfig_v1.YumSettings(exclusive_packages=["kernel"]),
        windows_update=osconfig_v1.WindowsUpdateSettings(exclusive_patches=["KB5046615"]),
    )
    instances = [
        "zones/europe-west3-a/instances/life-01",
        f"projects/{PROJECT}/zones/europe-west3-b/instances/lifedb-01",
        f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/europe-west3-b/instances/lifewin-01",
    ]
    job = _execute(svc, instances, config=config, rollout=_budget("CONCURRENT_ZONES", fixed=5))
    assert job.state.name == "STARTED"
    assert job.patch_config.yum.exclusive_packages == ["kernel"]

    seen: list[str] = []
    done = _wait_job(svc, job.name, seen)

    assert done.state.name == "SUCCEEDED", done.error_message
    assert done.percent_complete == 100
    assert done.instance_details_summary.succeeded_instance_count == 3
    progress = [s for s in seen if s in JOB_ORDER]
    assert progress == sorted(progress, key=JOB_ORDER.index) and "PATCHING" in seen
    details = _details(svc, job.name)
    assert {n: d.state.name for n, d in details.items()} == {
        "life-01": "SUCCEEDED",
        "lifedb-01": "SUCCEEDED",
        "lifewin-01": "SUCCEEDED",
    }
    assert details["lifedb-01"].instance_system_id == before["lifedb-01"]["host_id"]

    truth = fleet.truth("acme")
    assert truth["life-01"]["missing"] == ["USN-1", "USN-3"]  # only openssl (USN-2) was asked for
    assert truth["life-01"]["kernel"] == UBUNTU_KERNEL
    assert truth["lifedb-01"]["missing"] == ["RHSA-2"]
    assert truth["lifedb-01"]["kernel"] == "4.18.0-553.33.1.el8_10.x86_64"  # rebooted into it
    assert truth["lifewin-01"]["missing"] == ["KB5044281"]
    action = _patch_actions(truth["lifedb-01"])[0]
    assert (action["job"], action["result"], action["installed"], action["rebooted"]) == (
        job.name,
        "SUCCEEDED",
        ["RHSA-1"],
        True,
    )
    inventory = zonal.get_inventory(
        request=osconfig_v1.GetInventoryRequest(
            name=f"projects/{PROJECT}/locations/europe-west3-a/instances/life-01/inventory",
            view=osconfig_v1.InventoryView.FULL,
        )
    )
    assert "installedPackage-openssl-3.0.2-0ubuntu1.19" in inventory.items
    assert "availablePackage-openssl-3.0.2-0ubuntu1.19" not in inventory.items


def test_zone_over_its_disruption_budget_stops_a_zone_by_zone_job(fleet, svc) -> None:
    before = fleet.truth("acme")
    instances = [f"zones/us-central1-{z}/instances/bud-{z}-0{i}" for z in "ab" for i in (1, 2)]
    job = _execute(svc, instances, rollout=_budget("ZONE_BY_ZONE", fixed=1))
    done = _wait_job(svc, job.name)

    assert done.state.name == "COMPLETED_WITH_ERRORS"
    assert "us-central1-a" in done.error_message and "fixed 1" in done.error_message
    summary = done.instance_details_summary
    assert (summary.failed_instance_count, summary.pending_instance_count) == (1, 3)
    details = _details(svc, job.name)
    assert details["bud-a-01"].state.name == "FAILED"
    assert "apt-get" in details["bud-a-01"].failure_reason
    assert {n: details[n].state.name for n in ("bud-a-02", "bud-b-01", "bud-b-02")} == dict.fromkeys(
        ("bud-a-02", "bud-b-01", "bud-b-02"), "PENDING"
    )

    time.sleep(0.5)  # nothing starts later either
    truth = fleet.truth("acme")
    assert _patch_actions(truth["bud-a-01"])[0]["result"] == "FAILED"
    assert truth["bud-a-01"]["failed"]
    for name in ("bud-a-02", "bud-b-01", "bud-b-02"):
        assert _patch_actions(truth[name]) == []
        assert truth[name]["missing"] == before[name]["missing"]


def test_zone_by_zone_patches_zones_in_turn_within_the_percent_budget(fleet, svc) -> None:
    instances = ["zones/asia-east1-a/instances/seq-a-01", "zones/asia-east1-a/instances/seq-a-02"]
    instances.append("zones/asia-east1-b/instances/seq-b-01")
    job = _execute(svc, instances, rollout=_budget("ZONE_BY_ZONE", percent=50))
    assert _wait_job(svc, job.name).state.name == "SUCCEEDED"

    truth = fleet.truth("acme")
    a1, a2, b1 = (_patch_actions(truth[n])[0] for n in ("seq-a-01", "seq-a-02", "seq-b-01"))
    assert a2["started_at"] >= a1["at"]  # 50% of two instances: one at a time
    assert b1["started_at"] >= max(a1["at"], a2["at"])  # the next zone after the first is done
    assert truth["seq-b-01"]["kernel"] == "5.15.0-126-generic"  # default: approved patches, reboot


def test_instance_without_agent_and_reboot_never(fleet, svc) -> None:
    config = osconfig_v1.PatchConfig(reboot_config=osconfig_v1.PatchConfig.RebootConfig.NEVER)
    job = _execute(
        svc, ["zones/us-east1-b/instances/na-01", "zones/us-east1-b/instances/na-02"], config=config
    )
    done = _wait_job(svc, job.name)

    assert done.state.name == "COMPLETED_WITH_ERRORS"
    assert done.instance_details_summary.no_agent_detected_instance_count == 1
    assert done.instance_details_summary.succeeded_reboot_required_instance_count == 1
    details = _details(svc, job.name)
    assert details["na-02"].state.name == "NO_AGENT_DETECTED"
    assert details["na-01"].state.name == "SUCCEEDED_REBOOT_REQUIRED"
    truth = fleet.truth("acme")
    assert truth["na-01"]["missing"] == ["USN-3"]  # the default baseline leaves the Low one
    assert truth["na-01"]["kernel"] == UBUNTU_KERNEL  # not rebooted
    assert truth["na-02"]["missing"] == ["USN-1", "USN-2", "USN-3"]
    assert _patch_actions(truth["na-02"])[0]["result"] == "NO_AGENT_DETECTED"


def test_dry_run_contacts_instances_and_changes_nothing(fleet, svc) -> None:
    before = fleet.truth("acme")
    job = _execute(
        svc, ["zones/us-west1-a/instances/dry-01", "zones/us-west1-a/instances/dry-02"], dry_run=True
    )
    done = _wait_job(svc, job.name)

    assert done.state.name == "SUCCEEDED" and done.dry_run
    assert {d.state.name for d in _details(svc, job.name).values()} == {"SUCCEEDED"}
    truth = fleet.truth("acme")
    for name in ("dry-01", "dry-02"):
        assert truth[name]["missing"] == before[name]["missing"]
        assert truth[name]["actions"] == []


def test_cancel_lets_running_instances_finish_and_starts_no_more(fleet, svc) -> None:
    instances = [f"zones/us-west2-a/instances/can-0{i}" for i in (1, 2, 3)]
    job = _execute(svc, instances, rollout=_budget("ZONE_BY_ZONE", fixed=1))
    wait_for(
        lambda: _details(svc, job.name),
        lambda d: bool(d) and d["can-01"].state.name not in ("PENDING", "SUCCEEDED"),
        timeout=5,
        every=0.01,
    )
    canceled = svc.cancel_patch_job(request={"name": job.name})
    assert canceled.state.name == "CANCELED"

    time.sleep(1.0)  # long enough for all three to have run, had the job gone on
    assert svc.get_patch_job(name=job.name).state.name == "CANCELED"
    details = _details(svc, job.name)
    assert details["can-01"].state.name == "SUCCEEDED"
    assert {details[n].state.name for n in ("can-02", "can-03")} == {"PENDING"}
    truth = fleet.truth("acme")
    assert _patch_actions(truth["can-01"])[0]["result"] == "SUCCEEDED"
    assert _patch_actions(truth["can-02"]) == _patch_actions(truth["can-03"]) == []
    with pytest.raises(exceptions.BadRequest, match="terminal state CANCELED"):
        svc.cancel_patch_job(request={"name": job.name})


def test_job_longer_than_its_duration_times_out(fleet, svc) -> None:
    job = _execute(
        svc, ["zones/us-west3-a/instances/slow-01"], duration=duration_pb2.Duration(nanos=150_000_000)
    )
    done = _wait_job(svc, job.name)

    assert done.state.name == "TIMED_OUT"
    assert _details(svc, job.name)["slow-01"].state.name == "TIMED_OUT"
    truth = fleet.truth("acme")
    assert truth["slow-01"]["missing"] == ["USN-1", "USN-2", "USN-3"]
    assert _patch_actions(truth["slow-01"])[0]["result"] == "TIMED_OUT"


def test_filter_criteria_are_anded_and_instance_details_page(fleet, svc) -> None:
    instance_filter = osconfig_v1.PatchInstanceFilter(
        zones=["us-west4-a"],
        instance_name_prefixes=["flt"],
        group_labels=[osconfig_v1.PatchInstanceFilter.GroupLabel(labels={"environment": "staging"})],
    )
    job = _execute(svc, [], instance_filter=instance_filter, dry_run=True)
    _wait_job(svc, job.name)
    before = fleet.calls().get("gcp.osconfig.ListPatchJobInstanceDetails", 0)

    details = _details(svc, job.name, page_size=1)

    assert sorted(details) == ["flt-01", "flt-02"]  # fltx is prod
    assert fleet.calls()["gcp.osconfig.ListPatchJobInstanceDetails"] - before == 2
    listed = [j.name for j in svc.list_patch_jobs(parent=f"projects/{PROJECT}")]
    assert job.name in listed


def test_requests_with_enum_names_are_accepted_and_answered_with_names(fleet) -> None:
    body = {
        "instanceFilter": {"instances": ["zones/us-west4-b/instances/raw-01"]},
        "patchConfig": {"rebootConfig": "NEVER", "apt": {"type": 1, "excludes": ["curl"]}},
        "rollout": {"mode": "CONCURRENT_ZONES", "disruptionBudget": {"percent": 10}},
        "dryRun": True,
    }
    request = urllib.request.Request(
        f"{fleet.url}/v1/projects/{PROJECT}/patchJobs:execute",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback
        job = json.load(resp)
    assert job["state"] == "STARTED"
    assert job["patchConfig"] == {"rebootConfig": "NEVER", "apt": {"type": "DIST", "excludes": ["curl"]}}
    assert job["rollout"]["mode"] == "CONCURRENT_ZONES"
    url = f"{fleet.url}/v1/projects/{PROJECT}/locations/us-west4-b/instances/-/inventories?view=FULL"
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
        inventories = json.load(resp)["inventories"]
    assert {item["type"] for item in inventories[0]["items"].values()} == {
        "AVAILABLE_PACKAGE",
        "INSTALLED_PACKAGE",
    }


def test_errors_name_the_value(fleet, svc, zonal) -> None:
    with pytest.raises(exceptions.NotFound, match="patchJobs/nope"):
        svc.get_patch_job(name=f"projects/{PROJECT}/patchJobs/nope")
    with pytest.raises(exceptions.Forbidden, match="other-project"):
        list(zonal.list_inventories(parent="projects/other-project/locations/europe-west2-a/instances/-"))
    everything = osconfig_v1.PatchInstanceFilter(all=True, zones=["us-west4-a"])
    with pytest.raises(exceptions.BadRequest, match="all=true"):
        _execute(svc, [], instance_filter=everything)
    with pytest.raises(exceptions.BadRequest, match="instances/raw-01'"):
        _execute(svc, ["instances/raw-01"])
    bad_budget = osconfig_v1.PatchRollout(mode=osconfig_v1.PatchRollout.Mode.ZONE_BY_ZONE)
    with pytest.raises(exceptions.BadRequest, match="disruption_budget"):
        _execute(svc, ["zones/us-west4-b/instances/raw-01"], rollout=bad_budget)
    mixed = osconfig_v1.PatchConfig(apt=osconfig_v1.AptSettings(exclusive_packages=["a"], excludes=["b"]))
    with pytest.raises(exceptions.BadRequest, match="exclusive_packages"):
        _execute(svc, ["zones/us-west4-b/instances/raw-01"], config=mixed)
    unknown = urllib.request.Request(
        f"{fleet.url}/v1/projects/{PROJECT}/patchJobs:execute",
        data=json.dumps({"instanceFilter": {"all": True}, "bogusField": 1}).encode(),
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(unknown, timeout=10)  # noqa: S310 - loopback
    assert err.value.code == 400 and "bogusField" in json.load(err.value)["error"]["message"]


def test_exclusive_packages_install_the_newest_build_not_a_frozen_one(fleet, svc, zonal) -> None:
    """An exclusive package list names packages without versions, so the newest build is installed.

    Google, PatchConfig (https://cloud.google.com/compute/docs/osconfig/rest/v1/PatchConfig), section
    YumSettings: yum patching runs ``yum update``; ``exclusivePackages`` are "the only packages that
    will be updated". ``yum update <pkg>`` installs the newest available build (yum(8)). The inventory
    lists one available build per package, the newest: a vulnerability's fix item "specifies the latest
    SoftwarePackage available to the VM"
    (https://cloud.google.com/compute/docs/osconfig/rest/v1/projects.locations.instances.vulnerabilityReports,
    section Vulnerability).
    """
    parent = _parent("europe-west6-a")
    (before,) = zonal.list_inventories(
        request=osconfig_v1.ListInventoriesRequest(parent=parent, view=osconfig_v1.InventoryView.FULL)
    )
    kinds = osconfig_v1.Inventory.Item.Type

    def packages(inventory: Any, kind: Any) -> dict[str, str]:
        key = "available_package" if kind == kinds.AVAILABLE_PACKAGE else "installed_package"
        return {
            getattr(it, key).yum_package.package_name: getattr(it, key).yum_package.version
            for it in inventory.items.values()
            if it.type_ == kind
        }

    assert packages(before, kinds.AVAILABLE_PACKAGE) == {"openssl": "3.0.7-28.el9"}
    assert packages(before, kinds.INSTALLED_PACKAGE) == {"openssl": "3.0.7-26.el9"}
    (report,) = zonal.list_vulnerability_reports(
        request=osconfig_v1.ListVulnerabilityReportsRequest(parent=parent)
    )
    fixes = {v.details.cve: list(v.available_inventory_item_ids) for v in report.vulnerabilities}
    assert fixes == {
        "CVE-2024-4001": ["availablePackage-openssl-3.0.7-28.el9"],
        "CVE-2024-4002": ["availablePackage-openssl-3.0.7-28.el9"],
    }

    config = osconfig_v1.PatchConfig(
        reboot_config=osconfig_v1.PatchConfig.RebootConfig.NEVER,
        yum=osconfig_v1.YumSettings(exclusive_packages=["openssl"]),
    )
    done = _wait_job(svc, _execute(svc, ["zones/europe-west6-a/instances/ver-01"], config=config).name)
    assert done.state.name == "SUCCEEDED", done.error_message

    truth = fleet.truth("acme")["ver-01"]
    (action,) = _patch_actions(truth)
    assert action["installed"] == ["RHSA9-2"] and action["superseded"] == ["RHSA9-1"]
    assert "RHSA9-2" in truth["installed"] and "RHSA9-1" not in truth["installed"]
    assert truth["missing"] == []
    (after,) = zonal.list_inventories(
        request=osconfig_v1.ListInventoriesRequest(parent=parent, view=osconfig_v1.InventoryView.FULL)
    )
    assert packages(after, kinds.INSTALLED_PACKAGE) == {"openssl": "3.0.7-28.el9"}
    assert packages(after, kinds.AVAILABLE_PACKAGE) == {}


def test_an_exclusive_package_the_instance_does_not_have_is_ignored(fleet, svc) -> None:
    """ "If these packages are not installed, they will be ignored." (PatchConfig, AptSettings,
    https://cloud.google.com/compute/docs/osconfig/rest/v1/PatchConfig). Ubuntu names one package per
    kernel release, so the next kernel's image is not installed: a job naming it installs nothing."""
    config = osconfig_v1.PatchConfig(
        reboot_config=osconfig_v1.PatchConfig.RebootConfig.NEVER,
        apt=osconfig_v1.AptSettings(exclusive_packages=["linux-image-5.15.0-126-generic"]),
    )
    done = _wait_job(svc, _execute(svc, ["zones/europe-west6-b/instances/kimg-01"], config=config).name)
    assert done.state.name == "SUCCEEDED", done.error_message
    truth = fleet.truth("acme")["kimg-01"]
    (action,) = _patch_actions(truth)
    assert action["installed"] == [] and "USN-1" in truth["missing"]
    assert truth["kernel"] == UBUNTU_KERNEL
