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

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from fleetsim.fleet import FleetState, SimHost
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

    def status_at(self, now: float) -> str:
        if now >= self.done_at:
            return self.final
        return "UPLOADING" if now >= self.uploading_at else "CREATING"


@dataclass
class _Operation:
    name: str
    project: str
    zone: str
    snapshot: _Snapshot
    inserted_at: float
    request_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ComputeApi:
    """Compute Engine v1 REST under ``/compute/v1/``: the scenario's GCE instances and disk snapshots."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self.snapshots: dict[tuple[str, str], _Snapshot] = {}  # (project, name)
        self.operations: dict[tuple[str, str, str], _Operation] = {}  # (project, zone, name)
        self._by_request_id: dict[tuple[str, str], _Operation] = {}  # (project, requestId)
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
        }.get(operation)
        try:
            if handler is None:
                raise GcpError(
                    404,
                    f"fleetsim does not emulate Compute {request.method} {request.path}",
                    reason="notFound",
                )
            with self.state.lock:
                response: Response = json_response(handler(request, self.state.clock(), *args))
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
        for host in gcp_hosts(self.state, project):
            if host.region == zone and host.name == disk:
                return host
        raise GcpError(
            404,
            f"The resource 'projects/{project}/zones/{zone}/disks/{disk}' was not found",
            reason="notFound",
        )

    def _create_snapshot(
        self, request: Request, now: float, project: str, zone: str, disk: str
    ) -> dict[str, Any]:
        request_id = request.args.get("requestId")
        if request_id and (project, request_id) in self._by_request_id:
            return self._operation_json(request, self._by_request_id[(project, request_id)], now)
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
        metadata: dict[str, Any] = {"kind": "compute#metadata"}
        if host.agent_status == "ACTIVE":
            metadata["items"] = [{"key": "enable-osconfig", "value": "TRUE"}]
        return {
            "kind": "compute#instance",
            "id": host.host_id,
            "creationTimestamp": rfc3339(self.state.scenario.last_scan.timestamp() - 86400 * 90),
            "name": host.name,
            "machineType": f"{base}projects/{project}/zones/{zone}/machineTypes/e2-standard-4",
            "status": "RUNNING",
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
                    "source": self._disk_link(request, project, zone, host.name),
                    "deviceName": "persistent-disk-0",
                    "index": 0,
                    "boot": True,
                    "autoDelete": True,
                    "diskSizeGb": "50" if windows else "10",
                }
            ],
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

    # -- operations ---------------------------------------------------------------------------------
    def _operation_json(self, request: Request, operation: _Operation, now: float) -> dict[str, Any]:
        snapshot = operation.snapshot
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
