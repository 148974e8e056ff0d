"""The backend of fleetsim's OS Config: the fleet's GCE instances as VM Manager finds them
(:class:`InstanceIndex`), their inventories and vulnerability reports, and the patch jobs executed on them
(:class:`OsConfigBackend`): which instances and patches a job selects, the timeline its rollout lays out,
and the effect each instance's run has on the host. Dataclasses and functions of the fleet state, as
JSON with enums as names; :mod:`.responses` serves them over HTTP through the library's message types.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import re
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fleetsim.fleet import FleetState, SimHost, _stable_fraction
from fleetsim.gcp import instance_labels, rfc3339
from fleetsim.gcp.osconfig.exceptions import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from fleetsim.scenario import CatalogPatch

# fleetsim's maximum pageSize for every OS Config list (inventories, vulnerability reports, patch jobs,
# instance details). Google documents no maximum for these lists; following AIP-158, a larger pageSize
# is coerced to the maximum rather than refused, and 0/absent means the maximum.
LIST_PAGE_MAX = 100

JOB_TERMINAL_STATES = frozenset({"SUCCEEDED", "COMPLETED_WITH_ERRORS", "CANCELED", "TIMED_OUT"})
INSTANCE_TERMINAL_STATES = frozenset(
    {"SUCCEEDED", "SUCCEEDED_REBOOT_REQUIRED", "FAILED", "TIMED_OUT", "NO_AGENT_DETECTED"}
)
_INSTANCE_ERROR_STATES = frozenset({"FAILED", "TIMED_OUT", "NO_AGENT_DETECTED", "PENDING"})
# PatchJob.instanceDetailsSummary counter per instance state.
_SUMMARY_FIELD = {
    "PENDING": "pendingInstanceCount",
    "INACTIVE": "inactiveInstanceCount",
    "NOTIFIED": "notifiedInstanceCount",
    "STARTED": "startedInstanceCount",
    "DOWNLOADING_PATCHES": "downloadingPatchesInstanceCount",
    "APPLYING_PATCHES": "applyingPatchesInstanceCount",
    "REBOOTING": "rebootingInstanceCount",
    "SUCCEEDED": "succeededInstanceCount",
    "SUCCEEDED_REBOOT_REQUIRED": "succeededRebootRequiredInstanceCount",
    "FAILED": "failedInstanceCount",
    "ACKED": "ackedInstanceCount",
    "TIMED_OUT": "timedOutInstanceCount",
    "RUNNING_PRE_PATCH_STEP": "prePatchStepInstanceCount",
    "RUNNING_POST_PATCH_STEP": "postPatchStepInstanceCount",
    "NO_AGENT_DETECTED": "noAgentDetectedInstanceCount",
}
# Where an instance is within its own run (fraction of its duration) -> the state the agent reports.
_PHASES = ((0.1, "NOTIFIED"), (0.2, "STARTED"), (0.45, "DOWNLOADING_PATCHES"), (0.8, "APPLYING_PATCHES"))

# Catalog severity (vendor vocabulary) -> OS Config's CVE severity, and a plausible CVSS v3 vector.
SEVERITY = {
    "Critical": "CRITICAL",
    "Important": "HIGH",
    "Moderate": "MEDIUM",
    "Medium": "MEDIUM",
    "Low": "LOW",
}
_SEVERITY_RANK = ["NONE", "MINIMAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
_CVSS_V3 = {
    "CRITICAL": (9.8, 3.9, 5.9, "NETWORK", "NONE", ("HIGH", "HIGH", "HIGH")),
    "HIGH": (7.8, 1.8, 5.9, "LOCAL", "LOW", ("HIGH", "HIGH", "HIGH")),
    "MEDIUM": (5.5, 1.8, 3.6, "LOCAL", "LOW", ("NONE", "NONE", "HIGH")),
    "LOW": (3.3, 1.8, 1.4, "LOCAL", "LOW", ("LOW", "NONE", "NONE")),
}

# How VM Manager's agent reports each OS family: (longName, shortName, version, CPE of fixes).
_OS_INFO = {
    "ubuntu_20_04": ("Ubuntu 20.04.6 LTS", "ubuntu", "20.04", "cpe:/o:canonical:ubuntu_linux:20.04"),
    "ubuntu_22_04": ("Ubuntu 22.04.4 LTS", "ubuntu", "22.04", "cpe:/o:canonical:ubuntu_linux:22.04"),
    "rhel_7": (
        "Red Hat Enterprise Linux Server 7.9 (Maipo)",
        "rhel",
        "7.9",
        "cpe:/o:redhat:enterprise_linux:7",
    ),
    "rhel_8": ("Red Hat Enterprise Linux 8.8 (Ootpa)", "rhel", "8.8", "cpe:/o:redhat:enterprise_linux:8"),
    "rhel_9": ("Red Hat Enterprise Linux 9.2 (Plow)", "rhel", "9.2", "cpe:/o:redhat:enterprise_linux:9"),
    "centos_7": ("CentOS Linux 7 (Core)", "centos", "7", "cpe:/o:centos:centos:7"),
    "amazon_linux_2": ("Amazon Linux 2", "amzn", "2", "cpe:/o:amazon:amazon_linux:2"),
    "amazon_linux_2023": ("Amazon Linux 2023", "amzn", "2023", "cpe:/o:amazon:amazon_linux:2023"),
}
_AGENT_VERSION = {"Linux": "20240320.00-g1", "Windows": "20240320.00.0+win@1"}
_WINDOWS_BUILD = "6414"

_INSTANCE_REF = re.compile(
    r"^(?:https?://[^/]+/compute/(?:v1|beta)/)?(?:projects/(?P<project>[^/]+)/)?"
    r"zones/(?P<zone>[^/]+)/instances/(?P<name>[^/]+)$"
)


def package_manager(os_family: str) -> str:
    """Which OS Config settings apply to a family: ``apt``, ``yum`` or ``windowsUpdate``."""
    if os_family.startswith("windows"):
        return "windowsUpdate"
    if os_family.startswith(("ubuntu", "debian")):
        return "apt"
    return "yum"


def available_item_id(patch: CatalogPatch) -> str:
    """The inventory item id of a catalog patch the instance can install."""
    if patch.is_windows:
        return f"availablePackage-{_update_id(patch)}"
    return f"availablePackage-{patch.package_name}-{patch.package_version}"


def installed_item_id(patch: CatalogPatch) -> str:
    if patch.is_windows:
        return f"installedPackage-KB{patch.kb_number}" if patch.kb_number else f"installedPackage-{patch.id}"
    return f"installedPackage-{patch.package_name}-{patch.package_version}"


def newest_version(family: list[CatalogPatch], package: str, by: dt.date) -> CatalogPatch | None:
    """The newest catalog version of a Linux package released on or before ``by`` (the repository's
    candidate at that date): latest release date, then the catalog's later entry."""
    candidates = [p for p in family if p.package_name == package and p.released <= by]
    return max(enumerate(candidates), key=lambda ip: (ip[1].released, ip[0]))[1] if candidates else None


