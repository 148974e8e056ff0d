"""PagerDuty Events API v2: alert events that open, acknowledge and resolve incidents, and change events.

Served paths (``https://events.pagerduty.com`` in production):

* ``POST /v2/enqueue`` with a JSON alert event::

      {"routing_key": "<32-character integration key>", "event_action": "trigger|acknowledge|resolve",
       "dedup_key": "…(≤255)",                              # required for acknowledge and resolve
       "payload": {"summary": "…(≤1024)", "source": "…", "severity": "critical|error|warning|info",
                   "timestamp": "ISO 8601", "component": "…", "group": "…", "class": "…",
                   "custom_details": {…}},                  # required for trigger only
       "links": [{"href": "…", "text": "…"}], "images": [{"src": "…", "href": "…", "alt": "…"}],
       "client": "…", "client_url": "…"}

  answers **202** ``{"status": "success", "message": "Event processed", "dedup_key": "…"}`` (a trigger
  without ``dedup_key`` gets a generated one, a UUID's 32 hex digits) or **400** ``{"status": "invalid
  event", "message": "Event object is invalid", "errors": ["…", ...]}`` listing every problem, each naming
  the field (``Length of 'routing_key' is incorrect (should be 32 characters)`` is the real API's wording;
  the others follow it).
* ``POST /v2/change/enqueue`` with a change event (``routing_key``; ``payload.summary`` ≤1024 required;
  ``payload.source``, ``payload.timestamp``, ``payload.custom_details``, ``links`` optional) answers 202
  ``{"status": "success", "message": "Change event processed"}``; change events never touch incidents.

Either answers **429** ``{"status": "throttle event", "message": "…"}`` to the first
``scenario.pagerduty.throttle_first`` valid events of each routing key (PagerDuty throttles per integration
key; only the keys in ``throttle_routing_keys`` when it lists any), with ``Retry-After`` when
``retry_after_seconds`` is set. Bodies over 512 KB are refused with 400.

Incidents, keyed by (routing_key, dedup_key), follow PagerDuty's alert de-duplication: a trigger opens an
incident (status ``triggered``, the next incident number) or, while one is open (triggered or
acknowledged), is added to it (its ``event_count`` and ``trigger_count`` grow, its status does not change:
an acknowledged incident stays acknowledged); ``acknowledge`` moves an open incident to ``acknowledged``;
``resolve`` moves it to ``resolved``. A trigger after the resolve opens a **new** incident (a new number)
with the same dedup_key; acknowledge/resolve events with no open incident are accepted (202) and dropped.
An incident keeps what its first trigger said (summary, source, severity, component, group, class,
custom_details, links, images); every accepted event is kept with its time, action, dedup_key, payload
and outcome (``opened``, ``added``, ``acknowledged``, ``resolved``, ``dropped``), and every refused request
(400/429) with its errors. fleetsim's control plane serves them at ``GET /fleetsim/pagerduty`` as
``{"incidents": [...], "events": [...], "change_events": [...], "rejected": [...]}``.

Calls counted: ``pagerduty.enqueue`` and ``pagerduty.change`` (every request, whatever the answer).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from typing import Any

from werkzeug.wrappers import Request, Response

from fleetsim.fleet import FleetState

ENQUEUE_PATH = "/v2/enqueue"
CHANGE_PATH = "/v2/change/enqueue"
ROUTING_KEY_LENGTH = 32
SUMMARY_MAX_CHARS = 1024
DEDUP_KEY_MAX_CHARS = 255
MAX_BODY_BYTES = 512 * 1024  # "Events API payloads are limited to 512 KB"
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
OPEN_STATUSES = ("triggered", "acknowledged")
INVALID = {"status": "invalid event", "message": "Event object is invalid"}
THROTTLED = {
    "status": "throttle event",
    "message": "Requests for this service are arriving too quickly. Please retry later.",
}


def _iso(seconds: float) -> str:
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers=headers, mimetype="application/json")


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


def _check_routing_key(event: dict[str, Any], errors: list[str]) -> None:
    key = event.get("routing_key")
    if _blank(key):
        errors.append("'routing_key' is missing or blank")
    elif len(key) != ROUTING_KEY_LENGTH:
        errors.append(f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)")


def _check_summary(payload: dict[str, Any], errors: list[str]) -> None:
    summary = payload.get("summary")
    if _blank(summary):
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > SUMMARY_MAX_CHARS:
        errors.append(
            f"Length of 'payload.summary' is incorrect (should be at most {SUMMARY_MAX_CHARS} characters, "
            f"got {len(summary)})"
        )


def _check_timestamp(payload: dict[str, Any], errors: list[str]) -> None:
    stamp = payload.get("timestamp")
    if stamp is None:
        return
    try:
        if not isinstance(stamp, str):
            raise TypeError
        dt.datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        errors.append(f"'payload.timestamp' is not an ISO 8601 timestamp: {stamp!r}")


def _check_links(event: dict[str, Any], errors: list[str], *, images: bool) -> None:
    for field, required in (("links", "href"),) + ((("images", "src"),) if images else ()):
        items = event.get(field)
        if items is None:
            continue
        if not isinstance(items, list):
            errors.append(f"'{field}' must be an array of objects")
            continue
        for i, item in enumerate(items):
            if not isinstance(item, dict) or _blank(item.get(required)):
                errors.append(f"'{field}[{i}].{required}' is missing or blank")


def validate_alert_event(event: Any) -> list[str]:
    """Every reason PagerDuty would refuse this alert event, each naming the field; [] when valid."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors: list[str] = []
    _check_routing_key(event, errors)
    action = event.get("event_action")
    if _blank(action):
        errors.append("'event_action' is missing or blank")
    elif action not in EVENT_ACTIONS:
        errors.append(f"'event_action' {action!r} is invalid (should be one of {', '.join(EVENT_ACTIONS)})")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and not isinstance(dedup_key, str):
        errors.append("'dedup_key' must be a string")
    elif isinstance(dedup_key, str) and len(dedup_key) > DEDUP_KEY_MAX_CHARS:
        errors.append(
            f"Length of 'dedup_key' is incorrect (should be at most {DEDUP_KEY_MAX_CHARS} characters, "
            f"got {len(dedup_key)})"
        )
    if action in ("acknowledge", "resolve") and _blank(dedup_key):
        errors.append(f"'dedup_key' is missing or blank (required to {action})")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object (required to trigger)")
        else:
            _check_summary(payload, errors)
            if _blank(payload.get("source")):
                errors.append("'payload.source' is missing or blank")
            severity = payload.get("severity")
            if _blank(severity):
                errors.append("'payload.severity' is missing or blank")
            elif severity not in SEVERITIES:
                errors.append(
                    f"'payload.severity' {severity!r} is invalid (should be one of {', '.join(SEVERITIES)})"
                )
            _check_timestamp(payload, errors)
        _check_links(event, errors, images=True)
    return errors


