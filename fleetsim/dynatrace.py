"""Dynatrace Environment API v2 as a patch cycle's health gate reads it: problems and service error rates.

Served paths (also under a Managed environment's ``/e/<environment-id>`` prefix): ``GET /api/v2/problems``
and ``GET /api/v2/metrics/query``. Every request needs ``Authorization: Api-Token <scenario.dynatrace.token>``
(401 ``{"error": {"code": 401, "message": ...}}`` otherwise). Errors are Dynatrace's envelope
``{"error": {"code", "message"[, "constraintViolations": [{path, message, parameterLocation, location}]]}}``.

Entities (built once from the fleet): every host is a HOST ``HOST-<16 hex>`` named after the host, tagged
``tenant:<tenant>``, ``environment:<env>``, ``cloud:<cloud>`` and ``host:<name>``; every (tenant,
environment) is a SERVICE ``SERVICE-<16 hex>`` named ``<tenant>-<environment>``, tagged ``tenant:<tenant>``
and ``environment:<env>``. Ids are stable hashes, so they are the same in every run of a scenario.

Problems (computed from the fleet when asked, after applying every cloud's finished work):

* ``faults.open_problem``: an OPEN AVAILABILITY problem "Host or monitoring unavailable" (impact
  INFRASTRUCTURE) on the host, opened ``dynatrace.open_problem_age_minutes`` before fleetsim started;
* ``faults.health_problem_after_patch``: once the host has been patched successfully (ground-truth action
  ``ssm.install`` "Success", ``azure.installPatches`` "Succeeded" or ``gcp.patchJob`` "SUCCEEDED" /
  "SUCCEEDED_REBOOT_REQUIRED"), an OPEN ERROR problem "Failure rate increase on <service>" (impact SERVICES)
  whose affected entities are the host and its environment's service, root cause the host, starting when
  the first successful install ended.

``problemSelector`` understands ``status``, ``severityLevel``, ``impactLevel`` and ``displayId`` (values
case-insensitive, several values OR-ed); ``entitySelector`` (≤ 2,000 characters) understands ``type``,
``entityId``, ``tag`` (``key:value``, ``key`` or ``[context]key:value``, ``\\:`` escapes a colon; several
values and several ``tag`` criteria are AND-ed), ``entityName``/``entityName.equals``/``.contains``/
``.startsWith``; criteria are AND-ed and one of ``type`` or ``entityId`` is required. A problem matches
the entity selector when one of its affected or impacted entities or its root cause is selected. As
documented, a problem is listed when its start or its end lies in ``from``..``to`` (default ``now-2h``..
``now``): an open problem that started before ``from`` is *not* listed. ``pageSize`` 1..500 (default 50);
``nextPageKey`` pages the same query, and with it every other parameter but ``fields`` must be absent
(400). Problems are sorted newest first. Unknown criteria, values or bad times are 400 "Constraints
violated." with one violation per fault.

Metrics: ``builtin:service.errors.total.rate`` with ``:avg`` and/or ``:fold``/``:fold(avg)`` (others 400;
unknown metric keys 404), for SERVICE entities only. The rate of a service at time t is its baseline
(``dynatrace.error_rate_by_environment`` or ``baseline_error_rate``) plus the
``faults.error_rate_after_patch`` increments of its hosts patched successfully by t (never below 0). Each
data point is the time-weighted average over its slot (slots aligned to the resolution, timestamped at the
slot's end; slots starting in the future are null); ``resolution=Inf`` or ``:fold`` gives one point per
service over the whole timeframe. Without ``resolution`` the slot is the smallest whole number of minutes
giving ≤ 120 points; at most 10,080 points per series (400 beyond). ``nextPageKey`` is always null, as in
the real API.

Throttling (``dynatrace.throttle``): the first ``requests`` authenticated requests, then every ``every``-th,
get 429 with ``Retry-After`` (only those made with ``throttle.token`` when that is set). Calls are counted
as ``dynatrace.problems``, ``dynatrace.metrics.query``, ``dynatrace.notFound``, and additionally
``dynatrace.throttled``; requests without a valid token only as ``dynatrace.unauthenticated``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

from fleetsim.fleet import FleetState, SimHost

# Documented limits of the real API (Dynatrace Environment API v2 reference).
PROBLEMS_DEFAULT_PAGE_SIZE = 50
PROBLEMS_MAX_PAGE_SIZE = 500
ENTITY_SELECTOR_MAX_CHARS = 2000
METRIC_MAX_POINTS_PER_SERIES = 10080
METRIC_DEFAULT_POINTS = 120
DEFAULT_FROM = "now-2h"

ERROR_RATE_METRIC = "builtin:service.errors.total.rate"
PROBLEM_FIELDS = ("evidenceDetails", "impactAnalysis", "recentComments")
STATUSES = frozenset({"OPEN", "CLOSED"})
SEVERITY_LEVELS = frozenset(
    {"AVAILABILITY", "ERROR", "PERFORMANCE", "RESOURCE_CONTENTION", "CUSTOM_ALERT", "MONITORING_UNAVAILABLE"}
)
IMPACT_LEVELS = frozenset({"APPLICATION", "ENVIRONMENT", "INFRASTRUCTURE", "SERVICES"})
# Entity types a selector may name; fleetsim has HOST and SERVICE entities, the others select nothing.
ENTITY_TYPES = frozenset(
    {"HOST", "SERVICE", "PROCESS_GROUP", "PROCESS_GROUP_INSTANCE", "APPLICATION", "SYNTHETIC_TEST",
     "HOST_GROUP", "KUBERNETES_CLUSTER", "CLOUD_APPLICATION", "CUSTOM_DEVICE"}
)  # fmt: skip
# Ground-truth actions of a successful install, per cloud, and the results that mean success.
SUCCESSFUL_INSTALLS: dict[str, frozenset[str]] = {
    "ssm.install": frozenset({"Success"}),
    "azure.installPatches": frozenset({"Succeeded"}),
    "gcp.patchJob": frozenset({"SUCCEEDED", "SUCCEEDED_REBOOT_REQUIRED"}),
}

_PATH = re.compile(r"^(?:/e/[^/]+)?(/api/v2/.*)$")
_RELATIVE = re.compile(r"^now(?:-(\d+)([smhdwMy]))?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400, "y": 365 * 86400}
_RESOLUTION = re.compile(r"^(\d+)([mhdw])$")
_METRIC_KEY = re.compile(r"^([A-Za-z0-9_\-]+:[A-Za-z0-9_.\-]+)(.*)$")
_TRANSFORM = re.compile(r":([A-Za-z]+)(?:\(([^)]*)\))?")


class DynatraceApiError(Exception):
    """An error answer: HTTP status, Dynatrace's message, and the violated constraints of a 400."""

    def __init__(
        self,
        status: int,
        message: str,
        violations: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.violations = violations
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.status, "message": self.message}
        if self.violations is not None:
            error["constraintViolations"] = self.violations
        return {"error": error}


