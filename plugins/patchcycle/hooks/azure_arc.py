"""Azure Arc-enabled servers, spoken to only here: machines, Update Manager's installPatches and
assessPatches, machine extensions, and the machines' patch assessments through Azure Resource Graph.

Thin seams over the unmodified azure-mgmt SDKs (``HybridComputeManagementClient`` pinned to the stable
api-version 2024-07-10, as the SDK's own default is a preview; ``ResourceGraphClient``). One method per
cloud call; lists paged to the service's maxima. Configured only by an Airflow connection
(conn_type ``azure``):

- Azure: ``login`` = the app registration's client id, ``password`` = its client secret, extra
  ``tenantId`` → ``ClientSecretCredential``; no login → ``DefaultAzureCredential`` (managed identity,
  workload identity, environment). Extra ``base_url``: the ARM endpoint (default
  https://management.azure.com; another cloud's, whose tokens are then asked for ``<base_url>/.default``).
- fleetsim: extra ``{"base_url": "http://127.0.0.1:PORT", "static_token": "fleetsim"}``: the bearer
  token is sent as a fixed header (azure-core refuses bearer tokens over plain http otherwise, research
  §1.6). A static token is refused for any base_url that is not loopback, so a real endpoint never
  receives one.
- Either: extra ``retry_total`` (default 4): azure-core's RetryPolicy retries throttled (429) and failed
  (5xx) requests this often, sleeping for the server's ``Retry-After``.

Errors are :class:`ArcError` naming the subscription and what was asked; HTTP calls time out (connect
10 s, read 60 s). Long-running installs and assessments are not waited for here:
:meth:`ArcHook.start_install` / :meth:`ArcHook.start_assessment` return the operation's status URL and
:meth:`ArcHook.operation_result` (alias :meth:`ArcHook.install_result`) reads it once, so a sensor or a
deferrable operator can poll across tasks. Machine extensions (the Falcon sensor's) likewise:
:meth:`ArcHook.start_extension` returns the operation's ``Azure-AsyncOperation`` URL,
:meth:`ArcHook.extension_operation` reads it, :meth:`ArcHook.extension` reads the extension's instance view.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any
from urllib.parse import urlparse

from airflow.sdk.bases.hook import BaseHook
from azure.core.credentials import AccessToken
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.policies import HeadersPolicy
from azure.core.rest import HttpRequest
from azure.mgmt.core.policies import ARMHttpLoggingPolicy
from azure.mgmt.hybridcompute import HybridComputeManagementClient
from azure.mgmt.resourcegraph import ResourceGraphClient
from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

from patchcycle.hooks.azure_connection import read_azure_connection

ARM_API_VERSION = "2024-07-10"  # latest stable HybridCompute swagger with installPatches (research §1.1)
GRAPH_API_VERSION = "2021-03-01"
DEFAULT_BASE_URL = "https://management.azure.com"
MAX_RETRY_AFTER_SECONDS = 60.0  # a longer Retry-After is waited for at most this long per try
GRAPH_PAGE = 1000  # Resource Graph's maximum rows per page ($top)
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60
SUMMARY_TYPE = "microsoft.hybridcompute/machines/patchassessmentresults"
PATCHES_TYPE = "microsoft.hybridcompute/machines/patchassessmentresults/softwarepatches"
# Update Manager's install history (Learn, "Access Azure Update Manager operations data using Azure
# Resource Graph", https://learn.microsoft.com/azure/update-manager/query-logs, "Patch installation
# results"): one softwarepatches row per update an install considered, with its installationState.
INSTALL_PATCHES_TYPE = "microsoft.hybridcompute/machines/patchinstallationresults/softwarepatches"
_SUBSCRIPTION = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_RESOURCE_GROUP = re.compile(r"^[-\w.()]{1,90}$")  # ARM's resource-group name characters
_ASSESSMENT_SUFFIX = re.compile(r"/(patchassessmentresults|patchinstallationresults)/.*$", re.I)
_INSTALLATION_ID = re.compile(r"/patchinstallationresults/([^/]+)/", re.I)
# azure-core logs every request and response at INFO; keep task logs to warnings unless asked for more.
HTTP_LOG = logging.getLogger("patchcycle.hooks.azure_arc.http")
HTTP_LOG.setLevel(logging.WARNING)


class ArcError(RuntimeError):
    """An Azure Arc / Resource Graph call that failed; the message names the subscription and the ask.

    ``status_code`` is ARM's HTTP status when it answered (None for a connection or timeout error).
    """

    status_code: int | None = None
    retry_after_seconds: float | None = None  # ARM's Retry-After header, when it sent one

    @property
    def refused(self) -> bool:
        """ARM answered with a client error (4xx but 408): the request was not carried out."""
        return self.status_code is not None and 400 <= self.status_code < 500 and self.status_code != 408


class ArcMachineNotFound(ArcError):
    """The machine does not exist in the resource group (ARM answered 404)."""


class _StaticToken:
    """A TokenCredential that hands out a fixed token (fleetsim only; the header policy sends it)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def _retry_after(exc: HttpResponseError) -> float | None:
    """The answer's ``Retry-After`` in seconds (ARM sends delay-seconds), None when absent or not a number."""
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _describe(exc: AzureError) -> str:
    if isinstance(exc, HttpResponseError):
        code = getattr(exc.error, "code", None) or exc.reason
        message = getattr(exc.error, "message", None) or exc.message
        return f"HTTP {exc.status_code} {code}: {message}"
    return f"{type(exc).__name__}: {exc.message}"


