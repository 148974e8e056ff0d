"""The pre-flight gate: which hosts may be backed up and patched this cycle, and which are held, and why.

Held hosts are excluded and recorded with a reason; if more than the tenant's threshold is held the
scope halts, because a cycle that silently skips a large part of the fleet is worse than no cycle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from patchcycle.config.models import Tenant

# An agent that changed status this recently may be flapping (connect, drop, reconnect): a patch sent
# now could be lost mid-install, so the host waits for the next cycle.
AGENT_SETTLE = dt.timedelta(minutes=15)


def agent_flapping(host: Mapping[str, Any], now: dt.datetime) -> str | None:
    """The reason to hold an online agent that changed status less than :data:`AGENT_SETTLE` ago."""
    changed = host.get("agent_status_changed_at")
    if not changed:
        return None
    try:
        when = dt.datetime.fromisoformat(str(changed).replace("Z", "+00:00"))
    except ValueError:
        return f"agent status change time {changed!r} is unreadable; not known to be stable"
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    age = now - when
    if age < AGENT_SETTLE:
        minutes = max(0, int(age.total_seconds() // 60))
        return (
            f"{host.get('agent_kind', 'agent')} agent changed status {minutes} min ago (flapping?); "
            f"not patched until it has been stable for {int(AGENT_SETTLE.total_seconds() // 60)} min"
        )
    return None


@dataclass(frozen=True)
class HostDecision:
    """The gate's verdict on one host, and the reason (None for an eligible host installing the full plan)."""

    host_id: str
    verdict: str  # eligible | held | excepted | out_of_scope
    reason: str | None = None
    # What an eligible host installs: the full plan, or the plan without its kernel updates (the
    # kernel gate held the kernel because the host's sensor does not support the new one).
    variant: str = "full"


@dataclass(frozen=True)
class PreflightResult:
    """The gate's decision for every inventoried host."""

    decisions: tuple[HostDecision, ...]
    max_held_share: float
    notes: tuple[str, ...] = field(default_factory=tuple)
    # A zero-day cycle whose CVEs have no fix yet: its scope is empty by design (the plan says so, and the
    # exposed hosts are recorded), not because the inventory is broken.
    nothing_to_patch: bool = False

    @property
    def eligible(self) -> list[str]:
        """The ids of the hosts that may be backed up and patched this cycle."""
        return [d.host_id for d in self.decisions if d.verdict == "eligible"]

    @property
    def held(self) -> list[HostDecision]:
        """The decisions of the hosts in scope that are held this cycle, each with its reason."""
        return [d for d in self.decisions if d.verdict == "held"]

    @property
    def out_of_scope(self) -> list[HostDecision]:
        """The decisions of the hosts outside this run's scope, each with its reason."""
        return [d for d in self.decisions if d.verdict == "out_of_scope"]

    @property
    def kernel_held(self) -> list[HostDecision]:
        """Eligible hosts that install the plan without its kernel updates."""
        return [d for d in self.decisions if d.verdict == "eligible" and d.variant != "full"]

    @property
    def excepted(self) -> list[HostDecision]:
        """The decisions of the hosts a risk acceptance excepts from this cycle."""
        return [d for d in self.decisions if d.verdict == "excepted"]

    @property
    def held_share(self) -> float:
        """The held hosts' share of the in-scope hosts, from 0 to 1 (0.0 when none is in scope)."""
        in_scope = len(self.eligible) + len(self.held)
        return len(self.held) / in_scope if in_scope else 0.0

    @property
    def halted(self) -> bool:
        """True when more of the in-scope fleet is held than the tenant tolerates, or nothing is in scope.

        An empty scope is far more often a broken inventory (wrong account, tags renamed, agents gone)
        than a tenant with nothing to patch, and reporting it as a compliant cycle would hide that.
        """
        return (not self.in_scope and not self.nothing_to_patch) or self.held_share > self.max_held_share

    @property
    def in_scope(self) -> int:
        """How many hosts are in scope: the eligible and the held (not the excepted or out of scope)."""
        return len(self.eligible) + len(self.held)

    def to_dict(self) -> dict[str, Any]:
        """The result as the run's ``preflight.json`` records it: counts, held share, decisions, notes."""
        return {
            "max_held_share": self.max_held_share,
            "held_share": round(self.held_share, 4),
            "halted": self.halted,
            **({"nothing_to_patch": True} if self.nothing_to_patch else {}),
            "in_scope": self.in_scope,
            "eligible": len(self.eligible),
            "held": len(self.held),
            "out_of_scope": len(self.out_of_scope),
            "excepted": len(self.excepted),
            "kernel_held": len(self.kernel_held),
            "decisions": [d.__dict__ for d in self.decisions],
            "notes": list(self.notes),
        }


