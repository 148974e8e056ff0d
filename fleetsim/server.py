"""One loopback HTTP endpoint for every emulated cloud, plus fleetsim's own control plane.

Routing: ``/fleetsim/*`` is fleetsim's control plane (health, ground truth, call counts, what the
vendors recorded: ``/fleetsim/pagerduty``, ``/fleetsim/falcon``); everything
else is AWS, served by moto with fleetsim's add-ons installed. Every request is counted by service and
action so tests and benchmarks can compare the calls made with the physical minimum.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from fleetsim.aws import audit
from fleetsim.aws import cloudtrail as cloudtrail_addon
from fleetsim.aws import ec2 as ec2_addon
from fleetsim.aws import ec2_tags as ec2_tags_addon
from fleetsim.aws import identity_center as identity_center_addon
from fleetsim.aws import rds as rds_addon
from fleetsim.aws import root_volume as root_volume_addon
from fleetsim.aws import saml as saml_addon
from fleetsim.aws import ssm as ssm_addon
from fleetsim.aws.seed import seed_aws, seed_evidence_buckets, seed_identity
from fleetsim.fleet import FleetState
from fleetsim.identity_providers import seed_identity_providers
from fleetsim.scenario import Scenario
from fleetsim.seed import seed_azure_and_gcp, seed_falcon
from fleetsim.smtp import MailSink
from fleetsim.terraform.apply import AppliedRoot
from fleetsim.terraform.play import apply_terraform, make_console_edits

log = logging.getLogger(__name__)

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


def _aws_call_name(environ: dict[str, Any]) -> str:
    """Name an AWS request as ``aws.<service>.<Action>`` from its signature and target or form."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    match = _CREDENTIAL_SCOPE.search(auth)
    service = match.group(2) if match else "unknown"
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return f"aws.{service}.{target.rsplit('.', 1)[-1]}"
    if service == "s3":
        return f"aws.s3.{environ.get('REQUEST_METHOD', 'GET')}"
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if not action and environ.get("REQUEST_METHOD") == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    return f"aws.{service}.{action[0] if action else environ.get('REQUEST_METHOD', '?')}"


class _QuietRequestHandler(MotoRequestHandler):
    """Log only failed requests; a cycle makes thousands of successful ones."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if str(code).startswith(("4", "5")):
            super().log_request(code, size)


# The non-AWS vendors, each a WSGI app over the shared fleet state: "module:Class". Each class takes
# the FleetState, answers ``handles(path) -> bool`` and counts its own calls in ``state.calls``.
VENDOR_APIS: tuple[str, ...] = (
    "fleetsim.azure.arm:ArmApi",
    "fleetsim.azure.attestation:AttestationApi",
    "fleetsim.azure.graph_saml:GraphSamlApi",
    # Before OS Config, which takes every /v1/projects/ path: Resource Manager's projects/{id}:getAncestry.
    "fleetsim.gcp.workforce:WorkforceApi",
    "fleetsim.gcp.osconfig:OsConfigApi",
    "fleetsim.gcp.compute:ComputeApi",
    "fleetsim.falcon.api:FalconApi",
    "fleetsim.dynatrace:DynatraceApi",
    "fleetsim.pagerduty:PagerDutyApi",
    "fleetsim.feeds:FeedsApi",
)


def _vendor_apis(state: FleetState) -> list[Any]:
    import importlib

    apis = []
    for spec in VENDOR_APIS:
        module, _, name = spec.partition(":")
        apis.append(getattr(importlib.import_module(module), name)(state))
    return apis


class FleetsimApp:
    """The WSGI application: control plane first, then the vendors by path, then AWS (moto)."""

    def __init__(self, state: FleetState, mail: MailSink | None = None) -> None:
        self.state = state
        self.mail = mail
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.vendors = _vendor_apis(state)
        self.started_at = time.time()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/fleetsim/"):
            return self.control(Request(environ))(environ, start_response)
        for vendor in self.vendors:
            if vendor.handles(path):
                return vendor(environ, start_response)
        name = _aws_call_name(environ)
        with self.state.lock:
            self.state.calls[name] += 1
        try:
            call = audit.begin(environ)
        except Exception:  # a request CloudTrail cannot read is still served (and not recorded)
            log.exception("fleetsim: cannot read %s for CloudTrail", name)
            call = None
        if call is None:
            return self.moto(environ, start_response)
        recorder = audit.Recorder(call)
        return recorder.answered(self.moto(environ, recorder.start_response(start_response)))

    def control(self, request: Request) -> Response:
        route = request.path.removeprefix("/fleetsim/").rstrip("/")
        if route == "health":
            body: Any = {
                "status": "ok",
                "hosts": len(self.state.hosts),
                "uptime_s": time.time() - self.started_at,
            }
        elif route == "ground-truth":
            body = self.state.ground_truth(request.args.get("tenant"))
        elif route == "mail":
            body = {
                "smtp_port": self.mail.port if self.mail else None,
                "messages": self.mail.messages if self.mail else [],
            }
        elif route == "pagerduty" and request.method == "GET":
            body = self._pagerduty().snapshot()
        elif route == "falcon" and request.method == "GET":
            # Each Falcon customer's groups, policies, exclusions with who made them and why, alerts.
            body = self._falcon().snapshot()
        elif route == "falcon/detections" and request.method == "POST":
            # A Falcon sensor raises detections, timed from now (a scenario's detections entry).
            try:
                body = self._falcon().schedule_detection(json.loads(request.get_data() or b"{}"))
            except ValueError as exc:  # not JSON, or not a detection (pydantic's error is a ValueError)
                return Response(json.dumps({"error": str(exc)}), 400, mimetype="application/json")
        elif route == "faults/clear" and request.method == "POST":
            # The repair a person makes between two runs (a fixed repository, a host brought back).
            names = (json.loads(request.get_data() or b"{}")).get("hosts") or []
            with self.state.lock:
                body = {"cleared": self.state.clear_faults(names)}
        elif route == "kev" and request.method == "POST":
            # CISA adds an entry to the KEV catalog (fleetsim.feeds; made-up test data).
            try:
                body = self._feeds().add(json.loads(request.get_data() or b"{}"))
            except ValueError as exc:  # not JSON, or not a listing (pydantic's error is a ValueError)
                return Response(json.dumps({"error": str(exc)}), 400, mimetype="application/json")
        elif route == "calls" and request.method == "GET":
            with self.state.lock:
                body = {"calls": dict(sorted(self.state.calls.items()))}
        elif route == "calls/reset" and request.method == "POST":
            with self.state.lock:
                body = {"calls": dict(sorted(self.state.calls.items()))}
                self.state.calls = Counter()
        else:
            return Response(
                json.dumps({"error": f"no route {request.path}"}), 404, mimetype="application/json"
            )
        return Response(json.dumps(body, default=str), 200, mimetype="application/json")

    def _feeds(self) -> Any:
        """The threat feeds (KEV, EPSS) fleetsim serves at ``/feeds/``."""
        from fleetsim.feeds import FeedsApi

        return next(v for v in self.vendors if isinstance(v, FeedsApi))

    def _falcon(self) -> Any:
        """The Falcon API, whose customers' state ``/fleetsim/falcon`` serves."""
        from fleetsim.falcon.api import FalconApi

        return next(v for v in self.vendors if isinstance(v, FalconApi))

    def _pagerduty(self) -> Any:
        """The PagerDuty Events API, whose incidents and events ``/fleetsim/pagerduty`` serves."""
        from fleetsim.pagerduty import PagerDutyApi

        return next(v for v in self.vendors if isinstance(v, PagerDutyApi))


