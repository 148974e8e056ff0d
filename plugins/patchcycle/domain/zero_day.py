"""The out-of-band zero-day cycle, pure: what starts one (a person's CVE ids, or a new KEV listing that
affects a tenant's hosts), the emergency policy it runs under, and what it says when no fix exists yet.

Its plan is the regular plan with another source (:class:`patchcycle.domain.plan.PlanRisk` with
``zero_day_cves``: only the fixes of its CVEs, whatever their age); its stages, backups, canary and health
gates are the monthly cycle's, with the tenant's emergency soak and change-window policy.

What a KEV entry affects: Patchcycle patches operating systems, so a KEV entry affects a tenant when the
product CISA names is one of the operating systems the tenant patches (:data:`PRODUCT_FAMILIES`), or when
a host's cloud reports the CVE missing. CISA's ``vendorProject``/``product`` are free text; an entry whose
product names no operating system Patchcycle patches (a router, a browser) affects no tenant here, and
the conservative reading for an OS product we cannot tell apart (``Linux``/``Kernel``) is every family
that runs it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patchcycle.config.models import OsFamily
from patchcycle.feeds import FeedSnapshot, KevCatalog, KevEntry

CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,}$")
MAX_CVES = 50
"""At most this many CVEs in one zero-day cycle: an SSM baseline's ApprovedPatches holds 50 ids, and a
cycle for more is the monthly cycle's job."""

ZERO_DAY_PARAMS = ("cve_ids", "justification", "environments", "dry_run")
"""The keys a zero-day cycle's trigger may carry (``patchcycle.dag_factory.zero_day_params``)."""

_LINUX = {f for f in OsFamily if f.is_linux}
_WINDOWS = {f for f in OsFamily if f.is_windows}
_FAMILY_WORDS: tuple[tuple[Callable[[str], bool], set[OsFamily]], ...] = (
    (lambda text: "windows" in text, _WINDOWS),
    (lambda text: "linux" in text and "kernel" in text, _LINUX),
    (lambda text: "red hat" in text or "redhat" in text, {f for f in _LINUX if f.value.startswith("rhel")}),
    (lambda text: "centos" in text, {f for f in _LINUX if f.value.startswith("centos")}),
    (lambda text: "ubuntu" in text, {f for f in _LINUX if f.value.startswith("ubuntu")}),
    (lambda text: "amazon linux" in text, {f for f in _LINUX if f.value.startswith("amazon_linux")}),
)
PRODUCT_FAMILIES = (
    "Microsoft Windows: every Windows family; Linux Kernel: every Linux family; Red Hat, CentOS, Ubuntu, "
    "Amazon Linux: their own"
)
"""How a KEV entry's vendor and product map to the OS families Patchcycle patches (for the documentation)."""


NEW_KEV_ALIAS = "patchcycle_new_kev"
"""The feed refresh's Airflow asset alias: through it, one event on each affected tenant's asset."""


def kev_asset_name(tenant_id: str) -> str:
    """The name of the Airflow asset whose events start a tenant's zero-day cycle."""
    return f"patchcycle_new_kev__{tenant_id}"


def product_families(entry: KevEntry) -> set[OsFamily]:
    """The OS families a KEV entry's vendor and product name (empty: not an operating system we patch)."""
    text = f"{entry.vendor_project} {entry.product}".lower()
    found: set[OsFamily] = set()
    for names, families in _FAMILY_WORDS:
        if names(text):
            found |= families
    return found


def cve_problems(cves: Sequence[Any]) -> list[str]:
    """What is wrong with a zero-day trigger's CVE ids (empty: nothing)."""
    problems = []
    if not cves:
        problems.append("params.cve_ids: give at least one CVE id (CVE-YYYY-NNNN)")
    bad = [c for c in cves if not isinstance(c, str) or not CVE_ID.match(c)]
    if bad:
        problems.append(f"params.cve_ids: {bad!r} are not CVE ids (CVE-YYYY-NNNN)")
    if len(set(map(str, cves))) != len(cves):
        problems.append("params.cve_ids: a CVE id is given more than once")
    if len(cves) > MAX_CVES:
        problems.append(f"params.cve_ids: {len(cves)} CVEs; a zero-day cycle takes at most {MAX_CVES}")
    return problems


def new_kev_entries(current: KevCatalog, previous: KevCatalog | None) -> list[KevEntry]:
    """KEV entries in ``current`` that ``previous`` did not list, by CVE id; none without a previous
    catalog (the first refresh sets the baseline: the whole catalog is not "new")."""
    if previous is None:
        return []
    return [e for cve, e in sorted(current.entries.items()) if cve not in previous.entries]


@dataclass(frozen=True)
class KevTrigger:
    """A new KEV listing's zero-day trigger for one tenant: the CVEs and why they affect it."""

    tenant_id: str
    cve_ids: tuple[str, ...]
    families: tuple[str, ...]
    kev_catalog_version: str

    def extra(self, feeds_prefix: str | None) -> dict[str, Any]:
        """The asset event's extra: what the zero-day cycle plans from, shown in the Assets view."""
        return {
            "tenant_id": self.tenant_id,
            "cve_ids": list(self.cve_ids),
            "affected_os_families": list(self.families),
            "kev_catalog_version": self.kev_catalog_version,
            "feeds": feeds_prefix,
        }


