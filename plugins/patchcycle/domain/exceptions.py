"""What a tenant's risk acceptances do to a cycle: which hosts end "excepted", and the exception report.

Pure: the register, the cycle's host records and the date are passed in; nothing reads a clock.

Rules, in the order they are applied:

* An acceptance is **active** from ``approved_on`` through ``expires_on``, both days included; before
  that it is **not_yet_valid**, after it **expired**. Only active acceptances ever apply. Expired ones
  are listed (flagged) in the report, together with the hosts they would have covered.
* An acceptance **covers a host** when its ``hosts`` name the host's ``host_id`` or ``name`` (exact
  match), or when it has no ``hosts`` (patches on every host).
* An acceptance with ``patches`` vouches only for those patches. When the patches still missing on the
  host are known, **every** one of them must be listed (and at least one must be missing): if some are
  covered and some are not, the host is **not** excepted, because the uncovered patches had no sign-off
  to stay missing. When they are not known (``None``), an acceptance that names the host applies on the
  strength of its reviewed host list, but a patches-only acceptance does not (it would except every
  host of the tenant on no evidence).
* Only hosts that did not end ``patched`` or ``out_of_scope`` are changed, to ``excepted``; never to a
  compliant state. When several active acceptances cover a host, the lowest id wins.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from patchcycle.config.exceptions import ExceptionRegister, RiskAcceptance
from patchcycle.domain import outcomes as o

__all__ = [
    "EXPIRING_SOON_DAYS",
    "ExceptionApplication",
    "ExceptionReport",
    "ExceptionStatus",
    "HostMatch",
    "PartialCoverage",
    "active_exceptions",
    "apply_exceptions",
    "exception_for",
    "exception_reason",
    "exception_status",
    "expired_exceptions",
    "not_yet_valid_exceptions",
]

EXPIRING_SOON_DAYS = 30
"""An active acceptance expiring within this many days of the cycle date is listed as expiring soon."""

_UNTOUCHED_STATES = frozenset({o.PATCHED, o.OUT_OF_SCOPE})


class ExceptionStatus(StrEnum):
    """Where an acceptance stands on a given date."""

    active = "active"
    expired = "expired"
    not_yet_valid = "not_yet_valid"


def exception_status(acceptance: RiskAcceptance, as_of: dt.date) -> ExceptionStatus:
    """``active`` from approved_on through expires_on (both inclusive), else expired or not_yet_valid."""
    _check_date(as_of)
    if as_of < acceptance.approved_on:
        return ExceptionStatus.not_yet_valid
    if as_of > acceptance.expires_on:
        return ExceptionStatus.expired
    return ExceptionStatus.active


def _with_status(
    register: ExceptionRegister, as_of: dt.date, status: ExceptionStatus
) -> list[RiskAcceptance]:
    return sorted(
        (a for a in register.exceptions if exception_status(a, as_of) == status), key=lambda a: a.id
    )


def active_exceptions(register: ExceptionRegister, as_of: dt.date) -> list[RiskAcceptance]:
    """The acceptances in force on ``as_of``, sorted by id."""
    return _with_status(register, as_of, ExceptionStatus.active)


def expired_exceptions(register: ExceptionRegister, as_of: dt.date) -> list[RiskAcceptance]:
    """The acceptances whose expires_on is before ``as_of``, sorted by id."""
    return _with_status(register, as_of, ExceptionStatus.expired)


def not_yet_valid_exceptions(register: ExceptionRegister, as_of: dt.date) -> list[RiskAcceptance]:
    """The acceptances approved with a start after ``as_of``, sorted by id."""
    return _with_status(register, as_of, ExceptionStatus.not_yet_valid)


def exception_reason(acceptance: RiskAcceptance) -> str:
    """The reason an excepted host carries in the evidence."""
    return (
        f"risk acceptance {acceptance.id} until {acceptance.expires_on.isoformat()} "
        f"approved by {acceptance.approver}"
    )


# --------------------------------------------------------------------------------------------------
# Coverage
# --------------------------------------------------------------------------------------------------


def _names_host(acceptance: RiskAcceptance, host: Mapping[str, Any]) -> bool:
    """True when the acceptance's host scope takes in ``host`` (by host_id or name)."""
    if acceptance.hosts is None:
        return True
    refs = {host.get("host_id"), host.get("name")} - {None, ""}
    return any(ref in acceptance.hosts for ref in refs)


