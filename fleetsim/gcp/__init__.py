"""fleetsim's Google Cloud: OS Config (VM Manager) and the slice of Compute Engine that snapshots disks.

Both speak the REST/JSON that Google's Python clients send with ``transport="rest"`` (the only
transport ``google-cloud-compute`` has). The GCE instances are the scenario's GCP hosts: project =
``host.account``, zone = ``host.region``, numeric instance id = ``host.host_id``, name = ``host.name``.
This module holds what both APIs share: the JSON error body, timestamps, page tokens, instance labels.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from werkzeug.wrappers import Request, Response

from fleetsim.fleet import FleetState, SimHost

# google.rpc.Code names by HTTP status, as Google's JSON error bodies carry them.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
}


class GcpError(Exception):
    """An error answer: HTTP status, google.rpc status name and a message that names the value."""

    def __init__(self, code: int, message: str, status: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.reason = reason  # Compute Engine's errors[].reason ("notFound", "alreadyExists", "invalid")

    def response(self) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.reason:
            error["errors"] = [{"message": self.message, "domain": "global", "reason": self.reason}]
        return json_response({"error": error}, self.code)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status, mimetype="application/json")


def json_body(request: Request) -> dict[str, Any]:
    raw = request.get_data(as_text=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise GcpError(400, f"Invalid JSON payload received: {exc}") from exc
    if not isinstance(body, dict):
        raise GcpError(400, f"Invalid JSON payload received: expected an object, got {raw[:80]!r}")
    return body


def rfc3339(seconds: float) -> str:
    """A wall-clock time as Google's JSON writes timestamps (UTC, ``Z``)."""
    return (
        dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


def page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"fleetsim:{offset}".encode()).decode()


def page_offset(token: str | None, field: str = "pageToken") -> int:
    """The offset a ``page_token`` encodes; 400 naming the token when it is not one of ours."""
    if not token:
        return 0
    try:
        prefix, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if prefix != "fleetsim":
            raise ValueError(prefix)
        return int(offset)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GcpError(400, f"Invalid {field} {token!r}") from exc


def gcp_hosts(state: FleetState, project: str) -> list[SimHost]:
    """The project's GCE instances, by zone then name."""
    hosts = [h for h in state.hosts.values() if h.cloud == "gcp" and h.account == project]
    return sorted(hosts, key=lambda h: (h.region, h.name))


def instance_labels(host: SimHost) -> dict[str, str]:
    """An instance's GCE labels: ``environment``, ``criticality``, ``tenant``, ``os-family`` (label-safe).

    A vendor module or test may override them in ``host.cloud_state["gcp_labels"]``.
    """
    labels = host.cloud_state.get("gcp_labels")
    if labels is not None:
        return dict(labels)

    def safe(value: str) -> str:
        return "".join(c if c.isalnum() or c in "-_" else "-" for c in value.lower())[:63]

    return {
        "environment": safe(host.environment),
        "criticality": safe(host.criticality),
        "tenant": safe(host.tenant),
        "os-family": safe(host.os_family.replace("_", "-")),
    }