def previous_version(version: str) -> str:
    """A version just older than ``version``, for the build an instance runs before an update: the
    release's first non-zero number less one on RPM ("1.1.1k-14.el8_10" -> "1.1.1k-13.el8_10"), the
    last non-zero number on Debian ("3.0.2-0ubuntu1.19" -> "3.0.2-0ubuntu1.18"); else ``~0`` appended
    (sorts older in rpm and dpkg)."""
    head, dash, release = version.rpartition("-")
    if dash and ".el" in release:
        match = re.search(r"[1-9][0-9]*", release)
        if match:
            older = f"{release[: match.start()]}{int(match.group()) - 1}{release[match.end() :]}"
            return f"{head}-{older}"
    for match in reversed(list(re.finditer(r"[0-9]+", version))):
        if int(match.group()) > 0:
            return f"{version[: match.start()]}{int(match.group()) - 1}{version[match.end() :]}"
    return f"{version}~0"


def _update_id(patch: CatalogPatch) -> str:
    """A Windows Update's stable GUID."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fleetsim/wua/{patch.id}"))


def _category(classification: str) -> str:
    """WUA category name from the catalog classification ("SecurityUpdates" -> "Security Updates")."""
    if classification == "Security":
        return "Security Updates"
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", classification)


def _released(patch: CatalogPatch) -> str:
    return f"{patch.released.isoformat()}T00:00:00Z"


def seconds(duration: Any) -> float:
    """A protobuf Duration (a ``timedelta`` through proto-plus, or a number) in seconds."""
    return duration.total_seconds() if hasattr(duration, "total_seconds") else float(duration)


# -- instances --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InstanceIndex:
    """The fleet's GCE instances as OS Config finds them: by project and by (project, zone), each sorted
    by zone then name (the order the lists return them in), and by (project, zone, numeric id or name)
    the instances that reference names, in the same order. Agents come and go (a hung reboot loses one,
    a restore brings it back), so the agent's status is read when a request asks, not indexed."""

    host_count: int
    by_project: dict[str, tuple[SimHost, ...]]
    by_zone: dict[tuple[str, str], tuple[SimHost, ...]]
    by_ref: dict[tuple[str, str, str], tuple[SimHost, ...]]

    @classmethod
    def of(cls, hosts: Iterable[SimHost], host_count: int) -> InstanceIndex:
        """The index of the GCP hosts among ``hosts`` (``host_count``: the fleet's size when built)."""
        gcp = sorted((h for h in hosts if h.cloud == "gcp"), key=lambda h: (h.region, h.name))
        by_project: dict[str, list[SimHost]] = {}
        by_zone: dict[tuple[str, str], list[SimHost]] = {}
        by_ref: dict[tuple[str, str, str], list[SimHost]] = {}
        for host in gcp:
            by_project.setdefault(host.account, []).append(host)
            by_zone.setdefault((host.account, host.region), []).append(host)
            for ref in dict.fromkeys((host.host_id, host.name)):
                by_ref.setdefault((host.account, host.region, ref), []).append(host)
        return cls(
            host_count=host_count,
            by_project={k: tuple(v) for k, v in by_project.items()},
            by_zone={k: tuple(v) for k, v in by_zone.items()},
            by_ref={k: tuple(v) for k, v in by_ref.items()},
        )


def select_instances(
    hosts: Iterable[SimHost], project: str, instance_filter: dict[str, Any]
) -> list[SimHost]:
    """The project's instances (``hosts``, by zone then name) an instance filter matches: criteria of
    different fields are ANDed."""
    criteria = ("groupLabels", "zones", "instances", "instanceNamePrefixes")
    if instance_filter.get("all"):
        if any(instance_filter.get(c) for c in criteria):
            raise InvalidArgument("instance_filter: all=true cannot be combined with other criteria")
        return list(hosts)
    if not any(instance_filter.get(c) for c in criteria):
        raise InvalidArgument(
            "instance_filter: one of all, group_labels, zones, instances or instance_name_prefixes is "
            f"required, got {instance_filter!r}",
        )
    refs: set[tuple[str, str]] = set()
    for ref in instance_filter.get("instances", []):
        match = _INSTANCE_REF.match(ref)
        if match is None:
            raise InvalidArgument(
                f"instance_filter.instances: {ref!r} is not zones/ZONE/instances/NAME, "
                "projects/PROJECT/zones/ZONE/instances/NAME or an instance URL",
            )
        if match["project"] in (None, project):
            refs.add((match["zone"], match["name"]))
    selected = []
    for host in hosts:
        if instance_filter.get("instances") and (host.region, host.name) not in refs:
            continue
        if instance_filter.get("zones") and host.region not in instance_filter["zones"]:
            continue
        prefixes = instance_filter.get("instanceNamePrefixes")
        if prefixes and not host.name.startswith(tuple(prefixes)):
            continue
        groups = instance_filter.get("groupLabels")
        if groups:
            labels = instance_labels(host)
            if not any(all(labels.get(k) == v for k, v in g.get("labels", {}).items()) for g in groups):
                continue
        selected.append(host)
    return selected


