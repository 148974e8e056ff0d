"""The fleet at a glance: each tenant's latest cycle, and what an SRE must see of it on the Patchcycle page.

Pure: an evidence store's key listing, a reader of evidence documents, the tenant's exception register
and the date are passed in. The api-server's page (:mod:`patchcycle.ui.app`) does the reading; the
portfolio roll-up chooses each tenant's latest cycle with the same :func:`latest_packs`.

A tenant's *latest cycle* is its newest pack whose figures describe the fleet after a cycle
(:func:`~patchcycle.domain.evidence.counts_for_compliance`): a dry run patched nothing and a refused
run was stopped before any change, so neither may stand for the tenant's compliance. Packs newer than
it that do not count are kept, so the page can say "last attempt refused on <date>: <reasons>".
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from patchcycle.config.exceptions import ExceptionRegister
from patchcycle.domain import outcomes as o
from patchcycle.domain.evidence import counts_for_compliance
from patchcycle.domain.exceptions import EXPIRING_SOON_DAYS, active_exceptions

__all__ = [
    "LISTED_HOST_STATES",
    "MAX_LISTED",
    "PAGE_FILES",
    "Attempt",
    "CycleSummary",
    "HostLeft",
    "LatestPacks",
    "Listed",
    "OpenException",
    "OverduePatch",
    "Pack",
    "PackUnreadable",
    "TenantStatus",
    "cycle_summary",
    "latest_packs",
    "pack_file_parts",
    "tenant_status",
]

PACK_FILE = re.compile(
    r"^cycles/(?P<cycle>[^/]+)/runs/(?P<run>[^/]+)/(?P<pack>pack(?:-try\d+)?)/(?P<name>[^/]+)$"
)
"""A file of an evidence pack (``reports/store.py``): ``pack/`` on a first attempt, ``pack-try<n>/`` after."""

PAGE_FILES = ("evidence.json", "report.pdf")
"""The pack files the page links to (and its endpoints serve)."""

MAX_LISTED = 10
"""At most this many hosts, patches or exceptions are named per tenant; the rest are "and N more"."""

LISTED_HOST_STATES = (o.FAILED, o.NON_COMPLIANT, o.NOT_ASSESSED, o.HELD)
"""Final states whose hosts the page names with their reasons, in this order: each carries a reason of
its own. Hosts not run are counted only; their reason is the stage's or the gate's, said once."""

T = TypeVar("T")


class PackUnreadable(Exception):
    """An evidence document that could not be read or parsed; names the key."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class Pack:
    """One evidence pack: the key of its ``evidence.json`` and the document."""

    key: str
    evidence: Mapping[str, Any]

    @property
    def cycle(self) -> Mapping[str, Any]:
        """The document's ``cycle`` section (empty when it has none)."""
        return self.evidence.get("cycle") or {}

    def file_key(self, name: str) -> str:
        """The key of another file of the same pack (``report.pdf``, ``manifest.json``...)."""
        return f"{self.key.rsplit('/', 1)[0]}/{name}"


@dataclass(frozen=True)
class LatestPacks:
    """A tenant's latest cycle, and the packs written after it that do not count (newest first)."""

    cycle: Pack | None
    newer: tuple[Pack, ...] = ()


def pack_file_parts(key: str) -> tuple[str, str] | None:
    """``(cycle_date, file name)`` of a pack file's key, or None for any other key."""
    match = PACK_FILE.match(key)
    return (match["cycle"], match["name"]) if match else None


def _attempt(match: re.Match[str]) -> int:
    pack = match["pack"]
    return int(pack.removeprefix("pack-try")) if pack != "pack" else 1


