"""ArcHook's machine extensions against a running fleetsim: CrowdStrike's Falcon sensor extension put on
Arc machines through the unmodified azure-mgmt-hybridcompute SDK, its operation read at its
``Azure-AsyncOperation`` URL until it ends, and the extension's instance view read back; a failed install,
a disconnected machine and a request ARM refuses; protected settings never given back."""

from __future__ import annotations

import json

import pytest
from fleetsim_testkit import group, scenario_dict, wait_for

from patchcycle.hooks.azure_arc import ArcError, ArcHook

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hooks-azure-arc-extensions")]

TENANT = "arcx"
SUB = "00000000-0000-0000-0000-00000000e401"
RG = "rg-Ext"
CONN = "arc_extensions_fleetsim"
SECRET = "fleetsim-falcon-secret"  # fleetsim's Falcon takes the tenant id as client id with this secret
KERNEL = "5.15.0-119-generic"

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": TENANT,
            "azure": {
                "subscription_id": SUB,
                "resource_group": RG,
                "groups": [
                    group("ex", 4, "ubuntu_22_04", kernel=KERNEL, falcon_sensor=None),
                    group("had", 1, "ubuntu_22_04", kernel=KERNEL, falcon_sensor="7.13.16606"),
                ],
            },
            "faults": {"falcon_install_fails": ["ex-02"], "agent_offline": ["ex-03"]},
        }
    ],
    catalog=[],
    falcon={
        "default_sensor_version": "7.13.16606",
        "kernels": [
            {
                "release": KERNEL,
                "vendor": "ubuntu",
                "base_package_supported_sensor_versions": ["7.13.16606", "7.14.16703"],
            }
        ],
    },
)


def falcon_extension(secret: str = SECRET) -> dict:
    """The Linux Falcon extension as CrowdStrike's Arc template lays it out (linux/package-arc/Artifacts/
    MainTemplate.json)."""
    return {
        "location": "westeurope",
        "properties": {
            "publisher": "Crowdstrike.Falcon",
            "type": "FalconSensorLinux",
            "typeHandlerVersion": "0.0",
            "autoUpgradeMinorVersion": True,
            "settings": {"sensor_update_policy": "platform_default"},
            "protectedSettings": {"client_id": TENANT, "client_secret": secret},
        },
    }


@pytest.fixture
def hook(fleet, monkeypatch) -> ArcHook:
    conn = {
        "conn_type": "azure",
        "extra": {"base_url": fleet.url, "static_token": "fleetsim", "retry_total": 1},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))
    return ArcHook(CONN, SUB)


def ended(hook: ArcHook, url: str) -> dict:
    return wait_for(
        lambda: hook.extension_operation(url), lambda op: op["status"] != "InProgress", timeout=20
    )


def test_an_extension_is_put_and_its_operation_read_until_it_ends(fleet, hook) -> None:
    url = hook.start_extension(RG, "ex-01", "FalconSensorLinux", falcon_extension())
    assert url.startswith(fleet.url) and "/operationStatus/" in url
    first = hook.extension_operation(url)
    assert first["status"] in ("InProgress", "Succeeded")
    assert ended(hook, url)["status"] == "Succeeded"
    ext = hook.extension(RG, "ex-01", "FalconSensorLinux")
    assert ext["properties"]["provisioningState"] == "Succeeded"
    assert ext["properties"]["instanceView"]["status"]["message"] == (
        "The Falcon Sensor installation process completed"
    )
    assert SECRET not in json.dumps(ext)  # protected settings are taken, never given back
    assert fleet.truth(TENANT)["ex-01"]["falcon"]["version"].startswith("7.14.16703")


def test_a_failed_install_and_a_disconnected_machine_end_failed_with_their_error(hook) -> None:
    failed = ended(hook, hook.start_extension(RG, "ex-02", "FalconSensorLinux", falcon_extension()))
    assert failed["status"] == "Failed"
    assert "The Falcon Sensor install failed to complete" in failed["error"]["message"]
    away = ended(hook, hook.start_extension(RG, "ex-03", "FalconSensorLinux", falcon_extension()))
    assert away["status"] == "Failed" and "Disconnected" in away["error"]["message"]


def test_an_installed_sensor_is_skipped_and_the_instance_view_says_so(fleet, hook) -> None:
    done = ended(hook, hook.start_extension(RG, "had-01", "FalconSensorLinux", falcon_extension()))
    assert done["status"] == "Succeeded"
    view = hook.extension(RG, "had-01", "FalconSensorLinux")["properties"]["instanceView"]["status"]
    assert view["message"] == "The Falcon Sensor is already installed"
    assert fleet.truth(TENANT)["had-01"]["falcon"]["version"] == "7.13.16606.0"


def test_a_refused_request_is_an_arc_error_without_the_secret(hook) -> None:
    body = falcon_extension(secret="s3cr3t-never-shown")
    body["properties"]["publisher"] = "Example.Vendor"
    with pytest.raises(ArcError) as refused:
        hook.start_extension(RG, "ex-04", "FalconSensorLinux", body)
    assert refused.value.status_code == 400 and refused.value.refused
    assert "HCRP400" in str(refused.value) and "s3cr3t-never-shown" not in str(refused.value)
    assert hook.extension(RG, "ex-04", "NoSuchExtension") is None
    with pytest.raises(ArcError, match="not on the ARM endpoint"):
        hook.extension_operation("https://elsewhere.example.com/operationStatus/x")
