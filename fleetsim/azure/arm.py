"""Azure Resource Manager for Arc-enabled servers, as the unmodified azure-mgmt SDKs reach it.

Serves the hosts whose ``cloud`` is ``"azure"`` (seeded by :mod:`fleetsim.seed`), following the 2024-07-10
HybridCompute swagger and research §1 / §7:

ARM (``Authorization: Bearer <anything>`` required; paths matched case-insensitively; ``api-version``
accepted whatever its value):

- ``GET /subscriptions/{sub}/providers/Microsoft.HybridCompute/machines`` and
  ``GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.HybridCompute/machines``: machines
  sorted by name, :data:`MACHINES_PAGE` per page, absolute ``nextLink`` (``$skiptoken`` = offset) built
  from the request's Host. Unknown subscription 404 ``SubscriptionNotFound``, unknown resource group 404
  ``ResourceGroupNotFound``.
- ``GET .../machines/{name}``: one machine, 404 ``ResourceNotFound`` when unknown.
- ``GET .../machines/{name}/extensions``: the machine's extensions (CrowdStrike Falcon sensor when the host
  runs one, Azure Monitor agent).
- ``POST .../machines/{name}/installPatches`` (MachineInstallPatchesParameters) → 202, empty body, absolute
  ``Location`` (``/subscriptions/{sub}/providers/Microsoft.HybridCompute/locations/{loc}/operationStatuses/
  {id}``) and ``Retry-After: 1``. 400 ``InvalidParameter`` for a body the service would refuse, 409
  ``Conflict`` while another install runs on the machine. ``GET`` on the Location answers 202 (same
  headers) until the operation's end, then 200 with the MachineInstallPatchesResult, every time after.
  The operation takes ``timings.invocation_seconds`` (deterministic per operation and machine).

  Which patches (see :func:`plan_install`, after Microsoft Learn "How to programmatically manage updates
  for Azure Arc-enabled servers", "Update deployment" > "Request body"): of the catalog patches the
  machine misses or failed before, the union of those whose classification (Linux: Critical = security
  patch of Critical severity, Security, Other) is in ``classificationsToInclude`` and those named by
  ``linuxParameters.packageNameMasksToInclude`` (``name_version`` or ``name=version``: that version;
  a bare name or glob: the newest available version of each package) or
  ``windowsParameters.kbNumbersToInclude`` (digits, without "KB"); Windows then keeps those published on
  or before ``maxPatchPublishDate``; finally those matching ``packageNameMasksToExclude`` /
  ``kbNumbersToExclude`` are dropped (excluded). Windows patch-name masks are not emulated (400);
  ``excludeKbsRequiringReboot`` is ignored.

  Effects are applied once, when the fleet first advances past the operation's end (any Azure request, the
  ground truth, another vendor reading hosts), through ``FleetState.install`` (shared with every cloud),
  and recorded as the ground-truth action ``azure.installPatches``; a Disconnected machine's operation
  fails with ``errorDetails.code`` ``MachineDisconnected`` and changes nothing. Status: Succeeded;
  CompletedWithWarnings when some patches failed and others installed; Failed when every selected patch
  failed. rebootStatus: Completed when the machine rebooted (rebootSetting Always, or a kernel / Windows
  update under IfRequired), Required when one needed a reboot under Never, NotNeeded otherwise. An install
  is followed by an assessment, so Resource Graph then reports the machine as of the install's end
  (startedBy "User").
- ``POST .../machines/{name}/assessPatches`` (no body) → the same long-running protocol (202 + ``Location``
  + ``Retry-After``, 409 ``Conflict`` while an install or assessment runs on the machine, same duration).
  The final 200 is the MachineAssessPatchesResult: status Succeeded, ``assessmentActivityId`` (the
  operation id), ``rebootPending`` (as the previous assessment knew it),
  ``availablePatchCountByClassification`` with all nine keys (critical, security, other, updateRollup,
  featurePack, servicePack, definition, tools, updates) counted over the catalog patches the machine
  misses or failed when the operation ends (Linux: Critical = security patch of Critical severity,
  Security, Other; Windows by classification), startDateTime, lastModifiedDateTime, startedBy "User",
  patchServiceUsed, osType, errorDetails null. It changes no patch; it replaces the assessment Resource
  Graph serves (activity id, times, startedBy "User"), and is recorded as the ground-truth action
  ``azure.assessPatches``. A Disconnected machine's assessment fails (status Failed, zero counts,
  ``errorDetails.code`` ``MachineDisconnected``) and leaves Resource Graph's assessment as it was.
- Throttling (scenario ``azure.throttle``, per subscription, over every ``/subscriptions/{sub}/...``
  request): the first ``requests`` requests, then every ``every``-th, get 429 ``TooManyRequests`` with
  ``Retry-After`` and ``x-ms-ratelimit-remaining-subscription-reads: 0``.
- Lost answers (scenario ``azure.lost_install_answers``, per subscription): the first n installPatches
  requests start their operation, but the caller gets 500 ``InternalServerError``.

Azure Resource Graph (``POST /providers/Microsoft.ResourceGraph/resources``, research §1.8; not throttled):
KQL cannot be emulated, so only these query shapes are answered (anything else is 400 ``BadRequest``
naming the shapes)::

    patchassessmentresources
    | where type =~ 'microsoft.hybridcompute/machines/patchassessmentresults'
    | where resourceGroup in~ ('rg-a', 'rg-b')           (optional)
    | order by id asc                                     (optional)

where the type may also be ``.../patchassessmentresults/softwarepatches`` and ``=~`` may be ``==``; and
the same shapes over ``patchinstallationresources`` with type ``.../patchinstallationresults`` (one row
per install: its MachineInstallPatchesResult) or ``.../patchinstallationresults/softwarepatches`` (one
row per update the install considered: installationState Installed / Failed / NotSelected / Excluded,
patchName, version, kbId, classifications, publishedDateTime, rebootRequired, rebootBehavior).

Rows are the table's full rows (no projection), ordered by id, all ids lower-cased as Resource Graph
reports them: ``{id, name, type, tenantId, location, resourceGroup, subscriptionId, properties}``.
A summary row (``<machine id>/patchassessmentresults/latest``) has ``properties`` {status,
assessmentActivityId, rebootPending, availablePatchCountByClassification (Linux: critical, security,
other; Windows: critical, security, updateRollup, featurePack, servicePack, definition, tools, updates),
startDateTime, lastModifiedDateTime, startedBy, patchServiceUsed, osType, errorDetails}; a patch row
(``.../latest/softwarepatches/<patch guid>``), one per patch the machine misses or failed, has
``properties`` {patchName (Linux package name / Windows update title), version, kbId (Windows),
classifications [..], msrcSeverity (Windows), patchId, publishedDateTime (null for Linux, as Learn's
query-logs page says), lastModifiedDateTime}. The
assessment is derived from the machine's current missing/failed sets. Scope: the body's
``subscriptions`` (all of fleetsim's when absent). Paging: ``options.$top`` (1..1000, default 100) and
an opaque ``$skipToken`` bound to the query and scope; ``resultFormat`` must be ``objectArray``.

Calls counted in ``state.calls``: ``azure.arm.<swagger operationId>`` (``Machines_ListBySubscription``,
``Machines_ListByResourceGroup``, ``Machines_Get``, ``MachineExtensions_List``, ``Machines_InstallPatches``,
``Machines_AssessPatches``, ``OperationStatus_Get``), ``azure.arm.throttled`` (a 429 counts only there),
``azure.arm.unauthenticated``, ``azure.arm.unrouted``, and ``azure.resourcegraph.Resources``.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import hashlib
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from fleetsim.fleet import FleetState, SimHost
from fleetsim.scenario import ArmThrottle, CatalogPatch

MACHINES_PAGE = 100  # machines per list page (ARM's page size for HybridCompute machines)
GRAPH_MAX_TOP = 1000  # Resource Graph's documented maximum rows per page
GRAPH_DEFAULT_TOP = 100
OPERATION_RETRY_AFTER_SECONDS = 1  # integer: the SDK parses Retry-After of the 202 as int; 0 means "none"
AGENT_VERSION = "1.50.02910.2051"
SUMMARY_TYPE = "microsoft.hybridcompute/machines/patchassessmentresults"
PATCHES_TYPE = "microsoft.hybridcompute/machines/patchassessmentresults/softwarepatches"
GRAPH_TABLE = "patchassessmentresources"
INSTALL_TYPE = "microsoft.hybridcompute/machines/patchinstallationresults"
INSTALL_PATCHES_TYPE = "microsoft.hybridcompute/machines/patchinstallationresults/softwarepatches"
INSTALL_TABLE = "patchinstallationresources"
# The Resource Graph tables fleetsim answers, and the row types of each.
GRAPH_TABLES = {
    GRAPH_TABLE: (SUMMARY_TYPE, PATCHES_TYPE),
    INSTALL_TABLE: (INSTALL_TYPE, INSTALL_PATCHES_TYPE),
}

LINUX_CLASSIFICATIONS = ("Critical", "Security", "Other")
WINDOWS_CLASSIFICATIONS = (
    "Critical",
    "Security",
    "UpdateRollUp",
    "FeaturePack",
    "ServicePack",
    "Definition",
    "Tools",
    "Updates",
)
# The catalog's (SSM's) Windows classifications in Azure's vocabulary.
_WINDOWS_CLASS_OF = {
    "securityupdates": "Security",
    "criticalupdates": "Critical",
    "updaterollups": "UpdateRollUp",
    "featurepacks": "FeaturePack",
    "servicepacks": "ServicePack",
    "definitionupdates": "Definition",
    "tools": "Tools",
    "updates": "Updates",
}
_SECURITY_CLASSES = {"security", "securityupdates", "criticalupdates"}
# availablePatchCountByClassification keys per classification.
_COUNT_KEY = {
    "Critical": "critical",
    "Security": "security",
    "Other": "other",
    "UpdateRollUp": "updateRollup",
    "FeaturePack": "featurePack",
    "ServicePack": "servicePack",
    "Definition": "definition",
    "Tools": "tools",
    "Updates": "updates",
}
_OS_SKU = {
    "ubuntu_20_04": "Ubuntu 20.04.6 LTS",
    "ubuntu_22_04": "Ubuntu 22.04.4 LTS",
    "centos_7": "CentOS Linux 7 (Core)",
    "amazon_linux_2": "Amazon Linux 2",
    "amazon_linux_2023": "Amazon Linux 2023",
}
_WINDOWS_BUILD = {"windows_2016": 7515, "windows_2019": 6532, "windows_2022": 2849}
_DURATION = re.compile(r"^P(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?$")
_SUB = r"/subscriptions/(?P<sub>[^/]+)"
_RG = _SUB + r"/resourcegroups/(?P<rg>[^/]+)"
_MACHINES = r"/providers/microsoft\.hybridcompute/machines"


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def _fraction(*parts: str) -> float:
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _guid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "fleetsim|" + "|".join(parts)))


class ArmError(Exception):
    """An ARM error answer: HTTP status, ``error.code`` and ``error.message``."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    def response(self) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return _json({"error": error}, self.status)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers=headers, mimetype="application/json")


