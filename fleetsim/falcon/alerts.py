"""Falcon detections as the Alerts API serves them (FalconPy ``Alerts``, ``_endpoint/_alerts.py``).

Served paths:

* ``GET /alerts/queries/alerts/v2`` (``GetQueriesAlertsV2``, FalconPy ``query_alerts_v2``): composite ids,
  newest first ("0 is the latest detection"); ``filter`` (FQL on the alert's fields and the nested
  ``device.``, ``parent_details.``, ``pattern_disposition_details.`` ones), ``sort`` (``field|asc`` or
  ``field.desc``), ``q`` (a case-insensitive search of every text value), ``limit`` 0-10000 (default 100),
  ``offset``; ``offset + limit`` beyond 10,000 is a 400 (the definition's ``max: 10000``, read as the
  result window: deeper paging goes through ``PostCombinedAlertsV1``'s ``after`` token, not emulated);
  ``include_hidden`` is accepted (every alert here is shown);
* ``POST /alerts/entities/alerts/v2`` (``PostEntitiesAlertsV2``, ``get_alerts_v2``), body
  ``{"composite_ids": [...]}``, at most 1,000 per request (the figure CrowdStrike's falcon-mcp gives for
  ``PatchEntitiesAlertsV3``; none is published for this one). The specification lists no 404 here:
  unknown ids are left out, each with an error.

An alert is an ``epp`` endpoint alert (``product: epp``, ``type: ldt``) with what the Alerts API's
``DetectsExternalAlert`` and the EPP alert documentation name: ``composite_id``
(``<cid>:ind:<aid>:<n>``), ``id``/``indicator_id``, ``aggregate_id``, ``agent_id``, ``cid``, the
``device`` (the device record's fields, ``device_id`` and ``hostname`` among them), ``created_timestamp``,
``timestamp``, ``updated_timestamp``, ``severity`` (1-100) and ``severity_name``, ``confidence``,
``status`` (``new``), ``filename``, ``filepath``, ``cmdline``, ``user_name``, ``parent_details``
(``filename``, ``filepath``, ``cmdline``, ...), ``tactic``/``tactic_id``, ``technique``/``technique_id``,
``mitre_attack``, ``pattern_id``, ``scenario``, and the disposition: detect-only alerts carry
``pattern_disposition: 0`` ("Detection, standard detection."), prevented ones ``2048`` ("Prevention,
process killed.", ``pattern_disposition_details.kill_process: true``), as public Falcon alert samples
show them.

Where alerts come from: the scenario's ``tenants[].detections`` (chosen hosts, processes and times) and
its ``faults.detection_storm`` (many, on the devices of an environment or a Falcon host group when the
storm starts). Each is raised when fleetsim's clock reaches it, on the host's registered device (none
without one), unless an exclusion in force silences it (:mod:`fleetsim.falcon.exclusions`); its
disposition follows the prevention settings in force on the sensor then (the applied policy's) unless
the scenario forces one. The default tactic and technique of each technology are illustrative
(``machine_learning``: CrowdStrike's "Machine Learning" tactic; ``behavioral``: ATT&CK Execution).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from fleetsim.falcon import fql
from fleetsim.falcon.policies import PREVENTION, prevents
from fleetsim.falcon.wire import ApiError, Token, body_object, bool_arg, digest, filtered, int_arg, iso
from fleetsim.scenario import DetectionProcess, DetectionSeed, DetectionStorm, Scenario

if TYPE_CHECKING:
    from fleetsim.falcon.api import FalconApi
    from fleetsim.falcon.backend import Device

ALERTS_MAX_LIMIT = 10000  # GetQueriesAlertsV2 limit 0-10000
ALERTS_WINDOW = 10000
ALERTS_GET_MAX_IDS = 1000
ALERT_NESTED = ("device", "parent_details", "grandparent_details", "pattern_disposition_details")
ALERT_FIELDS = (
    "agent_id", "aggregate_id", "cid", "composite_id", "id", "indicator_id", "confidence",
    "created_timestamp",
    "updated_timestamp", "timestamp", "crawled_timestamp", "severity", "severity_name", "status", "product",
    "type", "platform", "name", "display_name", "description", "objective", "scenario", "tactic",
    "tactic_id", "technique", "technique_id", "pattern_id", "pattern_disposition",
    "pattern_disposition_description", "filename", "filepath", "cmdline", "user_name", "sha256", "md5",
    "local_process_id", "process_id", "parent_process_id", "show_in_ui", "email_sent", "tags",
    "data_domains", "source_products", "source_vendors", "assigned_to_name", "assigned_to_uid",
    "assigned_to_uuid", "seconds_to_resolved", "seconds_to_triaged", "resolution",
)  # fmt: skip
_ALERT_FIELD = fql.field_checker(ALERT_FIELDS, ALERT_NESTED)
DEVICE_KEYS = (
    "device_id", "cid", "hostname", "platform_id", "platform_name", "os_version", "major_version",
    "minor_version", "agent_version", "agent_load_flags", "config_id_platform", "status", "first_seen",
    "last_seen", "modified_timestamp", "product_type", "product_type_desc", "local_ip", "external_ip",
    "mac_address", "machine_domain", "system_manufacturer", "system_product_name", "tags", "groups",
    "instance_id", "service_provider", "service_provider_account_id",
)  # fmt: skip
DISPOSITION_FLAGS = (
    "indicator", "detect", "inddet_mask", "sensor_only", "rooting", "kill_process", "kill_subprocess",
    "quarantine_machine", "quarantine_file", "policy_disabled", "kill_parent", "operation_blocked",
    "process_blocked", "registry_operation_blocked", "critical_process_disabled", "bootup_safeguard_enabled",
    "fs_operation_blocked", "handle_operation_downgraded", "kill_action_failed",
    "blocking_unsupported_or_disabled", "suppress_alert", "containment_file_system",
)  # fmt: skip
TECHNOLOGY = {
    "machine_learning": {
        "name": "SensorML",
        "description": "This file meets the machine learning-based on-sensor AV protection's high confidence "
        "threshold for malicious files.",
        "tactic": "Machine Learning",
        "tactic_id": "CSTA0004",
        "technique": "Sensor-based ML",
        "technique_id": "CST0007",
        "objective": "Falcon Detection Method",
    },
    "behavioral": {
        "name": "SuspiciousActivity",
        "description": "A process exhibited behavior that CrowdStrike analysts associate with an attack.",
        "tactic": "Execution",
        "tactic_id": "TA0002",
        "technique": "Command and Scripting Interpreter",
        "technique_id": "T1059",
        "objective": "Follow Through",
    },
}


def severity_name(severity: int) -> str:
    """Falcon's severity bands: Critical 90+, High 70+, Medium 50+, Low 20+, else Informational."""
    for floor, name in ((90, "Critical"), (70, "High"), (50, "Medium"), (20, "Low")):
        if severity >= floor:
            return name
    return "Informational"


