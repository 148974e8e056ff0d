"""The CrowdStrike Falcon API as FalconPy 1.6.6 speaks it: OAuth2 tokens, hosts, host groups, policies,
alerts, exclusions, the sensor-update kernels and the Sensor Download API.

Served here: ``/oauth2/token`` and ``/oauth2/revoke``; ``/devices/queries/devices/v1`` (offset paging,
``limit + offset`` below 10,000), ``/devices/queries/devices-scroll/v1`` (opaque offset tokens that
expire after two minutes), ``/devices/entities/devices/v2`` (POST up to 5,000 ids, GET up to 100);
``/policy/combined/sensor-update-kernels/v1``, ``/policy/queries/sensor-update-kernels/{field}/v1`` and
``/policy/combined/sensor-update-builds/v1``. Each other service has its module, whose routes this app
serves: :mod:`~fleetsim.falcon.host_groups`, :mod:`~fleetsim.falcon.policies` (prevention and sensor
update), :mod:`~fleetsim.falcon.alerts`, :mod:`~fleetsim.falcon.exclusions` (ML and IOA),
:mod:`~fleetsim.falcon.installers` (Sensor Download: installers, their bytes, the CCID); their state
per customer is :mod:`~fleetsim.falcon.backend`'s. Every answer is Falcon's envelope
``{"meta": {query_time, powered_by, trace_id[, pagination]}, "resources": [...], "errors": [...]}``.

The traps FalconPy sets for an emulator are honoured: the token endpoint answers **201** (FalconPy
treats 200 as a failed login), and no answer ever carries ``X-Cs-Region`` (FalconPy would rewrite its
base URL to the real cloud). Requests without a bearer token this emulator issued (and that has not
expired) get 401.

API clients and tenant visibility. Falcon scopes every API client to one customer (CID); an MSSP
parent client may act for a child CID by passing ``member_cid`` with the token request. Here:

* ``scenario.falcon.client_id`` / ``client_secret`` is the MSSP parent: it sees every tenant's hosts
  (and host groups, policies, exclusions, alerts), or only one tenant's when the token request names
  that tenant's CID as ``member_cid``; what it creates without a ``member_cid`` goes to its own CID,
  where no tenant device is;
* ``<tenant id>`` with the same secret is that tenant's own API client: it sees only the tenant's
  hosts (cid = ``fleetsim.seed.falcon_cid(tenant)``), and a ``member_cid`` other than its own is refused.

Device records are built from the fleet at request time (after applying every cloud's finished
effects), so a kernel installed and booted through any cloud shows up at once in ``kernel_version``
and, when the sensor does not support the new kernel, in ``reduced_functionality_mode: "yes"``; a
sensor installed through a cloud's agent (``FleetState.install_falcon_sensor``) appears once it has
registered. A host whose sensor was reinstalled (``falcon.stale_device_id``) also has an older, stale
record with the same hostname and cloud identity. Calls are counted as ``falcon.<operation>``
(``falcon.oauth2.token``, ``falcon.QueryDevicesByFilter``, ``falcon.GetDeviceDetails``,
``falcon.queryCombinedHostGroups``, ``falcon.performGroupAction``, ``falcon.GetQueriesAlertsV2``, ...).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from fleetsim.falcon import fql
from fleetsim.falcon.alerts import AlertResponses, DetectionEvent, Detections
from fleetsim.falcon.backend import FalconBackend
from fleetsim.falcon.devices import device_field
from fleetsim.falcon.exclusions import IOA, ML, ExclusionResponses
from fleetsim.falcon.host_groups import HostGroupResponses
from fleetsim.falcon.installers import InstallerResponses
from fleetsim.falcon.policies import PREVENTION, SENSOR_UPDATE, PolicyResponses
from fleetsim.falcon.wire import DEFAULT_LIMIT, ApiError, Token, digest, filtered, int_arg, iso, short_cid
from fleetsim.fleet import FleetState
from fleetsim.scenario import DetectionSeed, KernelSupport, host_names
from fleetsim.seed import falcon_cid

# Documented limits of the real API (FalconPy's endpoint definitions and CrowdStrike's docs).
TOKEN_LIFETIME_SECONDS = 1799
DEVICE_QUERY_MAX_LIMIT = 5000  # QueryDevicesByFilter limit 1-5000
DEVICE_QUERY_WINDOW = 10000  # QueryDevicesByFilter: limit + offset must be less than 10000
DEVICE_SCROLL_MAX_LIMIT = 10000  # QueryDevicesByFilterScroll limit 1-10000
SCROLL_TOKEN_SECONDS = 120  # a scroll offset token expires two minutes after it was issued
DEVICE_DETAILS_MAX_IDS = 5000  # PostDeviceDetailsV2
DEVICE_DETAILS_GET_MAX_IDS = 100  # GetDeviceDetailsV2
KERNELS_MAX_LIMIT = 500  # queryCombinedSensorUpdateKernels / querySensorUpdateKernelsDistinct limit 1-500
REQUESTS_PER_MINUTE = 6000  # per customer account, sliding window
BUILD_PLATFORMS = ("windows", "mac", "linux", "linuxarm64", "zlinux")

KERNEL_FIELDS = (
    "id", "vendor", "distro", "distro_version", "architecture", "flavor", "release", "version",
    "base_package_supported_sensor_versions", "ztl_supported_sensor_versions",
    "ztl_module_supported_sensor_versions", "created_timestamp", "modified_timestamp",
)  # fmt: skip

_KERNEL_FIELD = fql.field_checker(KERNEL_FIELDS)
_DISTINCT_PATH = re.compile(r"^/policy/queries/sensor-update-kernels/([^/]+)/v1$")


@dataclass
class ScrollCursor:
    """Where a scroll offset token points: the ids the first page matched, and the next position."""

    client_id: str
    ids: list[str]
    position: int
    expires_at: float


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in version.split("."))


def _short_version(version: str) -> str:
    return ".".join(version.split(".")[:3])


# -- kernel support records -------------------------------------------------------------------------
def _distro(kernel: KernelSupport) -> str:
    if kernel.distro:
        return kernel.distro
    release = kernel.release
    if m := re.search(r"\.el(\d+)", release):
        return f"{'centos' if kernel.vendor.lower() == 'centos' else 'rhel'}{m.group(1)}"
    if m := re.search(r"\.(amzn\d+)", release):
        return m.group(1)
    return kernel.vendor.lower()


def _distro_version(kernel: KernelSupport, distro: str) -> str:
    if m := re.search(r"\.el(\d+)(?:_(\d+))?", kernel.release):
        return f"{m.group(1)}.{m.group(2)}" if m.group(2) else m.group(1)
    if m := re.fullmatch(r"ubuntu(\d\d)", distro):
        return f"{m.group(1)}.04"
    if m := re.fullmatch(r"amzn(\d+)", distro):
        return m.group(1)
    return ""


def _flavor(kernel: KernelSupport) -> str:
    tail = kernel.release.rsplit("-", 1)[-1]
    return tail if kernel.vendor.lower() == "ubuntu" and tail.isalpha() else ""


def _build_string(kernel: KernelSupport) -> str:
    if kernel.vendor.lower() == "ubuntu":
        abi = kernel.release.split("-")[1] if kernel.release.count("-") >= 1 else "1"
        return f"#{abi}-Ubuntu SMP"
    return "#1 SMP PREEMPT_DYNAMIC" if re.search(r"\.el9", kernel.release) else "#1 SMP"


def kernel_record(kernel: KernelSupport, created: float) -> dict[str, Any]:
    """One record of ``queryCombinedSensorUpdateKernels`` for a kernel of the scenario's table."""
    distro = _distro(kernel)
    return {
        "id": digest("kernel", kernel.vendor, kernel.release, kernel.architecture)[:32],
        "vendor": kernel.vendor,
        "distro": distro,
        "distro_version": _distro_version(kernel, distro),
        "architecture": kernel.architecture,
        "flavor": _flavor(kernel),
        "release": kernel.release,
        "version": _build_string(kernel),
        "base_package_supported_sensor_versions": list(kernel.base_package_supported_sensor_versions),
        "ztl_supported_sensor_versions": list(kernel.ztl_supported_sensor_versions),
        "ztl_module_supported_sensor_versions": list(kernel.ztl_module_supported_sensor_versions),
        "created_timestamp": iso(created),
        "modified_timestamp": iso(created),
    }