# -- how a host looks to Azure --------------------------------------------------------------------
def is_windows(host: SimHost) -> bool:
    return host.platform.platform_type == "Windows"


def os_type(host: SimHost) -> str:
    """``osType`` as patch results report it (Linux / Windows); machines report it lower-case."""
    return host.platform.platform_type


def patch_service(host: SimHost) -> str:
    if is_windows(host):
        return "WU"
    return "APT" if host.os_family.startswith("ubuntu") else "YUM"


def classification(patch: CatalogPatch) -> str:
    """The patch's classification in Update Manager's vocabulary for its OS."""
    cls = patch.classification.lower()
    if patch.is_windows:
        return _WINDOWS_CLASS_OF.get(cls, "Updates")
    if cls in _SECURITY_CLASSES:
        return "Critical" if patch.severity == "Critical" else "Security"
    return "Other"


def os_sku(host: SimHost) -> str:
    p = host.platform
    if is_windows(host):
        return p.platform_name.removeprefix("Microsoft ")
    if host.os_family.startswith("rhel"):
        return f"Red Hat Enterprise Linux {p.platform_version}"
    return _OS_SKU.get(host.os_family, f"{p.platform_name} {p.platform_version}")


def os_version(host: SimHost) -> str:
    """Linux: the running kernel release (as Arc reports it); Windows: the build, bumped per update."""
    if is_windows(host):
        base = _WINDOWS_BUILD.get(host.os_family, 1000)
        return f"{host.platform.platform_version}.{base + len(host.installed)}"
    return host.kernel or host.platform.platform_version


