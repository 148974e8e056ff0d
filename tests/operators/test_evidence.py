"""The evidence task's decisions without a cloud: the pack's files and a manifest each file matches, a
retry's pack beside the first (never over it), the chain to the previous cycle's manifest, a pack even
when the plan never finished, the hosts left unpatched in its result, the asset event's extra, and which
threat feeds the risk section read. The document itself is the domain's (tests/domain/test_evidence.py),
the PDF the reports' (tests/reports); the end-to-end tests run the task against the whole cycle.

The evidence bucket (and the platform bucket the refreshed feeds live in) is the in-memory one."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Asset

from patchcycle.config.loader import default_tenants_dir, load_tenant
from patchcycle.operators.evidence import WriteEvidencePackOperator
from patchcycle.reports.manifest import MANIFEST_NAME, sha256_hex, verify_pack
from patchcycle.reports.store import EvidenceStore
from tests.conftest import REPO
from tests.domain.evidence_packs import CRITICAL_PATCH, HostSpec, inventory_row

from .stand_ins import RUN_ID, MemoryBucket, cycle_context, recorded_events, run_key, with_plan

PLAN = {"approved": {"amazon_linux_2": [CRITICAL_PATCH]}}
PLANNED_AT = "2026-11-22T02:00:05+00:00"
PATCHED = HostSpec("alpha-dev-01", "nonprod")
FAILED = HostSpec("alpha-dev-02", "nonprod", state="failed", reason="2 patches failed")


@pytest.fixture
def bucket() -> MemoryBucket:
    return MemoryBucket()


def ran(bucket: MemoryBucket, *fleet: HostSpec) -> dict[str, Any]:
    """A run of the cycle as its earlier tasks left it (the plan, an event of the plan task, the
    inventory, pre-flight's decisions, the nonprod stage's verified record); its plan facts."""
    store = EvidenceStore(bucket, "evidence")
    info = with_plan(store, PLAN)
    for task_id, at, action in (
        ("nonprod.patch_aws", "2026-11-22T03:00:00+00:00", "patch.started"),
        ("plan", PLANNED_AT, "plan.frozen"),
    ):
        event = {"at": at, "actor": f"airflow:x/{task_id}", "action": action, "target": "cu_alpha"}
        store.put_json(run_key(f"events/{task_id}.try-1.json"), [{**event, "result": "ok", "details": {}}])
    store.put_record(run_key("inventory.json"), [inventory_row(h) for h in fleet], attempt=1)
    decisions = [{"host_id": h.host_id, "verdict": "eligible", "reason": None} for h in fleet]
    store.put_record(
        run_key("preflight.json"), {"halted": False, "in_scope": len(fleet), "decisions": decisions}, 1
    )
    stage = {
        "status": "failed" if any(h.state == "failed" for h in fleet) else "succeeded",
        "hosts": {
            h.host_id: {"final_state": h.state, "reason": h.reason, "backup_id": "ami-1"} for h in fleet
        },
    }
    store.put_record(run_key("nonprod/stage.json"), stage, attempt=1)
    return info


def evidence_task(bucket: MemoryBucket, **kwargs: Any) -> WriteEvidencePackOperator:
    op = WriteEvidencePackOperator(task_id="evidence", tenant_id="cu_alpha", **kwargs)
    op.__dict__.update(
        tenant=load_tenant(default_tenants_dir() / "cu_alpha.yaml"), store=EvidenceStore(bucket, "evidence")
    )
    return op


def pack(bucket: MemoryBucket, prefix: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest under ``prefix`` and the pack's files, in the order the manifest lists them."""
    manifest = json.loads(bucket.objects[f"{prefix}/{MANIFEST_NAME}"])
    return manifest, {f["name"]: bucket.objects[f"{prefix}/{f['name']}"] for f in manifest["files"]}


