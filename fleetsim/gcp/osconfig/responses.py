"""The OS Config v1 REST endpoints: :class:`OsConfigApi` routes each request (:mod:`.urls`), counts it,
parses it with ``google-cloud-os-config``'s own message types and answers from the backend
(:mod:`.models`) through the same types; errors are :mod:`.exceptions`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from fleetsim.fleet import FleetState
from fleetsim.gcp import GcpError, json_body, json_response, page_offset, page_token
from fleetsim.gcp.osconfig.exceptions import InvalidArgument, NotFound
from fleetsim.gcp.osconfig.models import (
    LIST_PAGE_MAX,
    OsConfigBackend,
    PatchJob,
    instance_details_body,
    inventory_body,
    patch_job_body,
    seconds,
    vulnerability_report_body,
)
from fleetsim.gcp.osconfig.os_policies import OsPolicyBackend
from fleetsim.gcp.osconfig.urls import ROUTES


class OsConfigApi:
    """OS Config v1 REST under ``/v1/projects/...``: a WSGI app over the fleet state."""

    def __init__(self, state: FleetState) -> None:
        # The library's message types parse and render the wire format (imported here: ~1 s).
        from google.cloud.osconfig_v1.types import (
            inventory,
            os_policy_assignment_reports,
            os_policy_assignments,
            patch_jobs,
            vulnerability,
        )
        from google.protobuf import json_format

        self.state = state
        self._json_format = json_format
        self._types = {
            "ExecutePatchJobRequest": patch_jobs.ExecutePatchJobRequest,
            "PatchJob": patch_jobs.PatchJob,
            "ListPatchJobsResponse": patch_jobs.ListPatchJobsResponse,
            "ListPatchJobInstanceDetailsResponse": patch_jobs.ListPatchJobInstanceDetailsResponse,
            "Inventory": inventory.Inventory,
            "ListInventoriesResponse": inventory.ListInventoriesResponse,
            "InventoryView": inventory.InventoryView,
            "VulnerabilityReport": vulnerability.VulnerabilityReport,
            "ListVulnerabilityReportsResponse": vulnerability.ListVulnerabilityReportsResponse,
            "OSPolicyAssignment": os_policy_assignments.OSPolicyAssignment,
            "ListOSPolicyAssignmentsResponse": os_policy_assignments.ListOSPolicyAssignmentsResponse,
            "OSPolicyAssignmentReport": os_policy_assignment_reports.OSPolicyAssignmentReport,
            "ListOSPolicyAssignmentReportsResponse": (
                os_policy_assignment_reports.ListOSPolicyAssignmentReportsResponse
            ),
        }
        self.backend = OsConfigBackend(state)
        # Patch effects are revealed lazily: also whenever the fleet advances (the ground truth does).
        state.on_advance(self.backend.advance)
        self.policies = OsPolicyBackend(state, self.backend)
        state.on_advance(self.policies.advance)
        self._routes: list[tuple[re.Pattern[str], str, str, Callable[..., dict[str, Any]]]] = [
            (pattern, method, operation, getattr(self, handler))
            for pattern, method, operation, handler in ROUTES
        ]

    # -- WSGI ---------------------------------------------------------------------------------------
    def handles(self, path: str) -> bool:
        return path.startswith("/v1/projects/")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        operation: str = "Unknown"
        handler: Callable[..., dict[str, Any]] | None = None
        args: dict[str, str] = {}
        for pattern, method, name, fn in self._routes:
            match = pattern.match(request.path)
            if match and request.method == method:
                operation, handler, args = name, fn, match.groupdict()
                break
        with self.state.lock:
            self.state.calls[f"gcp.osconfig.{operation}"] += 1
        try:
            if handler is None:
                raise NotFound(f"fleetsim does not emulate OS Config {request.method} {request.path}")
            now = self.state.advance()
            with self.state.lock:
                response: Response = json_response(handler(request, now, **args))
        except GcpError as exc:
            response = exc.response()
        return response(environ, start_response)

    # -- rendering ----------------------------------------------------------------------------------
    def _render(self, type_name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` through the library's message type: enums as names, int64 as strings, no defaults."""
        message = self._types[type_name].pb()()
        self._json_format.ParseDict(body, message)
        return self._json_format.MessageToDict(message)

    def _page(self, request: Request, items: list[Any]) -> tuple[list[Any], str | None]:
        try:
            size = int(request.args.get("pageSize") or 0)
        except ValueError as exc:
            raise InvalidArgument(f"Invalid pageSize {request.args.get('pageSize')!r}") from exc
        if size < 0:
            raise InvalidArgument(f"pageSize must not be negative, got {size}")
        size = min(size or LIST_PAGE_MAX, LIST_PAGE_MAX)
        start = page_offset(request.args.get("pageToken"))
        end = start + size
        return items[start:end], (page_token(end) if end < len(items) else None)

    @staticmethod
    def _no_filter(request: Request) -> None:
        if request.args.get("filter"):
            raise InvalidArgument(f"fleetsim does not emulate the filter {request.args['filter']!r}")

    # -- inventories ----------------------------------------------------------------------------------
    def _full_view(self, request: Request) -> bool:
        raw = request.args.get("view", "0")
        view_type = self._types["InventoryView"]
        try:
            view = view_type(int(raw)) if raw.lstrip("-").isdigit() else view_type[raw]
        except (KeyError, ValueError) as exc:
            raise InvalidArgument(f"Invalid value for enum field view: {raw!r}") from exc
        return view.name == "FULL"

    def _list_inventories(self, request: Request, now: float, project: str, zone: str) -> dict[str, Any]:
        self._no_filter(request)
        full = self._full_view(request)
        hosts, token = self._page(request, self.backend.agent_instances(project, zone))
        body: dict[str, Any] = {"inventories": [inventory_body(self.state, h, full) for h in hosts]}
        if token:
            body["nextPageToken"] = token
        return self._render("ListInventoriesResponse", body)

    def _get_inventory(
        self, request: Request, now: float, project: str, zone: str, instance: str
    ) -> dict[str, Any]:
        host = self.backend.instance(project, zone, instance)
        return self._render("Inventory", inventory_body(self.state, host, True))

    # -- vulnerability reports ----------------------------------------------------------------------
    def _list_vulnerability_reports(
        self, request: Request, now: float, project: str, zone: str
    ) -> dict[str, Any]:
        self._no_filter(request)
        hosts, token = self._page(request, self.backend.agent_instances(project, zone))
        body: dict[str, Any] = {
            "vulnerabilityReports": [vulnerability_report_body(self.state, h) for h in hosts]
        }
        if token:
            body["nextPageToken"] = token
        return self._render("ListVulnerabilityReportsResponse", body)

    def _get_vulnerability_report(
        self, request: Request, now: float, project: str, zone: str, instance: str
    ) -> dict[str, Any]:
        host = self.backend.instance(project, zone, instance)
        return self._render("VulnerabilityReport", vulnerability_report_body(self.state, host))

    # -- patch jobs ---------------------------------------------------------------------------------
    def _parse_execute(self, request: Request) -> Any:
        raw = request.get_data(as_text=True) or "{}"
        json_body(request)  # a 400 for a body that is not a JSON object
        message_type = self._types["ExecutePatchJobRequest"]
        try:
            return message_type.from_json(raw, ignore_unknown_fields=False)
        except Exception as exc:  # json_format.ParseError names the field or the enum value
            raise InvalidArgument(f"Invalid JSON payload received. {exc}") from exc

    def _as_json(self, message: Any) -> dict[str, Any]:
        return self._json_format.MessageToDict(type(message).pb(message))

    def _job_json(self, job: PatchJob, now: float) -> dict[str, Any]:
        return self._render("PatchJob", patch_job_body(job, now))

    def _execute_patch_job(self, request: Request, now: float, project: str) -> dict[str, Any]:
        self.backend.project_instances(project)
        req = self._parse_execute(request)
        body = self._as_json(req)
        body.pop("parent", None)
        job = self.backend.execute(project, body, seconds(req.duration), now)
        return self._job_json(job, now)

    def _get_patch_job(self, request: Request, now: float, project: str, job_id: str) -> dict[str, Any]:
        return self._job_json(self.backend.job(project, job_id), now)

    def _cancel_patch_job(self, request: Request, now: float, project: str, job_id: str) -> dict[str, Any]:
        job = self.backend.job(project, job_id)
        self.backend.cancel(job, now)
        return self._job_json(job, now)

    def _list_patch_jobs(self, request: Request, now: float, project: str) -> dict[str, Any]:
        self.backend.project_instances(project)
        self._no_filter(request)
        page, token = self._page(request, self.backend.project_jobs(project))
        body: dict[str, Any] = {"patchJobs": [self._job_json(j, now) for j in page]}
        if token:
            body["nextPageToken"] = token
        return self._render("ListPatchJobsResponse", body)

    def _list_instance_details(
        self, request: Request, now: float, project: str, job_id: str
    ) -> dict[str, Any]:
        job = self.backend.job(project, job_id)
        self._no_filter(request)
        targets = job.targets if now >= job.patching_at else []
        page, token = self._page(request, targets)
        body: dict[str, Any] = {
            "patchJobInstanceDetails": [instance_details_body(project, t, now) for t in page]
        }
        if token:
            body["nextPageToken"] = token
        return self._render("ListPatchJobInstanceDetailsResponse", body)

    # -- OS policy assignments ------------------------------------------------------------------------
    def _parse_assignment(self, request: Request) -> dict[str, Any]:
        raw = request.get_data(as_text=True) or "{}"
        json_body(request)
        message_type = self._types["OSPolicyAssignment"]
        try:
            return self._as_json(message_type.from_json(raw, ignore_unknown_fields=False))
        except Exception as exc:  # json_format.ParseError names the field or the enum value
            raise InvalidArgument(f"Invalid JSON payload received. {exc}") from exc

    def _create_assignment(self, request: Request, now: float, project: str, zone: str) -> dict[str, Any]:
        self.backend.project_instances(project)
        body = self._parse_assignment(request)
        assignment_id = request.args.get("osPolicyAssignmentId", "")
        operation = self.policies.create(project, zone, assignment_id, body, now)
        return self.policies.operation_body(operation, now, self._assignment_json)

    def _assignment_json(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._render("OSPolicyAssignment", body)

    def _get_assignment(
        self, request: Request, now: float, project: str, zone: str, assignment: str
    ) -> dict[str, Any]:
        found = self.policies.get(project, zone, assignment, now)
        return self._assignment_json(self.policies.assignment_body(found, now))

    def _list_assignments(self, request: Request, now: float, project: str, zone: str) -> dict[str, Any]:
        page, token = self._page(request, self.policies.listed(project, zone, now))
        body: dict[str, Any] = {"osPolicyAssignments": [self.policies.assignment_body(a, now) for a in page]}
        if token:
            body["nextPageToken"] = token
        return self._render("ListOSPolicyAssignmentsResponse", body)

    def _update_assignment(
        self, request: Request, now: float, project: str, zone: str, assignment: str
    ) -> dict[str, Any]:
        body = self._parse_assignment(request)
        mask = request.args.get("updateMask", "")
        paths = [p.strip() for p in mask.split(",") if p.strip()]
        operation = self.policies.update(project, zone, assignment, body, paths, now)
        return self.policies.operation_body(operation, now, self._assignment_json)

    def _delete_assignment(
        self, request: Request, now: float, project: str, zone: str, assignment: str
    ) -> dict[str, Any]:
        operation = self.policies.delete(project, zone, assignment, now)
        return self.policies.operation_body(operation, now, self._assignment_json)

    def _get_operation(
        self, request: Request, now: float, project: str, zone: str, assignment: str, op: str
    ) -> dict[str, Any]:
        name = f"projects/{project}/locations/{zone}/osPolicyAssignments/{assignment}/operations/{op}"
        return self.policies.operation_body(self.policies.operation(name), now, self._assignment_json)

    def _get_report(
        self, request: Request, now: float, project: str, zone: str, instance: str, assignment: str
    ) -> dict[str, Any]:
        if "-" in (instance, assignment):
            raise InvalidArgument(
                "GetOSPolicyAssignmentReport names one instance and one assignment, not '-'"
            )
        rows = self.policies.reports(project, zone, instance, assignment, now)
        if not rows:
            raise NotFound(
                f"Resource not found: projects/{project}/locations/{zone}/instances/{instance}"
                f"/osPolicyAssignments/{assignment}/report"
            )
        return self._render("OSPolicyAssignmentReport", rows[0])

    def _list_reports(
        self, request: Request, now: float, project: str, zone: str, instance: str, assignment: str
    ) -> dict[str, Any]:
        if "-" not in (instance, assignment):
            raise InvalidArgument(
                "ListOSPolicyAssignmentReports: either {instance} or {assignment} must be '-'"
            )
        self._no_filter(request)
        rows = self.policies.reports(project, zone, instance, assignment, now)
        page, token = self._page(request, rows)
        body: dict[str, Any] = {"osPolicyAssignmentReports": page}
        if token:
            body["nextPageToken"] = token
        return self._render("ListOSPolicyAssignmentReportsResponse", body)
