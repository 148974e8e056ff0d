"""The cycle plan: which patches each OS family takes this cycle, fixed as of the cycle date and hashed.

Every later stage installs exactly the plan's set (through an explicit install list), so staging and
prod receive what non-prod received, and a backfilled cycle approves what was approvable on its own
date, not what is newest today.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from patchcycle.config.models import Baseline, OsFamily, Severity, Tenant
from patchcycle.domain.fast_track import (
    AGE_UNKNOWN,
    FastTrack,
    FastTrackPolicy,
    fast_track_for,
    feed_versions,
    risk_notes,
    zero_day_reason,
)
from patchcycle.domain.platforms import normalize_severity
from patchcycle.feeds import FeedSnapshot

PLAN_SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class CatalogPatch:
    """A patch as the cloud's patch catalog lists it, already mapped to our OS family and severity."""

    id: str
    os_family: OsFamily
    title: str
    classification: str
    vendor_severity: str
    severity: Severity | None
    cves: tuple[str, ...]
    # The vendor's release date; None where the source publishes none (then ``first_seen`` or
    # ``approved_by_source`` decides, see :func:`is_approved`).
    released: dt.date | None
    package: str | None = None  # Linux: the package it updates, as the package manager names it
    version: str | None = None  # Linux: version[-release] it installs
    kb: str | None = None  # Windows: the KB article number, digits only
    kernel_release: str | None = None  # kernel updates: the release the host boots into
    arch: str | None = None  # Linux: the package architecture (x86_64, amd64, noarch)
    epoch: str | None = None  # RPM families: the package epoch, when the source names one
    # Where this entry came from: "<cloud>:<API or document>", recorded per OS family in the plan.
    source: str = "ssm:DescribeAvailablePatches"
    # A vendor-documented time the update was first detected (e.g. an OS Config vulnerability's
    # createTime): never earlier than the release, so ageing from it is at least as strict.
    first_seen: dt.date | None = None
    # True when the source already applied the tenant's own baseline rules as of the cutoff (an SSM
    # Scan against the tenant's patch baseline with ApproveUntilDate): its Missing list is the approval.
    approved_by_source: bool = False
    # The vendor's advisory ids (SSM's Patch ``AdvisoryIds``, Linux): how SSM's ApprovedPatches names it.
    advisory_ids: tuple[str, ...] = ()

    @property
    def is_kernel_update(self) -> bool:
        """Whether it updates the kernel: it names a kernel release, or its package (else its title) starts
        with ``kernel``, ``linux-image`` or ``linux-generic``."""
        if self.kernel_release:
            return True
        title = (self.package or self.title).lower()
        return title.startswith(("kernel", "linux-image", "linux-generic"))


@dataclass(frozen=True)
class ApprovedPatch:
    """A patch the plan approves, with the reason it qualified."""

    id: str
    title: str
    classification: str
    severity: str
    cves: tuple[str, ...]
    released: str
    kernel_update: bool
    package: str | None = None
    kb: str | None = None
    kernel_release: str | None = None
    version: str | None = None  # Linux: the exact version[-release] frozen (what every stage installs)
    arch: str | None = None
    epoch: str | None = None
    source: str | None = None  # the catalog source it came from (see CatalogPatch.source)
    # How ``released`` is known: "vendor" (the vendor's release date), "first_seen" (the source's first
    # detection, never earlier than the release) or "baseline" (no date published; the tenant's baseline
    # approved it as released on or before the cutoff, which ``released`` then holds).
    released_basis: str = "vendor"
    # Why it was approved without its approve-after-days wait (the tenant's risk policy: the CVE, its KEV
    # listing or EPSS score), or why a zero-day cycle selected it; None (left out of the JSON) otherwise.
    fast_track: dict[str, Any] | None = None


