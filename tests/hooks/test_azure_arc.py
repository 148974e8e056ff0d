"""ArcHook against a running fleetsim: the unmodified Azure SDKs over loopback, configured only by an
Airflow connection (``AIRFLOW_CONN_*``): machines, installPatches and assessPatches started and read
back, Resource Graph assessments, throttling that azure-core rides out and throttling that outlasts the
retries."""

from __future__ import annotations

import json
import time

import pytest
from fleetsim_testkit import group, patch, scenario_dict, wait_for

from patchcycle.hooks.azure_arc import ARM_API_VERSION, ArcError, ArcHook, ArcMachineNotFound

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hooks-azure-arc")]

SUB = "00000000-0000-0000-0000-00000000b301"
SUB_BLIP = "00000000-0000-0000-0000-00000000b302"
SUB_BUSY = "00000000-0000-0000-0000-00000000b303"
SUB_LOST = "00000000-0000-0000-0000-00000000b304"
SUB_THROTTLED = "00000000-0000-0000-0000-00000000b305"
CONN = "arc_fleetsim"

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "arc",
            "azure": {
                "subscription_id": SUB,
                "resource_group": "rg-Hook",
                "groups": [
                    group("hk", 105, "ubuntu_22_04", kernel="5.15.0-119-generic"),
                    group("wn", 2, "windows_2022"),
                ],
            },
            "faults": {"agent_offline": ["hk-105"]},
        },
        {
            "id": "arc_other_rg",
            "azure": {
                "subscription_id": SUB,
                "resource_group": "rg-other",
                "groups": [group("ot", 2, "rhel_9")],
            },
        },
        {
            "id": "blip",
            "azure": {
                "subscription_id": SUB_BLIP,
                "resource_group": "rg-blip",
                "throttle": {"requests": 1, "retry_after_seconds": 1},
                "groups": [group("bl", 1, "ubuntu_22_04")],
            },
        },
        {
            "id": "busy",
            "azure": {
                "subscription_id": SUB_BUSY,
                "resource_group": "rg-busy",
                "throttle": {"requests": 100000, "retry_after_seconds": 1},
                "groups": [group("bz", 1, "ubuntu_22_04")],
            },
        },
        {
            "id": "lost",
            "azure": {
                "subscription_id": SUB_LOST,
                "resource_group": "rg-lost",
                "lost_install_answers": 1,
                "groups": [group("ls", 1, "ubuntu_22_04", kernel="5.15.0-119-generic")],
            },
        },
        {
            "id": "throttled",
            "azure": {
                "subscription_id": SUB_THROTTLED,
                "resource_group": "rg-throttled",
                "throttle": {"requests": 2, "retry_after_seconds": 1},
                "groups": [group("th", 1, "ubuntu_22_04", kernel="5.15.0-119-generic")],
            },
        },
    ],
    catalog=[
        patch("USN-1", "ubuntu_22_04", title="openssl 3.0.2-0ubuntu1.19", severity="Important"),
        patch("USN-2", "ubuntu_22_04", title="linux-image-5.15.0-126-generic", kernel="5.15.0-126-generic"),
        patch("RHSA-9", "rhel_9", title="glibc-2.34-125.el9_5.1"),
        patch(
            "KB5046616", "windows_2022", title="2026-11 Cumulative Update", classification="SecurityUpdates"
        ),
        patch("KB5046690", "windows_2022", title="Servicing Stack Update", classification="CriticalUpdates"),
    ],
)

LINUX_ALL = {
    "maximumDuration": "PT2H",
    "rebootSetting": "IfRequired",
    "linuxParameters": {"classificationsToInclude": ["Critical", "Security", "Other"]},
}


@pytest.fixture
def connect(fleet, monkeypatch):
    """Set the Airflow connection ``arc_fleetsim`` to fleetsim (extra overrides merged in)."""

    def _connect(**extra: object) -> None:
        conn = {
            "conn_type": "azure",
            "extra": {"base_url": fleet.url, "static_token": "fleetsim", "retry_total": 1} | extra,
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))

    _connect()
    return _connect


