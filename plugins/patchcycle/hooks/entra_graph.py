"""Microsoft Graph v1.0, read for the SAML certificate watch: the service principals of the directory's
enterprise applications with SAML single sign-on, and their token-signing certificates.

Calls (Microsoft Graph REST API v1.0, https://learn.microsoft.com/graph/api/overview):

- ``GET {graph}/v1.0/servicePrincipals?$filter=preferredSingleSignOnMode eq 'saml'&$select=id,appId,
  displayName,preferredTokenSigningKeyThumbprint,notificationEmailAddresses&$top=999``, following
  ``@odata.nextLink`` (List servicePrincipals,
  https://learn.microsoft.com/graph/api/serviceprincipal-list; ``preferredSingleSignOnMode`` "Supports
  $filter (eq, ne, not, in)" in the servicePrincipal resource type,
  https://learn.microsoft.com/graph/api/resources/serviceprincipal; ``$top`` up to 999 for directory
  objects, "Paging Microsoft Graph data in your app").
- ``GET {graph}/v1.0/servicePrincipals/{id}?$select=keyCredentials``, one per application: a
  keyCredential's ``key`` (the certificate) is "Returned only on $select for a single object [...];
  otherwise, it is always null" (keyCredential resource type,
  https://learn.microsoft.com/graph/api/resources/keycredential). No batch form returns it.

Permission: ``Application.Read.All`` (application). Throttled (429) and unavailable (503, 504) answers
are retried after their ``Retry-After`` (Graph's "Microsoft Graph throttling guidance"), at most
``retry_total`` times.

Configured only by an Airflow connection (conn_type ``azure``, as :mod:`patchcycle.hooks.azure_arc`):
``login`` = the app registration's client id, ``password`` = its secret, extra ``tenantId`` ->
``ClientSecretCredential``; no login -> ``DefaultAzureCredential``. Extra ``graph_url`` (default
``https://graph.microsoft.com``; a national cloud's Graph, or fleetsim's ``http://127.0.0.1:PORT/graph/
<directory>``): tokens are asked for ``<graph_url>/.default``. Extra ``static_token`` (fleetsim only, as
for ARM) is sent as the bearer token and refused for any Graph URL that is not loopback.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any
from urllib.parse import urlparse

import requests
from airflow.sdk.bases.hook import BaseHook

from patchcycle.hooks.azure_connection import read_azure_connection

DEFAULT_GRAPH_URL = "https://graph.microsoft.com"
SAML_FILTER = "preferredSingleSignOnMode eq 'saml'"
LIST_SELECT = "id,appId,displayName,preferredTokenSigningKeyThumbprint,notificationEmailAddresses"
GRAPH_PAGE = 999  # $top maximum of directory-object lists
RETRY_STATUSES = frozenset({429, 503, 504})
MAX_RETRY_AFTER_SECONDS = 60.0
TIMEOUT_SECONDS = (10, 60)  # (connect, read)


class GraphError(RuntimeError):
    """A Graph call that failed; the message names the directory's Graph URL, the call and Graph's error."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class EntraGraphHook(BaseHook):
    """The SAML enterprise applications of one Entra ID directory."""

    conn_name_attr = "azure_conn_id"
    default_conn_name = "azure_default"
    conn_type = "azure"
    hook_name = "Microsoft Graph (Patchcycle)"

    def __init__(self, azure_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.azure_conn_id = azure_conn_id
        self.calls = 0

    @cached_property
    def _settings(self) -> tuple[str, Any, int]:
        """(Graph base URL, a callable giving the bearer token, retry_total) from the connection."""
        azure = read_azure_connection(
            self.get_connection(self.azure_conn_id), self.azure_conn_id, "graph_url", DEFAULT_GRAPH_URL
        )
        if azure.static_token:
            token = azure.static_token
            return azure.url, lambda: token, azure.retry_total
        credential = azure.credential()
        parsed = urlparse(azure.url)
        scope = f"{parsed.scheme}://{parsed.netloc}/.default"
        return azure.url, lambda: credential.get_token(scope).token, azure.retry_total

    @cached_property
    def _session(self) -> requests.Session:
        return requests.Session()

    def _get(self, url: str, params: dict[str, str] | None, what: str) -> dict[str, Any]:
        graph_url, token, retry_total = self._settings
        if not url.startswith(graph_url + "/"):
            raise GraphError(f"Graph {graph_url}: {what}: refusing to follow {url!r} (another origin)")
        for attempt in range(retry_total + 1):
            self.calls += 1
            try:
                response = self._session.get(
                    url,
                    params=params,
                    headers={"Authorization": f"Bearer {token()}"},
                    timeout=TIMEOUT_SECONDS,
                )
            except requests.RequestException as exc:
                raise GraphError(f"Graph {graph_url}: {what}: {type(exc).__name__}: {exc}") from exc
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
            if response.status_code in RETRY_STATUSES and attempt < retry_total:
                time.sleep(self._retry_after(response, attempt))
                continue
            raise GraphError(
                f"Graph {graph_url}: {what}: HTTP {response.status_code} {self._error(response)}",
                status=response.status_code,
            )
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    @staticmethod
    def _retry_after(response: requests.Response, attempt: int) -> float:
        try:
            hinted = float(response.headers.get("Retry-After", ""))
        except ValueError:
            hinted = 2.0**attempt
        return min(max(hinted, 0.0), MAX_RETRY_AFTER_SECONDS)

    @staticmethod
    def _error(response: requests.Response) -> str:
        try:
            error = response.json().get("error") or {}
        except ValueError:
            return response.text[:300]
        return f"{error.get('code')}: {error.get('message')}"

    # -- calls ------------------------------------------------------------------------------------
    def saml_service_principals(self) -> list[dict[str, Any]]:
        """Every service principal whose ``preferredSingleSignOnMode`` is ``saml`` (all pages): ``id``,
        ``appId``, ``displayName``, ``preferredTokenSigningKeyThumbprint``, ``notificationEmailAddresses``."""
        graph_url = self._settings[0]
        url: str | None = f"{graph_url}/v1.0/servicePrincipals"
        params: dict[str, str] | None = {
            "$filter": SAML_FILTER,
            "$select": LIST_SELECT,
            "$top": str(GRAPH_PAGE),
        }
        rows: list[dict[str, Any]] = []
        while url:
            page = self._get(url, params, "listing the SAML service principals")
            rows.extend(page.get("value") or [])
            url, params = page.get("@odata.nextLink"), None  # the next link carries the query
        return rows

    def key_credentials(self, service_principal_id: str) -> list[dict[str, Any]]:
        """The service principal's ``keyCredentials`` with their certificates (``key``)."""
        graph_url = self._settings[0]
        url = f"{graph_url}/v1.0/servicePrincipals/{service_principal_id}"
        answer = self._get(
            url, {"$select": "keyCredentials"}, f"reading service principal {service_principal_id}"
        )
        return list(answer.get("keyCredentials") or [])
