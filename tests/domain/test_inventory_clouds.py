"""Arc machines and GCE instances normalized into the same host table as SSM's, on a mixed fleet."""

from __future__ import annotations

import pytest

from patchcycle.domain.inventory import (
    INVENTORY_COLUMNS,
    arc_missing_patch_ids,
    gcp_missing_patch_ids,
    inventory_frame,
    normalize_arc_machines,
    normalize_gcp_instances,
    normalize_ssm_hosts,
    plan_patch_index,
)
from patchcycle.domain.sensor import FALCON_COLUMNS, attach_falcon

SUB = "6f1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a10"
ARC_ID = f"/subscriptions/{SUB}/resourceGroups/rg-core/providers/Microsoft.HybridCompute/machines/arc-web-01"
PLAN = {
    "approved": {
        "ubuntu_22_04": [
            {
                "id": "USN-7120-1",
                "package": "linux-image-5.15.0-126-generic",
                "kb": None,
                "severity": "Critical",
                "cves": ["CVE-2024-53150"],
                "kernel_update": True,
                "kernel_release": "5.15.0-126-generic",
            },
            {
                "id": "USN-7141-1",
                "package": "openssl",
                "kb": None,
                "severity": "High",
                "cves": ["CVE-2024-53104"],
                "kernel_update": False,
                "kernel_release": None,
            },
        ],
        "windows_2019": [
            {
                "id": "KB5046615",
                "package": None,
                "kb": "5046615",
                "severity": "Critical",
                "cves": ["CVE-2025-32709"],
                "kernel_update": False,
                "kernel_release": None,
            },
        ],
        "rhel_8": [
            {
                "id": "RHSA-2026:8902",
                "package": "openssl",
                "kb": None,
                "severity": "Critical",
                "cves": ["CVE-2024-53104"],
                "kernel_update": False,
                "kernel_release": None,
            },
        ],
    }
}
INDEX = plan_patch_index(PLAN)


def arc_machine(
    name: str,
    *,
    status: str = "Connected",
    sku: str = "Ubuntu 22.04.4 LTS",
    os_type: str = "linux",
    env: str = "prod",
    ip: str = "10.0.0.5",
) -> dict:
    machine_id = ARC_ID.replace("arc-web-01", name)
    return {
        "id": machine_id,
        "name": name,
        "location": "eastus",
        "tags": {"Environment": env, "Criticality": "high"},
        "properties": {
            "status": status,
            "osSku": sku,
            "osType": os_type,
            "osVersion": "5.15.0-119-generic" if os_type == "linux" else "10.0.17763.6414",
            "lastStatusChange": "2026-11-20T10:00:00Z",
            "networkProfile": {
                "networkInterfaces": [{"ipAddresses": [{"address": ip, "ipAddressVersion": "IPv4"}]}]
            },
        },
    }


@pytest.fixture
def tenant(make_tenant):
    return make_tenant(
        clouds={
            "aws": {"accounts": [{"account_id": "111111111111", "regions": ["us-east-1"]}]},
            "azure": {"subscriptions": [{"subscription_id": SUB, "resource_groups": ["rg-core"]}]},
            "gcp": {"projects": [{"project_id": "alpha-dr-standby", "zones": ["us-central1-a"]}]},
        }
    )


def test_arc_machines_become_rows_with_kernel_ip_and_planned_missing_patches(tenant):
    assessments = {
        ARC_ID.lower(): {
            "status": "Succeeded",
            "lastModifiedDateTime": "2026-11-21T03:00:00Z",
            "patches": [
                {"patchName": "linux-image-5.15.0-126-generic", "classifications": ["Security"]},
                {"patchName": "openssl", "classifications": ["Security"]},
                {"patchName": "vim", "classifications": ["Other"]},  # not in the plan: unrated, no CVEs
            ],
        }
    }
    win = arc_machine(
        "arc-win-01", sku="Windows Server 2019 Datacenter", os_type="windows", status="Disconnected"
    )
    win_id = win["id"].lower()
    assessments[win_id] = {
        "patches": [{"patchName": "2026-11 CU", "kbId": "5046615", "msrcSeverity": "Critical"}]
    }
    rows = normalize_arc_machines(tenant, SUB, [arc_machine("arc-web-01"), win], assessments, INDEX)
    web, windows = rows
    assert list(web) == list(INVENTORY_COLUMNS)
    assert (web["cloud"], web["account"], web["region"], web["resource_group"]) == (
        "azure",
        SUB,
        "eastus",
        "rg-core",
    )
    assert (web["os_family"], web["kernel"], web["private_ip"]) == (
        "ubuntu_22_04",
        "5.15.0-119-generic",
        "10.0.0.5",
    )
    assert (web["agent_kind"], web["agent_status"], web["agent_online"]) == ("arc", "Connected", True)
    assert (web["missing_count"], web["missing_critical"], web["missing_high"], web["missing_unrated"]) == (
        3,
        1,
        1,
        1,
    )
    assert web["missing_cves"] == ["CVE-2024-53104", "CVE-2024-53150"]
    assert web["missing_patch_ids"] == ["USN-7120-1", "USN-7141-1"]
    assert windows["os_family"] == "windows_2019" and windows["kernel"] is None
    assert windows["agent_online"] is False and windows["missing_patch_ids"] == ["KB5046615"]
    assert arc_missing_patch_ids(assessments[win_id], "windows_2019", INDEX) == ["KB5046615"]


def test_arc_machine_without_an_assessment_is_not_known_compliant(tenant):
    (row,) = normalize_arc_machines(tenant, SUB, [arc_machine("arc-web-01")], {}, INDEX)
    assert row["last_patch_operation"] is None and row["missing_patch_ids"] is None


