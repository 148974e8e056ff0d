"""What the drift engines find, and the daily report they feed: differences, unchecked resources, errors.

Both engines return a :class:`ScopeResult` per scope (one plan, or one state file, e.g. an account and
region). :func:`build_report` puts a tenant's scopes together into the day's :class:`DriftReport`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from patchcycle.domain.drift.values import SENSITIVE

Classification = Literal["drift", "owned_by_cycle", "unchecked"]
Engine = Literal["plan_json", "state_compare"]
Source = Literal["resource_drift", "resource_changes", "state"]


class DriftInputError(ValueError):
    """A plan or state the engines refuse to read (its reason is the message)."""


class UnsupportedPlanFormatError(DriftInputError):
    """A plan whose ``format_version`` has a major version other than 1."""

    def __init__(self, format_version: object) -> None:
        self.format_version = format_version
        super().__init__(
            f"plan JSON format_version {format_version!r} is not supported: this reader knows major "
            "version 1, and Terraform's JSON Output Format says to reject any input which reports an "
            "unsupported major version"
        )


class UnsupportedStateVersionError(DriftInputError):
    """A state file whose ``version`` is not 4."""

    def __init__(self, version: object) -> None:
        self.version = version
        super().__init__(
            f"Terraform state format version {version!r} is not supported: this reader knows version 4 "
            "only (Terraform 0.12 and later write it)"
        )


class PlanFailedError(DriftInputError):
    """``terraform plan -detailed-exitcode`` exited 1: there is no plan to read."""


# What a difference means, by where it was found and Terraform's action.
_DESCRIPTIONS: Mapping[tuple[str, str], str] = {
    ("resource_drift", "update"): "changed outside Terraform",
    ("resource_drift", "delete"): "deleted outside Terraform",
    ("state", "update"): "changed outside Terraform",
    ("state", "delete"): "deleted outside Terraform",
    ("resource_changes", "update"): "live differs from the configuration (not applied yet)",
    ("resource_changes", "replace"): "live differs from the configuration; Terraform would replace it",
    ("resource_changes", "create"): "declared in the configuration but absent live",
    ("resource_changes", "delete"): "live but no longer declared in the configuration",
}


@dataclass(frozen=True)
class ChangeAuthor:
    """Who made a change, from the latest CloudTrail write event that touched the resource."""

    event_id: str | None
    event_name: str
    event_time: dt.datetime
    username: str | None
    principal_arn: str | None
    identity_type: str | None
    session_issuer_arn: str | None = None
    source_ip_address: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The author as JSON evidence."""
        return {
            "event_id": self.event_id,
            "event_name": self.event_name,
            "event_time": self.event_time.isoformat(),
            "username": self.username,
            "principal_arn": self.principal_arn,
            "identity_type": self.identity_type,
            "session_issuer_arn": self.session_issuer_arn,
            "source_ip_address": self.source_ip_address,
        }


@dataclass(frozen=True)
class Drift:
    """One difference between what Terraform declares and what is live.

    ``path`` is the flattened attribute path (``approval_rule[0].approve_after_days``), empty for the
    whole object (deleted, or absent). ``declared`` is Terraform's side (the prior state for drift
    detected by a refresh, the configuration for a planned change), ``live`` the cloud's; both are
    :data:`~patchcycle.domain.drift.values.SENSITIVE` when ``sensitive``. ``identity`` holds the
    attributes that name the live object (for CloudTrail).
    """

    address: str
    type: str
    path: str
    action: str  # update | delete | create | replace
    declared: Any
    live: Any
    classification: Classification
    source: Source
    sensitive: bool = False
    identity: Mapping[str, str] = field(default_factory=dict)
    changed_by: ChangeAuthor | None = None
    scope: str = ""  # the scope (state or plan) it was found in; every scope's root has the same addresses

    @property
    def description(self) -> str:
        """What the difference means, in words (``deleted outside Terraform``...)."""
        return _DESCRIPTIONS.get((self.source, self.action), f"Terraform action {self.action}")

    def options(self) -> list[dict[str, str]]:
        """The two ways to close a drift (none for a cycle-owned difference, which is not drift)."""
        if self.classification != "drift":
            return []
        if self.action == "delete" and self.source != "resource_changes":
            ratify = "remove it from Terraform (a removed block, or terraform state rm)"
            remediate = "recreate it as declared (terraform apply)"
        else:
            ratify = "write the live value into the Terraform configuration"
            remediate = "revert to the declared value (terraform apply)"
        return [
            {"action": "ratify", "label": "ratify: write it into Terraform", "how": ratify},
            {"action": "remediate", "label": "remediate: revert to declared", "how": remediate},
        ]

    def to_dict(self) -> dict[str, Any]:
        """The difference as JSON evidence (sensitive values are already masked)."""
        return {
            "scope": self.scope,
            "address": self.address,
            "type": self.type,
            "path": self.path,
            "action": self.action,
            "description": self.description,
            "classification": self.classification,
            "source": self.source,
            "declared": self.declared,
            "live": self.live,
            "sensitive": self.sensitive,
            "identity": dict(self.identity),
            "changed_by": self.changed_by.to_dict() if self.changed_by else None,
            "options": self.options(),
        }


