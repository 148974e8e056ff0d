"""Evidence documents for the readers of packs (the fleet status, the portfolio, the Patchcycle page),
built by the project's own builders: :func:`~patchcycle.domain.evidence.build_evidence_document` for the
document, :func:`~patchcycle.domain.risk_report.risk_and_sla` with the committed feed snapshots for its
risk section, as the evidence task assembles them. A fleet is described host by host; what a reader
shows is then worked out from the same description, never typed in by hand.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from patchcycle.config.models import Tenant
from patchcycle.domain.evidence import build_evidence_document
from patchcycle.domain.inventory import INVENTORY_COLUMNS
from patchcycle.domain.risk_report import risk_and_sla
from patchcycle.feeds import load_feed_snapshots

ENVIRONMENTS = ("nonprod", "staging", "prod")
# Released long before any cycle here: past every SLA (PCI DSS: a month for Critical) on the cycle date.
CRITICAL_PATCH = {
    "id": "ALAS2-2026-2644",
    "severity": "Critical",
    "cves": ["CVE-2023-0386"],
    "released": "2026-06-01",
}


@dataclass(frozen=True)
class HostSpec:
    """One host of a fleet and how the cycle left it: ``patched``, ``failed``, ``non_compliant`` (its
    stage judged it) or ``held`` (the pre-flight gate held it), with the reason."""

    name: str
    environment: str
    state: str = "patched"
    reason: str | None = None

    @property
    def host_id(self) -> str:
        return "i-" + hashlib.sha256(self.name.encode()).hexdigest()[:17]


def inventory_row(spec: HostSpec) -> dict[str, Any]:
    row = {column: None for column in INVENTORY_COLUMNS}
    row.update(
        cloud="aws",
        account="111111111111",
        region="us-east-1",
        host_id=spec.host_id,
        name=spec.name,
        environment=spec.environment,
        environment_tag=spec.environment,
        os_family="amazon_linux_2",
        platform="Amazon Linux 2",
        agent_kind="ssm",
        agent_status="Online",
        agent_online=True,
        criticality="medium",
        missing_count=1,
        failed_count=0,
        installed_count=400,
        last_patch_operation="Scan",
        last_patch_time="2026-11-01T03:00:00+00:00",
    )
    return row


def cycle_evidence(
    tenant: Tenant,
    *,
    cycle_date: str,
    run_id: str,
    fleet: Sequence[HostSpec] = (),
    finished_at: str | None = None,
    dry_run: bool = False,
    refused_reasons: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The evidence document of one run of ``tenant``'s cycle over ``fleet``.

    ``refused_reasons``: the run was refused before it read any host (no inventory, no stage);
    ``dry_run``: it planned only. Otherwise every environment's stage ran and left its hosts as
    ``fleet`` says.
    """
    refused = bool(refused_reasons)
    day = dt.date.fromisoformat(cycle_date)
    finished_at = finished_at or f"{cycle_date}T06:00:00+00:00"
    cycle = {
        "cycle_date": cycle_date,
        "run_id": run_id,
        "run_type": run_id.split("__", 1)[0],
        "plan_hash": "ab" * 32,
        "dry_run": dry_run,
        "started_at": f"{cycle_date}T02:00:00+00:00",
        "finished_at": finished_at,
        "generated_by": "patchcycle tests",
        "refused_reasons": list(refused_reasons),
        "halted_reason": None,
    }
    plan = {"approved": {"amazon_linux_2": [CRITICAL_PATCH]}}
    inventory = [] if refused else [inventory_row(h) for h in fleet]
    preflight = None
    stages: dict[str, dict[str, Any] | None] = {}
    if not refused:
        preflight = {
            "halted": False,
            "in_scope": len(fleet),
            "decisions": [
                {
                    "host_id": h.host_id,
                    "verdict": "held" if h.state == "held" else "eligible",
                    "reason": h.reason if h.state == "held" else None,
                }
                for h in fleet
            ],
        }
    if not refused and not dry_run:
        for env in ENVIRONMENTS:
            stages[env] = {
                "status": "succeeded",
                "started_at": f"{cycle_date}T03:00:00+00:00",
                "finished_at": f"{cycle_date}T05:00:00+00:00",
                "hosts": {
                    h.host_id: {
                        "final_state": h.state,
                        "reason": h.reason,
                        "command_id": "cmd-0001",
                        "backup_id": "ami-0123456789abcdef0",
                        "patch_state": {"MissingCount": 0 if h.state == "patched" else 1, "FailedCount": 0},
                    }
                    for h in fleet
                    if h.environment == env and h.state != "held"
                },
            }
    evidence = build_evidence_document(
        tenant=tenant,
        cycle=cycle,
        plan=plan,
        inventory=inventory,
        preflight=preflight,
        stages=stages,
        selected_environments=list(ENVIRONMENTS),
        events=[],
    )
    evidence["risk"] = risk_and_sla(
        hosts=evidence["hosts"],
        approved=plan["approved"],
        feeds=load_feed_snapshots(),
        frameworks=[f.value for f in tenant.frameworks],
        as_of=day,
    )
    return evidence
