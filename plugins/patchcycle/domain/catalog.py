"""Where each OS family's patch catalog comes from on AWS, and how SSM's answers read as plan entries.

Pure policy over plain data: which SSM source AWS documents for each family, the tenant's own SSM
patch baseline for a family as of the cycle's cutoff, the patch group that binds hosts to it, SSM's
patch titles parsed into package, architecture, epoch and version, and the per-host judgement of the
plan's items against what ``DescribeInstancePatches`` reports after an install.

Documents relied on (AWS Systems Manager API Reference and User Guide):

- DescribeAvailablePatches, Note: "Currently, DescribeAvailablePatches supports only the Amazon Linux 1,
  Amazon Linux 2, and Windows Server operating systems."
  https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DescribeAvailablePatches.html
- PatchRule, ApproveAfterDays / ApproveUntilDate: "Not supported for Debian Server or Ubuntu Server."
  https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PatchRule.html
- PatchFilter (keys per OS; Ubuntu: PRODUCT, PRIORITY, SECTION; a value may be "*"):
  https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PatchFilter.html
- About patch groups: the tag key must be "Patch Group" (case-sensitive); an instance is in one group;
  a group is registered with one baseline per OS type.
  https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-patch-patchgroups.html
- About the AWS-RunPatchBaseline SSM document, "Parameter name: InstallOverrideList", "Valid YAML
  content formats": Linux id ``{name}.{architecture}``, title
  ``{name}.{architecture}:{epoch}:{version}-{release}`` (YUM) or ``{name}.{architecture}:{version}``
  (APT); Windows id the KB (``KB2736693``).
  https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-about-aws-runpatchbaseline.html
- Understanding patch compliance state values (Installed, InstalledOther, InstalledPendingReboot,
  InstalledRejected, Missing, NotApplicable, Failed).
  https://docs.aws.amazon.com/systems-manager/latest/userguide/about-patch-compliance-states.html
- CreatePatchBaseline / UpdatePatchBaseline, ApprovedPatches: "A list of explicitly approved patches for
  the baseline", "Maximum number of 50 items", each 1 to 100 characters; ApprovedPatchesEnableNonSecurity:
  "Indicates whether the list of approved patches includes non-security updates that should be applied to
  the managed nodes. The default value is false. Applies to Linux managed nodes only."
  https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_UpdatePatchBaseline.html
- Package name formats for approved and rejected patch lists (NF): Amazon Linux (1, 2, 2023), CentOS,
  Oracle Linux and RHEL approved lists take Bugzilla ids, CVE ids (``CVE-2018-1234567``), advisory ids
  (``RHSA-2017:0864``, ``ALAS-2018-123``) and full package names; Debian and Ubuntu take package names only
  ("don't include elements such as architecture or versions"); Windows takes KB and bulletin ids.
  https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-approved-rejected-package-name-formats.html
- AWS-RunPatchBaseline, InstallOverrideList: the list "overrides the patches specified by the current
  default patch baseline"; "compliance reports reflect patch states according to what's specified in the
  patch baseline, not what you specify in an InstallOverrideList ... Scan operations ignore the
  InstallOverrideList parameter". The sample scenario installs, through the list, patches the baseline does
  not approve (patch-manager-override-lists): the install of a fast-tracked patch needs no approval, its
  truthful compliance (Missing before, Installed after) does, hence ApprovedPatches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from patchcycle.config.models import Baseline, OsFamily, Severity
from patchcycle.domain.platforms import normalize_severity

if TYPE_CHECKING:  # plan imports this module
    from patchcycle.domain.fast_track import ApprovedList
    from patchcycle.domain.plan import CatalogPatch, PlanRisk

AVAILABLE_PATCHES_SOURCE = "ssm:DescribeAvailablePatches"
SCAN_SOURCE = "ssm:Scan+DescribeInstancePatches"
PATCH_GROUP_TAG = "Patch Group"  # the documented, case-sensitive key (About patch groups)

# The families DescribeAvailablePatches answers for (its Note names Amazon Linux 1/2 and Windows Server).
AVAILABLE_PATCHES_FAMILIES = frozenset(
    {OsFamily.amazon_linux_2, OsFamily.windows_2016, OsFamily.windows_2019, OsFamily.windows_2022}
)

# CreatePatchBaseline OperatingSystem for each family (API_CreatePatchBaseline, OperatingSystem).
SSM_OPERATING_SYSTEMS: dict[OsFamily, str] = {
    OsFamily.amazon_linux_2: "AMAZON_LINUX_2",
    OsFamily.amazon_linux_2023: "AMAZON_LINUX_2023",
    OsFamily.rhel_7: "REDHAT_ENTERPRISE_LINUX",
    OsFamily.rhel_8: "REDHAT_ENTERPRISE_LINUX",
    OsFamily.rhel_9: "REDHAT_ENTERPRISE_LINUX",
    OsFamily.centos_7: "CENTOS",
    OsFamily.ubuntu_20_04: "UBUNTU",
    OsFamily.ubuntu_22_04: "UBUNTU",
    OsFamily.windows_2016: "WINDOWS",
    OsFamily.windows_2019: "WINDOWS",
    OsFamily.windows_2022: "WINDOWS",
}

# Our severity scale in each OS's SSM words (PatchFilter: MSRC_SEVERITY for Windows; SEVERITY for
# Amazon Linux "Critical | Important | Medium | Low"; Red Hat and CentOS "Critical | Important |
# Moderate | Low").
_SSM_SEVERITY_AMAZON = {"Critical": "Critical", "High": "Important", "Medium": "Medium", "Low": "Low"}
_SSM_SEVERITY_REDHAT = {"Critical": "Critical", "High": "Important", "Medium": "Moderate", "Low": "Low"}

APT_FAMILIES = frozenset({OsFamily.ubuntu_20_04, OsFamily.ubuntu_22_04})


def catalog_source(family: OsFamily) -> str:
    """The SSM source AWS documents for a family's catalog: DescribeAvailablePatches where its Note
    says it answers, else the tenant's baseline applied by a Scan, read back per instance."""
    return AVAILABLE_PATCHES_SOURCE if family in AVAILABLE_PATCHES_FAMILIES else SCAN_SOURCE


