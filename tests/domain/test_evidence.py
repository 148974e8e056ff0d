"""The evidence document of a cycle run, for each way a run can end.

The fleet below is small but has one host of each kind of trouble; the expected counts and compliance
shares in each test are worked out by hand from the table in ``fleet``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

import pytest

from patchcycle.domain import outcomes as o
from patchcycle.domain.evidence import EVIDENCE_SCHEMA_VERSION, build_evidence_document
from patchcycle.domain.preflight import evaluate_preflight

ENVS = ["nonprod", "staging", "prod"]
PLAN_HASH = "9f2c" * 16
PLAN = {"tenant_id": "cu_test", "cycle_date": "2026-11-22", "approved": {"amazon_linux_2": []}}
EVENTS = [
    {"at": "2026-11-22T05:10:00+00:00", "action": "stage.verified", "target": "prod"},
    {"at": "2026-11-22T02:00:00+00:00", "action": "plan.frozen", "target": "cu_test"},
    {"at": "2026-11-22T02:05:00+00:00", "action": "preflight.held", "target": "i-n4"},
    {
        "at": "2026-11-22T02:05:00+00:00",
        "action": "inventory.collected",
        "target": "aws:111111111111:us-east-1",
    },
    {"at": "2026-11-22T03:00:00+00:00", "action": "stage.verified", "target": "nonprod"},
]
COUNTED = (
    "patched",
    "failed",
    "held",
    "excepted",
    "not_run",
    "out_of_scope",
    "non_compliant",
    "not_assessed",
)


def _cycle(dry_run: bool = False) -> dict[str, Any]:
    return {
        "cycle_date": "2026-11-22",
        "run_id": "scheduled__2026-11-22T02:00:00+00:00",
        "run_type": "scheduled",
        "plan_hash": PLAN_HASH,
        "dry_run": dry_run,
    }


@pytest.fixture
def fleet(host_row) -> list[dict[str, Any]]:
    """Fourteen hosts.

    ====== ======= ============== ======= ================================ ================================
    host   env     os / cloud     missing pre-flight                       in its stage
    ====== ======= ============== ======= ================================ ================================
    i-n1   nonprod al2            2       eligible                         patched
    i-n2   nonprod al2            0       eligible                         patched
    i-n3   nonprod al2            3       eligible                         failed (2 patches failed)
    i-n4   nonprod al2            0       held (ConnectionLost)            -
    i-n5   nonprod al2            1       eligible                         patched
    i-o2   nonprod rhel_9         4       out of scope (no baseline)       -
    i-s1   staging al2            1       eligible                         patched
    i-s2   staging al2            0       eligible                         patched (or failed)
    i-p1   prod    windows_2019   1       eligible                         patched
    i-p2   prod    al2            0       eligible                         patched
    i-p3   prod    (unregistered) -       held (NotRegistered)             -
    i-p4   prod    al2            2       eligible                         held (backup failed)
    az-1   prod    azure al2      0       held (arc agent Disconnected)    -
    i-o1   -       al2            1       out of scope (tag "sandbox")     -
    ====== ======= ============== ======= ================================ ================================
    """
    return [
        host_row("i-n1", name="alpha-dev-app-01", missing_count=2),
        host_row("i-n2", name="alpha-dev-app-02", missing_count=0),
        host_row("i-n3", name="alpha-dev-app-03", missing_count=3),
        host_row(
            "i-n4",
            name="alpha-dev-app-04",
            missing_count=0,
            agent_status="ConnectionLost",
            agent_online=False,
        ),
        host_row("i-n5", name="alpha-dev-app-05", missing_count=1),
        host_row(
            "i-o2",
            name="alpha-dev-rhel-01",
            missing_count=4,
            os_family="rhel_9",
            platform="Red Hat Enterprise Linux 9.4",
        ),
        host_row(
            "i-s1", name="alpha-stg-app-01", environment="staging", environment_tag="staging", missing_count=1
        ),
        host_row(
            "i-s2", name="alpha-stg-app-02", environment="staging", environment_tag="staging", missing_count=0
        ),
        host_row(
            "i-p1",
            name="alpha-prd-win-01",
            environment="prod",
            environment_tag="prod",
            missing_count=1,
            os_family="windows_2019",
            platform="Microsoft Windows Server 2019 Datacenter 10.0.17763",
            criticality="high",
        ),
        host_row(
            "i-p2", name="alpha-prd-web-02", environment="prod", environment_tag="prod", missing_count=0
        ),
        host_row(
            "i-p3",
            name="alpha-prd-web-03",
            environment="prod",
            environment_tag="prod",
            missing_count=0,
            installed_count=0,
            os_family=None,
            platform="unknown (no SSM registration)",
            agent_status="NotRegistered",
            agent_online=False,
            last_patch_operation=None,
            last_patch_time=None,
        ),
        host_row(
            "i-p4", name="alpha-prd-web-04", environment="prod", environment_tag="prod", missing_count=2
        ),
        host_row(
            "az-1",
            name="alpha-prd-arc-01",
            cloud="azure",
            account="6f1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a10",
            region="eastus",
            environment="prod",
            environment_tag="prod",
            missing_count=0,
            agent_kind="arc",
            agent_status="Disconnected",
            agent_online=False,
        ),
        host_row("i-o1", name="alpha-sbx-01", environment=None, environment_tag="sandbox", missing_count=1),
    ]


@pytest.fixture
def make_stage(stage_host):
    """``make_stage(tenant, env, {host_id: entry})`` -> a stage record as the verify task writes it."""

    def make(tenant, env: str, hosts: dict[str, dict[str, Any]], hour: int = 3) -> dict[str, Any]:
        verdict = o.stage_verdict(
            {h: e["final_state"] for h, e in hosts.items() if e["final_state"] != o.HELD},
            tenant.environment(env).rate_control,
        )
        return {
            "environment": env,
            "status": "succeeded" if verdict.succeeded else "failed",
            "reason": verdict.reason,
            "started_at": f"2026-11-22T{hour:02d}:00:00+00:00",
            "finished_at": f"2026-11-22T{hour:02d}:40:00+00:00",
            "command_ids": sorted({e["command_id"] for e in hosts.values() if e.get("command_id")}),
            "budget": {
                "targets": verdict.targets,
                "errors": verdict.errors,
                "allowed_errors": verdict.allowed_errors,
            },
            "hosts": hosts,
        }

    return make


@pytest.fixture
def stages(tenant, make_stage, stage_host):
    """Every stage as it ends in a run where all three stages stay within budget."""
    nonprod = {
        "i-n1": stage_host(o.PATCHED, command_id="cmd-nonprod"),
        "i-n2": stage_host(o.PATCHED, command_id="cmd-nonprod"),
        "i-n3": stage_host(o.FAILED, "patch install failed (2 patch(es) failed)", command_id="cmd-nonprod"),
        "i-n5": stage_host(o.PATCHED, command_id="cmd-nonprod"),
    }
    staging = {
        "i-s1": stage_host(o.PATCHED, command_id="cmd-staging"),
        "i-s2": stage_host(o.PATCHED, command_id="cmd-staging"),
    }
    prod = {
        "i-p1": stage_host(o.PATCHED, command_id="cmd-prod"),
        "i-p2": stage_host(o.PATCHED, command_id="cmd-prod"),
        "i-p4": {
            "backup_id": None,
            "backup_state": "failed",
            "final_state": o.HELD,
            "reason": "backup snapshot failed: quota exceeded",
        },
    }
    return {
        "nonprod": make_stage(tenant, "nonprod", nonprod, hour=3),
        "staging": make_stage(tenant, "staging", staging, hour=4),
        "prod": make_stage(tenant, "prod", prod, hour=5),
    }


def build(
    tenant, *, inventory, preflight, stages, environments=ENVS, dry_run=False, events=EVENTS, plan=PLAN
):
    return build_evidence_document(
        tenant=tenant,
        cycle=_cycle(dry_run),
        plan=plan,
        inventory=inventory,
        preflight=preflight,
        stages=stages,
        selected_environments=list(environments),
        events=list(events),
    )


def check_invariants(doc: dict[str, Any], inventory: list[dict[str, Any]] | None) -> None:
    """What holds for every evidence document, whatever happened in the run."""
    inventory = inventory or []
    ids = Counter(h["host_id"] for h in doc["hosts"])
    assert ids == Counter(r["host_id"] for r in inventory)
    assert all(count == 1 for count in ids.values())
    assert all(h["final_state"] in o.FINAL_STATES for h in doc["hosts"])
    for stage in doc["stages"]:  # a stage's row adds up
        assert stage["hosts_targeted"] == (
            stage["hosts_succeeded"] + stage["hosts_failed"] + stage["hosts_not_assessed"]
        ), stage
    summary = doc["summary"]
    assert summary["hosts_total"] == len(inventory)
    assert sum(summary[k] for k in COUNTED) == summary["hosts_total"]
    assert summary["in_scope"] == summary["hosts_total"] - summary["out_of_scope"]
    for state in COUNTED:
        assert summary[state] == sum(1 for h in doc["hosts"] if h["final_state"] == state)
    ats = [(e.get("at") or "", e.get("action") or "") for e in doc["events"]]
    assert ats == sorted(ats)
    assert doc["schema_version"] == EVIDENCE_SCHEMA_VERSION
    assert doc["plan"]["hash"] == PLAN_HASH
    json.dumps(doc)  # plain JSON, no default= needed


def hosts_by_id(doc):
    return {h["host_id"]: h for h in doc["hosts"]}


def rollup(in_scope, before, after, **counts):
    result = {
        "in_scope": in_scope,
        "patched": 0,
        "failed": 0,
        "held": 0,
        "excepted": 0,
        "not_run": 0,
        "out_of_scope": 0,
        "non_compliant": 0,
        "not_assessed": 0,
    }
    result.update(counts)
    result.update(compliance_before=before, compliance_after=after)
    return result


# --- (a) a successful run -----------------------------------------------------------------------------------


def test_fully_successful_run_is_completed(tenant, host_row, make_stage, stage_host):
    inventory = [
        host_row("i-1", name="dev-1", missing_count=2),
        host_row("i-2", name="dev-2", missing_count=0),
        host_row("i-3", name="stg-1", environment="staging", missing_count=1),
        host_row("i-4", name="prd-1", environment="prod", missing_count=0, os_family="windows_2019"),
        host_row("i-5", name="prd-2", environment="prod", missing_count=1),
        host_row("i-9", name="sbx-1", environment=None, environment_tag="sandbox"),
    ]
    preflight = evaluate_preflight(tenant, inventory).to_dict()
    stages = {
        "nonprod": make_stage(tenant, "nonprod", {"i-1": stage_host(), "i-2": stage_host()}),
        "staging": make_stage(tenant, "staging", {"i-3": stage_host()}),
        "prod": make_stage(tenant, "prod", {"i-4": stage_host(), "i-5": stage_host()}),
    }
    doc = build(tenant, inventory=inventory, preflight=preflight, stages=stages)
    check_invariants(doc, inventory)
    assert doc["cycle"]["outcome"] == "completed"
    assert [(s["environment"], s["status"], s["reason"]) for s in doc["stages"]] == [
        ("nonprod", "succeeded", None),
        ("staging", "succeeded", None),
        ("prod", "succeeded", None),
    ]
    # Before: i-2 and i-4 had nothing missing; after: every in-scope host is patched.
    assert {k: v for k, v in doc["summary"].items() if not isinstance(v, dict)} == {
        "hosts_total": 6,
        **rollup(5, 0.4, 1.0, patched=5, out_of_scope=1),
    }
    assert hosts_by_id(doc)["i-9"]["final_state"] == o.OUT_OF_SCOPE


def test_run_with_trouble_inside_every_budget_is_partial(tenant, fleet, stages):
    preflight = evaluate_preflight(tenant, fleet).to_dict()
    assert (preflight["held_share"], preflight["halted"]) == (0.25, False)  # exactly at cu_test's threshold
    doc = build(tenant, inventory=fleet, preflight=preflight, stages=stages)
    check_invariants(doc, fleet)
    assert doc["cycle"]["outcome"] == "partial"
    assert [s["status"] for s in doc["stages"]] == ["succeeded", "succeeded", "succeeded"]

    summary = doc["summary"]
    # In scope: 12 (all but i-o1, i-o2). Compliant before: i-n2, i-n4, i-s2, i-p2, az-1 (i-p3 has no patch
    # state at all). Compliant after: the 7 patched, plus held i-n4 and az-1 that were compliant already.
    assert {k: v for k, v in summary.items() if not isinstance(v, dict)} == {
        "hosts_total": 14,
        **rollup(12, 0.4167, 0.75, patched=7, failed=1, held=4, out_of_scope=2),
    }
    assert summary["by_environment"] == {
        "nonprod": rollup(5, 0.4, 0.8, patched=3, failed=1, held=1, out_of_scope=1),
        "staging": rollup(2, 0.5, 1.0, patched=2),
        "prod": rollup(5, 0.4, 0.6, patched=2, held=3),
    }
    assert summary["by_cloud"] == {
        "aws": rollup(11, 0.3636, 0.7273, patched=7, failed=1, held=3, out_of_scope=2),
        "azure": rollup(1, 1.0, 1.0, held=1),
    }
    assert list(summary["by_cloud"]) == ["aws", "azure"]


def test_host_records_final_states_and_reasons(tenant, fleet, stages):
    doc = build(tenant, inventory=fleet, preflight=evaluate_preflight(tenant, fleet).to_dict(), stages=stages)
    hosts = hosts_by_id(doc)
    assert {h: (r["final_state"], r["reason"]) for h, r in hosts.items()} == {
        "i-n1": (o.PATCHED, None),
        "i-n2": (o.PATCHED, None),
        "i-n3": (o.FAILED, "patch install failed (2 patch(es) failed)"),
        "i-n4": (o.HELD, "ssm agent ConnectionLost"),
        "i-n5": (o.PATCHED, None),
        "i-o2": (o.OUT_OF_SCOPE, "no patch baseline for rhel_9"),
        "i-s1": (o.PATCHED, None),
        "i-s2": (o.PATCHED, None),
        "i-p1": (o.PATCHED, None),
        "i-p2": (o.PATCHED, None),
        "i-p3": (o.HELD, "ssm agent not registered"),
        "i-p4": (o.HELD, "backup snapshot failed: quota exceeded"),
        "az-1": (o.HELD, "arc agent Disconnected"),
        "i-o1": (o.OUT_OF_SCOPE, "environment tag 'sandbox' matches no environment"),
    }
    failed = hosts["i-n3"]
    assert failed["command_id"] == "cmd-nonprod" and failed["backup_id"] == "ami-0123456789abcdef0"
    assert (
        failed["missing_before"],
        failed["missing_after"],
        failed["failed_after"],
        failed["installed_after"],
    ) == (3, 2, 2, 400)
    patched = hosts["i-p1"]
    assert (patched["os_family"], patched["criticality"], patched["environment"]) == (
        "windows_2019",
        "high",
        "prod",
    )
    assert (patched["missing_before"], patched["missing_after"], patched["installed_after"]) == (1, 0, 402)
    never_touched = hosts["i-p3"]
    assert never_touched["command_id"] is None and never_touched["backup_id"] is None
    assert never_touched["missing_after"] is None and never_touched["failed_after"] is None
    assert never_touched["agent_status"] == "NotRegistered"
    azure = hosts["az-1"]
    assert (azure["cloud"], azure["account"], azure["region"]) == (
        "azure",
        "6f1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a10",
        "eastus",
    )
    # Sorted by environment name (no environment last), then host name.
    assert [h["host_id"] for h in doc["hosts"]] == [
        "i-n1",
        "i-n2",
        "i-n3",
        "i-n4",
        "i-n5",
        "i-o2",  # alpha-dev-app-01..05, alpha-dev-rhel-01
        "az-1",
        "i-p2",
        "i-p3",
        "i-p4",
        "i-p1",  # alpha-prd-arc-01, -web-02..04, -win-01
        "i-s1",
        "i-s2",
        "i-o1",  # no environment: last
    ]


def test_stage_entries(tenant, fleet, stages):
    doc = build(tenant, inventory=fleet, preflight=evaluate_preflight(tenant, fleet).to_dict(), stages=stages)
    nonprod, staging, prod = doc["stages"]
    assert nonprod == {
        "environment": "nonprod",
        "status": "succeeded",
        "started_at": "2026-11-22T03:00:00+00:00",
        "finished_at": "2026-11-22T03:40:00+00:00",
        "hosts_targeted": 4,
        "hosts_succeeded": 3,
        "hosts_failed": 1,
        "hosts_not_assessed": 0,
        "backups": 4,
        "command_ids": ["cmd-nonprod"],
        "health": None,  # no health gate configured
        "canary": None,  # no canary, window or approval in nonprod
        "windows": None,
        "approval": None,
        "reason": None,
    }
    assert (staging["hosts_targeted"], staging["hosts_succeeded"], staging["hosts_failed"]) == (2, 2, 0)
    # i-p4 never got a command or a backup.
    assert (prod["hosts_targeted"], prod["hosts_succeeded"], prod["hosts_failed"], prod["backups"]) == (
        2,
        2,
        0,
        2,
    )


def test_document_header_plan_and_events(tenant, fleet, stages):
    doc = build(tenant, inventory=fleet, preflight=evaluate_preflight(tenant, fleet).to_dict(), stages=stages)
    assert doc["tenant"] == {
        "id": "cu_test",
        "display_name": "Test Credit Union",
        "frameworks": ["soc2", "pci_dss"],
    }
    assert doc["cycle"] == {**_cycle(), "outcome": "partial"}
    assert doc["plan"] == {"hash": PLAN_HASH, **PLAN}
    assert [(e["at"][11:16], e["action"]) for e in doc["events"]] == [
        ("02:00", "plan.frozen"),
        ("02:05", "inventory.collected"),
        ("02:05", "preflight.held"),
        ("03:00", "stage.verified"),
        ("05:10", "stage.verified"),
    ]
    assert len(doc["events"]) == len(EVENTS)


def test_events_without_a_time_sort_first_and_no_plan_still_has_the_hash(tenant):
    events = [
        {"at": "2026-11-22T02:00:00+00:00", "action": "b"},
        {"action": "a"},
        {"at": None, "action": "c"},
    ]
    doc = build(tenant, inventory=None, preflight=None, stages={}, events=events, plan=None)
    assert [e["action"] for e in doc["events"]] == ["a", "c", "b"]
    assert doc["plan"] == {"hash": PLAN_HASH}


# --- (b) staging fails, so prod never runs ---------------------------------------------------------------


def test_failed_staging_leaves_prod_not_run_with_a_reason(tenant, fleet, stages, make_stage, stage_host):
    staging_hosts = {
        "i-s1": stage_host(o.PATCHED, command_id="cmd-staging"),
        "i-s2": stage_host(o.FAILED, "patch install failed (2 patch(es) failed)", command_id="cmd-staging"),
    }
    failed_staging = make_stage(tenant, "staging", staging_hosts, hour=4)
    assert failed_staging["status"] == "failed"  # 10% of 2 targets tolerates no failure
    run_stages = {"nonprod": stages["nonprod"], "staging": failed_staging, "prod": None}
    doc = build(
        tenant, inventory=fleet, preflight=evaluate_preflight(tenant, fleet).to_dict(), stages=run_stages
    )
    check_invariants(doc, fleet)

    assert doc["cycle"]["outcome"] == "failed"
    assert [(s["environment"], s["status"], s["reason"]) for s in doc["stages"]] == [
        ("nonprod", "succeeded", None),
        ("staging", "failed", "1 of 2 hosts failed; max errors 0"),
        ("prod", "not_run", "stage staging failed"),
    ]
    prod_entry = doc["stages"][2]
    assert (prod_entry["started_at"], prod_entry["hosts_targeted"], prod_entry["command_ids"]) == (
        None,
        0,
        [],
    )

    hosts = hosts_by_id(doc)
    for host_id in ("i-p1", "i-p2", "i-p4"):  # eligible in prod, never reached
        assert (hosts[host_id]["final_state"], hosts[host_id]["reason"]) == (
            o.NOT_RUN,
            "stage staging failed",
        )
        assert hosts[host_id]["command_id"] is None
    assert hosts["i-p3"]["final_state"] == o.HELD and hosts["az-1"]["final_state"] == o.HELD
    assert hosts["i-s2"]["final_state"] == o.FAILED

    summary = doc["summary"]
    # After: patched i-n1, i-n2, i-n5, i-s1; held/not-run and compliant before: i-n4, i-p2, az-1. 7 of 12.
    assert {k: v for k, v in summary.items() if not isinstance(v, dict)} == {
        "hosts_total": 14,
        **rollup(12, 0.4167, 0.5833, patched=4, failed=2, held=3, not_run=3, out_of_scope=2),
    }
    assert summary["by_environment"]["prod"] == rollup(5, 0.4, 0.4, held=2, not_run=3)
    assert summary["by_environment"]["staging"] == rollup(2, 0.5, 0.5, patched=1, failed=1)


def test_a_stage_missing_without_a_failure_before_it(tenant, fleet, stages):
    run_stages = {"nonprod": stages["nonprod"], "staging": stages["staging"]}  # prod's record never written
    doc = build(
        tenant, inventory=fleet, preflight=evaluate_preflight(tenant, fleet).to_dict(), stages=run_stages
    )
    check_invariants(doc, fleet)
    reason = "an earlier stage failed or this stage did not complete"
    assert (doc["stages"][2]["status"], doc["stages"][2]["reason"]) == ("not_run", reason)
    assert hosts_by_id(doc)["i-p1"]["reason"] == reason
    assert doc["cycle"]["outcome"] == "failed"


# --- (c) pre-flight halts the scope -------------------------------------------------------------------------


def test_preflight_halted_run(make_tenant, fleet):
    strict = make_tenant(preflight={"max_held_share": 0.2})
    preflight = evaluate_preflight(strict, fleet).to_dict()
    assert preflight["halted"] is True and preflight["held_share"] == 0.25
    doc = build(strict, inventory=fleet, preflight=preflight, stages={})
    check_invariants(doc, fleet)

    assert doc["cycle"]["outcome"] == "failed"
    blocked = "pre-flight halted the scope: 25% of hosts held"
    assert [(s["status"], s["reason"]) for s in doc["stages"]] == [("not_run", blocked)] * 3
    assert all(s["hosts_targeted"] == 0 and s["command_ids"] == [] for s in doc["stages"])
    states = Counter((h["final_state"], h["reason"]) for h in doc["hosts"])
    assert states[(o.NOT_RUN, blocked)] == 9  # every eligible host
    assert states[(o.HELD, "ssm agent ConnectionLost")] == 1
    summary = doc["summary"]
    # Nothing was patched: compliance after is exactly compliance before (5 of 12).
    assert {k: v for k, v in summary.items() if not isinstance(v, dict)} == {
        "hosts_total": 14,
        **rollup(12, 0.4167, 0.4167, held=3, not_run=9, out_of_scope=2),
    }


# --- (d) dry run ------------------------------------------------------------------------------------------


def test_dry_run_is_planned_with_every_stage_skipped(tenant, fleet):
    preflight = evaluate_preflight(tenant, fleet).to_dict()
    doc = build(tenant, inventory=fleet, preflight=preflight, stages={}, dry_run=True)
    check_invariants(doc, fleet)
    assert doc["cycle"]["outcome"] == "planned"
    assert doc["cycle"]["dry_run"] is True
    assert [(s["environment"], s["status"], s["reason"]) for s in doc["stages"]] == [
        (env, "skipped", "dry run: plan only") for env in ENVS
    ]
    hosts = hosts_by_id(doc)
    assert (hosts["i-n1"]["final_state"], hosts["i-n1"]["reason"]) == (o.NOT_RUN, "dry run: plan only")
    assert hosts["i-n4"]["final_state"] == o.HELD
    assert doc["summary"]["patched"] == 0 and doc["summary"]["not_run"] == 9


def test_dry_run_is_planned_even_when_the_gate_would_halt(make_tenant, fleet):
    strict = make_tenant(preflight={"max_held_share": 0.0})
    doc = build(
        strict,
        inventory=fleet,
        preflight=evaluate_preflight(strict, fleet).to_dict(),
        stages={},
        dry_run=True,
    )
    assert doc["cycle"]["outcome"] == "planned"
    assert {s["status"] for s in doc["stages"]} == {"skipped"}


def test_dry_run_without_inventory(tenant):
    doc = build(tenant, inventory=None, preflight=None, stages={}, dry_run=True)
    check_invariants(doc, None)
    assert doc["cycle"]["outcome"] == "planned"
    assert doc["hosts"] == []
    assert {s["status"] for s in doc["stages"]} == {"skipped"}


# --- (e) inventory never ran ------------------------------------------------------------------------------


def test_inventory_never_ran(tenant):
    doc = build(tenant, inventory=None, preflight=None, stages={env: None for env in ENVS})
    check_invariants(doc, None)
    assert doc["cycle"]["outcome"] == "failed"
    assert doc["hosts"] == []
    assert [(s["status"], s["reason"]) for s in doc["stages"]] == [
        ("not_run", "inventory or pre-flight did not complete")
    ] * 3
    summary = doc["summary"]
    assert (summary["hosts_total"], summary["in_scope"]) == (0, 0)
    # An empty scope reports full compliance (the current convention for a zero denominator).
    assert (summary["compliance_before"], summary["compliance_after"]) == (1.0, 1.0)
    assert list(summary["by_environment"]) == ENVS
    assert all(r["in_scope"] == 0 for r in summary["by_environment"].values())
    assert summary["by_cloud"] == {}


def test_inventory_without_preflight_leaves_every_host_not_run(tenant, fleet):
    doc = build(tenant, inventory=fleet, preflight=None, stages={})
    check_invariants(doc, fleet)
    assert doc["cycle"]["outcome"] == "failed"
    assert {(h["final_state"], h["reason"]) for h in doc["hosts"]} == {(o.NOT_RUN, "pre-flight did not run")}
    assert doc["summary"]["not_run"] == 14 and doc["summary"]["in_scope"] == 14
    assert {s["reason"] for s in doc["stages"]} == {"inventory or pre-flight did not complete"}


# --- selection and compliance details ---------------------------------------------------------------------


def test_run_limited_to_nonprod(tenant, fleet, stages):
    preflight = evaluate_preflight(tenant, fleet, ["nonprod"]).to_dict()
    doc = build(
        tenant,
        inventory=fleet,
        preflight=preflight,
        stages={"nonprod": stages["nonprod"]},
        environments=["nonprod"],
    )
    check_invariants(doc, fleet)
    assert [s["environment"] for s in doc["stages"]] == ["nonprod"]
    assert list(doc["summary"]["by_environment"]) == ["nonprod"]
    hosts = hosts_by_id(doc)
    assert (hosts["i-p1"]["final_state"], hosts["i-p1"]["reason"]) == (
        o.OUT_OF_SCOPE,
        "environment prod not selected for this run",
    )
    # nonprod's failed host and held host leave the cycle partial, though its one stage succeeded.
    assert doc["cycle"]["outcome"] == "partial"
    assert doc["summary"]["in_scope"] == 5 and doc["summary"]["out_of_scope"] == 9


@pytest.mark.parametrize(
    ("columns", "compliant_before"),
    [
        pytest.param({"missing_count": 0, "failed_count": 0}, True, id="clean-scan"),
        pytest.param({"missing_count": 1, "failed_count": 0}, False, id="missing"),
        pytest.param({"missing_count": 0, "failed_count": 1}, False, id="failed-before"),
        pytest.param({"missing_count": 0, "last_patch_operation": "Install"}, True, id="clean-install"),
        pytest.param({"missing_count": 0, "last_patch_operation": None}, False, id="never-scanned"),
    ],
)
def test_compliance_before_of_a_held_host(tenant, host_row, columns, compliant_before):
    # A held host keeps its state, so it is compliant after exactly when it was compliant before.
    inventory = [host_row("i-1", agent_status="ConnectionLost", agent_online=False, **columns)]
    doc = build(
        tenant, inventory=inventory, preflight=evaluate_preflight(tenant, inventory).to_dict(), stages={}
    )
    expected = 1.0 if compliant_before else 0.0
    assert (doc["summary"]["compliance_before"], doc["summary"]["compliance_after"]) == (expected, expected)


def test_failed_or_non_compliant_hosts_are_not_compliant_after_even_if_they_were_before(
    tenant, host_row, make_stage, stage_host
):
    inventory = [host_row(f"i-{n}", missing_count=0) for n in range(4)]
    hosts = {
        "i-0": stage_host(o.PATCHED),
        "i-1": stage_host(o.PATCHED),
        "i-2": stage_host(o.PATCHED),
        "i-3": stage_host(o.NON_COMPLIANT, "1 approved patch(es) still missing"),
    }
    doc = build(
        tenant,
        inventory=inventory,
        preflight=evaluate_preflight(tenant, inventory).to_dict(),
        stages={"nonprod": make_stage(tenant, "nonprod", hosts)},
        environments=["nonprod"],
    )
    check_invariants(doc, inventory)
    summary = doc["summary"]
    assert (summary["compliance_before"], summary["compliance_after"]) == (1.0, 0.75)
    assert (summary["non_compliant"], summary["failed"]) == (1, 0)
    assert doc["stages"][0]["hosts_failed"] == 1
    assert doc["cycle"]["outcome"] == "partial"  # 25% of 4 tolerates the one non-compliant host


def test_by_cloud_is_sorted_by_cloud_name(tenant, host_row):
    inventory = [
        host_row("g-1", cloud="gcp", missing_count=0),
        host_row("a-1", cloud="azure", agent_online=False, agent_status="Disconnected"),
        host_row("i-1", cloud="aws", environment=None),
        host_row("i-2", cloud="aws"),
    ]
    doc = build(
        tenant, inventory=inventory, preflight=evaluate_preflight(tenant, inventory).to_dict(), stages={}
    )
    check_invariants(doc, inventory)
    assert list(doc["summary"]["by_cloud"]) == ["aws", "azure", "gcp"]
    assert doc["summary"]["by_cloud"]["aws"]["out_of_scope"] == 1
    assert doc["summary"]["by_cloud"]["azure"]["held"] == 1
    assert doc["summary"]["by_cloud"]["gcp"]["compliance_before"] == 1.0


def test_a_stage_its_approver_rejected_leaves_the_cycle_partial_not_failed(tenant, fleet, stages):
    rejected = {
        "environment": "prod",
        "status": "rejected",
        "reason": "not approved: rejected by jlee at 2026-11-23T14:00:00+00:00",
        "hosts": {},
        "approval": {"decision": "rejected", "by": "jlee", "at": "2026-11-23T14:00:00+00:00"},
    }
    doc = build(
        tenant,
        inventory=fleet,
        preflight=evaluate_preflight(tenant, fleet).to_dict(),
        stages={**stages, "prod": rejected},
    )
    assert doc["cycle"]["outcome"] == "partial"
    prod = next(s for s in doc["stages"] if s["environment"] == "prod")
    assert prod["status"] == "rejected" and prod["approval"]["by"] == "jlee"
    prod_hosts = [h for h in doc["hosts"] if h["environment"] == "prod" and h["final_state"] == o.NOT_RUN]
    assert prod_hosts and all(h["reason"].startswith("not approved: rejected by jlee") for h in prod_hosts)


# --- not_assessed (evidence schema 1.1) --------------------------------------------------------------------


@pytest.fixture
def unassessed_run(tenant, host_row, make_stage, stage_host):
    """Five nonprod hosts, all compliant before: three patched, one whose assessment could not be read,
    one GCP host patched at a newer version than the plan froze (planned vs installed read back)."""
    inventory = [host_row(f"i-{n}", name=f"dev-{n}", missing_count=0) for n in range(4)]
    inventory.append(host_row("g-1", name="dev-gce", cloud="gcp", missing_count=0))
    unread = stage_host(o.NOT_ASSESSED, "patch state could not be read: AccessDeniedException")
    versions = [
        {"patch_id": "p-1", "package": "openssl", "planned": "1:3.0.7-27.el9", "installed": "1:3.0.7-28.el9"},
        {"patch_id": "p-2", "kb": "5041578", "planned": "5041578", "installed": None, "status": "absent"},
    ]
    hosts = {
        "i-0": stage_host(),
        "i-1": stage_host(),
        "i-2": stage_host(),
        "i-3": unread,
        "g-1": stage_host(installed_versions=versions),
    }
    stages = {"nonprod": make_stage(tenant, "nonprod", hosts)}
    plan = {
        **PLAN,
        "baselines": [
            {
                "os_family": "amazon_linux_2",
                "cutoff": "2026-11-15",
                "sources": ["ssm:DescribeAvailablePatches"],
                "notes": ["1 catalog entry not approved: no release or first-detection date to age by (x)"],
            }
        ],
        "approved": {
            "amazon_linux_2": [
                {
                    "id": "ALAS2-2026-0001",
                    "package": "openssl",
                    "version": "1.0.2k-24.amzn2.0.14",
                    "arch": "x86_64",
                    "epoch": "1",
                    "source": "ssm:DescribeAvailablePatches",
                    "released": "2026-11-01",
                    "released_basis": "first_seen",
                }
            ]
        },
    }
    doc = build(
        tenant,
        inventory=inventory,
        preflight=evaluate_preflight(tenant, inventory).to_dict(),
        stages=stages,
        environments=["nonprod"],
        plan=plan,
    )
    return inventory, doc


def test_a_not_assessed_host_is_counted_on_its_own_and_never_compliant(unassessed_run):
    inventory, doc = unassessed_run
    check_invariants(doc, inventory)
    record = hosts_by_id(doc)["i-3"]
    assert (record["final_state"], record["reason"]) == (
        o.NOT_ASSESSED,
        "patch state could not be read: AccessDeniedException",
    )
    summary = doc["summary"]
    # All five were compliant by the inventory before; the unassessed one counts compliant neither before
    # nor after: its cloud could not say what it is missing.
    assert {k: v for k, v in summary.items() if not isinstance(v, dict)} == {
        "hosts_total": 5,
        **rollup(5, 0.8, 0.8, patched=4, not_assessed=1),
    }
    assert summary["by_environment"]["nonprod"]["not_assessed"] == 1
    assert summary["by_cloud"] == {
        "aws": rollup(4, 0.75, 0.75, patched=3, not_assessed=1),
        "gcp": rollup(1, 1.0, 1.0, patched=1),
    }
    # Hosts were left unassessed: the cycle cannot claim it completed.
    assert doc["cycle"]["outcome"] == "partial"
    stage = doc["stages"][0]
    assert (stage["hosts_succeeded"], stage["hosts_failed"], stage["hosts_not_assessed"]) == (4, 0, 1)


def test_host_records_carry_planned_against_installed_versions(unassessed_run):
    _, doc = unassessed_run
    hosts = hosts_by_id(doc)
    assert hosts["i-0"]["installed_versions"] is None  # SSM pinned the versions: nothing to read back
    assert hosts["g-1"]["installed_versions"] == [
        {"patch_id": "p-1", "package": "openssl", "planned": "1:3.0.7-27.el9", "installed": "1:3.0.7-28.el9"},
        {"patch_id": "p-2", "kb": "5041578", "planned": "5041578", "installed": None, "status": "absent"},
    ]


def test_host_record_keys_are_the_csv_columns(unassessed_run):
    from patchcycle.reports.tables import HOST_COLUMNS

    _, doc = unassessed_run
    assert all(tuple(h) == HOST_COLUMNS for h in doc["hosts"])


def test_the_document_validates_against_the_schema_it_declares(unassessed_run):
    import jsonschema

    from patchcycle.domain.evidence import evidence_schema_path

    _, doc = unassessed_run
    assert doc["schema_version"] == EVIDENCE_SCHEMA_VERSION == "1.4"
    doc["cycle"]["generated_by"] = "patchcycle test"  # the operator adds it
    doc["events"] = []  # this module's events are abbreviated (no actor, result or details)
    schema = json.loads(evidence_schema_path(doc["schema_version"]).read_text())
    jsonschema.validate(doc, schema, format_checker=jsonschema.FormatChecker())
    assert doc["plan"]["baselines"][0]["sources"] == ["ssm:DescribeAvailablePatches"]
    assert doc["plan"]["approved"]["amazon_linux_2"][0]["released_basis"] == "first_seen"


def test_a_risk_acceptance_naming_an_unassessed_host_excepts_it_and_keeps_why(unassessed_run):
    """The exception rules treat not_assessed like any other unpatched state (its missing patches are
    unknown, so only an acceptance that names the host applies); the report keeps the previous state."""
    from patchcycle.domain.exceptions import apply_exceptions

    _, doc = unassessed_run
    records, report = apply_exceptions(doc["hosts"], None, _register_naming("i-3"), _date("2026-11-22"))
    assert hosts_by_id({"hosts": records})["i-3"]["final_state"] == o.EXCEPTED
    assert [(a.host_id, a.previous_state) for a in report.applications] == [("i-3", o.NOT_ASSESSED)]


def _date(text: str):
    import datetime as dt

    return dt.date.fromisoformat(text)


def _register_naming(host_id: str):
    from patchcycle.config.exceptions import ExceptionRegister

    return ExceptionRegister.model_validate(
        {
            "tenant_id": "cu_test",
            "exceptions": [
                {
                    "id": "EXC-2026-001",
                    "ticket": "CHG0001",
                    "hosts": [host_id],
                    "justification": "assessment access is being restored under CHG0001",
                    "compensating_control": "host isolated in a quarantine subnet",
                    "risk_rating": "Medium",
                    "requested_by": "sre-platform",
                    "approver": "Dana Whitfield",
                    "approver_role": "CISO",
                    "approved_on": "2026-11-01",
                    "expires_on": "2026-12-31",
                }
            ],
        }
    )


def test_a_refused_run_is_its_own_outcome_with_its_reasons_and_validates(tenant):
    """A run refused before any change (a typo in its conf, a late scheduled run) still has a document:
    no host, no stage, the reasons, and the outcome refused, never failed or planned."""
    import jsonschema

    from patchcycle.domain.evidence import evidence_schema_path

    reasons = ["conf key 'dryrun' is not a parameter of patch_cycle__cu_test; did you mean 'dry_run'?"]
    doc = build_evidence_document(
        tenant=tenant,
        cycle={**_cycle(), "refused_reasons": reasons, "generated_by": "patchcycle test"},
        plan=PLAN,
        inventory=None,
        preflight=None,
        stages={},
        selected_environments=[],
        events=[],
    )
    check_invariants(doc, None)
    assert doc["cycle"]["outcome"] == "refused" and doc["cycle"]["refused_reasons"] == reasons
    assert doc["stages"] == [] and doc["hosts"] == []
    schema = json.loads(evidence_schema_path(doc["schema_version"]).read_text())
    jsonschema.validate(doc, schema, format_checker=jsonschema.FormatChecker())


def test_a_stage_row_counts_every_cloud_s_hosts_it_targeted(tenant, host_row, make_stage, stage_host):
    """An Arc machine and a GCE instance have no SSM command id; they were targeted all the same (the
    report once read "targeted 6, succeeded 7")."""
    inventory = [
        host_row("i-0", name="dev-ec2", missing_count=1),
        host_row("arc-1", name="dev-arc", cloud="azure", missing_count=1),
        host_row("g-1", name="dev-gce", cloud="gcp", missing_count=1),
    ]
    hosts = {
        "i-0": stage_host(),
        "arc-1": stage_host(command_id=None, operation="https://management.azure.com/op/1"),
        "g-1": stage_host(o.FAILED, "the patch job failed on the instance", command_id=None),
    }
    doc = build(
        tenant,
        inventory=inventory,
        preflight=evaluate_preflight(tenant, inventory).to_dict(),
        stages={"nonprod": make_stage(tenant, "nonprod", hosts)},
        environments=["nonprod"],
    )
    check_invariants(doc, inventory)
    (stage,) = doc["stages"]
    assert (stage["hosts_targeted"], stage["hosts_succeeded"], stage["hosts_failed"]) == (3, 2, 1)


def _pack(outcome: str, after: float, finished: str, dry_run: bool = False) -> dict:
    return {
        "cycle": {"outcome": outcome, "dry_run": dry_run, "finished_at": finished},
        "summary": {"compliance_before": 0.5, "compliance_after": after},
    }


def test_the_trend_counts_only_runs_that_patched_and_takes_each_cycles_latest() -> None:
    from patchcycle.domain.evidence import compliance_trend

    store = {
        "cycles/2026-09-27/runs/scheduled__x/pack/evidence.json": _pack("completed", 0.9, "2026-09-27T05"),
        # A later manual re-run of October sorts before the scheduled run by key, after it by time.
        "cycles/2026-10-25/runs/scheduled__a/pack/evidence.json": _pack("partial", 0.8, "2026-10-25T05"),
        "cycles/2026-10-25/runs/manual__b/pack/evidence.json": _pack("completed", 0.95, "2026-10-26T09"),
        # A dry run and a refused run after it say nothing about the fleet.
        "cycles/2026-10-25/runs/manual__c/pack/evidence.json": _pack("planned", 0.1, "2026-10-27T09", True),
        "cycles/2026-10-25/runs/manual__d/pack/evidence.json": _pack("refused", 0.1, "2026-10-28T09"),
        # November had only a refusal: no point; December is this cycle, never its own trend.
        "cycles/2026-11-22/runs/scheduled__e/pack/evidence.json": _pack("refused", 0.0, "2026-11-23T09"),
        "cycles/2026-12-27/runs/scheduled__f/pack/evidence.json": _pack("completed", 1.0, "2026-12-27T05"),
        "cycles/2026-10-25/runs/manual__b/inventory.try-1.json": {},
    }
    trend = compliance_trend("2026-12-27", store, store.__getitem__)
    assert [(p["cycle_date"], p["compliance_after"], p["outcome"]) for p in trend] == [
        ("2026-09-27", 0.9, "completed"),
        ("2026-10-25", 0.95, "completed"),
    ]
    assert compliance_trend("2026-12-27", store, store.__getitem__, cycles=1)[0]["cycle_date"] == "2026-10-25"


def test_each_host_sent_a_patch_names_the_plan_ids_it_took_and_when_its_cloud_says_it_ended() -> None:
    from patchcycle.domain.evidence import host_records

    plan = {
        "approved": {
            "amazon_linux_2": [
                {"id": "ALAS2-2026-1", "kernel_update": False},
                {"id": "ALAS2-2026-2", "kernel_update": True},
            ]
        }
    }
    inventory = [
        {"host_id": f"i-{n}", "name": f"web-{n}", "environment": "prod", "os_family": "amazon_linux_2"}
        for n in (1, 2, 3)
    ]
    preflight = {"decisions": [{"host_id": f"i-{n}", "verdict": "eligible"} for n in (1, 2, 3)]}
    end = dt.datetime(2026, 11, 22, 3, 4, tzinfo=dt.UTC)
    stage = {
        "hosts": {
            # Records keep the SDK's datetime as str(): a space, not a "T".
            "i-1": {"final_state": "patched", "patch_state": {"OperationEndTime": str(end)}},
            # Its kernel was held by the sensor gate: the kernel update was never sent.
            "i-2": {
                "final_state": "non_compliant",
                "install_variant": "no_kernel",
                "patch_state": {"OperationEndTime": None},
            },
            "i-3": {"final_state": "held", "reason": "no completed backup"},
        }
    }
    records = {r["host_id"]: r for r in host_records(inventory, preflight, {"prod": stage}, {}, plan)}
    assert (records["i-1"]["patch_ids"], records["i-1"]["patched_at"]) == (
        ["ALAS2-2026-1", "ALAS2-2026-2"],
        "2026-11-22T03:04:00+00:00",
    )
    assert (records["i-2"]["patch_ids"], records["i-2"]["patched_at"]) == (["ALAS2-2026-1"], None)
    assert (records["i-3"]["patch_ids"], records["i-3"]["patched_at"]) == (None, None)