def gce_instance(name: str, instance_id: str, env: str = "prod") -> dict:
    return {
        "id": instance_id,
        "name": name,
        "zone": "https://compute.googleapis.com/compute/v1/projects/alpha-dr-standby/zones/us-central1-a",
        "status": "RUNNING",
        "labels": {"environment": env, "criticality": "critical"},
        "networkInterfaces": [{"networkIP": "10.8.0.7"}],
        "disks": [
            {"boot": False, "source": f"{DISKS}/{name}-data"},
            {"boot": True, "source": f"{DISKS}/{name}-rb-4f2a"},
        ],
    }


DISKS = "https://compute.googleapis.com/compute/v1/projects/alpha-dr-standby/zones/us-central1-a/disks"


def inventory(instance_id: str) -> dict:
    return {
        "name": f"projects/alpha-dr-standby/locations/us-central1-a/instances/{instance_id}/inventory",
        "updateTime": "2026-11-21T03:00:00Z",
        "osInfo": {
            "longName": "Red Hat Enterprise Linux 8.10 (Ootpa)",
            "kernelRelease": "4.18.0-477.10.1.el8_8.x86_64",
        },
        "items": {
            "available-1": {
                "type": "AVAILABLE_PACKAGE",
                "availablePackage": {"yumPackage": {"packageName": "openssl"}},
            },
            "available-2": {
                "type": "AVAILABLE_PACKAGE",
                "availablePackage": {"yumPackage": {"packageName": "bash"}},
            },
            "installed-1": {
                "type": "INSTALLED_PACKAGE",
                "installedPackage": {"yumPackage": {"packageName": "glibc"}},
            },
        },
    }


def test_gce_instances_join_inventory_and_vulnerability_reports(tenant):
    reports = {
        "7001": {
            "vulnerabilities": [
                {
                    "details": {"cve": "CVE-2024-9999", "severity": "MEDIUM"},
                    "availableInventoryItemIds": ["available-2"],
                },
            ]
        }
    }
    rows = normalize_gcp_instances(
        tenant,
        "alpha-dr-standby",
        [gce_instance("gce-db-01", "7001"), gce_instance("gce-db-02", "7002")],
        {"7001": inventory("7001")},
        reports,
        INDEX,
    )
    db1, db2 = rows
    assert (db1["cloud"], db1["region"], db1["host_id"], db1["private_ip"]) == (
        "gcp",
        "us-central1-a",
        "7001",
        "10.8.0.7",
    )
    assert (db1["os_family"], db1["kernel"], db1["environment"], db1["criticality"]) == (
        "rhel_8",
        "4.18.0-477.10.1.el8_8.x86_64",
        "prod",
        "critical",
    )
    # openssl is in the plan (Critical, its CVEs); bash is rated by the vulnerability report.
    assert (db1["missing_count"], db1["missing_critical"], db1["missing_medium"]) == (2, 1, 1)
    assert db1["missing_cves"] == ["CVE-2024-53104", "CVE-2024-9999"] and db1["missing_patch_ids"] == [
        "RHSA-2026:8902"
    ]
    assert db1["installed_count"] == 1 and db1["agent_online"] is True
    # The boot disk the instance lists (after a rollback, the disk its restore made) is what backups snapshot.
    assert db1["boot_disk"] == "gce-db-01-rb-4f2a"
    # No inventory: the OS Config agent is not reporting; the instance is listed so the gate can hold it.
    assert (db2["agent_status"], db2["agent_online"], db2["os_family"]) == ("NO_AGENT_DETECTED", False, None)
    assert gcp_missing_patch_ids(inventory("7001"), "rhel_8", INDEX) == ["RHSA-2026:8902"]


def test_a_mixed_fleet_is_one_table_with_falcon_attached(tenant):
    ssm = normalize_ssm_hosts(
        tenant,
        "111111111111",
        "us-east-1",
        [
            {
                "InstanceId": "i-01",
                "PingStatus": "Online",
                "PlatformName": "Amazon Linux",
                "PlatformVersion": "2",
            }
        ],
        {"i-01": {"Name": "web-01", "Environment": "prod"}},
        {},
    )
    arc = normalize_arc_machines(tenant, SUB, [arc_machine("arc-web-01")], {}, INDEX)
    gce = normalize_gcp_instances(
        tenant,
        "alpha-dr-standby",
        [gce_instance("gce-db-01", "7001")],
        {"7001": inventory("7001")},
        {},
        INDEX,
    )
    devices = [
        {
            "device_id": "a1",
            "hostname": "web-01",
            "instance_id": "i-01",
            "service_provider": "AWS_EC2_V2",
            "service_provider_account_id": "111111111111",
            "agent_version": "7.14.16703.0",
            "reduced_functionality_mode": "no",
        },
        {
            "device_id": "a2",
            "hostname": "arc-web-01",
            "local_ip": "10.0.0.5",
            "agent_version": "7.14.16703.0",
        },
        {
            "device_id": "a3",
            "hostname": "gce-db-01",
            "instance_id": "7001",
            "service_provider": "GCP",
            "service_provider_account_id": "alpha-dr-standby",
            "agent_version": "7.14.16703.0",
        },
    ]
    frame = inventory_frame(attach_falcon(ssm + arc + gce, devices))
    assert list(frame.columns) == [*INVENTORY_COLUMNS, *FALCON_COLUMNS]
    assert list(frame["cloud"]) == ["aws", "azure", "gcp"]
    assert list(frame["falcon_device_id"]) == ["a1", "a2", "a3"]
    assert list(frame["falcon_match"]) == ["instance_id", "hostname_and_ip", "instance_id"]
    assert frame.groupby("cloud")["agent_online"].all().to_dict() == {"aws": True, "azure": True, "gcp": True}