def violation(param: str, message: str) -> DynatraceApiError:
    """A 400 "Constraints violated." naming the query parameter and what is wrong with it."""
    return DynatraceApiError(
        400,
        "Constraints violated.",
        [{"path": param, "message": message, "parameterLocation": "QUERY", "location": None}],
    )


def _hex_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16].upper()


@dataclass(frozen=True)
class Entity:
    """A monitored entity: a host (HOST) or an environment's service (SERVICE)."""

    id: str
    type: str
    name: str
    tags: tuple[tuple[str, str], ...]  # (key, value), context CONTEXTLESS
    tenant: str
    environment: str

    def ref(self) -> dict[str, Any]:
        return {"entityId": {"id": self.id, "type": self.type}, "name": self.name}

    def tags_json(self) -> list[dict[str, str]]:
        return [
            {"context": "CONTEXTLESS", "key": k, "value": v, "stringRepresentation": f"{k}:{v}"}
            for k, v in self.tags
        ]


@dataclass
class Problem:
    """A problem Dynatrace detected: what it is, when it started, and the entities it concerns."""

    key: str
    title: str
    severity: str
    impact: str
    start_ms: int
    affected: list[Entity]
    impacted: list[Entity]
    root_cause: Entity | None
    end_ms: int = -1
    entity_ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.entity_ids = {e.id for e in (*self.affected, *self.impacted)}
        if self.root_cause is not None:
            self.entity_ids.add(self.root_cause.id)

    @property
    def status(self) -> str:
        return "OPEN" if self.end_ms == -1 else "CLOSED"

    @property
    def problem_id(self) -> str:
        return f"-{int(_hex_id('problem', self.key), 16) % 10**19}_{self.start_ms}V2"

    @property
    def display_id(self) -> str:
        return f"P-{int(_hex_id('display', self.key), 16) % 900000 + 100000}"

    def to_json(self, fields: Iterable[str]) -> dict[str, Any]:
        tags: dict[str, dict[str, str]] = {}
        for entity in self.affected:
            for tag in entity.tags_json():
                tags.setdefault(tag["stringRepresentation"], tag)
        body: dict[str, Any] = {
            "problemId": self.problem_id,
            "displayId": self.display_id,
            "title": self.title,
            "impactLevel": self.impact,
            "severityLevel": self.severity,
            "status": self.status,
            "affectedEntities": [e.ref() for e in self.affected],
            "impactedEntities": [e.ref() for e in self.impacted],
            "rootCauseEntity": self.root_cause.ref() if self.root_cause else None,
            "managementZones": [],
            "entityTags": list(tags.values()),
            "problemFilters": [],
            "startTime": self.start_ms,
            "endTime": self.end_ms,
        }
        for name in fields:
            if name == "evidenceDetails":
                body[name] = {"totalCount": 0, "details": []}
            elif name == "impactAnalysis":
                body[name] = {"impacts": []}
            elif name == "recentComments":
                body[name] = {"totalCount": 0, "pageSize": 0, "comments": []}
        return body