class ArcHook(BaseHook):
    """Arc-enabled servers of one subscription, and their Update Manager patch state."""

    conn_name_attr = "azure_conn_id"
    default_conn_name = "azure_default"
    conn_type = "azure"
    hook_name = "Azure Arc (Patchcycle)"

    def __init__(self, azure_conn_id: str = default_conn_name, subscription_id: str = "") -> None:
        super().__init__()
        if not _SUBSCRIPTION.match(subscription_id):
            raise ValueError(f"subscription_id must be a subscription GUID, got {subscription_id!r}")
        self.azure_conn_id = azure_conn_id
        self.subscription_id = subscription_id

    # -- clients ------------------------------------------------------------------------------------
    @cached_property
    def _client_kwargs(self) -> dict[str, Any]:
        """credential, base_url and pipeline settings shared by both clients, from the connection."""
        azure = read_azure_connection(
            self.get_connection(self.azure_conn_id), self.azure_conn_id, "base_url", DEFAULT_BASE_URL
        )
        base_url, retry_total, static_token = azure.url, azure.retry_total, azure.static_token
        kwargs: dict[str, Any] = {
            "base_url": base_url,
            "retry_total": retry_total,
            "retry_status": retry_total,  # azure-core caps status retries at 3 unless told
            "connection_timeout": CONNECT_TIMEOUT_SECONDS,
            "read_timeout": READ_TIMEOUT_SECONDS,
            "http_logging_policy": ARMHttpLoggingPolicy(logger=HTTP_LOG),
        }
        if static_token:
            kwargs["credential"] = _StaticToken(static_token)
            kwargs["authentication_policy"] = HeadersPolicy({"Authorization": f"Bearer {static_token}"})
        else:
            kwargs["credential"] = azure.credential()
        if not static_token and base_url != DEFAULT_BASE_URL:  # another cloud's ARM: its own token audience
            kwargs["credential_scopes"] = [f"{base_url}/.default"]
        return kwargs

    @cached_property
    def client(self) -> HybridComputeManagementClient:
        """``HybridComputeManagementClient`` at api-version 2024-07-10 (machines, installPatches,
        assessPatches, operation status)."""
        kwargs = dict(self._client_kwargs)
        credential, base_url = kwargs.pop("credential"), kwargs.pop("base_url")
        return HybridComputeManagementClient(
            credential, self.subscription_id, base_url=base_url, api_version=ARM_API_VERSION, **kwargs
        )

    @cached_property
    def graph(self) -> ResourceGraphClient:
        """``ResourceGraphClient`` (patch assessments and install history), same credential and pipeline."""
        kwargs = dict(self._client_kwargs)
        credential, base_url = kwargs.pop("credential"), kwargs.pop("base_url")
        return ResourceGraphClient(credential, base_url=base_url, api_version=GRAPH_API_VERSION, **kwargs)

    @contextmanager
    def _calling(self, what: str, not_found: type[ArcError] = ArcError) -> Iterator[None]:
        """Turn SDK errors into an ArcError naming the subscription and ``what`` was asked."""
        try:
            yield
        except ResourceNotFoundError as exc:
            missing = not_found(f"Azure subscription {self.subscription_id}: {what}: {_describe(exc)}")
            missing.status_code = exc.status_code
            raise missing from exc
        except HttpResponseError as exc:
            hint = ""
            if exc.status_code == 429:
                retries = self._client_kwargs["retry_total"]
                hint = f" (still throttled after {retries} retries honouring Retry-After)"
            error = ArcError(f"Azure subscription {self.subscription_id}: {what}: {_describe(exc)}{hint}")
            error.status_code = exc.status_code
            error.retry_after_seconds = _retry_after(exc)
            raise error from exc
        except AzureError as exc:
            raise ArcError(f"Azure subscription {self.subscription_id}: {what}: {_describe(exc)}") from exc

    # -- machines -----------------------------------------------------------------------------------
    def machines(self, resource_group: str) -> list[dict[str, Any]]:
        """Every Arc machine of the resource group (all pages), as ARM's JSON (``Machine.as_dict()``:
        camelCase keys, ``properties.status`` Connected/Disconnected/..., timestamps as ISO strings)."""
        _check_resource_group(resource_group)
        with self._calling(f"listing the machines of resource group {resource_group}"):
            return [m.as_dict() for m in self.client.machines.list_by_resource_group(resource_group)]

    def machine(self, resource_group: str, name: str) -> dict[str, Any]:
        """One machine as ARM's JSON; :class:`ArcMachineNotFound` when it does not exist."""
        _check_resource_group(resource_group)
        with self._calling(f"reading machine {name} in resource group {resource_group}", ArcMachineNotFound):
            return self.client.machines.get(resource_group, name).as_dict()

    # -- installPatches / assessPatches -------------------------------------------------------------
    def start_install(self, resource_group: str, name: str, parameters: dict[str, Any]) -> str:
        """Begin installPatches on one machine without waiting; return the operation's status URL.

        ``parameters`` is the MachineInstallPatchesParameters JSON (maximumDuration, rebootSetting,
        linuxParameters / windowsParameters). Read the URL with :meth:`operation_result`.

        Sent once, never retried by the SDK (``retry_total=0`` for this request): installPatches is a
        POST with no idempotency key, and azure-core's RetryPolicy resends a POST answered 500, 503 or
        504 (``RetryPolicyBase._is_method_retryable``), which would start a second install whose first
        one may be running. A lost answer reaches the caller as an :class:`ArcError` with its status;
        the patch operator keeps the intent and judges the machine by its assessment.

        A throttled request (429) is sent again after its ``Retry-After``, up to the connection's
        ``retry_total`` times: ARM rejects a throttled request before carrying it out (Learn, "Understand
        how Azure Resource Manager throttles requests").
        """
        _check_resource_group(resource_group)
        what = f"starting installPatches on machine {name} in resource group {resource_group}"
        throttled_retries = 0
        while True:
            try:
                return self._start(
                    what,
                    lambda **kw: self.client.machines.begin_install_patches(
                        resource_group, name, parameters, retry_total=0, **kw
                    ),
                )
            except ArcError as exc:
                if exc.status_code != 429 or throttled_retries >= self._client_kwargs["retry_total"]:
                    raise
                throttled_retries += 1
                time.sleep(min(MAX_RETRY_AFTER_SECONDS, exc.retry_after_seconds or 1.0))

    def start_assessment(self, resource_group: str, name: str) -> str:
        """Begin assessPatches (a fresh Update Manager assessment) on one machine without waiting;
        return the operation's status URL. Read it with :meth:`operation_result`; once it has ended,
        Resource Graph (:meth:`patch_assessments`) serves the new assessment."""
        _check_resource_group(resource_group)
        what = f"starting assessPatches on machine {name} in resource group {resource_group}"
        return self._start(
            what, lambda **kw: self.client.machines.begin_assess_patches(resource_group, name, **kw)
        )

    def _start(
        self,
        what: str,
        begin: Callable[..., Any],
        header: str = "Location",
        statuses: tuple[int, ...] = (202,),
    ) -> str:
        """Send a long-running operation's request and return its ``header`` (the 202's ``Location`` for
        the patch operations), taken from the final HTTP response through azure-core's
        ``raw_response_hook`` (``polling=False`` returns right after the answer and exposes no headers)."""
        responses: list[Any] = []
        with self._calling(what):
            begin(
                polling=False,
                raw_response_hook=lambda pipeline_response: responses.append(pipeline_response.http_response),
            )
        final = responses[-1] if responses else None
        location = final.headers.get(header) if final is not None else None
        if final is None or final.status_code not in statuses or not location:
            status = final.status_code if final is not None else "no response"
            expected = " or ".join(str(code) for code in statuses)
            raise ArcError(
                f"Azure subscription {self.subscription_id}: {what}: expected {expected} with a {header} "
                f"header, got {status}"
            )
        self._check_same_origin(location, what)
        return location

    def operation_result(self, location_url: str) -> dict[str, Any] | None:
        """One read of an installPatches / assessPatches status URL: None while it runs (202), the
        operation's result JSON once it has ended (200). A 200 also means the operation ended badly:
        inspect ``status`` (Succeeded / CompletedWithWarnings / Failed) and ``errorDetails``; installs
        (MachineInstallPatchesResult) also ``failedPatchCount`` and ``rebootStatus``, assessments
        (MachineAssessPatchesResult) ``availablePatchCountByClassification`` and ``rebootPending``."""
        what = f"reading patch operation {location_url}"
        self._check_same_origin(location_url, what)
        with self._calling(what):
            response = self.client.send_request(HttpRequest("GET", location_url))
        if response.status_code == 202:
            return None
        if response.status_code == 200:
            return response.json()
        raise self._http_error(what, response)

    # -- machine extensions -------------------------------------------------------------------------
    def start_extension(self, resource_group: str, machine: str, name: str, extension: dict[str, Any]) -> str:
        """Put an extension on one machine without waiting (MachineExtensions_CreateOrUpdate through the
        SDK's ``machine_extensions.begin_create_or_update``); return the operation's
        ``Azure-AsyncOperation`` URL, to be read with :meth:`extension_operation`.

        ``extension`` is the MachineExtension JSON (``location``, ``properties``: publisher, type,
        typeHandlerVersion, settings, protectedSettings). The HybridCompute swagger 2024-07-10
        (azure-rest-api-specs, ``Microsoft.HybridCompute/stable/2024-07-10/HybridCompute.json``) makes it a
        long-running PUT answered 200 or 202; ARM's asynchronous pattern ("Track asynchronous Azure
        operations", Learn) reports its outcome, error included, at ``Azure-AsyncOperation``, while
        ``Location`` ends in 204 with no body. The request body is never logged (the HTTP logging policy
        logs headers only, at WARNING here), nor put in an error message.
        """
        _check_resource_group(resource_group)
        what = f"putting extension {name} on machine {machine} in resource group {resource_group}"
        return self._start(
            what,
            lambda **kw: self.client.machine_extensions.begin_create_or_update(
                resource_group, machine, name, extension, **kw
            ),
            header="Azure-AsyncOperation",
            statuses=(200, 201, 202),
        )

    def extension_operation(self, status_url: str) -> dict[str, Any]:
        """One read of an extension operation's ``Azure-AsyncOperation`` URL: ARM's operation status
        resource, ``status`` (InProgress while it runs; Succeeded, Failed or Canceled at the end),
        ``error`` (``code``, ``message``) when it failed, ``startTime`` / ``endTime``."""
        what = f"reading extension operation {status_url}"
        self._check_same_origin(status_url, what)
        with self._calling(what):
            response = self.client.send_request(HttpRequest("GET", status_url))
        if response.status_code == 200:
            return response.json()
        raise self._http_error(what, response)

    def extension(self, resource_group: str, machine: str, name: str) -> dict[str, Any] | None:
        """One machine extension as ARM's JSON (MachineExtensions_Get: ``properties.provisioningState``,
        ``properties.instanceView.status``: code, level, displayStatus, message, the handler's own
        status); None when the machine has no extension of that name. Protected settings are never
        answered (the swagger's ``Extension_Get.json`` example: ``"protectedSettings": {}``)."""
        _check_resource_group(resource_group)
        what = f"reading extension {name} of machine {machine} in resource group {resource_group}"
        try:
            with self._calling(what, ArcMachineNotFound):
                return self.client.machine_extensions.get(resource_group, machine, name).as_dict()
        except ArcMachineNotFound:
            return None

    def install_result(self, location_url: str) -> dict[str, Any] | None:
        """:meth:`operation_result` under its former name (reads installs and assessments alike)."""
        return self.operation_result(location_url)

    def _http_error(self, what: str, response: Any) -> ArcError:
        """An unexpected answer of a raw request as an :class:`ArcError`: its status, ARM's error code and
        message (the first 200 characters of the body when it has none)."""
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        return ArcError(
            f"Azure subscription {self.subscription_id}: {what}: HTTP {response.status_code} "
            f"{error.get('code', response.reason)}: {error.get('message', response.text()[:200])}"
        )

    def _check_same_origin(self, url: str, what: str) -> None:
        """The bearer token goes only to the configured ARM endpoint, never to a URL elsewhere."""
        base, target = urlparse(self._client_kwargs["base_url"]), urlparse(url)
        if (target.scheme, target.netloc.lower()) != (base.scheme, base.netloc.lower()):
            raise ArcError(
                f"Azure subscription {self.subscription_id}: {what}: the URL is not on the ARM endpoint "
                f"{self._client_kwargs['base_url']}"
            )

    # -- Resource Graph -----------------------------------------------------------------------------
    def patch_assessments(self, resource_groups: list[str]) -> dict[str, dict[str, Any]]:
        """Update Manager's latest patch assessment of every machine in the resource groups.

        Keyed by the lower-cased machine id; each value is the assessment's ``properties`` (status,
        lastModifiedDateTime, rebootPending, osType, availablePatchCountByClassification, ...) plus
        ``machineId``, ``resourceGroup`` and ``patches``: the ``properties`` of each missing patch
        (patchName, version, kbId, classifications, msrcSeverity, ...). Two paged queries (summaries,
        then patches), :data:`GRAPH_PAGE` rows per page, scoped to this subscription.
        """
        if not resource_groups:
            return {}
        for rg in resource_groups:
            _check_resource_group(rg)
        groups = ", ".join(f"'{rg}'" for rg in sorted(set(resource_groups)))
        scope = f"| where resourceGroup in~ ({groups})\n| order by id asc"
        where = f"resource groups {sorted(set(resource_groups))}"
        out: dict[str, dict[str, Any]] = {}
        summaries = self._graph_rows(
            f"patchassessmentresources\n| where type =~ '{SUMMARY_TYPE}'\n{scope}", where
        )
        for row in summaries:
            machine_id = _machine_id(row["id"])
            out[machine_id] = dict(row.get("properties") or {}) | {
                "machineId": machine_id,
                "resourceGroup": row.get("resourceGroup"),
                "patches": [],
            }
        patches = self._graph_rows(
            f"patchassessmentresources\n| where type =~ '{PATCHES_TYPE}'\n{scope}", where
        )
        for row in patches:
            machine_id = _machine_id(row["id"])
            entry = out.setdefault(
                machine_id,
                {"machineId": machine_id, "resourceGroup": row.get("resourceGroup"), "patches": []},
            )
            entry["patches"].append(dict(row.get("properties") or {}))
        return out

    def missing_patches(self, resource_groups: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The updates each machine of the resource groups misses, by lower-cased machine id: the
        ``properties`` of its latest assessment's softwarepatches rows (patchName, version, kbId,
        classifications, msrcSeverity, publishedDateTime, ...). One paged query for all machines."""
        out: dict[str, list[dict[str, Any]]] = {}
        for row in self._scoped_rows("patchassessmentresources", PATCHES_TYPE, resource_groups):
            out.setdefault(_machine_id(row["id"]), []).append(dict(row.get("properties") or {}))
        return out

    def patch_installations(self, resource_groups: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """What each install of the last 30 days did to each update, by lower-cased machine id and
        lower-cased installation activity id: the ``properties`` of the install's softwarepatches rows
        in ``patchinstallationresources`` (installationState, patchName, version, kbId, ...). One paged
        query for all machines of the resource groups."""
        out: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for row in self._scoped_rows("patchinstallationresources", INSTALL_PATCHES_TYPE, resource_groups):
            match = _INSTALLATION_ID.search(row["id"])
            if not match:
                continue
            runs = out.setdefault(_machine_id(row["id"]), {})
            runs.setdefault(match.group(1).lower(), []).append(dict(row.get("properties") or {}))
        return out

    def _scoped_rows(self, table: str, row_type: str, resource_groups: list[str]) -> list[dict[str, Any]]:
        if not resource_groups:
            return []
        for rg in resource_groups:
            _check_resource_group(rg)
        groups = ", ".join(f"'{rg}'" for rg in sorted(set(resource_groups)))
        query = (
            f"{table}\n| where type =~ '{row_type}'\n| where resourceGroup in~ ({groups})\n| order by id asc"
        )
        return self._graph_rows(query, f"{table} of resource groups {sorted(set(resource_groups))}")

    def _graph_rows(self, query: str, where: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            options = QueryRequestOptions(top=GRAPH_PAGE, skip_token=token, result_format="objectArray")
            request = QueryRequest(subscriptions=[self.subscription_id], query=query, options=options)
            with self._calling(f"querying Resource Graph for the patch assessments of {where}"):
                page = self.graph.resources(request)
            rows.extend(page.data or [])
            token = page.skip_token
            if not token:
                return rows
            if token in seen:
                raise ArcError(
                    f"Azure subscription {self.subscription_id}: Resource Graph repeated $skipToken "
                    f"{token!r} while paging the patch assessments of {where}"
                )
            seen.add(token)


def _check_resource_group(name: str) -> None:
    if not _RESOURCE_GROUP.match(name or ""):
        raise ValueError(f"{name!r} is not a resource group name (1-90 letters, digits, - _ . ( ))")


def _machine_id(row_id: str) -> str:
    """The machine id (lower-cased) of a patch assessment row's id."""
    return _ASSESSMENT_SUFFIX.sub("", row_id).lower()


