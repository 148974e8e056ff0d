"""fleetsim's Azure: ARM (Arc machines, installPatches, assessPatches), Resource Graph and the backup
attestation API.

Everything Azure goes through the unmodified azure-mgmt-hybridcompute 10.0.0 and azure-mgmt-resourcegraph
8.0.1 SDKs (http + a static bearer header, research §1.6), raw HTTP only for what an SDK hides (case of
paths, the throttle's headers, the attestation API). Each test that patches uses its own machines.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline.policies import HeadersPolicy
from azure.core.rest import HttpRequest
from azure.mgmt.hybridcompute import HybridComputeManagementClient
from azure.mgmt.resourcegraph import ResourceGraphClient
from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions
from fleetsim_testkit import Fleet, group, patch, scenario_dict, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-azure")]

SUB = "00000000-0000-0000-0000-00000000a201"
SUB_THROTTLED = "00000000-0000-0000-0000-00000000a202"
SUB_EVERY = "00000000-0000-0000-0000-00000000a203"
SUB_ASSESS = "00000000-0000-0000-0000-00000000a204"
SUB_ASSESS_THROTTLED = "00000000-0000-0000-0000-00000000a205"
SUB_PIN = "00000000-0000-0000-0000-00000000a206"
PIN_RG = "rg-pin"
RG = "rg-Arc"
OLD_KERNEL = "5.15.0-119-generic"
NEW_KERNEL = "5.15.0-126-generic"
RECENT = (dt.date.today() - dt.timedelta(days=3)).isoformat()
SUMMARY = "microsoft.hybridcompute/machines/patchassessmentresults"
PATCHES = SUMMARY + "/softwarepatches"
ALL_LINUX = {"classificationsToInclude": ["Critical", "Security", "Other"]}

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "az",
            "azure": {
                "subscription_id": SUB,
                "resource_group": RG,
                "location": "westeurope",
                "groups": [
                    group("fleet", 120, "ubuntu_22_04", kernel=OLD_KERNEL),
                    group("lx", 8, "ubuntu_22_04", kernel=OLD_KERNEL),
                    group("rh", 3, "rhel_8", kernel="4.18.0-477.10.1.el8_8.x86_64", falcon_sensor=None),
                    group("win", 3, "windows_2022"),
                ],
            },
            "faults": {
                "agent_offline": ["lx-08"],
                "install_fails": ["lx-07"],
                "backup_fails": ["lx-01"],
                "backup_slow_seconds": {"lx-02": 1.0},
            },
        },
        {
            "id": "az_throttled",
            "azure": {
                "subscription_id": SUB_THROTTLED,
                "resource_group": "rg-busy",
                "throttle": {"requests": 1, "retry_after_seconds": 1},
                "groups": [group("busy", 2, "ubuntu_22_04")],
            },
        },
        {
            "id": "az_every",
            "azure": {
                "subscription_id": SUB_EVERY,
                "resource_group": "rg-every",
                "throttle": {"requests": 0, "every": 3, "retry_after_seconds": 7},
                "groups": [group("every", 1, "ubuntu_22_04")],
            },
        },
        {
            "id": "az_assess",
            "azure": {
                "subscription_id": SUB_ASSESS,
                "resource_group": "rg-assess",
                "location": "northeurope",
                "groups": [
                    group("as", 5, "ubuntu_22_04", kernel=OLD_KERNEL),
                    group("aw", 2, "windows_2022"),
                ],
            },
            "faults": {"agent_offline": ["as-05"]},
        },
        {
            "id": "az_assess_throttled",
            "azure": {
                "subscription_id": SUB_ASSESS_THROTTLED,
                "resource_group": "rg-assess-busy",
                "throttle": {"requests": 2, "retry_after_seconds": 1},
                "groups": [group("at", 1, "ubuntu_22_04")],
            },
        },
        {
            "id": "az_pin",
            "azure": {
                "subscription_id": SUB_PIN,
                "resource_group": PIN_RG,
                "groups": [group("pin", 5, "rhel_9", falcon_sensor=None), group("pw", 1, "windows_2022")],
            },
        },
    ],
    catalog=[
        # Two versions of one package, and an update of another classification (rhel_9: az_pin only).
        patch("RHSA-91", "rhel_9", title="openssl-3.0.7-24.el9", severity="Important"),
        patch("RHSA-92", "rhel_9", title="openssl-3.0.7-27.el9"),
        patch("RHSA-93", "rhel_9", title="curl-7.76.1-29.el9_4", classification="Bugfix", severity="Low"),
        patch("USN-1", "ubuntu_22_04", title="openssl 3.0.2-0ubuntu1.19", severity="Important"),
        patch("USN-2", "ubuntu_22_04", title="linux-image-5.15.0-126-generic", kernel=NEW_KERNEL),
        patch(
            "USN-3", "ubuntu_22_04", title="curl 7.81.0-1ubuntu1.18", classification="Bugfix", severity="Low"
        ),
        patch("RHSA-1", "rhel_8", title="openssl-1.1.1k-14.el8_10"),
        patch(
            "KB5046616", "windows_2022", title="2026-11 Cumulative Update", classification="SecurityUpdates"
        ),
        patch("KB5046690", "windows_2022", title="Servicing Stack Update", classification="CriticalUpdates"),
        patch(
            "KB5044281",
            "windows_2022",
            title="Out-of-band update",
            classification="SecurityUpdates",
            released=RECENT,
        ),
    ],
)


class _Token:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fleetsim", int(time.time()) + 3600)


def arm(fleet: Fleet, subscription: str = SUB, **kw: Any) -> HybridComputeManagementClient:
    return HybridComputeManagementClient(
        _Token(),
        subscription,
        base_url=fleet.url,
        authentication_policy=HeadersPolicy({"Authorization": "Bearer fleetsim"}),
        api_version="2024-07-10",
        polling_interval=0,
        **kw,
    )


def graph(fleet: Fleet) -> ResourceGraphClient:
    return ResourceGraphClient(
        _Token(),
        base_url=fleet.url,
        authentication_policy=HeadersPolicy({"Authorization": "Bearer fleetsim"}),
    )


def http(fleet: Fleet, method: str, path: str, body: Any = None, token: str | None = "fleetsim"):
    """(status, headers, JSON body or None) of a raw request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(fleet.url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            raw = resp.read()
            return resp.status, dict(resp.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, dict(exc.headers), json.loads(raw) if raw else None


def start(client: HybridComputeManagementClient, name: str, body: dict[str, Any], rg: str = RG):
    """POST installPatches without polling: the final HTTP response (202 + Location)."""
    responses: list[Any] = []
    client.machines.begin_install_patches(
        rg, name, body, polling=False, raw_response_hook=lambda r: responses.append(r.http_response)
    )
    return responses[-1]


def finish(client: HybridComputeManagementClient, location: str) -> dict[str, Any]:
    response = wait_for(
        lambda: client.send_request(HttpRequest("GET", location)), lambda r: r.status_code != 202, timeout=10
    )
    assert response.status_code == 200, response.text()
    return response.json()


def linux(reboot: str = "IfRequired", **params: Any) -> dict[str, Any]:
    return {"maximumDuration": "PT2H", "rebootSetting": reboot, "linuxParameters": params}


def windows(reboot: str = "IfRequired", **params: Any) -> dict[str, Any]:
    return {"maximumDuration": "PT2H", "rebootSetting": reboot, "windowsParameters": params}


def graph_rows(
    fleet: Fleet, query: str, top: int = 1000, subscription: str = SUB
) -> tuple[list[dict[str, Any]], int]:
    """All rows of a query through $skipToken paging, and the number of pages."""
    client, rows, token, pages = graph(fleet), [], None, 0
    while True:
        options = QueryRequestOptions(top=top, skip_token=token, result_format="objectArray")
        page = client.resources(QueryRequest(subscriptions=[subscription], query=query, options=options))
        rows.extend(page.data)
        pages += 1
        assert page.total_records >= len(rows)
        token = page.skip_token
        if not token:
            return rows, pages


def delta(before: dict[str, int], after: dict[str, int], key: str) -> int:
    return after.get(key, 0) - before.get(key, 0)


# -- machines -----------------------------------------------------------------------------------------
def test_machines_page_by_100_with_absolute_next_links(fleet):
    client = arm(fleet)
    before = fleet.calls()
    by_rg = [m.as_dict() for m in client.machines.list_by_resource_group(RG)]
    by_sub = [m.as_dict() for m in client.machines.list_by_subscription()]
    after = fleet.calls()
    assert len(by_rg) == len(by_sub) == 134
    assert len({m["id"] for m in by_rg}) == 134
    assert delta(before, after, "azure.arm.Machines_ListByResourceGroup") == 2
    assert delta(before, after, "azure.arm.Machines_ListBySubscription") == 2

    status, _, page = http(
        fleet,
        "GET",
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.HybridCompute/machines?api-version=2024-07-10",
    )
    assert status == 200 and len(page["value"]) == 100
    assert page["nextLink"].startswith(fleet.url + "/subscriptions/")
    assert "$skiptoken=100" in page["nextLink"]
    status, _, error = http(
        fleet, "GET", f"/subscriptions/{SUB}/providers/Microsoft.HybridCompute/machines?$skiptoken=x"
    )
    assert status == 400 and error["error"]["code"] == "InvalidSkipToken"


def test_paths_match_case_insensitively_and_need_a_bearer_token(fleet):
    lower = f"/subscriptions/{SUB}/resourcegroups/rg-arc/providers/microsoft.hybridcompute/machines/FLEET-001"
    status, _, machine = http(fleet, "GET", lower + "?api-version=2024-07-10")
    assert status == 200 and machine["name"] == "fleet-001"
    assert arm(fleet).machines.get("RG-ARC", "Fleet-002").name == "fleet-002"

    status, _, error = http(fleet, "GET", lower, token=None)
    assert status == 401 and error["error"]["code"] == "AuthenticationFailed"


def test_machine_json_describes_os_network_and_extensions(fleet):
    client = arm(fleet)
    truth = fleet.truth("az")
    m = client.machines.get(RG, "fleet-003").as_dict()
    props = m["properties"]
    assert m["id"] == truth["fleet-003"]["host_id"]
    assert m["type"] == "Microsoft.HybridCompute/machines" and m["location"] == "westeurope"
    assert m["tags"]["Environment"] == "prod" and m["tags"]["Criticality"] == "medium"
    assert (props["status"], props["osType"], props["osSku"]) == ("Connected", "linux", "Ubuntu 22.04.4 LTS")
    assert props["osVersion"] == OLD_KERNEL
    assert props["osProfile"]["computerName"] == "fleet-003"
    ip = props["networkProfile"]["networkInterfaces"][0]["ipAddresses"][0]["address"]
    assert ip == truth["fleet-003"]["private_ip"]
    assert {e["type"] for e in props["extensions"]} == {
        "Crowdstrike.Falcon.FalconSensorLinux",
        "Microsoft.Azure.Monitor.AzureMonitorLinuxAgent",
    }
    exts = {
        e.properties.publisher: e.properties.type for e in client.machine_extensions.list(RG, "fleet-003")
    }
    assert exts == {
        "Crowdstrike.Falcon": "FalconSensorLinux",
        "Microsoft.Azure.Monitor": "AzureMonitorLinuxAgent",
    }

    rh = client.machines.get(RG, "rh-03").as_dict()["properties"]
    assert rh["osSku"] == "Red Hat Enterprise Linux 8.8"
    assert not any("Falcon" in e["type"] for e in rh["extensions"])
    win = client.machines.get(RG, "win-03").as_dict()["properties"]
    assert (win["osType"], win["osSku"]) == ("windows", "Windows Server 2022 Datacenter")
    assert win["osVersion"].startswith("10.0.20348.")
    assert client.machines.get(RG, "lx-08").properties.status == "Disconnected"


def test_unknown_machine_resource_group_and_subscription_are_404(fleet):
    with pytest.raises(ResourceNotFoundError) as exc:
        arm(fleet).machines.get(RG, "no-such-machine")
    assert exc.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as exc:
        list(arm(fleet).machines.list_by_resource_group("rg-nope"))
    assert exc.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError) as exc:
        list(arm(fleet, "00000000-0000-0000-0000-00000000ffff").machines.list_by_subscription())
    assert exc.value.error.code == "SubscriptionNotFound"


# -- installPatches -----------------------------------------------------------------------------------
def test_install_is_202_then_202_then_200_and_applies_once(fleet):
    client = arm(fleet)
    before = fleet.calls()
    accepted = start(client, "lx-03", linux(**ALL_LINUX))
    assert accepted.status_code == 202 and accepted.headers["Retry-After"] == "1"
    location = accepted.headers["Location"]
    assert location.startswith(f"{fleet.url}/subscriptions/{SUB}/providers/Microsoft.HybridCompute/")
    assert "/locations/westeurope/operationStatuses/" in location
    assert client.send_request(HttpRequest("GET", location)).status_code == 202
    assert fleet.truth("az")["lx-03"]["actions"] == []

    result = finish(client, location)
    assert result["status"] == "Succeeded"
    assert (result["installedPatchCount"], result["failedPatchCount"], result["notSelectedPatchCount"]) == (
        3,
        0,
        0,
    )
    assert (result["rebootStatus"], result["osType"], result["patchServiceUsed"]) == (
        "Completed",
        "Linux",
        "APT",
    )
    assert result["startedBy"] == "User" and result["errorDetails"] is None
    assert result["startDateTime"] <= result["lastModifiedDateTime"]
    again = client.send_request(HttpRequest("GET", location))
    assert again.status_code == 200 and again.json() == result

    host = fleet.truth("az")["lx-03"]
    (action,) = host["actions"]
    assert action["action"] == "azure.installPatches" and action["result"] == "Succeeded"
    assert sorted(action["installed"]) == ["USN-1", "USN-2", "USN-3"] and action["rebooted"] is True
    assert host["missing"] == [] and host["kernel"] == NEW_KERNEL
    assert client.machines.get(RG, "lx-03").properties.os_version == NEW_KERNEL
    after = fleet.calls()
    assert delta(before, after, "azure.arm.Machines_InstallPatches") == 1
    assert delta(before, after, "azure.arm.OperationStatus_Get") >= 3


def test_the_ground_truth_shows_an_ended_install_nobody_polled(fleet):
    client = arm(fleet)
    start(client, "lx-02", linux(packageNameMasksToInclude=["curl"]))
    time.sleep(0.5)  # longer than invocation_seconds; no Azure request reads the operation
    (action,) = fleet.truth("az")["lx-02"]["actions"]
    assert (action["action"], action["installed"]) == ("azure.installPatches", ["USN-3"])


def test_the_sdk_poller_reads_the_result_model(fleet):
    result = (
        arm(fleet)
        .machines.begin_install_patches(RG, "rh-03", linux(classificationsToInclude=["Critical"]))
        .result()
    )
    assert (result.status, result.installed_patch_count, result.patch_service_used) == ("Succeeded", 1, "YUM")
    assert fleet.truth("az")["rh-03"]["installed"] == ["RHSA-1"]


def test_a_disconnected_machine_fails_without_changing_anything(fleet):
    client = arm(fleet)
    result = finish(client, start(client, "lx-08", linux(**ALL_LINUX)).headers["Location"])
    assert result["status"] == "Failed" and result["errorDetails"]["code"] == "MachineDisconnected"
    assert result["installedPatchCount"] == 0
    host = fleet.truth("az")["lx-08"]
    assert sorted(host["missing"]) == ["USN-1", "USN-2", "USN-3"] and host["kernel"] == OLD_KERNEL
    (action,) = host["actions"]
    assert (action["result"], action["error"]) == ("Failed", "MachineDisconnected")


def test_a_failing_install_reports_failed_patches(fleet):
    client = arm(fleet)
    result = finish(client, start(client, "lx-07", linux(**ALL_LINUX)).headers["Location"])
    assert result["status"] == "CompletedWithWarnings"
    assert (result["installedPatchCount"], result["failedPatchCount"]) == (2, 1)
    assert result["errorDetails"]["code"] == "PatchInstallationFailed"
    host = fleet.truth("az")["lx-07"]
    assert len(host["failed"]) == 1 and len(host["installed"]) == 2


def test_package_masks_select_and_exclude_linux_packages(fleet):
    client = arm(fleet)
    masked = finish(
        client, start(client, "lx-04", linux(packageNameMasksToInclude=["openssl*"])).headers["Location"]
    )
    assert (masked["installedPatchCount"], masked["notSelectedPatchCount"], masked["excludedPatchCount"]) == (
        1,
        2,
        0,
    )
    assert masked["rebootStatus"] == "NotNeeded"
    assert fleet.truth("az")["lx-04"]["installed"] == ["USN-1"]

    body = linux(
        classificationsToInclude=["Critical", "Security"], packageNameMasksToExclude=["linux-image*"]
    )
    excluded = finish(client, start(client, "lx-05", body).headers["Location"])
    assert (
        excluded["installedPatchCount"],
        excluded["excludedPatchCount"],
        excluded["notSelectedPatchCount"],
    ) == (
        1,
        1,
        1,
    )
    host = fleet.truth("az")["lx-05"]
    assert host["installed"] == ["USN-1"] and host["kernel"] == OLD_KERNEL


def test_a_kernel_without_reboot_leaves_a_reboot_pending(fleet):
    client = arm(fleet)
    result = finish(
        client,
        start(client, "lx-06", linux("Never", classificationsToInclude=["Critical"])).headers["Location"],
    )
    assert (result["installedPatchCount"], result["rebootStatus"]) == (1, "Required")
    assert fleet.truth("az")["lx-06"]["kernel"] == OLD_KERNEL
    rows, _ = graph_rows(fleet, f"patchassessmentresources | where type =~ '{SUMMARY}'")
    (summary,) = [r for r in rows if r["id"].endswith("/machines/lx-06/patchassessmentresults/latest")]
    assert summary["properties"]["rebootPending"] is True
    assert summary["properties"]["startedBy"] == "User"
    assert summary["properties"]["availablePatchCountByClassification"] == {
        "critical": 0,
        "security": 1,
        "other": 1,
    }


def test_windows_installs_select_kb_numbers_and_classifications(fleet):
    client = arm(fleet)
    by_kb = finish(
        client, start(client, "win-01", windows(kbNumbersToInclude=["5046616"])).headers["Location"]
    )
    assert (by_kb["installedPatchCount"], by_kb["notSelectedPatchCount"], by_kb["patchServiceUsed"]) == (
        1,
        2,
        "WU",
    )
    assert by_kb["rebootStatus"] == "Completed" and by_kb["osType"] == "Windows"
    assert fleet.truth("az")["win-01"]["installed"] == ["KB5046616"]

    cutoff = (dt.date.today() - dt.timedelta(days=10)).isoformat() + "T00:00:00Z"
    body = windows(
        "Never",
        classificationsToInclude=["Security", "Critical"],
        kbNumbersToExclude=["5046690"],
        maxPatchPublishDate=cutoff,
    )
    by_class = finish(client, start(client, "win-02", body).headers["Location"])
    assert (
        by_class["installedPatchCount"],
        by_class["excludedPatchCount"],
        by_class["notSelectedPatchCount"],
    ) == (
        1,
        1,
        1,
    )
    assert by_class["rebootStatus"] == "Required"
    assert fleet.truth("az")["win-02"]["installed"] == ["KB5046616"]


# -- which updates installPatches installs -----------------------------------------------------------
# Microsoft Learn, "How to programmatically manage updates for Azure Arc-enabled servers"
# (https://learn.microsoft.com/azure/update-manager/manage-arc-enabled-servers-programmatically), section
# "Update deployment" > "Request body": the include lists are installed "over and above" the updates of
# classificationsToInclude; the exclude lists "should not be installed". Swagger 2024-07-10
# (Azure/azure-rest-api-specs specification/hybridcompute/.../stable/2024-07-10/HybridCompute.json,
# definitions/LinuxParameters): masks are "packageName_packageVersion"; no property is required.
def test_classifications_and_include_masks_install_their_union(fleet):
    client = arm(fleet, SUB_PIN)
    body = linux(classificationsToInclude=["Other"], packageNameMasksToInclude=["openssl_3.0.7-24.el9"])
    result = finish(client, start(client, "pin-01", body, PIN_RG).headers["Location"])
    assert (result["installedPatchCount"], result["notSelectedPatchCount"], result["excludedPatchCount"]) == (
        2,
        1,
        0,
    )
    assert fleet.truth("az_pin")["pin-01"]["installed"] == ["RHSA-91", "RHSA-93"]


def test_a_versioned_mask_installs_that_version_and_a_bare_name_the_newest(fleet):
    client = arm(fleet, SUB_PIN)
    body = linux(packageNameMasksToInclude=["openssl_3.0.7-24.el9"])
    finish(client, start(client, "pin-02", body, PIN_RG).headers["Location"])
    assert fleet.truth("az_pin")["pin-02"]["installed"] == ["RHSA-91"]
    finish(
        client,
        start(client, "pin-03", linux(packageNameMasksToInclude=["openssl"]), PIN_RG).headers["Location"],
    )
    assert fleet.truth("az_pin")["pin-03"]["installed"] == ["RHSA-92"]


def test_exclusions_are_taken_from_the_union(fleet):
    client = arm(fleet, SUB_PIN)
    body = linux(**ALL_LINUX, packageNameMasksToExclude=["openssl_3.0.7-27.el9"])
    result = finish(client, start(client, "pin-04", body, PIN_RG).headers["Location"])
    assert (result["installedPatchCount"], result["excludedPatchCount"]) == (2, 1)
    assert fleet.truth("az_pin")["pin-04"]["installed"] == ["RHSA-91", "RHSA-93"]


def test_windows_kbs_are_installed_in_addition_to_classifications(fleet):
    client = arm(fleet, SUB_PIN)
    body = windows(classificationsToInclude=["Critical"], kbNumbersToInclude=["5046616"])
    result = finish(client, start(client, "pw-01", body, PIN_RG).headers["Location"])
    assert (result["installedPatchCount"], result["notSelectedPatchCount"]) == (2, 1)
    assert fleet.truth("az_pin")["pw-01"]["installed"] == ["KB5046616", "KB5046690"]


def test_patch_installation_results_list_each_update_with_its_state_and_version(fleet):
    """Learn, "Access Azure Update Manager operations data using Azure Resource Graph"
    (https://learn.microsoft.com/azure/update-manager/query-logs), "Patch installation results"."""
    client = arm(fleet, SUB_PIN)
    body = linux(packageNameMasksToInclude=["openssl_3.0.7-24.el9"])
    result = finish(client, start(client, "pin-05", body, PIN_RG).headers["Location"])
    machine = fleet.truth("az_pin")["pin-05"]["host_id"].lower()
    summaries, _ = graph_rows(
        fleet,
        "patchinstallationresources"
        " | where type =~ 'microsoft.hybridcompute/machines/patchinstallationresults'",
        subscription=SUB_PIN,
    )
    (summary,) = [r for r in summaries if r["id"].startswith(machine + "/")]
    assert summary["id"] == f"{machine}/patchinstallationresults/{result['installationActivityId']}"
    assert summary["properties"]["installedPatchCount"] == 1
    rows, _ = graph_rows(
        fleet,
        "patchinstallationresources | where type =~ "
        "'microsoft.hybridcompute/machines/patchinstallationresults/softwarepatches'",
        subscription=SUB_PIN,
    )
    mine = sorted(
        (r["properties"]["patchName"], r["properties"]["version"], r["properties"]["installationState"])
        for r in rows
        if r["id"].startswith(summary["id"] + "/")
    )
    assert mine == [
        ("curl", "7.76.1-29.el9_4", "NotSelected"),
        ("openssl", "3.0.7-24.el9", "Installed"),
        ("openssl", "3.0.7-27.el9", "NotSelected"),
    ]


def test_linux_updates_have_no_published_date(fleet):
    """Learn, query-logs, "Description of the patchassessmentresources property": publishedDateTime
    "is not available in case of Linux updates"."""
    rows, _ = graph_rows(fleet, f"patchassessmentresources | where type == '{PATCHES}'", subscription=SUB_PIN)
    linux_rows = [r for r in rows if r["properties"]["version"]]
    windows_rows = [r for r in rows if r["properties"].get("kbId")]
    assert linux_rows and all(r["properties"]["publishedDateTime"] is None for r in linux_rows)
    assert windows_rows and all(r["properties"]["publishedDateTime"] for r in windows_rows)


@pytest.mark.parametrize(
    ("name", "body", "fragment"),
    [
        ("win-03", windows(kbNumbersToInclude=["KB5046616"]), "without 'KB'"),
        ("rh-02", {"maximumDuration": "PT2H", "rebootSetting": "IfRequired"}, "linuxParameters is required"),
        ("rh-02", linux(**ALL_LINUX) | {"maximumDuration": "2 hours"}, "maximumDuration"),
        ("rh-02", linux(classificationsToInclude=["Important"]), "unknown classifications"),
        ("rh-02", linux("Sometimes", **ALL_LINUX), "rebootSetting"),
    ],
)
def test_install_parameters_the_service_refuses_are_400(fleet, name, body, fragment):
    with pytest.raises(HttpResponseError) as exc:
        start(arm(fleet), name, body)
    assert exc.value.status_code == 400 and exc.value.error.code == "InvalidParameter"
    assert fragment in exc.value.error.message
    assert fleet.truth("az")[name]["actions"] == []


def test_a_second_install_on_a_busy_machine_is_409(fleet):
    client = arm(fleet)
    location = start(client, "rh-01", linux(**ALL_LINUX)).headers["Location"]
    with pytest.raises(ResourceExistsError) as exc:
        start(client, "rh-01", linux(**ALL_LINUX))
    assert exc.value.error.code == "Conflict"
    assert finish(client, location)["status"] == "Succeeded"
    assert start(client, "rh-01", linux(**ALL_LINUX)).status_code == 202  # free again once it ended


# -- assessPatches ------------------------------------------------------------------------------------
ASSESS_RG = "rg-assess"
NO_OTHER_COUNTS = {
    "updateRollup": 0,
    "featurePack": 0,
    "servicePack": 0,
    "definition": 0,
    "tools": 0,
    "updates": 0,
}


def start_assess(client: HybridComputeManagementClient, name: str, rg: str = ASSESS_RG):
    """POST assessPatches without polling: the final HTTP response (202 + Location)."""
    responses: list[Any] = []
    client.machines.begin_assess_patches(
        rg, name, polling=False, raw_response_hook=lambda r: responses.append(r.http_response)
    )
    return responses[-1]


def assessment_summary(fleet: Fleet, name: str) -> dict[str, Any]:
    """Resource Graph's latest assessment summary (``properties``) of one machine of ``rg-assess``."""
    rows, _ = graph_rows(
        fleet, f"patchassessmentresources | where type =~ '{SUMMARY}'", subscription=SUB_ASSESS
    )
    (row,) = [r for r in rows if r["id"].endswith(f"/machines/{name}/patchassessmentresults/latest")]
    return row["properties"]


def test_the_sdk_poller_runs_an_assessment_to_its_result(fleet):
    client = arm(fleet, SUB_ASSESS)
    before_graph = assessment_summary(fleet, "as-01")
    assert before_graph["startedBy"] == "Platform"
    before = fleet.calls()
    result = client.machines.begin_assess_patches(ASSESS_RG, "as-01").result()
    after = fleet.calls()
    assert delta(before, after, "azure.arm.Machines_AssessPatches") == 1
    assert delta(before, after, "azure.arm.OperationStatus_Get") >= 1  # the poller followed Location
    assert (result.status, result.started_by, result.patch_service_used, result.os_type) == (
        "Succeeded",
        "User",
        "APT",
        "Linux",
    )
    counts = result.as_dict()["availablePatchCountByClassification"]
    assert counts == {"critical": 1, "security": 1, "other": 1} | NO_OTHER_COUNTS
    assert result.reboot_pending is False and result.error_details is None
    assert result.start_date_time <= result.last_modified_date_time

    host = fleet.truth("az_assess")["as-01"]
    (action,) = host["actions"]
    assert (action["action"], action["result"]) == ("azure.assessPatches", "Succeeded")
    assert action["operation_id"] == result.assessment_activity_id
    assert action["available"] == ["USN-1", "USN-2", "USN-3"]
    assert sorted(host["missing"]) == ["USN-1", "USN-2", "USN-3"]  # an assessment installs nothing

    summary = assessment_summary(fleet, "as-01")
    assert summary["assessmentActivityId"] == result.assessment_activity_id
    assert summary["startedBy"] == "User"
    assert summary["lastModifiedDateTime"] > before_graph["lastModifiedDateTime"]
    assert summary["availablePatchCountByClassification"] == {"critical": 1, "security": 1, "other": 1}


def test_an_assessment_is_202_then_202_then_200_and_counts_windows_classifications(fleet):
    client = arm(fleet, SUB_ASSESS)
    accepted = start_assess(client, "aw-01")
    assert accepted.status_code == 202 and accepted.headers["Retry-After"] == "1"
    location = accepted.headers["Location"]
    assert location.startswith(f"{fleet.url}/subscriptions/{SUB_ASSESS}/providers/Microsoft.HybridCompute/")
    assert "/locations/northeurope/operationStatuses/" in location
    assert client.send_request(HttpRequest("GET", location)).status_code == 202
    assert fleet.truth("az_assess")["aw-01"]["actions"] == []

    result = finish(client, location)
    assert (result["status"], result["patchServiceUsed"], result["osType"]) == ("Succeeded", "WU", "Windows")
    assert result["availablePatchCountByClassification"] == NO_OTHER_COUNTS | {
        "critical": 1,
        "security": 2,
        "other": 0,
    }
    assert client.send_request(HttpRequest("GET", location)).json() == result
    (action,) = fleet.truth("az_assess")["aw-01"]["actions"]
    assert action["action"] == "azure.assessPatches"


def test_an_assessment_after_an_install_reports_what_is_left(fleet):
    client = arm(fleet, SUB_ASSESS)
    installed = finish(
        client,
        start(client, "as-02", linux(packageNameMasksToInclude=["openssl"]), ASSESS_RG).headers["Location"],
    )
    assert installed["installedPatchCount"] == 1
    result = finish(client, start_assess(client, "as-02").headers["Location"])
    assert result["availablePatchCountByClassification"] == {"critical": 1, "security": 0, "other": 1} | (
        NO_OTHER_COUNTS
    )
    actions = [a["action"] for a in fleet.truth("az_assess")["as-02"]["actions"]]
    assert actions == ["azure.installPatches", "azure.assessPatches"]


def test_an_assessment_on_a_disconnected_machine_fails(fleet):
    client = arm(fleet, SUB_ASSESS)
    before_graph = assessment_summary(fleet, "as-05")
    result = finish(client, start_assess(client, "as-05").headers["Location"])
    assert result["status"] == "Failed" and result["errorDetails"]["code"] == "MachineDisconnected"
    assert "as-05" in result["errorDetails"]["message"]
    assert set(result["availablePatchCountByClassification"].values()) == {0}
    (action,) = fleet.truth("az_assess")["as-05"]["actions"]
    assert (action["action"], action["result"], action["error"]) == (
        "azure.assessPatches",
        "Failed",
        "MachineDisconnected",
    )
    assert assessment_summary(fleet, "as-05") == before_graph  # Resource Graph keeps the old one


def test_assess_and_install_exclude_each_other_on_one_machine(fleet):
    client = arm(fleet, SUB_ASSESS)
    location = start_assess(client, "as-03").headers["Location"]
    with pytest.raises(ResourceExistsError) as exc:
        start_assess(client, "as-03")
    assert exc.value.error.code == "Conflict" and "as-03" in exc.value.error.message
    with pytest.raises(ResourceExistsError):
        start(client, "as-03", linux(**ALL_LINUX), ASSESS_RG)
    assert finish(client, location)["status"] == "Succeeded"

    install = start(client, "as-03", linux(**ALL_LINUX), ASSESS_RG).headers["Location"]
    with pytest.raises(ResourceExistsError) as exc:
        start_assess(client, "as-03")
    assert "installPatches" in exc.value.error.message
    assert finish(client, install)["status"] == "Succeeded"
    assert start_assess(client, "as-03").status_code == 202  # free again once it ended


def test_assessing_an_unknown_machine_is_404(fleet):
    with pytest.raises(ResourceNotFoundError) as exc:
        start_assess(arm(fleet, SUB_ASSESS), "as-99")
    assert exc.value.error.code == "ResourceNotFound" and "as-99" in exc.value.error.message


def test_assess_patches_is_throttled_with_the_subscription(fleet):
    path = (
        f"/subscriptions/{SUB_ASSESS_THROTTLED}/resourceGroups/rg-assess-busy/providers/"
        "Microsoft.HybridCompute/machines/at-01/assessPatches?api-version=2024-07-10"
    )
    before = fleet.calls()
    status, headers, body = http(fleet, "POST", path)
    assert status == 429 and headers["Retry-After"] == "1" and body["error"]["code"] == "TooManyRequests"
    assert fleet.truth("az_assess_throttled")["at-01"]["actions"] == []

    began = time.monotonic()
    result = (
        arm(fleet, SUB_ASSESS_THROTTLED).machines.begin_assess_patches("rg-assess-busy", "at-01").result()
    )
    assert time.monotonic() - began >= 0.9  # azure-core slept for Retry-After: 1
    assert result.status == "Succeeded"
    after = fleet.calls()
    assert delta(before, after, "azure.arm.throttled") == 2
    assert delta(before, after, "azure.arm.Machines_AssessPatches") == 1
    (action,) = fleet.truth("az_assess_throttled")["at-01"]["actions"]
    assert action["action"] == "azure.assessPatches"


# -- throttling ---------------------------------------------------------------------------------------
def test_a_429_with_retry_after_is_retried_by_azure_core_and_counted(fleet):
    before = fleet.calls()
    began = time.monotonic()
    machines = list(arm(fleet, SUB_THROTTLED).machines.list_by_resource_group("rg-busy"))
    assert len(machines) == 2
    assert time.monotonic() - began >= 0.9  # slept for Retry-After: 1
    after = fleet.calls()
    assert delta(before, after, "azure.arm.throttled") == 1
    assert delta(before, after, "azure.arm.Machines_ListByResourceGroup") == 1


def test_every_nth_request_of_a_busy_subscription_is_throttled(fleet):
    path = f"/subscriptions/{SUB_EVERY}/resourceGroups/rg-every/providers/Microsoft.HybridCompute/machines"
    answers = [http(fleet, "GET", path) for _ in range(6)]
    assert [status for status, _, _ in answers] == [200, 200, 429, 200, 200, 429]
    _, headers, body = answers[2]
    assert headers["Retry-After"] == "7"
    assert headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"
    assert body["error"]["code"] == "TooManyRequests" and SUB_EVERY in body["error"]["message"]


# -- Resource Graph -----------------------------------------------------------------------------------
def test_resource_graph_pages_assessment_summaries_with_skip_tokens(fleet):
    query = (
        f"patchassessmentresources\n| where type =~ '{SUMMARY}'\n"
        "| where resourceGroup in~ ('RG-ARC')\n| order by id asc"
    )
    rows, pages = graph_rows(fleet, query, top=50)
    assert len(rows) == 134 and pages == 3
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    fleet_001 = fleet.truth("az")["fleet-001"]["host_id"].lower()
    (row,) = [r for r in rows if r["id"] == fleet_001 + "/patchassessmentresults/latest"]
    props = row["properties"]
    assert (row["type"], row["resourceGroup"], row["subscriptionId"]) == (SUMMARY, "rg-arc", SUB)
    assert (props["status"], props["osType"], props["startedBy"], props["rebootPending"]) == (
        "Succeeded",
        "Linux",
        "Platform",
        False,
    )
    assert props["availablePatchCountByClassification"] == {"critical": 1, "security": 1, "other": 1}
    (win,) = [r for r in rows if r["id"].endswith("/machines/win-03/patchassessmentresults/latest")]
    assert win["properties"]["availablePatchCountByClassification"]["security"] == 2

    none, _ = graph_rows(
        fleet, f"patchassessmentresources | where type =~ '{SUMMARY}' | where resourceGroup in~ ('x')"
    )
    assert none == []


def test_resource_graph_lists_each_missing_patch(fleet):
    rows, _ = graph_rows(fleet, f"patchassessmentresources | where type == '{PATCHES}'")
    fleet_002 = fleet.truth("az")["fleet-002"]["host_id"].lower()
    mine = {
        r["properties"]["patchName"]: r["properties"] for r in rows if r["id"].startswith(fleet_002 + "/")
    }
    assert set(mine) == {"openssl", "linux-image-5.15.0-126-generic", "curl"}
    assert mine["openssl"]["version"] == "3.0.2-0ubuntu1.19"
    assert mine["openssl"]["classifications"] == ["Security"]
    assert mine["curl"]["classifications"] == ["Other"]
    win = fleet.truth("az")["win-03"]["host_id"].lower()
    kbs = {r["properties"]["kbId"]: r["properties"] for r in rows if r["id"].startswith(win + "/")}
    assert set(kbs) == {"5046616", "5046690", "5044281"}
    assert kbs["5046690"]["classifications"] == ["Critical"] and kbs["5046616"]["msrcSeverity"] == "Critical"


def test_resource_graph_refuses_queries_it_cannot_run(fleet):
    client = graph(fleet)
    for query in (
        "resources | where type =~ 'microsoft.hybridcompute/machines'",
        f"patchassessmentresources | where type =~ '{SUMMARY}' | project id",
        "patchassessmentresources",
    ):
        with pytest.raises(HttpResponseError) as exc:
            client.resources(QueryRequest(subscriptions=[SUB], query=query))
        assert exc.value.status_code == 400 and "fleetsim cannot run this Resource Graph query" in str(
            exc.value
        )
    query = f"patchassessmentresources | where type =~ '{SUMMARY}'"
    for options in (QueryRequestOptions(top=1001), QueryRequestOptions(skip_token="bogus")):
        with pytest.raises(HttpResponseError) as exc:
            client.resources(QueryRequest(subscriptions=[SUB], query=query, options=options))
        assert exc.value.status_code == 400


# -- backup attestations ------------------------------------------------------------------------------
ATTEST = "/backup-system/v1/attestations:query"


def test_attestations_report_each_machines_latest_backup(fleet):
    truth = fleet.truth("az")
    ids = [truth[n]["host_id"] for n in ("lx-01", "lx-02", "fleet-010")]
    asked = [
        ids[0],
        ids[1],
        ids[2].upper(),
        "/subscriptions/x/resourceGroups/y/providers/Microsoft.HybridCompute/machines/z",
    ]
    day_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    status, _, body = http(fleet, "POST", ATTEST, {"machines": asked, "notBefore": day_ago})
    assert status == 200
    rows = body["attestations"]
    assert [r["machine"] for r in rows] == asked
    assert [r["status"] for r in rows] == ["failed", "running", "succeeded", "none"]
    ok = rows[2]
    completed = dt.datetime.fromisoformat(ok["completedAt"].replace("Z", "+00:00"))
    assert dt.timedelta(minutes=50) < dt.datetime.now(dt.UTC) - completed < dt.timedelta(hours=2)
    assert ok["backupId"].startswith("bk-")

    slow = wait_for(
        lambda: http(fleet, "POST", ATTEST, {"machines": [ids[1]], "notBefore": day_ago})[2]["attestations"][
            0
        ],
        lambda r: r["status"] != "running",
        timeout=5,
    )
    assert slow["status"] == "succeeded" and slow["completedAt"]

    future = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).isoformat()
    _, _, later = http(fleet, "POST", ATTEST, {"machines": [ids[2]], "notBefore": future})
    assert later["attestations"][0]["status"] == "none"


def test_attestation_api_needs_a_token_and_bounds_the_batch(fleet):
    now = dt.datetime.now(dt.UTC).isoformat()
    status, _, body = http(fleet, "POST", ATTEST, {"machines": ["m"], "notBefore": now}, token=None)
    assert status == 401 and body["error"]["code"] == "unauthenticated"
    status, _, body = http(fleet, "POST", ATTEST, {"machines": ["m"] * 1001, "notBefore": now})
    assert status == 400 and "1000" in body["error"]["message"]
    status, _, body = http(fleet, "POST", ATTEST, {"machines": ["m"], "notBefore": "yesterday"})
    assert status == 400 and "notBefore" in body["error"]["message"]