def _status_changed(state: FleetState, host: SimHost) -> dt.datetime:
    """When the machine last connected (Connected) or lost its connection (Disconnected)."""
    days = 2 if host.agent_status == "Disconnected" else 30
    return state.scenario.last_scan - dt.timedelta(days=days)


def _extension_rows(host: SimHost, at: str) -> list[dict[str, Any]]:
    """(name, publisher, type, handler version, status message) of the machine's extensions."""
    linux = not is_windows(host)
    ama = "AzureMonitorLinuxAgent" if linux else "AzureMonitorWindowsAgent"
    rows = [(ama, "Microsoft.Azure.Monitor", ama, "1.31.1", "Enable succeeded")]
    if host.falcon is not None:
        falcon = "FalconSensorLinux" if linux else "FalconSensorWindows"
        rows.append(
            (
                "CrowdStrikeFalconSensor",
                "Crowdstrike.Falcon",
                falcon,
                "1.0.3",
                f"Enable succeeded: Falcon sensor {host.falcon.version}",
            )
        )
    return [
        {
            "name": name,
            "publisher": publisher,
            "type": ext_type,
            "typeHandlerVersion": version,
            "status": {
                "code": "success",
                "level": "Information",
                "displayStatus": "Provisioning succeeded",
                "message": message,
                "time": at,
            },
        }
        for name, publisher, ext_type, version, message in rows
    ]