# -- inventories ------------------------------------------------------------------------------------
def os_short_name_and_version(host: SimHost) -> tuple[str, str]:
    """The instance's OS short name and version as its inventory's ``osInfo`` reports them (what OS
    policy inventory filters match)."""
    platform = host.platform
    if platform.platform_type == "Windows":
        return "windows", platform.platform_version
    _, short, version, _ = _OS_INFO.get(host.os_family, ("", host.os_family, "", ""))
    return short, version or platform.platform_version


def inventory_time(state: FleetState, host: SimHost) -> str:
    """When the instance's agent last reported: its last patch job's end, else the scenario's last scan."""
    at = host.cloud_state.get("gcp_inventory_at")
    if at is not None:
        return rfc3339(at)
    return rfc3339(state.scenario.last_scan.timestamp())


def inventory_body(state: FleetState, host: SimHost, full: bool) -> dict[str, Any]:
    """An instance's Inventory (``full``: with its items, the FULL view; else the BASIC view)."""
    platform = host.platform
    windows = platform.platform_type == "Windows"
    if windows:
        long_name, short_name, version = platform.platform_name, "windows", platform.platform_version
        kernel_release: str | None = f"{platform.platform_version}.{_WINDOWS_BUILD}"
        kernel_version = f"{kernel_release} (WinBuild.160101.0800)"
    else:
        default = (f"{platform.platform_name} {platform.platform_version}", host.os_family, "", "")
        long_name, short_name, version, _ = _OS_INFO.get(host.os_family, default)
        version = version or platform.platform_version
        kernel_release, kernel_version = host.kernel, "#1 SMP"
    os_info = {
        "hostname": host.name,
        "longName": long_name,
        "shortName": short_name,
        "version": version,
        "architecture": "x86_64",
        "kernelVersion": kernel_version,
        "osconfigAgentVersion": _AGENT_VERSION[platform.platform_type],
    }
    if kernel_release:
        os_info["kernelRelease"] = kernel_release
    updated = inventory_time(state, host)
    inventory: dict[str, Any] = {
        "name": f"projects/{host.account}/locations/{host.region}/instances/{host.host_id}/inventory",
        "osInfo": os_info,
        "updateTime": updated,
    }
    if full:
        items: dict[str, Any] = {}
        for patch in available_patches(state, host):
            item_id = available_item_id(patch)
            items[item_id] = _item(item_id, "AVAILABLE_PACKAGE", "availablePackage", patch, updated)
        for patch in installed_patches(state, host):
            item_id = installed_item_id(patch)
            items[item_id] = _item(item_id, "INSTALLED_PACKAGE", "installedPackage", patch, updated)
        for patch, version in base_versions(state, host):
            item_id = f"installedPackage-{patch.package_name}-{version}"
            item = _item(item_id, "INSTALLED_PACKAGE", "installedPackage", patch, updated)
            next(iter(item["installedPackage"].values()))["version"] = version
            items[item_id] = item
        inventory["items"] = items
    return inventory


def available_patches(state: FleetState, host: SimHost) -> list[CatalogPatch]:
    """The updates an instance's inventory lists as available: one per Linux package, its newest
    version (the package manager's candidate); every pending Windows update.

    Google names one available item per fix: a vulnerability's ``availableInventoryItemIds``
    "specifies the latest SoftwarePackage available to the VM that fixes the vulnerability"
    (https://cloud.google.com/compute/docs/osconfig/rest/v1/projects.locations.instances.vulnerabilityReports,
    section Vulnerability), and an item id "will change, when there is a new package version"
    (https://cloud.google.com/compute/docs/osconfig/rest/v1/projects.locations.instances.inventories,
    section Inventory, field items)."""
    return _latest_per_package(state, host.missing | host.failed)


def installed_patches(state: FleetState, host: SimHost) -> list[CatalogPatch]:
    """Installed packages: one version per Linux package (kernels install side by side)."""
    patches = [state.catalog[p] for p in sorted(host.installed) if p in state.catalog]
    kernels = [p for p in patches if p.kernel and not p.is_windows]
    rest = _latest_per_package(state, {p.id for p in patches if p not in kernels})
    return sorted([*kernels, *rest], key=lambda p: p.id)


def base_versions(state: FleetState, host: SimHost) -> list[tuple[CatalogPatch, str]]:
    """The version an instance runs of a package it has an update pending for but no catalog
    version installed of: the version before the oldest pending one (an RPM kernel: the running
    kernel). A package manager only updates a package that is installed, so the inventory shows it.
    Ubuntu's kernel images are packages of their own per release (never installed before)."""
    have = {p.package_name for p in installed_patches(state, host) if not p.is_windows}
    oldest: dict[str, CatalogPatch] = {}
    for pid in sorted(host.missing | host.failed):
        patch = state.catalog[pid]
        name = patch.package_name
        if patch.is_windows or name in have or (name or "").startswith("linux-image-"):
            continue
        if name not in oldest or patch.released < oldest[name].released:
            oldest[name] = patch
    out = []
    for name, patch in sorted(oldest.items()):
        if patch.kernel and host.kernel and name == "kernel":
            out.append((patch, host.kernel.rsplit(".", 1)[0]))
        else:
            out.append((patch, previous_version(patch.package_version)))
    return out


