"""Which OS Config v1 REST path and method reach which operation: the paths ``google-cloud-os-config``
sends with ``transport="rest"``, each with its RPC name (counted per call in ``state.calls`` as
``gcp.osconfig.<operation>``) and the :class:`~.responses.OsConfigApi` method answering it.
"""

from __future__ import annotations

import re

PROJECT = r"^/v1/projects/(?P<project>[^/]+)"
ZONE = PROJECT + r"/locations/(?P<zone>[^/]+)/instances"
JOB = PROJECT + r"/patchJobs/(?P<job_id>[^/:]+)"
LOC = PROJECT + r"/locations/(?P<zone>[^/]+)"
ASSIGNMENT = LOC + r"/osPolicyAssignments/(?P<assignment>[^/:]+)"
REPORTS = LOC + r"/instances/(?P<instance>[^/]+)/osPolicyAssignments/(?P<assignment>[^/]+)"

ROUTES: tuple[tuple[re.Pattern[str], str, str, str], ...] = (
    (re.compile(ZONE + r"/-/inventories$"), "GET", "ListInventories", "_list_inventories"),
    (re.compile(ZONE + r"/(?P<instance>[^/]+)/inventory$"), "GET", "GetInventory", "_get_inventory"),
    (
        re.compile(ZONE + r"/-/vulnerabilityReports$"),
        "GET",
        "ListVulnerabilityReports",
        "_list_vulnerability_reports",
    ),
    (
        re.compile(ZONE + r"/(?P<instance>[^/]+)/vulnerabilityReport$"),
        "GET",
        "GetVulnerabilityReport",
        "_get_vulnerability_report",
    ),
    (re.compile(PROJECT + r"/patchJobs:execute$"), "POST", "ExecutePatchJob", "_execute_patch_job"),
    (re.compile(PROJECT + r"/patchJobs$"), "GET", "ListPatchJobs", "_list_patch_jobs"),
    (re.compile(JOB + r"$"), "GET", "GetPatchJob", "_get_patch_job"),
    (re.compile(JOB + r":cancel$"), "POST", "CancelPatchJob", "_cancel_patch_job"),
    (
        re.compile(JOB + r"/instanceDetails$"),
        "GET",
        "ListPatchJobInstanceDetails",
        "_list_instance_details",
    ),
    # OsConfigZonalService: OS policy assignments (fleetsim.gcp.osconfig.os_policies).
    (re.compile(LOC + r"/osPolicyAssignments$"), "POST", "CreateOSPolicyAssignment", "_create_assignment"),
    (re.compile(LOC + r"/osPolicyAssignments$"), "GET", "ListOSPolicyAssignments", "_list_assignments"),
    (re.compile(ASSIGNMENT + r"$"), "GET", "GetOSPolicyAssignment", "_get_assignment"),
    (re.compile(ASSIGNMENT + r"$"), "PATCH", "UpdateOSPolicyAssignment", "_update_assignment"),
    (re.compile(ASSIGNMENT + r"$"), "DELETE", "DeleteOSPolicyAssignment", "_delete_assignment"),
    (re.compile(ASSIGNMENT + r"/operations/(?P<op>[^/:]+)$"), "GET", "GetOperation", "_get_operation"),
    (re.compile(REPORTS + r"/report$"), "GET", "GetOSPolicyAssignmentReport", "_get_report"),
    (re.compile(REPORTS + r"/reports$"), "GET", "ListOSPolicyAssignmentReports", "_list_reports"),
)