@dataclass(frozen=True)
class BaselineDecision:
    """The rule applied to one OS family: its baseline and the release-date cutoff it implies."""

    os_family: str
    classifications: tuple[str, ...]
    severities: tuple[str, ...]
    approve_after_days: int
    cutoff: str
    include_kernel_updates: bool
    # The catalog sources this family's approved list was read from (CatalogPatch.source values), and
    # what the plan could not judge (e.g. catalog entries with no date to age them by).
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CyclePlan:
    """The frozen plan of one tenant's cycle."""

    tenant_id: str
    cycle_date: str
    environments: tuple[str, ...]
    baselines: tuple[BaselineDecision, ...]
    approved: dict[str, tuple[ApprovedPatch, ...]] = field(default_factory=dict)
    schema_version: str = PLAN_SCHEMA_VERSION
    # RDS: the OS updates (descriptions of pending ``system-update`` actions) RDS offered the tenant's
    # DB instances when the plan was frozen. Staging and prod apply only these, as non-prod did. AWS
    # names no version and no release date for them, so they are frozen as offered at plan time.
    rds_os_updates: tuple[str, ...] = ()
    # What threat intelligence did to the plan (:class:`PlanRisk`): the fast-track policy or the zero-day
    # cycle's CVEs, the feed versions read, the fixes not found. None (left out) for a tenant without it.
    risk: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON data, families and RDS updates sorted, ``rds_os_updates`` left out when empty:
        what is stored and what :attr:`hash` is taken over."""
        data = asdict(self)
        data["approved"] = {k: [_patch_dict(p) for p in v] for k, v in sorted(self.approved.items())}
        data["rds_os_updates"] = sorted(self.rds_os_updates)
        if not data["rds_os_updates"]:
            # Absent when empty, so a plan without RDS hashes as it did before RDS was supported.
            del data["rds_os_updates"]
        if data["risk"] is None:
            # Absent without a risk policy, so such a plan hashes as it did before risk drove plans.
            del data["risk"]
        return data

    @property
    def hash(self) -> str:
        """SHA-256 of the plan's canonical JSON: the identity every stage carries."""
        return hashlib.sha256(canonical_json(self.to_dict())).hexdigest()

    @property
    def patch_ids(self) -> list[str]:
        """The ids of every approved patch, all families together, sorted and without repeats."""
        return sorted({p.id for patches in self.approved.values() for p in patches})

    def summary_lines(self) -> list[str]:
        """The plan a human would approve, as text (printed by a dry run)."""
        lines = [f"Cycle plan for {self.tenant_id}, cycle date {self.cycle_date}, plan {self.hash[:12]}"]
        for decision in self.baselines:
            patches = self.approved.get(decision.os_family, ())
            lines.append(
                f"  {decision.os_family}: {len(patches)} patch(es) approved "
                f"({'/'.join(decision.severities)}; {'/'.join(decision.classifications)}; "
                f"released on or before {decision.cutoff})"
            )
            for p in patches:
                cves = ", ".join(p.cves) or "no CVE"
                lines.append(f"    - {p.id} [{p.severity}] {p.title} ({cves}; released {p.released})")
                if p.fast_track:
                    lines.append(f"      fast-tracked: {FastTrack(**p.fast_track).describe()}")
            lines.extend(f"    note: {n}" for n in decision.notes if n.startswith(_RISK_NOTE))
        if self.rds_os_updates:
            lines.append(f"  rds: {len(self.rds_os_updates)} OS update(s) as RDS offers them now")
            lines.extend(f"    - {rds_update_id(d)} {d}" for d in sorted(self.rds_os_updates))
        lines.extend(risk_summary_lines(self.risk))
        return lines


RDS_FAMILY = "rds"  # the os_family of RDS DB instances: AWS manages their OS; its updates are RDS's


def rds_update_id(description: str) -> str:
    """A stable id for an RDS OS update, which AWS identifies only by its description."""
    return "rds-os-" + hashlib.sha256(description.strip().encode()).hexdigest()[:12]


def planned_patch_ids(plan: Mapping[str, Any], row: Mapping[str, Any]) -> set[str]:
    """The plan ids a host takes this cycle (what a risk acceptance may name): its OS family's approved
    patches, or for an RDS DB instance the RDS OS updates the plan froze."""
    if row.get("agent_kind") == "rds":
        return {rds_update_id(d) for d in planned_rds_updates(plan)}
    return {p["id"] for p in plan.get("approved", {}).get(row.get("os_family") or "", [])}


