"""OsConfigHook against fleetsim's OS Config: google-cloud-os-config over REST, configured only by an
Airflow ``google_cloud_platform`` connection.

Checks the plain dicts the hook returns, that lists are read to the end at the hook's page size
(counted by fleetsim), the patch-job lifecycle with explicit instances and package lists, the
disruption-budget stop, and that failures name the project and the ask.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fleetsim_testkit import OLDER, Fleet, group, patch, scenario_dict, wait_for

from patchcycle.hooks.gcp_base import GcpNotFound
from patchcycle.hooks.gcp_osconfig import JOB_TERMINAL_STATES, OSCONFIG_PAGE_SIZE, OsConfigHook

CONN_ID = "gcp_fleetsim"
PROJECT = "acme-gcp-prod"
KERNEL = "5.15.0-119-generic"

SCENARIO = scenario_dict(
    [
        {
            "id": "acme",
            "gcp": {
                "project_id": PROJECT,
                "groups": [
                    group(
                        "big", OSCONFIG_PAGE_SIZE + 1, "ubuntu_22_04", zone="europe-west1-b", kernel=KERNEL
                    ),
                    group("hk", 1, "ubuntu_22_04", zone="europe-west1-c", kernel=KERNEL),
                    group("hkdb", 1, "rhel_8", zone="europe-west1-d", kernel="4.18.0-477.10.1.el8_8.x86_64"),
                    group("hkw", 1, "windows_2022", zone="europe-west1-d"),
                    group("bud", 2, "ubuntu_22_04", zone="europe-west1-e", kernel=KERNEL),
                    group("late", 1, "ubuntu_22_04", zone="europe-west1-f", kernel=KERNEL),
                    group("cat", 1, "rhel_8", zone="europe-west1-g", kernel="4.18.0-477.10.1.el8_8.x86_64"),
                    group("catw", 1, "windows_2022", zone="europe-west1-g"),
                ],
            },
            "faults": {"install_fails": ["bud-01"]},
        }
    ],
    [
        patch("USN-0", "ubuntu_22_04", title="bash 5.1-6ubuntu1.1", released=OLDER),
        patch("USN-1", "ubuntu_22_04", title="openssl 3.0.2-0ubuntu1.19", cves=["CVE-2024-1002"]),
        patch(
            "USN-2", "ubuntu_22_04", title="curl 7.81.0-1ubuntu1.20", severity="Low", cves=["CVE-2024-1004"]
        ),
        patch(
            "RHSA-1",
            "rhel_8",
            title="kernel-4.18.0-553.33.1.el8_10",
            kernel="4.18.0-553.33.1.el8_10.x86_64",
            severity="Important",
            cves=["CVE-2024-2001"],
        ),
        patch(
            "RHSA-2", "rhel_8", title="openssl-1.1.1k-14.el8_6", severity="Moderate", cves=["CVE-2024-2002"]
        ),
        patch(
            "KB5046615",
            "windows_2022",
            title="2024-11 Cumulative Update (KB5046615)",
            classification="SecurityUpdates",
            cves=["CVE-2024-3001"],
        ),
        patch(
            "KB5044281", "windows_2022", title="2024-10 Cumulative Update (KB5044281)", severity="Important"
        ),
    ],
)


@pytest.fixture
def hook(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> OsConfigHook:
    conn = {"conn_type": "google_cloud_platform", "extra": {"api_endpoint": fleet.url, "anonymous": True}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    return OsConfigHook(gcp_conn_id=CONN_ID, project_id=PROJECT)


def _finished(hook: OsConfigHook, name: str) -> dict[str, Any]:
    return wait_for(lambda: hook.patch_job(name), lambda j: j["state"] in JOB_TERMINAL_STATES, timeout=10)


def _calls(fleet: Fleet, name: str) -> int:
    return fleet.calls().get(f"gcp.osconfig.{name}", 0)


def test_inventories_are_plain_dicts_read_to_the_end_in_full_pages(fleet, hook) -> None:
    before = _calls(fleet, "ListInventories")
    inventories = hook.inventories("europe-west1-b")

    assert len(inventories) == OSCONFIG_PAGE_SIZE + 1
    assert _calls(fleet, "ListInventories") - before == 2  # ceil(101 / 100)
    inv = json.loads(json.dumps(inventories[0]))  # JSON-able as it is
    assert inv["osInfo"]["kernelRelease"] == KERNEL and inv["osInfo"]["hostname"] == "big-001"
    items = {
        i["availablePackage"]["aptPackage"]["packageName"]: i
        for i in inv["items"].values()
        if "availablePackage" in i
    }
    assert sorted(items) == ["curl", "openssl"]
    assert {i["type"] for i in inv["items"].values()} == {"AVAILABLE_PACKAGE", "INSTALLED_PACKAGE"}


def test_vulnerability_reports_carry_severity_names_and_cvss(hook) -> None:
    reports = {r["name"]: r for r in hook.vulnerability_reports("europe-west1-d")}

    assert len(reports) == 2
    by_cve = {v["details"]["cve"]: v for r in reports.values() for v in r["vulnerabilities"]}
    assert {c: v["details"]["severity"] for c, v in by_cve.items()} == {
        "CVE-2024-2001": "HIGH",
        "CVE-2024-2002": "MEDIUM",
        "CVE-2024-3001": "CRITICAL",
    }
    assert by_cve["CVE-2024-3001"]["details"]["cvssV3"]["baseScore"] == pytest.approx(9.8)
    assert by_cve["CVE-2024-2001"]["availableInventoryItemIds"] == [
        "availablePackage-kernel-4.18.0-553.33.1.el8_10"
    ]
    assert {r["highestUpgradableCveSeverity"] for r in reports.values()} == {"HIGH", "CRITICAL"}


def test_patch_job_installs_exactly_the_lists_on_the_named_instances(fleet, hook) -> None:
    job = hook.execute_patch_job(
        display_name="pc-2026-11-22-prod-full",
        description="patchcycle acme prod",
        instances=[
            ("europe-west1-c", "hk-01"),
            ("europe-west1-d", "hkdb-01"),
            "zones/europe-west1-d/instances/hkw-01",
        ],
        apt_packages=["openssl"],
        yum_packages=["kernel"],
        windows_kbs=["5046615"],
        reboot="DEFAULT",
        duration_seconds=600,
        rollout_mode="CONCURRENT_ZONES",
        disruption_budget={"fixed": 2},
    )
    assert job["state"] == "STARTED" and job["name"].startswith(f"projects/{PROJECT}/patchJobs/")
    assert job["patchConfig"]["windowsUpdate"] == {"exclusivePatches": ["KB5046615"]}
    assert job["instanceFilter"]["instances"][0] == "zones/europe-west1-c/instances/hk-01"
    assert job["rollout"] == {"mode": "CONCURRENT_ZONES", "disruptionBudget": {"fixed": 2}}

    done = _finished(hook, job["name"])
    assert done["state"] == "SUCCEEDED", done.get("errorMessage")
    assert done["instanceDetailsSummary"] == {"succeededInstanceCount": "3"}
    details = {d["name"].rsplit("/", 1)[-1]: d for d in hook.instance_details(job["name"])}
    assert {n: d["state"] for n, d in details.items()} == dict.fromkeys(
        ("hk-01", "hkdb-01", "hkw-01"), "SUCCEEDED"
    )

    truth = fleet.truth("acme")
    assert truth["hk-01"]["missing"] == ["USN-2"]
    assert truth["hkdb-01"]["missing"] == ["RHSA-2"] and truth["hkdb-01"]["kernel"].startswith("4.18.0-553")
    assert truth["hkw-01"]["missing"] == ["KB5044281"]
    assert [j["name"] for j in hook.patch_jobs("pc-2026-11-22-prod-full")] == [job["name"]]


def test_zone_over_budget_stops_the_job_before_the_next_zone(fleet, hook) -> None:
    job = hook.execute_patch_job(
        display_name="pc-budget",
        description="budget",
        instances=[("europe-west1-e", "bud-01"), ("europe-west1-e", "bud-02"), ("europe-west1-f", "late-01")],
        apt_packages=["openssl"],
        duration_seconds=600,
        disruption_budget={"fixed": 1},
    )
    done = _finished(hook, job["name"])

    assert done["state"] == "COMPLETED_WITH_ERRORS"
    assert "europe-west1-e" in done["errorMessage"]
    states = {d["name"].rsplit("/", 1)[-1]: d.get("state") for d in hook.instance_details(job["name"])}
    assert states == {"bud-01": "FAILED", "bud-02": "PENDING", "late-01": "PENDING"}
    truth = fleet.truth("acme")
    assert [a for a in truth["late-01"]["actions"] if a["action"] == "gcp.patchJob"] == []
    assert truth["late-01"]["missing"] == ["USN-1", "USN-2"]


def test_instance_details_of_a_large_job_come_in_full_pages(fleet, hook) -> None:
    names = [("europe-west1-b", f"big-{i:03d}") for i in range(1, OSCONFIG_PAGE_SIZE + 2)]
    job = hook.execute_patch_job(
        display_name="pc-dry",
        description="dry run",
        instances=names,
        apt_packages=["openssl"],
        duration_seconds=600,
        rollout_mode="CONCURRENT_ZONES",
        disruption_budget={"percent": 100},
        dry_run=True,
    )
    assert _finished(hook, job["name"])["state"] == "SUCCEEDED"
    before = _calls(fleet, "ListPatchJobInstanceDetails")

    details = hook.instance_details(job["name"])

    assert len(details) == OSCONFIG_PAGE_SIZE + 1 and {d["state"] for d in details} == {"SUCCEEDED"}
    assert _calls(fleet, "ListPatchJobInstanceDetails") - before == 2
    assert fleet.truth("acme")["big-001"]["actions"] == []  # dry run


def test_cancel_patch_job(hook) -> None:
    job = hook.execute_patch_job(
        display_name="pc-cancel",
        description="cancel",
        instances=["zones/europe-west1-b/instances/big-050"],
        duration_seconds=600,
        disruption_budget={"fixed": 1},
        dry_run=True,
    )
    assert hook.cancel_patch_job(job["name"])["state"] == "CANCELED"


def test_failures_name_the_project_and_the_ask(hook) -> None:
    with pytest.raises(GcpNotFound, match=rf"patchJobs/nope in project {PROJECT} .*gcp_fleetsim"):
        hook.patch_job(f"projects/{PROJECT}/patchJobs/nope")
    common: dict[str, Any] = {"display_name": "x", "description": "x", "duration_seconds": 60}
    with pytest.raises(ValueError, match="'SOMETIMES'"):
        hook.execute_patch_job(
            instances=[("z", "n")], reboot="SOMETIMES", disruption_budget={"fixed": 1}, **common
        )
    with pytest.raises(ValueError, match="no instances"):
        hook.execute_patch_job(instances=[], disruption_budget={"fixed": 1}, **common)
    with pytest.raises(ValueError, match="'some'"):
        hook.execute_patch_job(instances=[("z", "n")], disruption_budget={"some": 1}, **common)
    with pytest.raises(ValueError, match="'hk-01'"):
        hook.execute_patch_job(instances=["hk-01"], disruption_budget={"fixed": 1}, **common)


def test_connection_without_emulator_uses_the_providers_credentials(monkeypatch) -> None:
    """Production: the Google provider's credential handling (here a service-account key); fleetsim's
    anonymous mode is refused for anything but a loopback endpoint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.oauth2 import service_account

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "k1",
        "private_key": pem.decode(),
        "client_email": f"patchcycle@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    conn = {"conn_type": "google_cloud_platform", "extra": {"keyfile_dict": json.dumps(key)}}
    monkeypatch.setenv("AIRFLOW_CONN_GCP_PROD", json.dumps(conn))
    kwargs = OsConfigHook(gcp_conn_id="gcp_prod", project_id=PROJECT).client_kwargs()
    assert isinstance(kwargs["credentials"], service_account.Credentials)
    assert kwargs["credentials"].service_account_email == key["client_email"]
    assert kwargs["client_options"].api_endpoint is None and kwargs["transport"] == "rest"

    remote = {
        "conn_type": "google_cloud_platform",
        "extra": {"api_endpoint": "https://osconfig.googleapis.com", "anonymous": True},
    }
    monkeypatch.setenv("AIRFLOW_CONN_GCP_ANON", json.dumps(remote))
    with pytest.raises(ValueError, match="gcp_anon.*osconfig.googleapis.com"):
        OsConfigHook(gcp_conn_id="gcp_anon", project_id=PROJECT).client_kwargs()