def test_the_pack_is_written_with_a_manifest_that_every_file_matches(bucket) -> None:
    info = ran(bucket, PATCHED, FAILED)
    result = evidence_task(bucket).execute(cycle_context(info))

    prefix = run_key("pack")
    assert result["pack_url"] == f"s3://evidence/{prefix}"
    assert sorted(k.removeprefix(f"{prefix}/") for k in bucket.objects if k.startswith(f"{prefix}/")) == [
        "evidence.json",
        "hosts.csv",
        MANIFEST_NAME,
        "report.pdf",
    ]
    manifest, files = pack(bucket, prefix)
    assert list(files) == ["report.pdf", "evidence.json", "hosts.csv"]
    assert verify_pack(manifest, files) == []
    assert files["report.pdf"].startswith(b"%PDF")
    assert result["manifest_sha256"] == sha256_hex(bucket.objects[f"{prefix}/{MANIFEST_NAME}"])
    evidence = json.loads(files["evidence.json"])
    assert (evidence["cycle"]["run_id"], evidence["cycle"]["plan_hash"]) == (RUN_ID, info["plan_hash"])
    # The run began with its first recorded step; the pack's own write is one of its events.
    assert evidence["cycle"]["started_at"] == PLANNED_AT
    actions = [e["action"] for e in evidence["events"]]
    assert {"plan.frozen", "patch.started", "evidence.written"} <= set(actions)
    (written,) = [e for e in recorded_events(bucket) if e["action"] == "evidence.written"]
    assert written["details"]["pack"] == result["pack_url"]
    assert written["details"]["manifest_sha256"] == result["manifest_sha256"]


def test_the_hosts_the_cycle_left_are_named_in_the_result(bucket) -> None:
    info = ran(bucket, PATCHED, FAILED)
    result = evidence_task(bucket).execute(cycle_context(info))
    assert result["outcome"] in ("partial", "failed")
    assert result["hosts_left"] == [
        {"name": "alpha-dev-02", "environment": "nonprod", "state": "failed", "reason": "2 patches failed"}
    ]
    assert result["hosts_left_total"] == 1
    assert result["summary"]["failed"] == 1


def test_at_most_a_hundred_hosts_left_are_named_and_all_are_counted(bucket) -> None:
    fleet = [
        HostSpec(f"alpha-dev-{n:03d}", "nonprod", state="failed", reason="install failed") for n in range(101)
    ]
    result = evidence_task(bucket).execute(cycle_context(ran(bucket, *fleet)))
    assert len(result["hosts_left"]) == 100 and result["hosts_left_total"] == 101
    assert result["hosts_left"][0]["name"] == "alpha-dev-000", "named in order"


def test_a_retry_writes_its_pack_beside_the_first_and_never_over_it(bucket) -> None:
    info = ran(bucket, PATCHED)
    evidence_task(bucket).execute(cycle_context(info))
    first = {k: v for k, v in bucket.objects.items() if "/pack/" in k}
    result = evidence_task(bucket).execute(cycle_context(info, attempt=2))

    assert result["pack_url"] == f"s3://evidence/{run_key('pack-try2')}"
    assert {k: v for k, v in bucket.objects.items() if "/pack/" in k} == first
    manifest, files = pack(bucket, run_key("pack-try2"))
    assert verify_pack(manifest, files) == []


def test_the_manifest_chains_to_the_latest_pack_of_an_earlier_cycle(bucket) -> None:
    earlier = {
        "cycles/2026-10-25/runs/scheduled__a/pack/manifest.json": b'{"cycle": "october"}\n',
        "cycles/2026-11-08/runs/manual__b/pack-try2/manifest.json": b'{"cycle": "early november"}\n',
        # Not earlier: another run of this cycle, and a later cycle.
        "cycles/2026-11-22/runs/manual__c/pack/manifest.json": b'{"cycle": "this one, another run"}\n',
        "cycles/2026-12-27/runs/scheduled__d/pack/manifest.json": b'{"cycle": "december"}\n',
    }
    bucket.objects.update(earlier)
    info = ran(bucket, PATCHED)
    evidence_task(bucket).execute(cycle_context(info))

    link = sha256_hex(earlier["cycles/2026-11-08/runs/manual__b/pack-try2/manifest.json"])
    manifest, files = pack(bucket, run_key("pack"))
    assert manifest["previous_manifest_sha256"] == link
    assert verify_pack(manifest, files, expected_previous_sha256=link) == []


