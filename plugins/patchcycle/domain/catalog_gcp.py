"""The plan's catalog from Google Cloud alone: OS Config inventories and vulnerability reports.

For a tenant with no AWS account (issue 10, finding 5) the updates the plan may approve are what VM
Manager reports its instances can install. Pure: the hook reads the zone-wide lists (FULL inventories
and vulnerability reports, paged); this module maps them to :class:`CatalogPatch` entries with source
:data:`SOURCE`. Documents (Google's OS Config v1 REST reference):

- Inventory (https://cloud.google.com/compute/docs/osconfig/rest/v1/projects.locations.instances.inventories):
  ``osInfo.longName``; ``items`` of ``type`` AVAILABLE_PACKAGE with ``availablePackage`` holding
  ``yumPackage`` / ``aptPackage`` (``packageName``, ``architecture``, ``version``) or ``wuaPackage``
  (``title``, ``kbArticleIds``, ``categories[].name``, ``lastDeploymentChangeTime``: "The last
  published date of the update"); ``Item.createTime``: "When this inventory item was first detected."
- VulnerabilityReport (https://cloud.google.com/compute/docs/osconfig/rest/v1/projects.locations.instances.vulnerabilityReports):
  ``vulnerabilities[].details.cve`` and ``.severity`` ("Assigned severity/impact ranking from the
  distro"), ``availableInventoryItemIds`` / ``items[].availableInventoryItemId`` (the AVAILABLE_PACKAGE
  item that fixes it), ``createTime``: "The timestamp for when the vulnerability was first detected."

Decisions where the documents are silent:

- No release date: neither resource publishes one for a Linux package, so ``released`` is None.
  ``first_seen`` is the earliest ``Item.createTime`` of the available package across the instances: an
  update cannot be detected before it exists, so ageing from it is at least as strict as from its
  release. A vulnerability's ``createTime`` is NOT used: it dates the vulnerability's detection, which
  may precede the fix's release. On Windows ``lastDeploymentChangeTime`` is a (last) publication
  date, also never before the release; the earlier of the two is used.
- Classification: OS Config classifies no Linux package. An available package that fixes at least
  one CVE of a vulnerability report is ``Security``; any other is ``Other`` (no baseline approves it).
  Windows updates take their WUA category names without spaces ("Security Updates" ->
  ``SecurityUpdates``), the vocabulary of the Windows baselines.
- Severity: the highest distro severity of the vulnerabilities it fixes; none without one (then the
  baseline cannot approve it: :func:`patchcycle.domain.plan.is_approved`).
- Only the newest build of a package is visible: an inventory lists the package manager's candidate
  (the vulnerability report's fix item "specifies the latest SoftwarePackage available to the VM").
  A build inside the plan's cutoff that a newer build superseded is not listed by Google at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from patchcycle.config.models import OsFamily
from patchcycle.domain.package_version import split_epoch
from patchcycle.domain.plan import CatalogPatch, kernel_release
from patchcycle.domain.platforms import normalize_severity, os_family_from_label

SOURCE = "gcp:osconfig.inventories"
_VERSIONED = ("yumPackage", "aptPackage", "zypperPackage", "googetPackage")
# Windows Update classifications among a WUA update's categories (the others name products).
_WUA_CLASSIFICATIONS = frozenset(
    {
        "CriticalUpdates",
        "SecurityUpdates",
        "DefinitionUpdates",
        "Drivers",
        "FeaturePacks",
        "ServicePacks",
        "Tools",
        "UpdateRollups",
        "Updates",
    }
)
_SEVERITY_RANK = {"CRITICAL": 5, "HIGH": 4, "MEDIUM": 3, "LOW": 2, "MINIMAL": 1}


@dataclass
class _Seen:
    """One update as the instances of one OS family report it, merged across instances."""

    os_family: OsFamily
    title: str
    package: str | None = None
    version: str | None = None
    arch: str | None = None
    kb: str | None = None
    classification: str | None = None  # Windows: from the WUA categories
    published: dt.date | None = None  # Windows: lastDeploymentChangeTime
    first_seen: dt.date | None = None
    cves: set[str] = field(default_factory=set)
    severity: str | None = None  # OS Config's severity name (CRITICAL ... MINIMAL)


def _date(value: Any) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(dt.UTC).date()
    except ValueError:
        return None


def _earliest(*dates: dt.date | None) -> dt.date | None:
    known = [d for d in dates if d is not None]
    return min(known) if known else None


def instance_id(resource_name: str) -> str:
    """The instance id in ``projects/P/locations/Z/instances/ID/inventory`` (or ``/vulnerabilityReport``)."""
    return resource_name.split("/instances/", 1)[1].split("/", 1)[0]


def _fixes(report: Mapping[str, Any] | None) -> dict[str, list[tuple[str, str]]]:
    """Available item id -> [(CVE, severity)] of the vulnerabilities it fixes."""
    out: dict[str, list[tuple[str, str]]] = {}
    for vuln in (report or {}).get("vulnerabilities") or []:
        details = vuln.get("details") or {}
        cve, severity = str(details.get("cve") or ""), str(details.get("severity") or "").upper()
        item_ids = set(vuln.get("availableInventoryItemIds") or []) | {
            i.get("availableInventoryItemId")
            for i in vuln.get("items") or []
            if i.get("availableInventoryItemId")
        }
        for item_id in item_ids:
            out.setdefault(item_id, []).append((cve, severity))
    return out


def catalog_from_osconfig(
    inventories: Iterable[Mapping[str, Any]], reports: Mapping[str, Mapping[str, Any]]
) -> list[CatalogPatch]:
    """Catalog entries for the updates OS Config reports available on the instances.

    ``inventories``: FULL inventories (``ListInventories`` with ``view=FULL``); ``reports``: vulnerability
    reports keyed by instance id. One entry per OS family and update (Linux: package, version and
    architecture; Windows: KB), merged across instances. Instances of a family Patchcycle does not
    patch, and items of kinds it cannot install by name (COS, zypper patches, Windows applications),
    are left out.
    """
    seen: dict[tuple[str, ...], _Seen] = {}
    for inventory in inventories:
        family = os_family_from_label(str((inventory.get("osInfo") or {}).get("longName") or ""))
        if family is None:
            continue
        fixes = _fixes(reports.get(instance_id(str(inventory.get("name") or "/instances/?"))))
        for item_id, item in (inventory.get("items") or {}).items():
            if item.get("type") != "AVAILABLE_PACKAGE" or not item.get("availablePackage"):
                continue
            found = _update(family, item["availablePackage"])
            if found is None:
                continue
            key, fresh = found
            entry = seen.setdefault(key, fresh)
            entry.first_seen = _earliest(entry.first_seen, _date(item.get("createTime")))
            for cve, severity in fixes.get(item_id, []):
                if cve:
                    entry.cves.add(cve)
                if _SEVERITY_RANK.get(severity, 0) > _SEVERITY_RANK.get(entry.severity or "", 0):
                    entry.severity = severity
    return [_catalog_patch(e) for _, e in sorted(seen.items())]


def _update(family: OsFamily, package: Mapping[str, Any]) -> tuple[tuple[str, ...], _Seen] | None:
    wua = package.get("wuaPackage")
    if wua and family.is_windows:
        kbs = [str(k).upper().removeprefix("KB") for k in wua.get("kbArticleIds") or [] if k]
        if not kbs:
            return None
        categories = [str(c.get("name") or "").replace(" ", "") for c in wua.get("categories") or []]
        return (family.value, "kb", kbs[0]), _Seen(
            os_family=family,
            title=str(wua.get("title") or f"KB{kbs[0]}"),
            kb=kbs[0],
            classification=next((c for c in categories if c in _WUA_CLASSIFICATIONS), "Other"),
            published=_date(wua.get("lastDeploymentChangeTime")),
        )
    if family.is_windows:
        return None
    for kind in _VERSIONED:
        versioned = package.get(kind)
        if versioned and versioned.get("packageName") and versioned.get("version"):
            name, version = str(versioned["packageName"]), str(versioned["version"])
            arch = str(versioned.get("architecture") or "") or None
            return (family.value, "pkg", name, version, arch or ""), _Seen(
                os_family=family, title=f"{name} {version}", package=name, version=version, arch=arch
            )
    return None


def _catalog_patch(e: _Seen) -> CatalogPatch:
    if e.kb:
        classification = e.classification or "Other"
        patch_id = f"KB{e.kb}"
        first_seen = _earliest(e.first_seen, e.published)
        kernel = None
        epoch = None
        version = None
    else:
        classification = "Security" if e.cves else "Other"
        epoch_number, bare = split_epoch(e.version or "")
        epoch = str(epoch_number) if ":" in (e.version or "") else None
        version = bare or None
        patch_id = f"{e.package}-{bare}" + (f".{e.arch}" if e.arch else "")
        first_seen = e.first_seen
        upstream, _, release = bare.partition("-")
        kernel = kernel_release(e.os_family, e.package, upstream, release or None, e.arch)
    vendor_severity = (e.severity or "").capitalize()
    return CatalogPatch(
        id=patch_id,
        os_family=e.os_family,
        title=e.title,
        classification=classification,
        vendor_severity=vendor_severity,
        severity=normalize_severity(vendor_severity),
        cves=tuple(sorted(e.cves)),
        released=None,
        package=e.package,
        version=version,
        kb=e.kb,
        kernel_release=kernel,
        arch=e.arch,
        epoch=epoch,
        source=SOURCE,
        first_seen=first_seen,
    )