def test_machines_returns_every_page_as_plain_json(fleet, connect):
    machines = ArcHook(CONN, SUB).machines("rg-hook")
    assert len(machines) == 107
    json.dumps(machines)  # plain JSON: storable in XCom as is
    by_name = {m["name"]: m for m in machines}
    hk = by_name["hk-001"]
    assert hk["id"] == fleet.truth("arc")["hk-001"]["host_id"]
    assert hk["properties"]["osType"] == "linux" and hk["properties"]["osVersion"] == "5.15.0-119-generic"
    assert by_name["hk-105"]["properties"]["status"] == "Disconnected"
    assert by_name["wn-01"]["properties"]["osSku"] == "Windows Server 2022 Datacenter"
    assert fleet.calls()["azure.arm.Machines_ListByResourceGroup"] >= 2  # 100 per page


def test_machine_reads_one_and_names_a_missing_one(fleet, connect):
    hook = ArcHook(CONN, SUB)
    assert hook.machine("rg-hook", "hk-002")["properties"]["osProfile"]["computerName"] == "hk-002"
    with pytest.raises(ArcMachineNotFound) as exc:
        hook.machine("rg-hook", "hk-999")
    assert "hk-999" in str(exc.value) and SUB in str(exc.value) and "ResourceNotFound" in str(exc.value)


def test_install_is_started_then_read_until_it_ends(fleet, connect):
    hook = ArcHook(CONN, SUB)
    location = hook.start_install("rg-hook", "hk-003", LINUX_ALL)
    assert location.startswith(fleet.url) and "/operationStatuses/" in location
    assert hook.install_result(location) is None  # 202: still running
    result = wait_for(lambda: hook.install_result(location), lambda r: r is not None, timeout=10)
    assert (result["status"], result["installedPatchCount"], result["rebootStatus"]) == (
        "Succeeded",
        2,
        "Completed",
    )
    json.dumps(result)
    truth = fleet.truth("arc")["hk-003"]
    assert truth["kernel"] == "5.15.0-126-generic" and truth["missing"] == []


def test_windows_install_by_kb_number(fleet, connect):
    hook = ArcHook(CONN, SUB)
    body = {
        "maximumDuration": "PT4H",
        "rebootSetting": "Never",
        "windowsParameters": {"kbNumbersToInclude": ["5046616"]},
    }
    location = hook.start_install("rg-hook", "wn-01", body)
    result = wait_for(lambda: hook.install_result(location), lambda r: r is not None, timeout=10)
    assert (result["installedPatchCount"], result["notSelectedPatchCount"]) == (1, 1)
    assert result["rebootStatus"] == "Required"
    assert fleet.truth("arc")["wn-01"]["installed"] == ["KB5046616"]


def test_a_refused_install_and_a_disconnected_machine(fleet, connect):
    hook = ArcHook(CONN, SUB)
    with pytest.raises(ArcError) as exc:
        hook.start_install("rg-hook", "hk-004", {"maximumDuration": "PT2H", "rebootSetting": "IfRequired"})
    assert "hk-004" in str(exc.value) and "InvalidParameter" in str(exc.value)
    location = hook.start_install("rg-hook", "hk-105", LINUX_ALL)
    result = wait_for(lambda: hook.install_result(location), lambda r: r is not None, timeout=10)
    assert result["status"] == "Failed" and result["errorDetails"]["code"] == "MachineDisconnected"


def test_install_result_only_follows_urls_on_the_arm_endpoint(fleet, connect):
    hook = ArcHook(CONN, SUB)
    before = fleet.calls().get("azure.arm.OperationStatus_Get", 0)
    with pytest.raises(ArcError) as exc:
        hook.install_result("https://elsewhere.example/subscriptions/x/operationStatuses/1")
    assert "elsewhere.example" in str(exc.value) and fleet.url in str(exc.value)
    with pytest.raises(ArcError) as exc:
        hook.install_result(
            f"{fleet.url}/subscriptions/{SUB}/providers/Microsoft.HybridCompute/locations/eastus/operationStatuses/nope"
        )
    assert "404" in str(exc.value)
    assert fleet.calls().get("azure.arm.OperationStatus_Get", 0) == before + 1


