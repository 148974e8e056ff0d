"""Google Cloud IAM workforce identity federation (v1) and the one Resource Manager call that finds a
project's organization.

Each scenario tenant with a GCP fleet is its own organization (:func:`fleetsim.saml.organization_id`),
holding its SAML workforce pool providers:

* ``POST /v1/projects/{projectId}:getAncestry`` (cloudresourcemanager.googleapis.com):
  ``{"ancestor": [{"resourceId": {"type": "project", "id"}}, {"resourceId": {"type": "organization",
  "id"}}]}``, bottom to top.
* ``GET /v1/locations/global/workforcePools?parent=organizations/{org}&pageSize&pageToken``
  (iam.googleapis.com): ``{"workforcePools": [{"name", "parent", "displayName", "state", ...}],
  "nextPageToken"}``; ``parent`` is required (400 without); pageSize at most 100, default 50.
* ``GET /v1/locations/global/workforcePools/{pool}/providers?pageSize&pageToken``:
  ``{"workforcePoolProviders": [{"name", "displayName", "state": "ACTIVE", "disabled", "attributeMapping",
  "saml": {"idpMetadataXml"}}], "nextPageToken"}``; pageSize at most 100, default 50.
* ``PATCH /v1/locations/global/workforcePools/{pool}/providers/{provider}?updateMask=saml.idpMetadataXml``
  with the provider's new ``saml.idpMetadataXml``: a finished long-running operation (``done: true``)
  whose response is the provider. How a certificate is rolled in a test, as with ``gcloud iam
  workforce-pools providers update-saml --idp-metadata-path``.

Requests are anonymous, as fleetsim's other Google APIs. Calls are counted as
``gcp.resourcemanager.getAncestry``, ``gcp.iam.workforcePools.list``, ``gcp.iam.providers.list`` and
``gcp.iam.providers.patch``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from fleetsim.fleet import FleetState
from fleetsim.saml import WorkforceProviderSeed, organization_id, provider_metadata

_ANCESTRY = re.compile(r"^/v1/projects/(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9]):getAncestry$")
_POOLS = re.compile(r"^/v1/locations/global/workforcePools$")
_PROVIDERS = re.compile(
    r"^/v1/locations/global/workforcePools/(?P<pool>[^/]+)/providers(?:/(?P<provider>[^/]+))?$"
)
DEFAULT_PAGE = 50
MAX_PAGE = 100


def _error(status: int, reason: str, message: str) -> Response:
    body = {"error": {"code": status, "message": message, "status": reason}}
    return Response(json.dumps(body), status, mimetype="application/json")


@dataclass
class Pool:
    name: str  # locations/global/workforcePools/<id>
    organization: str
    providers: dict[str, dict[str, Any]]


class WorkforceApi:
    """Workforce pools and their SAML providers per tenant organization, and projects' ancestry."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self.project_org: dict[str, str] = {}
        self.pools: dict[str, Pool] = {}  # pool id -> pool

    def seed(
        self, tenant: str, project_ids: list[str], providers: list[WorkforceProviderSeed], now: dt.datetime
    ) -> None:
        org = organization_id(tenant)
        for project in project_ids:
            self.project_org[project] = org
        for seed in providers:
            pool = self.pools.setdefault(
                seed.pool, Pool(f"locations/global/workforcePools/{seed.pool}", f"organizations/{org}", {})
            )
            entity = f"https://idp.{tenant.replace('_', '-')}.example/{seed.provider}"
            document = provider_metadata(
                entity,
                seed.certificates,
                f"{tenant}-{seed.pool}-{seed.provider}",
                now,
                unparseable=seed.unparseable,
            )
            pool.providers[seed.provider] = {
                "name": f"{pool.name}/providers/{seed.provider}",
                "displayName": seed.provider,
                "state": "ACTIVE",
                "disabled": seed.disabled,
                "attributeMapping": {"google.subject": "assertion.subject"},
                "saml": {"idpMetadataXml": document},
            }

    # -- WSGI -------------------------------------------------------------------------------------
    def handles(self, path: str) -> bool:
        return bool(_ANCESTRY.match(path) or path.startswith("/v1/locations/global/workforcePools"))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._dispatch(Request(environ))(environ, start_response)

    def _count(self, name: str) -> None:
        with self.state.lock:
            self.state.calls[name] += 1

    def _dispatch(self, request: Request) -> Response:
        if match := _ANCESTRY.match(request.path):
            self._count("gcp.resourcemanager.getAncestry")
            return self._ancestry(request, match["project"])
        if _POOLS.match(request.path) and request.method == "GET":
            self._count("gcp.iam.workforcePools.list")
            return self._list_pools(request)
        match = _PROVIDERS.match(request.path)
        if match and match["provider"] is None and request.method == "GET":
            self._count("gcp.iam.providers.list")
            return self._list_providers(request, match["pool"])
        if match and match["provider"] and request.method == "PATCH":
            self._count("gcp.iam.providers.patch")
            return self._patch(request, match["pool"], match["provider"])
        self._count("gcp.iam.unknown")
        return _error(404, "NOT_FOUND", f"{request.method} {request.path} is not served")

    def _ancestry(self, request: Request, project: str) -> Response:
        if request.method != "POST":
            return _error(405, "METHOD_NOT_ALLOWED", "getAncestry is a POST")
        org = self.project_org.get(project)
        if org is None:
            return _error(
                403, "PERMISSION_DENIED", f"The caller does not have permission on project {project}"
            )
        ancestors = [
            {"resourceId": {"type": "project", "id": project}},
            {"resourceId": {"type": "organization", "id": org}},
        ]
        return Response(json.dumps({"ancestor": ancestors}), 200, mimetype="application/json")

    @staticmethod
    def _page(request: Request) -> tuple[int, int] | Response:
        try:
            size = int(request.args.get("pageSize") or DEFAULT_PAGE)
            start = int(request.args.get("pageToken") or 0)
        except ValueError:
            return _error(400, "INVALID_ARGUMENT", "pageSize and pageToken must be integers")
        return max(1, min(size, MAX_PAGE)), start

    def _list_pools(self, request: Request) -> Response:
        parent = request.args.get("parent")
        if not parent or not re.fullmatch(r"organizations/\d+", parent):
            return _error(400, "INVALID_ARGUMENT", "parent must be organizations/{org-id}")
        page = self._page(request)
        if isinstance(page, Response):
            return page
        size, start = page
        pools = [p for p in self.pools.values() if p.organization == parent]
        rows = [
            {
                "name": p.name,
                "parent": p.organization,
                "displayName": p.name.rsplit("/", 1)[1],
                "state": "ACTIVE",
                "sessionDuration": "3600s",
            }
            for p in pools[start : start + size]
        ]
        body: dict[str, Any] = {"workforcePools": rows}
        if start + size < len(pools):
            body["nextPageToken"] = str(start + size)
        return Response(json.dumps(body), 200, mimetype="application/json")

    def _list_providers(self, request: Request, pool_id: str) -> Response:
        pool = self.pools.get(pool_id)
        if pool is None:
            return _error(404, "NOT_FOUND", f"Requested entity was not found: workforcePools/{pool_id}")
        page = self._page(request)
        if isinstance(page, Response):
            return page
        size, start = page
        providers = list(pool.providers.values())
        body: dict[str, Any] = {"workforcePoolProviders": providers[start : start + size]}
        if start + size < len(providers):
            body["nextPageToken"] = str(start + size)
        return Response(json.dumps(body), 200, mimetype="application/json")

    def _patch(self, request: Request, pool_id: str, provider_id: str) -> Response:
        provider = self.pools[pool_id].providers.get(provider_id) if pool_id in self.pools else None
        if provider is None:
            return _error(404, "NOT_FOUND", f"Requested entity was not found: providers/{provider_id}")
        if request.args.get("updateMask") != "saml.idpMetadataXml":
            return _error(400, "INVALID_ARGUMENT", "fleetsim updates only updateMask=saml.idpMetadataXml")
        body = json.loads(request.get_data() or b"{}")
        document = (body.get("saml") or {}).get("idpMetadataXml")
        if not document:
            return _error(400, "INVALID_ARGUMENT", "saml.idpMetadataXml is required")
        provider["saml"] = {"idpMetadataXml": document}
        operation = {"name": f"{provider['name']}/operations/update", "done": True, "response": provider}
        return Response(json.dumps(operation), 200, mimetype="application/json")