def supports_approval_date(family: OsFamily) -> bool:
    """Whether a PatchRule may carry ApproveUntilDate (PatchRule: not for Debian or Ubuntu Server)."""
    return family not in APT_FAMILIES


def patch_group(tenant_id: str, family: OsFamily | str) -> str:
    """The patch group (``Patch Group`` tag value) of a tenant's hosts of one family.

    One per tenant and family, not per environment: the tenant's baseline is per family, a cycle's
    plan is frozen once for all its stages, and a tenant's runs never overlap (one active run per DAG),
    so per-environment baselines would hold identical rules at three times the calls and could drift.
    """
    return f"patchcycle-{tenant_id}-{OsFamily(family).value}"


def baseline_name(tenant_id: str, family: OsFamily | str) -> str:
    """The name of the tenant's SSM patch baseline for one family: the same text as its patch group."""
    return patch_group(tenant_id, family)


def _severity_values(family: OsFamily, severities: Iterable[Severity]) -> list[str]:
    table = (
        _SSM_SEVERITY_REDHAT
        if family in (OsFamily.rhel_7, OsFamily.rhel_8, OsFamily.rhel_9, OsFamily.centos_7)
        else _SSM_SEVERITY_AMAZON
    )
    if family.is_windows:
        table = _SSM_SEVERITY_REDHAT  # MSRC: Critical | Important | Moderate | Low
    ordered = sorted(severities, key=lambda s: -s.rank)
    return [table[s.value] for s in ordered]


@dataclass(frozen=True)
class BaselineRequest:
    """The tenant's SSM patch baseline for one family as of a cutoff, and what it could not express."""

    os_family: str
    name: str
    patch_group: str
    operating_system: str
    approval_rules: dict[str, Any]
    description: str
    notes: tuple[str, ...] = ()
    # ApprovedPatches the cycle sets (fast-tracked or zero-day fixes, in NF's formats); None: the tenant has
    # no risk policy and the cycle leaves the field alone, as it always did.
    approved_patches: tuple[str, ...] | None = None
    approved_non_security: bool = False  # ApprovedPatchesEnableNonSecurity, Linux only

    def _approved_kwargs(self, clear: bool) -> dict[str, Any]:
        if self.approved_patches is None or (not self.approved_patches and not clear):
            return {}
        kwargs: dict[str, Any] = {"ApprovedPatches": list(self.approved_patches)}
        if self.approved_patches and OsFamily(self.os_family).is_linux:
            kwargs["ApprovedPatchesEnableNonSecurity"] = self.approved_non_security
        return kwargs

    def create_kwargs(self) -> dict[str, Any]:
        """CreatePatchBaseline's arguments (UpdatePatchBaseline takes the same rules by BaselineId), with
        ApprovedPatches when the cycle approves patches by list."""
        return {
            "OperatingSystem": self.operating_system,
            "Name": self.name,
            "ApprovalRules": self.approval_rules,
            "Description": self.description,
            **self._approved_kwargs(clear=False),
        }

    def update_kwargs(self) -> dict[str, Any]:
        """UpdatePatchBaseline's arguments but BaselineId: name, rules, description (no OperatingSystem);
        for a tenant with a risk policy also ApprovedPatches, empty when nothing is listed this cycle
        (the cycle owns the field: last cycle's list must not approve anything in this one)."""
        return {
            "Name": self.name,
            "ApprovalRules": self.approval_rules,
            "Description": self.description,
            **self._approved_kwargs(clear=True),
        }