def test_patch_assessments_by_machine_with_their_missing_patches(fleet, connect):
    hook = ArcHook(CONN, SUB)
    truth = fleet.truth("arc")
    before = fleet.calls().get("azure.resourcegraph.Resources", 0)
    assessments = hook.patch_assessments(["rg-Hook"])
    assert fleet.calls()["azure.resourcegraph.Resources"] == before + 2  # under 1000 rows each: 1 page
    assert len(assessments) == 107
    json.dumps(assessments)
    hk = assessments[truth["hk-010"]["host_id"].lower()]
    assert (hk["status"], hk["osType"], hk["resourceGroup"]) == ("Succeeded", "Linux", "rg-hook")
    assert hk["availablePatchCountByClassification"] == {"critical": 1, "security": 1, "other": 0}
    assert sorted(p["patchName"] for p in hk["patches"]) == ["linux-image-5.15.0-126-generic", "openssl"]
    wn = assessments[truth["wn-02"]["host_id"].lower()]
    assert sorted(p["kbId"] for p in wn["patches"]) == ["5046616", "5046690"]

    both = hook.patch_assessments(["rg-hook", "rg-other"])
    assert len(both) == 109
    other = both[fleet.truth("arc_other_rg")["ot-01"]["host_id"].lower()]
    assert [p["patchName"] for p in other["patches"]] == ["glibc"]


def test_patch_assessments_follow_an_install(fleet, connect):
    hook = ArcHook(CONN, SUB)
    machine_id = fleet.truth("arc")["hk-020"]["host_id"]
    location = hook.start_install("rg-hook", "hk-020", LINUX_ALL)
    wait_for(lambda: hook.install_result(location), lambda r: r is not None, timeout=10)
    after = hook.patch_assessments(["rg-hook"])[machine_id.lower()]
    assert after["patches"] == [] and after["startedBy"] == "User"


def test_an_assessment_is_started_then_read_until_it_ends(fleet, connect):
    hook = ArcHook(CONN, SUB)
    machine_id = fleet.truth("arc")["hk-030"]["host_id"].lower()
    before = fleet.calls().get("azure.arm.Machines_AssessPatches", 0)
    location = hook.start_assessment("rg-hook", "hk-030")
    assert fleet.calls()["azure.arm.Machines_AssessPatches"] == before + 1
    assert location.startswith(fleet.url) and "/operationStatuses/" in location
    assert hook.operation_result(location) is None  # 202: still running
    result = wait_for(lambda: hook.operation_result(location), lambda r: r is not None, timeout=10)
    json.dumps(result)
    assert (result["status"], result["startedBy"], result["patchServiceUsed"]) == ("Succeeded", "User", "APT")
    counts = result["availablePatchCountByClassification"]
    assert (counts["critical"], counts["security"], counts["other"], counts["updates"]) == (1, 1, 0, 0)
    assert hook.install_result(location) == result  # the former name reads assessments too
    (action,) = fleet.truth("arc")["hk-030"]["actions"]
    assert action["action"] == "azure.assessPatches"
    latest = hook.patch_assessments(["rg-hook"])[machine_id]
    assert latest["assessmentActivityId"] == result["assessmentActivityId"]
    assert latest["startedBy"] == "User" and len(latest["patches"]) == 2