def _latest_per_package(state: FleetState, ids: set[str]) -> list[CatalogPatch]:
    newest: dict[str, CatalogPatch] = {}
    for pid in sorted(ids):
        patch = state.catalog[pid]
        key = patch.id if patch.is_windows else f"pkg:{patch.package_name}"
        if key not in newest or patch.released > newest[key].released:
            newest[key] = patch
    return sorted(newest.values(), key=lambda p: p.id)


def _item(item_id: str, kind: str, key: str, patch: CatalogPatch, updated: str) -> dict[str, Any]:
    if patch.is_windows and kind == "INSTALLED_PACKAGE":
        kb = f"KB{patch.kb_number}" if patch.kb_number else patch.id
        package: dict[str, Any] = {
            "qfePackage": {
                "caption": f"http://support.microsoft.com/?kbid={patch.kb_number or ''}",
                "description": _category(patch.classification).removesuffix("s"),
                "hotFixId": kb,
                "installTime": _released(patch),
            }
        }
    elif patch.is_windows:
        package = {
            "wuaPackage": {
                "title": patch.title,
                "description": patch.title,
                "categories": [
                    {
                        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, patch.classification)),
                        "name": _category(patch.classification),
                    }
                ],
                "kbArticleIds": [patch.kb_number] if patch.kb_number else [],
                "supportUrl": "https://support.microsoft.com/help/" + (patch.kb_number or ""),
                "updateId": _update_id(patch),
                "revisionNumber": 1,
                "lastDeploymentChangeTime": _released(patch),
            }
        }
    else:
        manager = "aptPackage" if package_manager(patch.os_family) == "apt" else "yumPackage"
        package = {
            manager: {
                "packageName": patch.package_name,
                "architecture": "amd64" if manager == "aptPackage" else "x86_64",
                "version": patch.package_version,
            }
        }
    return {
        "id": item_id,
        "originType": "INVENTORY_REPORT",
        "type": kind,
        "createTime": _released(patch),
        "updateTime": updated,
        key: package,
    }


# -- vulnerability reports --------------------------------------------------------------------------
def vulnerability_report_body(state: FleetState, host: SimHost) -> dict[str, Any]:
    """An instance's VulnerabilityReport: one vulnerability per CVE its missing or failed patches fix."""
    updated = inventory_time(state, host)
    by_cve: dict[str, list[CatalogPatch]] = {}
    for pid in sorted(host.missing | host.failed):
        patch = state.catalog[pid]
        for cve in patch.cves:
            by_cve.setdefault(cve, []).append(patch)
    cpe = _OS_INFO.get(host.os_family, ("", "", "", ""))[3] or (
        f"cpe:/o:microsoft:{host.os_family.replace('windows', 'windows_server')}:-"
    )
    # Each fix points at the latest available version of its package (see available_patches).
    latest = {(p.id if p.is_windows else p.package_name): p for p in available_patches(state, host)}

    def fix(p: CatalogPatch) -> CatalogPatch:
        return latest.get(p.id if p.is_windows else p.package_name, p)

    vulnerabilities, highest = [], "NONE"
    for cve, patches in sorted(by_cve.items()):
        severity = max((SEVERITY.get(p.severity, "MINIMAL") for p in patches), key=_SEVERITY_RANK.index)
        highest = max(highest, severity, key=_SEVERITY_RANK.index)
        base, exploitability, impact, vector, privileges, cia = _CVSS_V3.get(
            severity, (0.0, 0.0, 0.0, "LOCAL", "LOW", ("NONE", "NONE", "NONE"))
        )
        ids = sorted({available_item_id(fix(p)) for p in patches})
        vulnerabilities.append(
            {
                "details": {
                    "cve": cve,
                    "severity": severity,
                    "description": "; ".join(p.title for p in patches),
                    "cvssV3": {
                        "baseScore": base,
                        "exploitabilityScore": exploitability,
                        "impactScore": impact,
                        "attackVector": f"ATTACK_VECTOR_{vector}",
                        "attackComplexity": "ATTACK_COMPLEXITY_LOW",
                        "privilegesRequired": f"PRIVILEGES_REQUIRED_{privileges}",
                        "userInteraction": "USER_INTERACTION_NONE",
                        "scope": "SCOPE_UNCHANGED",
                        "confidentialityImpact": f"IMPACT_{cia[0]}",
                        "integrityImpact": f"IMPACT_{cia[1]}",
                        "availabilityImpact": f"IMPACT_{cia[2]}",
                    },
                    "references": [{"url": f"https://nvd.nist.gov/vuln/detail/{cve}", "source": "NVD"}],
                },
                "availableInventoryItemIds": ids,
                "items": [
                    {
                        "availableInventoryItemId": available_item_id(fix(p)),
                        "fixedCpeUri": cpe,
                        "upstreamFix": p.package_version if not p.is_windows else f"KB{p.kb_number}",
                    }
                    for p in patches
                ],
                "createTime": min(_released(p) for p in patches),
                "updateTime": updated,
            }
        )
    return {
        "name": f"projects/{host.account}/locations/{host.region}/instances/{host.host_id}"
        "/vulnerabilityReport",
        "vulnerabilities": vulnerabilities,
        "updateTime": updated,
        "highestUpgradableCveSeverity": highest,
    }