def machine_json(state: FleetState, host: SimHost) -> dict[str, Any]:
    """The Machine resource (2024-07-10) of an Arc-enabled server."""
    changed = _status_changed(state, host).isoformat().replace("+00:00", "Z")
    linux = not is_windows(host)
    config_key = "linuxConfiguration" if linux else "windowsConfiguration"
    prefix = ".".join(host.private_ip.split(".")[:3])
    return {
        "id": host.host_id,
        "name": host.name,
        "type": "Microsoft.HybridCompute/machines",
        "location": host.region,
        "tags": {"Environment": host.environment, "Criticality": host.criticality, "Name": host.name},
        "properties": {
            "provisioningState": "Succeeded",
            "status": host.agent_status,
            "lastStatusChange": changed,
            "agentVersion": AGENT_VERSION,
            "osName": "linux" if linux else "windows",
            "osType": "linux" if linux else "windows",
            "osSku": os_sku(host),
            "osVersion": os_version(host),
            "vmId": _guid("vm", host.host_id),
            "displayName": host.name,
            "machineFqdn": f"{host.name}.{host.tenant}.internal",
            "dnsFqdn": f"{host.name}.{host.tenant}.internal",
            "osProfile": {
                "computerName": host.name,
                config_key: {
                    "patchSettings": {"assessmentMode": "AutomaticByPlatform", "patchMode": "ImageDefault"}
                },
            },
            "networkProfile": {
                "networkInterfaces": [
                    {
                        "ipAddresses": [
                            {
                                "address": host.private_ip,
                                "ipAddressVersion": "IPv4",
                                "subnet": {"addressPrefix": f"{prefix}.0/24"},
                            }
                        ]
                    }
                ]
            },
            "extensions": [
                {k: v for k, v in ext.items() if k != "publisher"}
                | {"type": f"{ext['publisher']}.{ext['type']}"}
                for ext in _extension_rows(host, changed)
            ],
            "cloudMetadata": {"provider": "N/A"},
        },
    }


def extension_resources(state: FleetState, host: SimHost) -> list[dict[str, Any]]:
    """The machine's MachineExtension resources (``.../machines/{name}/extensions``)."""
    at = _status_changed(state, host).isoformat().replace("+00:00", "Z")
    return [
        {
            "id": f"{host.host_id}/extensions/{ext['name']}",
            "name": ext["name"],
            "type": "Microsoft.HybridCompute/machines/extensions",
            "location": host.region,
            "properties": {
                "publisher": ext["publisher"],
                "type": ext["type"],
                "typeHandlerVersion": ext["typeHandlerVersion"],
                "autoUpgradeMinorVersion": True,
                "enableAutomaticUpgrade": False,
                "provisioningState": "Succeeded",
                "instanceView": {
                    "name": ext["name"],
                    "type": ext["type"],
                    "typeHandlerVersion": ext["typeHandlerVersion"],
                    "status": ext["status"],
                },
            },
        }
        for ext in _extension_rows(host, at)
    ]


# -- patch assessment (Update Manager) ------------------------------------------------------------
def assessment(state: FleetState, host: SimHost) -> dict[str, Any]:
    """The machine's latest assessment: Azure's periodic one as of the scenario's last scan, or the
    one that followed the last install or assessPatches (see :meth:`ArmApi._finish`)."""
    latest = host.cloud_state.get("azure_assessment")
    if latest is None:
        at = min(state.scenario.last_scan, _status_changed(state, host) + dt.timedelta(hours=1))
        latest = {
            "activityId": _guid("assessment", host.host_id),
            "started": (at - dt.timedelta(minutes=2)).timestamp(),
            "at": at.timestamp(),
            "startedBy": "Platform",
            "rebootPending": False,
        }
    return latest


def available_patches(state: FleetState, host: SimHost) -> list[CatalogPatch]:
    return sorted((state.catalog[p] for p in host.missing | host.failed), key=lambda p: p.id)


def patch_counts(state: FleetState, host: SimHost, keys: tuple[str, ...]) -> dict[str, int]:
    """availablePatchCountByClassification over the machine's missing/failed patches, one key per
    classification in ``keys`` (Resource Graph shows the OS's own; assessPatches results all nine)."""
    counts = {_COUNT_KEY[k]: 0 for k in keys}
    for patch in available_patches(state, host):
        counts[_COUNT_KEY[classification(patch)]] += 1
    return counts


def summary_properties(state: FleetState, host: SimHost) -> dict[str, Any]:
    latest = assessment(state, host)
    counts = patch_counts(state, host, WINDOWS_CLASSIFICATIONS if is_windows(host) else LINUX_CLASSIFICATIONS)
    return {
        "status": "Succeeded",
        "assessmentActivityId": latest["activityId"],
        "rebootPending": latest["rebootPending"],
        "availablePatchCountByClassification": counts,
        "startDateTime": _iso(latest["started"]),
        "lastModifiedDateTime": _iso(latest["at"]),
        "startedBy": latest["startedBy"],
        "patchServiceUsed": patch_service(host),
        "osType": os_type(host),
        "errorDetails": None,
    }


def package_version(patch: CatalogPatch) -> str:
    """The version a Linux update installs as the package manager reports it (``version``), the same
    version[-release] fleetsim's SSM reports (:func:`fleetsim.aws.baselines.evr`), so one package
    version has one name across clouds."""
    from fleetsim.aws.baselines import evr

    _, version, release = evr(patch)
    return f"{version}-{release}" if release else version