def test_an_assessment_of_a_disconnected_or_busy_or_missing_machine(fleet, connect):
    hook = ArcHook(CONN, SUB)
    location = hook.start_assessment("rg-hook", "hk-105")
    result = wait_for(lambda: hook.operation_result(location), lambda r: r is not None, timeout=10)
    assert result["status"] == "Failed" and result["errorDetails"]["code"] == "MachineDisconnected"

    install = hook.start_install("rg-hook", "hk-031", LINUX_ALL)
    with pytest.raises(ArcError) as exc:
        hook.start_assessment("rg-hook", "hk-031")
    assert "hk-031" in str(exc.value) and "409" in str(exc.value) and "Conflict" in str(exc.value)
    wait_for(lambda: hook.operation_result(install), lambda r: r is not None, timeout=10)
    with pytest.raises(ArcError) as exc:
        hook.start_assessment("rg-hook", "hk-999")
    assert "hk-999" in str(exc.value) and "ResourceNotFound" in str(exc.value)
    with pytest.raises(ValueError, match="not a resource group name"):
        hook.start_assessment("rg/../x", "hk-001")


def test_operation_result_only_follows_urls_on_the_arm_endpoint(fleet, connect):
    with pytest.raises(ArcError) as exc:
        ArcHook(CONN, SUB).operation_result("http://169.254.169.254/subscriptions/x/operationStatuses/1")
    assert "169.254.169.254" in str(exc.value) and "not on the ARM endpoint" in str(exc.value)


def test_patch_assessments_refuse_a_resource_group_that_is_not_a_name(fleet, connect):
    with pytest.raises(ValueError, match="not a resource group name"):
        ArcHook(CONN, SUB).patch_assessments(["rg') | project id //"])


def test_a_brief_throttle_is_ridden_out(fleet, connect):
    began = time.monotonic()
    assert [m["name"] for m in ArcHook(CONN, SUB_BLIP).machines("rg-blip")] == ["bl-01"]
    assert time.monotonic() - began >= 0.9


def test_a_throttle_that_outlasts_the_retries_names_the_subscription(fleet, connect):
    connect(retry_total=2)
    before = fleet.calls().get("azure.arm.throttled", 0)
    with pytest.raises(ArcError) as exc:
        ArcHook(CONN, SUB_BUSY).machines("rg-busy")
    message = str(exc.value)
    assert (
        SUB_BUSY in message and "429" in message and "TooManyRequests" in message and "2 retries" in message
    )
    assert fleet.calls()["azure.arm.throttled"] == before + 3  # the first try and two retries


def test_an_install_whose_answer_is_lost_is_not_sent_again_by_the_sdk(fleet, connect):
    """installPatches takes no idempotency key and azure-core resends a POST answered 500; the hook sends
    it once whatever the connection's retry_total, and the caller learns the status (research: the
    operator keeps the intent and reads the machine's assessment)."""
    connect(retry_total=4)
    before = fleet.calls().get("azure.arm.Machines_InstallPatches", 0)
    with pytest.raises(ArcError) as exc:
        ArcHook(CONN, SUB_LOST).start_install("rg-lost", "ls-01", LINUX_ALL)
    assert exc.value.status_code == 500 and not exc.value.refused
    assert "InternalServerError" in str(exc.value) and SUB_LOST in str(exc.value)
    assert fleet.calls()["azure.arm.Machines_InstallPatches"] == before + 1
    # The install ran all the same: the ground truth shows it once it ends.
    wait_for(lambda: fleet.truth("lost")["ls-01"], lambda t: t["missing"] == [], timeout=15)


def test_a_throttled_install_is_sent_again_after_retry_after(fleet, connect):
    """ARM rejects a throttled request before carrying it out, so a 429 is safe to send again."""
    connect(retry_total=4)
    throttled = fleet.calls().get("azure.arm.throttled", 0)
    began = time.monotonic()
    location = ArcHook(CONN, SUB_THROTTLED).start_install("rg-throttled", "th-01", LINUX_ALL)
    assert "/operationStatuses/" in location and time.monotonic() - began >= 1.8  # two Retry-After: 1
    assert fleet.calls()["azure.arm.throttled"] == throttled + 2