# -- patch jobs -------------------------------------------------------------------------------------
@dataclass
class PatchTarget:
    """One instance of a patch job and the timeline laid out for it when the job was executed."""

    host: SimHost
    zone: str
    patch_ids: frozenset[str]
    reboots: bool  # whether a REBOOTING phase shows before the end
    started_at: float | None = None  # None: never contacted (job stopped, canceled or timed out first)
    ended_at: float | None = None
    natural_end: float | None = None  # when it would have ended without a timeout
    outcome: str = "PENDING"  # planned: SUCCEEDED | FAILED | NO_AGENT_DETECTED | TIMED_OUT
    failure_reason: str = ""
    final_state: str | None = None  # set when the effect is applied
    applied: bool = False

    def state_at(self, now: float) -> str:
        if self.started_at is None or now < self.started_at:
            return "PENDING"
        assert self.ended_at is not None and self.natural_end is not None
        if now >= self.ended_at:
            return self.final_state or self.outcome
        if self.outcome == "NO_AGENT_DETECTED":
            return "NOTIFIED"
        progress = (now - self.started_at) / max(self.natural_end - self.started_at, 1e-9)
        for upto, phase in _PHASES:
            if progress < upto:
                return phase
        return "REBOOTING" if self.reboots and self.outcome != "FAILED" else "APPLYING_PATCHES"


@dataclass
class PatchJob:
    """An executed patch job: its request, its phases' times and its instances' timelines."""

    name: str
    project: str
    request: dict[str, Any]  # the ExecutePatchJobRequest as JSON, enums as names
    created_at: float
    lookup_at: float
    patching_at: float
    deadline: float | None
    dry_run: bool
    reboot: str  # DEFAULT | ALWAYS | NEVER
    targets: list[PatchTarget] = field(default_factory=list)
    stop_message: str = ""
    timed_out: bool = False  # the duration ended before every instance finished
    canceled_at: float | None = None

    @property
    def ends_at(self) -> float:
        ends = [t.ended_at for t in self.targets if t.started_at is not None and t.ended_at is not None]
        if self.timed_out and self.deadline is not None:
            ends.append(self.deadline)
        return max([self.patching_at, *ends])

    def state_at(self, now: float) -> str:
        if self.canceled_at is not None and now >= self.canceled_at:
            return "CANCELED"
        if now < self.lookup_at:
            return "STARTED"
        if now < self.patching_at:
            return "INSTANCE_LOOKUP"
        if now < self.ends_at:
            return "PATCHING"
        if self.timed_out:
            return "TIMED_OUT"
        states = {t.state_at(now) for t in self.targets}
        return "COMPLETED_WITH_ERRORS" if states & _INSTANCE_ERROR_STATES else "SUCCEEDED"


def patch_job_body(job: PatchJob, now: float) -> dict[str, Any]:
    """The PatchJob as of ``now``: its state, instance counts per state and progress."""
    state = job.state_at(now)
    visible = now >= job.patching_at
    counts: Counter[str] = Counter(t.state_at(now) for t in job.targets) if visible else Counter()
    total = len(job.targets)
    finished = sum(counts[s] for s in INSTANCE_TERMINAL_STATES)
    if state == "SUCCEEDED" or (visible and total == 0):
        percent = 100.0
    else:
        percent = round(100.0 * finished / total, 2) if total else 0.0
    changed = min(now, job.ends_at) if job.canceled_at is None else min(now, job.canceled_at)
    body: dict[str, Any] = {
        "name": job.name,
        "displayName": job.request.get("displayName", ""),
        "description": job.request.get("description", ""),
        "createTime": rfc3339(job.created_at),
        "updateTime": rfc3339(max(job.created_at, changed)),
        "state": state,
        "instanceFilter": job.request.get("instanceFilter", {}),
        "patchConfig": job.request.get("patchConfig", {}),
        "instanceDetailsSummary": {_SUMMARY_FIELD[s]: str(n) for s, n in counts.items()},
        "dryRun": job.dry_run,
        "percentComplete": percent,
    }
    if "duration" in job.request:
        body["duration"] = job.request["duration"]
    if "rollout" in job.request:
        body["rollout"] = job.request["rollout"]
    if state in JOB_TERMINAL_STATES and state != "CANCELED" and job.stop_message:
        body["errorMessage"] = job.stop_message
    elif state == "TIMED_OUT":
        body["errorMessage"] = f"Patch job exceeded its duration of {job.request.get('duration')}"
    return body


def instance_details_body(project: str, target: PatchTarget, now: float) -> dict[str, Any]:
    """One PatchJobInstanceDetails row as of ``now``."""
    state = target.state_at(now)
    row: dict[str, Any] = {
        "name": f"projects/{project}/zones/{target.zone}/instances/{target.host.name}",
        "instanceSystemId": target.host.host_id,
        "state": state,
        "attemptCount": "0" if state == "PENDING" else "1",
    }
    if state in ("FAILED", "TIMED_OUT", "NO_AGENT_DETECTED") and target.failure_reason:
        row["failureReason"] = target.failure_reason
    return row


def _kb(value: str) -> str:
    return value.strip().upper().removeprefix("KB")


