"""The Falcon sensor installed on Azure Arc-enabled servers through CrowdStrike's machine extension
(publisher ``Crowdstrike.Falcon``, type ``FalconSensorLinux`` / ``FalconSensorWindows``), driven with the
unmodified azure-mgmt-hybridcompute SDK (api-version 2024-07-10, the long-running PUT through ARMPolling)
and FalconPy for the sensor-update policy that picks the version and for the device records.

Covers: success (the version the named sensor-update policy gives, else the newest installer; the device
record only after the registration delay; protected settings never given back), the faults (install fails,
other CID), bad credentials, a disconnected machine, a sensor already there (the extension never
upgrades), the extension type of the other OS, a publisher fleetsim does not run (400), a PUT while the
previous operation runs (409), and an MSSP parent acting for the tenant through ``member_cid``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.core.pipeline.policies import HeadersPolicy
from azure.mgmt.hybridcompute import HybridComputeManagementClient
from falconpy import Hosts, SensorUpdatePolicy
from fleetsim_testkit import Fleet, group, scenario_dict, wait_for

from fleetsim.falcon.wire import short_cid
from fleetsim.seed import falcon_cid

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-falcon-arc")]

TENANT = "t_arc"
SUB = "00000000-0000-0000-0000-00000000f00a"
RG = "rg-falcon"
SECRET = "fleetsim-falcon-secret"
KERNEL = "5.15.0-119-generic"
REGISTRATION_SECONDS = 2.0
LINUX = {"publisher": "Crowdstrike.Falcon", "type": "FalconSensorLinux", "typeHandlerVersion": "1.0"}

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": TENANT,
            "azure": {
                "subscription_id": SUB,
                "resource_group": RG,
                "location": "westeurope",
                "groups": [
                    group("lx", 8, "ubuntu_22_04", kernel=KERNEL, falcon_sensor=None),
                    group("rh", 2, "rhel_9", falcon_sensor=None),
                    group("wn", 1, "windows_2022", falcon_sensor=None),
                    group("old", 1, "ubuntu_22_04", kernel=KERNEL, falcon_sensor="7.13.16606"),
                ],
            },
            "faults": {
                "falcon_install_fails": ["lx-02"],
                "falcon_registers_other_cid": ["lx-03"],
                "agent_offline": ["lx-05"],
            },
        }
    ],
    catalog=[],
    falcon={
        "default_sensor_version": "7.13.16606",
        "kernels": [
            {
                "release": KERNEL,
                "vendor": "ubuntu",
                "base_package_supported_sensor_versions": ["7.13.16606", "7.14.16703", "7.15.16807"],
            }
        ],
    },
)
SCENARIO["timings"].update(falcon_registration_seconds=REGISTRATION_SECONDS)


class _Token:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fleetsim", int(time.time()) + 3600)


@pytest.fixture(scope="module")
def arm(fleet: Fleet) -> HybridComputeManagementClient:
    return HybridComputeManagementClient(
        _Token(),
        SUB,
        base_url=fleet.url,
        authentication_policy=HeadersPolicy({"Authorization": "Bearer fleetsim"}),
        api_version="2024-07-10",
        polling_interval=0,
    )


@pytest.fixture(scope="module")
def hosts_api(fleet: Fleet) -> Hosts:
    return Hosts(client_id=TENANT, client_secret=SECRET, base_url=fleet.url, timeout=10)


@pytest.fixture(scope="module")
def rollout_policy(hosts_api: Hosts) -> str:
    """A Linux sensor-update policy on the 7.14 build, enabled: the version the extension installs."""
    policies = SensorUpdatePolicy(auth_object=hosts_api)
    builds = policies.query_combined_builds(platform="linux")["body"]["resources"]
    build = next(b["build"] for b in builds if b["sensor_version"] == "7.14.16703" and "|" not in b["build"])
    created = policies.create_policies_v2(
        name="rollout-linux", platform_name="Linux", settings={"build": build}
    )["body"]["resources"][0]
    policies.perform_policies_action(action_name="enable", ids=[created["id"]])
    return "rollout-linux"


def body(settings: dict[str, Any] | None = None, protected: dict[str, Any] | None = None, **props: Any):
    return {
        "location": "westeurope",
        "properties": {
            **LINUX,
            **props,
            "settings": settings or {},
            "protectedSettings": {"client_id": TENANT, "client_secret": SECRET}
            if protected is None
            else protected,
        },
    }


def install(
    arm: HybridComputeManagementClient, machine: str, payload: dict[str, Any], name: str = "FalconSensorLinux"
):
    return arm.machine_extensions.begin_create_or_update(RG, machine, name, payload).result()


def records(hosts_api: Hosts, name: str) -> list[dict[str, Any]]:
    found = hosts_api.query_devices_by_filter(filter=f"hostname:'{name}'")["body"]["resources"]
    return hosts_api.get_device_details(ids=found)["body"]["resources"] if found else []


def test_install_by_policy_registers_after_the_delay(
    fleet: Fleet, arm: HybridComputeManagementClient, hosts_api: Hosts, rollout_policy: str
) -> None:
    secret_settings = {"client_id": TENANT, "client_secret": SECRET, "provisioning_token": "tok-123"}
    result = install(arm, "lx-01", body({"sensor_update_policy": rollout_policy}, secret_settings))
    props = result["properties"]
    assert props["provisioningState"] == "Succeeded"
    assert props["instanceView"]["status"]["message"] == "The Falcon Sensor installation process completed"
    got = arm.machine_extensions.get(RG, "lx-01", "FalconSensorLinux").as_dict()
    assert got["properties"]["settings"] == {"sensor_update_policy": rollout_policy}
    listed = json.dumps([e.as_dict() for e in arm.machine_extensions.list(RG, "lx-01")])
    shown = json.dumps(got) + listed + json.dumps(arm.machines.get(RG, "lx-01").as_dict())
    assert SECRET not in shown and "tok-123" not in shown  # protectedSettings are never given back
    truth = fleet.truth(TENANT)["lx-01"]
    assert truth["falcon"]["version"] == "7.14.16703.0"
    assert truth["actions"][-1]["action"] == "azure.machineExtension"
    registers_at = dt.datetime.fromisoformat(truth["falcon"]["registered_at"]).timestamp()
    [record] = wait_for(lambda: records(hosts_api, "lx-01"), bool, timeout=20)
    assert time.time() >= registers_at  # the record shows only once the sensor has registered
    assert record["agent_version"] == "7.14.16703.0"
    assert short_cid(record["cid"]) == short_cid(falcon_cid(TENANT))


def test_without_a_policy_build_the_newest_installer(
    fleet: Fleet, arm: HybridComputeManagementClient
) -> None:
    install(arm, "rh-01", body())  # platform_default, whose build is empty
    assert fleet.truth(TENANT)["rh-01"]["falcon"]["version"] == "7.15.16807.0"


def test_faults_and_failures(fleet: Fleet, arm: HybridComputeManagementClient, hosts_api: Hosts) -> None:
    with pytest.raises(HttpResponseError) as failed:
        install(arm, "lx-02", body())
    assert "install failed to complete" in str(failed.value)
    ext = arm.machine_extensions.get(RG, "lx-02", "FalconSensorLinux")
    assert ext["properties"]["provisioningState"] == "Failed"
    assert ext["properties"]["instanceView"]["status"]["level"] == "Error"
    other = install(arm, "lx-03", body())
    assert other["properties"]["provisioningState"] == "Succeeded"
    with pytest.raises(HttpResponseError):
        install(arm, "lx-04", body(protected={"client_id": TENANT, "client_secret": "wrong"}))
    with pytest.raises(HttpResponseError) as offline:
        install(arm, "lx-05", body())
    assert "Disconnected" in str(offline.value)
    truth = fleet.truth(TENANT)
    assert truth["lx-02"]["falcon"] is None and truth["lx-04"]["falcon"] is None
    assert truth["lx-05"]["falcon"] is None
    assert "Not Authorized" in truth["lx-04"]["actions"][-1]["installer_log"]
    registered = dt.datetime.fromisoformat(truth["lx-03"]["falcon"]["registered_at"]).timestamp()
    wait_for(time.time, lambda now: now > registered + 0.2, timeout=20)
    assert records(hosts_api, "lx-03") == []  # registered under another customer's CID


def test_an_installed_sensor_is_left_as_it_is(fleet: Fleet, arm: HybridComputeManagementClient) -> None:
    result = install(arm, "old-01", body())
    assert (
        result["properties"]["instanceView"]["status"]["message"] == "The Falcon Sensor is already installed"
    )
    assert fleet.truth(TENANT)["old-01"]["falcon"]["version"] == "7.13.16606.0"
    names = [e["name"] for e in arm.machine_extensions.list(RG, "old-01")]
    assert names.count("FalconSensorLinux") == 1 and "CrowdStrikeFalconSensor" not in names


def test_bad_requests(fleet: Fleet, arm: HybridComputeManagementClient) -> None:
    with pytest.raises(HttpResponseError) as unknown:
        install(arm, "lx-06", body(publisher="Example.Vendor"))
    assert unknown.value.status_code == 400 and unknown.value.error.code == "HCRP400"
    with pytest.raises(HttpResponseError) as wrong_os:
        install(arm, "lx-06", body(type="FalconSensorWindows"), name="FalconSensorWindows")
    assert "not supported on linux" in str(wrong_os.value)
    with pytest.raises(ResourceExistsError):  # a second Falcon extension of the same type: 409
        arm.machine_extensions.begin_create_or_update(RG, "lx-06", "Other", body(type="FalconSensorWindows"))
    # A PUT while the extension's own operation runs is refused.
    arm.machine_extensions.begin_create_or_update(RG, "lx-07", "FalconSensorLinux", body(), polling=False)
    with pytest.raises(ResourceExistsError):
        arm.machine_extensions.begin_create_or_update(RG, "lx-07", "FalconSensorLinux", body(), polling=False)
    wait_for(lambda: fleet.truth(TENANT)["lx-07"]["falcon"], bool, timeout=20)


def test_windows_and_an_mssp_parent_with_member_cid(fleet: Fleet, arm: HybridComputeManagementClient) -> None:
    parent = {"client_id": "fleetsim-falcon", "client_secret": SECRET}
    payload = body({"member_cid": falcon_cid(TENANT)}, parent, type="FalconSensorWindows")
    result = install(arm, "wn-01", payload, name="FalconSensorWindows")
    assert result["properties"]["provisioningState"] == "Succeeded"
    sensor = fleet.truth(TENANT)["wn-01"]["falcon"]
    assert short_cid(sensor["cid"]) == short_cid(falcon_cid(TENANT)) and sensor["version"] == "7.15.16807.0"