def latest_packs(keys: Iterable[str], read: Callable[[str], Mapping[str, Any]]) -> LatestPacks:
    """The latest pack that counts for compliance among an evidence store's ``keys``, and the packs
    after it that do not; ``read`` reads one ``evidence.json`` (it may raise :class:`PackUnreadable`).

    Newest is the latest cycle date, then, within a date, the latest ``cycle.finished_at`` (run ids of
    different run types do not sort by time), then the later retry of a pack. Cycle dates are read
    newest first, every pack of a date at once, and reading stops at the first date with a pack that
    counts: usually one or two reads.
    """
    by_cycle: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for key in keys:
        match = PACK_FILE.match(key)
        if match and match["name"] == "evidence.json":
            by_cycle[match["cycle"]].append((key, _attempt(match)))
    newer: list[Pack] = []
    for cycle_date in sorted(by_cycle, reverse=True):
        packs = [(Pack(key, read(key)), attempt) for key, attempt in by_cycle[cycle_date]]
        packs.sort(
            key=lambda p: (str(p[0].cycle.get("finished_at") or ""), p[1], p[0].key),
            reverse=True,
        )
        for pack, _ in packs:
            if counts_for_compliance(pack.evidence):
                return LatestPacks(pack, tuple(newer))
            newer.append(pack)
    return LatestPacks(None, tuple(newer))


# --- the page's rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listed(Generic[T]):
    """The first items of a list, and how many more there are ("and N more")."""

    shown: tuple[T, ...]
    more: int = 0

    @classmethod
    def of(cls, items: Sequence[T], limit: int) -> Listed[T]:
        """The first ``limit`` of ``items``, the rest counted in ``more``."""
        return cls(tuple(items[:limit]), max(0, len(items) - limit))

    @property
    def total(self) -> int:
        """How many items there are, shown or not."""
        return len(self.shown) + self.more


@dataclass(frozen=True)
class HostLeft:
    """A host the cycle left unpatched, and why."""

    name: str
    environment: str | None
    state: str
    reason: str


@dataclass(frozen=True)
class OverduePatch:
    """A critical patch past its SLA date on at least one host the cycle left without it."""

    patch_id: str
    hosts: int
    days_overdue: int
    """The most days overdue among its hosts."""


@dataclass(frozen=True)
class OpenException:
    """A risk acceptance in force on the page's date."""

    id: str
    scope: str
    risk_rating: str
    approver: str
    expires_on: dt.date
    days_left: int

    @property
    def expiring_soon(self) -> bool:
        """Whether it expires within :data:`EXPIRING_SOON_DAYS` days of the page's date."""
        return self.days_left <= EXPIRING_SOON_DAYS


@dataclass(frozen=True)
class Attempt:
    """A run after the latest cycle that does not count for compliance: refused, or a dry run."""

    kind: str
    """``refused`` or ``dry run``."""
    cycle_date: str
    run_id: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class CycleSummary:
    """The latest cycle of a tenant, as the page shows it."""

    cycle_date: str
    run_id: str
    outcome: str
    halted_reason: str | None
    compliance_before: float | None
    compliance_after: float | None
    hosts_total: int | None
    hosts_left: Listed[HostLeft]
    not_run: int
    overdue_critical: int | None
    """Critical patch-host pairs past their SLA date (the portfolio's figure); None: no risk section."""
    overdue_critical_patches: Listed[OverduePatch]
    evidence_key: str
    report_key: str


@dataclass(frozen=True)
class TenantStatus:
    """One tenant's row on the Patchcycle page.

    A row is a plain record of what is known; a fact the platform does not record yet (such as a
    tenant's nearest SAML certificate expiry) becomes a new field here, filled where it is read, and a
    column of its own in the page's template, never a placeholder.
    """

    tenant_id: str
    display_name: str
    dag_id: str
    cycle: CycleSummary | None
    last_attempt: Attempt | None
    open_exceptions: Listed[OpenException]
    problems: tuple[str, ...] = ()
    """What could not be read for this tenant, each naming the store or file and the key."""


def _hosts_left(hosts: Iterable[Mapping[str, Any]]) -> list[HostLeft]:
    order = {state: i for i, state in enumerate(LISTED_HOST_STATES)}
    left = [
        HostLeft(
            name=str(h.get("name") or h.get("host_id") or "?"),
            environment=h.get("environment"),
            state=h["final_state"],
            reason=str(h.get("reason") or "no reason recorded"),
        )
        for h in hosts
        if h.get("final_state") in order
    ]
    env_order = {"prod": 0, "staging": 1, "nonprod": 2}
    left.sort(key=lambda h: (order[h.state], env_order.get(h.environment or "", 3), h.name))
    return left