def validate_patch_config(config: dict[str, Any]) -> None:
    """The documented exclusivity rules of the package-manager settings (400 naming the field)."""
    apt = config.get("apt", {})
    if apt.get("exclusivePackages") and (apt.get("excludes") or apt.get("type")):
        raise InvalidArgument(
            "patch_config.apt.exclusive_packages cannot be combined with other apt settings"
        )
    yum = config.get("yum", {})
    if yum.get("exclusivePackages") and (yum.get("excludes") or yum.get("security") or yum.get("minimal")):
        raise InvalidArgument(
            "patch_config.yum.exclusive_packages cannot be combined with other yum settings"
        )
    wu = config.get("windowsUpdate", {})
    if wu.get("exclusivePatches") and (wu.get("excludes") or wu.get("classifications")):
        raise InvalidArgument(
            "patch_config.windows_update.exclusive_patches cannot be combined with other settings"
        )


def validate_rollout(rollout: dict[str, Any]) -> None:
    """A rollout's mode and disruption budget (400 naming the field)."""
    mode = rollout.get("mode", "MODE_UNSPECIFIED")
    if mode not in ("ZONE_BY_ZONE", "CONCURRENT_ZONES"):
        raise InvalidArgument(f"rollout.mode must be ZONE_BY_ZONE or CONCURRENT_ZONES, got {mode!r}")
    budget = rollout.get("disruptionBudget", {})
    fixed, percent = budget.get("fixed"), budget.get("percent")
    if (fixed is None) == (percent is None):
        raise InvalidArgument(
            f"rollout.disruption_budget needs exactly one of fixed or percent, got {budget!r}"
        )
    if fixed is not None and fixed < 1:
        raise InvalidArgument(f"rollout.disruption_budget.fixed must be at least 1, got {fixed}")
    if percent is not None and not 1 <= percent <= 100:
        raise InvalidArgument(f"rollout.disruption_budget.percent must be 1..100, got {percent}")


def _budget(rollout: dict[str, Any], zone_size: int) -> int:
    """Instances of a zone disrupted at once at most (a percent of the zone's instances, rounded up)."""
    budget = rollout["disruptionBudget"]
    if "fixed" in budget:
        return int(budget["fixed"])
    return max(1, math.ceil(zone_size * int(budget["percent"]) / 100))


def _describe_budget(budget: dict[str, Any]) -> str:
    return f"fixed {budget['fixed']}" if "fixed" in budget else f"percent {budget.get('percent')}%"


def _failure_reason(host: SimHost, patch_ids: frozenset[str], state: FleetState) -> str:
    manager = package_manager(host.os_family)
    if manager == "windowsUpdate":
        kbs = sorted(f"KB{state.catalog[p].kb_number}" for p in patch_ids if state.catalog[p].kb_number)
        return f"Windows Update failed with 0x80070643 installing {', '.join(kbs) or 'updates'}"
    if manager == "apt":
        return "apt-get upgrade failed: exit status 100"
    return "yum update failed: exit status 1"


def patch_selection(state: FleetState, host: SimHost, config: dict[str, Any], as_of: dt.datetime) -> set[str]:
    """The catalog patches the agent would install on a host under a patch config."""
    pending = host.missing | host.failed
    family = state.catalog_by_family.get(host.os_family, [])
    manager = package_manager(host.os_family)
    settings = config.get(manager, {})
    if manager == "windowsUpdate":
        exclusive = {_kb(k) for k in settings.get("exclusivePatches", [])}
        excludes = {_kb(k) for k in settings.get("excludes", [])}
        if exclusive:
            return {p.id for p in family if p.kb_number in exclusive} & pending
        approved = state.default_approved(host, as_of)
        return {p for p in approved if state.catalog[p].kb_number not in excludes} & pending
    exclusive = set(settings.get("exclusivePackages", []))
    excludes = set(settings.get("excludes", []))
    if exclusive:
        return _newest_of(state, host, exclusive, as_of)
    approved = state.default_approved(host, as_of)
    return {p for p in approved if state.catalog[p].package_name not in excludes} & pending


def _newest_of(state: FleetState, host: SimHost, names: set[str], as_of: dt.datetime) -> set[str]:
    """What ``exclusivePackages`` installs: the NEWEST version of each named package in the
    repository at install time, whatever version a plan froze (the API takes names only).

    Google, PatchConfig (https://cloud.google.com/compute/docs/osconfig/rest/v1/PatchConfig),
    sections AptSettings and YumSettings: apt patching runs ``apt-get update && apt-get upgrade``,
    yum patching runs ``yum update``; ``exclusivePackages`` is "an exclusive list of packages to be
    updated. These are the only packages that will be updated. If these packages are not installed,
    they will be ignored." ``apt-get upgrade`` installs "the newest versions of all packages
    currently installed" (apt-get(8)) and ``yum update <pkg>`` updates to the latest available
    version (yum(8), https://man7.org/linux/man-pages/man8/yum.8@@yum.html). So: per named package
    the host has installed, the newest catalog version released by the install time; none when the
    host does not have the package installed, or has the newest already.
    """
    # Installed packages only: Ubuntu's kernel images are one package per release, so a new one
    # (linux-image-<release>) is not installed and an exclusive list naming it is ignored.
    have = {p.package_name for p in installed_patches(state, host)} | {
        p.package_name for p, _ in base_versions(state, host)
    }
    chosen: set[str] = set()
    for name in names & have:
        newest = newest_version(state.catalog_by_family.get(host.os_family, []), name, as_of.date())
        if newest is not None and newest.id in host.missing | host.failed:
            chosen.add(newest.id)
    return chosen


