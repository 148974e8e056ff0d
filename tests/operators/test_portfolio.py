"""The portfolio roll-up's choice of each tenant's latest cycle: never a refused run's or a dry run's pack."""

from __future__ import annotations

import json
from typing import Any

from patchcycle.config.loader import load_tenant
from patchcycle.operators.portfolio import latest_cycle_evidence
from tests.domain.evidence_packs import HostSpec, cycle_evidence
from tests.domain.test_fleet_status import DEC, NOV, key

BUCKET = "patchcycle-evidence-cu-alpha"


class EvidenceBucket:
    """The two calls the roll-up makes on ``EvidenceBucketHook`` (list keys, get one object)."""

    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = {k: json.dumps(v).encode() for k, v in objects.items()}

    def keys(self, bucket: str, prefix: str) -> list[str]:
        assert bucket == BUCKET
        return sorted(k for k in self.objects if k.startswith(prefix))

    def get(self, bucket: str, key: str) -> bytes:
        assert bucket == BUCKET
        return self.objects[key]


def test_the_latest_cycle_skips_a_newer_refusal_and_dry_run() -> None:
    alpha = load_tenant("include/tenants/cu_alpha.yaml")
    fleet = [
        HostSpec("alpha-prd-web-01", "prod"),
        HostSpec("alpha-prd-web-02", "prod", "failed", "timed out"),
    ]
    cycle = cycle_evidence(alpha, cycle_date=NOV, run_id="scheduled__2026-11-22T02:00:00+00:00", fleet=fleet)
    refused = cycle_evidence(alpha, cycle_date=DEC, run_id="scheduled__late", refused_reasons=("stale",))
    dry = cycle_evidence(alpha, cycle_date=DEC, run_id="manual__dry", fleet=fleet, dry_run=True)
    hook = EvidenceBucket(
        {
            key(NOV, "scheduled__2026-11-22T02_00_00_00_00"): cycle,
            key(DEC, "scheduled__late"): refused,
            key(DEC, "manual__dry"): dry,
        }
    )
    latest = latest_cycle_evidence(hook, BUCKET)  # type: ignore[arg-type]
    assert latest == json.loads(json.dumps(cycle))
    assert latest is not None and latest["cycle"]["outcome"] == "partial"
    assert latest_cycle_evidence(EvidenceBucket({key(DEC, "scheduled__late"): refused}), BUCKET) is None  # type: ignore[arg-type]
    assert latest_cycle_evidence(EvidenceBucket({}), BUCKET) is None  # type: ignore[arg-type]


def test_the_latest_rollout_pack_is_read_through_the_hook_even_when_incomplete() -> None:
    from patchcycle.operators.portfolio import latest_rollout_pack

    def report(day: str, outcome: str, finished_at: str) -> dict[str, Any]:
        return {"day": day, "outcome": outcome, "run": {"finished_at": finished_at}, "needs": []}

    complete = report("2026-12-01", "complete", "2026-12-01T07:00:00+00:00")
    incomplete = report("2026-12-02", "incomplete", "2026-12-02T07:00:00+00:00")
    packs = {
        "falcon-rollout/2026-12-01/runs/scheduled__2026-12-01T06_00_00_00_00/pack/rollout.json": complete,
        "falcon-rollout/2026-12-02/runs/manual__2026-12-02T06_00_00_00_00/pack/rollout.json": incomplete,
        "falcon-rollout/2026-12-02/runs/manual__2026-12-02T06_00_00_00_00/records/needs.json": {"needs": []},
    }
    latest = latest_rollout_pack(EvidenceBucket(packs), BUCKET)  # type: ignore[arg-type]
    assert latest is not None and (latest.day, latest.document) == ("2026-12-02", incomplete)
    assert latest_rollout_pack(EvidenceBucket({}), BUCKET) is None  # type: ignore[arg-type]