@dataclass(order=True)
class DetectionEvent:
    """One detection due at ``at``: on ``host_name`` of ``tenant``, or on the device ``device_id``."""

    at: float
    seq: int
    tenant: str = field(compare=False)
    shape: DetectionSeed | DetectionStorm = field(compare=False)
    host_name: str | None = field(default=None, compare=False)
    device_id: str | None = field(default=None, compare=False)
    source: str = field(default="scenario", compare=False)


def _process(process: DetectionProcess, key: str) -> dict[str, Any]:
    return {
        "filename": process.filename,
        "filepath": process.filepath,
        "cmdline": process.cmdline,
        "user_name": process.user_name,
        "sha256": digest("sha256", process.filepath)[:64],
        "md5": digest("md5", process.filepath)[:32],
        "local_process_id": str(1000 + int(digest(key, process.filepath)[:4], 16)),
    }


def alert_record(device: dict[str, Any], event: DetectionEvent, *, prevented: bool) -> dict[str, Any]:
    """The ``epp`` alert ``PostEntitiesAlertsV2`` returns for a detection on a device record."""
    shape = event.shape
    aid, cid = device["device_id"], device["cid"]
    suffix = f"{int(event.at * 1000)}-{shape.pattern_id}-{event.seq}"
    indicator = f"ind:{aid}:{suffix}"
    tech = TECHNOLOGY[shape.kind]
    process = _process(shape.process, "pid")
    parent = _process(shape.parent, "ppid") if shape.parent else None
    details = dict.fromkeys(DISPOSITION_FLAGS, False)
    details["kill_process"] = prevented
    tactic = shape.tactic or tech["tactic"]
    tactic_id = shape.tactic_id or tech["tactic_id"]
    technique = shape.technique or tech["technique"]
    technique_id = shape.technique_id or tech["technique_id"]
    name = shape.name or tech["name"]
    record: dict[str, Any] = {
        "composite_id": f"{cid}:{indicator}",
        "id": indicator,
        "indicator_id": indicator,
        "aggregate_id": f"aggind:{aid}:{int(event.at * 1000)}",
        "agent_id": aid,
        "cid": cid,
        "product": "epp",
        "type": "ldt",
        "platform": device["platform_name"],
        "data_domains": ["Endpoint"],
        "source_products": ["Falcon Insight"],
        "source_vendors": ["CrowdStrike"],
        "name": name,
        "display_name": name,
        "description": shape.description or tech["description"],
        "objective": tech["objective"],
        "scenario": "suspicious_activity" if shape.kind == "behavioral" else "NGAV",
        "severity": shape.severity,
        "severity_name": severity_name(shape.severity),
        "confidence": shape.confidence,
        "status": "new",
        "show_in_ui": True,
        "email_sent": False,
        "tags": [],
        "created_timestamp": iso(event.at),
        "timestamp": iso(event.at),
        "updated_timestamp": iso(event.at),
        "crawled_timestamp": iso(event.at + 5),
        "seconds_to_resolved": 0,
        "seconds_to_triaged": 0,
        "tactic": tactic,
        "tactic_id": tactic_id,
        "technique": technique,
        "technique_id": technique_id,
        "mitre_attack": [
            {
                "pattern_id": shape.pattern_id,
                "tactic": tactic,
                "tactic_id": tactic_id,
                "technique": technique,
                "technique_id": technique_id,
            }
        ],
        "pattern_id": shape.pattern_id,
        "pattern_disposition": 2048 if prevented else 0,
        "pattern_disposition_description": "Prevention, process killed."
        if prevented
        else "Detection, standard detection.",
        "pattern_disposition_details": details,
        **process,
        "process_id": f"{process['local_process_id']}{suffix.replace('-', '')[:8]}",
        "device": {k: device[k] for k in DEVICE_KEYS if k in device},
    }
    if parent:
        record["parent_details"] = {
            **parent,
            "process_id": f"{parent['local_process_id']}{suffix.replace('-', '')[:8]}",
            "process_graph_id": f"pid:{aid}:{parent['local_process_id']}",
            "timestamp": iso(event.at - 1),
        }
        record["parent_process_id"] = record["parent_details"]["process_id"]
    return record