def masked(drift: Drift) -> Drift:
    """``drift`` with its values replaced by the sensitive marker."""
    return replace(drift, declared=SENSITIVE, live=SENSITIVE, sensitive=True)


@dataclass(frozen=True)
class UncheckedResource:
    """A managed resource the report cannot vouch for, and why; never counted as clean.

    ``differences`` holds what Terraform reported for it anyway (a plan shows every type), each
    classified ``unchecked``: shown, never counted as drift nor as clean.
    """

    address: str
    type: str
    reason: str
    differences: tuple[Drift, ...] = ()
    scope: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The unchecked resource as JSON evidence."""
        return {
            "scope": self.scope,
            "address": self.address,
            "type": self.type,
            "reason": self.reason,
            "differences": [d.to_dict() for d in self.differences],
        }


@dataclass(frozen=True)
class ScopeError:
    """A scope (an account and region, a state file) the drift run could not read, and why."""

    scope: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """The error as JSON evidence."""
        return {"scope": self.scope, "message": self.message}


@dataclass(frozen=True)
class ScopeResult:
    """What one engine found in one scope: the resources it checked, every difference, what it could not
    check, and notes (e.g. an exit code that disagrees with the plan)."""

    scope: str
    engine: Engine
    checked: tuple[str, ...]
    differences: tuple[Drift, ...]
    unchecked: tuple[UncheckedResource, ...] = ()
    notes: tuple[str, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict)  # which plan or state was read


@dataclass(frozen=True)
class DriftReport:
    """A tenant's drift report for one day.

    ``drifts`` are differences to ratify or remediate; ``owned_by_cycle`` differences in fields the
    cycle writes (shown, never drift); ``unchecked`` resources no engine could compare; ``errors`` the
    scopes that could not be read at all (a report with errors is incomplete, not clean).
    """

    tenant: str
    day: dt.date
    engine: Engine
    scopes: tuple[str, ...]
    resources_checked: int
    drifts: tuple[Drift, ...]
    owned_by_cycle: tuple[Drift, ...]
    unchecked: tuple[UncheckedResource, ...]
    errors: tuple[ScopeError, ...] = ()
    notes: tuple[str, ...] = ()
    sources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def open_drift(self) -> int:
        """The number of open drift differences."""
        return len(self.drifts)

    @property
    def drifted_resources(self) -> tuple[str, ...]:
        """The addresses with at least one open drift, in order."""
        return tuple(sorted({d.address for d in self.drifts}))

    @property
    def drifted_objects(self) -> tuple[tuple[str, str], ...]:
        """``(scope, address)`` of each resource with an open drift: every scope (account and region)
        has the same addresses, since one root serves them all."""
        return tuple(sorted({(d.scope, d.address) for d in self.drifts}))

    @property
    def complete(self) -> bool:
        """Whether every scope was read (an incomplete report proves nothing about the missing ones)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON evidence."""
        return {
            "tenant": self.tenant,
            "date": self.day.isoformat(),
            "engine": self.engine,
            "scopes": list(self.scopes),
            "sources": {scope: dict(source) for scope, source in self.sources.items()},
            "complete": self.complete,
            "resources_checked": self.resources_checked,
            "open_drift": self.open_drift,
            "drifted_resources": list(self.drifted_resources),
            "drifted_objects": [list(o) for o in self.drifted_objects],
            "drifts": [d.to_dict() for d in self.drifts],
            "owned_by_cycle": [d.to_dict() for d in self.owned_by_cycle],
            "unchecked": [u.to_dict() for u in self.unchecked],
            "errors": [e.to_dict() for e in self.errors],
            "notes": list(self.notes),
        }


def build_report(
    tenant: str,
    day: dt.date,
    engine: Engine,
    results: Iterable[ScopeResult],
    errors: Iterable[ScopeError] = (),
) -> DriftReport:
    """The day's report from each scope's result (and the scopes that failed)."""
    results = list(results)
    errors = tuple(errors)
    other = sorted({r.engine for r in results} - {engine})
    if other:
        raise ValueError(f"a {engine} report was given results of engine {', '.join(other)}")
    differences = [replace(d, scope=r.scope) for r in results for d in r.differences]
    return DriftReport(
        tenant=tenant,
        day=day,
        engine=engine,
        scopes=tuple(sorted({r.scope for r in results} | {e.scope for e in errors})),
        resources_checked=len({(r.scope, a) for r in results for a in r.checked}),
        drifts=tuple(d for d in differences if d.classification == "drift"),
        owned_by_cycle=tuple(d for d in differences if d.classification == "owned_by_cycle"),
        unchecked=tuple(
            replace(u, scope=r.scope, differences=tuple(replace(d, scope=r.scope) for d in u.differences))
            for r in results
            for u in r.unchecked
        ),
        errors=errors,
        notes=tuple(f"{r.scope}: {n}" for r in results for n in r.notes),
        sources={r.scope: r.source for r in results},
    )


@dataclass(frozen=True)
class TrendPoint:
    """Open drift on one day with a report."""

    day: dt.date
    open_drift: int
    drifted_resources: int
    unchecked: int
    complete: bool

    def to_dict(self) -> dict[str, Any]:
        """The point as JSON evidence."""
        return {
            "date": self.day.isoformat(),
            "open_drift": self.open_drift,
            "drifted_resources": self.drifted_resources,
            "unchecked": self.unchecked,
            "complete": self.complete,
        }


def drift_trend(previous_reports: Iterable[DriftReport], today: DriftReport) -> list[TrendPoint]:
    """Open drift per day, oldest first, from earlier reports and today's.

    One point per day that has a report (the last one given for a day wins, today's over all); a day
    without a report has no point rather than a zero, since nobody looked that day.
    """
    by_day: dict[dt.date, DriftReport] = {}
    for report in [*previous_reports, today]:
        if report.tenant != today.tenant:
            raise ValueError(f"report of tenant {report.tenant} in the trend of {today.tenant}")
        if report.day <= today.day:
            by_day[report.day] = report
    return [
        TrendPoint(
            day=day,
            open_drift=report.open_drift,
            drifted_resources=len(report.drifted_objects),
            unchecked=len(report.unchecked),
            complete=report.complete,
        )
        for day, report in sorted(by_day.items())
    ]


@dataclass(frozen=True)
class OpenDrift:
    """What the latest drift report says about the resources a cycle depends on (for its pre-flight)."""

    report_day: dt.date
    drifts: tuple[Drift, ...]
    unchecked: tuple[UncheckedResource, ...]
    report_complete: bool

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON evidence for the cycle."""
        return {
            "report_date": self.report_day.isoformat(),
            "report_complete": self.report_complete,
            "drifts": [d.to_dict() for d in self.drifts],
            "unchecked": [u.to_dict() for u in self.unchecked],
        }


def open_drift_on(report: DriftReport, addresses_or_types: Sequence[str]) -> OpenDrift:
    """The open drift and unchecked resources of ``report`` among ``addresses_or_types``.

    Each entry is a resource type (``aws_ssm_patch_baseline``), an address (``aws_ssm_document.falcon``,
    which covers its instances ``aws_ssm_document.falcon["x"]``) or a module (``module.baselines``).
    """

    def wanted(address: str, resource_type: str) -> bool:
        return any(
            entry in (address, resource_type) or address.startswith((f"{entry}[", f"{entry}."))
            for entry in addresses_or_types
        )

    return OpenDrift(
        report_day=report.day,
        drifts=tuple(d for d in report.drifts if wanted(d.address, d.type)),
        unchecked=tuple(u for u in report.unchecked if wanted(u.address, u.type)),
        report_complete=report.complete,
    )
