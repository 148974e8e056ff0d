"""GCP VM Manager (OS Config v1), spoken to only here: inventories, vulnerability reports, patch jobs, OS
policy assignments.

Thin seams over ``google-cloud-os-config`` (``OsConfigServiceClient`` and ``OsConfigZonalServiceClient``
with ``transport="rest"``): one method per cloud call, lists read to the end at :data:`OSCONFIG_PAGE_SIZE`
per page. Configured only by an Airflow ``google_cloud_platform`` connection (see
:mod:`patchcycle.hooks.gcp_base`). Answers are plain dicts as the REST API writes them (camelCase, enums
by name, int64 counters as strings, fields at their default value left out: ``json_format.MessageToDict``).

A patch job is not a long-running operation: :meth:`OsConfigHook.execute_patch_job` returns at once
(state STARTED) and :meth:`OsConfigHook.patch_job` is polled until the state is one of
:data:`JOB_TERMINAL_STATES`; :meth:`OsConfigHook.instance_details` then says what happened per instance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from patchcycle.hooks.gcp_base import CALL_ERRORS, CALL_TIMEOUT_SECONDS, GoogleRestHook, message_dict

# Page size asked for on every OS Config list. Google documents no maximum for these lists (the GAPIC
# default for instance details is 100); fleetsim caps them at 100 too, so a zone of N instances costs
# ceil(N / 100) calls.
OSCONFIG_PAGE_SIZE = 100
JOB_TERMINAL_STATES = frozenset({"SUCCEEDED", "COMPLETED_WITH_ERRORS", "CANCELED", "TIMED_OUT"})
REBOOT_CONFIGS = ("DEFAULT", "ALWAYS", "NEVER")
ROLLOUT_MODES = ("ZONE_BY_ZONE", "CONCURRENT_ZONES")

InstanceRef = tuple[str, str] | str


def instance_reference(ref: InstanceRef) -> str:
    """An instance for a patch job's filter: ``(zone, name)`` -> ``zones/ZONE/instances/NAME``.

    A string is taken as it is when it already is such a reference (``zones/Z/instances/N``,
    ``projects/P/zones/Z/instances/N`` or an instance URL).
    """
    if isinstance(ref, str):
        if "/zones/" not in f"/{ref}" or "/instances/" not in ref:
            raise ValueError(f"instance {ref!r} is neither (zone, name) nor zones/ZONE/instances/NAME")
        return ref
    zone, name = ref
    if not zone or not name:
        raise ValueError(f"instance {ref!r} needs both a zone and a name")
    return f"zones/{zone}/instances/{name}"


class OsConfigHook(GoogleRestHook):
    """OS Config of one project: what each instance has and lacks, and patch jobs that install it."""

    @cached_property
    def service(self) -> Any:
        """``OsConfigServiceClient`` (patch jobs)."""
        from google.cloud import osconfig_v1

        return osconfig_v1.OsConfigServiceClient(**self.client_kwargs())

    @cached_property
    def zonal(self) -> Any:
        """``OsConfigZonalServiceClient`` (inventories, vulnerability reports; per zone)."""
        from google.cloud import osconfig_v1

        return osconfig_v1.OsConfigZonalServiceClient(**self.client_kwargs())

    def _all_instances(self, zone: str) -> str:
        return f"projects/{self.project}/locations/{zone}/instances/-"

    # -- what the instances have ----------------------------------------------------------------------
    def inventories(self, zone: str) -> list[dict[str, Any]]:
        """The FULL inventory of every instance in a zone whose agent reports one.

        Each: ``name`` (``projects/P/locations/Z/instances/ID/inventory``), ``osInfo`` (hostname,
        longName, shortName, version, architecture, kernelVersion, kernelRelease, osconfigAgentVersion),
        ``items`` (a map of item id -> ``{id, type: INSTALLED_PACKAGE | AVAILABLE_PACKAGE,
        installedPackage | availablePackage: {aptPackage | yumPackage | wuaPackage | qfePackage ...}}``),
        ``updateTime``. An instance without a running agent has no inventory: it is absent.
        """
        from google.cloud import osconfig_v1

        request = osconfig_v1.ListInventoriesRequest(
            parent=self._all_instances(zone),
            view=osconfig_v1.InventoryView.FULL,
            page_size=OSCONFIG_PAGE_SIZE,
        )
        try:
            pages = self.zonal.list_inventories(request=request, timeout=CALL_TIMEOUT_SECONDS)
            return [message_dict(inventory) for inventory in pages]
        except CALL_ERRORS as exc:
            raise self.failed(f"listing the inventories of zone {zone}", exc) from exc

    def vulnerability_reports(self, zone: str) -> list[dict[str, Any]]:
        """The vulnerability report of every instance in a zone with an agent.

        Each: ``name`` (``.../instances/ID/vulnerabilityReport``), ``highestUpgradableCveSeverity``,
        ``vulnerabilities`` (``details{cve, severity, cvssV3{baseScore, ...}}``,
        ``availableInventoryItemIds`` = the inventory items that fix it), ``updateTime``.
        """
        from google.cloud import osconfig_v1

        request = osconfig_v1.ListVulnerabilityReportsRequest(
            parent=self._all_instances(zone), page_size=OSCONFIG_PAGE_SIZE
        )
        try:
            pages = self.zonal.list_vulnerability_reports(request=request, timeout=CALL_TIMEOUT_SECONDS)
            return [message_dict(report) for report in pages]
        except CALL_ERRORS as exc:
            raise self.failed(f"listing the vulnerability reports of zone {zone}", exc) from exc

    # -- patch jobs -----------------------------------------------------------------------------------
    def execute_patch_job(
        self,
        *,
        display_name: str,
        description: str,
        instances: Sequence[InstanceRef],
        apt_packages: Sequence[str] = (),
        yum_packages: Sequence[str] = (),
        windows_kbs: Sequence[str] = (),
        reboot: str = "DEFAULT",
        duration_seconds: int,
        rollout_mode: str = "ZONE_BY_ZONE",
        disruption_budget: dict[str, int],
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Start one patch job on the named instances; returns the job (``name``, ``state`` STARTED, ...).

        ``instances``: ``(zone, name)`` pairs or references such as ``zones/Z/instances/N``. The packages
        are *exclusive* lists: apt instances install only ``apt_packages`` (package names), yum instances
        only ``yum_packages``, Windows instances only ``windows_kbs`` ("5046615" or "KB5046615"). An
        empty list sends no exclusive list for that package manager, and instances of that kind then get
        the OS's *default* update set: give every kind of instance in ``instances`` its list. Names
        only: OS Config cannot pin a version, and each instance updates a listed package it has to the
        newest build its repositories offer, ignoring packages it does not have (PatchConfig,
        AptSettings / YumSettings / WindowsUpdateSettings,
        https://cloud.google.com/compute/docs/osconfig/rest/v1/PatchConfig); read the installed
        versions back from :meth:`inventories` after the job.
        ``reboot``: DEFAULT (reboot when an update needs it) | ALWAYS | NEVER. ``disruption_budget``:
        ``{"fixed": n}`` or ``{"percent": p}`` instances per zone disrupted at once; with ZONE_BY_ZONE a
        zone whose failures reach the budget stops the job.
        """
        from google.cloud import osconfig_v1
        from google.protobuf import duration_pb2

        refs = [instance_reference(ref) for ref in instances]
        if not refs:
            raise ValueError(f"patch job {display_name!r}: no instances to patch")
        if reboot not in REBOOT_CONFIGS:
            raise ValueError(f"patch job {display_name!r}: reboot {reboot!r} is not one of {REBOOT_CONFIGS}")
        if rollout_mode not in ROLLOUT_MODES:
            raise ValueError(
                f"patch job {display_name!r}: rollout_mode {rollout_mode!r} not in {ROLLOUT_MODES}"
            )
        if len(disruption_budget) != 1 or next(iter(disruption_budget)) not in ("fixed", "percent"):
            raise ValueError(
                f"patch job {display_name!r}: disruption_budget {disruption_budget!r} is not "
                "{'fixed': n} or {'percent': p}"
            )
        if duration_seconds <= 0:
            raise ValueError(
                f"patch job {display_name!r}: duration_seconds must be positive, not {duration_seconds}"
            )
        config = osconfig_v1.PatchConfig(reboot_config=osconfig_v1.PatchConfig.RebootConfig[reboot])
        if apt_packages:
            config.apt = osconfig_v1.AptSettings(exclusive_packages=list(apt_packages))
        if yum_packages:
            config.yum = osconfig_v1.YumSettings(exclusive_packages=list(yum_packages))
        if windows_kbs:
            kbs = [kb if kb.upper().startswith("KB") else f"KB{kb}" for kb in windows_kbs]
            config.windows_update = osconfig_v1.WindowsUpdateSettings(exclusive_patches=kbs)
        request = osconfig_v1.ExecutePatchJobRequest(
            parent=f"projects/{self.project}",
            display_name=display_name,
            description=description,
            instance_filter=osconfig_v1.PatchInstanceFilter(instances=refs),
            patch_config=config,
            duration=duration_pb2.Duration(seconds=int(duration_seconds)),
            dry_run=dry_run,
            rollout=osconfig_v1.PatchRollout(
                mode=osconfig_v1.PatchRollout.Mode[rollout_mode],
                disruption_budget=osconfig_v1.FixedOrPercent(**disruption_budget),
            ),
        )
        # Sent once: the generated client wraps ExecutePatchJob with no default retry (google-cloud-os-config,
        # osconfig_v1 transports/base.py ``_prep_wrapped_messages``) and none is passed here; the request
        # takes no idempotency key, so a retry is the patch operator's to reconcile (``patch_jobs``).
        try:
            job = self.service.execute_patch_job(request=request, timeout=CALL_TIMEOUT_SECONDS)
        except CALL_ERRORS as exc:
            raise self.failed(
                f"executing patch job {display_name!r} on {len(refs)} instance(s)", exc
            ) from exc
        return message_dict(job)

    def patch_job(self, name: str) -> dict[str, Any]:
        """A patch job by name (``projects/P/patchJobs/ID``): ``state``, ``percentComplete``,
        ``instanceDetailsSummary`` (``<state>InstanceCount`` counters), ``errorMessage``, ..."""
        try:
            return message_dict(self.service.get_patch_job(name=name, timeout=CALL_TIMEOUT_SECONDS))
        except CALL_ERRORS as exc:
            raise self.failed(f"reading patch job {name}", exc) from exc

    def instance_details(self, job_name: str) -> list[dict[str, Any]]:
        """Every instance of a patch job: ``name`` (``projects/P/zones/Z/instances/NAME``),
        ``instanceSystemId``, ``state``, ``failureReason``, ``attemptCount``."""
        from google.cloud import osconfig_v1

        request = osconfig_v1.ListPatchJobInstanceDetailsRequest(
            parent=job_name, page_size=OSCONFIG_PAGE_SIZE
        )
        try:
            pages = self.service.list_patch_job_instance_details(
                request=request, timeout=CALL_TIMEOUT_SECONDS
            )
            return [message_dict(detail) for detail in pages]
        except CALL_ERRORS as exc:
            raise self.failed(f"listing the instances of patch job {job_name}", exc) from exc

    def patch_jobs(self, display_name: str | None = None) -> list[dict[str, Any]]:
        """The project's patch jobs as the API lists them, optionally only those with a display name.

        ListPatchJobs filters on ``patch_deployment`` only, so the display name is matched here: a retry
        can find the job an earlier attempt started before it could record its name.
        """
        from google.cloud import osconfig_v1

        request = osconfig_v1.ListPatchJobsRequest(
            parent=f"projects/{self.project}", page_size=OSCONFIG_PAGE_SIZE
        )
        try:
            jobs = [
                message_dict(j)
                for j in self.service.list_patch_jobs(request=request, timeout=CALL_TIMEOUT_SECONDS)
            ]
        except CALL_ERRORS as exc:
            raise self.failed("listing patch jobs", exc) from exc
        return [j for j in jobs if display_name is None or j.get("displayName") == display_name]

    def cancel_patch_job(self, name: str) -> dict[str, Any]:
        """Stop a patch job: instances not yet started never are; those patching finish."""
        try:
            job = self.service.cancel_patch_job(request={"name": name}, timeout=CALL_TIMEOUT_SECONDS)
            return message_dict(job)
        except CALL_ERRORS as exc:
            raise self.failed(f"canceling patch job {name}", exc) from exc

    # -- OS policy assignments ------------------------------------------------------------------------
    def _assignment_name(self, zone: str, assignment_id: str) -> str:
        return f"projects/{self.project}/locations/{zone}/osPolicyAssignments/{assignment_id}"

    @staticmethod
    def _assignment_message(body: Mapping[str, Any]) -> Any:
        """An ``OSPolicyAssignment`` from its REST JSON form (camelCase, enums by name)."""
        from google.cloud import osconfig_v1

        return osconfig_v1.OSPolicyAssignment.from_json(json.dumps(body))

    def create_os_policy_assignment(self, zone: str, assignment_id: str, body: Mapping[str, Any]) -> str:
        """CreateOSPolicyAssignment in a zone: a long-running operation, done when its rollout is; returns
        the operation's name. ``body`` is the assignment in its REST JSON form (``osPolicies``,
        ``instanceFilter``, ``rollout``, ``description``). The id is "unique within the project" (a 409 is
        :class:`~patchcycle.hooks.gcp_base.GcpConflict`). google-cloud-os-config,
        ``OsConfigZonalServiceClient.create_os_policy_assignment``."""
        try:
            operation = self.zonal.create_os_policy_assignment(
                parent=f"projects/{self.project}/locations/{zone}",
                os_policy_assignment=self._assignment_message(body),
                os_policy_assignment_id=assignment_id,
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except CALL_ERRORS as exc:
            raise self.failed(f"creating OS policy assignment {assignment_id} in zone {zone}", exc) from exc
        return str(operation.operation.name)

    def update_os_policy_assignment(
        self, zone: str, assignment_id: str, body: Mapping[str, Any], etag: str | None = None
    ) -> str:
        """UpdateOSPolicyAssignment: the whole assignment replaced by ``body``; "This method creates a new
        revision of the OS policy assignment" and a rollout when ``instance_filter`` or ``os_policies``
        changed. ``etag`` (from :meth:`os_policy_assignment`), when given, "must match the server's etag".
        Returns the long-running operation's name."""
        message = {**body, "name": self._assignment_name(zone, assignment_id)}
        if etag:
            message["etag"] = etag
        try:
            operation = self.zonal.update_os_policy_assignment(
                os_policy_assignment=self._assignment_message(message), timeout=CALL_TIMEOUT_SECONDS
            )
        except CALL_ERRORS as exc:
            raise self.failed(f"updating OS policy assignment {assignment_id} in zone {zone}", exc) from exc
        return str(operation.operation.name)

    def os_policy_assignment(self, zone: str, assignment_id: str) -> dict[str, Any]:
        """GetOSPolicyAssignment: its latest revision (``revisionId``, ``etag``, ``rolloutState``
        IN_PROGRESS | CANCELLING | CANCELLED | SUCCEEDED, ``baseline``, ``reconciling``, ...). Absent: a
        :class:`~patchcycle.hooks.gcp_base.GcpNotFound`."""
        name = self._assignment_name(zone, assignment_id)
        try:
            return message_dict(self.zonal.get_os_policy_assignment(name=name, timeout=CALL_TIMEOUT_SECONDS))
        except CALL_ERRORS as exc:
            raise self.failed(f"reading OS policy assignment {name}", exc) from exc

    def os_policy_assignment_operation(self, name: str) -> dict[str, Any]:
        """An assignment's long-running operation by name (``.../osPolicyAssignments/ID/operations/OP``):
        ``done``, ``metadata`` (OSPolicyAssignmentOperationMetadata: ``osPolicyAssignment``
        ``name@revisionId``, ``apiMethod``, ``rolloutState``), and when done ``error`` or ``response``
        (google.longrunning.Operations.GetOperation, the REST transport's ``operations_client``)."""
        from google.protobuf import json_format

        try:
            operation = self.zonal.transport.operations_client.get_operation(
                name=name, timeout=CALL_TIMEOUT_SECONDS
            )
        except CALL_ERRORS as exc:
            raise self.failed(f"reading operation {name}", exc) from exc
        return json_format.MessageToDict(operation)

    def os_policy_assignment_reports(self, zone: str, assignment_id: str) -> list[dict[str, Any]]:
        """Every instance's report for the assignment in a zone (ListOSPolicyAssignmentReports with ``-``
        for the instance): ``instance`` (its name), ``osPolicyAssignment`` (``name@revisionId``),
        ``osPolicyCompliances`` (per OS policy ``complianceState`` COMPLIANT | NON_COMPLIANT | UNKNOWN,
        ``complianceStateReason``, ``osPolicyResourceCompliances`` with their ``configSteps`` and the
        failed step's ``errorMessage``), ``lastRunId``. An instance the rollout has not reached has none."""
        from google.cloud import osconfig_v1

        parent = f"{self._all_instances(zone)}/osPolicyAssignments/{assignment_id}"
        request = osconfig_v1.ListOSPolicyAssignmentReportsRequest(
            parent=parent, page_size=OSCONFIG_PAGE_SIZE
        )
        try:
            pages = self.zonal.list_os_policy_assignment_reports(
                request=request, timeout=CALL_TIMEOUT_SECONDS
            )
            return [message_dict(report) for report in pages]
        except CALL_ERRORS as exc:
            raise self.failed(f"listing the reports of OS policy assignment {parent}", exc) from exc