def read_arc_catalog(tenant: Any, log: Any) -> list[Any]:
    """The patch catalog of a tenant's Arc machines (finding 5: a tenant on Azure alone), as
    :class:`~patchcycle.domain.plan.CatalogPatch` entries with source ``azure:patchassessmentresources``.

    Per subscription: the machines of its resource groups (ARM, for each machine's OS family from its
    ``osSku``; 100 per page) and every update they miss (Resource Graph ``patchassessmentresources``
    softwarepatches rows, 1,000 per page): no per-machine call. Linux updates carry no release date in
    Update Manager's data, so the plan leaves them out and says so (see :func:`patchcycle.domain.
    catalog_arc.arc_catalog_patch`). ``log`` is the task's EventLog (``record``).
    """
    from patchcycle.domain.catalog_arc import arc_catalog
    from patchcycle.domain.platforms import os_family_from_label

    azure = tenant.clouds.azure
    pairs: list[tuple[Any, dict[str, Any]]] = []
    for sub in azure.subscriptions if azure else []:
        hook = ArcHook(azure_conn_id=tenant.azure_connection_id(sub), subscription_id=sub.subscription_id)
        groups = list(sub.resource_groups)
        families = {}
        for rg in groups:
            for machine in hook.machines(rg):
                sku = str((machine.get("properties") or {}).get("osSku") or "")
                families[str(machine["id"]).lower()] = os_family_from_label(sku)
        missing = hook.missing_patches(groups)
        rows = 0
        for machine_id, patches in missing.items():
            family = families.get(machine_id)
            if family is None:
                continue  # not a machine of these groups, or an OS family Patchcycle does not patch
            pairs.extend((family, props) for props in patches)
            rows += len(patches)
        log.record(
            "plan.catalog_read",
            target=f"azure:{sub.subscription_id}",
            source="azure:patchassessmentresources",
            machines=len(families),
            patch_rows=rows,
        )
    return arc_catalog(pairs)