def evaluate_host(  # noqa: C901 - one gate per pre-flight rule, in the order the evidence lists them (agent, sensor, kernel, backup, exceptions)
    tenant: Tenant,
    host: Mapping[str, Any],
    environments: set[str],
    plan: Mapping[str, Any] | None = None,
    kernel_support: Mapping[str, Mapping[str, Any]] | None = None,
    now: dt.datetime | None = None,
) -> HostDecision:
    """One host's verdict. Scope first (what we patch at all), then readiness (can we patch it now):
    its cloud agent, then (for a tenant with Falcon) its sensor, then whether the plan's kernel is one
    its sensor supports."""
    host_id = host["host_id"]
    if not host.get("environment"):
        tag = host.get("environment_tag")
        return HostDecision(host_id, "out_of_scope", f"environment tag {tag!r} matches no environment")
    if host["environment"] not in environments:
        return HostDecision(
            host_id, "out_of_scope", f"environment {host['environment']} not selected for this run"
        )
    if host.get("agent_status") == "NotRegistered":
        return HostDecision(host_id, "held", f"{host.get('agent_kind', 'agent')} agent not registered")
    if host.get("agent_kind") == "rds":
        # AWS manages an RDS instance's OS: no agent, no sensor, no kernel to gate; RDS must be able to
        # take the update now (``available``), or the instance waits for the next cycle.
        if not host.get("agent_online"):
            return HostDecision(host_id, "held", f"RDS DB instance {host.get('agent_status', 'unknown')}")
        return HostDecision(host_id, "eligible")
    if not host.get("os_family"):
        return HostDecision(
            host_id, "out_of_scope", f"platform {host.get('platform')!r} is not patched by Patchcycle"
        )
    if tenant.baseline_for(host["os_family"]) is None:
        return HostDecision(host_id, "out_of_scope", f"no patch baseline for {host['os_family']}")
    if not host.get("agent_online"):
        kind = host.get("agent_kind", "agent")
        return HostDecision(host_id, "held", f"{kind} agent {host.get('agent_status', 'unknown')}")
    if now is not None and (flapping := agent_flapping(host, now)):
        return HostDecision(host_id, "held", flapping)
    if tenant.falcon is None:
        return HostDecision(host_id, "eligible")
    from patchcycle.domain.plan import target_kernel
    from patchcycle.domain.sensor import kernel_gate, sensor_gate

    if tenant.falcon.required and (verdict := sensor_gate(host)).action == "hold":
        return HostDecision(host_id, "held", verdict.reason)
    if plan is not None:
        target = target_kernel(plan, host["os_family"])
        verdict = kernel_gate(host, target, kernel_support or {}, tenant.preflight.kernel_gate)
        if verdict.action == "hold":
            return HostDecision(host_id, "held", verdict.reason)
        if verdict.action == "no_kernel":
            return HostDecision(host_id, "eligible", verdict.reason, variant="no_kernel")
    return HostDecision(host_id, "eligible")


def evaluate_preflight(
    tenant: Tenant,
    hosts: Iterable[Mapping[str, Any]],
    environments: Iterable[str] | None = None,
    deferrals: Mapping[str, HostDecision] | None = None,
    plan: Mapping[str, Any] | None = None,
    kernel_support: Mapping[str, Mapping[str, Any]] | None = None,
    now: dt.datetime | None = None,
) -> PreflightResult:
    """Decide every host; ``environments`` limits the run (default: all of the tenant's).

    ``plan`` (the frozen plan's dict) and ``kernel_support`` (Falcon's table for the plan's kernels)
    feed the kernel gate of tenants with Falcon.

    ``deferrals`` are the exception register's decisions (see :func:`deferral_for`): a host an active
    risk acceptance covers is ``excepted`` and not patched; one it covers only in part is held.
    """
    selected = set(environments) if environments is not None else {e.name.value for e in tenant.environments}
    decisions = []
    for host in hosts:
        if (outside := outside_zero_day(plan, host)) is not None:
            decisions.append(HostDecision(host["host_id"], "out_of_scope", outside))
            continue
        decision = evaluate_host(tenant, host, selected, plan, kernel_support, now)
        deferral = (deferrals or {}).get(host["host_id"])
        if deferral is not None and decision.verdict == "eligible":
            decision = deferral
        decisions.append(decision)
    zero_day = ((plan or {}).get("risk") or {}).get("zero_day")
    return PreflightResult(
        decisions=tuple(decisions),
        max_held_share=tenant.preflight.max_held_share,
        nothing_to_patch=zero_day is not None and not any((plan or {}).get("approved", {}).values()),
    )


def outside_zero_day(plan: Mapping[str, Any] | None, host: Mapping[str, Any]) -> str | None:
    """Why a host is outside a zero-day cycle (None: inside it, or not a zero-day cycle): the cycle
    planned no fix for its OS family (or for RDS). It is left as it is: no backup, no install, no verdict
    on patches the monthly cycle owns."""
    zero_day = ((plan or {}).get("risk") or {}).get("zero_day")
    if zero_day is None:
        return None
    rds = host.get("agent_kind") == "rds"
    if not rds and (plan or {}).get("approved", {}).get(host.get("os_family") or ""):
        return None
    what = "RDS" if rds else host.get("os_family") or "its platform"
    return f"the zero-day cycle for {', '.join(zero_day.get('cves') or [])} planned no fix for {what}"


def deferral_for(
    host: Mapping[str, Any], planned: set[str], register: Any, as_of: Any
) -> HostDecision | None:
    """What the exception register says about patching ``host`` with the ``planned`` patches on ``as_of``.

    Fully covered by an active acceptance: ``excepted`` (deferred, with the acceptance as the reason).
    Covered for some planned patches only: ``held``, because one install list serves a whole stage and
    installing the accepted patch would break the deferral. Otherwise None: patch as planned.
    """
    from patchcycle.domain.exceptions import active_exceptions, exception_for, exception_reason

    acceptance = exception_for(host, planned, register, as_of)
    if acceptance is not None:
        return HostDecision(host["host_id"], "excepted", exception_reason(acceptance))
    for candidate in active_exceptions(register, as_of):
        names_host = host.get("host_id") in (candidate.hosts or []) or host.get("name") in (
            candidate.hosts or []
        )
        if names_host and candidate.patches and planned & set(candidate.patches):
            return HostDecision(
                host["host_id"],
                "held",
                f"risk acceptance {candidate.id} defers {sorted(planned & set(candidate.patches))} but not "
                "the rest of the plan; a host cannot take part of a stage's install list",
            )
    return None