def host_patch_ids(plan: Mapping[str, Any], row: Mapping[str, Any], variant: str | None = None) -> list[str]:
    """The plan ids sent to one host (sorted): :func:`planned_patch_ids`, without the kernel updates
    when its install variant held the kernel (the sensor gate)."""
    if row.get("agent_kind") == "rds":
        return sorted(planned_patch_ids(dict(plan), dict(row)))
    approved = plan.get("approved", {}).get(row.get("os_family") or "", [])
    keep_kernel = (variant or FULL) == FULL
    return sorted({p["id"] for p in approved if keep_kernel or not p.get("kernel_update")})


def planned_rds_updates(plan: CyclePlan | Mapping[str, Any]) -> tuple[str, ...]:
    """The RDS OS updates a plan froze (descriptions), whether the plan is an object or its JSON."""
    if isinstance(plan, CyclePlan):
        return tuple(sorted(plan.rds_os_updates))
    return tuple(sorted(plan.get("rds_os_updates") or ()))


def canonical_json(data: object) -> bytes:
    """``data`` as canonical JSON (sorted keys, no whitespace, UTF-8): the bytes the plan hash covers."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def approval_cutoff(cycle_date: dt.date, approve_after_days: int) -> dt.date:
    """A patch is approvable on the cycle date if it was released at least N days before it."""
    return cycle_date - dt.timedelta(days=approve_after_days)


def age_date(patch: CatalogPatch) -> dt.date | None:
    """The date a patch ages from: its release date, else the vendor's first detection of it."""
    return patch.released or patch.first_seen


def approvable_but_for_age(patch: CatalogPatch, baseline: Baseline) -> bool:
    """Whether the baseline's rules other than its age take the patch: its family, classification,
    severity, and its kernel rule."""
    if patch.os_family != baseline.os_family:
        return False
    if patch.classification not in baseline.classifications:
        return False
    if patch.severity is None or patch.severity not in baseline.severities:
        return False
    return not (patch.is_kernel_update and not baseline.include_kernel_updates)


def is_approved(patch: CatalogPatch, baseline: Baseline, cycle_date: dt.date) -> bool:
    """The tenant's baseline applied to one catalog entry as of the cycle date.

    A patch with neither a release date nor a first-detection date can only be approved when its
    source already applied the tenant's baseline as of the cutoff (``approved_by_source``); otherwise
    it is not approved (the conservative reading: the plan cannot tell its age).
    """
    if not approvable_but_for_age(patch, baseline):
        return False
    aged = age_date(patch)
    if aged is None:
        return patch.approved_by_source
    return aged <= approval_cutoff(cycle_date, baseline.approve_after_days)


def catalog_key(patch: CatalogPatch) -> tuple[str, ...]:
    """What makes two catalog entries (from two clouds) the same update: the KB on Windows, the
    package, version and architecture on Linux; the id where neither is known."""
    if patch.kb:
        return (patch.os_family.value, "kb", patch.kb)
    if patch.package and patch.version:
        return (patch.os_family.value, "pkg", patch.package, patch.version, patch.arch or "")
    return (patch.os_family.value, "id", patch.id)


