"""What CrowdStrike's Arc extension is asked for, and what its answers mean: pure, no cloud."""

from __future__ import annotations

import pytest

from patchcycle.config.falcon_rollout import ArcSensorInstall
from patchcycle.domain.arc_extension import (
    ALREADY_INSTALLED,
    extension_resource,
    machine_of,
    not_sent_reason,
    outcome,
    update_policy_name,
)

MACHINE = "/subscriptions/SUB-1/resourceGroups/RG-Core/providers/Microsoft.HybridCompute/machines/web-01"


def need(**changes):
    return {"action": "install", "target_version": "7.14.16703", "platform": "linux", "reason": "r"} | changes


def test_only_a_machine_without_a_sensor_is_sent_to() -> None:
    assert not_sent_reason(need()) is None
    assert "does not upgrade or reinstall an installed sensor" in not_sent_reason(need(action="upgrade"))
    rfm = not_sent_reason(need(action="rfm", remedy="reinstall"))
    assert "enable.sh" in rfm and "needs a reinstall" in rfm
    assert (
        not_sent_reason(need(target_version=None, reason="no build"))
        == "no sensor version to install: no build"
    )
    assert "Linux and a Windows type only" in not_sent_reason(need(platform="mac"))


def test_a_machine_id_is_read_in_any_case() -> None:
    assert machine_of(MACHINE) == ("SUB-1", "RG-Core", "web-01")
    assert machine_of(MACHINE.lower())[1:] == ("rg-core", "web-01")
    with pytest.raises(ValueError, match="not an Azure Arc machine"):
        machine_of("/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v")


POLICIES = [
    {"name": "disabled-714", "enabled": False, "settings": {"sensor_version": "7.14.16703"}, "groups": []},
    {"name": "any-714", "enabled": True, "settings": {"sensor_version": "7.14.16703"}, "groups": []},
    {
        "name": "prod-714",
        "enabled": True,
        "settings": {"sensor_version": "7.14.16703.0"},
        "groups": [{"id": "g1", "name": "arc-prod"}],
    },
    {"name": "platform_default", "enabled": True, "settings": {"sensor_version": ""}, "groups": []},
]


def test_the_policy_named_is_an_enabled_one_pinned_to_the_target() -> None:
    assert update_policy_name(POLICIES, "7.14.16703", "arc-prod") == "prod-714"  # the host's group's
    assert update_policy_name(POLICIES, "7.14.16703", "arc-dev") == "any-714"  # else by precedence
    assert update_policy_name(POLICIES, "7.15.16807", "arc-prod") == "platform_default"  # none pins it
    assert update_policy_name([], "7.14.16703") == "platform_default"


def test_the_extension_resource_follows_crowdstrikes_arc_template() -> None:
    linux = extension_resource(ArcSensorInstall(), "linux", "westeurope", "p", "id", "secret")
    props = linux["properties"]
    assert (props["publisher"], props["type"], props["typeHandlerVersion"]) == (
        "Crowdstrike.Falcon",
        "FalconSensorLinux",
        "0.0",
    )
    assert props["settings"] == {"sensor_update_policy": "p"}  # the secret only in protectedSettings
    assert props["protectedSettings"] == {"client_id": "id", "client_secret": "secret"}
    windows = extension_resource(ArcSensorInstall(), "windows", "westeurope", "p", "id", "secret")
    assert windows["properties"]["type"] == "FalconSensorWindows"
    assert windows["properties"]["settings"]["disable_provisioning_wait"] is True


def test_an_outcome_is_the_operations_and_the_handlers() -> None:
    ok = {"status": "Succeeded"}
    assert outcome(ok, "The Falcon Sensor installation process completed")[0] == "sent_succeeded"
    assert outcome(ok, ALREADY_INSTALLED)[0] == "failed"
    failed = {"status": "Failed", "error": {"code": "MachineDisconnected", "message": "is Disconnected"}}
    assert outcome(failed, None) == ("failed", "MachineDisconnected: is Disconnected")
    assert outcome(None, None) == ("failed", "the extension operation had not ended when the wait ran out")