def validate_change_event(event: Any) -> list[str]:
    """Every reason PagerDuty would refuse this change event; [] when valid."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors: list[str] = []
    _check_routing_key(event, errors)
    payload = event.get("payload")
    if not isinstance(payload, dict):
        errors.append("'payload' is missing or not an object")
    else:
        _check_summary(payload, errors)
        _check_timestamp(payload, errors)
    _check_links(event, errors, images=False)
    return errors


class PagerDutyApi:
    """PagerDuty's Events API v2 with an incident store the tests read through the control plane."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self.seed = state.scenario.pagerduty
        self.incidents: list[dict[str, Any]] = []  # in the order they were opened
        self.open: dict[tuple[str, str], dict[str, Any]] = {}  # (routing_key, dedup_key) -> open incident
        self.events: list[dict[str, Any]] = []
        self.change_events: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.valid_seen: dict[str, int] = {}  # routing key -> valid events received (for throttling)

    def handles(self, path: str) -> bool:
        return path.rstrip("/") in (ENQUEUE_PATH, CHANGE_PATH)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._dispatch(Request(environ))(environ, start_response)

    # -- requests ---------------------------------------------------------------------------------
    def _dispatch(self, request: Request) -> Response:
        change = request.path.rstrip("/") == CHANGE_PATH
        with self.state.lock:
            self.state.calls["pagerduty.change" if change else "pagerduty.enqueue"] += 1
        if request.method != "POST":
            return _json({"status": "invalid request", "message": f"{request.method} is not allowed"}, 405)
        raw = request.get_data(cache=False)
        if len(raw) > MAX_BODY_BYTES:
            return self._refuse(request.path, None, 400, [f"Event payload exceeds {MAX_BODY_BYTES} bytes"])
        try:
            event = json.loads(raw)
        except ValueError:
            return self._refuse(request.path, None, 400, ["Event object is not valid JSON"])
        errors = validate_change_event(event) if change else validate_alert_event(event)
        if errors:
            return self._refuse(request.path, event, 400, errors)
        with self.state.lock:
            key = event["routing_key"]
            self.valid_seen[key] = self.valid_seen.get(key, 0) + 1
            throttled = self.valid_seen[key] <= self.seed.throttle_first and (
                not self.seed.throttle_routing_keys or key in self.seed.throttle_routing_keys
            )
        if throttled:
            headers = {}
            if self.seed.retry_after_seconds is not None:
                headers["Retry-After"] = str(self.seed.retry_after_seconds)
            return self._refuse(request.path, event, 429, [], headers)
        if change:
            return self._change(event)
        return self._alert(event)

    def _refuse(
        self,
        path: str,
        event: Any,
        status: int,
        errors: list[str],
        headers: dict[str, str] | None = None,
    ) -> Response:
        fields = event if isinstance(event, dict) else {}
        with self.state.lock:
            self.rejected.append(
                {
                    "at": _iso(self.state.clock()),
                    "path": path,
                    "status": status,
                    "routing_key": fields.get("routing_key"),
                    "event_action": fields.get("event_action"),
                    "dedup_key": fields.get("dedup_key"),
                    "errors": list(errors),
                }
            )
        body = {**INVALID, "errors": errors} if status == 400 else THROTTLED
        return _json(body, status, headers)

    def _change(self, event: dict[str, Any]) -> Response:
        with self.state.lock:
            self.change_events.append(
                {
                    "at": _iso(self.state.clock()),
                    "routing_key": event["routing_key"],
                    "payload": copy.deepcopy(event["payload"]),
                    "links": copy.deepcopy(event.get("links") or []),
                }
            )
        return _json({"status": "success", "message": "Change event processed"}, 202)

    def _alert(self, event: dict[str, Any]) -> Response:
        action: str = event["event_action"]
        routing_key: str = event["routing_key"]
        dedup_key: str = event.get("dedup_key") or uuid.uuid4().hex
        with self.state.lock:
            now = self.state.clock()
            incident = self.open.get((routing_key, dedup_key))
            if action == "trigger" and incident is None:
                incident = self._open_incident(routing_key, dedup_key, event, now)
                outcome = "opened"
            elif incident is None:
                outcome = "dropped"  # acknowledge/resolve with no open incident: accepted, then dropped
            elif action == "trigger":
                outcome = "added"
            elif action == "acknowledge":
                outcome = "acknowledged"
                if incident["status"] == "triggered":
                    incident["status"] = "acknowledged"
                    incident["acknowledged_at"] = _iso(now)
            else:
                outcome = "resolved"
                incident["status"] = "resolved"
                incident["resolved_at"] = _iso(now)
                del self.open[(routing_key, dedup_key)]
            if incident is not None:
                incident["event_count"] += 1
                incident["trigger_count"] += int(action == "trigger")
                incident["last_event_at"] = _iso(now)
            self.events.append(
                {
                    "at": _iso(now),
                    "routing_key": routing_key,
                    "event_action": action,
                    "dedup_key": dedup_key,
                    "payload": copy.deepcopy(event.get("payload")),
                    "links": copy.deepcopy(event.get("links") or []),
                    "images": copy.deepcopy(event.get("images") or []),
                    "client": event.get("client"),
                    "client_url": event.get("client_url"),
                    "outcome": outcome,
                    "incident_number": incident["number"] if incident else None,
                }
            )
        return _json({"status": "success", "message": "Event processed", "dedup_key": dedup_key}, 202)

    def _open_incident(
        self, routing_key: str, dedup_key: str, event: dict[str, Any], now: float
    ) -> dict[str, Any]:
        payload = event["payload"]
        number = len(self.incidents) + 1
        incident = {
            "number": number,
            "id": f"PFS{number:05d}",
            "routing_key": routing_key,
            "dedup_key": dedup_key,
            "status": "triggered",
            "summary": payload["summary"],
            "source": payload["source"],
            "severity": payload["severity"],
            "component": payload.get("component"),
            "group": payload.get("group"),
            "class": payload.get("class"),
            "timestamp": payload.get("timestamp"),
            "custom_details": copy.deepcopy(payload.get("custom_details")),
            "links": copy.deepcopy(event.get("links") or []),
            "images": copy.deepcopy(event.get("images") or []),
            "created_at": _iso(now),
            "acknowledged_at": None,
            "resolved_at": None,
            "last_event_at": _iso(now),
            "event_count": 0,
            "trigger_count": 0,
        }
        self.incidents.append(incident)
        self.open[(routing_key, dedup_key)] = incident
        return incident

    # -- control plane ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """What PagerDuty received: incidents (in the order opened), accepted events, change events and
        refused requests, as JSON-able copies."""
        with self.state.lock:
            return copy.deepcopy(
                {
                    "incidents": self.incidents,
                    "events": self.events,
                    "change_events": self.change_events,
                    "rejected": self.rejected,
                }
            )
