"""The ARM and Resource Graph endpoints: :class:`ArmApi` routes each request (:mod:`.urls`),
authenticates and throttles it, and answers from the fleet state (:mod:`.models`) in the shapes of the
2024-07-10 HybridCompute swagger; errors are :mod:`.exceptions`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from fleetsim.azure.arm.exceptions import (
    ArmError,
    AuthenticationFailed,
    BadRequest,
    Conflict,
    InternalServerError,
    InvalidRequestContent,
    InvalidSkipToken,
    MethodNotAllowed,
    NotFound,
    ResourceGroupNotFound,
    ResourceNotFound,
    SubscriptionNotFound,
    json_response,
)
from fleetsim.azure.arm.extensions import PUBLISHER, ExtensionOperation, ExtensionStore
from fleetsim.azure.arm.graph import decode_skip_token, parse_graph_query
from fleetsim.azure.arm.models import (
    ALL_CLASSIFICATIONS,
    COUNT_KEY,
    GRAPH_DEFAULT_TOP,
    GRAPH_MAX_TOP,
    INSTALL_PATCHES_TYPE,
    INSTALL_TYPE,
    MACHINES_PAGE,
    OPERATION_RETRY_AFTER_SECONDS,
    PATCHES_TYPE,
    SUMMARY_TYPE,
    MachineIndex,
    PatchOperation,
    assessment,
    available_patches,
    classification,
    extension_resources,
    fraction,
    guid,
    is_windows,
    iso,
    machine_json,
    os_type,
    package_version,
    patch_counts,
    patch_properties,
    patch_service,
    plan_install,
    published_date_time,
    summary_properties,
)
from fleetsim.azure.arm.urls import ROUTES
from fleetsim.fleet import FleetState, SimHost
from fleetsim.scenario import ArmThrottle


class ArmApi:
    """ARM (HybridCompute machines, installPatches) and Resource Graph over the fleet's Azure hosts."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self.operations: dict[str, PatchOperation] = {}
        self._index: MachineIndex | None = None
        self._running: set[str] = set()  # operation ids whose effects are not applied yet
        self._requests: Counter[str] = Counter()  # ARM requests per subscription (lower-case)
        self.throttles: dict[str, ArmThrottle] = {}
        # installPatches answers still to be lost, per subscription (scenario: lost_install_answers).
        self.lost_install_answers: Counter[str] = Counter()
        for tenant in state.scenario.tenants:
            if tenant.azure:
                self.throttles.setdefault(tenant.azure.subscription_id.lower(), tenant.azure.throttle)
                self.lost_install_answers[tenant.azure.subscription_id.lower()] += (
                    tenant.azure.lost_install_answers
                )
        # Install effects are applied lazily: whenever the fleet advances (any Azure request, the
        # ground truth, other vendors reading hosts), as the other clouds' lifecycles are.
        state.on_advance(self._apply_due)
        # Machine extensions clients put (the Falcon sensor's), each a long-running operation.
        self.extension_store = ExtensionStore(state)
        state.on_advance(self.extension_store.apply_due)
        self._routes: list[tuple[re.Pattern[str], str, str, Callable[..., Response]]] = [
            (pattern, method, operation, getattr(self, handler))
            for pattern, method, operation, handler in ROUTES
        ]

    # -- WSGI ---------------------------------------------------------------------------------------
    def handles(self, path: str) -> bool:
        lower = path.lower()
        return lower.startswith("/subscriptions/") or lower.startswith("/providers/microsoft.resourcegraph/")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except ArmError as exc:
            response = exc.response()
        return response(environ, start_response)

    def _count(self, name: str) -> None:
        with self.state.lock:
            self.state.calls[name] += 1

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            self._count("azure.arm.unauthenticated")
            raise AuthenticationFailed("The 'Authorization' bearer token is missing.")
        if path.lower().rstrip("/") == "/providers/microsoft.resourcegraph/resources":
            if request.method != "POST":
                self._count("azure.arm.unrouted")
                raise MethodNotAllowed(f"{request.method} is not allowed on {path}")
            self._count("azure.resourcegraph.Resources")
            return self._graph(request)
        if path.lower().startswith("/subscriptions/"):
            throttled = self._throttle(path.split("/")[2])
            if throttled is not None:
                return throttled
        for pattern, method, operation, handler in self._routes:
            match = pattern.match(path)
            if match and request.method == method:
                self._count(f"azure.arm.{operation}")
                return handler(request, **match.groupdict())
        self._count("azure.arm.unrouted")
        raise NotFound(f"fleetsim does not emulate {request.method} {path}")

    def _throttle(self, subscription: str) -> Response | None:
        rule = self.throttles.get(subscription.lower())
        if rule is None:
            return None
        with self.state.lock:
            self._requests[subscription.lower()] += 1
            n = self._requests[subscription.lower()]
            refused = n <= rule.requests or (rule.every > 0 and (n - rule.requests) % rule.every == 0)
            if not refused:
                return None
            self.state.calls["azure.arm.throttled"] += 1
        return json_response(
            {
                "error": {
                    "code": "TooManyRequests",
                    "message": f"Number of read requests for subscription '{subscription}' exceeded the "
                    "limit. Please try again later.",
                }
            },
            429,
            {
                "Retry-After": str(rule.retry_after_seconds),
                "x-ms-ratelimit-remaining-subscription-reads": "0",
            },
        )

    # -- lookups ------------------------------------------------------------------------------------
    def _machines_index(self) -> MachineIndex:
        """The Azure hosts indexed by subscription, resource group and name (lower-case, as ARM matches
        them), built once and again only when the fleet's host count changes, not scanned per request."""
        count = len(self.state.hosts)
        if self._index is None or self._index.host_count != count:
            self._index = MachineIndex.of(self.state.hosts.values(), count)
        return self._index

    def _azure_hosts(self) -> list[SimHost]:
        return list(self._machines_index().hosts)

    def _hosts_in(self, sub: str, rg: str | None) -> list[SimHost]:
        index = self._machines_index()
        in_sub = index.by_subscription.get(sub.lower())
        if not in_sub:
            raise SubscriptionNotFound(f"The subscription '{sub}' could not be found.")
        if rg is None:
            return list(in_sub)
        in_rg = index.by_resource_group.get((sub.lower(), rg.lower()))
        if not in_rg:
            raise ResourceGroupNotFound(f"Resource group '{rg}' could not be found.")
        return list(in_rg)

    def _machine(self, sub: str, rg: str, name: str) -> SimHost:
        host = self._machines_index().by_name.get((sub.lower(), rg.lower(), name.lower()))
        if host is not None:
            return host
        raise ResourceNotFound(
            f"The Resource 'Microsoft.HybridCompute/machines/{name}' under resource group '{rg}' was not "
            "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
        )

    # -- machines -----------------------------------------------------------------------------------
    def _list(self, request: Request, sub: str, rg: str | None = None) -> Response:
        self.state.advance()
        token = next((v for k, v in request.args.items() if k.lower() == "$skiptoken"), None)
        try:
            start = int(token) if token else 0
            if start < 0:
                raise ValueError(token)
        except ValueError as exc:
            raise InvalidSkipToken(f"The $skiptoken {token!r} is not valid.") from exc
        with self.state.lock:
            hosts = self._hosts_in(sub, rg)
            body: dict[str, Any] = {
                "value": [machine_json(self.state, h) for h in hosts[start : start + MACHINES_PAGE]]
            }
        end = start + MACHINES_PAGE
        if end < len(hosts):
            api = request.args.get("api-version", "2024-07-10")
            body["nextLink"] = (
                f"{request.host_url.rstrip('/')}{request.path}?api-version={api}&$skiptoken={end}"
            )
        return json_response(body)

    def _get(self, request: Request, sub: str, rg: str, name: str) -> Response:
        self.state.advance()
        with self.state.lock:
            return json_response(machine_json(self.state, self._machine(sub, rg, name)))

    def _extensions(self, request: Request, sub: str, rg: str, name: str) -> Response:
        self.state.advance()
        with self.state.lock:
            host = self._machine(sub, rg, name)
            made = self.extension_store.of(host)
            rows = extension_resources(self.state, host)
            if any(e.publisher == PUBLISHER for e in made):  # the sensor's own extension replaces the seed's
                rows = [r for r in rows if r["properties"]["publisher"] != PUBLISHER]
            rows += [e.resource() for e in made]
            return json_response({"value": rows})

    # -- machine extensions (fleetsim.azure.arm.extensions) -------------------------------------------
    def _put_extension(self, request: Request, sub: str, rg: str, name: str, ext: str) -> Response:
        now = self.state.advance()
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError as exc:
            raise InvalidRequestContent(f"The request body is not JSON: {exc}") from exc
        with self.state.lock:
            host = self._machine(sub, rg, name)
            operation = self.extension_store.put(host, ext, body, now)
            api = request.args.get("api-version", "2024-07-10")
            base = (
                f"{request.host_url.rstrip('/')}/subscriptions/{host.account}/providers/"
                f"Microsoft.HybridCompute/locations/{host.region}"
            )
            headers = {
                "Azure-AsyncOperation": f"{base}/operationStatus/{operation.id}?api-version={api}",
                "Location": f"{base}/operationResults/{operation.id}?api-version={api}",
                "Retry-After": str(OPERATION_RETRY_AFTER_SECONDS),
            }
        return Response(b"", 202, headers=headers)

    def _get_extension(self, request: Request, sub: str, rg: str, name: str, ext: str) -> Response:
        self.state.advance()
        with self.state.lock:
            host = self._machine(sub, rg, name)
            extension = self.extension_store.get(host, ext)
            if extension is not None:
                return json_response(extension.resource())
            for row in extension_resources(self.state, host):
                if row["name"].lower() == ext.lower():
                    return json_response(row)
        raise ResourceNotFound(
            f"The Resource 'Microsoft.HybridCompute/machines/{name}/extensions/{ext}' under resource group "
            f"'{rg}' was not found."
        )

    def _extension_operation(self, sub: str, loc: str, op: str) -> ExtensionOperation:
        operation = self.extension_store.operations.get(op)
        host = operation.extension.host if operation else None
        if host is None or (host.account.lower(), host.region.lower()) != (sub.lower(), loc.lower()):
            raise ResourceNotFound(f"The operation '{op}' could not be found.")
        return operation

    def _extension_status(self, request: Request, sub: str, loc: str, op: str) -> Response:
        self.state.advance()
        with self.state.lock:
            operation = self._extension_operation(sub, loc, op)
            headers = (
                {}
                if operation.status != "InProgress"
                else {"Retry-After": str(OPERATION_RETRY_AFTER_SECONDS)}
            )
            return json_response(self.extension_store.status_body(operation), 200, headers)

    def _extension_result(self, request: Request, sub: str, loc: str, op: str) -> Response:
        self.state.advance()
        with self.state.lock:
            operation = self._extension_operation(sub, loc, op)
            if operation.status == "InProgress":
                return Response(
                    b"",
                    202,
                    headers={"Location": request.url, "Retry-After": str(OPERATION_RETRY_AFTER_SECONDS)},
                )
            return Response(b"", 204)

    # -- installPatches -----------------------------------------------------------------------------
    def _install(self, request: Request, sub: str, rg: str, name: str) -> Response:
        now = self.state.advance()
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError as exc:
            raise InvalidRequestContent(f"The request body is not JSON: {exc}") from exc
        with self.state.lock:
            host = self._machine(sub, rg, name)
            self._refuse_if_busy(host)
            selected, excluded, not_selected, reboot = plan_install(self.state, host, body)
            op = self._begin(host, now, "installPatches")
            op.reboot_setting, op.selected = reboot, selected
            op.excluded, op.not_selected = excluded, not_selected
            if self.lost_install_answers[sub.lower()] > 0:  # the install runs; its answer is lost
                self.lost_install_answers[sub.lower()] -= 1
                raise InternalServerError("An internal server error occurred.")
        return Response(b"", 202, headers=self._poll_headers(request, op))

    def _assess(self, request: Request, sub: str, rg: str, name: str) -> Response:
        now = self.state.advance()
        with self.state.lock:
            host = self._machine(sub, rg, name)
            self._refuse_if_busy(host)
            op = self._begin(host, now, "assessPatches")
        return Response(b"", 202, headers=self._poll_headers(request, op))

    def _refuse_if_busy(self, host: SimHost) -> None:
        """409 while an install or assessment runs on the machine (caller holds the lock)."""
        busy = [o for o in self._running if self.operations[o].host is host]
        if busy:
            raise Conflict(
                f"Another patch operation ({self.operations[busy[0]].kind} {busy[0]}) is in progress on "
                f"machine '{host.name}'.",
            )

    def _begin(self, host: SimHost, now: float, kind: str) -> PatchOperation:
        """Register a running operation lasting ``timings.invocation_seconds`` (caller holds the lock)."""
        op_id = str(uuid.uuid4())
        lo, hi = self.state.timings.invocation_seconds
        op = PatchOperation(
            id=op_id,
            host=host,
            subscription=host.account,
            location=host.region,
            started_at=now,
            ended_at=now + lo + (hi - lo) * fraction(op_id, host.host_id),
            kind=kind,
        )
        self.operations[op_id] = op
        self._running.add(op_id)
        return op

    def _poll_headers(self, request: Request, op: PatchOperation) -> dict[str, str]:
        api = request.args.get("api-version", "2024-07-10")
        location = (
            f"{request.host_url.rstrip('/')}/subscriptions/{op.subscription}/providers/"
            f"Microsoft.HybridCompute/locations/{op.location}/operationStatuses/{op.id}?api-version={api}"
        )
        return {"Location": location, "Retry-After": str(OPERATION_RETRY_AFTER_SECONDS)}

    def _operation(self, request: Request, sub: str, loc: str, op: str) -> Response:
        self.state.advance()
        with self.state.lock:
            operation = self.operations.get(op)
            if operation is None or (operation.subscription.lower(), operation.location.lower()) != (
                sub.lower(),
                loc.lower(),
            ):
                raise ResourceNotFound(f"The operation '{op}' could not be found.")
            if operation.result is None:
                return Response(b"", 202, headers=self._poll_headers(request, operation))
            return json_response(operation.result)

    def _apply_due(self, now: float) -> None:
        """Apply the effects of every install or assessment that has ended by ``now`` (once each)."""
        with self.state.lock:
            for op_id in sorted(self._running, key=lambda o: self.operations[o].ended_at):
                op = self.operations[op_id]
                if op.ended_at <= now:
                    self._finish(op)
                    self._running.discard(op_id)

    def _finish(self, op: PatchOperation) -> None:
        if op.kind == "assessPatches":
            self._finish_assessment(op)
            return
        host = op.host
        base: dict[str, Any] = {
            "installationActivityId": op.id,
            "maintenanceWindowExceeded": False,
            "excludedPatchCount": len(op.excluded),
            "notSelectedPatchCount": len(op.not_selected),
            "pendingPatchCount": 0,
            "startDateTime": iso(op.started_at),
            "lastModifiedDateTime": iso(op.ended_at),
            "startedBy": "User",
            "patchServiceUsed": patch_service(host),
            "osType": os_type(host),
        }
        action: dict[str, Any] = {
            "at": dt.datetime.fromtimestamp(op.ended_at, dt.UTC).isoformat(),
            "action": "azure.installPatches",
            "operation_id": op.id,
            "reboot_setting": op.reboot_setting,
            "selected": sorted(op.selected),
        }
        if host.agent_status != "Connected":
            op.result = base | {
                "status": "Failed",
                "rebootStatus": "Unknown",
                "installedPatchCount": 0,
                "failedPatchCount": 0,
                "errorDetails": {
                    "code": "MachineDisconnected",
                    "message": f"The machine '{host.name}' is {host.agent_status} from Azure Arc; the patch "
                    "operation could not reach its agent.",
                    "details": [],
                },
            }
            host.actions.append(action | {"result": "Failed", "error": "MachineDisconnected"})
            self._record_installation(op, {})
            return
        effect = self.state.install(
            host, set(op.selected), fails=host.install_fails, reboot=op.reboot_setting != "Never"
        )
        installed, failed = effect["installed"], effect["failed"]
        needs_reboot = (
            effect["rebooted"] or bool(effect.get("pending_reboot")) or (is_windows(host) and installed)
        )
        if op.reboot_setting == "Always":
            reboot_status = "Completed"
        elif needs_reboot:
            reboot_status = "Required" if op.reboot_setting == "Never" else "Completed"
        else:
            reboot_status = "NotNeeded"
        if failed:
            status = "CompletedWithWarnings" if installed else "Failed"
        else:
            status = "Succeeded"
        errors = None
        if failed:
            errors = {
                "code": "PatchInstallationFailed",
                "message": f"{len(failed)} of {len(failed) + len(installed)} patches failed to install",
                "details": [],
            }
        op.result = base | {
            "status": status,
            "rebootStatus": reboot_status,
            "installedPatchCount": len(installed),
            "failedPatchCount": len(failed),
            "errorDetails": errors,
        }
        states = {p: "Installed" for p in installed} | {p: "Failed" for p in failed}
        states |= {p: "Excluded" for p in op.excluded} | {p: "NotSelected" for p in op.not_selected}
        self._record_installation(op, states)
        previous = assessment(self.state, host)
        host.cloud_state["azure_assessment"] = {
            "activityId": guid("assessment", op.id),
            "started": op.ended_at,
            "at": op.ended_at,
            "startedBy": "User",
            "rebootPending": reboot_status == "Required"
            or (previous["rebootPending"] and reboot_status != "Completed"),
        }
        host.actions.append(
            action
            | {
                "result": status,
                "installed": installed,
                "failed": failed,
                "rebooted": reboot_status == "Completed",
                "reboot_status": reboot_status,
            }
        )

    def _record_installation(self, op: PatchOperation, states: dict[str, str]) -> None:
        """Keep the install's result and each update's installationState for Resource Graph's
        ``patchinstallationresources`` (Learn, query-logs, "Description of the patchinstallationresults
        property": Installed, Failed, Pending, NotSelected, Excluded)."""
        op.host.cloud_state.setdefault("azure_installations", []).append(
            {"id": op.id, "at": op.ended_at, "result": dict(op.result or {}), "patches": dict(states)}
        )

    def _finish_assessment(self, op: PatchOperation) -> None:
        """End an assessPatches run: its MachineAssessPatchesResult, and (connected) the machine's new
        assessment as Resource Graph serves it."""
        host = op.host
        previous = assessment(self.state, host)
        action: dict[str, Any] = {
            "at": dt.datetime.fromtimestamp(op.ended_at, dt.UTC).isoformat(),
            "action": "azure.assessPatches",
            "operation_id": op.id,
        }
        result: dict[str, Any] = {
            "assessmentActivityId": op.id,
            "rebootPending": previous["rebootPending"],
            "startDateTime": iso(op.started_at),
            "lastModifiedDateTime": iso(op.ended_at),
            "startedBy": "User",
            "patchServiceUsed": patch_service(host),
            "osType": os_type(host),
        }
        if host.agent_status != "Connected":
            op.result = result | {
                "status": "Failed",
                "availablePatchCountByClassification": {COUNT_KEY[k]: 0 for k in ALL_CLASSIFICATIONS},
                "errorDetails": {
                    "code": "MachineDisconnected",
                    "message": f"The machine '{host.name}' is {host.agent_status} from Azure Arc; the "
                    "assessment could not reach its agent.",
                    "details": [],
                },
            }
            host.actions.append(action | {"result": "Failed", "error": "MachineDisconnected"})
            return
        op.result = result | {
            "status": "Succeeded",
            "availablePatchCountByClassification": patch_counts(self.state, host, ALL_CLASSIFICATIONS),
            "errorDetails": None,
        }
        host.cloud_state["azure_assessment"] = {
            "activityId": op.id,
            "started": op.started_at,
            "at": op.ended_at,
            "startedBy": "User",
            "rebootPending": previous["rebootPending"],
        }
        host.actions.append(
            action | {"result": "Succeeded", "available": [p.id for p in available_patches(self.state, host)]}
        )

    # -- Resource Graph -----------------------------------------------------------------------------
    def _graph(self, request: Request) -> Response:
        self.state.advance()
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError as exc:
            raise BadRequest(f"The request body is not JSON: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise BadRequest("The request body needs a 'query' string")
        if body.get("managementGroups"):
            raise BadRequest("fleetsim emulates subscription scopes only, not managementGroups")
        row_type, groups = parse_graph_query(body["query"])
        options = body.get("options") or {}
        if options.get("resultFormat", "objectArray") != "objectArray":
            raise BadRequest("fleetsim emulates resultFormat 'objectArray' only")
        if options.get("$skip"):
            raise BadRequest("fleetsim does not emulate options.$skip; page with $skipToken")
        top = options.get("$top", GRAPH_DEFAULT_TOP)
        if not isinstance(top, int) or not 1 <= top <= GRAPH_MAX_TOP:
            raise BadRequest(f"options.$top must be between 1 and {GRAPH_MAX_TOP}, got {top!r}")
        subscriptions = body.get("subscriptions")
        with self.state.lock:
            hosts = self._azure_hosts()
            if subscriptions is not None:
                wanted = {str(s).lower() for s in subscriptions}
                hosts = [h for h in hosts if h.account.lower() in wanted]
            if groups is not None:
                hosts = [h for h in hosts if (h.resource_group or "").lower() in groups]
            rows = self._graph_rows(row_type, hosts)
        scope = hashlib.sha256(json.dumps([body["query"], subscriptions]).encode()).hexdigest()[:16]
        start = decode_skip_token(options.get("$skipToken"), scope)
        page = rows[start : start + top]
        answer: dict[str, Any] = {
            "totalRecords": len(rows),
            "count": len(page),
            "resultTruncated": "false",
            "data": page,
            "facets": [],
        }
        if start + top < len(rows):
            token = json.dumps({"o": start + top, "s": scope}).encode()
            answer["$skipToken"] = base64.urlsafe_b64encode(token).decode()
        return json_response(answer)

    def _graph_rows(self, row_type: str, hosts: list[SimHost]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for host in hosts:
            common = {
                "tenantId": guid("aad-tenant", host.tenant),
                "location": host.region.lower(),
                "resourceGroup": (host.resource_group or "").lower(),
                "subscriptionId": host.account,
            }
            if row_type in (INSTALL_TYPE, INSTALL_PATCHES_TYPE):
                rows.extend(self._installation_rows(row_type, host, common))
                continue
            summary_id = f"{host.host_id}/patchAssessmentResults/latest".lower()
            if row_type == SUMMARY_TYPE:
                rows.append(
                    {"id": summary_id, "name": "latest", "type": SUMMARY_TYPE}
                    | common
                    | {"properties": summary_properties(self.state, host)}
                )
                continue
            for patch in available_patches(self.state, host):
                name = guid("softwarepatch", host.host_id, patch.id)
                rows.append(
                    {"id": f"{summary_id}/softwarepatches/{name}", "name": name, "type": PATCHES_TYPE}
                    | common
                    | {"properties": patch_properties(self.state, host, patch)}
                )
        rows.sort(key=lambda r: r["id"])
        return rows

    def _installation_rows(
        self, row_type: str, host: SimHost, common: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """``patchinstallationresources`` rows of the machine's installs (Learn, query-logs, "Patch
        installation results"): a summary ``<machine>/patchInstallationResults/<activity id>`` with the
        install's result, and one ``.../softwarePatches/<update>`` row per update it considered, with
        its installationState, patchName and (Linux) version."""
        rows: list[dict[str, Any]] = []
        for run in host.cloud_state.get("azure_installations", []):
            run_id = f"{host.host_id}/patchInstallationResults/{run['id']}".lower()
            if row_type == INSTALL_TYPE:
                props = {k: v for k, v in run["result"].items()} | {"maintenanceRunId": None}
                rows.append(
                    {"id": run_id, "name": run["id"], "type": INSTALL_TYPE} | common | {"properties": props}
                )
                continue
            for patch_id, installation_state in sorted(run["patches"].items()):
                patch = self.state.catalog[patch_id]
                name = guid("installedpatch", host.host_id, run["id"], patch_id)
                props = {
                    "installationState": installation_state,
                    "patchName": patch.title if patch.is_windows else patch.package_name,
                    "version": "" if patch.is_windows else package_version(patch),
                    "kbId": patch.kb_number or "" if patch.is_windows else "",
                    "classifications": [classification(patch)],
                    "publishedDateTime": published_date_time(patch),
                    "rebootRequired": bool(patch.kernel) or patch.is_windows,
                    "rebootBehavior": "CanRequestReboot",
                    "lastModifiedDateTime": iso(run["at"]),
                }
                rows.append(
                    {"id": f"{run_id}/softwarepatches/{name}", "name": name, "type": INSTALL_PATCHES_TYPE}
                    | common
                    | {"properties": props}
                )
        return rows