def published_date_time(patch: CatalogPatch) -> str | None:
    """``publishedDateTime`` of a softwarepatches row: the vendor's release for a Windows update, null
    for a Linux one. Microsoft Learn, "Access Azure Update Manager operations data using Azure Resource
    Graph" (https://learn.microsoft.com/azure/update-manager/query-logs, "Description of the
    patchassessmentresources property"): "Currently this value is not available in case of Linux
    updates." """
    if not patch.is_windows:
        return None
    return _iso(dt.datetime.combine(patch.released, dt.time(), dt.UTC).timestamp())


def patch_properties(state: FleetState, host: SimHost, patch: CatalogPatch) -> dict[str, Any]:
    latest = assessment(state, host)
    props: dict[str, Any] = {
        "patchName": patch.title if patch.is_windows else patch.package_name,
        "version": "" if patch.is_windows else package_version(patch),
        "classifications": [classification(patch)],
        "publishedDateTime": published_date_time(patch),
        "lastModifiedDateTime": _iso(latest["at"]),
    }
    if patch.is_windows:
        props.update(
            kbId=patch.kb_number or "",
            msrcSeverity=patch.severity,
            patchId=_guid("update", patch.id),
            rebootBehavior="CanRequestReboot",
        )
    else:
        distro = f"{host.platform.platform_name.replace(' ', '')}_{host.platform.platform_version}"
        props["patchId"] = f"{patch.package_name}_{package_version(patch)}_{distro}"
    return props


# -- installPatches / assessPatches ---------------------------------------------------------------
# Every classification key of an assessPatches result (AvailablePatchCountByClassification).
ALL_CLASSIFICATIONS = ("Critical", "Security", "Other", *WINDOWS_CLASSIFICATIONS[2:])


@dataclass
class PatchOperation:
    """One installPatches or assessPatches run on one machine (``kind`` names which)."""

    id: str
    host: SimHost
    subscription: str
    location: str
    started_at: float
    ended_at: float
    kind: str = "installPatches"
    reboot_setting: str = ""  # installs only
    selected: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()
    not_selected: frozenset[str] = frozenset()
    result: dict[str, Any] | None = None


InstallOperation = PatchOperation  # the former name


def _str_list(params: dict[str, Any], key: str, where: str) -> list[str]:
    value = params.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ArmError(400, "InvalidParameter", f"{where}.{key} must be a list of strings, got {value!r}")
    return value