def _uncovered(
    acceptance: RiskAcceptance, host: Mapping[str, Any], patch_ids: set[str] | None
) -> set[str] | None:
    """Missing patches the acceptance does not cover on ``host``; None when it does not apply at all.

    An empty set means the acceptance covers the host fully.
    """
    if not _names_host(acceptance, host):
        return None
    if acceptance.patches is None:
        return set()
    if patch_ids is None:
        return set() if acceptance.host_scoped else None
    listed = set(acceptance.patches)
    if not patch_ids & listed:
        return None  # none of its patches is missing here: it is not what keeps this host unpatched
    return set(patch_ids) - listed


def exception_for(
    host: Mapping[str, Any],
    patch_ids: set[str] | None,
    register: ExceptionRegister,
    as_of: dt.date,
) -> RiskAcceptance | None:
    """The active acceptance (lowest id) that excepts ``host`` on ``as_of``, or None.

    ``host`` needs ``host_id`` and/or ``name``; ``patch_ids`` are the patches still missing on it, or
    None when unknown. See the module docstring for the coverage rules, notably that a patch-scoped
    acceptance covering only some of the missing patches does not except the host.
    """
    for acceptance in active_exceptions(register, as_of):
        if _uncovered(acceptance, host, patch_ids) == set():
            return acceptance
    return None


# --------------------------------------------------------------------------------------------------
# Applying a register to a cycle
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExceptionApplication:
    """A host an active acceptance turned ``excepted``, and what it was before."""

    host_id: str
    name: str | None
    exception_id: str
    expires_on: dt.date
    previous_state: str
    previous_reason: str | None


@dataclass(frozen=True)
class PartialCoverage:
    """A host an active acceptance covers for some, not all, of its missing patches: left unexcepted."""

    host_id: str
    name: str | None
    exception_id: str
    uncovered_patches: tuple[str, ...]


@dataclass(frozen=True)
class HostMatch:
    """A host an acceptance names that did not get excepted by it (e.g. because it expired)."""

    host_id: str
    name: str | None
    exception_id: str