def test_the_link_is_the_pack_written_last_not_the_key_that_sorts_last(bucket) -> None:
    """Of the earlier cycle's packs, the one its manifest says was created last: a later manual run's
    pack, although ``scheduled__a/pack/`` sorts after it and after the scheduled run's own retry."""

    def manifest(created_at: str) -> bytes:
        return json.dumps({"created_at": created_at}).encode()

    earlier = {
        "cycles/2026-11-08/runs/scheduled__a/pack/manifest.json": manifest("2026-11-08T05:00:00+00:00"),
        "cycles/2026-11-08/runs/scheduled__a/pack-try2/manifest.json": manifest("2026-11-08T06:00:00+00:00"),
        "cycles/2026-11-08/runs/manual__z/pack/manifest.json": manifest("2026-11-09T10:00:00+00:00"),
        "cycles/2026-10-25/runs/scheduled__q/pack/manifest.json": manifest("2026-11-10T00:00:00+00:00"),
    }
    bucket.objects.update(earlier)
    evidence_task(bucket).execute(cycle_context(ran(bucket, PATCHED)))

    manifest_doc, _ = pack(bucket, run_key("pack"))
    # The most recent earlier cycle's last pack, even though an older cycle's backfilled pack is newer.
    assert manifest_doc["previous_manifest_sha256"] == sha256_hex(
        earlier["cycles/2026-11-08/runs/manual__z/pack/manifest.json"]
    )


def test_the_first_pack_of_a_tenant_starts_the_chain(bucket) -> None:
    evidence_task(bucket).execute(cycle_context(ran(bucket, PATCHED)))
    manifest, _ = pack(bucket, run_key("pack"))
    assert manifest["previous_manifest_sha256"] is None


def test_without_a_plan_the_pack_says_that_nothing_was_planned_and_why(bucket) -> None:
    result = evidence_task(bucket).execute(cycle_context(None))

    # Filed under the cycle the run would have planned (its run_after, a Sunday, is a cycle date).
    prefix = run_key("pack")
    manifest, files = pack(bucket, prefix)
    assert verify_pack(manifest, files) == []
    evidence = json.loads(files["evidence.json"])
    assert evidence["cycle"]["halted_reason"].startswith("the plan task did not finish")
    assert evidence["cycle"]["cycle_date"] == "2026-11-22" and result["pack_url"].endswith(prefix)
    assert not any(evidence["plan"]["approved"].values()), "nothing was planned"
    assert any(k.startswith("cycles/2026-11-22/plans/") for k in bucket.objects), "the empty plan is kept"


def test_the_asset_event_says_how_the_cycle_ended(bucket) -> None:
    asset = Asset("s3://patchcycle-evidence-cu-alpha/cycles")
    outlet_events: defaultdict[Any, SimpleNamespace] = defaultdict(SimpleNamespace)
    info = ran(bucket, PATCHED, FAILED)
    result = evidence_task(bucket, outlets=[asset]).execute(cycle_context(info, outlet_events=outlet_events))

    extra = outlet_events[asset].extra
    assert (extra["cycle_date"], extra["outcome"], extra["pack_url"]) == (
        "2026-11-22",
        result["outcome"],
        result["pack_url"],
    )
    assert extra["failed"] == 1 and extra["compliance_after"] == result["summary"]["compliance_after"]


def refreshed_feeds(bucket: MemoryBucket) -> None:
    """KEV and EPSS as the daily refresh stores them in the platform bucket."""
    feeds = REPO / "include" / "feeds"
    prefix = "feeds/2026-11-21/scheduled__2026-11-21T05_00_00_00_00"
    bucket.objects[f"{prefix}/known_exploited_vulnerabilities.json"] = (
        feeds / "kev-subset.json"
    ).read_bytes()
    bucket.objects[f"{prefix}/epss_scores.csv.gz"] = gzip.compress((feeds / "epss-sample.csv").read_bytes())


@pytest.mark.parametrize(
    ("refreshed", "source"),
    [(True, "feeds/2026-11-21/scheduled__"), (False, "committed snapshots (include/feeds")],
)
def test_the_risk_section_reads_the_refreshed_feeds_or_else_the_committed_ones(
    bucket, refreshed, source
) -> None:
    if refreshed:
        refreshed_feeds(bucket)
    evidence_task(bucket).execute(cycle_context(ran(bucket, PATCHED)))
    _, files = pack(bucket, run_key("pack"))
    assert source in json.loads(files["evidence.json"])["risk"]["feeds"]["source"]