class DetectionSchedule:
    """The scenario's detections and storms, in time order, released as fleetsim's clock passes them."""

    def __init__(self, scenario: Scenario, started: float) -> None:
        self._seq = itertools.count()
        self.events: list[DetectionEvent] = []
        self.storms: list[tuple[float, int, str, DetectionStorm]] = []
        for tenant in scenario.tenants:
            for seed in tenant.detections:
                for i in range(seed.count):
                    at = started + seed.at_seconds + i * seed.every_seconds
                    self.push(DetectionEvent(at, next(self._seq), tenant.id, seed, host_name=seed.host))
            storm = tenant.faults.detection_storm
            if storm is not None:
                self.storms.append((started + storm.at_seconds, next(self._seq), tenant.id, storm))
        heapq.heapify(self.storms)

    def push(self, event: DetectionEvent) -> None:
        heapq.heappush(self.events, event)

    def next_seq(self) -> int:
        return next(self._seq)

    def due_storms(self, now: float) -> Iterator[tuple[float, str, DetectionStorm]]:
        while self.storms and self.storms[0][0] <= now:
            at, _, tenant, storm = heapq.heappop(self.storms)
            yield at, tenant, storm

    def due_events(self, now: float) -> Iterator[DetectionEvent]:
        while self.events and self.events[0].at <= now:
            yield heapq.heappop(self.events)

    def anything_due(self, now: float) -> bool:
        return bool((self.events and self.events[0].at <= now) or (self.storms and self.storms[0][0] <= now))