# -- selector parsing --------------------------------------------------------------------------------------
def parse_selector(text: str, param: str) -> list[tuple[str, list[str]]]:
    """``name("v1","v2"),other(v)`` as ``[(name, [values])]``; quoted values keep ``\\:`` escapes."""
    criteria: list[tuple[str, list[str]]] = []
    i, n = 0, len(text)

    def fail(why: str) -> DynatraceApiError:
        return violation(param, f"{why} at position {i} of {text!r}")

    while True:
        while i < n and text[i].isspace():
            i += 1
        start = i
        while i < n and (text[i].isalnum() or text[i] in "._"):
            i += 1
        name = text[start:i]
        if not name:
            raise fail("expected a criterion name")
        if i >= n or text[i] != "(":
            raise fail(f"expected '(' after {name!r}")
        i += 1
        values: list[str] = []
        while True:
            while i < n and text[i].isspace():
                i += 1
            if i < n and text[i] == '"':
                i += 1
                chars: list[str] = []
                while i < n and text[i] != '"':
                    if text[i] == "\\" and i + 1 < n:
                        nxt = text[i + 1]
                        chars.append(nxt if nxt in '"\\' else "\\" + nxt)
                        i += 2
                        continue
                    chars.append(text[i])
                    i += 1
                if i >= n:
                    raise fail("unterminated quoted value")
                i += 1
                values.append("".join(chars))
            else:
                start = i
                while i < n and text[i] not in ",)":
                    if text[i] in '("':
                        raise fail("a value with parentheses or quotes must be enclosed in quotation marks")
                    i += 1
                raw = text[start:i].strip()
                if raw:
                    values.append(raw)
            while i < n and text[i].isspace():
                i += 1
            if i < n and text[i] == ",":
                i += 1
                continue
            if i < n and text[i] == ")":
                i += 1
                break
            raise fail(f"unterminated criterion {name!r}")
        if not values:
            raise fail(f"criterion {name!r} has no value")
        criteria.append((name, values))
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return criteria
        if text[i] != ",":
            raise fail("expected ',' between criteria")
        i += 1


