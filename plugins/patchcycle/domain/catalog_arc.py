"""Azure Update Manager's view of Arc machines, in the plan's terms: the patch catalog read from the
machines' assessments, the install masks that pin the plan's versions, and what an install or an
assessment says about the plan.

Pure functions over the JSON Resource Graph returns (the ``properties`` of ``patchassessmentresources``
and ``patchinstallationresources`` rows). The fields are those Microsoft documents in "Access Azure
Update Manager operations data using Azure Resource Graph"
(https://learn.microsoft.com/azure/update-manager/query-logs): softwarepatches rows carry ``patchName``,
``version`` (Linux), ``kbId`` (Windows), ``classifications``, ``msrcSeverity`` (Windows) and
``publishedDateTime``, which "is not available in case of Linux updates"; installation rows add
``installationState`` (Installed, Failed, Pending, NotSelected, Excluded).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from patchcycle.config.models import Baseline, OsFamily
from patchcycle.domain.plan import CatalogPatch, approval_cutoff, kernel_release
from patchcycle.domain.platforms import arc_baseline_classification, normalize_severity

ARC_SOURCE = "azure:patchassessmentresources"


# -- the catalog ------------------------------------------------------------------------------------
def _date(value: Any) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _kb(value: Any) -> str | None:
    digits = str(value or "").strip().upper().removeprefix("KB")
    return digits if digits.isdigit() else None


def arc_catalog_patch(os_family: OsFamily, props: Mapping[str, Any]) -> CatalogPatch | None:
    """One softwarepatches row (an update the machine is missing) as a :class:`CatalogPatch`.

    Windows: id ``KB<kbId>``, release date ``publishedDateTime``, severity ``msrcSeverity``. Linux: id
    ``<patchName>_<version>`` (the installPatches mask that names it), no release date (Microsoft
    publishes none for Linux, and no first-detection time either: ``lastModifiedDateTime`` is when the
    record was last updated), so the plan ages it from the first-seen ledger; severity Critical for
    Update Manager's "Critical" classification, Important for "Security", unknown for "Other" (the
    rows carry no Linux severity). None for a row naming neither a KB nor a package.
    """
    classes = [str(c) for c in props.get("classifications") or []]
    first = classes[0] if classes else ("Updates" if os_family.is_windows else "Other")
    classification = arc_baseline_classification(first, windows=os_family.is_windows)
    released = _date(props.get("publishedDateTime"))
    name = str(props.get("patchName") or "").strip()
    if os_family.is_windows:
        kb = _kb(props.get("kbId"))
        if kb is None:
            return None
        vendor_severity = str(props.get("msrcSeverity") or "")
        return CatalogPatch(
            id=f"KB{kb}",
            os_family=os_family,
            title=name or f"KB{kb}",
            classification=classification,
            vendor_severity=vendor_severity,
            severity=normalize_severity(vendor_severity),
            cves=(),
            released=released,
            kb=kb,
            source=ARC_SOURCE,
        )
    version = str(props.get("version") or "").strip() or None
    if not name:
        return None
    # Update Manager rates no Linux update: its classification is all it says. "Critical" reads as
    # Critical; "Security" as Important (High), the level Ubuntu and Red Hat give most security fixes, so
    # a baseline approving High keeps the security fixes Update Manager names in scope (no document
    # gives a severity; leaving them unrated would mean no Linux security fix on Arc is ever planned);
    # "Other" stays unrated and is approved by no severity rule.
    lowered = {c.lower() for c in classes}
    vendor_severity = "Critical" if "critical" in lowered else "Important" if "security" in lowered else ""
    head, _, tail = (version or "").rpartition("-")
    return CatalogPatch(
        id=f"{name}_{version}" if version else name,
        os_family=os_family,
        title=f"{name} {version}" if version else name,
        classification=classification,
        vendor_severity=vendor_severity,
        severity=normalize_severity(vendor_severity),
        cves=(),
        released=released,
        package=name,
        version=version,
        kernel_release=kernel_release(os_family, name, head or version, tail or None, None),
        source=ARC_SOURCE,
    )


def arc_catalog(assessment_patches: Iterable[tuple[OsFamily, Mapping[str, Any]]]) -> list[CatalogPatch]:
    """The patch catalog a tenant's Arc machines report missing: one entry per distinct update
    (KB on Windows, package and version on Linux) over all machines of each OS family, sorted by id."""
    seen: dict[tuple[str, str], CatalogPatch] = {}
    for family, props in assessment_patches:
        patch = arc_catalog_patch(family, props)
        if patch is not None:
            seen.setdefault((family.value, patch.id), patch)
    return sorted(seen.values(), key=lambda p: (p.os_family.value, p.id))


# -- installPatches masks ---------------------------------------------------------------------------
def arc_package_mask(package: str, version: str | None, epoch: str | None = None) -> str:
    """The ``packageNameMasksToInclude`` entry that names one package version.

    Format ``packageName_packageVersion``: HybridCompute swagger 2024-07-10
    (Azure/azure-rest-api-specs, specification/hybridcompute/resource-manager/Microsoft.HybridCompute/
    stable/2024-07-10/HybridCompute.json, definitions/LinuxParameters.packageNameMasksToInclude). A
    non-zero epoch is written ``epoch:version``, as apt and yum name an exact version. Without a version
    the bare name is all that can be sent (the package manager then takes the newest), which verify
    then reads back.
    """
    if not version:
        return package
    if epoch and epoch != "0" and ":" not in version:
        version = f"{epoch}:{version}"
    return f"{package}_{version}"


# -- what an assessment or an install says about the plan --------------------------------------------
def _key(props: Mapping[str, Any]) -> tuple[str, str]:
    kb = _kb(props.get("kbId"))
    if kb:
        return ("kb", kb)
    return ("pkg", f"{props.get('patchName') or ''}_{props.get('version') or ''}")


def _planned_keys(planned: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    keys: dict[tuple[str, str], Mapping[str, Any]] = {}
    for p in planned:
        if p.get("kb"):
            keys[("kb", str(p["kb"]).upper().removeprefix("KB"))] = p
        elif p.get("package") and p.get("version"):
            keys[("pkg", f"{p['package']}_{p['version']}")] = p
        elif p.get("package"):
            keys[("name", str(p["package"]))] = p  # no version frozen: any version of it is the plan's
    return keys


def describe(props: Mapping[str, Any]) -> str:
    """A softwarepatches row as its update is named in a list: ``KB<kbId>``, else ``<patchName> <version>``
    (the name alone when the row has no version)."""
    kb = _kb(props.get("kbId"))
    if kb:
        return f"KB{kb}"
    version = props.get("version")
    return f"{props.get('patchName')} {version}" if version else str(props.get("patchName"))


def approvable_missing(
    os_family: OsFamily,
    missing: Iterable[Mapping[str, Any]],
    baseline: Baseline | None,
    cycle_date: dt.date,
) -> list[str]:
    """The missing updates of an assessment that the tenant's baseline may approve as of the cycle
    date: for a machine with nothing planned, which is compliant only when this is empty.

    The conservative reading where the assessment lacks a fact: an update with no release date (every
    Linux update) or no severity counts as approvable when its classification is the baseline's."""
    if baseline is None:
        return []
    cutoff = approval_cutoff(cycle_date, baseline.approve_after_days)
    out = []
    for props in missing:
        patch = arc_catalog_patch(os_family, props)
        if patch is None or patch.classification not in baseline.classifications:
            continue
        if patch.severity is not None and patch.severity not in baseline.severities:
            continue
        if patch.is_kernel_update and not baseline.include_kernel_updates:
            continue
        if patch.released is not None and patch.released > cutoff:
            continue
        out.append(describe(props))
    return sorted(set(out))