def baseline_request(
    tenant_id: str, baseline: Baseline, cutoff: dt.date, approved: Sequence[str] | None = None
) -> BaselineRequest:
    """The tenant's baseline for one family as an SSM patch baseline approving up to ``cutoff``.

    ApproveUntilDate: "Any patches released on or before this date" (PatchRule), the same rule the plan
    applies (released on or before the cutoff). Ubuntu takes no date and no severity filter: its rule
    approves the security pocket (EnableNonSecurity false) of every priority, and the notes say so.
    ``approved`` (tenants with a risk policy): the baseline's ApprovedPatches (see :func:`ssm_approved_list`),
    with ApprovedPatchesEnableNonSecurity as the rule's EnableNonSecurity, so the list takes no wider a
    set of classifications than the rule.
    """
    family = OsFamily(baseline.os_family)
    notes: list[str] = []
    non_security = any(c.lower() != "security" for c in baseline.classifications)
    if family in APT_FAMILIES:
        # PRODUCT is a documented Ubuntu key and "*" matches every value (PatchFilter); the patch
        # group already confines the baseline to this family's hosts.
        filters = [{"Key": "PRODUCT", "Values": ["*"]}]
        rule: dict[str, Any] = {"PatchFilterGroup": {"PatchFilters": filters}}
        notes.append(
            "SSM patch rules for Ubuntu take no ApproveUntilDate/ApproveAfterDays nor a severity "
            "(PatchRule, PatchFilter): the Scan's missing list is not the baseline as of the cutoff, "
            "so its entries are aged from the Scan (first detection), never approved by the source"
        )
        # Neither ApproveAfterDays nor ApproveUntilDate: both are "Not supported" on Ubuntu.
        rule["EnableNonSecurity"] = non_security
    else:
        severity_key = "MSRC_SEVERITY" if family.is_windows else "SEVERITY"
        filters = [
            {"Key": "CLASSIFICATION", "Values": list(baseline.classifications)},
            {"Key": severity_key, "Values": _severity_values(family, baseline.severities)},
        ]
        rule = {"PatchFilterGroup": {"PatchFilters": filters}, "ApproveUntilDate": cutoff.isoformat()}
        if family.is_linux:
            rule["EnableNonSecurity"] = non_security
    if not baseline.include_kernel_updates and family.is_linux:
        notes.append("kernel updates are excluded by the plan, not by the SSM baseline")
    return BaselineRequest(
        os_family=family.value,
        name=baseline_name(tenant_id, family),
        patch_group=patch_group(tenant_id, family),
        operating_system=SSM_OPERATING_SYSTEMS[family],
        approval_rules={"PatchRules": [rule]},
        description=f"patchcycle {tenant_id} {family.value}: approved on or before {cutoff.isoformat()}",
        notes=tuple(notes),
        approved_patches=tuple(approved) if approved is not None else None,
        approved_non_security=non_security,
    )


def approved_list_id(patch: CatalogPatch) -> str | None:
    """A catalog entry as an ApprovedPatches entry in NF's format: the KB id on Windows, the advisory id
    (the Patch object's ``AdvisoryIds``, ``ALAS2-2024-1234``) on Linux; None for an entry with neither."""
    if patch.os_family.is_windows:
        return f"KB{patch.kb}" if patch.kb else None
    return patch.advisory_ids[0] if patch.advisory_ids else None