def kev_triggers(new: Iterable[KevEntry], tenants: Iterable[Any], catalog_version: str) -> list[KevTrigger]:
    """Per tenant whose zero-day cycle starts automatically, the new KEV entries whose product is an OS
    family the tenant patches."""
    new = list(new)
    triggers = []
    for tenant in tenants:
        zero_day = tenant.risk.zero_day
        if zero_day is None or not zero_day.automatic:
            continue
        families = {OsFamily(b.os_family) for b in tenant.baselines}
        hits = {e.cve_id: product_families(e) & families for e in new}
        hits = {cve: fams for cve, fams in hits.items() if fams}
        if hits:
            triggers.append(
                KevTrigger(
                    tenant_id=tenant.id,
                    cve_ids=tuple(sorted(hits)),
                    families=tuple(sorted({f.value for fams in hits.values() for f in fams})),
                    kev_catalog_version=catalog_version,
                )
            )
    return triggers


def emergency_facts(zero_day: Any, cves: Sequence[str]) -> dict[str, Any]:
    """The run facts a zero-day cycle runs with: the tenant's emergency soak as the soak override and
    its emergency change-window policy as the window override, each with the approver in the reason (the
    evidence records both, as it records a person's override)."""
    approved = f"{zero_day.approver} ({zero_day.approver_role}) on {zero_day.approved_on.isoformat()}"
    listed = ", ".join(cves)
    facts: dict[str, Any] = {
        "soak_hours_override": zero_day.emergency_soak_hours,
        "soak_override_reason": (
            f"zero-day cycle for {listed}: the tenant's emergency soak of {zero_day.emergency_soak_hours:g} "
            f"h (risk.zero_day.emergency_soak_hours, approved by {approved})"
        ),
        "window_override_reason": None,
    }
    if zero_day.emergency_change_window == "patch_outside_window":
        facts["window_override_reason"] = (
            f"zero-day emergency change for {listed}: patched outside the change window "
            f"(risk.zero_day.emergency_change_window, approved by {approved})"
        )
    return facts


def emergency_policy(zero_day: Any) -> dict[str, Any]:
    """The tenant's emergency policy as the evidence records it."""
    return {
        "emergency_soak_hours": zero_day.emergency_soak_hours,
        "emergency_change_window": zero_day.emergency_change_window,
        "approver": zero_day.approver,
        "approver_role": zero_day.approver_role,
        "approved_on": zero_day.approved_on.isoformat(),
    }


# -- no fix yet: the exposed hosts and what compensates ------------------------------------------------
def exposed_hosts(
    rows: Iterable[Mapping[str, Any]], cve: str, entry: KevEntry | None
) -> list[dict[str, Any]]:
    """In-scope hosts exposed to ``cve``: those whose cloud reports it missing, and those running an OS
    family the KEV entry's product names (when it is listed), each with the basis."""
    families = {f.value for f in product_families(entry)} if entry is not None else set()
    out = []
    for row in rows:
        if not row.get("environment"):
            continue
        if cve in (row.get("missing_cves") or ()):
            basis = "its cloud reports the CVE missing"
        elif row.get("os_family") in families:
            basis = f"runs {row['os_family']}, which the KEV entry's product ({entry.product}) names"  # type: ignore[union-attr]
        else:
            continue
        out.append(
            {
                "host_id": row["host_id"],
                "name": row.get("name"),
                "environment": row.get("environment"),
                "os_family": row.get("os_family"),
                "basis": basis,
            }
        )
    return sorted(out, key=lambda h: (str(h["environment"]), str(h["name"])))


def compensating_controls(register: Any, host: Mapping[str, Any], as_of: dt.date) -> list[dict[str, Any]]:
    """The active risk acceptances of the tenant's exception register that name the host (or every host):
    their compensating controls, approver and expiry, as the report shows them."""
    from patchcycle.domain.exceptions import active_exceptions

    if register is None:
        return []
    refs = {host.get("host_id"), host.get("name")} - {None, ""}
    return [
        {
            "id": a.id,
            "compensating_control": a.compensating_control,
            "approver": a.approver,
            "approver_role": a.approver_role,
            "expires_on": a.expires_on.isoformat(),
        }
        for a in active_exceptions(register, as_of)
        if a.hosts is None or refs & set(a.hosts)
    ]


def without_fix(
    cves: Iterable[str],
    rows: Iterable[Mapping[str, Any]],
    feeds: FeedSnapshot,
    register: Any,
    as_of: dt.date,
) -> list[dict[str, Any]]:
    """Per CVE the zero-day plan found no fix for: its KEV listing, the exposed hosts and, per host, the
    compensating controls the register names (none: the report says none is on record)."""
    rows = list(rows)
    out = []
    for cve in sorted(cves):
        entry = feeds.kev.get(cve)
        hosts = exposed_hosts(rows, cve, entry)
        for host in hosts:
            host["compensating_controls"] = compensating_controls(register, host, as_of)
        out.append(
            {
                "cve": cve,
                "kev": (
                    {
                        "date_added": entry.date_added.isoformat(),
                        "due_date": entry.due_date.isoformat(),
                        "vendor_project": entry.vendor_project,
                        "product": entry.product,
                        "name": entry.vulnerability_name,
                    }
                    if entry is not None
                    else None
                ),
                "exposed_hosts": hosts,
                "exposure_known": bool(hosts) or entry is not None,
                "uncovered_hosts": sorted(str(h["name"]) for h in hosts if not h["compensating_controls"]),
            }
        )
    return out