class Detections:
    """Raises the scheduled detections as alerts in their device's customer (a fleet advancer)."""

    def __init__(self, api: FalconApi) -> None:
        self.api = api
        self.schedule = DetectionSchedule(api.state.scenario, api.started)
        # What was not raised, and why (no registered sensor, an exclusion): for the control plane.
        self.skipped: list[dict[str, Any]] = []

    def advance(self, now: float) -> None:
        if not self.schedule.anything_due(now):
            return
        backend = self.api.backend
        devices = [d for d in backend.devices(now) if not d.stale]
        by_host = {(d.host.tenant, d.host.name): d for d in devices}
        by_id = {d.record["device_id"]: d for d in devices}
        for at, tenant, storm in self.schedule.due_storms(now):
            self._expand(storm, tenant, at, devices)
        for event in self.schedule.due_events(now):
            device = by_id.get(event.device_id or "") or by_host.get((event.tenant, event.host_name or ""))
            if device is None:
                self._skip(event, "no registered Falcon sensor")
                continue
            self._raise(device, event)

    def _expand(self, storm: DetectionStorm, tenant: str, at: float, devices: list[Device]) -> None:
        cid = self.api.backend.tenant_cids[tenant]
        mine = [d for d in devices if d.cid == cid]
        if storm.environment is not None:
            targets = [d for d in mine if d.host.environment == storm.environment]
        else:
            group = self.api.backend.customer(cid).groups.by_name(storm.host_group or "")
            targets = [d for d in mine if group is not None and group.id in d.record["groups"]]
        step = storm.spread_seconds / storm.per_host
        for device in sorted(targets, key=lambda d: d.record["device_id"]):
            for i in range(storm.per_host):
                self.schedule.push(
                    DetectionEvent(
                        at + i * step,
                        self.schedule.next_seq(),
                        tenant,
                        storm,
                        device_id=device.record["device_id"],
                        source="detection_storm",
                    )
                )

    def _skip(self, event: DetectionEvent, reason: str, **extra: Any) -> None:
        self.skipped.append(
            {
                "at": iso(event.at),
                "tenant": event.tenant,
                "host": event.host_name,
                "device_id": event.device_id,
                "filepath": event.shape.process.filepath,
                "reason": reason,
                **extra,
            }
        )

    def _raise(self, device: Device, event: DetectionEvent) -> None:
        shape = event.shape
        customer = self.api.backend.customer(device.cid)
        windows = device.record["platform_name"] == "Windows"
        exclusion = customer.exclusions.silencing(
            shape.kind,
            shape.pattern_id,
            shape.process.filepath,
            shape.process.cmdline,
            device.record["groups"],
            event.at,
            windows,
        )
        if exclusion is not None:
            self._skip(event, "silenced by an exclusion", exclusion_id=exclusion.id, kind=exclusion.kind)
            return
        if shape.disposition == "policy":
            assignment = customer.assignments.get((device.record["device_id"], PREVENTION))
            in_force = assignment.in_force(event.at) if assignment is not None else None
            prevented = prevents(in_force, shape.kind)
        else:
            prevented = shape.disposition == "prevent"
        alert = alert_record(device.record, event, prevented=prevented)
        customer.alerts[alert["composite_id"]] = alert


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)


class AlertResponses:
    """The Alerts API v2 query and entities endpoints."""

    def __init__(self, api: FalconApi) -> None:
        self.api = api

    def routes(self) -> dict[tuple[str, str], tuple[str, Callable[[Request, Token], Response]]]:
        return {
            ("GET", "/alerts/queries/alerts/v2"): ("GetQueriesAlertsV2", self.query),
            ("POST", "/alerts/entities/alerts/v2"): ("PostEntitiesAlertsV2", self.get),
        }

    def _visible(self, token: Token) -> list[dict[str, Any]]:
        alerts = [a for c in self.api.backend.customers_for(token) for a in c.alerts.values()]
        # Newest first: "0 is the latest detection".
        return sorted(alerts, key=lambda a: (a["created_timestamp"], a["composite_id"]), reverse=True)

    def query(self, request: Request, token: Token) -> Response:
        bool_arg(request, "include_hidden", default=True)
        limit = int_arg(request, "limit", default=100, low=0, high=ALERTS_MAX_LIMIT)
        offset = int_arg(request, "offset", default=0, low=0, high=None)
        if offset + limit > ALERTS_WINDOW:
            raise ApiError(400, f"offset + limit must not exceed {ALERTS_WINDOW}")
        rows = filtered(self._visible(token), request, _ALERT_FIELD)
        q = request.args.get("q", "").lower()
        if q:
            rows = [r for r in rows if any(q in t.lower() for t in _texts(r))]
        ids = [r["composite_id"] for r in rows[offset : offset + limit]]
        return self.api.reply(ids, pagination={"offset": offset, "limit": limit, "total": len(rows)})

    def get(self, request: Request, token: Token) -> Response:
        bool_arg(request, "include_hidden", default=True)
        ids = body_object(request).get("composite_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise ApiError(400, 'request body must be {"composite_ids": [...]}, a non-empty list')
        if len(ids) > ALERTS_GET_MAX_IDS:
            raise ApiError(400, f"composite_ids: {len(ids)} given, at most {ALERTS_GET_MAX_IDS} per request")
        alerts = {a["composite_id"]: a for a in self._visible(token)}
        found = [alerts[i] for i in ids if i in alerts]
        errors = [{"code": 404, "message": f"alert {i!r} not found", "id": i} for i in ids if i not in alerts]
        return self.api.reply(found, errors=errors)
