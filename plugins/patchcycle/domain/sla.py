"""SLA clocks for missing patches: when each is due, which rule set the date, and where it stands.

Pure: the clock (``as_of``) and the KEV due dates are passed in.

**Dates are UTC calendar dates.** ``released`` is the vendor's release date as a UTC date, ``as_of`` is the
cycle's date in UTC (the date of the run's logical date in UTC, as :mod:`patchcycle.domain.schedule`
resolves it), and ``resolved_on`` is the UTC date the patch was seen installed. A release published late in
the evening in New York is already the next day in UTC, and its clock starts on that UTC day: convert
instants with :func:`utc_date`; :func:`due_date` refuses datetimes so the conversion is never implicit.

Rules (the earliest applicable deadline wins, see :func:`due_date`):

* **Tenant policy** (always): days after release per severity, default Critical 15, High 30, Medium 60,
  Low 90 (:class:`SlaPolicy`; common internal banking practice, mirroring CISA BOD 19-02's 15/30 days and
  PCI DSS, not a regulation).
* **PCI DSS 6.3.3** (tenants with ``pci_dss``): v4.0 (default) "Critical or high-security patches/updates …
  are installed within one month of release"; v4.0.1 narrows the one-month rule to critical vulnerabilities.
  One month is calendar-month arithmetic: release + 1 month, clamped to the month's last day (31 Jan -> 28 or
  29 Feb, 31 Mar -> 30 Apr, 15 Dec -> 15 Jan of the next year). All other security patches: "an appropriate
  time frame as determined by the entity (for example, within three months)" — we use 90 days (configurable).
* **CISA KEV** (when a CVE of the patch is in the catalog): the catalog's ``dueDate``, an absolute date. It is
  binding only on US federal agencies (BOD 22-01, revoked by BOD 26-04 in June 2026); we apply it as the
  industry's "fix known-exploited first" yardstick. It can fall before the patch's release: the row is then
  overdue from the start, and :func:`sla_table` notes it.
* **HIPAA Security Rule NPRM** (opt-in, tenants with ``hipaa``): the January 2025 proposal (Federal Register
  2024-30983) would require critical risks patched within 15 and high within 30 calendar days. It is a
  *proposed* rule, so :class:`SlaPolicy` leaves it off (``hipaa_nprm=False``) until a final rule is published.
* SOC 2 and SOX set no numeric patch deadline: their tenants are held to the tenant policy.

Statuses (:func:`sla_status`): ``met`` resolved on or before the due date; ``late`` resolved after it;
``overdue`` unresolved and past it; ``due_soon`` unresolved, due within ``due_soon_days`` (the due date itself
included: a patch is not overdue on its due date); ``open`` unresolved and due later than that.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from patchcycle.config.models import Framework, Severity

SlaStatus = Literal["met", "late", "overdue", "due_soon", "open"]
SLA_STATUSES: tuple[str, ...] = ("met", "late", "overdue", "due_soon", "open")

CISA_KEV = "CISA KEV"
PCI_DSS_633 = "PCI DSS 6.3.3"
HIPAA_NPRM = "HIPAA NPRM (proposed)"
TENANT_POLICY = "tenant policy"

PCI_DSS_VERSIONS = ("4.0", "4.0.1")

# When two rules give the same date, the one named is the first here: external obligations before our own.
_PRECEDENCE = (CISA_KEV, PCI_DSS_633, HIPAA_NPRM, TENANT_POLICY)


@dataclass(frozen=True)
class SlaPolicy:
    """A tenant's patch SLA: its own days per severity, and how framework rules apply.

    ``pci_dss_version`` picks the 6.3.3 wording: "4.0" (critical and high within one month) or "4.0.1"
    (critical only). ``hipaa_nprm`` opts in to the proposed HIPAA deadlines (off: the rule is not final).
    """

    critical_days: int = 15
    high_days: int = 30
    medium_days: int = 60
    low_days: int = 90
    pci_dss_version: str = "4.0"
    pci_other_days: int = 90
    hipaa_nprm: bool = False
    hipaa_critical_days: int = 15
    hipaa_high_days: int = 30

    def __post_init__(self) -> None:
        for name in (
            "critical_days",
            "high_days",
            "medium_days",
            "low_days",
            "pci_other_days",
            "hipaa_critical_days",
            "hipaa_high_days",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SlaPolicy.{name} must be a whole number of days >= 1, got {value!r}")
        if self.pci_dss_version not in PCI_DSS_VERSIONS:
            raise ValueError(
                f"SlaPolicy.pci_dss_version must be one of {', '.join(PCI_DSS_VERSIONS)}, "
                f"got {self.pci_dss_version!r}"
            )

    def days_for(self, severity: Severity) -> int:
        """The tenant's own days-after-release for a severity."""
        return {
            Severity.Critical: self.critical_days,
            Severity.High: self.high_days,
            Severity.Medium: self.medium_days,
            Severity.Low: self.low_days,
        }[severity]