@dataclass(frozen=True)
class PlanRisk:
    """What threat intelligence brings to a plan: the tenant's fast-track policy and the feeds read, or
    the CVEs a zero-day cycle was started for (then only their fixes are planned).

    ``source_approved_cves``: per OS family, the CVE ids the tenant's SSM baseline approved by
    ``ApprovedPatches`` before the Scan that listed the family's catalog (families whose catalog is the
    Scan itself); ``notes``: per family, what the plan could not fast-track there and why.
    """

    feeds: FeedSnapshot
    policy: FastTrackPolicy = FastTrackPolicy()
    zero_day_cves: tuple[str, ...] | None = None
    source_approved_cves: Mapping[str, Sequence[str]] = field(default_factory=dict)
    notes: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def select(
        self, patch: CatalogPatch, baseline: Baseline, cycle_date: dt.date
    ) -> tuple[bool, FastTrack | None]:
        """Whether the plan takes ``patch`` and the reason it records (None: approved by its age)."""
        if self.zero_day_cves is not None:
            # Only the fixes of the cycle's CVEs, whatever their age, classification and severity (the
            # CVEs chose them); the kernel rule of the baseline still holds.
            reason = zero_day_reason(patch.cves, self.zero_day_cves, self.feeds)
            keep = reason is not None and patch.os_family == baseline.os_family
            keep = keep and not (patch.is_kernel_update and not baseline.include_kernel_updates)
            return keep, reason if keep else None
        if is_approved(patch, baseline, cycle_date):
            listed = set(self.source_approved_cves.get(patch.os_family.value, ()))
            if patch.approved_by_source and age_date(patch) is None and listed & set(patch.cves):
                kev_only = FastTrackPolicy(kev=True)
                reason = fast_track_for(listed & set(patch.cves), cycle_date, self.feeds, kev_only)
                return True, replace(reason, how=AGE_UNKNOWN) if reason else None
            return True, None
        if self.policy.enabled and approvable_but_for_age(patch, baseline):
            reason = fast_track_for(patch.cves, cycle_date, self.feeds, self.policy)
            return reason is not None, reason
        return False, None

    def record(self, cycle_date: dt.date, approved: Mapping[str, Sequence[ApprovedPatch]]) -> dict[str, Any]:
        """The plan's ``risk`` section: what was applied, with which feeds, and what it found."""
        data: dict[str, Any] = {"feeds": feed_versions(self.feeds).to_dict()}
        if self.zero_day_cves is not None:
            fixing = {c for ps in approved.values() for p in ps for c in p.cves}
            data["zero_day"] = {
                "cves": sorted(self.zero_day_cves),
                "without_fix": sorted(set(self.zero_day_cves) - fixing),
            }
        else:
            data["policy"] = self.policy.to_dict()
            data["fast_tracked"] = sorted(p.id for ps in approved.values() for p in ps if p.fast_track)
            data["notes"] = risk_notes(self.policy, self.feeds, cycle_date)
        return data


_RISK_NOTE = "risk: "
"""The prefix of a family's notes about fast-tracking (the dry run's summary prints them)."""


def build_cycle_plan(
    tenant: Tenant,
    cycle_date: dt.date,
    catalog: Iterable[CatalogPatch],
    rds_os_updates: Iterable[str] = (),
    source_notes: Mapping[str, Sequence[str]] | None = None,
    risk: PlanRisk | None = None,
) -> CyclePlan:
    """Resolve the tenant's baselines as of ``cycle_date`` against the catalog and freeze the result,
    with the RDS OS updates offered now (for tenants that patch RDS).

    The catalog may hold the same update from several clouds' sources (an RHEL package seen by SSM
    and by OS Config): it is approved once (:func:`catalog_key`), from the first source that lists it.
    With ``risk``, the tenant's fast-track policy approves KEV and high-EPSS fixes without their wait, or
    (a zero-day cycle) only the fixes of the cycle's CVEs are planned (:class:`PlanRisk`).
    """
    catalog = _deduplicated(catalog)
    approved: dict[str, tuple[ApprovedPatch, ...]] = {}
    decisions = []
    for baseline in sorted(tenant.baselines, key=lambda b: b.os_family.value):
        cutoff = approval_cutoff(cycle_date, baseline.approve_after_days)
        family = [p for p in catalog if p.os_family == baseline.os_family]
        undated = [p for p in family if age_date(p) is None and not p.approved_by_source]
        notes = (
            (
                f"{len(undated)} catalog entr{'y' if len(undated) == 1 else 'ies'} not approved: "
                "no release or first-detection date to age by "
                f"({', '.join(sorted({p.source for p in undated}))})",
            )
            if undated
            else ()
        )
        # What the sources could not express for this family (e.g. no approval date on Ubuntu).
        notes = (*notes, *sorted(set((source_notes or {}).get(baseline.os_family.value, ()))))
        if risk is not None:
            family_notes = risk.notes.get(baseline.os_family.value, ())
            notes = (*notes, *(f"{_RISK_NOTE}{n}" for n in sorted(set(family_notes))))
        decisions.append(
            BaselineDecision(
                os_family=baseline.os_family.value,
                classifications=tuple(sorted(baseline.classifications)),
                severities=tuple(s.value for s in sorted(baseline.severities, key=lambda s: -s.rank)),
                approve_after_days=baseline.approve_after_days,
                cutoff=cutoff.isoformat(),
                include_kernel_updates=baseline.include_kernel_updates,
                sources=tuple(sorted({p.source for p in family})),
                notes=notes,
            )
        )
        chosen = sorted(
            _chosen(family, baseline, cycle_date, risk), key=lambda c: ((age_date(c[0]) or cutoff), c[0].id)
        )
        approved[baseline.os_family.value] = tuple(_approved(p, cutoff, reason) for p, reason in chosen)
    return CyclePlan(
        tenant_id=tenant.id,
        cycle_date=cycle_date.isoformat(),
        environments=tuple(e.name.value for e in tenant.environments),
        baselines=tuple(decisions),
        approved=approved,
        # A zero-day cycle plans only its CVEs' fixes: RDS's OS updates wait for the monthly cycle.
        rds_os_updates=()
        if risk is not None and risk.zero_day_cves is not None
        else tuple(sorted({d.strip() for d in rds_os_updates if d and d.strip()})),
        risk=risk.record(cycle_date, approved) if risk is not None else None,
    )