def schedule(state: FleetState, job: PatchJob, rollout: dict[str, Any] | None) -> None:
    """Lay out every target's timeline under the rollout and the job's duration."""
    zones: dict[str, list[PatchTarget]] = {}
    for target in job.targets:
        zones.setdefault(target.zone, []).append(target)
    mode = (rollout or {}).get("mode")
    cursor = job.patching_at
    stops = []
    for zone in sorted(zones):
        budget = _budget(rollout, len(zones[zone])) if rollout else None
        start = cursor if mode == "ZONE_BY_ZONE" else job.patching_at
        end, failed = _run_zone(state, job, zones[zone], start, budget)
        if budget is not None and failed >= budget:
            stops.append((zone, budget, failed))
        if mode == "ZONE_BY_ZONE":
            cursor = end
            if stops:
                break  # later zones are never started
    if stops:
        described = _describe_budget((rollout or {}).get("disruptionBudget", {}))
        job.stop_message = "; ".join(
            f"Patch job stopped: {failed} instance(s) failed in zone {zone}, reaching its disruption "
            f"budget of {budget} instance(s) ({described})"
            + ("; later zones were not patched" if mode == "ZONE_BY_ZONE" else "")
            for zone, budget, failed in stops
        )
    if job.deadline is not None:
        for target in job.targets:
            if target.started_at is None or target.ended_at is None:
                continue
            if target.started_at >= job.deadline:
                target.started_at = target.ended_at = target.natural_end = None
                target.outcome = "PENDING"
                job.timed_out = True
            elif target.ended_at > job.deadline:
                job.timed_out = True
                target.ended_at = job.deadline
                target.outcome = "TIMED_OUT"
                target.failure_reason = "The patch job's duration ended before the instance finished patching"


def _run_zone(
    state: FleetState, job: PatchJob, targets: list[PatchTarget], start: float, budget: int | None
) -> tuple[float, int]:
    """Patch one zone from ``start``; returns (when its last instance ended, how many failed).

    At most ``budget`` instances are disrupted at once and a failed instance keeps its slot; when
    the failures use up the budget, the instances still waiting are never started.
    """
    t = state.timings
    lo, hi = t.invocation_seconds
    end = start
    queue = []
    for target in sorted(targets, key=lambda x: x.host.name):
        if target.host.agent_status != "ACTIVE":
            target.started_at = start
            target.ended_at = target.natural_end = start + t.delivery_timeout_seconds
            target.outcome = "NO_AGENT_DETECTED"
            target.failure_reason = "No response from the OS Config agent: is it installed and enabled?"
            end = max(end, target.ended_at)
        else:
            queue.append(target)
    capacity = budget if budget is not None else len(queue)
    running: list[tuple[float, int, PatchTarget]] = []
    failed, now, seq = 0, start, 0
    while queue:
        while queue and len(running) + failed < capacity:
            target = queue.pop(0)
            duration = lo + (hi - lo) * _stable_fraction(job.name, target.host.host_id)
            target.started_at = now
            target.ended_at = target.natural_end = now + duration
            fails = target.host.install_fails and not job.dry_run
            target.outcome = "FAILED" if fails else "SUCCEEDED"
            if fails:
                target.failure_reason = _failure_reason(target.host, target.patch_ids, state)
            seq += 1
            heapq.heappush(running, (target.ended_at, seq, target))
        if not running:
            break  # the budget is used up by failures: the rest stay PENDING
        now, _, finished = heapq.heappop(running)
        if finished.outcome == "FAILED":
            failed += 1
    for _, _, target in running:
        if target.outcome == "FAILED":
            failed += 1
    ends = [x.ended_at for x in targets if x.started_at is not None and x.ended_at is not None]
    return max([end, *ends]), failed


def apply_target(state: FleetState, job: PatchJob, target: PatchTarget) -> None:
    """Apply an instance's run to its host (once): the install through ``state.install``, and the
    ``gcp.patchJob`` action. A dry run contacts the agent and changes nothing."""
    if target.applied or target.started_at is None or target.ended_at is None:
        return
    target.applied = True
    host = target.host
    final = target.outcome
    action: dict[str, Any] = {
        "at": rfc3339(target.ended_at),
        "action": "gcp.patchJob",
        "job": job.name,
        "zone": target.zone,
        "started_at": rfc3339(target.started_at),
    }
    if job.dry_run:
        target.final_state = final
        return  # the agent was contacted and did nothing: no effect, no action
    if final in ("SUCCEEDED", "FAILED"):
        windows = host.platform.platform_type == "Windows"
        effect = state.install(
            host, set(target.patch_ids), fails=final == "FAILED", reboot=job.reboot != "NEVER"
        )
        reboot_needed = bool(effect.get("pending_reboot")) or (windows and bool(effect["installed"]))
        rebooted = effect["rebooted"] or job.reboot == "ALWAYS" or (job.reboot == "DEFAULT" and reboot_needed)
        if final == "SUCCEEDED" and job.reboot == "NEVER" and reboot_needed:
            final = "SUCCEEDED_REBOOT_REQUIRED"
        superseded = _supersede(state, host, effect["installed"])
        action.update(installed=effect["installed"], failed=effect["failed"], rebooted=rebooted)
        if superseded:
            action["superseded"] = superseded
        host.cloud_state["gcp_inventory_at"] = target.ended_at
    target.final_state = final
    action["result"] = final
    if target.failure_reason:
        action["failure_reason"] = target.failure_reason
    host.actions.append(action)


def _supersede(state: FleetState, host: SimHost, installed: list[str]) -> list[str]:
    """Older versions of a package the install just updated are no longer missing: the package
    manager replaced them with the newer one (kernels install side by side, but the older kernel
    update is no longer an available update either). Returns the superseded catalog ids."""
    superseded = []
    for pid in installed:
        patch = state.catalog[pid]
        if patch.is_windows:
            continue
        for other_id in sorted(host.missing | host.failed):
            other = state.catalog[other_id]
            if other.package_name == patch.package_name and other.released <= patch.released:
                host.missing.discard(other_id)
                host.failed.discard(other_id)
                superseded.append(other_id)
    return superseded


