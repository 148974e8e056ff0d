"""SSM Patch Manager policy as AWS documents it: patch baselines, their approval rules, the patch
states they yield, and how AWS names Linux packages. Pure functions over plain data (no moto, no I/O);
``fleetsim.aws.ssm`` reads baselines from moto and ``fleetsim.fleet`` applies the states to hosts.

Documents this module follows (cited again where each rule is applied):

- PB  = User guide, "About predefined and custom patch baselines"
        https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-patch-baselines.html
        (awsdocs/aws-systems-manager-user-guide doc_source/sysman-patch-baselines.md)
- PR  = API reference, PatchRule
        https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PatchRule.html
- CS  = User guide, "Understanding patch compliance state values"
        https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-compliance-states.html
        (doc_source/about-patch-compliance-states.md)
- NF  = User guide, "Package name formats for approved and rejected patch lists"
        https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-approved-rejected-package-name-formats.html
- RPB = User guide, "SSM Command document for patching: AWS-RunPatchBaseline", sections
        "Parameter name: InstallOverrideList" and "Valid YAML content formats"
        https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-aws-runpatchbaseline.html
- IPS = API reference, InstancePatchState
        https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_InstancePatchState.html
- UPB = API reference, CreatePatchBaseline / UpdatePatchBaseline: ApprovedPatches "Maximum number of 50
        items", each "Minimum length of 1. Maximum length of 100"; ApprovedPatchesEnableNonSecurity
        "Indicates whether the list of approved patches includes non-security updates that should be
        applied to the managed nodes. The default value is false. Applies to Linux managed nodes only."
        https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_UpdatePatchBaseline.html
- DPP = API reference, DescribePatchProperties: "the properties that can be used in filters for each
        major operating system type" (filters of CreatePatchBaseline and UpdatePatchBaseline among them):
        AMAZON_LINUX_2, AMAZON_LINUX_2023, CENTOS, REDHAT_ENTERPRISE_LINUX: PRODUCT | CLASSIFICATION |
        SEVERITY; UBUNTU, DEBIAN: PRODUCT | PRIORITY; WINDOWS: PRODUCT | PRODUCT_FAMILY | CLASSIFICATION |
        MSRC_SEVERITY. (PatchFilter's Key enumerates more, CVE_ID and ADVISORY_ID among them: those are
        DescribeAvailablePatches filters, not a baseline's.)
        https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DescribePatchProperties.html
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetsim.platforms import PLATFORMS
from fleetsim.scenario import CatalogPatch

# PatchComplianceData.State, as the service model (botocore ssm-2014-11-06) enumerates it, and as CS
# names the states for every OS but Ubuntu/Debian. (The AWS CLI example for describe-instance-patches
# prints "Installed"/"InstalledOther"; the API's machine-readable contract says INSTALLED, ...: fleetsim
# follows the contract, so a consumer must not rely on either spelling without normalising.)
INSTALLED = "INSTALLED"
INSTALLED_OTHER = "INSTALLED_OTHER"
INSTALLED_PENDING_REBOOT = "INSTALLED_PENDING_REBOOT"
INSTALLED_REJECTED = "INSTALLED_REJECTED"
MISSING = "MISSING"
FAILED = "FAILED"
NOT_APPLICABLE = "NOT_APPLICABLE"
NON_COMPLIANT_STATES = frozenset({MISSING, FAILED, INSTALLED_PENDING_REBOOT, INSTALLED_REJECTED})

# DescribeInstancePatches, Filters, Key "State": the API reference gives the values in this spelling
# ("Sample values: Installed | InstalledOther | InstalledPendingReboot"; the rest from CS). Values it
# does not document match nothing (the conservative reading: no undocumented alias is honoured).
STATE_FILTER_VALUES = {
    "Installed": INSTALLED,
    "InstalledOther": INSTALLED_OTHER,
    "InstalledPendingReboot": INSTALLED_PENDING_REBOOT,
    "InstalledRejected": INSTALLED_REJECTED,
    "Missing": MISSING,
    "Failed": FAILED,
    "NotApplicable": NOT_APPLICABLE,
}

SECURITY_CLASSIFICATIONS = frozenset({"Security", "SecurityUpdates"})
# PR: "Not supported for Debian Server or Ubuntu Server" (ApproveAfterDays and ApproveUntilDate).
NO_APPROVAL_DATES = frozenset({"UBUNTU", "DEBIAN", "RASPBIAN"})
# Patch filter keys fleetsim evaluates; a baseline using another (valid in AWS) key is refused with a
# ValidationException that says so, rather than silently approving nothing.
EMULATED_FILTER_KEYS = frozenset({"PRODUCT", "CLASSIFICATION", "SEVERITY", "MSRC_SEVERITY", "PATCH_ID"})
# DPP: the keys a baseline's filters may use, per operating system. A key outside its OS's list (CVE_ID in
# an approval rule, SEVERITY on Windows) is refused: DPP documents no other, and AWS's error for one is
# not documented, so fleetsim answers ValidationException, the error UpdatePatchBaseline lists for input.
_YUM_KEYS = frozenset({"PRODUCT", "CLASSIFICATION", "SEVERITY"})
BASELINE_FILTER_KEYS: dict[str, frozenset[str]] = {
    "AMAZON_LINUX": _YUM_KEYS,
    "AMAZON_LINUX_2": _YUM_KEYS,
    "AMAZON_LINUX_2023": _YUM_KEYS,
    "CENTOS": _YUM_KEYS,
    "REDHAT_ENTERPRISE_LINUX": _YUM_KEYS,
    "ORACLE_LINUX": _YUM_KEYS,
    "UBUNTU": frozenset({"PRODUCT", "PRIORITY"}),
    "DEBIAN": frozenset({"PRODUCT", "PRIORITY"}),
    "WINDOWS": frozenset({"PRODUCT", "PRODUCT_FAMILY", "CLASSIFICATION", "MSRC_SEVERITY"}),
}
APPROVED_PATCHES_MAX = 50  # UPB
APPROVED_PATCH_LENGTH = (1, 100)  # UPB
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BaselineError(ValueError):
    """A baseline AWS would refuse (CreatePatchBaseline / UpdatePatchBaseline ValidationException)."""


# -- package identity --------------------------------------------------------------------------
def arch(patch: CatalogPatch) -> str | None:
    """The package architecture: Ubuntu (APT) packages are amd64, RPM packages x86_64; None on Windows.

    The scenario format does not declare architectures; every emulated host is 64-bit Intel.
    """
    if patch.is_windows:
        return None
    return "amd64" if patch.os_family.startswith("ubuntu") else "x86_64"


def evr(patch: CatalogPatch) -> tuple[int, str, str]:
    """(epoch, version, release) of a Linux package; APT versions are whole, with release "".

    RPM "1.0.2k-24.amzn2.0.14" -> (0, "1.0.2k", "24.amzn2.0.14"). An Ubuntu kernel image's version is
    taken from its kernel release ("5.15.0-126-generic" -> "5.15.0-126"): the scenario does not carry the
    upload number a real linux-image version has ("5.15.0-126.136").
    """
    if patch.os_family.startswith("ubuntu"):
        if patch.kernel:
            return patch.epoch, patch.kernel.removesuffix("-generic"), ""
        return patch.epoch, patch.package_version, ""
    version, _, release = patch.package_version.partition("-")
    return patch.epoch, version, release


def kb_id(patch: CatalogPatch) -> str:
    """DescribeInstancePatches KBId: the KB id on Windows, ``name.arch`` on Linux (API reference,
    DescribeInstancePatches, Filters: "KBId Sample values: KB4480056 | java-1.7.0-openjdk.x86_64")."""
    if patch.is_windows:
        return f"KB{patch.kb_number}" if patch.kb_number else patch.id
    return f"{patch.package_name}.{arch(patch)}"


def package_title(patch: CatalogPatch) -> str:
    """The Linux package with its version, in the formats RPB gives for an override list's ``title``:
    YUM ``{name}.{architecture}:{epoch}:{version}-{release}``, APT ``{name}.{architecture}:{version}``.

    No document states the Title DescribeInstancePatches returns for a Linux package; fleetsim returns
    this same string, so that what is read back can be written into an override list unchanged.
    """
    epoch, version, release = evr(patch)
    if patch.os_family.startswith("ubuntu"):
        return f"{kb_id(patch)}:{version}"
    return f"{kb_id(patch)}:{epoch}:{version}-{release}"


def rpm_full_name(patch: CatalogPatch) -> str:
    """``name-version-release.arch``, the "full package name" of NF's YUM lists."""
    _, version, release = evr(patch)
    return f"{patch.package_name}-{version}-{release}.{arch(patch)}"