@dataclass(frozen=True)
class Deadline:
    """One rule's deadline for a patch."""

    date: dt.date
    source: str


@dataclass(frozen=True)
class DueDate:
    """The deadline that applies (the earliest), the rule that set it, and every rule considered."""

    date: dt.date
    source: str
    considered: tuple[Deadline, ...] = field(default_factory=tuple)


def utc_date(moment: dt.datetime) -> dt.date:
    """The UTC calendar date of an aware instant (naive datetimes are refused: their zone is unknown)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; pass an aware datetime")
    return moment.astimezone(dt.UTC).date()


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus whole calendar months, clamped to the target month's end (31 Jan + 1 -> 28/29 Feb)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def due_date(
    released: dt.date,
    severity: Severity | str,
    frameworks: Iterable[Framework | str],
    kev_due: dt.date | None,
    policy: SlaPolicy | None = None,
) -> DueDate:
    """The earliest applicable deadline for a patch released on ``released`` (a UTC date).

    ``frameworks`` are the tenant's (``Framework`` members or their values); ``kev_due`` is the earliest KEV
    ``dueDate`` among the patch's CVEs, or ``None``. On equal dates the rule named is, in order: CISA KEV,
    PCI DSS 6.3.3, HIPAA NPRM, tenant policy.
    """
    if isinstance(released, dt.datetime):
        raise TypeError("released must be a UTC calendar date; convert instants with utc_date()")
    policy = policy or SlaPolicy()
    level = parse_severity(severity)
    applied = {str(f.value if isinstance(f, Framework) else f).strip().lower() for f in frameworks}

    days = policy.days_for(level)
    candidates = [
        Deadline(released + dt.timedelta(days=days), f"{TENANT_POLICY} ({level.value.lower()}: {days} days)")
    ]
    if Framework.pci_dss.value in applied:
        one_month = (
            {Severity.Critical} if policy.pci_dss_version == "4.0.1" else {Severity.Critical, Severity.High}
        )
        if level in one_month:
            candidates.append(Deadline(add_months(released, 1), PCI_DSS_633))
        else:
            candidates.append(
                Deadline(
                    released + dt.timedelta(days=policy.pci_other_days),
                    f"{PCI_DSS_633} (other: {policy.pci_other_days} days)",
                )
            )
    if policy.hipaa_nprm and Framework.hipaa.value in applied:
        # Proposed rule (NPRM of 6 Jan 2025), applied only when the tenant opts in; covers critical and high.
        hipaa_days = {Severity.Critical: policy.hipaa_critical_days, Severity.High: policy.hipaa_high_days}
        if level in hipaa_days:
            candidates.append(
                Deadline(
                    released + dt.timedelta(days=hipaa_days[level]),
                    f"{HIPAA_NPRM} ({level.value.lower()}: {hipaa_days[level]} days)",
                )
            )
    if kev_due is not None:
        candidates.append(Deadline(kev_due, CISA_KEV))

    chosen = min(candidates, key=lambda d: (d.date, _precedence(d.source)))
    return DueDate(date=chosen.date, source=chosen.source, considered=tuple(candidates))


def sla_status(
    due: dt.date, resolved_on: dt.date | None, as_of: dt.date, due_soon_days: int = 7
) -> SlaStatus:
    """Where a patch stands against its due date on ``as_of`` (see the module docstring for the statuses).

    A ``resolved_on`` after ``as_of`` is not known yet on ``as_of`` (a backfilled cycle), so the patch counts
    as unresolved.
    """
    if due_soon_days < 0:
        raise ValueError(f"due_soon_days must be >= 0, got {due_soon_days}")
    if resolved_on is not None and resolved_on <= as_of:
        return "met" if resolved_on <= due else "late"
    if as_of > due:
        return "overdue"
    if (due - as_of).days <= due_soon_days:
        return "due_soon"
    return "open"


def days_overdue(due: dt.date, resolved_on: dt.date | None, as_of: dt.date) -> int:
    """Days past due: until resolution for a late patch, until ``as_of`` for an unresolved one; else 0."""
    end = resolved_on if resolved_on is not None and resolved_on <= as_of else as_of
    return max(0, (end - due).days)


class SlaItem(NamedTuple):
    """A missing (or since resolved) patch on a host, as :func:`sla_table` takes it."""

    host_id: str
    patch_id: str
    released: dt.date | str
    severity: Severity | str
    cves: Sequence[str]
    resolved_on: dt.date | str | None = None


@dataclass(frozen=True)
class SlaRow:
    """One line of the SLA table."""

    host_id: str
    patch_id: str
    severity: str
    released: dt.date
    due_date: dt.date
    source: str
    status: SlaStatus
    days_overdue: int
    resolved_on: dt.date | None
    kev_cve: str | None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (ISO dates), for evidence files and DataFrames."""
        return {
            "host_id": self.host_id,
            "patch_id": self.patch_id,
            "severity": self.severity,
            "released": self.released.isoformat(),
            "due_date": self.due_date.isoformat(),
            "source": self.source,
            "status": self.status,
            "days_overdue": self.days_overdue,
            "resolved_on": self.resolved_on.isoformat() if self.resolved_on else None,
            "kev_cve": self.kev_cve,
            "notes": "; ".join(self.notes),
        }