def _chosen(
    family: Iterable[CatalogPatch], baseline: Baseline, cycle_date: dt.date, risk: PlanRisk | None
) -> list[tuple[CatalogPatch, FastTrack | None]]:
    """The family's catalog entries the plan takes, each with its fast-track reason (None: its age)."""
    if risk is None:
        return [(p, None) for p in family if is_approved(p, baseline, cycle_date)]
    out = []
    for patch in family:
        keep, reason = risk.select(patch, baseline, cycle_date)
        if keep:
            out.append((patch, reason))
    return out


def _patch_dict(patch: ApprovedPatch) -> dict[str, Any]:
    """One approved patch as the plan's JSON holds it (``fast_track`` only when it has one)."""
    data = asdict(patch)
    if data["fast_track"] is None:
        del data["fast_track"]
    return data


def risk_summary_lines(risk: Mapping[str, Any] | None) -> list[str]:
    """The plan's risk section as text: the feeds read and what was fast-tracked or not found."""
    if not risk:
        return []
    feeds = risk["feeds"]
    lines = [
        f"  risk: KEV catalog {feeds['kev_catalog_version']}, EPSS scores of {feeds['epss_score_date']} "
        f"({feeds['source']})"
    ]
    if "zero_day" in risk:
        zero_day = risk["zero_day"]
        lines.append(f"    zero-day cycle for {', '.join(zero_day['cves'])}")
        lines.extend(
            f"    NO FIX YET for {c}: see the exposed hosts and compensating controls"
            for c in zero_day["without_fix"]
        )
    else:
        policy = risk["policy"]
        lines.append(
            f"    fast-track: KEV {'on' if policy['kev'] else 'off'}, EPSS at least "
            f"{policy['epss_at_least'] if policy['epss_at_least'] is not None else 'off'}; "
            f"{len(risk['fast_tracked'])} patch(es) fast-tracked"
        )
        lines.extend(f"    note: {n}" for n in risk["notes"])
    return lines


def _deduplicated(catalog: Iterable[CatalogPatch]) -> list[CatalogPatch]:
    seen: dict[tuple[str, ...], CatalogPatch] = {}
    for patch in catalog:
        seen.setdefault(catalog_key(patch), patch)
    return list(seen.values())


def _approved(p: CatalogPatch, cutoff: dt.date, reason: FastTrack | None = None) -> ApprovedPatch:
    if p.released is not None:
        released, basis = p.released, "vendor"
    elif p.first_seen is not None:
        released, basis = p.first_seen, "first_seen"
    else:
        released, basis = cutoff, "baseline"
    return ApprovedPatch(
        id=p.id,
        title=p.title,
        classification=p.classification,
        severity=p.severity.value if p.severity else "Unspecified",
        cves=tuple(sorted(p.cves)),
        released=released.isoformat(),
        kernel_update=p.is_kernel_update,
        package=p.package,
        kb=p.kb,
        kernel_release=p.kernel_release,
        version=p.version,
        arch=p.arch,
        epoch=p.epoch,
        source=p.source,
        released_basis=basis,
        fast_track=reason.to_dict() if reason is not None else None,
    )