def ssm_approved_list(
    baseline: Baseline,
    cycle_date: dt.date,
    risk: PlanRisk | None,
    listed: Sequence[CatalogPatch] | None,
) -> ApprovedList:
    """What the tenant's SSM baseline of one family approves by list for this cycle, before its Scan.

    - DescribeAvailablePatches families (``listed``, the catalog AWS publishes): the advisory or KB ids of
      the patches the plan will fast-track (or, in a zero-day cycle, select), so the Scan reports them
      Missing and the hosts' compliance counts them, as it counts what the rules approve.
    - Ubuntu: nothing; its rules take no date, so the Scan already lists every security update and the
      plan ages (and fast-tracks) them itself.
    - Other YUM families, whose catalog is the Scan itself: the CVE ids (NF allows them): the zero-day
      cycle's CVEs, or the KEV CVEs listed on or before the cycle date, newest first, at most 50 (the API's
      limit); what did not fit, and EPSS (far more CVEs than 50 places), cannot be fast-tracked there, and
      the notes say so.
    """
    from patchcycle.domain.fast_track import ApprovedList, capped, kev_cves_newest_first

    family = OsFamily(baseline.os_family)
    if risk is None or family in APT_FAMILIES:
        return ApprovedList()
    if family in AVAILABLE_PATCHES_FAMILIES:
        chosen = [
            p for p in listed or () if (c := risk.select(p, baseline, cycle_date))[0] and c[1] is not None
        ]
        kept, left = capped(sorted(pid for p in chosen if (pid := approved_list_id(p))))
        left += tuple(sorted(p.id for p in chosen if approved_list_id(p) is None))
        notes = (
            (
                f"{len(left)} fast-tracked patch(es) not in the baseline's ApprovedPatches (no advisory "
                f"or KB id, or beyond its 50 places: {', '.join(left)}): installed through the install "
                "list, but SSM's compliance shows them InstalledOther, not Missing, until then",
            )
            if left
            else ()
        )
        return ApprovedList(kept, left, notes)
    if risk.zero_day_cves is not None:
        kept, left = capped(sorted(risk.zero_day_cves))
        return ApprovedList(kept, left, _scan_family_notes(left, ()))
    if not risk.policy.kev:
        return ApprovedList((), (), _epss_unreachable() if risk.policy.epss_at_least is not None else ())
    kept, left = capped(kev_cves_newest_first(risk.feeds, cycle_date))
    epss = _epss_unreachable() if risk.policy.epss_at_least is not None else ()
    return ApprovedList(kept, left, _scan_family_notes(left, kept) + epss)


def _scan_family_notes(left: Sequence[str], kept: Sequence[str]) -> tuple[str, ...]:
    if not left:
        return ()
    return (
        f"SSM's ApprovedPatches takes at most 50 entries: the {len(kept) or 50} CVE id(s) listed were "
        f"approved by CVE; fixes of {len(left)} other CVE(s) released after the cutoff are not listed by the "
        "Scan and could not be fast-tracked on this family",
    )


def _epss_unreachable() -> tuple[str, ...]:
    return (
        "EPSS fast-track cannot reach this family: its catalog is the Scan, which lists only what the "
        "baseline approves, and ApprovedPatches takes at most 50 ids",
    )


# -- SSM patch titles ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PackageTitle:
    """A Linux patch as SSM names it: KBId ``name.arch``, Title ``name.arch:epoch:version-release``
    (YUM) or ``name.arch:version`` (APT), the InstallOverrideList title formats."""

    name: str
    arch: str | None
    epoch: str | None
    version: str  # YUM: version-release; APT: the Debian version (which may carry its own epoch)


def parse_package_title(kb_id: str, title: str, apt: bool) -> PackageTitle | None:
    """SSM's Linux KBId and Title as a package; None when they are not in the documented formats."""
    kb_id, title = (kb_id or "").strip(), (title or "").strip()
    if not kb_id or "." not in kb_id or not title.startswith(kb_id + ":"):
        return None
    name, _, arch = kb_id.rpartition(".")
    rest = title[len(kb_id) + 1 :]
    if not name or not rest:
        return None
    if apt:
        return PackageTitle(name, arch or None, None, rest)
    epoch, sep, version = rest.partition(":")
    if not sep or not version or "-" not in version:
        return None
    return PackageTitle(name, arch or None, epoch or None, version)