def sla_table(
    items: Iterable[SlaItem | tuple[Any, ...]],
    *,
    frameworks: Iterable[Framework | str],
    as_of: dt.date,
    policy: SlaPolicy | None = None,
    kev_due_dates: Mapping[str, dt.date] | None = None,
    due_soon_days: int = 7,
) -> list[SlaRow]:
    """SLA rows for ``(host, patch, released, severity, cves, resolved_on)`` items, in input order.

    ``kev_due_dates`` maps CVE id to KEV ``dueDate`` (``KevCatalog.due_dates()``); the earliest among a
    patch's CVEs is its KEV deadline. ``released``/``resolved_on`` may be dates or ISO date strings.
    """
    if isinstance(as_of, dt.datetime):
        raise TypeError("as_of must be the cycle's UTC calendar date; convert instants with utc_date()")
    frameworks = list(frameworks)
    kev = kev_due_dates or {}
    rows = []
    for raw in items:
        item = SlaItem(*raw)
        released = _as_date(item.released, f"{item.patch_id}: released")
        resolved = _as_date(item.resolved_on, f"{item.patch_id}: resolved_on") if item.resolved_on else None
        kev_hits = sorted((kev[c], c) for c in item.cves if c in kev)
        kev_due, kev_cve = kev_hits[0] if kev_hits else (None, None)
        due = due_date(released, item.severity, frameworks, kev_due, policy)
        notes = []
        if kev_due is not None and kev_due < released:
            notes.append(f"KEV due date {kev_due.isoformat()} ({kev_cve}) is before the patch's release")
        rows.append(
            SlaRow(
                host_id=item.host_id,
                patch_id=item.patch_id,
                severity=parse_severity(item.severity).value,
                released=released,
                due_date=due.date,
                source=due.source,
                status=sla_status(due.date, resolved, as_of, due_soon_days),
                days_overdue=days_overdue(due.date, resolved, as_of),
                resolved_on=resolved,
                kev_cve=kev_cve,
                notes=tuple(notes),
            )
        )
    return rows


def parse_severity(value: Severity | str) -> Severity:
    """Our severity from a member or its value (case-insensitive); ValueError otherwise."""
    if isinstance(value, Severity):
        return value
    for severity in Severity:
        if isinstance(value, str) and value.strip().lower() == severity.value.lower():
            return severity
    raise ValueError(f"unknown severity {value!r} (expected one of {', '.join(s.value for s in Severity)})")


def _precedence(source: str) -> int:
    for index, prefix in enumerate(_PRECEDENCE):
        if source.startswith(prefix):
            return index
    return len(_PRECEDENCE)


def _as_date(value: dt.date | str, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise TypeError(f"{where}: pass a UTC calendar date, not a datetime (see utc_date())")
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{where}: not a YYYY-MM-DD date: {value!r}") from None