def catalog_patch_from_ssm(row: Mapping[str, Any], os_family: OsFamily) -> CatalogPatch:
    """One row of SSM ``describe_available_patches`` as a :class:`CatalogPatch`.

    Read only for the families that API answers (its Note: "supports only the Amazon Linux 1, Amazon
    Linux 2, and Windows Server operating systems",
    https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DescribeAvailablePatches.html).
    The Patch object's ``Id`` is documented for Windows; a Linux row without one is identified by its
    package as the InstallOverrideList title names it (``name.arch:epoch:version-release``).
    """
    vendor_severity = row.get("Severity") or row.get("MsrcSeverity") or ""
    released = row["ReleaseDate"]
    if isinstance(released, dt.datetime):
        released = released.astimezone(dt.UTC).date()
    elif isinstance(released, str):
        released = dt.date.fromisoformat(released[:10])
    name = row.get("Name") or None
    version = "-".join(v for v in (row.get("Version"), row.get("Release")) if v) or None
    kb = (row.get("KbNumber") or "").upper().removeprefix("KB") or None
    arch = row.get("Arch") or None
    epoch = str(row["Epoch"]) if row.get("Epoch") not in (None, "") else None
    ident = row.get("Id") or (
        f"{name}.{arch or '*'}:{epoch or '0'}:{version}" if name and version else f"KB{kb}"
    )
    return CatalogPatch(
        id=ident,
        os_family=os_family,
        title=row.get("Title") or row["Id"],
        classification=row.get("Classification", ""),
        vendor_severity=vendor_severity,
        severity=normalize_severity(vendor_severity),
        cves=tuple(row.get("CVEIds") or ()),
        released=released,
        package=None if os_family.is_windows else name,
        version=version,
        kb=kb if os_family.is_windows else None,
        kernel_release=kernel_release(
            os_family, name, row.get("Version"), row.get("Release"), row.get("Arch")
        ),
        arch=None if os_family.is_windows else arch,
        epoch=None if os_family.is_windows else epoch,
        source="ssm:DescribeAvailablePatches",
        advisory_ids=tuple(row.get("AdvisoryIds") or ()),
    )


def kernel_release(
    os_family: OsFamily, name: str | None, version: str | None, release: str | None, arch: str | None
) -> str | None:
    """The kernel release (``uname -r``) a kernel package boots into; None for any other package.

    RPM families name the package ``kernel`` and the release is version-release.arch
    (``5.14.0-503.21.1.el9_5.x86_64``); Ubuntu names one package per release
    (``linux-image-5.15.0-126-generic``).
    """
    if os_family.is_windows or not name:
        return None
    if name.startswith("linux-image-") and name[len("linux-image-") :][:1].isdigit():
        return name.removeprefix("linux-image-")
    if name == "kernel" and version and release:
        return f"{version}-{release}.{arch or 'x86_64'}"
    return None


@dataclass(frozen=True)
class InstallSelection:
    """What one install variant of a stage installs on one OS family, in each cloud's vocabulary."""

    os_family: str
    patch_ids: tuple[str, ...]
    packages: tuple[str, ...]  # Linux package names (Azure masks, OS Config exclusive packages)
    kbs: tuple[str, ...]  # Windows KB numbers (Azure kbNumbersToInclude, OS Config exclusive patches)


FULL = "full"
NO_KERNEL = "no_kernel"  # the plan without its kernel updates: for hosts whose sensor lacks the new kernel
INSTALL_VARIANTS = (FULL, NO_KERNEL)


def install_selection(
    plan: CyclePlan | Mapping[str, Any], os_family: str, variant: str = FULL
) -> InstallSelection:
    """The plan's patches for one OS family; ``no_kernel`` leaves the kernel updates out."""
    if variant not in INSTALL_VARIANTS:
        raise ValueError(f"unknown install variant {variant!r}; expected one of {INSTALL_VARIANTS}")
    approved = plan.to_dict()["approved"] if isinstance(plan, CyclePlan) else plan["approved"]
    patches = [p for p in approved.get(os_family, []) if variant == FULL or not p["kernel_update"]]
    return InstallSelection(
        os_family=os_family,
        patch_ids=tuple(p["id"] for p in patches),
        packages=tuple(sorted({p["package"] for p in patches if p.get("package")})),
        kbs=tuple(sorted({p["kb"] for p in patches if p.get("kb")})),
    )