class FleetsimServer:
    """fleetsim on 127.0.0.1: seeded from a scenario, served from a thread or the foreground."""

    def __init__(self, scenario: Scenario, port: int = 0, host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"fleetsim listens on loopback only, not {host!r}")
        self.scenario = scenario
        # moto's backends are process-wide; a new fleetsim starts from an empty cloud.
        moto_api_backend.reset()
        audit.forget_identities()
        self.state = FleetState(scenario)
        # CloudTrail's clock is the fleet's (a test may replace state.clock on a running server).
        cloudtrail_addon.install(lambda: self.state.clock())
        ssm_addon.install(self.state)
        ec2_addon.install(self.state)
        ec2_tags_addon.install()
        root_volume_addon.install(self.state)
        rds_addon.install(self.state)
        identity_center_addon.install(self.state)
        saml_addon.install(self.state)
        seed_aws(self.state, scenario)
        seed_azure_and_gcp(self.state, scenario)
        seed_falcon(self.state, scenario)
        self.mail = MailSink().start()
        self.app = FleetsimApp(self.state, self.mail)
        # SAML identity providers with certificates made now (IAM in moto, Graph, workforce pools).
        seed_identity_providers(scenario, self.app.vendors)
        self._server: BaseWSGIServer = make_server(
            host, port, self.app, threaded=True, request_handler=_QuietRequestHandler
        )
        self._thread: threading.Thread | None = None
        # The Terraform state each applied tenant root wrote (scenario terraform section), by tenant.
        self.applied: dict[str, AppliedRoot] = {}

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _seed_over_http(self) -> None:
        started = cloudtrail_addon.now()
        seed_evidence_buckets(self.scenario, self.url)
        seed_identity(self.scenario, self.url)
        cloudtrail_addon.forget_history()  # the cloud as it was before any of the scenario's activity
        self.applied = apply_terraform(self.scenario, self.url, started)
        make_console_edits(self.scenario, self.url, started, self.applied)
        with self.state.lock:  # the call counts are the clients' calls, not fleetsim's own seeding
            self.state.calls = Counter()

    def start(self) -> FleetsimServer:
        """Serve from a daemon thread (tests); returns once the buckets are seeded."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="fleetsim")
        self._thread.start()
        self._seed_over_http()
        return self

    def serve_forever(self, on_ready: Any = None) -> None:
        """Serve in the foreground (the CLI); ``on_ready`` runs once the endpoint answers."""
        thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="fleetsim")
        thread.start()
        self._seed_over_http()
        if on_ready:
            on_ready(self)
        thread.join()

    def stop(self) -> None:
        self.mail.stop()
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