def _overdue_critical(open_rows: Iterable[Mapping[str, Any]]) -> list[OverduePatch]:
    hosts: dict[str, int] = defaultdict(int)
    days: dict[str, int] = defaultdict(int)
    for row in open_rows:
        if row.get("severity") == "Critical" and row.get("status") == "overdue":
            hosts[row["patch_id"]] += 1
            days[row["patch_id"]] = max(days[row["patch_id"]], int(row.get("days_overdue") or 0))
    patches = [OverduePatch(pid, hosts[pid], days[pid]) for pid in hosts]
    patches.sort(key=lambda p: (-p.days_overdue, -p.hosts, p.patch_id))
    return patches


def cycle_summary(pack: Pack, limit: int = MAX_LISTED) -> CycleSummary:
    """What the page shows of a tenant's latest cycle, from its pack's evidence document."""
    evidence = pack.evidence
    cycle = pack.cycle
    summary = evidence.get("summary") or {}
    risk = evidence.get("risk") or {}
    overdue = (risk.get("summary") or {}).get("overdue_by_severity")
    hosts = evidence.get("hosts") or []
    return CycleSummary(
        cycle_date=str(cycle.get("cycle_date")),
        run_id=str(cycle.get("run_id")),
        outcome=str(cycle.get("outcome")),
        halted_reason=cycle.get("halted_reason"),
        compliance_before=summary.get("compliance_before"),
        compliance_after=summary.get("compliance_after"),
        hosts_total=summary.get("hosts_total"),
        hosts_left=Listed.of(_hosts_left(hosts), limit),
        not_run=sum(1 for h in hosts if h.get("final_state") == o.NOT_RUN),
        overdue_critical=(overdue or {}).get("Critical", 0) if risk else None,
        overdue_critical_patches=Listed.of(_overdue_critical(risk.get("open") or []), limit),
        evidence_key=pack.key,
        report_key=pack.file_key("report.pdf"),
    )


def _attempt_of(pack: Pack) -> Attempt:
    cycle = pack.cycle
    refused = cycle.get("outcome") == "refused"
    return Attempt(
        kind="refused" if refused else "dry run",
        cycle_date=str(cycle.get("cycle_date")),
        run_id=str(cycle.get("run_id")),
        reasons=tuple(str(r) for r in cycle.get("refused_reasons") or ()) if refused else (),
    )


def _open_exceptions(register: ExceptionRegister, as_of: dt.date) -> list[OpenException]:
    acceptances = sorted(active_exceptions(register, as_of), key=lambda a: (a.expires_on, a.id))
    return [
        OpenException(
            id=a.id,
            scope=a.scope_text,
            risk_rating=str(a.risk_rating),
            approver=f"{a.approver} ({a.approver_role})",
            expires_on=a.expires_on,
            days_left=(a.expires_on - as_of).days,
        )
        for a in acceptances
    ]


def tenant_status(
    *,
    tenant_id: str,
    display_name: str,
    dag_id: str,
    latest: LatestPacks | None,
    register: ExceptionRegister | None,
    as_of: dt.date,
    problems: Sequence[str] = (),
    limit: int = MAX_LISTED,
) -> TenantStatus:
    """A tenant's row: its latest cycle (None before the first, or when ``latest`` could not be read),
    the newest pack after it when that one does not count, and the acceptances open on ``as_of``
    (``register`` None: the register could not be read, and ``problems`` says why)."""
    return TenantStatus(
        tenant_id=tenant_id,
        display_name=display_name,
        dag_id=dag_id,
        cycle=cycle_summary(latest.cycle, limit) if latest and latest.cycle else None,
        last_attempt=_attempt_of(latest.newer[0]) if latest and latest.newer else None,
        open_exceptions=Listed.of(_open_exceptions(register, as_of) if register else [], limit),
        problems=tuple(problems),
    )