def test_the_gcp_catalog_is_read_zone_wide_and_mapped_from_inventories_and_reports(
    fleet, monkeypatch
) -> None:
    """``read_gcp_catalog``: one FULL ListInventories and one ListVulnerabilityReports per zone (paged),
    mapped to catalog entries (Google, Inventory and VulnerabilityReport references:
    https://cloud.google.com/compute/docs/osconfig/rest/v1/projects.locations.instances.inventories and
    https://cloud.google.com/compute/docs/osconfig/rest/v1/projects.locations.instances.vulnerabilityReports).
    """
    from types import SimpleNamespace

    from patchcycle.operators.catalog_gcp import read_gcp_catalog

    conn = {"conn_type": "google_cloud_platform", "extra": {"api_endpoint": fleet.url, "anonymous": True}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    project = SimpleNamespace(project_id=PROJECT, zones=["europe-west1-g"])
    tenant = SimpleNamespace(
        clouds=SimpleNamespace(gcp=SimpleNamespace(projects=[project])),
        gcp_connection_id=lambda _project: CONN_ID,
    )
    events: list[tuple[str, dict[str, Any]]] = []
    log = SimpleNamespace(record=lambda event, **fields: events.append((event, fields)))
    before = (_calls(fleet, "ListInventories"), _calls(fleet, "ListVulnerabilityReports"))

    catalog = {p.id: p for p in read_gcp_catalog(tenant, log)}

    assert (_calls(fleet, "ListInventories"), _calls(fleet, "ListVulnerabilityReports")) == (
        before[0] + 1,
        before[1] + 1,
    )
    openssl = catalog["openssl-1.1.1k-14.el8_6.x86_64"]
    assert (openssl.os_family.value, openssl.package, openssl.version, openssl.arch) == (
        "rhel_8",
        "openssl",
        "1.1.1k-14.el8_6",
        "x86_64",
    )
    # No release date is published: released is None, first_seen is the item's first detection.
    assert openssl.released is None and openssl.first_seen is not None
    assert (openssl.classification, openssl.severity.value, openssl.cves) == (
        "Security",
        "Medium",
        ("CVE-2024-2002",),
    )
    assert openssl.source == "gcp:osconfig.inventories"
    kernel = catalog["kernel-4.18.0-553.33.1.el8_10.x86_64"]
    assert kernel.kernel_release == "4.18.0-553.33.1.el8_10.x86_64" and kernel.severity.value == "High"
    kb = catalog["KB5046615"]
    assert (kb.os_family.value, kb.kb, kb.classification, kb.severity.value) == (
        "windows_2022",
        "5046615",
        "SecurityUpdates",
        "Critical",
    )
    # A KB no vulnerability names has no severity: no baseline can approve it.
    assert catalog["KB5044281"].severity is None
    assert [e for e, _ in events] == ["plan.catalog_read", "plan.catalog_source"]
