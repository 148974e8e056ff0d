"""Google Cloud workforce identity federation, read for the SAML certificate watch: the organization's
workforce pools and their SAML providers (REST, v1).

Calls:

- ``POST https://cloudresourcemanager.googleapis.com/v1/projects/{projectId}:getAncestry``: the
  project's ancestors "ordered from bottom to top", the last of type ``organization`` (Resource Manager
  v1, projects.getAncestry, https://cloud.google.com/resource-manager/reference/rest/v1/projects/getAncestry).
  Only when neither the tenant file nor the connection names the organization.
- ``GET https://iam.googleapis.com/v1/locations/global/workforcePools?parent=organizations/{org}``,
  ``pageSize`` 100 (its maximum), following ``nextPageToken`` (locations.workforcePools.list,
  https://cloud.google.com/iam/docs/reference/rest/v1/locations.workforcePools/list).
- ``GET https://iam.googleapis.com/v1/{pool}/providers``, ``pageSize`` 100 (its maximum), following
  ``nextPageToken``: each provider's ``saml.idpMetadataXml`` (or ``oidc``), ``state``, ``disabled``
  (locations.workforcePools.providers.list,
  https://cloud.google.com/iam/docs/reference/rest/v1/locations.workforcePools.providers/list).

Workforce pools live at the organization, not in a project: the connection's credentials need
``iam.workforcePools.list`` and ``iam.workforcePoolProviders.list`` there (and
``resourcemanager.projects.get`` on the project for the ancestry). Configured only by the Airflow
``google_cloud_platform`` connection (see :mod:`patchcycle.hooks.gcp_base`); its extra ``api_endpoint``
(fleetsim's loopback URL) replaces both services' hosts, and extra ``organization_id`` names the
organization.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from patchcycle.hooks.gcp_base import CALL_ERRORS, CALL_TIMEOUT_SECONDS, GcpError, GoogleRestHook

IAM_ENDPOINT = "https://iam.googleapis.com"
RESOURCE_MANAGER_ENDPOINT = "https://cloudresourcemanager.googleapis.com"
LIST_PAGE = 100  # pageSize maximum of workforcePools.list and providers.list


class WorkforcePoolsHook(GoogleRestHook):
    """The workforce pools and SAML providers of one Google Cloud organization."""

    @cached_property
    def _http(self) -> Any:
        from google.auth.transport.requests import AuthorizedSession

        self.calls = 0
        return AuthorizedSession(self.client_kwargs()["credentials"])  # type: ignore[no-untyped-call]

    def _base(self, default: str) -> str:
        endpoint = self._get_field("api_endpoint")
        return str(endpoint or default).rstrip("/")

    def _call(self, method: str, url: str, params: dict[str, Any] | None, what: str) -> dict[str, Any]:
        session = self._http
        self.calls += 1
        try:
            response = session.request(method, url, params=params, timeout=CALL_TIMEOUT_SECONDS)
        except CALL_ERRORS as exc:
            raise GcpError(f"{what} (connection {self.gcp_conn_id!r}) failed: {exc}") from exc
        if response.status_code != 200:
            raise GcpError(
                f"{what} (connection {self.gcp_conn_id!r}) failed: HTTP {response.status_code} "
                f"{response.text[:300]}"
            )
        body: dict[str, Any] = response.json()
        return body

    @property
    def configured_organization(self) -> str | None:
        """The connection's extra ``organization_id``, if it has one."""
        value = self._get_field("organization_id")
        return str(value) if value else None

    def organization_of(self, project_id: str) -> str:
        """The number of the organization ``project_id`` belongs to (through any folders)."""
        url = f"{self._base(RESOURCE_MANAGER_ENDPOINT)}/v1/projects/{project_id}:getAncestry"
        body = self._call("POST", url, None, f"reading the ancestry of project {project_id}")
        for ancestor in body.get("ancestor") or []:
            resource = ancestor.get("resourceId") or {}
            if resource.get("type") == "organization":
                return str(resource["id"])
        raise GcpError(f"project {project_id} belongs to no organization: it can have no workforce pool")

    def _pages(self, url: str, params: dict[str, Any], key: str, what: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._call("GET", url, {**params, **({"pageToken": token} if token else {})}, what)
            rows.extend(page.get(key) or [])
            token = page.get("nextPageToken")
            if not token:
                return rows

    def workforce_pools(self, organization_id: str) -> list[dict[str, Any]]:
        """Every non-deleted workforce pool of the organization (``name``, ``displayName``, ``state``...)."""
        url = f"{self._base(IAM_ENDPOINT)}/v1/locations/global/workforcePools"
        params = {"parent": f"organizations/{organization_id}", "pageSize": LIST_PAGE}
        return self._pages(
            url, params, "workforcePools", f"listing the workforce pools of organization {organization_id}"
        )

    def providers(self, pool_name: str) -> list[dict[str, Any]]:
        """Every non-deleted provider of a pool (``locations/global/workforcePools/<id>``)."""
        url = f"{self._base(IAM_ENDPOINT)}/v1/{pool_name}/providers"
        return self._pages(
            url, {"pageSize": LIST_PAGE}, "workforcePoolProviders", f"listing the providers of {pool_name}"
        )