# -- override lists (RPB) ----------------------------------------------------------------------
@dataclass(frozen=True)
class OverrideEntry:
    """One ``patches`` entry of an InstallOverrideList: ``id`` required, ``title`` optional."""

    id: str
    title: str | None = None


def parse_override(doc: Any) -> list[OverrideEntry]:
    """The entries of an override list document; RPB: "The id field is required"; other fields are
    ignored "during patch operations". A document without a ``patches`` list, or an entry without an
    ``id``, is refused (BaselineError): AWS documents no lenient reading of a malformed list."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("patches"), list):
        raise BaselineError("InstallOverrideList must be YAML with a 'patches' list")
    entries = []
    for item in doc["patches"]:
        if not isinstance(item, Mapping) or not item.get("id"):
            raise BaselineError(f"InstallOverrideList entry without an id: {item!r}")
        title = item.get("title")
        entries.append(OverrideEntry(str(item["id"]), None if title is None else str(title)))
    return entries


def override_matches(entry: OverrideEntry, patch: CatalogPatch) -> bool:
    """Whether an override entry names a patch (RPB, "Valid YAML content formats").

    Linux: ``id`` is ``name.architecture`` with wildcards; ``title``, when given, must match the
    versioned title in the documented format, wildcards "in any position". (RPB's own samples also
    show bare ``epoch:version-release`` titles such as '32:9.8.2-0.62.rc1.57.amzn1'; the format it
    states is the full one, and fleetsim holds lists to the stated format, so such a title without a
    leading wildcard matches nothing.) Windows: ``id`` is the KB id, matched exactly; "any other
    fields ... are for your own informational use only", so a Windows title never narrows.
    """
    if patch.is_windows:
        return entry.id.upper() == kb_id(patch).upper()
    if not fnmatch.fnmatchcase(kb_id(patch), entry.id):
        return False
    return entry.title is None or fnmatch.fnmatchcase(package_title(patch), entry.title)


# -- baselines ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PatchRule:
    filters: tuple[tuple[str, tuple[str, ...]], ...]
    approve_after_days: int | None = None
    approve_until_date: dt.date | None = None
    compliance_level: str = "UNSPECIFIED"


@dataclass(frozen=True)
class Baseline:
    """A patch baseline as Patch Manager evaluates it for one operating system."""

    baseline_id: str
    operating_system: str
    rules: tuple[PatchRule, ...]
    global_filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    approved_patches: tuple[str, ...] = ()
    approved_patches_compliance_level: str = "UNSPECIFIED"
    approved_patches_enable_non_security: bool = False
    rejected_patches: tuple[str, ...] = ()
    rejected_patches_action: str = "ALLOW_AS_DEPENDENCY"
    patch_group: str = ""  # the patch group through which it was chosen ("" for none)
    predefined: bool = False


def _filters(group: Mapping[str, Any] | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((f["Key"], tuple(f.get("Values", []))) for f in (group or {}).get("PatchFilters", []))


def _check_filter_key(key: str, operating_system: str, where: str) -> None:
    valid = BASELINE_FILTER_KEYS.get(operating_system)
    if valid is not None and key not in valid:
        raise BaselineError(
            f"{where}: patch filter key {key!r} is not valid for operating system {operating_system} "
            f"(DescribePatchProperties lists {', '.join(sorted(valid))})"
        )
    if key not in EMULATED_FILTER_KEYS:
        raise BaselineError(f"fleetsim does not emulate the patch filter key {key!r}")


def validate_approved_patches(approved_patches: Iterable[str] | None) -> None:
    """UPB: at most 50 ApprovedPatches, each 1 to 100 characters."""
    entries = list(approved_patches or ())
    if len(entries) > APPROVED_PATCHES_MAX:
        raise BaselineError(
            f"ApprovedPatches has {len(entries)} members; at most {APPROVED_PATCHES_MAX} are allowed"
        )
    low, high = APPROVED_PATCH_LENGTH
    for entry in entries:
        if not low <= len(str(entry)) <= high:
            raise BaselineError(f"ApprovedPatches member {entry!r} must be {low} to {high} characters long")


def validate(operating_system: str, approval_rules: Mapping[str, Any] | None, global_filters: Any) -> None:
    """Refuse what PR and DPP document as unsupported, as CreatePatchBaseline/UpdatePatchBaseline would.

    - PR, ApproveAfterDays / ApproveUntilDate: "your request must include a value for either
      ApproveAfterDays or ApproveUntilDate" and both are "Not supported for Debian Server or Ubuntu
      Server": on UBUNTU/DEBIAN a rule with either is refused; elsewhere a rule with neither, or (the
      conservative reading of "either") with both, is refused.
    - PR, ApproveUntilDate: "Enter dates in the format YYYY-MM-DD".
    - PR, ApproveAfterDays: "Valid Range: Minimum value of 0. Maximum value of 360."
    """
    for key, _ in _filters(global_filters):
        _check_filter_key(key, operating_system, "GlobalFilters")
    for i, rule in enumerate((approval_rules or {}).get("PatchRules", [])):
        for key, _ in _filters(rule.get("PatchFilterGroup")):
            _check_filter_key(key, operating_system, f"PatchRules[{i}]")
        days, until = rule.get("ApproveAfterDays"), rule.get("ApproveUntilDate")
        if operating_system in NO_APPROVAL_DATES:
            if days is not None or until is not None:
                raise BaselineError(
                    f"PatchRules[{i}]: ApproveAfterDays and ApproveUntilDate are not supported for "
                    f"operating system {operating_system}"
                )
            continue
        if (days is None) == (until is None):
            raise BaselineError(
                f"PatchRules[{i}]: specify exactly one of ApproveAfterDays or ApproveUntilDate"
            )
        if days is not None and not 0 <= int(days) <= 360:
            raise BaselineError(f"PatchRules[{i}]: ApproveAfterDays must be between 0 and 360")
        if until is not None:
            if not _DATE.match(str(until)):
                raise BaselineError(f"PatchRules[{i}]: ApproveUntilDate must be YYYY-MM-DD, got {until!r}")
            try:
                dt.date.fromisoformat(str(until))
            except ValueError as exc:
                raise BaselineError(f"PatchRules[{i}]: ApproveUntilDate {until!r} is not a date") from exc


def from_api(
    baseline_id: str,
    operating_system: str,
    approval_rules: Mapping[str, Any] | None,
    global_filters: Mapping[str, Any] | None = None,
    approved_patches: Iterable[str] = (),
    approved_patches_compliance_level: str | None = None,
    rejected_patches: Iterable[str] = (),
    rejected_patches_action: str | None = None,
    patch_group: str = "",
    approved_patches_enable_non_security: bool | None = None,
) -> Baseline:
    """A baseline from the fields CreatePatchBaseline / UpdatePatchBaseline take."""
    rules = []
    for rule in (approval_rules or {}).get("PatchRules", []):
        until = rule.get("ApproveUntilDate")
        days = rule.get("ApproveAfterDays")
        rules.append(
            PatchRule(
                filters=_filters(rule.get("PatchFilterGroup")),
                approve_after_days=None if days is None else int(days),
                approve_until_date=dt.date.fromisoformat(until) if until else None,
                compliance_level=rule.get("ComplianceLevel") or "UNSPECIFIED",
            )
        )
    return Baseline(
        baseline_id=baseline_id,
        operating_system=operating_system,
        rules=tuple(rules),
        global_filters=_filters(global_filters),
        approved_patches=tuple(approved_patches or ()),
        approved_patches_compliance_level=approved_patches_compliance_level or "UNSPECIFIED",
        approved_patches_enable_non_security=bool(approved_patches_enable_non_security),
        rejected_patches=tuple(rejected_patches or ()),
        rejected_patches_action=rejected_patches_action or "ALLOW_AS_DEPENDENCY",
        patch_group=patch_group,
    )


def _rule(filters: dict[str, list[str]], days: int | None) -> PatchRule:
    return PatchRule(tuple((k, tuple(v)) for k, v in filters.items()), approve_after_days=days)


# PB, "About predefined baselines" (the table), one per operating system fleetsim emulates. They
# "assign a compliance level of Unspecified to all patches installed using those baselines".
_CRIT_IMP = ["Critical", "Important"]
PREDEFINED_RULES: dict[str, tuple[PatchRule, ...]] = {
    # AWS-AmazonLinux2DefaultPatchBaseline: Security Critical/Important after 7 days; Bugfix after 7.
    "AMAZON_LINUX_2": (
        _rule({"CLASSIFICATION": ["Security"], "SEVERITY": _CRIT_IMP}, 7),
        _rule({"CLASSIFICATION": ["Bugfix"]}, 7),
    ),
    # AWS-AmazonLinux2023DefaultPatchBaseline: as Amazon Linux 2 (current user guide table).
    "AMAZON_LINUX_2023": (
        _rule({"CLASSIFICATION": ["Security"], "SEVERITY": _CRIT_IMP}, 7),
        _rule({"CLASSIFICATION": ["Bugfix"]}, 7),
    ),
    # AWS-RedHatDefaultPatchBaseline: as Amazon Linux 2.
    "REDHAT_ENTERPRISE_LINUX": (
        _rule({"CLASSIFICATION": ["Security"], "SEVERITY": _CRIT_IMP}, 7),
        _rule({"CLASSIFICATION": ["Bugfix"]}, 7),
    ),
    # AWS-CentOSDefaultPatchBaseline: "all updates seven days after they become available".
    "CENTOS": (_rule({}, 7),),
    # AWS-UbuntuDefaultPatchBaseline: "Immediately approves all operating system security-related
    # patches" of every priority; "There is no wait before approval".
    "UBUNTU": (_rule({"CLASSIFICATION": ["Security"]}, None),),
    # AWS-DefaultPatchBaseline: CriticalUpdates or SecurityUpdates, MSRC Critical or Important, 7 days.
    "WINDOWS": (
        _rule({"CLASSIFICATION": ["CriticalUpdates", "SecurityUpdates"], "MSRC_SEVERITY": _CRIT_IMP}, 7),
    ),
}


def predefined(operating_system: str, baseline_id: str) -> Baseline:
    """The predefined baseline AWS uses for an OS when no other is registered (PB)."""
    return Baseline(
        baseline_id=baseline_id,
        operating_system=operating_system,
        rules=PREDEFINED_RULES.get(operating_system, ()),
        predefined=True,
    )


def _filter_value(key: str, patch: CatalogPatch) -> str | None:
    platform = PLATFORMS[patch.os_family]
    if key == "PRODUCT":
        return platform.ssm_product
    if key == "CLASSIFICATION":
        return patch.classification
    if key in ("SEVERITY", "MSRC_SEVERITY"):
        # SEVERITY is the Linux key, MSRC_SEVERITY the Windows one; the other OS's key matches nothing.
        return patch.severity if (key == "MSRC_SEVERITY") == patch.is_windows else None
    if key == "PATCH_ID":
        return kb_id(patch) if patch.is_windows else patch.id
    return None


def _matches(filters: Iterable[tuple[str, tuple[str, ...]]], patch: CatalogPatch) -> bool:
    for key, values in filters:
        value = _filter_value(key, patch)
        if value is None or not any(fnmatch.fnmatchcase(value, v) for v in values):
            return False
    return True


def _in_list(patch: CatalogPatch, names: Iterable[str], *, approved: bool) -> bool:
    """Whether an ApprovedPatches / RejectedPatches entry names the patch, in NF's formats.

    Windows: KB ids (Security Bulletin ids are not emulated). Ubuntu: bare package names. YUM: full
    package names ``name-version-release.arch`` with a wildcard; approved lists also take advisory
    ids (the catalog id) and CVE ids; rejected lists take only package names.
    """
    for name in names:
        if patch.is_windows:
            if name.upper() == kb_id(patch).upper():
                return True
        elif patch.os_family.startswith("ubuntu"):
            if name == patch.package_name:
                return True
        else:
            if fnmatch.fnmatchcase(rpm_full_name(patch), name):
                return True
            if approved and (name == patch.id or name in patch.cves):
                return True
    return False


def _released_by(rule: PatchRule, patch: CatalogPatch, as_of: dt.date, operating_system: str) -> bool:
    if operating_system in NO_APPROVAL_DATES:
        return True  # PB: no wait before approval on Ubuntu; no dates are supported there (PR)
    if rule.approve_until_date is not None:
        # PR: "Any patches released on or before this date are installed automatically."
        return patch.released <= rule.approve_until_date
    # PR: approved ApproveAfterDays after the release date (UTC); the catalog has dates, not times,
    # so a patch counts as released at 00:00 UTC of its date.
    return patch.released + dt.timedelta(days=rule.approve_after_days or 0) <= as_of


def _listed_approved(baseline: Baseline, patch: CatalogPatch) -> bool:
    """Whether the baseline's ApprovedPatches approve the patch: named in NF's formats, and on Linux a
    security update unless ApprovedPatchesEnableNonSecurity is set (UPB: "Indicates whether the list of
    approved patches includes non-security updates ... The default value is false"; the conservative
    reading: without it, a non-security update the list names is not approved)."""
    if not _in_list(patch, baseline.approved_patches, approved=True):
        return False
    return (
        patch.is_windows
        or baseline.approved_patches_enable_non_security
        or patch.classification in SECURITY_CLASSIFICATIONS
    )


def approvals(baseline: Baseline, patches: Iterable[CatalogPatch], as_of: dt.date) -> dict[str, str]:
    """Patch id -> compliance level of every patch the baseline approves as of a date.

    PB: "The rejected list overrides both the rules and the approve list"; "If a patch is listed as
    both approved and rejected in the same patch baseline, the patch is rejected". Global filters
    narrow every rule. The first matching rule in order gives the compliance level. A patch the
    ApprovedPatches name is approved whatever its release date (user guide, "Creating a custom patch
    baseline (Linux)": "explicitly approve any patches in addition to those meeting your approval
    rules"), which is how a fix released after a rule's ApproveUntilDate is approved.
    """
    approved: dict[str, str] = {}
    for patch in patches:
        if PLATFORMS[patch.os_family].ssm_operating_system != baseline.operating_system:
            continue
        if _in_list(patch, baseline.rejected_patches, approved=False):
            continue
        if not _matches(baseline.global_filters, patch):
            continue
        if _listed_approved(baseline, patch):
            approved[patch.id] = baseline.approved_patches_compliance_level
            continue
        for rule in baseline.rules:
            if _matches(rule.filters, patch) and _released_by(rule, patch, as_of, baseline.operating_system):
                approved[patch.id] = rule.compliance_level
                break
    return approved


def rejected(baseline: Baseline, patches: Iterable[CatalogPatch]) -> set[str]:
    return {p.id for p in patches if _in_list(p, baseline.rejected_patches, approved=False)}


@dataclass(frozen=True)
class PatchStates:
    """The per-patch states of one host against one baseline, and the baseline's compliance levels."""

    states: dict[str, str]
    levels: dict[str, str] = field(default_factory=dict)

    def count(self, state: str) -> int:
        return sum(1 for s in self.states.values() if s == state)


def patch_states(
    baseline: Baseline,
    host_product: str,
    host_patches: Mapping[str, set[str]],
    catalog: Iterable[CatalogPatch],
    as_of: dt.date,
) -> PatchStates:
    """Each patch's CS state on a host, measured against the baseline (never an install list).

    ``host_patches`` holds the host's ``missing``, ``installed``, ``failed`` and ``pending_reboot``
    patch ids; ``catalog`` every patch of the host's operating system. CS:
    - INSTALLED: in the baseline and installed; INSTALLED_OTHER: installed but not approved (also an
      installed rejected patch unless the rejected action is BLOCK); INSTALLED_REJECTED: installed,
      rejected, action BLOCK; INSTALLED_PENDING_REBOOT: installed by an Install not yet rebooted.
    - MISSING: approved and not installed; FAILED: approved and failed to install.
    - NOT_APPLICABLE: approved but not applicable to the host, "only reported on Windows Server"
      (here: an approved Windows patch of another Windows product).
    Patches neither approved nor installed have no state (they are not listed).
    """
    catalog = list(catalog)
    approved = approvals(baseline, catalog, as_of)
    rejected_ids = rejected(baseline, catalog)
    missing, installed = host_patches.get("missing", set()), host_patches.get("installed", set())
    failed, pending = host_patches.get("failed", set()), host_patches.get("pending_reboot", set())
    states: dict[str, str] = {}
    for patch in catalog:
        pid = patch.id
        on_host = PLATFORMS[patch.os_family].ssm_product == host_product
        if not on_host:
            if pid in approved and patch.is_windows:
                states[pid] = NOT_APPLICABLE
            continue
        if pid in installed:
            if pid in pending:
                states[pid] = INSTALLED_PENDING_REBOOT
            elif pid in rejected_ids and baseline.rejected_patches_action == "BLOCK":
                states[pid] = INSTALLED_REJECTED
            elif pid in approved:
                states[pid] = INSTALLED
            else:
                states[pid] = INSTALLED_OTHER
        elif pid in approved and pid in failed:
            states[pid] = FAILED
        elif pid in approved and pid in missing:
            states[pid] = MISSING
    return PatchStates(states, {pid: approved[pid] for pid in states if pid in approved})


def state_counts(result: PatchStates, catalog: Mapping[str, CatalogPatch]) -> dict[str, int]:
    """InstancePatchState's counts from the per-patch states (IPS).

    IPS: CriticalNonCompliantCount counts non-compliant patches "specified as Critical for compliance
    reporting in the patch baseline" (the rule's ComplianceLevel, not the vendor severity: PB says the
    predefined baselines assign Unspecified, so they count 0); SecurityNonCompliantCount the
    non-compliant security patches (critical or not); OtherNonCompliantCount those that are neither.
    Non-compliant per CS: MISSING, FAILED, INSTALLED_PENDING_REBOOT, INSTALLED_REJECTED.
    """
    non_compliant = [pid for pid, s in result.states.items() if s in NON_COMPLIANT_STATES]
    critical = {pid for pid in non_compliant if result.levels.get(pid) == "CRITICAL"}
    security = {pid for pid in non_compliant if catalog[pid].classification in SECURITY_CLASSIFICATIONS}
    return {
        "InstalledCount": result.count(INSTALLED),
        "InstalledOtherCount": result.count(INSTALLED_OTHER),
        "InstalledPendingRebootCount": result.count(INSTALLED_PENDING_REBOOT),
        "InstalledRejectedCount": result.count(INSTALLED_REJECTED),
        "MissingCount": result.count(MISSING),
        "FailedCount": result.count(FAILED),
        "UnreportedNotApplicableCount": 0,
        "NotApplicableCount": result.count(NOT_APPLICABLE),
        "CriticalNonCompliantCount": len(critical),
        "SecurityNonCompliantCount": len(security),
        "OtherNonCompliantCount": len(set(non_compliant) - critical - security),
    }
