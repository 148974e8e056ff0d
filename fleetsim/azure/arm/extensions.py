"""Machine extensions of Arc-enabled servers: ``PUT``/``GET .../machines/{machine}/extensions/{name}``, run
as a long-running operation, and CrowdStrike's Falcon sensor extension as the one fleetsim runs.

Documents followed:

* HybridCompute swagger 2024-07-10 (azure-rest-api-specs, ``specification/hybridcompute/resource-manager/
  Microsoft.HybridCompute/stable/2024-07-10/HybridCompute.json``): ``MachineExtensions_CreateOrUpdate``
  (PUT, ``x-ms-long-running-operation``, answers 200 or 202), ``MachineExtensions_Get``, ``..._List``;
  the example ``Extension_Get.json`` answers ``"protectedSettings": {}``: protected settings are taken
  and never given back.
* CrowdStrike's extension (github.com/CrowdStrike/azure-vm-extension): publisher ``Crowdstrike.Falcon``,
  types ``FalconSensorLinux`` / ``FalconSensorWindows`` (``linux|windows/package-arc/Artifacts/
  MainTemplate.json``, which deploys ``Microsoft.HybridCompute/machines/extensions@2024-07-10``);
  ``settings``: ``cloud``, ``member_cid``, ``sensor_update_policy`` (default ``platform_default``: "this
  determines what sensor version will be installed"), ``tags``, proxies, ``azure_vault_name``;
  ``protectedSettings``: ``client_id`` + ``client_secret`` or ``access_token`` (a Falcon API client with
  Sensor Download and Sensor update policies read), optional ``provisioning_token``. The handler runs
  falcon-installer (:mod:`fleetsim.falcon.falcon_installer`); ``enable.sh`` skips a machine whose sensor
  is installed ("The Falcon Sensor is already installed"), so the extension never upgrades a sensor.
  Its status file's messages are the instance view's: "The Falcon Sensor installation process completed",
  and on failure "The Falcon Sensor install failed to complete. Please see '<dir>/falcon-installer.log'
  for more info." (the reason stays in that log on the machine; fleetsim keeps it in the ground truth).

The operation: 202 with ``Azure-AsyncOperation`` (``.../locations/{loc}/operationStatus/{id}``, polled
for ``{"status": "InProgress" | "Succeeded" | "Failed", "error"}``, the ARM async pattern azure-mgmt-core's
ARMPolling follows, and the path HybridCompute is seen polling in Azure/azure-powershell#12578),
``Location`` (``.../operationResults/{id}``: 202 while running, then 204) and ``Retry-After``; the resource
reads ``provisioningState: Creating`` meanwhile. It lasts ``timings.invocation_seconds``; on a machine that
is not Connected it fails after ``timings.delivery_timeout_seconds`` (no document gives Azure's timeout;
extensions reach a machine only through its agent).

Where no document says, fleetsim's conservative readings: a publisher/type it does not emulate is refused
at PUT with 400 ``HCRP400`` (HybridCompute's code for ``ExtensionNotFound``, Azure/azure-docs#68402); a
second extension of the same publisher and type on a machine, and a PUT while the extension's previous
operation runs, are 409 ``Conflict``; the operation's error code when the handler fails is
``ExtensionOperationFailed`` with the handler's own message.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from fleetsim.azure.arm.exceptions import ArmError, Conflict, InvalidRequestContent
from fleetsim.falcon import falcon_installer
from fleetsim.fleet import FleetState, SimHost, _stable_fraction

PUBLISHER = "Crowdstrike.Falcon"
TYPES = {"FalconSensorLinux": "Linux", "FalconSensorWindows": "Windows"}
LOG_DIRS = {
    "Linux": "/var/lib/GuestConfig/extension_logs/Crowdstrike.Falcon.FalconSensorLinux",
    "Windows": r"C:\ProgramData\GuestConfig\extension_logs\Crowdstrike.Falcon.FalconSensorWindows",
}
SUCCESS_MESSAGE = "The Falcon Sensor installation process completed"
ALREADY_MESSAGE = "The Falcon Sensor is already installed"


class ExtensionNotFound(ArmError):
    status = 400
    code = "HCRP400"


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class MachineExtension:
    """One extension a client put on a machine (its protected settings kept, never shown)."""

    name: str
    host: SimHost
    location: str
    publisher: str
    type: str
    type_handler_version: str
    auto_upgrade_minor_version: bool
    enable_automatic_upgrade: bool
    settings: dict[str, Any]
    protected_settings: dict[str, Any]
    provisioning_state: str = "Creating"
    status: dict[str, Any] = field(default_factory=dict)

    def resource(self) -> dict[str, Any]:
        """The MachineExtension resource (2024-07-10)."""
        properties: dict[str, Any] = {
            "publisher": self.publisher,
            "type": self.type,
            "typeHandlerVersion": self.type_handler_version,
            "autoUpgradeMinorVersion": self.auto_upgrade_minor_version,
            "enableAutomaticUpgrade": self.enable_automatic_upgrade,
            "settings": dict(self.settings),
            "protectedSettings": {},
            "provisioningState": self.provisioning_state,
        }
        if self.status:
            properties["instanceView"] = {
                "name": self.name,
                "type": self.type,
                "typeHandlerVersion": self.type_handler_version,
                "status": dict(self.status),
            }
        return {
            "id": f"{self.host.host_id}/extensions/{self.name}",
            "name": self.name,
            "type": "Microsoft.HybridCompute/machines/extensions",
            "location": self.location,
            "properties": properties,
        }


@dataclass
class ExtensionOperation:
    """One create-or-update of an extension, running until ``ended_at``."""

    id: str
    extension: MachineExtension
    started_at: float
    ended_at: float
    status: str = "InProgress"
    error: dict[str, Any] | None = None


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestContent(f"{where} must be a JSON object")
    return value


class ExtensionStore:
    """Every machine's client-made extensions and their operations (the caller holds ``state.lock``)."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self.extensions: dict[tuple[str, str], MachineExtension] = {}  # (machine id lower, name lower)
        self.operations: dict[str, ExtensionOperation] = {}
        self._running: set[str] = set()

    def of(self, host: SimHost) -> list[MachineExtension]:
        key = host.host_id.lower()
        return sorted((e for (m, _), e in self.extensions.items() if m == key), key=lambda e: e.name.lower())

    def get(self, host: SimHost, name: str) -> MachineExtension | None:
        return self.extensions.get((host.host_id.lower(), name.lower()))

    def put(self, host: SimHost, name: str, body: Any, now: float) -> ExtensionOperation:
        """Validate a PUT and start its operation (400/409 as the module docstring says)."""
        if not isinstance(body, dict):
            raise InvalidRequestContent("The request body must be a JSON object")
        props = _object(body.get("properties"), "properties")
        publisher, ext_type = props.get("publisher"), props.get("type")
        if publisher != PUBLISHER or ext_type not in TYPES:
            raise ExtensionNotFound(
                f"ExtensionNotFound: fleetsim runs only {PUBLISHER} {sorted(TYPES)}, "
                f"not {publisher!r} {ext_type!r}"
            )
        version = props.get("typeHandlerVersion")
        if version is not None and not isinstance(version, str):
            raise InvalidRequestContent("properties.typeHandlerVersion must be a string")
        settings = _object(props.get("settings"), "properties.settings")
        protected = _object(props.get("protectedSettings"), "properties.protectedSettings")
        for other in self.of(host):
            if other.name.lower() != name.lower() and (other.publisher, other.type) == (publisher, ext_type):
                raise Conflict(
                    f"The machine '{host.name}' already has the extension '{other.name}' of type "
                    f"{publisher}.{ext_type}; a machine takes one extension of each type."
                )
        current = self.get(host, name)
        if current is not None and any(self.operations[o].extension is current for o in self._running):
            raise Conflict(f"An operation on the extension '{current.name}' is in progress.")
        extension = MachineExtension(
            name=current.name if current else name,
            host=host,
            location=str(body.get("location") or host.region),
            publisher=publisher,
            type=ext_type,
            type_handler_version=version or "1.0",
            auto_upgrade_minor_version=bool(props.get("autoUpgradeMinorVersion", False)),
            enable_automatic_upgrade=bool(props.get("enableAutomaticUpgrade", False)),
            settings=settings,
            protected_settings=protected,
            status=dict(current.status) if current else {},
        )
        self.extensions[(host.host_id.lower(), name.lower())] = extension
        t = self.state.timings
        if host.agent_status == "Connected":
            lo, hi = t.invocation_seconds
            op_id = str(uuid.uuid4())
            ends = now + lo + (hi - lo) * _stable_fraction(op_id, host.host_id)
        else:
            op_id, ends = str(uuid.uuid4()), now + t.delivery_timeout_seconds
        operation = ExtensionOperation(op_id, extension, now, ends)
        self.operations[op_id] = operation
        self._running.add(op_id)
        return operation

    def apply_due(self, now: float) -> None:
        """End every operation whose time has come: run the handler on the machine (once)."""
        with self.state.lock:
            for op_id in sorted(self._running, key=lambda o: self.operations[o].ended_at):
                operation = self.operations[op_id]
                if operation.ended_at <= now:
                    self._finish(operation)
                    self._running.discard(op_id)

    def _finish(self, operation: ExtensionOperation) -> None:
        extension, host = operation.extension, operation.extension.host
        at = operation.ended_at
        platform = TYPES[extension.type]
        action: dict[str, Any] = {
            "at": dt.datetime.fromtimestamp(at, dt.UTC).isoformat(),
            "action": "azure.machineExtension",
            "extension": extension.name,
            "operation_id": operation.id,
        }
        if host.agent_status != "Connected":
            message = (
                f"The machine '{host.name}' is {host.agent_status} from Azure Arc; "
                "the extension could not be delivered."
            )
            self._fail(operation, "MachineDisconnected", message)
            host.actions.append(action | {"result": "Failed", "error": message})
            return
        if platform != host.platform.platform_type:
            message = (
                f"The extension {extension.type} is not supported on "
                f"{host.platform.platform_type.lower()} machines."
            )
            self._fail(operation, "ExtensionOperationFailed", message)
            host.actions.append(action | {"result": "Failed", "error": message})
            return
        if host.falcon is not None:  # enable.sh: falconctl is there, nothing to do
            self._succeed(operation, ALREADY_MESSAGE)
            host.actions.append(action | {"result": "Succeeded", "message": ALREADY_MESSAGE})
            return
        settings, protected = extension.settings, extension.protected_settings
        options = falcon_installer.InstallerOptions(
            client_id=str(protected.get("client_id") or ""),
            client_secret=str(protected.get("client_secret") or ""),
            access_token=str(protected.get("access_token") or ""),
            member_cid=str(settings.get("member_cid") or ""),
            sensor_update_policy=str(settings.get("sensor_update_policy") or "platform_default"),
        )
        if settings.get("azure_vault_name"):
            run = falcon_installer.InstallerRun(
                1, "fleetsim does not emulate Azure Key Vault (azure_vault_name)\n"
            )
        else:
            run = falcon_installer.run(
                self.state, host, options, via=f"azure:extension:{extension.name}", at=at
            )
        if run.ok:
            self._succeed(operation, SUCCESS_MESSAGE)
        else:
            log = LOG_DIRS[platform]
            message = (
                "The Falcon Sensor install failed to complete. Please see "
                f"'{log}/falcon/falcon-installer.log' for more info."
            )
            self._fail(operation, "ExtensionOperationFailed", message)
        host.actions.append(
            action
            | {
                "result": "Succeeded" if run.ok else "Failed",
                "installer_log": run.log,
                "version": run.installer.version if run.installer else None,
            }
        )

    def _succeed(self, operation: ExtensionOperation, message: str) -> None:
        extension = operation.extension
        operation.status = "Succeeded"
        extension.provisioning_state = "Succeeded"
        extension.status = {
            "code": "success",
            "level": "Information",
            "displayStatus": "Provisioning succeeded",
            "message": message,
            "time": iso(operation.ended_at),
        }

    def _fail(self, operation: ExtensionOperation, code: str, message: str) -> None:
        extension = operation.extension
        operation.status = "Failed"
        operation.error = {"code": code, "message": message}
        extension.provisioning_state = "Failed"
        extension.status = {
            "code": "failed",
            "level": "Error",
            "displayStatus": "Provisioning failed",
            "message": message,
            "time": iso(operation.ended_at),
        }

    def status_body(self, operation: ExtensionOperation) -> dict[str, Any]:
        """The Azure-AsyncOperation status resource."""
        body: dict[str, Any] = {
            "id": operation.id,
            "name": operation.id,
            "status": operation.status,
            "startTime": iso(operation.started_at),
        }
        if operation.status != "InProgress":
            body["endTime"] = iso(operation.ended_at)
        if operation.error:
            body["error"] = dict(operation.error)
        return body