def target_kernel(plan: CyclePlan | Mapping[str, Any], os_family: str) -> str | None:
    """The kernel release a host of this family runs after the full plan (its newest kernel update)."""
    approved = plan.to_dict()["approved"] if isinstance(plan, CyclePlan) else plan["approved"]
    kernels = [p for p in approved.get(os_family, []) if p.get("kernel_release")]
    if not kernels:
        return None
    release: str | None = max(kernels, key=lambda p: (p["released"], p["id"]))["kernel_release"]
    return release


def install_override_list(plan: CyclePlan, variant: str = FULL) -> str:
    """The plan as an SSM ``InstallOverrideList`` document (YAML ``patches: [{id, title}]``), each
    entry in the format AWS documents for its OS, so exactly the frozen version is installed.

    AWS-RunPatchBaseline, "Parameter name: InstallOverrideList", "Valid YAML content formats"
    (https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-about-aws-runpatchbaseline.html):
    Windows ``id: KB1234567``; YUM ``id: name.arch``, ``title: name.arch:epoch:version-release``; APT
    ``id: name.arch``, ``title: name.arch:version``.
    """
    import yaml

    from patchcycle.domain.catalog import override_entry

    if variant not in INSTALL_VARIANTS:
        raise ValueError(f"unknown install variant {variant!r}; expected one of {INSTALL_VARIANTS}")
    patches = [
        override_entry(asdict(p), family)
        for family in sorted(plan.approved)
        for p in plan.approved[family]
        if variant == FULL or not p.kernel_update
    ]
    return str(yaml.safe_dump({"patches": patches}, sort_keys=False))


# -- the first-seen ledger: ageing updates no source dates ----------------------------------------
# Some sources publish no release date for an update (Linux packages in Update Manager's and OS
# Config's data, Ubuntu in SSM, whose patch rules take no approval date). Patchcycle then ages the
# update from the first day any of the tenant's plans saw it: never earlier than its release, so an
# approve-after-days rule applied to that date is at least as strict as the tenant asked. The ledger
# lives in the tenant's write-once evidence bucket as append-only objects under LEDGER_PREFIX (one per
# plan that saw something new); read together, the earliest day per update counts.
LEDGER_PREFIX = "catalog/first-seen/"


def merge_ledgers(parts: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The ledger from its append-only parts: the earliest day recorded for each update."""
    merged: dict[str, str] = {}
    for part in parts:
        for key, day in part.items():
            if key not in merged or day < merged[key]:
                merged[key] = day
    return merged


def ledger_additions(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str]:
    """What a plan adds to the ledger: updates new to it, or seen earlier than it knew."""
    return {k: v for k, v in after.items() if k not in before or v < before[k]}


def ledger_key(patch: CatalogPatch) -> str:
    """An update's key in the first-seen ledger: its :func:`catalog_key` joined with ``|``."""
    return "|".join(catalog_key(patch))


def age_by_ledger(
    catalog: Iterable[CatalogPatch], ledger: dict[str, str], observed_on: dt.date
) -> tuple[list[CatalogPatch], dict[str, str]]:
    """Give every undated catalog entry the earliest day it was seen (by an earlier plan, by its source,
    or today), and the ledger those days. Entries with a release date, or approved by their source's
    own baseline, are unchanged and not recorded."""
    out: list[CatalogPatch] = []
    updated = dict(ledger)
    for patch in catalog:
        if patch.released is not None or patch.approved_by_source:
            out.append(patch)
            continue
        key = ledger_key(patch)
        known = [dt.date.fromisoformat(d) for d in (updated.get(key),) if d]
        seen = min([observed_on, *known, *([patch.first_seen] if patch.first_seen else [])])
        updated[key] = seen.isoformat()
        out.append(replace(patch, first_seen=seen))
    return out, updated
