"""The Patchcycle page against fleetsim's S3: the demo tenants' evidence packs, written by the project's own
builders and evidence store, the way a cycle's evidence task writes them.

The module-scoped ``fleet`` serves a scenario with cu_alpha's and cu_birch's evidence buckets only: cu_cedar's
store does not exist, so its row must show the error while the others show their cycles. One fleetsim
server per module (moto's backends are process-global), as ``tests/hooks/conftest.py`` does.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fleetsim"))

from fleetsim_testkit import Fleet, running, scenario_dict  # noqa: E402

from devtools.local import aws_connection  # noqa: E402
from patchcycle.config.loader import load_tenants  # noqa: E402
from tests.domain.evidence_packs import HostSpec, cycle_evidence  # noqa: E402

EVIDENCE_CONNECTION = "patchcycle_evidence"
BUCKETS = ["patchcycle-evidence-cu-alpha", "patchcycle-evidence-cu-birch"]
UNREACHABLE_TENANT = "cu_cedar"
NOV, DEC = "2026-11-22", "2026-12-27"
REFUSAL = "scheduled run found stale: created 2026-12-30, 3 days after its fourth Sunday"

FLEETS = {
    "cu_alpha": [
        HostSpec("alpha-prd-web-01", "prod"),
        HostSpec(
            "alpha-prd-db-07", "prod", "failed", "patch install exit code 1: yum transaction check error"
        ),
        HostSpec("alpha-prd-core-02", "prod", "held", "change freeze: quarter-end ledger close"),
        HostSpec("alpha-stg-app-01", "staging"),
        HostSpec("alpha-dev-app-02", "nonprod", "non_compliant", "1 approved patch still missing"),
    ],
    "cu_birch": [HostSpec(f"birch-prd-app-{i:02d}", "prod") for i in range(1, 4)],
}


@dataclass(frozen=True)
class WrittenPack:
    """A tenant's latest cycle as written to its evidence store."""

    tenant_id: str
    dag_id: str
    bucket: str
    evidence: dict[str, Any]
    evidence_key: str
    evidence_bytes: bytes
    report_key: str
    report: bytes


def write_packs(url: str) -> dict[str, WrittenPack]:
    """cu_alpha: a partial November cycle, then a December run refused before it touched a host;
    cu_birch: a completed November cycle. Each pack holds its evidence.json and report.pdf.

    Needs ``AIRFLOW_CONN_PATCHCYCLE_EVIDENCE`` on fleetsim (the hook reaches S3 through it).
    """
    from patchcycle.hooks.s3 import EvidenceBucketHook
    from patchcycle.reports.pdf import render_cycle_report
    from patchcycle.reports.store import CyclePaths, EvidenceStore

    tenants = {t.id: t for t in load_tenants().tenants}
    written: dict[str, WrittenPack] = {}
    for tenant_id, fleet in FLEETS.items():
        tenant = tenants[tenant_id]
        store = EvidenceStore(EvidenceBucketHook(aws_conn_id=EVIDENCE_CONNECTION), tenant.evidence.bucket)
        run_id = f"scheduled__{NOV}T02:00:00+00:00"
        evidence = cycle_evidence(tenant, cycle_date=NOV, run_id=run_id, fleet=fleet)
        runs = [(evidence, run_id)]
        if tenant_id == "cu_alpha":
            late = f"scheduled__{DEC}T02:00:00+00:00"
            refused = cycle_evidence(
                tenant,
                cycle_date=DEC,
                run_id=late,
                refused_reasons=(REFUSAL,),
                finished_at=f"{DEC}T06:00:00Z",
            )
            runs.append((refused, late))
        for doc, run in runs:
            paths = CyclePaths(doc["cycle"]["cycle_date"], run)
            store.put_json(paths.pack("evidence.json"), doc)
            store.put_bytes(paths.pack("report.pdf"), render_cycle_report(doc), "application/pdf")
        paths = CyclePaths(NOV, run_id)
        written[tenant_id] = WrittenPack(
            tenant_id=tenant_id,
            dag_id=tenant.dag_id,
            bucket=tenant.evidence.bucket,
            evidence=evidence,
            evidence_key=paths.pack("evidence.json"),
            evidence_bytes=store.get_bytes(paths.pack("evidence.json")),
            report_key=paths.pack("report.pdf"),
            report=store.get_bytes(paths.pack("report.pdf")),
        )
    return written


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    """fleetsim with the evidence buckets of cu_alpha and cu_birch (none for cu_cedar)."""
    with running(scenario_dict(tenants=[], catalog=[], evidence={"buckets": BUCKETS})) as f:
        yield f


@pytest.fixture(scope="module")
def packs(fleet: Fleet) -> Iterator[dict[str, WrittenPack]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(f"AIRFLOW_CONN_{EVIDENCE_CONNECTION.upper()}", aws_connection(fleet.url, "us-east-1"))
        yield write_packs(fleet.url)
