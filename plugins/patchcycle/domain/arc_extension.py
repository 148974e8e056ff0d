"""The Falcon sensor on Azure Arc machines through CrowdStrike's machine extension, as policy: which hosts
the extension can serve, the sensor-update policy it is told to install from, the extension resource put
on a machine, and what its outcome means. Pure: the install task reads and writes, these functions decide.

Documents followed (github.com/CrowdStrike/azure-vm-extension):

* ``linux|windows/package-arc/Artifacts/MainTemplate.json``: the extension on an Arc machine is
  ``Microsoft.HybridCompute/machines/extensions@2024-07-10`` named after its type (``FalconSensorLinux``,
  ``FalconSensorWindows``), publisher ``Crowdstrike.Falcon``, ``typeHandlerVersion`` ``0.0`` with
  ``autoUpgradeMinorVersion``; ``settings.sensor_update_policy`` (default ``platform_default``: the README
  says it "determines what sensor version will be installed"); ``protectedSettings`` ``client_id`` and
  ``client_secret`` of a Falcon API client with Sensor Download (read) and Sensor update policies (read).
* ``README.md``: on Windows Arc machines ``disable_provisioning_wait`` should be true (Arc caps an
  extension command's CPU at 5 %, so the provisioning wait can outlast the enable command's timeout).
* ``linux/handler/enable.sh``: a machine whose sensor is installed is skipped ("The Falcon Sensor is
  already installed") and reported a success: the extension never upgrades nor reinstalls a sensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from patchcycle.config.falcon_rollout import ArcSensorInstall
from patchcycle.domain.falcon import sensor_build
from patchcycle.domain.falcon_rollout import DEFAULT_POLICY

HANDLER_VERSION = "0.0"
"""``typeHandlerVersion`` of CrowdStrike's Arc templates (with ``autoUpgradeMinorVersion``: the newest
minor version the publisher ships)."""
ALREADY_INSTALLED = "The Falcon Sensor is already installed"
"""The instance view's message when ``enable.sh`` found a sensor and did nothing."""
SENT_ACTIONS = ("install",)
"""The needs the extension can meet: a machine with no sensor. An upgrade or an RFM host has one."""
NOT_UPGRADED = (
    "the CrowdStrike extension does not upgrade or reinstall an installed sensor (its enable.sh skips a "
    "machine whose sensor is installed: github.com/CrowdStrike/azure-vm-extension linux/handler/enable.sh)"
)


def not_sent_reason(need: Mapping[str, Any]) -> str | None:
    """Why the extension is not put on this Azure host's machine (None: it is). ``need`` is a
    :class:`~patchcycle.domain.falcon_rollout.SensorNeed` as ``records/needs.json`` holds it, of an action
    the roll-out acts on (install, upgrade, rfm)."""
    action, target = need.get("action"), need.get("target_version")
    if action == "upgrade":
        return f"{NOT_UPGRADED}; upgrade it to {target or 'a newer sensor'} through its sensor-update policy"
    if action == "rfm":
        remedy = need.get("remedy") or "reinstall"
        return (
            f"{NOT_UPGRADED}; the sensor in reduced-functionality mode needs a {remedy}: {need.get('reason')}"
        )
    if action not in SENT_ACTIONS:
        return f"action {action!r} is not one the extension performs"
    if not target:
        return f"no sensor version to install: {need.get('reason')}"
    if need.get("platform") not in ("linux", "windows"):
        return (
            f"platform {need.get('platform')!r}: CrowdStrike's extension has a Linux and a Windows type only"
        )
    return None


def machine_of(host_id: str) -> tuple[str, str, str]:
    """(subscription, resource group, machine name) of an Arc machine's resource id
    (``/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.HybridCompute/machines/{name}``, any
    case); ``ValueError`` for anything else."""
    parts = host_id.strip("/").split("/")
    lowered = [part.lower() for part in parts]
    if (
        len(parts) != 8
        or lowered[0] != "subscriptions"
        or lowered[2] != "resourcegroups"
        or lowered[4:7] != ["providers", "microsoft.hybridcompute", "machines"]
    ):
        raise ValueError(f"{host_id!r} is not an Azure Arc machine's resource id")
    return parts[1], parts[3], parts[7]