def catalog_patch_from_instance_patch(
    row: Mapping[str, Any],
    family: OsFamily,
    *,
    approved_by_source: bool,
    first_seen: dt.date | None = None,
) -> CatalogPatch | None:
    """One ``DescribeInstancePatches`` row (State Missing after a Scan) as a catalog entry, or None when
    its KBId/Title are not in a documented format (it cannot then be installed exactly).

    The source published no release date (``released`` None): the Scan against the tenant's baseline
    with ApproveUntilDate already applied the cutoff (``approved_by_source``).
    """
    from patchcycle.domain.plan import CatalogPatch, kernel_release

    vendor_severity = str(row.get("Severity") or "")
    cves = row.get("CVEIds") or ()
    if isinstance(cves, str):
        cves = [c.strip() for c in cves.split(",") if c.strip()]
    common: dict[str, Any] = {
        "os_family": family,
        "classification": str(row.get("Classification") or ""),
        "vendor_severity": vendor_severity,
        "severity": normalize_severity(vendor_severity),
        "cves": tuple(cves),
        "released": None,
        "source": SCAN_SOURCE,
        "first_seen": first_seen,
        "approved_by_source": approved_by_source,
    }
    if family.is_windows:
        kb = str(row.get("KBId") or "").upper().removeprefix("KB")
        if not kb.isdigit():
            return None
        return CatalogPatch(id=f"KB{kb}", title=str(row.get("Title") or f"KB{kb}"), kb=kb, **common)
    apt = family in APT_FAMILIES
    parsed = parse_package_title(str(row.get("KBId") or ""), str(row.get("Title") or ""), apt)
    if parsed is None:
        return None
    version, _, release = parsed.version.rpartition("-")
    return CatalogPatch(
        id=str(row["Title"]).strip(),
        title=str(row["Title"]).strip(),
        package=parsed.name,
        version=parsed.version,
        arch=parsed.arch,
        epoch=parsed.epoch,
        kernel_release=kernel_release(family, parsed.name, version or None, release or None, parsed.arch),
        **common,
    )


# -- Reading a Scan's missing patches --------------------------------------------------------------
def moment(value: Any) -> dt.datetime | None:
    """A timestamp from boto3 (aware datetime) or a record (ISO text) as an aware datetime; None when
    absent. A naive one is UTC (SSM's API returns aware timestamps; records are written in UTC)."""
    if value is None or value == "":
        return None
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class ScanHosts:
    """Of a family's hosts, those whose Scan says they miss something (``to_read``: their missing
    patches are read with DescribeInstancePatches) and those with no Scan to read (``unread``)."""

    to_read: list[str]
    unread: list[str]


def scanned_hosts(
    host_ids: Sequence[str],
    states: Mapping[str, Mapping[str, Any]],
    baseline_id: str | None,
    requested_at: dt.datetime | None,
) -> ScanHosts:
    """Which hosts' patch states (``DescribeInstancePatchStates``) show this cycle's Scan.

    A state counts only when its last operation was a Scan, measured against the tenant's baseline for
    the family (``BaselineId``: a host of another group was scanned against other rules), and ended no
    earlier than the Scan this plan requested (an older Scan's missing list is stale). A host whose
    Scan found nothing missing needs no further call.
    """
    to_read: list[str] = []
    unread: list[str] = []
    for host_id in host_ids:
        state = states.get(host_id)
        ended = moment((state or {}).get("OperationEndTime"))
        if (
            not state
            or state.get("Operation") != "Scan"
            or state.get("BaselineId") != baseline_id
            or (requested_at and ended and ended < requested_at)
        ):
            unread.append(host_id)
        elif int(state.get("MissingCount") or 0):
            to_read.append(host_id)
    return ScanHosts(to_read, unread)


def scan_first_seen(
    family: OsFamily, scan_ended: dt.datetime | None, requested_at: dt.datetime | None, now: dt.datetime
) -> dt.date | None:
    """The date a Scan's missing patch is aged from when its family takes no approval date (Ubuntu):
    the Scan that found it, the first detection we know. None for families whose baseline applied the
    approval cutoff already."""
    if supports_approval_date(family):
        return None
    return (scan_ended or requested_at or now).date()


def scan_notes(scope: str, unread: int, unparsed: int) -> list[str]:
    """What the plan says about a family's Scan reading in one account and region."""
    notes = []
    if unread:
        notes.append(
            f"{unread} host(s) in {scope} had no Scan against the tenant's baseline to read; "
            "their missing patches are not in the catalog"
        )
    if unparsed:
        notes.append(f"{unparsed} missing patch row(s) not in the documented KBId/Title format; not planned")
    return notes