def install_readback(
    planned: Sequence[Mapping[str, Any]], installation: Sequence[Mapping[str, Any]] | None
) -> dict[str, Any]:
    """Planned vs installed for one machine, from the softwarepatches rows of its install in
    ``patchinstallationresources`` (None: no installation record could be read).

    ``installed_versions``: per planned package (or KB) the version the plan froze and the one the
    install reports ``Installed`` (None when it did not), then each installed update the plan does not
    hold, with ``planned`` None. ``outside_plan`` names those (another version of a planned package
    counts). Both None / empty when nothing could be read.
    """
    keys = _planned_keys(planned)
    if installation is None:
        return {"installed_versions": None, "outside_plan": []}
    installed = [p for p in installation if p.get("installationState") == "Installed"]
    by_name: dict[str, list[str]] = {}
    kbs = set()
    for row in installed:
        kb = _kb(row.get("kbId"))
        if kb:
            kbs.add(kb)
        else:
            by_name.setdefault(str(row.get("patchName")), []).append(str(row.get("version") or ""))
    entries: list[dict[str, Any]] = []
    for p in planned:
        if p.get("kb"):
            kb = str(p["kb"]).upper().removeprefix("KB")
            entries.append(
                {"package": f"KB{kb}", "planned": f"KB{kb}", "installed": f"KB{kb}" if kb in kbs else None}
            )
        elif p.get("package"):
            versions = by_name.get(str(p["package"]), [])
            version = p.get("version")
            got = version if version in versions else (", ".join(sorted(versions)) or None)
            entries.append({"package": p["package"], "planned": version, "installed": got})
    outside = []
    for row in installed:
        if _key(row) in keys or ("name", str(row.get("patchName"))) in keys:
            continue
        outside.append(describe(row))
        kb = _kb(row.get("kbId"))
        entries.append(
            {
                "package": f"KB{kb}" if kb else row.get("patchName"),
                "planned": None,
                "installed": f"KB{kb}" if kb else row.get("version"),
            }
        )
    return {"installed_versions": entries, "outside_plan": sorted(set(outside))}