def _classes(params: dict[str, Any], where: str, allowed: tuple[str, ...]) -> set[str]:
    names = _str_list(params, "classificationsToInclude", where)
    known = {a.lower() for a in allowed}
    if unknown := [n for n in names if n.lower() not in known]:
        raise ArmError(
            400,
            "InvalidParameter",
            f"{where}.classificationsToInclude: unknown classifications {unknown}; allowed {list(allowed)}",
        )
    return {n.lower() for n in names}


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key for package versions: digit runs compare as numbers, other runs as text (the order
    rpm's and dpkg's comparisons agree on for the versions fleetsim's catalogs hold)."""
    return tuple(
        (0, int(run)) if run.isdigit() else (1, run) for run in re.findall(r"\d+|[A-Za-z]+", version)
    )


def mask_matches(patch: CatalogPatch, mask: str) -> str | None:
    """How a ``packageNameMasks*`` entry matches a Linux patch: ``"version"`` when it names the patch's
    package and version, ``"name"`` when it names the package only (fnmatch, case-sensitive), else None.

    The HybridCompute swagger (2024-07-10, definitions/LinuxParameters) gives the format
    ``packageName_packageVersion``; Microsoft Learn's "How to programmatically manage updates for Azure
    Arc-enabled servers" (section "Update deployment", Request body) shows ``libc=1.0.1.1`` and bare names
    / globs (``mysql``, ``kernel*``). fleetsim accepts all three. Package names and RPM releases may both
    hold ``_`` (``el9_5``), so every ``_`` is tried as the separator.
    """
    name, version = patch.package_name or "", package_version(patch)
    if fnmatch.fnmatchcase(name, mask):
        return "name"
    splits = [mask.split("=", 1)] if "=" in mask else []
    splits += [[mask[:i], mask[i + 1 :]] for i, c in enumerate(mask) if c == "_"]
    for name_mask, version_mask in splits:
        version_mask = re.sub(r"^\d+:", "", version_mask)  # an epoch: fleetsim's versions carry none
        if name_mask and fnmatch.fnmatchcase(name, name_mask) and fnmatch.fnmatchcase(version, version_mask):
            return "version"
    return None


def select_by_masks(candidates: list[CatalogPatch], masks: list[str]) -> list[CatalogPatch]:
    """The patches a list of include masks installs: a versioned mask that exact version; a bare name
    (or glob) the newest available version of each package it names, as the package manager's own
    ``install <name>`` does (an older available version of that package is not installed)."""
    chosen: dict[str, CatalogPatch] = {}
    for mask in masks:
        by_name: dict[str, list[CatalogPatch]] = {}
        for patch in candidates:
            how = mask_matches(patch, mask)
            if how == "version":
                chosen[patch.id] = patch
            elif how == "name":
                by_name.setdefault(patch.package_name or "", []).append(patch)
        for versions in by_name.values():
            newest = max(versions, key=lambda p: (version_key(package_version(p)), p.id))
            chosen[newest.id] = newest
    return list(chosen.values())


def plan_install(
    state: FleetState, host: SimHost, body: Any
) -> tuple[frozenset[str], frozenset[str], frozenset[str], str]:
    """(selected, excluded and not-selected patch ids, rebootSetting) for an install request.

    Which updates, as Microsoft documents installPatches (Learn, "How to programmatically manage updates
    for Azure Arc-enabled servers", https://learn.microsoft.com/azure/update-manager/manage-arc-enabled-
    servers-programmatically, section "Update deployment" > "Request body"): the available updates of
    every ``classificationsToInclude`` classification, plus ("over and above") those named by
    ``kbNumbersToInclude`` / ``packageNameMasksToInclude``; minus those named by ``kbNumbersToExclude`` /
    ``packageNameMasksToExclude`` ("should not be installed"). ``classificationsToInclude`` is optional
    (no ``required`` in the swagger's LinuxParameters / WindowsParameters), so an include list alone
    installs only what it names. ``maxPatchPublishDate`` (Windows) keeps updates "published on or before"
    it; no document says whether it also filters the KBs named explicitly, and fleetsim applies it to all.
    No document says what a body naming neither a classification nor an include list installs;
    fleetsim refuses it (400) so nothing relies on it.
    """
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request body must be a JSON object")
    duration = body.get("maximumDuration")
    if not isinstance(duration, str) or not _DURATION.match(duration) or duration in ("P", "PT"):
        raise ArmError(
            400, "InvalidParameter", f"maximumDuration must be an ISO 8601 duration (PT2H), got {duration!r}"
        )
    reboot = body.get("rebootSetting")
    if reboot not in ("IfRequired", "Never", "Always"):
        raise ArmError(
            400, "InvalidParameter", f"rebootSetting must be IfRequired, Never or Always, got {reboot!r}"
        )
    candidates = available_patches(state, host)
    key = "windowsParameters" if is_windows(host) else "linuxParameters"
    params = body.get(key)
    if not isinstance(params, dict):
        raise ArmError(
            400, "InvalidParameter", f"{key} is required to patch the {os_type(host)} machine {host.name}"
        )
    if is_windows(host):
        classes = _classes(params, key, WINDOWS_CLASSIFICATIONS)
        kb_in = _str_list(params, "kbNumbersToInclude", key)
        kb_out = _str_list(params, "kbNumbersToExclude", key)
        if bad := [kb for kb in kb_in + kb_out if not kb.isdigit()]:
            raise ArmError(400, "InvalidParameter", f"{key}: KB numbers are digits without 'KB', got {bad}")
        if _str_list(params, "patchNameMasksToInclude", key) or _str_list(
            params, "patchNameMasksToExclude", key
        ):
            raise ArmError(
                400, "InvalidParameter", "fleetsim does not emulate patchNameMasksToInclude/Exclude"
            )
        if not classes and not kb_in:
            raise ArmError(
                400, "InvalidParameter", f"{key} needs classificationsToInclude or kbNumbersToInclude"
            )
        included = [
            p for p in candidates if classification(p).lower() in classes or p.kb_number in set(kb_in)
        ]
        if (max_date := params.get("maxPatchPublishDate")) is not None:
            try:
                cutoff = dt.datetime.fromisoformat(str(max_date).replace("Z", "+00:00")).date()
            except ValueError as exc:
                raise ArmError(
                    400, "InvalidParameter", f"{key}.maxPatchPublishDate is not a date-time: {max_date!r}"
                ) from exc
            included = [p for p in included if p.released <= cutoff]
        excluded = [p for p in included if p.kb_number in set(kb_out)]
    else:
        classes = _classes(params, key, LINUX_CLASSIFICATIONS)
        masks_in = _str_list(params, "packageNameMasksToInclude", key)
        masks_out = _str_list(params, "packageNameMasksToExclude", key)
        if not classes and not masks_in:
            raise ArmError(
                400, "InvalidParameter", f"{key} needs classificationsToInclude or packageNameMasksToInclude"
            )
        by_mask = {p.id for p in select_by_masks(candidates, masks_in)}
        included = [p for p in candidates if classification(p).lower() in classes or p.id in by_mask]
        excluded = [p for p in included if any(mask_matches(p, m) for m in masks_out)]
    selected = frozenset(p.id for p in included) - {p.id for p in excluded}
    chosen = {p.id for p in included}
    return (
        selected,
        frozenset(p.id for p in excluded),
        frozenset(p.id for p in candidates if p.id not in chosen),
        reboot,
    )


class ArmApi:
    """ARM (HybridCompute machines, installPatches) and Resource Graph over the fleet's Azure hosts."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self.operations: dict[str, PatchOperation] = {}
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
        self._routes: list[tuple[re.Pattern[str], str, str, Callable[..., Response]]] = [
            (re.compile(f"^{_SUB}{_MACHINES}/?$", re.I), "GET", "Machines_ListBySubscription", self._list),
            (re.compile(f"^{_RG}{_MACHINES}/?$", re.I), "GET", "Machines_ListByResourceGroup", self._list),
            (re.compile(f"^{_RG}{_MACHINES}/(?P<name>[^/]+)$", re.I), "GET", "Machines_Get", self._get),
            (
                re.compile(f"^{_RG}{_MACHINES}/(?P<name>[^/]+)/extensions/?$", re.I),
                "GET",
                "MachineExtensions_List",
                self._extensions,
            ),
            (
                re.compile(f"^{_RG}{_MACHINES}/(?P<name>[^/]+)/installpatches$", re.I),
                "POST",
                "Machines_InstallPatches",
                self._install,
            ),
            (
                re.compile(f"^{_RG}{_MACHINES}/(?P<name>[^/]+)/assesspatches$", re.I),
                "POST",
                "Machines_AssessPatches",
                self._assess,
            ),
            (
                re.compile(
                    f"^{_SUB}/providers/microsoft\\.hybridcompute/locations/(?P<loc>[^/]+)"
                    "/operationstatuses/(?P<op>[^/]+)$",
                    re.I,
                ),
                "GET",
                "OperationStatus_Get",
                self._operation,
            ),
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
            raise ArmError(401, "AuthenticationFailed", "The 'Authorization' bearer token is missing.")
        if path.lower().rstrip("/") == "/providers/microsoft.resourcegraph/resources":
            if request.method != "POST":
                self._count("azure.arm.unrouted")
                raise ArmError(405, "MethodNotAllowed", f"{request.method} is not allowed on {path}")
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
        raise ArmError(404, "NotFound", f"fleetsim does not emulate {request.method} {path}")

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
        return _json(
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
    def _azure_hosts(self) -> list[SimHost]:
        return [h for h in self.state.hosts.values() if h.cloud == "azure"]

    def _hosts_in(self, sub: str, rg: str | None) -> list[SimHost]:
        in_sub = [h for h in self._azure_hosts() if h.account.lower() == sub.lower()]
        if not in_sub:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
        if rg is None:
            return sorted(in_sub, key=lambda h: h.name.lower())
        in_rg = [h for h in in_sub if (h.resource_group or "").lower() == rg.lower()]
        if not in_rg:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        return sorted(in_rg, key=lambda h: h.name.lower())

    def _machine(self, sub: str, rg: str, name: str) -> SimHost:
        for host in self._azure_hosts():
            if (host.account.lower(), (host.resource_group or "").lower(), host.name.lower()) == (
                sub.lower(),
                rg.lower(),
                name.lower(),
            ):
                return host
        raise ArmError(
            404,
            "ResourceNotFound",
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
            raise ArmError(400, "InvalidSkipToken", f"The $skiptoken {token!r} is not valid.") from exc
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
        return _json(body)

    def _get(self, request: Request, sub: str, rg: str, name: str) -> Response:
        self.state.advance()
        with self.state.lock:
            return _json(machine_json(self.state, self._machine(sub, rg, name)))

    def _extensions(self, request: Request, sub: str, rg: str, name: str) -> Response:
        with self.state.lock:
            return _json({"value": extension_resources(self.state, self._machine(sub, rg, name))})

    # -- installPatches -----------------------------------------------------------------------------
    def _install(self, request: Request, sub: str, rg: str, name: str) -> Response:
        now = self.state.advance()
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError as exc:
            raise ArmError(400, "InvalidRequestContent", f"The request body is not JSON: {exc}") from exc
        with self.state.lock:
            host = self._machine(sub, rg, name)
            self._refuse_if_busy(host)
            selected, excluded, not_selected, reboot = plan_install(self.state, host, body)
            op = self._begin(host, now, "installPatches")
            op.reboot_setting, op.selected = reboot, selected
            op.excluded, op.not_selected = excluded, not_selected
            if self.lost_install_answers[sub.lower()] > 0:  # the install runs; its answer is lost
                self.lost_install_answers[sub.lower()] -= 1
                raise ArmError(500, "InternalServerError", "An internal server error occurred.")
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
            raise ArmError(
                409,
                "Conflict",
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
            ended_at=now + lo + (hi - lo) * _fraction(op_id, host.host_id),
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
                raise ArmError(404, "ResourceNotFound", f"The operation '{op}' could not be found.")
            if operation.result is None:
                return Response(b"", 202, headers=self._poll_headers(request, operation))
            return _json(operation.result)

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
            "startDateTime": _iso(op.started_at),
            "lastModifiedDateTime": _iso(op.ended_at),
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
            "activityId": _guid("assessment", op.id),
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
            "startDateTime": _iso(op.started_at),
            "lastModifiedDateTime": _iso(op.ended_at),
            "startedBy": "User",
            "patchServiceUsed": patch_service(host),
            "osType": os_type(host),
        }
        if host.agent_status != "Connected":
            op.result = result | {
                "status": "Failed",
                "availablePatchCountByClassification": {_COUNT_KEY[k]: 0 for k in ALL_CLASSIFICATIONS},
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
            raise ArmError(400, "BadRequest", f"The request body is not JSON: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise ArmError(400, "BadRequest", "The request body needs a 'query' string")
        if body.get("managementGroups"):
            raise ArmError(
                400, "BadRequest", "fleetsim emulates subscription scopes only, not managementGroups"
            )
        row_type, groups = parse_graph_query(body["query"])
        options = body.get("options") or {}
        if options.get("resultFormat", "objectArray") != "objectArray":
            raise ArmError(400, "BadRequest", "fleetsim emulates resultFormat 'objectArray' only")
        if options.get("$skip"):
            raise ArmError(400, "BadRequest", "fleetsim does not emulate options.$skip; page with $skipToken")
        top = options.get("$top", GRAPH_DEFAULT_TOP)
        if not isinstance(top, int) or not 1 <= top <= GRAPH_MAX_TOP:
            raise ArmError(
                400, "BadRequest", f"options.$top must be between 1 and {GRAPH_MAX_TOP}, got {top!r}"
            )
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
        start = _decode_skip_token(options.get("$skipToken"), scope)
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
        return _json(answer)

    def _graph_rows(self, row_type: str, hosts: list[SimHost]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for host in hosts:
            common = {
                "tenantId": _guid("aad-tenant", host.tenant),
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
                name = _guid("softwarepatch", host.host_id, patch.id)
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
                name = _guid("installedpatch", host.host_id, run["id"], patch_id)
                props = {
                    "installationState": installation_state,
                    "patchName": patch.title if patch.is_windows else patch.package_name,
                    "version": "" if patch.is_windows else package_version(patch),
                    "kbId": patch.kb_number or "" if patch.is_windows else "",
                    "classifications": [classification(patch)],
                    "publishedDateTime": published_date_time(patch),
                    "rebootRequired": bool(patch.kernel) or patch.is_windows,
                    "rebootBehavior": "CanRequestReboot",
                    "lastModifiedDateTime": _iso(run["at"]),
                }
                rows.append(
                    {"id": f"{run_id}/softwarepatches/{name}", "name": name, "type": INSTALL_PATCHES_TYPE}
                    | common
                    | {"properties": props}
                )
        return rows


_GRAPH_SHAPES = (
    f"{GRAPH_TABLE} | where type =~ '{SUMMARY_TYPE}' [| where resourceGroup in~ ('rg', ...)] "
    f"[| order by id asc], or the same with type '{PATCHES_TYPE}', or table {INSTALL_TABLE} with type "
    f"'{INSTALL_TYPE}' or '{INSTALL_PATCHES_TYPE}'"
)


def parse_graph_query(query: str) -> tuple[str, set[str] | None]:
    """(row type, lower-case resource groups or None) of a recognised query shape; 400 otherwise."""

    def refuse(why: str) -> ArmError:
        return ArmError(
            400,
            "BadRequest",
            f"fleetsim cannot run this Resource Graph query ({why}); it answers only: {_GRAPH_SHAPES}",
            [{"code": "UnsupportedQuery", "message": why}],
        )

    clauses = [c.strip() for c in query.split("|")]
    table = clauses[0].lower()
    if table not in GRAPH_TABLES:
        raise refuse(f"table {clauses[0]!r} is not one of {sorted(GRAPH_TABLES)}")
    row_type: str | None = None
    groups: set[str] | None = None
    for clause in clauses[1:]:
        if m := re.fullmatch(r"where\s+type\s*(=~|==)\s*(['\"])([^'\"]+)\2", clause, re.I):
            value = m.group(3) if m.group(1) == "==" else m.group(3).lower()
            if value not in GRAPH_TABLES[table] or row_type is not None:
                raise refuse(f"type filter {clause!r}")
            row_type = value
        elif m := re.fullmatch(r"where\s+resourceGroup\s+in~\s*\((.*)\)", clause, re.I | re.S):
            items = [i.strip() for i in m.group(1).split(",")]
            names = [re.fullmatch(r"(['\"])([^'\"]+)\1", i) for i in items]
            if groups is not None or not all(names):
                raise refuse(f"resource group filter {clause!r}")
            groups = {n.group(2).lower() for n in names if n}
        elif re.fullmatch(r"order\s+by\s+id(\s+asc)?", clause, re.I):
            continue
        else:
            raise refuse(f"clause {clause!r}")
    if row_type is None:
        raise refuse("no type filter")
    return row_type, groups


def _decode_skip_token(token: Any, scope: str) -> int:
    if not token:
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        if decoded["s"] != scope or int(decoded["o"]) < 0:
            raise ValueError("token of another query")
        return int(decoded["o"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ArmError(400, "BadRequest", f"The $skipToken {token!r} is not valid for this query") from exc