def test_connection_settings_are_checked(fleet, connect, monkeypatch):
    with pytest.raises(ValueError, match="subscription GUID"):
        ArcHook(CONN, "my-subscription")
    connect(base_url="https://management.azure.com")
    with pytest.raises(ValueError, match="static_token is for a local emulator only"):
        ArcHook(CONN, SUB).machines("rg-hook")
    connect(retry_total="many")
    with pytest.raises(ValueError, match="retry_total"):
        ArcHook(CONN, SUB).machines("rg-hook")
    conn = {"conn_type": "azure", "login": "app-id", "password": "secret", "extra": {}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))
    with pytest.raises(ValueError, match="tenantId"):
        ArcHook(CONN, SUB).machines("rg-hook")


def test_a_service_principal_connection_builds_a_pinned_https_client(monkeypatch):
    from azure.identity import ClientSecretCredential

    conn = {"conn_type": "azure", "login": "app-id", "password": "secret", "extra": {"tenantId": "contoso"}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))
    client = ArcHook(CONN, SUB).client  # builds the clients only; nothing is sent
    assert isinstance(client._config.credential, ClientSecretCredential)
    assert client._config.base_url == "https://management.azure.com"
    assert client._config.api_version == ARM_API_VERSION


# -- the Arc catalog source and the install read-back (Learn, "Access Azure Update Manager operations
# data using Azure Resource Graph", https://learn.microsoft.com/azure/update-manager/query-logs) -------
class _Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def record(self, action: str, **details: object) -> None:
        self.events.append((action, details))


def test_read_arc_catalog_reads_every_machine_in_pages_without_a_call_per_machine(fleet, connect):
    from types import SimpleNamespace

    from patchcycle.config.models import AzureSubscription
    from patchcycle.hooks.azure_arc import read_arc_catalog

    # read_arc_catalog needs only the tenant's Azure subscriptions and their connections.
    sub = AzureSubscription(subscription_id=SUB, resource_groups=["rg-Hook", "rg-other"], connection_id=CONN)
    tenant = SimpleNamespace(
        clouds=SimpleNamespace(azure=SimpleNamespace(subscriptions=[sub])),
        azure_connection_id=lambda s: s.connection_id,
    )
    before = fleet.calls()
    log = _Log()
    catalog = read_arc_catalog(tenant, log)
    after = fleet.calls()
    assert after.get("azure.resourcegraph.Resources", 0) - before.get("azure.resourcegraph.Resources", 0) == 1
    assert (
        after.get("azure.arm.Machines_ListByResourceGroup", 0)
        - before.get("azure.arm.Machines_ListByResourceGroup", 0)
        == 3
    )  # 107 + 2 machines at 100 a page
    by_id = {p.id: p for p in catalog}
    assert {"KB5046616", "KB5046690", "openssl_3.0.2-0ubuntu1.19", "glibc_2.34-125.el9_5.1"} <= set(by_id)
    assert (
        by_id["KB5046616"].released is not None
        and by_id["KB5046616"].source == "azure:patchassessmentresources"
    )
    assert by_id["openssl_3.0.2-0ubuntu1.19"].released is None  # Linux: no published date
    assert by_id["glibc_2.34-125.el9_5.1"].os_family.value == "rhel_9"
    assert [a for a, _ in log.events] == ["plan.catalog_read"]


def test_patch_installations_report_what_an_install_installed_with_versions(fleet, connect):
    hook = ArcHook(CONN, SUB)
    machine_id = fleet.truth("arc")["hk-030"]["host_id"].lower()
    body = {
        "maximumDuration": "PT2H",
        "rebootSetting": "IfRequired",
        "linuxParameters": {"packageNameMasksToInclude": ["openssl_3.0.2-0ubuntu1.19"]},
    }
    location = hook.start_install("rg-hook", "hk-030", body)
    result = wait_for(lambda: hook.install_result(location), lambda r: r is not None, timeout=10)
    runs = hook.patch_installations(["rg-hook"])[machine_id]
    rows = runs[result["installationActivityId"].lower()]
    assert sorted((r["patchName"], r["installationState"]) for r in rows) == [
        ("linux-image-5.15.0-126-generic", "NotSelected"),
        ("openssl", "Installed"),
    ]
    (installed,) = [r for r in rows if r["installationState"] == "Installed"]
    assert installed["version"] == "3.0.2-0ubuntu1.19"