@dataclass(frozen=True)
class ExceptionReport:
    """The register's effect on one cycle, for the evidence and the audit's exception report.

    Every tuple is sorted: acceptances by id (``expiring_soon`` by expiry, then id), hosts by name,
    then host id.
    """

    tenant_id: str
    as_of: dt.date
    active: tuple[RiskAcceptance, ...]
    expired: tuple[RiskAcceptance, ...]
    """Flagged: these no longer count and must be renewed through review or removed."""
    not_yet_valid: tuple[RiskAcceptance, ...]
    applications: tuple[ExceptionApplication, ...]
    unused: tuple[RiskAcceptance, ...]
    """Active acceptances that excepted no host this cycle: candidates to revoke or correct."""
    expiring_soon: tuple[RiskAcceptance, ...]
    """Active acceptances expiring within the look-ahead (default :data:`EXPIRING_SOON_DAYS` days)."""
    partial: tuple[PartialCoverage, ...]
    lapsed: tuple[HostMatch, ...]
    """This cycle's non-patched hosts that an expired acceptance names and no active one excepts."""

    @property
    def applied(self) -> dict[str, str]:
        """host_id -> id of the acceptance that excepted it."""
        return {a.host_id: a.exception_id for a in self.applications}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, for the evidence document."""

        def acceptance(a: RiskAcceptance) -> dict[str, Any]:
            return {
                "id": a.id,
                "scope": a.scope_text,
                "hosts": list(a.hosts) if a.hosts is not None else None,
                "patches": list(a.patches) if a.patches is not None else None,
                "risk_rating": str(a.risk_rating),
                "justification": a.justification,
                "compensating_control": a.compensating_control,
                "requested_by": a.requested_by,
                "approver": a.approver,
                "approver_role": a.approver_role,
                "approved_on": a.approved_on.isoformat(),
                "expires_on": a.expires_on.isoformat(),
                "days_left": (a.expires_on - self.as_of).days,
                "ticket": a.ticket,
            }

        return {
            "tenant_id": self.tenant_id,
            "as_of": self.as_of.isoformat(),
            "active": [acceptance(a) for a in self.active],
            "expired": [acceptance(a) for a in self.expired],
            "not_yet_valid": [acceptance(a) for a in self.not_yet_valid],
            "applied": [
                {
                    "host_id": a.host_id,
                    "name": a.name,
                    "exception_id": a.exception_id,
                    "expires_on": a.expires_on.isoformat(),
                    "previous_state": a.previous_state,
                    "previous_reason": a.previous_reason,
                }
                for a in self.applications
            ],
            "unused": [a.id for a in self.unused],
            "expiring_soon": [
                {
                    "id": a.id,
                    "expires_on": a.expires_on.isoformat(),
                    "days_left": (a.expires_on - self.as_of).days,
                }
                for a in self.expiring_soon
            ],
            "partial": [
                {
                    "host_id": p.host_id,
                    "name": p.name,
                    "exception_id": p.exception_id,
                    "uncovered_patches": list(p.uncovered_patches),
                }
                for p in self.partial
            ],
            "lapsed": [
                {"host_id": m.host_id, "name": m.name, "exception_id": m.exception_id} for m in self.lapsed
            ],
        }


def apply_exceptions(
    records: Iterable[Mapping[str, Any]],
    missing_by_host: Mapping[str, Iterable[str]] | None,
    register: ExceptionRegister,
    as_of: dt.date,
    *,
    soon_days: int = EXPIRING_SOON_DAYS,
) -> tuple[list[dict[str, Any]], ExceptionReport]:
    """Turn covered hosts ``excepted`` and report what the register did this cycle.

    ``records`` are evidence host records (``host_id``, ``name``, ``final_state``, ``reason``, ...);
    they are copied, never changed, and come back in the same order. ``missing_by_host`` maps host_id
    to the patch ids still missing on it; None (or a host absent from it) means unknown. Only hosts not
    ``patched`` and not ``out_of_scope`` change; expired acceptances never apply.
    """
    _check_date(as_of)
    if soon_days < 0:
        raise ValueError(f"soon_days must be zero or more, got {soon_days}")
    active = active_exceptions(register, as_of)
    expired = expired_exceptions(register, as_of)
    out: list[dict[str, Any]] = []
    applications: list[ExceptionApplication] = []
    partial: list[PartialCoverage] = []
    lapsed: list[HostMatch] = []
    for record in records:
        state = record.get("final_state")
        if state not in o.FINAL_STATES:
            raise ValueError(f"host {record.get('host_id')!r} has an unknown final_state {state!r}")
        new = dict(record)
        out.append(new)
        if state in _UNTOUCHED_STATES:
            continue
        patch_ids = _missing(missing_by_host, record.get("host_id"))
        chosen = exception_for(record, patch_ids, register, as_of)
        if chosen is not None:
            new["final_state"], new["reason"] = o.EXCEPTED, exception_reason(chosen)
            applications.append(
                ExceptionApplication(
                    host_id=record["host_id"],
                    name=record.get("name"),
                    exception_id=chosen.id,
                    expires_on=chosen.expires_on,
                    previous_state=state,
                    previous_reason=record.get("reason"),
                )
            )
            continue
        for acceptance in active:
            uncovered = _uncovered(acceptance, record, patch_ids)
            if uncovered:
                partial.append(
                    PartialCoverage(
                        record["host_id"], record.get("name"), acceptance.id, tuple(sorted(uncovered))
                    )
                )
        lapsed.extend(
            HostMatch(record["host_id"], record.get("name"), acceptance.id)
            for acceptance in expired
            if acceptance.host_scoped and _names_host(acceptance, record)
        )
    used = {a.exception_id for a in applications}
    report = ExceptionReport(
        tenant_id=register.tenant_id,
        as_of=as_of,
        active=tuple(active),
        expired=tuple(expired),
        not_yet_valid=tuple(not_yet_valid_exceptions(register, as_of)),
        applications=tuple(sorted(applications, key=lambda a: (a.name or "", a.host_id))),
        unused=tuple(a for a in active if a.id not in used),
        expiring_soon=tuple(
            sorted(
                (a for a in active if (a.expires_on - as_of).days <= soon_days),
                key=lambda a: (a.expires_on, a.id),
            )
        ),
        partial=tuple(sorted(partial, key=lambda p: (p.name or "", p.host_id, p.exception_id))),
        lapsed=tuple(sorted(lapsed, key=lambda m: (m.name or "", m.host_id, m.exception_id))),
    )
    return out, report


def _missing(missing_by_host: Mapping[str, Iterable[str]] | None, host_id: Any) -> set[str] | None:
    if missing_by_host is None or host_id not in missing_by_host:
        return None
    return set(missing_by_host[host_id])


def _check_date(as_of: object) -> None:
    # A datetime is a date too, but comparing it with the register's dates would fail or mislead.
    if isinstance(as_of, dt.datetime) or not isinstance(as_of, dt.date):
        raise TypeError(f"as_of must be a calendar date (datetime.date), got {as_of!r}")