def update_policy_name(
    policies: Sequence[Mapping[str, Any]], target_version: str, host_group: str | None = None
) -> str:
    """The sensor-update policy the extension is told to install from: one whose build is the need's
    ``target_version``, so the sensor installed is the one the roll-out decided.

    ``policies`` are the platform's sensor-update policies, highest precedence first (the records
    ``FalconHook.policies`` returns: ``name``, ``enabled``, ``groups``, ``settings.sensor_version``). The
    installer looks a policy up by name among the enabled ones of the host's platform (falcon-installer,
    ``pkg/falcon/falcon.go``), so only an enabled one is named: the highest-precedence one that holds the
    host's group (``host_group``, its name), else the highest-precedence one at all; else
    ``platform_default``, whose build (none by default) makes the installer take the newest sensor."""
    wanted = sensor_build(target_version)
    pinned = [
        policy
        for policy in policies
        if policy.get("enabled")
        and policy.get("name")
        and str((policy.get("settings") or {}).get("sensor_version") or "")
        and sensor_build(str(policy["settings"]["sensor_version"])) == wanted
    ]
    for policy in pinned:
        if host_group and any(
            (group or {}).get("name") == host_group for group in policy.get("groups") or []
        ):
            return str(policy["name"])
    return str(pinned[0]["name"]) if pinned else DEFAULT_POLICY


def extension_type(install: ArcSensorInstall, platform: str) -> str:
    """The extension type (and name) of a platform: ``FalconSensorLinux`` or ``FalconSensorWindows``."""
    return install.windows_type if platform == "windows" else install.linux_type


def extension_resource(
    install: ArcSensorInstall,
    platform: str,
    location: str,
    sensor_update_policy: str,
    client_id: str,
    client_secret: str,
) -> dict[str, Any]:
    """The MachineExtension PUT on one machine, as CrowdStrike's Arc template writes it. The API client's
    id and secret go in ``protectedSettings`` only (encrypted in transit and at rest, never answered)."""
    settings: dict[str, Any] = {"sensor_update_policy": sensor_update_policy}
    if platform == "windows":
        settings["disable_provisioning_wait"] = True  # the README's advice for Windows Arc machines
    return {
        "location": location,
        "properties": {
            "publisher": install.publisher,
            "type": extension_type(install, platform),
            "typeHandlerVersion": HANDLER_VERSION,
            "autoUpgradeMinorVersion": True,
            "settings": settings,
            "protectedSettings": {"client_id": client_id, "client_secret": client_secret},
        },
    }


def outcome(operation: Mapping[str, Any] | None, instance_message: str | None) -> tuple[str, str]:
    """(result, why) of one machine's extension: ``sent_succeeded`` when the operation succeeded and the
    handler installed; ``failed`` with the operation's error, or when the handler found a sensor already
    there (nothing was installed: its sensor registered under another CID, or not at all, since no device
    record of the tenant matched the machine)."""
    if operation is None:
        return "failed", "the extension operation had not ended when the wait ran out"
    status = str(operation.get("status") or "")
    if status != "Succeeded":
        error = operation.get("error") or {}
        message = error.get("message") or f"the extension operation ended {status or 'without a status'}"
        return "failed", f"{error.get('code') or status}: {message}"
    if instance_message == ALREADY_INSTALLED:
        return "failed", (
            f"the extension reported '{ALREADY_INSTALLED}' and installed nothing, though no device record "
            "in the tenant's CID matched the machine (a sensor of another CID, or one never registered)"
        )
    return "sent_succeeded", instance_message or "Succeeded"