def parse_tag(spec: str) -> tuple[str | None, str, str | None]:
    """``[context]key:value`` as (context, key, value); a backslash escapes a colon in key or value."""
    context = None
    if spec.startswith("["):
        end = spec.find("]")
        if end > 0:
            context, spec = spec[1:end], spec[end + 1 :]
    key_chars: list[str] = []
    i = 0
    while i < len(spec):
        if spec[i] == "\\" and i + 1 < len(spec):
            key_chars.append(spec[i + 1])
            i += 2
            continue
        if spec[i] == ":":
            value = spec[i + 1 :].replace("\\:", ":").replace("\\\\", "\\")
            return context, "".join(key_chars), value
        key_chars.append(spec[i])
        i += 1
    return context, "".join(key_chars), None


def parse_time(value: str, now_ms: int, param: str) -> int:
    """A Dynatrace timeframe bound as UTC milliseconds: ``now``, ``now-2h``, epoch ms, or ISO 8601."""
    text = value.strip()
    if match := _RELATIVE.match(text):
        amount, unit = match.groups()
        return now_ms - (int(amount) * _UNIT_SECONDS[unit] * 1000 if amount else 0)
    if text.isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise violation(
            param, f"{value!r} is not a timestamp (now, now-<n><s|m|h|d|w|M|y>, UTC milliseconds or ISO 8601)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _ms_iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


# -- the API -------------------------------------------------------------------------------------------------
class DynatraceApi:
    """One Dynatrace environment over the whole fleet (every tenant's hosts and services)."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self.seed = state.scenario.dynatrace
        self.started_ms = int(state.clock() * 1000)
        self.requests_seen = 0  # authenticated requests the throttle applies to
        self.tokens = {self.seed.token} | ({self.seed.throttle.token} if self.seed.throttle.token else set())
        self.hosts: dict[str, Entity] = {}  # SimHost.host_id -> HOST entity
        self.services: dict[tuple[str, str], Entity] = {}  # (tenant, environment) -> SERVICE entity
        with state.lock:  # RDS DB instances run no OneAgent: they are no Dynatrace hosts
            sim_hosts = [h for h in state.hosts.values() if h.kind == "instance"]
        for host in sorted(sim_hosts, key=lambda h: (h.tenant, h.name)):
            self.hosts[host.host_id] = Entity(
                id=f"HOST-{_hex_id('host', host.tenant, host.name)}",
                type="HOST",
                name=host.name,
                tags=(
                    ("tenant", host.tenant),
                    ("environment", host.environment),
                    ("cloud", host.cloud),
                    ("host", host.name),
                ),
                tenant=host.tenant,
                environment=host.environment,
            )
            key = (host.tenant, host.environment)
            if key not in self.services:
                self.services[key] = Entity(
                    id=f"SERVICE-{_hex_id('service', *key)}",
                    type="SERVICE",
                    name=f"{host.tenant}-{host.environment}",
                    tags=(("tenant", host.tenant), ("environment", host.environment)),
                    tenant=host.tenant,
                    environment=host.environment,
                )
        self.entities: dict[str, Entity] = {e.id: e for e in (*self.hosts.values(), *self.services.values())}
        by_name = {(h.tenant, h.name): h for h in sim_hosts}
        self.open_problem_hosts: list[SimHost] = []
        self.problem_after_patch_hosts: list[SimHost] = []
        self.rate_increments: list[tuple[SimHost, float]] = []
        for tenant in state.scenario.tenants:
            faults = tenant.faults
            # Faults naming an RDS DB instance (not a Dynatrace host) are ignored here.
            self.open_problem_hosts += [
                by_name[(tenant.id, n)] for n in faults.open_problem if (tenant.id, n) in by_name
            ]
            self.problem_after_patch_hosts += [
                by_name[(tenant.id, n)]
                for n in faults.health_problem_after_patch
                if (tenant.id, n) in by_name
            ]
            self.rate_increments += [
                (by_name[(tenant.id, n)], inc)
                for n, inc in faults.error_rate_after_patch.items()
                if (tenant.id, n) in by_name
            ]

    def handles(self, path: str) -> bool:
        return _PATH.match(path) is not None

    # -- WSGI -------------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        match = _PATH.match(request.path)
        route = match.group(1).rstrip("/") if match else ""
        operation = {"/api/v2/problems": "problems", "/api/v2/metrics/query": "metrics.query"}.get(
            route, "notFound"
        )
        try:
            token = self._authenticate(request)
            with self.state.lock:
                self.state.calls[f"dynatrace.{operation}"] += 1
            self._throttle(token)
            if operation == "notFound":
                raise DynatraceApiError(404, f"HTTP 404 Not Found: no API at {request.method} {request.path}")
            if request.method != "GET":
                raise DynatraceApiError(405, f"HTTP 405 Method Not Allowed: {request.method} {request.path}")
            now = self.state.advance()
            now_ms = int(now * 1000)
            if operation == "problems":
                body = self._problems(request.args, now_ms)
            else:
                body = self._metrics(request.args, now_ms)
            response = Response(json.dumps(body), 200, mimetype="application/json")
        except DynatraceApiError as exc:
            response = Response(json.dumps(exc.body()), exc.status, mimetype="application/json")
            response.headers.update(exc.headers)
        return response(environ, start_response)

    def _authenticate(self, request: Request) -> str:
        """The API token of the request; 401 without one this environment issued."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            message = "Missing authorization parameter."
        elif scheme != "Api-Token" or token.strip() not in self.tokens:
            message = "Token Authentication failed"
        else:
            return token.strip()
        with self.state.lock:
            self.state.calls["dynatrace.unauthenticated"] += 1
        raise DynatraceApiError(401, message)

    def _throttle(self, token: str) -> None:
        throttle = self.seed.throttle
        if throttle.token is not None and token != throttle.token:
            return
        with self.state.lock:
            self.requests_seen += 1
            seen = self.requests_seen
            refused = seen <= throttle.requests or (
                throttle.every > 0 and (seen - throttle.requests) % throttle.every == 0
            )
            if refused:
                self.state.calls["dynatrace.throttled"] += 1
        if refused:
            raise DynatraceApiError(
                429,
                "Too Many Requests: the server's request queue is full; retry later",
                headers={"Retry-After": str(throttle.retry_after_seconds)},
            )

    # -- fleet -> Dynatrace -------------------------------------------------------------------------------
    @staticmethod
    def first_install_ms(host: SimHost) -> int | None:
        """When the host's first successful patch install (any cloud) ended, in UTC ms; None if never."""
        times = []
        for action in host.actions:
            if action.get("result") in SUCCESSFUL_INSTALLS.get(action.get("action", ""), ()):
                at = dt.datetime.fromisoformat(str(action["at"]).replace("Z", "+00:00"))
                if at.tzinfo is None:
                    at = at.replace(tzinfo=dt.UTC)
                times.append(int(at.timestamp() * 1000))
        return min(times) if times else None

    def service_of(self, host: SimHost) -> Entity:
        return self.services[(host.tenant, host.environment)]

    def problems_now(self, now_ms: int) -> list[Problem]:
        """Every problem that exists by ``now_ms``, newest first."""
        problems: list[Problem] = []
        with self.state.lock:
            for host in self.open_problem_hosts:
                entity = self.hosts[host.host_id]
                problems.append(
                    Problem(
                        key=f"open|{entity.id}",
                        title="Host or monitoring unavailable",
                        severity="AVAILABILITY",
                        impact="INFRASTRUCTURE",
                        start_ms=self.started_ms - int(self.seed.open_problem_age_minutes * 60_000),
                        affected=[entity],
                        impacted=[entity],
                        root_cause=entity,
                    )
                )
            for host in self.problem_after_patch_hosts:
                installed = self.first_install_ms(host)
                if installed is None or installed > now_ms:
                    continue
                entity, service = self.hosts[host.host_id], self.service_of(host)
                problems.append(
                    Problem(
                        key=f"after-patch|{entity.id}",
                        title=f"Failure rate increase on {service.name}",
                        severity="ERROR",
                        impact="SERVICES",
                        start_ms=installed,
                        affected=[entity, service],
                        impacted=[service],
                        root_cause=entity,
                    )
                )
        problems.sort(key=lambda p: (-p.start_ms, p.problem_id))
        return problems

    def rate_steps(self, service: Entity) -> tuple[float, list[tuple[int, float]]]:
        """A service's baseline error rate (percent) and its (UTC ms, increment) steps, in time order."""
        baseline = self.seed.error_rate_by_environment.get(service.environment, self.seed.baseline_error_rate)
        steps: list[tuple[int, float]] = []
        with self.state.lock:
            for host, increment in self.rate_increments:
                if (host.tenant, host.environment) != (service.tenant, service.environment):
                    continue
                installed = self.first_install_ms(host)
                if installed is not None:
                    steps.append((installed, increment))
        steps.sort()
        return baseline, steps

    @staticmethod
    def average_rate(baseline: float, steps: list[tuple[int, float]], start: int, end: int) -> float:
        """The time-weighted average of the (stepwise) rate over ``start``..``end`` (UTC ms, start < end)."""
        total, level, cursor = 0.0, baseline, start
        for at, increment in steps:
            if at <= start:
                level += increment
                continue
            if at >= end:
                break
            total += max(level, 0.0) * (at - cursor)
            level += increment
            cursor = at
        total += max(level, 0.0) * (end - cursor)
        return total / (end - start)

    # -- selectors -------------------------------------------------------------------------------------
    def select_entities(self, selector: str, param: str = "entitySelector") -> set[str]:
        """The ids of the entities an entity selector selects."""
        if len(selector) > ENTITY_SELECTOR_MAX_CHARS:
            raise violation(
                param, f"is {len(selector)} characters long; at most {ENTITY_SELECTOR_MAX_CHARS} are allowed"
            )
        criteria = parse_selector(selector, param)
        names = [name for name, _ in criteria]
        if "type" not in names and "entityId" not in names:
            raise violation(param, f"{selector!r} must specify the entity type type(...) or entityId(...)")
        if names.count("type") > 1:
            raise violation(param, f"{selector!r}: only one type(...) criterion is allowed")
        candidates = list(self.entities.values())
        for name, values in criteria:
            if name == "type":
                if len(values) != 1:
                    raise violation(param, f"type(...) takes exactly one entity type, not {values}")
                wanted = values[0].upper()
                if wanted not in ENTITY_TYPES:
                    raise violation(param, f"unknown entity type {values[0]!r}")
                candidates = [e for e in candidates if e.type == wanted]
            elif name == "entityId":
                types = {v.split("-", 1)[0].upper() for v in values}
                if len(types) > 1:
                    raise violation(param, f"entityId(...) ids must all be of one type, not {sorted(types)}")
                ids = {v.upper() for v in values}
                candidates = [e for e in candidates if e.id in ids]
            elif name == "tag":
                for spec in values:
                    context, key, value = parse_tag(spec)
                    if context not in (None, "CONTEXTLESS"):
                        candidates = []
                        continue
                    candidates = [
                        e for e in candidates if any(k == key and value in (None, v) for k, v in e.tags)
                    ]
            elif name in ("entityName", "entityName.contains", "entityName.equals", "entityName.startsWith"):
                if len(values) != 1:
                    raise violation(param, f"{name}(...) takes one name, not {values}")
                wanted = values[0].lower()
                if name == "entityName.equals":
                    candidates = [e for e in candidates if e.name.lower() == wanted]
                elif name == "entityName.startsWith":
                    candidates = [e for e in candidates if e.name.lower().startswith(wanted)]
                else:
                    candidates = [e for e in candidates if wanted in e.name.lower()]
            else:
                raise violation(param, f"unknown or unsupported criterion {name!r} in {selector!r}")
        return {e.id for e in candidates}

    @staticmethod
    def problem_filter(selector: str) -> dict[str, set[str]]:
        """A problem selector as {criterion: accepted upper-cased values}."""
        filters: dict[str, set[str]] = {}
        allowed = {"status": STATUSES, "severityLevel": SEVERITY_LEVELS, "impactLevel": IMPACT_LEVELS}
        for name, values in parse_selector(selector, "problemSelector"):
            if name not in (*allowed, "displayId"):
                raise violation("problemSelector", f"unknown or unsupported criterion {name!r}")
            upper = {v.upper() for v in values}
            if name in allowed and (unknown := sorted(upper - allowed[name])):
                raise violation(
                    "problemSelector",
                    f"{name}: unknown values {unknown}; expected one of {sorted(allowed[name])}",
                )
            filters[name] = filters[name] & upper if name in filters else upper
        return filters

    # -- GET /api/v2/problems -------------------------------------------------------------------------
    def _problems(self, args: MultiDict[str, str], now_ms: int) -> dict[str, Any]:
        fields = self._fields(args)
        if "nextPageKey" in args:
            others = sorted(set(args.keys()) - {"nextPageKey", "fields"})
            if others:
                raise DynatraceApiError(
                    400,
                    "Constraints violated.",
                    [
                        {
                            "path": name,
                            "message": "must not be set together with nextPageKey: the page key already "
                            "holds the query (only fields may be repeated)",
                            "parameterLocation": "QUERY",
                            "location": None,
                        }
                        for name in others
                    ],
                )
            query = self._decode_page_key(args["nextPageKey"])
        else:
            size_raw = args.get("pageSize", str(PROBLEMS_DEFAULT_PAGE_SIZE))
            if not size_raw.isdigit() or not 1 <= int(size_raw) <= PROBLEMS_MAX_PAGE_SIZE:
                raise violation("pageSize", f"{size_raw!r} must be between 1 and {PROBLEMS_MAX_PAGE_SIZE}")
            start = parse_time(args.get("from", DEFAULT_FROM), now_ms, "from")
            end = parse_time(args.get("to", "now"), now_ms, "to")
            if start >= end:
                raise violation("from", f"from ({_ms_iso(start)}) must be before to ({_ms_iso(end)})")
            query = {
                "problemSelector": args.get("problemSelector", ""),
                "entitySelector": args.get("entitySelector", ""),
                "from": start,
                "to": end,
                "pageSize": int(size_raw),
                "offset": 0,
            }
        filters = self.problem_filter(query["problemSelector"]) if query["problemSelector"] else {}
        entity_ids = self.select_entities(query["entitySelector"]) if query["entitySelector"] else None
        matches = []
        for problem in self.problems_now(now_ms):
            in_frame = query["from"] <= problem.start_ms <= query["to"] or (
                problem.end_ms != -1 and query["from"] <= problem.end_ms <= query["to"]
            )
            if not in_frame:
                continue
            if "status" in filters and problem.status not in filters["status"]:
                continue
            if "severityLevel" in filters and problem.severity not in filters["severityLevel"]:
                continue
            if "impactLevel" in filters and problem.impact not in filters["impactLevel"]:
                continue
            if "displayId" in filters and problem.display_id not in filters["displayId"]:
                continue
            if entity_ids is not None and not problem.entity_ids & entity_ids:
                continue
            matches.append(problem)
        offset, size = query["offset"], query["pageSize"]
        page = matches[offset : offset + size]
        body: dict[str, Any] = {
            "totalCount": len(matches),
            "pageSize": size,
            "problems": [p.to_json(fields) for p in page],
        }
        if offset + size < len(matches):
            body["nextPageKey"] = self._encode_page_key(query | {"offset": offset + size})
        return body

    @staticmethod
    def _fields(args: MultiDict[str, str]) -> list[str]:
        fields = [f.strip() for raw in args.getlist("fields") for f in raw.split(",") if f.strip()]
        if unknown := [f for f in fields if f.lstrip("+") not in PROBLEM_FIELDS]:
            raise violation("fields", f"unknown fields {unknown}; available: {list(PROBLEM_FIELDS)}")
        return [f.lstrip("+") for f in fields]

    @staticmethod
    def _encode_page_key(query: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(query, separators=(",", ":")).encode()).decode()

    @staticmethod
    def _decode_page_key(key: str) -> dict[str, Any]:
        try:
            query = json.loads(base64.urlsafe_b64decode(key.encode()))
            if not isinstance(query, dict) or set(query) != {
                "problemSelector", "entitySelector", "from", "to", "pageSize", "offset",
            }:  # fmt: skip
                raise ValueError("not a page key")
            return query
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise violation("nextPageKey", f"{key!r} is not a page key this API issued") from None

    # -- GET /api/v2/metrics/query ----------------------------------------------------------------------
    def _metrics(self, args: MultiDict[str, str], now_ms: int) -> dict[str, Any]:
        selector = args.get("metricSelector", "").strip()
        if not selector:
            raise violation("metricSelector", "must not be empty")
        match = _METRIC_KEY.match(selector)
        if not match:
            raise violation("metricSelector", f"{selector!r} does not start with a metric key")
        key, rest = match.groups()
        if key != ERROR_RATE_METRIC:
            raise DynatraceApiError(
                404, f"Metric selector {selector!r}: the metric key {key!r} is not known to this environment"
            )
        fold = False
        position = 0
        for transform in _TRANSFORM.finditer(rest):
            if transform.start() != position:
                break
            position = transform.end()
            name, argument = transform.group(1), transform.group(2)
            if name == "avg" and argument is None:
                continue
            if name == "fold" and argument in (None, "", "avg"):
                fold = True
                continue
            raise violation(
                "metricSelector",
                f"transformation :{name}{'(' + argument + ')' if argument is not None else ''} is not "
                "emulated; fleetsim answers :avg and :fold(avg)",
            )
        if position != len(rest):
            raise violation("metricSelector", f"{selector!r}: cannot parse {rest[position:]!r}")

        start = parse_time(args.get("from", DEFAULT_FROM), now_ms, "from")
        end = parse_time(args.get("to", "now"), now_ms, "to")
        if start >= end:
            raise violation("from", f"from ({_ms_iso(start)}) must be before to ({_ms_iso(end)})")
        resolution_raw = args.get("resolution")
        if fold or (resolution_raw or "").lower() == "inf":
            slot_ms, resolution = None, "Inf"
        elif resolution_raw:
            res = _RESOLUTION.match(resolution_raw.strip())
            if not res or int(res.group(1)) < 1:
                raise violation(
                    "resolution", f"{resolution_raw!r} is not a resolution (e.g. 1m, 5m, 1h, 1d, Inf)"
                )
            slot_ms = int(res.group(1)) * _UNIT_SECONDS[res.group(2)] * 1000
            resolution = resolution_raw.strip()
        else:
            minutes = max(1, math.ceil((end - start) / 60_000 / METRIC_DEFAULT_POINTS))
            slot_ms, resolution = minutes * 60_000, f"{minutes}m"

        if args.get("entitySelector"):
            selected = self.select_entities(args["entitySelector"])
            kinds = {self.entities[i].type for i in selected}
            if kinds - {"SERVICE"}:
                raise violation(
                    "entitySelector",
                    f"selects {sorted(kinds)} entities; {key} has only the dimension dt.entity.service",
                )
            services = [e for e in self.services.values() if e.id in selected]
        else:
            services = list(self.services.values())

        if slot_ms is None:
            slots = [(start, end)]
        else:
            first = start - start % slot_ms
            count = math.ceil((end - first) / slot_ms)
            if count > METRIC_MAX_POINTS_PER_SERIES:
                raise violation(
                    "resolution",
                    f"{resolution} over {_ms_iso(start)}..{_ms_iso(end)} gives {count} data points per "
                    f"series; at most {METRIC_MAX_POINTS_PER_SERIES} are allowed",
                )
            slots = [(first + k * slot_ms, first + (k + 1) * slot_ms) for k in range(count)]
        data = []
        for service in sorted(services, key=lambda e: e.id):
            baseline, steps = self.rate_steps(service)
            values: list[float | None] = []
            for slot_start, slot_end in slots:
                upto = min(slot_end, now_ms)
                values.append(
                    None
                    if upto <= slot_start
                    else round(self.average_rate(baseline, steps, slot_start, upto), 6)
                )
            data.append(
                {
                    "dimensions": [service.id],
                    "dimensionMap": {"dt.entity.service": service.id},
                    "timestamps": [slot_end for _, slot_end in slots],
                    "values": values,
                }
            )
        return {
            "totalCount": 1,
            "nextPageKey": None,
            "resolution": resolution,
            "result": [
                {
                    "metricId": selector,
                    "dataPointCountRatio": round(len(slots) * len(data) / 10_000_000, 7),
                    "dimensionCountRatio": round(len(data) / 100_000, 5),
                    "data": data,
                }
            ],
        }
