"""Compute Engine v1 REST, just enough for the instances and pre-patch snapshots of their boot disks.

``google-cloud-compute`` (REST only) sends:

- ``POST /compute/v1/projects/{p}/zones/{z}/disks/{disk}/createSnapshot[?requestId=UUID]`` with the
  Snapshot as the body; the answer is a zonal Operation. An instance's boot disk is named like the
  instance (GCE's default), so the disks here are the scenario's GCP hosts by name.
- ``GET /compute/v1/projects/{p}/zones/{z}/operations/{operation}``
- ``GET /compute/v1/projects/{p}/global/snapshots/{name}``
- ``GET /compute/v1/projects/{p}/global/snapshots?filter=...&maxResults=N&pageToken=...``
- ``GET /compute/v1/projects/{p}/zones/{z}/instances[?filter&maxResults&pageToken]`` and
  ``GET /compute/v1/projects/{p}/zones/{z}/instances/{name}``: the instances themselves (id, name, zone,
  status RUNNING, labels from :func:`fleetsim.gcp.instance_labels`, ``networkInterfaces[0].networkIP``,
  the boot disk named like the instance, metadata ``enable-osconfig=TRUE`` where the agent runs).

Restoring an instance's boot disk from a snapshot, the way Compute Engine does it (each answer a zonal
Operation, DONE after a while; ``requestId`` makes a retry return the first operation):

- ``POST .../instances/{name}/stop`` (STOPPING, then TERMINATED) and ``.../start`` (STAGING, then
  RUNNING; 400 without a boot disk);
- ``POST .../zones/{z}/disks`` with ``{"name", "sourceSnapshot"}`` (CREATING, then READY; the snapshot
  must be READY) and ``GET .../disks/{name}``;
- ``POST .../instances/{name}/detachDisk?deviceName=persistent-disk-0`` and ``.../attachDisk`` with
  ``{"source": <disk>, "boot": true}``, both only while the instance is TERMINATED (400 otherwise).

When an instance boots from a disk created from a snapshot, the host is what the snapshot captured
(:meth:`fleetsim.fleet.FleetState.restore`, ground-truth action ``gcp.restore_boot_disk``).

A snapshot is CREATING, then UPLOADING, then READY, or FAILED for a ``backup_fails`` host; it takes
``state.timings.ami_pending_seconds`` (or the host's ``backup_slow_seconds``). Its operation is RUNNING
until the snapshot is READY or FAILED, then DONE (with an ``error`` when it failed). ``requestId`` makes
a retried create return the first operation, as Compute Engine does; a second snapshot with a taken name
is 409 ``alreadyExists``.

The list filters understand what Compute Engine documents for equality on labels and fields:
``labels.KEY = "VALUE"``, ``name = X``, ``status = READY`` (``=`` or ``!=``), each expression in
parentheses or not, joined by whitespace or ``AND`` (which are the same); anything else is a 400.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from fleetsim.fleet import BackupState, FleetState, SimHost
from fleetsim.gcp import (
    GcpError,
    gcp_hosts,
    instance_labels,
    json_body,
    json_response,
    page_offset,
    page_token,
    rfc3339,
)

# Compute Engine's documented bounds for list calls: maxResults 0..500, default 500.
LIST_MAX_RESULTS = 500
# Of a snapshot's duration, the share spent CREATING (the rest is UPLOADING).
CREATING_SHARE = 0.3
BOOT_DEVICE = "persistent-disk-0"  # the device name GCE gives an instance's first (boot) disk

_NAME = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^[a-z][-_a-z0-9]{0,62}$")
_LABEL_VALUE = re.compile(r"^[-_a-z0-9]{0,63}$")
_FILTER_TERM = re.compile(
    r"""\s*(?P<open>\()?\s*(?P<field>[A-Za-z][\w.\-]*)\s*(?P<op>!=|=)\s*"""
    r"""(?:"(?P<quoted>[^"]*)"|(?P<bare>[^\s()"]+))\s*(?P<close>\))?\s*(?:AND\s+)?""",
)

_ROUTES = (
    ("POST", r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/disks/([^/]+)/createSnapshot$", "CreateSnapshot"),
    ("GET", r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/operations/([^/]+)$", "GetZoneOperation"),
    ("GET", r"^/compute/v1/projects/([^/]+)/global/snapshots/([^/]+)$", "GetSnapshot"),
    ("GET", r"^/compute/v1/projects/([^/]+)/global/snapshots$", "ListSnapshots"),
    ("GET", r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/instances$", "ListInstances"),
    ("GET", r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/instances/([^/]+)$", "GetInstance"),
    # Restoring a boot disk from a snapshot: stop, create a disk from the snapshot, swap the boot disk, start.
    ("POST", r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/instances/([^/]+)/stop$", "StopInstance"),
    ("POST", r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/instances/([^/]+)/start$", "StartInstance"),
    ("POST", r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/instances/([^/]+)/detachDisk$", "DetachDisk"),
    ("POST", r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/instances/([^/]+)/attachDisk$", "AttachDisk"),
    ("POST", r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/disks$", "InsertDisk"),
    ("GET", r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/disks/([^/]+)$", "GetDisk"),
)


def _numeric_id(*parts: str) -> str:
    return str(10**18 + int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "big") % 10**18)


@dataclass
class _Snapshot:
    name: str
    project: str
    zone: str
    host: SimHost
    labels: dict[str, str]
    description: str
    storage_locations: list[str]
    created_at: float
    uploading_at: float
    done_at: float
    final: str  # READY | FAILED
    backup: BackupState | None = None  # what the snapshot holds of its instance

    def status_at(self, now: float) -> str:
        if now >= self.done_at:
            return self.final
        return "UPLOADING" if now >= self.uploading_at else "CREATING"


@dataclass
class _Operation:
    name: str
    project: str
    zone: str
    snapshot: _Snapshot | None
    inserted_at: float
    request_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Operations on instances and disks (the snapshot's own carry the snapshot instead).
    operation_type: str = "createSnapshot"
    target: str = ""  # "instances/<name>" or "disks/<name>"
    done_at: float = 0.0


@dataclass
class _Disk:
    """A persistent disk created from a snapshot (instances' original boot disks are implicit)."""

    name: str
    project: str
    zone: str
    snapshot: _Snapshot
    labels: dict[str, str]
    created_at: float
    ready_at: float
    attached_to: str | None = None  # instance name

    def status_at(self, now: float) -> str:
        return "READY" if now >= self.ready_at else "CREATING"


@dataclass
class _Vm:
    """An instance's power state and boot disk, once an API call has changed them (RUNNING before)."""

    host: SimHost
    boot_disk: str | None  # disk name; None while detached
    status: str = "RUNNING"
    next_status: str | None = None
    changes_at: float = 0.0
    restore_from: _Disk | None = None  # a restored boot disk, applied to the host when it boots

    def status_at(self, now: float) -> str:
        return self.next_status if self.next_status and now >= self.changes_at else self.status


def replays_request_id(handler: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Compute's ``requestId`` on a mutating request: a retry with the same id returns the operation
    the first request started and does nothing again. google.cloud.compute_v1 StopInstanceRequest (and
    every insert and action request), ``request_id``: "If you make the request again with the same
    request ID, the server can check if original operation with the same request ID was received, and
    if so, will ignore the second request"
    (https://cloud.google.com/python/docs/reference/compute/latest/google.cloud.compute_v1.types.StopInstanceRequest).
    A request refused by validation leaves no operation behind, so its retry is validated again."""

    @functools.wraps(handler)
    def replaying(self: Any, request: Request, now: float, project: str, *args: Any) -> dict[str, Any]:
        request_id = request.args.get("requestId")
        replayed = self._by_request_id.get((project, request_id)) if request_id else None
        if replayed is not None:
            return self._operation_json(request, replayed, now)
        return handler(self, request, now, project, *args)

    return replaying


class ComputeApi:
    """Compute Engine v1 REST under ``/compute/v1/``: the scenario's GCE instances and disk snapshots."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self.snapshots: dict[tuple[str, str], _Snapshot] = {}  # (project, name)
        self.operations: dict[tuple[str, str, str], _Operation] = {}  # (project, zone, name)
        self._by_request_id: dict[tuple[str, str], _Operation] = {}  # (project, requestId)
        self.disks: dict[tuple[str, str, str], _Disk] = {}  # (project, zone, name)
        self.vms: dict[str, _Vm] = {}  # host_id
        state.on_advance(self._apply_due)
        self._routes = [(m, re.compile(rx), name) for m, rx, name in _ROUTES]

    def handles(self, path: str) -> bool:
        return path.startswith("/compute/v1/")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        operation, args = "Unknown", ()
        for method, pattern, name in self._routes:
            match = pattern.match(request.path)
            if match and request.method == method:
                operation, args = name, match.groups()
                break
        with self.state.lock:
            self.state.calls[f"gcp.compute.{operation}"] += 1
        handler = {
            "CreateSnapshot": self._create_snapshot,
            "GetZoneOperation": self._get_operation,
            "GetSnapshot": self._get_snapshot,
            "ListSnapshots": self._list_snapshots,
            "ListInstances": self._list_instances,
            "GetInstance": self._get_instance,
            "StopInstance": self._stop_instance,
            "StartInstance": self._start_instance,
            "DetachDisk": self._detach_disk,
            "AttachDisk": self._attach_disk,
            "InsertDisk": self._insert_disk,
            "GetDisk": self._get_disk,
        }.get(operation)
        try:
            if handler is None:
                raise GcpError(
                    404,
                    f"fleetsim does not emulate Compute {request.method} {request.path}",
                    reason="notFound",
                )
            with self.state.lock:
                response: Response = json_response(handler(request, self.state.advance(), *args))
        except GcpError as exc:
            response = exc.response()
        return response(environ, start_response)

    # -- links --------------------------------------------------------------------------------------
    @staticmethod
    def _base(request: Request) -> str:
        return f"{request.host_url}compute/v1/"

    def _disk_link(self, request: Request, project: str, zone: str, disk: str) -> str:
        return f"{self._base(request)}projects/{project}/zones/{zone}/disks/{disk}"

    # -- snapshots ----------------------------------------------------------------------------------
    def _disk_host(self, project: str, zone: str, disk: str) -> SimHost:
        if (created := self.disks.get((project, zone, disk))) is not None:
            return created.snapshot.host
        for host in gcp_hosts(self.state, project):
            if host.region == zone and host.name == disk:
                return host
        raise GcpError(
            404,
            f"The resource 'projects/{project}/zones/{zone}/disks/{disk}' was not found",
            reason="notFound",
        )

    @replays_request_id
    def _create_snapshot(
        self, request: Request, now: float, project: str, zone: str, disk: str
    ) -> dict[str, Any]:
        request_id = request.args.get("requestId")
        host = self._disk_host(project, zone, disk)
        body = json_body(request)
        name = body.get("name", "")
        if not isinstance(name, str) or not _NAME.match(name):
            raise GcpError(
                400,
                f"Invalid value for field 'resource.name': {name!r}. "
                "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'",
                reason="invalid",
            )
        labels = body.get("labels") or {}
        for key, value in labels.items():
            if not _LABEL_KEY.match(key) or not isinstance(value, str) or not _LABEL_VALUE.match(value):
                raise GcpError(
                    400,
                    f"Invalid value for field 'resource.labels': label {key!r}={value!r}: keys start with "
                    "a lowercase letter; keys and values use lowercase letters, digits, '-' and '_' (<= 63)",
                    reason="invalid",
                )
        if (project, name) in self.snapshots:
            raise GcpError(
                409,
                f"The resource 'projects/{project}/global/snapshots/{name}' already exists",
                reason="alreadyExists",
            )
        seconds = (
            host.backup_seconds if host.backup_seconds is not None else self.state.timings.ami_pending_seconds
        )
        snapshot = _Snapshot(
            name=name,
            project=project,
            zone=zone,
            host=host,
            labels=dict(labels),
            description=str(body.get("description", "")),
            storage_locations=list(body.get("storageLocations") or [zone.split("-")[0]]),
            created_at=now,
            uploading_at=now + seconds * CREATING_SHARE,
            done_at=now + seconds,
            final="FAILED" if host.backup_fails else "READY",
            backup=self.state.backup_state(host),
        )
        self.snapshots[(project, name)] = snapshot
        op_name = f"operation-{int(now * 1000)}-{_numeric_id(project, name)[-8:]}"
        operation = _Operation(op_name, project, zone, snapshot, now, request_id)
        self.operations[(project, zone, op_name)] = operation
        if request_id:
            self._by_request_id[(project, request_id)] = operation
        host.actions.append(
            {
                "at": rfc3339(now),
                "action": "gcp.createSnapshot",
                "snapshot": name,
                "disk": disk,
                "zone": zone,
                "result": snapshot.final,
                "ready_at": rfc3339(snapshot.done_at),
            }
        )
        return self._operation_json(request, operation, now)

    def _snapshot_json(self, request: Request, snapshot: _Snapshot, now: float) -> dict[str, Any]:
        status = snapshot.status_at(now)
        windows = snapshot.host.platform.platform_type == "Windows"
        body: dict[str, Any] = {
            "kind": "compute#snapshot",
            "id": _numeric_id(snapshot.project, snapshot.name),
            "creationTimestamp": rfc3339(snapshot.created_at),
            "name": snapshot.name,
            "description": snapshot.description,
            "status": status,
            "sourceDisk": self._disk_link(request, snapshot.project, snapshot.zone, snapshot.host.name),
            "sourceDiskId": _numeric_id(snapshot.project, snapshot.zone, snapshot.host.name, "disk"),
            "diskSizeGb": "50" if windows else "10",
            "storageBytes": "0" if status != "READY" else ("21474836480" if windows else "2147483648"),
            "storageBytesStatus": "UP_TO_DATE" if status == "READY" else "UPDATING",
            "selfLink": f"{self._base(request)}projects/{snapshot.project}/global/snapshots/{snapshot.name}",
            "labelFingerprint": hashlib.sha256(repr(sorted(snapshot.labels.items())).encode()).hexdigest()[
                :11
            ],
            "storageLocations": snapshot.storage_locations,
            "snapshotType": "STANDARD",
            "architecture": "X86_64",
            "autoCreated": False,
        }
        if snapshot.labels:
            body["labels"] = snapshot.labels
        return body

    def _get_snapshot(self, request: Request, now: float, project: str, name: str) -> dict[str, Any]:
        snapshot = self.snapshots.get((project, name))
        if snapshot is None:
            raise GcpError(
                404,
                f"The resource 'projects/{project}/global/snapshots/{name}' was not found",
                reason="notFound",
            )
        return self._snapshot_json(request, snapshot, now)

    def _list_snapshots(self, request: Request, now: float, project: str) -> dict[str, Any]:
        rows = [
            self._snapshot_json(request, s, now)
            for (p, _), s in sorted(self.snapshots.items())
            if p == project
        ]
        return self._list(request, rows, "compute#snapshotList", f"projects/{project}/global/snapshots")

    def _list(self, request: Request, rows: list[dict[str, Any]], kind: str, path: str) -> dict[str, Any]:
        """One page of ``rows`` after the request's filter, under Compute's maxResults bounds."""
        raw = request.args.get("maxResults")
        try:
            size = LIST_MAX_RESULTS if raw is None else int(raw)
        except ValueError as exc:
            raise GcpError(400, f"Invalid value for field 'maxResults': {raw!r}", reason="invalid") from exc
        if not 0 <= size <= LIST_MAX_RESULTS:
            raise GcpError(
                400,
                f"Invalid value for field 'maxResults': '{size}'. "
                f"Must be less than or equal to {LIST_MAX_RESULTS}",
                reason="invalid",
            )
        size = size or LIST_MAX_RESULTS
        terms = parse_filter(request.args.get("filter", ""))
        rows = [r for r in rows if all(_term_matches(r, t) for t in terms)]
        start = page_offset(request.args.get("pageToken"))
        page = rows[start : start + size]
        body: dict[str, Any] = {"kind": kind, "id": path, "selfLink": f"{self._base(request)}{path}"}
        if page:
            body["items"] = page
        if start + size < len(rows):
            body["nextPageToken"] = page_token(start + size)
        return body

    # -- instances ----------------------------------------------------------------------------------
    def _instance_json(self, request: Request, host: SimHost) -> dict[str, Any]:
        base, project, zone = self._base(request), host.account, host.region
        windows = host.platform.platform_type == "Windows"
        vm = self.vms.get(host.host_id)
        status = vm.status_at(self.state.clock()) if vm else "RUNNING"
        boot_disk = vm.boot_disk if vm else host.name
        metadata: dict[str, Any] = {"kind": "compute#metadata"}
        if host.agent_status == "ACTIVE":
            metadata["items"] = [{"key": "enable-osconfig", "value": "TRUE"}]
        return {
            "kind": "compute#instance",
            "id": host.host_id,
            "creationTimestamp": rfc3339(self.state.scenario.last_scan.timestamp() - 86400 * 90),
            "name": host.name,
            "machineType": f"{base}projects/{project}/zones/{zone}/machineTypes/e2-standard-4",
            "status": status,
            "zone": f"{base}projects/{project}/zones/{zone}",
            "networkInterfaces": [
                {
                    "kind": "compute#networkInterface",
                    "name": "nic0",
                    "network": f"{base}projects/{project}/global/networks/default",
                    "networkIP": host.private_ip,
                }
            ],
            "disks": [
                {
                    "kind": "compute#attachedDisk",
                    "type": "PERSISTENT",
                    "mode": "READ_WRITE",
                    "source": self._disk_link(request, project, zone, boot_disk),
                    "deviceName": BOOT_DEVICE,
                    "index": 0,
                    "boot": True,
                    "autoDelete": True,
                    "diskSizeGb": "50" if windows else "10",
                }
            ]
            if boot_disk
            else [],
            "metadata": metadata,
            "labels": instance_labels(host),
            "selfLink": f"{base}projects/{project}/zones/{zone}/instances/{host.name}",
        }

    def _zone_hosts(self, project: str, zone: str) -> list[SimHost]:
        hosts = gcp_hosts(self.state, project)
        if not hosts:
            raise GcpError(403, f"Required 'compute.instances.list' permission for 'projects/{project}'")
        return [h for h in hosts if h.region == zone]

    def _list_instances(self, request: Request, now: float, project: str, zone: str) -> dict[str, Any]:
        rows = [self._instance_json(request, h) for h in self._zone_hosts(project, zone)]
        return self._list(request, rows, "compute#instanceList", f"projects/{project}/zones/{zone}/instances")

    def _get_instance(
        self, request: Request, now: float, project: str, zone: str, name: str
    ) -> dict[str, Any]:
        for host in self._zone_hosts(project, zone):
            if host.name == name:
                return self._instance_json(request, host)
        raise GcpError(
            404,
            f"The resource 'projects/{project}/zones/{zone}/instances/{name}' was not found",
            reason="notFound",
        )

    # -- restoring a boot disk: stop, disk from snapshot, detach, attach as boot, start ---------------
    def _vm(self, project: str, zone: str, name: str) -> _Vm:
        for host in self._zone_hosts(project, zone):
            if host.name == name:
                return self.vms.setdefault(host.host_id, _Vm(host=host, boot_disk=host.name))
        raise GcpError(
            404,
            f"The resource 'projects/{project}/zones/{zone}/instances/{name}' was not found",
            reason="notFound",
        )

    def _begin(
        self,
        request: Request,
        now: float,
        project: str,
        zone: str,
        kind: str,
        target: str,
        seconds: float,
    ) -> _Operation:
        """A zonal operation on an instance or disk that is DONE after ``seconds`` (after validation:
        a refused request leaves no operation behind for its requestId)."""
        request_id = request.args.get("requestId")
        op_name = f"operation-{int(now * 1000)}-{_numeric_id(project, zone, kind, target, str(now))[-8:]}"
        operation = _Operation(
            op_name, project, zone, None, now, request_id, operation_type=kind, target=target
        )
        operation.done_at = now + seconds
        self.operations[(project, zone, op_name)] = operation
        if request_id:
            self._by_request_id[(project, request_id)] = operation
        return operation

    def _power_seconds(self) -> float:
        return self.state.timings.invocation_seconds[0]

    def _disk_op_seconds(self) -> float:
        return self.state.timings.command_pending_seconds

    @replays_request_id
    def _stop_instance(
        self, request: Request, now: float, project: str, zone: str, name: str
    ) -> dict[str, Any]:
        vm = self._vm(project, zone, name)
        status = vm.status_at(now)
        if status in ("STAGING", "PROVISIONING"):
            raise GcpError(
                400, f"The instance '{name}' is {status}; it cannot be stopped yet", reason="resourceNotReady"
            )
        operation = self._begin(
            request, now, project, zone, "stop", f"instances/{name}", self._power_seconds()
        )
        if status != "TERMINATED":
            vm.status, vm.next_status, vm.changes_at = "STOPPING", "TERMINATED", operation.done_at
            vm.host.actions.append({"at": rfc3339(now), "action": "gcp.stop", "result": "TERMINATED"})
        else:
            operation.done_at = now  # stopping a stopped instance is a no-op that succeeds
        return self._operation_json(request, operation, now)

    @replays_request_id
    def _start_instance(
        self, request: Request, now: float, project: str, zone: str, name: str
    ) -> dict[str, Any]:
        vm = self._vm(project, zone, name)
        status = vm.status_at(now)
        if status not in ("TERMINATED", "RUNNING"):
            raise GcpError(
                400, f"The instance '{name}' is {status}; it cannot be started", reason="resourceNotReady"
            )
        if vm.boot_disk is None:
            raise GcpError(
                400,
                f"Invalid resource usage: 'Instance {name} has no boot disk to start from'.",
                reason="invalidResourceUsage",
            )
        operation = self._begin(
            request, now, project, zone, "start", f"instances/{name}", self._power_seconds()
        )
        if status == "RUNNING":
            operation.done_at = now  # starting a running instance is a no-op that succeeds
        else:
            vm.status, vm.next_status, vm.changes_at = "STAGING", "RUNNING", operation.done_at
            vm.host.actions.append({"at": rfc3339(now), "action": "gcp.start", "boot_disk": vm.boot_disk})
        return self._operation_json(request, operation, now)

    def _require_stopped(self, vm: _Vm, now: float, what: str) -> None:
        status = vm.status_at(now)
        if status != "TERMINATED":
            raise GcpError(
                400,
                f"Invalid resource usage: 'Instance {vm.host.name} is {status}; stop it to {what}'.",
                reason="invalidResourceUsage",
            )

    @replays_request_id
    def _detach_disk(
        self, request: Request, now: float, project: str, zone: str, name: str
    ) -> dict[str, Any]:
        vm = self._vm(project, zone, name)
        device = request.args.get("deviceName", "")
        if device != BOOT_DEVICE or vm.boot_disk is None:
            raise GcpError(
                400,
                f"Invalid value for field 'deviceName': '{device}'. No attached disk has this name",
                reason="invalid",
            )
        self._require_stopped(vm, now, "detach its boot disk")
        operation = self._begin(
            request, now, project, zone, "detachDisk", f"instances/{name}", self._disk_op_seconds()
        )
        detached, vm.boot_disk = vm.boot_disk, None
        if (project, zone, detached) in self.disks:
            self.disks[(project, zone, detached)].attached_to = None
        vm.host.actions.append({"at": rfc3339(now), "action": "gcp.detachDisk", "disk": detached})
        return self._operation_json(request, operation, now)

    @replays_request_id
    def _attach_disk(
        self, request: Request, now: float, project: str, zone: str, name: str
    ) -> dict[str, Any]:
        vm = self._vm(project, zone, name)
        body = json_body(request)
        disk_name = str(body.get("source", "")).rstrip("/").rsplit("/disks/", 1)[-1]
        disk = self.disks.get((project, zone, disk_name))
        if disk is None:
            raise GcpError(
                404,
                f"The resource 'projects/{project}/zones/{zone}/disks/{disk_name}' was not found",
                reason="notFound",
            )
        if not body.get("boot"):
            raise GcpError(
                400, "fleetsim emulates attaching a disk as the boot disk only (boot: true)", reason="invalid"
            )
        if disk.status_at(now) != "READY":
            raise GcpError(
                400,
                f"The resource 'projects/{project}/zones/{zone}/disks/{disk_name}' is not ready",
                reason="resourceNotReady",
            )
        if disk.attached_to:
            raise GcpError(
                400,
                f"Invalid resource usage: 'The disk {disk_name} is already used by {disk.attached_to}'.",
                reason="resourceInUseByAnotherResource",
            )
        self._require_stopped(vm, now, "attach a boot disk")
        if vm.boot_disk is not None:
            raise GcpError(
                400,
                f"Invalid resource usage: 'Instance {name} already has a boot disk'.",
                reason="invalidResourceUsage",
            )
        operation = self._begin(
            request, now, project, zone, "attachDisk", f"instances/{name}", self._disk_op_seconds()
        )
        vm.boot_disk, disk.attached_to, vm.restore_from = disk_name, name, disk
        vm.host.actions.append(
            {"at": rfc3339(now), "action": "gcp.attachDisk", "disk": disk_name, "boot": True}
        )
        return self._operation_json(request, operation, now)

    @replays_request_id
    def _insert_disk(self, request: Request, now: float, project: str, zone: str) -> dict[str, Any]:
        body = json_body(request)
        name = body.get("name", "")
        if not isinstance(name, str) or not _NAME.match(name):
            raise GcpError(400, f"Invalid value for field 'resource.name': {name!r}", reason="invalid")
        source = str(body.get("sourceSnapshot") or "")
        if not source:
            raise GcpError(
                400, "fleetsim emulates disks created from a sourceSnapshot only", reason="invalid"
            )
        snap_project = source.split("projects/", 1)[1].split("/", 1)[0] if "projects/" in source else project
        snapshot = self.snapshots.get((snap_project, source.rstrip("/").rsplit("/", 1)[-1]))
        if snapshot is None:
            raise GcpError(404, f"The resource '{source}' was not found", reason="notFound")
        if snapshot.status_at(now) != "READY":
            raise GcpError(
                400,
                f"The resource '{source}' is not ready (it is {snapshot.status_at(now)})",
                reason="resourceNotReady",
            )
        taken = {h.name for h in gcp_hosts(self.state, project) if h.region == zone}
        if (project, zone, name) in self.disks or name in taken:
            raise GcpError(
                409,
                f"The resource 'projects/{project}/zones/{zone}/disks/{name}' already exists",
                reason="alreadyExists",
            )
        operation = self._begin(
            request, now, project, zone, "insert", f"disks/{name}", self.state.timings.ami_pending_seconds
        )
        disk = _Disk(name, project, zone, snapshot, dict(body.get("labels") or {}), now, operation.done_at)
        self.disks[(project, zone, name)] = disk
        snapshot.host.actions.append(
            {"at": rfc3339(now), "action": "gcp.insertDisk", "disk": name, "source_snapshot": snapshot.name}
        )
        return self._operation_json(request, operation, now)

    def _get_disk(self, request: Request, now: float, project: str, zone: str, name: str) -> dict[str, Any]:
        disk = self.disks.get((project, zone, name))
        if disk is None:
            raise GcpError(
                404,
                f"The resource 'projects/{project}/zones/{zone}/disks/{name}' was not found",
                reason="notFound",
            )
        base = self._base(request)
        body: dict[str, Any] = {
            "kind": "compute#disk",
            "id": _numeric_id(project, zone, name, "disk"),
            "creationTimestamp": rfc3339(disk.created_at),
            "name": name,
            "zone": f"{base}projects/{project}/zones/{zone}",
            "status": disk.status_at(now),
            "sourceSnapshot": f"{base}projects/{disk.snapshot.project}/global/snapshots/{disk.snapshot.name}",
            "selfLink": self._disk_link(request, project, zone, name),
        }
        if disk.labels:
            body["labels"] = disk.labels
        if disk.attached_to:
            body["users"] = [f"{base}projects/{project}/zones/{zone}/instances/{disk.attached_to}"]
        return body

    def _apply_due(self, now: float) -> None:
        """An instance that has booted from a restored disk is what its snapshot captured (once)."""
        for vm in self.vms.values():
            disk = vm.restore_from
            if disk is None or vm.status_at(now) != "RUNNING" or vm.next_status is None:
                continue
            vm.restore_from = None
            if disk.snapshot.backup is not None:
                self.state.restore(
                    vm.host,
                    disk.snapshot.backup,
                    action="gcp.restore_boot_disk",
                    disk=disk.name,
                    snapshot=disk.snapshot.name,
                )

    def _resource_operation_json(self, request: Request, operation: _Operation, now: float) -> dict[str, Any]:
        done = now >= operation.done_at
        base = self._base(request)
        body_zone = f"{base}projects/{operation.project}/zones/{operation.zone}"
        body: dict[str, Any] = {
            "kind": "compute#operation",
            "id": _numeric_id(operation.project, operation.name),
            "name": operation.name,
            "zone": f"{base}projects/{operation.project}/zones/{operation.zone}",
            "operationType": operation.operation_type,
            "targetLink": f"{base}projects/{operation.project}/zones/{operation.zone}/{operation.target}",
            "targetId": _numeric_id(operation.project, operation.zone, operation.target),
            "status": "DONE" if done else "RUNNING",
            "user": "fleetsim@fleetsim.iam.gserviceaccount.com",
            "progress": 100 if done else 0,
            "insertTime": rfc3339(operation.inserted_at),
            "startTime": rfc3339(operation.inserted_at),
            "selfLink": f"{body_zone}/operations/{operation.name}",
        }
        if done:
            body["endTime"] = rfc3339(operation.done_at)
        return body

    # -- operations ---------------------------------------------------------------------------------
    def _operation_json(self, request: Request, operation: _Operation, now: float) -> dict[str, Any]:
        snapshot = operation.snapshot
        if snapshot is None:
            return self._resource_operation_json(request, operation, now)
        status = snapshot.status_at(now)
        done = status in ("READY", "FAILED")
        body: dict[str, Any] = {
            "kind": "compute#operation",
            "id": _numeric_id(operation.project, operation.name),
            "name": operation.name,
            "zone": f"{self._base(request)}projects/{operation.project}/zones/{operation.zone}",
            "operationType": "createSnapshot",
            "targetLink": self._disk_link(request, operation.project, operation.zone, snapshot.host.name),
            "targetId": _numeric_id(operation.project, operation.zone, snapshot.host.name, "disk"),
            "status": "DONE" if done else "RUNNING",
            "user": "fleetsim@fleetsim.iam.gserviceaccount.com",
            "progress": 100 if done else 0,
            "insertTime": rfc3339(operation.inserted_at),
            "startTime": rfc3339(operation.inserted_at),
            "selfLink": f"{self._base(request)}projects/{operation.project}/zones/{operation.zone}"
            f"/operations/{operation.name}",
        }
        if done:
            body["endTime"] = rfc3339(snapshot.done_at)
        if status == "FAILED":
            body["error"] = {
                "errors": [
                    {
                        "code": "RESOURCE_OPERATION_FAILED",
                        "message": f"Snapshot {snapshot.name} of disk {snapshot.host.name} failed",
                    }
                ]
            }
            body["httpErrorStatusCode"] = 500
            body["httpErrorMessage"] = "INTERNAL_SERVER_ERROR"
        return body

    def _get_operation(
        self, request: Request, now: float, project: str, zone: str, name: str
    ) -> dict[str, Any]:
        operation = self.operations.get((project, zone, name))
        if operation is None:
            raise GcpError(
                404,
                f"The resource 'projects/{project}/zones/{zone}/operations/{name}' was not found",
                reason="notFound",
            )
        return self._operation_json(request, operation, now)


def parse_filter(text: str) -> list[tuple[str, str, str]]:
    """``(field, op, value)`` terms of a Compute list filter (ANDed); 400 naming what is not understood."""
    terms: list[tuple[str, str, str]] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        match = _FILTER_TERM.match(text, pos)
        if match is None or match.end() == pos or bool(match["open"]) != bool(match["close"]):
            raise GcpError(
                400,
                f"Invalid value for field 'filter': {text!r}: fleetsim understands (field = value) terms "
                f"joined by AND, near {text[pos : pos + 30]!r}",
                reason="invalid",
            )
        field_name = match["field"]
        if not (field_name.startswith("labels.") or field_name in ("name", "status", "sourceDisk")):
            raise GcpError(
                400,
                f"Invalid value for field 'filter': fleetsim cannot filter on {field_name!r}",
                reason="invalid",
            )
        value = match["quoted"] if match["quoted"] is not None else match["bare"]
        terms.append((field_name, match["op"], value))
        pos = match.end()
    return terms


def _term_matches(row: dict[str, Any], term: tuple[str, str, str]) -> bool:
    field_name, op, value = term
    if field_name.startswith("labels."):
        actual = row.get("labels", {}).get(field_name.removeprefix("labels."))
    else:
        actual = row.get(field_name)
    return (actual == value) if op == "=" else (actual != value)