# -- InstallOverrideList -------------------------------------------------------------------------
def override_entry(patch: Mapping[str, Any], family: str) -> dict[str, str]:
    """One plan patch as an InstallOverrideList entry in the format documented for its OS."""
    fam = OsFamily(family)
    if fam.is_windows:
        kb = str(patch.get("kb") or "").upper().removeprefix("KB")
        return {"id": f"KB{kb}" if kb else str(patch["id"]), "title": str(patch.get("title") or "")}
    package, version = patch.get("package"), patch.get("version")
    if not package or not version:
        return {"id": str(patch["id"]), "title": str(patch.get("title") or "")}
    # A wildcard stands in for an unknown architecture or epoch ("you can use one or more wildcards in
    # any position"); the version itself is always exact.
    ident = f"{package}.{patch.get('arch') or '*'}"
    if fam in APT_FAMILIES:
        return {"id": ident, "title": f"{ident}:{version}"}
    return {"id": ident, "title": f"{ident}:{patch.get('epoch') or '*'}:{version}"}


# -- verify: the plan's items on one host --------------------------------------------------------
INSTALLED = "Installed"
PENDING_REBOOT = "InstalledPendingReboot"
MISSING = "Missing"
FAILED = "Failed"
OTHER_VERSION = "OtherVersion"  # the package is reported, but at another version than the plan's
NOT_REPORTED = "NotReported"  # SSM reports nothing for it (not applicable to the host)

_STATE_WORDS = {
    "INSTALLED": INSTALLED,
    # Installed_Other: "the patch might have been included in an InstallOverrideList operation".
    "INSTALLEDOTHER": INSTALLED,
    "INSTALLEDPENDINGREBOOT": PENDING_REBOOT,
    "MISSING": MISSING,
    "FAILED": FAILED,
    "INSTALLEDREJECTED": FAILED,
}


def _state_word(value: Any) -> str | None:
    return _STATE_WORDS.get(str(value or "").replace("_", "").replace(" ", "").upper())


def planned_item_states(
    planned: Sequence[Mapping[str, Any]], rows: Iterable[Mapping[str, Any]], family: str
) -> dict[str, str]:
    """Each planned patch's state on one host, from its ``DescribeInstancePatches`` rows.

    Windows by KB; Linux by ``name.arch`` and the exact version of the Title. A package SSM does not
    report at all is NOT_REPORTED: SSM reports the packages present on the node, so a planned update
    for a package the host does not have is not applicable to it.
    """
    fam = OsFamily(family)
    apt = fam in APT_FAMILIES
    by_key: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        kb_id = str(row.get("KBId") or "")
        key = kb_id.upper() if fam.is_windows else kb_id
        by_key.setdefault(key, []).append(row)
    out: dict[str, str] = {}
    for patch in planned:
        if fam.is_windows:
            kb = str(patch.get("kb") or "").upper().removeprefix("KB")
            found = by_key.get(f"KB{kb}", [])
            states = [_state_word(r.get("State")) for r in found]
        else:
            if patch.get("arch"):
                found = by_key.get(f"{patch.get('package')}.{patch['arch']}", [])
            else:  # no architecture frozen: any architecture of the package
                name = patch.get("package")
                found = [r for k, rs in by_key.items() if k.rpartition(".")[0] == name for r in rs]
            states = []
            for r in found:
                parsed = parse_package_title(str(r.get("KBId") or ""), str(r.get("Title") or ""), apt)
                same = parsed is not None and parsed.version == patch.get("version")
                state = _state_word(r.get("State"))
                if state == INSTALLED and not same:
                    state = OTHER_VERSION
                states.append(state)
        known = [s for s in states if s]
        out[str(patch["id"])] = _worst(known) if known else NOT_REPORTED
    return out


_RANK = {FAILED: 5, MISSING: 4, PENDING_REBOOT: 3, OTHER_VERSION: 2, INSTALLED: 1}


def _worst(states: list[str]) -> str:
    # An exact-version Installed row wins over another version's row of the same package.
    if INSTALLED in states and all(s in (INSTALLED, OTHER_VERSION) for s in states):
        return INSTALLED
    return max(states, key=lambda s: _RANK.get(s, 0))
