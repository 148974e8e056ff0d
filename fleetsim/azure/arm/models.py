"""The backend of fleetsim's Azure Resource Manager: how each fleet host looks to Azure as an Arc
machine (its resource, extensions, patch assessment), and what an ``installPatches`` or
``assessPatches`` operation selects and does (:class:`PatchOperation`, :func:`plan_install`).
Pure functions of the fleet state; :mod:`.responses` serves them over HTTP.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fleetsim.azure.arm.exceptions import InvalidParameter, InvalidRequestContent
from fleetsim.fleet import FleetState, SimHost
from fleetsim.scenario import CatalogPatch

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
COUNT_KEY = {
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


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def fraction(*parts: str) -> float:
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def guid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "fleetsim|" + "|".join(parts)))


@dataclass(frozen=True)
class MachineIndex:
    """The fleet's Azure hosts as ARM finds them: all (``hosts``, in the fleet's order), by subscription,
    by resource group, by name (keys lower-case; each group sorted by machine name, the order ARM lists
    machines in)."""

    host_count: int
    hosts: tuple[SimHost, ...]
    by_subscription: dict[str, tuple[SimHost, ...]]
    by_resource_group: dict[tuple[str, str], tuple[SimHost, ...]]
    by_name: dict[tuple[str, str, str], SimHost]

    @classmethod
    def of(cls, hosts: Iterable[SimHost], host_count: int) -> MachineIndex:
        """The index of the Azure hosts among ``hosts`` (``host_count``: the fleet's size when built)."""
        in_fleet_order = [h for h in hosts if h.cloud == "azure"]
        azure = sorted(in_fleet_order, key=lambda h: h.name.lower())
        by_sub: dict[str, list[SimHost]] = {}
        by_rg: dict[tuple[str, str], list[SimHost]] = {}
        for host in azure:
            sub, rg = host.account.lower(), (host.resource_group or "").lower()
            by_sub.setdefault(sub, []).append(host)
            by_rg.setdefault((sub, rg), []).append(host)
        return cls(
            host_count=host_count,
            hosts=tuple(in_fleet_order),
            by_subscription={k: tuple(v) for k, v in by_sub.items()},
            by_resource_group={k: tuple(v) for k, v in by_rg.items()},
            by_name={(h.account.lower(), (h.resource_group or "").lower(), h.name.lower()): h for h in azure},
        )


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
            "vmId": guid("vm", host.host_id),
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


def assessment(state: FleetState, host: SimHost) -> dict[str, Any]:
    """The machine's latest assessment: Azure's periodic one as of the scenario's last scan, or the
    one that followed the last install or assessPatches (see :meth:`ArmApi._finish`)."""
    latest = host.cloud_state.get("azure_assessment")
    if latest is None:
        at = min(state.scenario.last_scan, _status_changed(state, host) + dt.timedelta(hours=1))
        latest = {
            "activityId": guid("assessment", host.host_id),
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
    counts = {COUNT_KEY[k]: 0 for k in keys}
    for patch in available_patches(state, host):
        counts[COUNT_KEY[classification(patch)]] += 1
    return counts


def summary_properties(state: FleetState, host: SimHost) -> dict[str, Any]:
    latest = assessment(state, host)
    counts = patch_counts(state, host, WINDOWS_CLASSIFICATIONS if is_windows(host) else LINUX_CLASSIFICATIONS)
    return {
        "status": "Succeeded",
        "assessmentActivityId": latest["activityId"],
        "rebootPending": latest["rebootPending"],
        "availablePatchCountByClassification": counts,
        "startDateTime": iso(latest["started"]),
        "lastModifiedDateTime": iso(latest["at"]),
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
    return iso(dt.datetime.combine(patch.released, dt.time(), dt.UTC).timestamp())


def patch_properties(state: FleetState, host: SimHost, patch: CatalogPatch) -> dict[str, Any]:
    latest = assessment(state, host)
    props: dict[str, Any] = {
        "patchName": patch.title if patch.is_windows else patch.package_name,
        "version": "" if patch.is_windows else package_version(patch),
        "classifications": [classification(patch)],
        "publishedDateTime": published_date_time(patch),
        "lastModifiedDateTime": iso(latest["at"]),
    }
    if patch.is_windows:
        props.update(
            kbId=patch.kb_number or "",
            msrcSeverity=patch.severity,
            patchId=guid("update", patch.id),
            rebootBehavior="CanRequestReboot",
        )
    else:
        distro = f"{host.platform.platform_name.replace(' ', '')}_{host.platform.platform_version}"
        props["patchId"] = f"{patch.package_name}_{package_version(patch)}_{distro}"
    return props


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
        raise InvalidParameter(f"{where}.{key} must be a list of strings, got {value!r}")
    return value


def _classes(params: dict[str, Any], where: str, allowed: tuple[str, ...]) -> set[str]:
    names = _str_list(params, "classificationsToInclude", where)
    known = {a.lower() for a in allowed}
    if unknown := [n for n in names if n.lower() not in known]:
        raise InvalidParameter(
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
        raise InvalidRequestContent("The request body must be a JSON object")
    duration = body.get("maximumDuration")
    if not isinstance(duration, str) or not _DURATION.match(duration) or duration in ("P", "PT"):
        raise InvalidParameter(f"maximumDuration must be an ISO 8601 duration (PT2H), got {duration!r}")
    reboot = body.get("rebootSetting")
    if reboot not in ("IfRequired", "Never", "Always"):
        raise InvalidParameter(f"rebootSetting must be IfRequired, Never or Always, got {reboot!r}")
    candidates = available_patches(state, host)
    key = "windowsParameters" if is_windows(host) else "linuxParameters"
    params = body.get(key)
    if not isinstance(params, dict):
        raise InvalidParameter(f"{key} is required to patch the {os_type(host)} machine {host.name}")
    if is_windows(host):
        classes = _classes(params, key, WINDOWS_CLASSIFICATIONS)
        kb_in = _str_list(params, "kbNumbersToInclude", key)
        kb_out = _str_list(params, "kbNumbersToExclude", key)
        if bad := [kb for kb in kb_in + kb_out if not kb.isdigit()]:
            raise InvalidParameter(f"{key}: KB numbers are digits without 'KB', got {bad}")
        if _str_list(params, "patchNameMasksToInclude", key) or _str_list(
            params, "patchNameMasksToExclude", key
        ):
            raise InvalidParameter("fleetsim does not emulate patchNameMasksToInclude/Exclude")
        if not classes and not kb_in:
            raise InvalidParameter(f"{key} needs classificationsToInclude or kbNumbersToInclude")
        included = [
            p for p in candidates if classification(p).lower() in classes or p.kb_number in set(kb_in)
        ]
        if (max_date := params.get("maxPatchPublishDate")) is not None:
            try:
                cutoff = dt.datetime.fromisoformat(str(max_date).replace("Z", "+00:00")).date()
            except ValueError as exc:
                raise InvalidParameter(f"{key}.maxPatchPublishDate is not a date-time: {max_date!r}") from exc
            included = [p for p in included if p.released <= cutoff]
        excluded = [p for p in included if p.kb_number in set(kb_out)]
    else:
        classes = _classes(params, key, LINUX_CLASSIFICATIONS)
        masks_in = _str_list(params, "packageNameMasksToInclude", key)
        masks_out = _str_list(params, "packageNameMasksToExclude", key)
        if not classes and not masks_in:
            raise InvalidParameter(f"{key} needs classificationsToInclude or packageNameMasksToInclude")
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