# -- the backend ------------------------------------------------------------------------------------
class OsConfigBackend:
    """OS Config's state over the fleet: the instances (indexed), the patch jobs executed, and the
    instance runs whose effects are still to be applied. The caller holds ``state.lock``."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self.jobs: dict[str, PatchJob] = {}
        self._due: list[tuple[float, int, str, int]] = []  # (ended_at, seq, job name, target index)
        self._seq = 0
        self._index: InstanceIndex | None = None

    # -- instances ----------------------------------------------------------------------------------
    def instances(self) -> InstanceIndex:
        """The GCP hosts indexed by project, zone and id or name, built once and again only when the
        fleet's host count changes, not scanned per request."""
        count = len(self.state.hosts)
        if self._index is None or self._index.host_count != count:
            self._index = InstanceIndex.of(self.state.hosts.values(), count)
        return self._index

    def project_instances(self, project: str) -> tuple[SimHost, ...]:
        """The project's instances, by zone then name; 403 for a project the scenario has no GCP hosts
        in, as Google answers for a project you cannot see."""
        hosts = self.instances().by_project.get(project)
        if not hosts:
            raise PermissionDenied(
                f"Permission denied on resource project {project} "
                "(not a GCP project of this fleetsim scenario)"
            )
        return hosts

    def agent_instances(self, project: str, zone: str) -> list[SimHost]:
        """The zone's instances whose agent runs (the others have no inventory and no report)."""
        self.project_instances(project)
        return [h for h in self.instances().by_zone.get((project, zone), ()) if h.agent_status == "ACTIVE"]

    def instance(self, project: str, zone: str, instance: str) -> SimHost:
        """An instance with an agent by numeric id or name; 404 naming it otherwise."""
        self.project_instances(project)
        for host in self.instances().by_ref.get((project, zone, instance), ()):
            if host.agent_status == "ACTIVE":
                return host
        raise NotFound(f"Resource not found: projects/{project}/locations/{zone}/instances/{instance}")

    # -- patch jobs ---------------------------------------------------------------------------------
    def job(self, project: str, job_id: str) -> PatchJob:
        """A patch job of the project; 404 naming it when unknown."""
        self.project_instances(project)
        name = f"projects/{project}/patchJobs/{job_id}"
        job = self.jobs.get(name)
        if job is None:
            raise NotFound(f"Resource not found: patch job {name}")
        return job

    def project_jobs(self, project: str) -> list[PatchJob]:
        """The project's patch jobs, newest first."""
        return sorted(
            (j for j in self.jobs.values() if j.project == project), key=lambda j: j.created_at, reverse=True
        )

    def execute(self, project: str, body: dict[str, Any], duration: float, now: float) -> PatchJob:
        """Execute a patch job (``body``: the ExecutePatchJobRequest as JSON without ``parent``;
        ``duration``: its duration in seconds): select the instances and their patches, lay out the
        timeline, and queue each instance's effect."""
        hosts = select_instances(self.project_instances(project), project, body.get("instanceFilter", {}))
        config = body.get("patchConfig", {})
        validate_patch_config(config)
        rollout = body.get("rollout")
        if rollout is not None:
            validate_rollout(rollout)
        if duration < 0:
            raise InvalidArgument(f"duration must not be negative, got {body.get('duration')!r}")
        t = self.state.timings
        job = PatchJob(
            name=f"projects/{project}/patchJobs/{uuid.uuid4()}",
            project=project,
            request=body,
            created_at=now,
            lookup_at=now + t.command_pending_seconds / 2,
            patching_at=now + t.command_pending_seconds,
            deadline=now + duration if duration > 0 else None,
            dry_run=bool(body.get("dryRun")),
            reboot=config.get("rebootConfig", "DEFAULT").replace("REBOOT_CONFIG_UNSPECIFIED", "DEFAULT"),
        )
        as_of = dt.datetime.fromtimestamp(now, dt.UTC)
        for host in hosts:
            patch_ids = frozenset(patch_selection(self.state, host, config, as_of))
            windows = host.platform.platform_type == "Windows"
            kernel = any(self.state.catalog[p].kernel for p in patch_ids) and not windows
            reboots = not job.dry_run and (
                job.reboot == "ALWAYS"
                or (job.reboot == "DEFAULT" and (kernel or (windows and bool(patch_ids))))
            )
            job.targets.append(PatchTarget(host=host, zone=host.region, patch_ids=patch_ids, reboots=reboots))
        schedule(self.state, job, rollout)
        self.jobs[job.name] = job
        for index, target in enumerate(job.targets):
            if target.started_at is not None and target.ended_at is not None:
                self._seq += 1
                heapq.heappush(self._due, (target.ended_at, self._seq, job.name, index))
        return job

    def cancel(self, job: PatchJob, now: float) -> None:
        """Cancel a running job: instances not yet contacted never will be; running ones finish."""
        state = job.state_at(now)
        if state in JOB_TERMINAL_STATES:
            raise FailedPrecondition(f"Patch job {job.name} is already in terminal state {state}")
        job.canceled_at = now
        for target in job.targets:
            if target.started_at is not None and target.started_at > now:
                target.started_at = target.ended_at = target.natural_end = None
                target.outcome = "PENDING"

    def advance(self, now: float) -> None:
        """Apply every instance's effect whose run has ended by ``now`` (once)."""
        with self.state.lock:
            while self._due and self._due[0][0] <= now:
                _, _, job_name, index = heapq.heappop(self._due)
                job = self.jobs[job_name]
                apply_target(self.state, job, job.targets[index])