# -- the API ----------------------------------------------------------------------------------------
Handler = Callable[[Request, Token], Response]


class FalconApi:
    """The Falcon API over the fleet state (a WSGI app for fleetsim's server)."""

    # Narrow enough for the Alerts API not to take an S3 path-style request to a bucket named "alerts".
    PREFIXES = (
        "/oauth2/",
        "/devices/",
        "/policy/",
        "/alerts/queries/",
        "/alerts/entities/",
        "/sensors/combined/installers/",
        "/sensors/queries/installers/",
        "/sensors/entities/installers/",
        "/sensors/entities/download-installer/",
    )

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self.requests_per_minute = REQUESTS_PER_MINUTE
        seed = state.scenario.falcon
        self.parent_client = seed.client_id
        self.secret = seed.client_secret
        self.tenant_cids = {t.id: falcon_cid(t.id) for t in state.scenario.tenants}
        self.started = state.clock()
        published = state.scenario.last_scan.timestamp() - 30 * 86400
        self.kernels = [kernel_record(k, published) for k in seed.kernels]
        self.tokens: dict[str, Token] = {}
        self.cursors: dict[str, ScrollCursor] = {}
        self.windows: dict[str, deque[float]] = {}
        self._local = threading.local()  # the start of the request each server thread is answering
        # Each customer's host groups, policies, exclusions and alerts; detections raised as the clock
        # passes them, whoever advances the fleet.
        self.backend = FalconBackend(state, self.started, self.parent_client)
        # The Falcon cloud the clouds' install paths reach from a host (fleetsim.falcon.falcon_installer).
        state.falcon = self
        self.detections = Detections(self)
        state.on_advance(self.detections.advance)
        self.routes: dict[tuple[str, str], tuple[str, Handler]] = {
            ("POST", "/oauth2/token"): ("oauth2.token", self.oauth2_token),
            ("POST", "/oauth2/revoke"): ("oauth2.revoke", self.oauth2_revoke),
            ("GET", "/devices/queries/devices/v1"): ("QueryDevicesByFilter", self.query_devices),
            ("GET", "/devices/queries/devices-scroll/v1"): (
                "QueryDevicesByFilterScroll",
                self.scroll_devices,
            ),
            ("POST", "/devices/entities/devices/v2"): ("GetDeviceDetails", self.device_details),
            ("GET", "/devices/entities/devices/v2"): ("GetDeviceDetailsV2", self.device_details_get),
            ("GET", "/policy/combined/sensor-update-kernels/v1"): (
                "queryCombinedSensorUpdateKernels",
                self.combined_kernels,
            ),
            ("GET", "/policy/combined/sensor-update-builds/v1"): (
                "queryCombinedSensorUpdateBuilds",
                self.combined_builds,
            ),
        }
        self.installers = InstallerResponses(self)
        for service in (
            self.installers,
            HostGroupResponses(self),
            PolicyResponses(self, PREVENTION),
            PolicyResponses(self, SENSOR_UPDATE),
            ExclusionResponses(self, ML),
            ExclusionResponses(self, IOA),
            AlertResponses(self),
        ):
            self.routes.update(service.routes())

    def handles(self, path: str) -> bool:
        return path.startswith(self.PREFIXES)

    # -- WSGI -------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self._local.started = time.perf_counter()
        operation, handler = self._route(request)
        with self.state.lock:
            self.state.calls[f"falcon.{operation}"] += 1
        try:
            if handler is None:
                raise ApiError(404, f"no route {request.method} {request.path}")
            if operation.startswith("oauth2."):
                response = handler(request, None)  # type: ignore[arg-type]
            else:
                token = self._authenticate(request)
                limit_headers = self._rate_limit(token)
                self.state.advance()  # every cloud's finished effects (kernel boots, installs) first
                with self.state.lock:
                    response = handler(request, token)
                response.headers.update(limit_headers)
        except ApiError as exc:
            response = self.reply(
                [], status=exc.status, errors=[{"code": exc.status, "message": exc.message}]
            )
            response.headers.update(exc.headers)
        return response(environ, start_response)

    def _route(self, request: Request) -> tuple[str, Handler | None]:
        method, path = request.method, request.path
        if (method, path) in self.routes:
            return self.routes[(method, path)]
        if method == "GET" and _DISTINCT_PATH.match(path):
            return "querySensorUpdateKernelsDistinct", self.distinct_kernels
        return "unknown", None

    # -- envelope ---------------------------------------------------------------------------------
    def reply(
        self,
        resources: list[Any],
        *,
        status: int = 200,
        pagination: dict[str, Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> Response:
        trace_id = str(uuid.uuid4())
        started = getattr(self._local, "started", None)
        query_time = round(time.perf_counter() - started, 6) if started is not None else 0.0
        meta: dict[str, Any] = {
            "query_time": query_time,
            "powered_by": "fleetsim-falcon",
            "trace_id": trace_id,
        }
        if pagination is not None:
            meta["pagination"] = pagination
        body = {"meta": meta, "resources": resources, "errors": errors or []}
        response = Response(json.dumps(body), status, mimetype="application/json")
        response.headers["X-Cs-Traceid"] = trace_id
        return response

    # -- auth ---------------------------------------------------------------------------------------
    def oauth2_token(self, request: Request, _: Token | None) -> Response:
        client_id = request.form.get("client_id", "")
        secret = request.form.get("client_secret", "")
        member_cid = request.form.get("member_cid", "").strip()
        value = self.issue_token(client_id, secret, member_cid)
        body = {"access_token": value, "token_type": "bearer", "expires_in": TOKEN_LIFETIME_SECONDS}
        # 201, as the real endpoint answers; and never an X-Cs-Region header.
        return Response(json.dumps(body), 201, mimetype="application/json")

    def issue_token(self, client_id: str, secret: str, member_cid: str = "") -> str:
        """A bearer token for an API client (``POST /oauth2/token``; also what an installer running on a
        host gets with the credentials it was given). Raises ApiError 400/403 as the endpoint answers."""
        if not client_id or not secret:
            raise ApiError(400, "client_id and client_secret are required")
        all_cids = {short_cid(c) for c in self.tenant_cids.values()}
        if client_id == self.parent_client and secrets.compare_digest(secret, self.secret):
            cids: frozenset[str] | None = None
            if member_cid:
                if short_cid(member_cid) not in all_cids:
                    raise ApiError(
                        403, f"access denied, member_cid {member_cid!r} is not a child of this CID"
                    )
                cids = frozenset({short_cid(member_cid)})
        elif client_id in self.tenant_cids and secrets.compare_digest(secret, self.secret):
            own = short_cid(self.tenant_cids[client_id])
            if member_cid and short_cid(member_cid) != own:
                raise ApiError(403, f"access denied, member_cid {member_cid!r} is not a child of this CID")
            cids = frozenset({own})
        else:
            raise ApiError(403, "Failed to issue access token - Not Authorized")
        value = secrets.token_hex(24)
        with self.state.lock:
            self.tokens[value] = Token(client_id, cids, self.state.clock() + TOKEN_LIFETIME_SECONDS)
        return value

    def token(self, value: str) -> Token | None:
        """The unexpired token this emulator issued with that value, or None."""
        with self.state.lock:
            token = self.tokens.get(value)
            if token is not None and token.expires_at <= self.state.clock():
                return None
            return token

    def oauth2_revoke(self, request: Request, _: Token | None) -> Response:
        with self.state.lock:
            self.tokens.pop(request.form.get("token", ""), None)
        return self.reply([])

    def _authenticate(self, request: Request) -> Token:
        header = request.headers.get("Authorization", "")
        value = header[7:].strip() if header[:7].lower() == "bearer " else ""
        with self.state.lock:
            token = self.tokens.get(value)
            if token is not None and token.expires_at <= self.state.clock():
                del self.tokens[value]
                token = None
        if token is None:
            raise ApiError(401, "access denied, authorization failed")
        return token

    def _rate_limit(self, token: Token) -> dict[str, str]:
        with self.state.lock:
            now = self.state.clock()
            window = self.windows.setdefault(token.client_id, deque())
            while window and window[0] <= now - 60:
                window.popleft()
            limit = self.requests_per_minute
            if len(window) >= limit:
                retry_at = int(window[0] + 60) + 1
                raise ApiError(
                    429,
                    "API rate limit exceeded.",
                    {
                        "X-RateLimit-Limit": str(limit),
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-RetryAfter": str(retry_at),
                    },
                )
            window.append(now)
            return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(limit - len(window))}

    # -- hosts --------------------------------------------------------------------------------------
    def devices(self, token: Token) -> list[dict[str, Any]]:
        """Every device record the token's CIDs see, live from the fleet, ordered by device id."""
        now = self.state.clock()
        return [d.record for d in self.backend.devices(now, self.backend.visible_cids(token))]

    def author(self, token: Token) -> str:
        """Who a write is recorded as made by (``created_by``, ``modified_by``): the API client."""
        return f"api-client-id:{token.client_id}"

    def schedule_detection(self, raw: Any) -> dict[str, Any]:
        """Raise detections as a scenario's ``detections`` entry would, timed from now (the control plane's
        ``POST /fleetsim/falcon/detections``: ``{"tenant": ..., "host": ..., "process": {...}, ...}``).
        Raises ValueError for a body that is not such an entry or names no host of the tenant."""
        if not isinstance(raw, dict):
            raise ValueError("body must be a JSON object naming the tenant and a detection")
        body = dict(raw)
        tenant = next((t for t in self.state.scenario.tenants if t.id == body.pop("tenant", None)), None)
        if tenant is None:
            raise ValueError(f"tenant {raw.get('tenant')!r} is not a tenant of the scenario")
        seed = DetectionSeed.model_validate(body)
        if seed.host not in host_names(tenant):
            raise ValueError(f"host {seed.host!r} is not a host of tenant {tenant.id!r}")
        with self.state.lock:
            now = self.state.clock()
            schedule = self.detections.schedule
            for i in range(seed.count):
                at = now + seed.at_seconds + i * seed.every_seconds
                schedule.push(DetectionEvent(at, schedule.next_seq(), tenant.id, seed, host_name=seed.host))
        return {"scheduled": seed.count, "first_at": iso(now + seed.at_seconds)}

    def snapshot(self) -> dict[str, Any]:
        """Each customer's host groups, policies, exclusions (with their history and comments) and alert
        count, and the detections not raised with why (fleetsim's ``GET /fleetsim/falcon``)."""
        self.state.advance()
        with self.state.lock:
            customers = {cid: c.snapshot() for cid, c in sorted(self.backend.customers.items())}
            return {
                "tenant_cids": dict(self.backend.tenant_cids),
                "customers": customers,
                "skipped_detections": list(self.detections.skipped),
            }

    def query_devices(self, request: Request, token: Token) -> Response:
        limit = int_arg(request, "limit", default=DEFAULT_LIMIT, low=1, high=DEVICE_QUERY_MAX_LIMIT)
        offset = int_arg(request, "offset", default=0, low=0, high=None)
        if offset + limit >= DEVICE_QUERY_WINDOW:
            raise ApiError(400, f"limit + offset must be less than {DEVICE_QUERY_WINDOW}")
        ids = [r["device_id"] for r in filtered(self.devices(token), request, device_field)]
        return self.reply(
            ids[offset : offset + limit], pagination={"offset": offset, "limit": limit, "total": len(ids)}
        )

    def scroll_devices(self, request: Request, token: Token) -> Response:
        limit = int_arg(request, "limit", default=DEFAULT_LIMIT, low=1, high=DEVICE_SCROLL_MAX_LIMIT)
        offset = request.args.get("offset", "")
        with self.state.lock:
            now = self.state.clock()
            for key in [k for k, c in self.cursors.items() if c.expires_at <= now]:
                del self.cursors[key]
            cursor = self.cursors.get(offset) if offset else None
        if offset and (cursor is None or cursor.client_id != token.client_id):
            raise ApiError(
                400, f"invalid or expired offset {offset!r}: scroll offsets expire after 2 minutes"
            )
        if cursor is not None:
            ids, position = cursor.ids, cursor.position
        else:
            ids = [r["device_id"] for r in filtered(self.devices(token), request, device_field)]
            position = 0
        page = ids[position : position + limit]
        next_offset = secrets.token_urlsafe(24)
        expires = now + SCROLL_TOKEN_SECONDS
        with self.state.lock:
            self.cursors[next_offset] = ScrollCursor(token.client_id, ids, position + len(page), expires)
        pagination = {
            "offset": next_offset,
            "limit": limit,
            "total": len(ids),
            "expires_at": int(expires * 1_000_000_000),
        }
        return self.reply(page, pagination=pagination)

    def _details(self, ids: list[Any], token: Token, cap: int) -> Response:
        if not ids:
            raise ApiError(400, "ids: at least one device id is required")
        if len(ids) > cap:
            raise ApiError(400, f"ids: {len(ids)} given, at most {cap} device ids per request")
        by_id = {r["device_id"]: r for r in self.devices(token)}
        found = [by_id[i] for i in ids if isinstance(i, str) and i in by_id]
        errors = [
            {"code": 404, "message": f"device {i!r} not found", "id": i}
            for i in ids
            if not (isinstance(i, str) and i in by_id)
        ]
        return self.reply(found, status=200 if found else 404, errors=errors)

    def device_details(self, request: Request, token: Token) -> Response:
        try:
            body = json.loads(request.get_data(as_text=True) or "{}")
        except json.JSONDecodeError as exc:
            raise ApiError(400, f"request body is not JSON: {exc}") from None
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            raise ApiError(400, 'request body must be {"ids": [...]}')
        return self._details(ids, token, DEVICE_DETAILS_MAX_IDS)

    def device_details_get(self, request: Request, token: Token) -> Response:
        ids = [i for raw in request.args.getlist("ids") for i in raw.split(",") if i]
        return self._details(ids, token, DEVICE_DETAILS_GET_MAX_IDS)

    # -- sensor update policies ---------------------------------------------------------------------
    def combined_kernels(self, request: Request, token: Token) -> Response:
        limit = int_arg(request, "limit", default=DEFAULT_LIMIT, low=1, high=KERNELS_MAX_LIMIT)
        offset = int_arg(request, "offset", default=0, low=0, high=None)
        rows = filtered(self.kernels, request, _KERNEL_FIELD)
        return self.reply(
            rows[offset : offset + limit], pagination={"offset": offset, "limit": limit, "total": len(rows)}
        )

    def distinct_kernels(self, request: Request, token: Token) -> Response:
        match = _DISTINCT_PATH.match(request.path)
        field = match.group(1) if match else ""
        if field not in KERNEL_FIELDS:
            raise ApiError(400, f"invalid distinct field {field!r}; one of {', '.join(KERNEL_FIELDS)}")
        limit = int_arg(request, "limit", default=DEFAULT_LIMIT, low=1, high=KERNELS_MAX_LIMIT)
        offset = int_arg(request, "offset", default=0, low=0, high=None)
        values: set[str] = set()
        for row in filtered(self.kernels, request, _KERNEL_FIELD):
            value = row[field]
            values.update(value if isinstance(value, list) else [value])
        ordered = sorted(values)
        return self.reply(
            ordered[offset : offset + limit],
            pagination={"offset": offset, "limit": limit, "total": len(ordered)},
        )

    def combined_builds(self, request: Request, token: Token) -> Response:
        platform = request.args.get("platform", "")
        if platform not in BUILD_PLATFORMS:
            raise ApiError(400, f"invalid platform {platform!r}; one of {', '.join(BUILD_PLATFORMS)}")
        stages = request.args.getlist("stage") or ["prod"]
        rows = self.build_rows(platform) if "prod" in stages else []
        return self.reply(rows, pagination={"offset": 0, "limit": len(rows), "total": len(rows)})

    def build_rows(self, platform: str) -> list[dict[str, Any]]:
        """``queryCombinedSensorUpdateBuilds``' production builds for a platform (``linux``,
        ``windows``), newest first: each version's build number, and the three newest also as their
        ``<build>|n[-k]|tagged|<k+1>`` alias."""
        if platform not in ("windows", "linux"):
            return []
        versions = self._sensor_versions("Windows" if platform == "windows" else "Linux")
        rows: list[dict[str, Any]] = []
        for i, version in enumerate(sorted(versions, key=_version_key, reverse=True)):
            build = version.rsplit(".", 1)[-1]
            if i < 3:
                tag = "n" if i == 0 else f"n-{i}"
                alias = f"{build}|{tag}|tagged|{i + 1}"
                rows.append(
                    {"build": alias, "platform": platform, "sensor_version": version, "stage": "prod"}
                )
            rows.append({"build": build, "platform": platform, "sensor_version": version, "stage": "prod"})
        return rows

    def _sensor_versions(self, platform_type: str) -> set[str]:
        """Sensor versions (major.minor.build) the scenario mentions for a platform."""
        seed = self.state.scenario.falcon
        versions = {_short_version(seed.default_sensor_version)}
        with self.state.lock:
            for host in self.state.hosts.values():
                if host.falcon is not None and host.platform.platform_type == platform_type:
                    versions.add(_short_version(host.falcon.version))
        if platform_type == "Linux":
            for kernel in seed.kernels:
                versions.update(
                    _short_version(v)
                    for v in (
                        *kernel.base_package_supported_sensor_versions,
                        *kernel.ztl_supported_sensor_versions,
                        *kernel.ztl_module_supported_sensor_versions,
                    )
                )
        return versions
