"""Cycles on the deployment's real processes (PostgreSQL, Redis, api-server, scheduler, dag-processor,
triggerer, a Celery worker) against fleetsim, driven through the REST API as an operator would:

- twelve tenants' cycles at once, one of which fails: the other eleven complete;
- a prod approval (Airflow 3.3 human-in-the-loop) that waits for a person, then records who;
- clearing every task of that finished run (each runs again) changes nothing in any cloud and writes
  evidence only beside what exists.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from devtools.local import fleetsim_get, running_fleetsim
from devtools.stack import ADMIN_USER, Stack, running_stack
from devtools.tenant_fleet import bucket, tenant_id, write_tenants
from devtools.tenant_fleet import scenario as tenant_scenario
from tests.e2e.conftest import changes

pytestmark = [
    pytest.mark.integration,
    # Its own process stack (PostgreSQL, Redis, Airflow), apart from test_stack.py's: they run side by side.
    pytest.mark.xdist_group("stack-cycles"),
    pytest.mark.timeout(3600),
]

REPO = Path(__file__).resolve().parents[2]
E2E = REPO / "tests" / "e2e"
TENANTS = 12
FAILING = 7
ALPHA = "patch_cycle__cu_alpha"
ALPHA_BUCKET = "patchcycle-evidence-cu-alpha"
NOV = "2026-11-22T02:00:00Z"
CONF = {
    "soak_hours_override": 0,
    "soak_override_reason": "deploy test: no soak",
    "window_override_reason": "deploy test: prod outside its change window",
}
ZERO_DAY = "zero_day__cu_alpha"
ZERO_DAY_POLICY = {
    "emergency_soak_hours": 0,
    "emergency_change_window": "patch_outside_window",
    "approver": "J. Alvarez",
    "approver_role": "CISO",
    "approved_on": "2026-10-01",
    "automatic": False,
}
ZERO_DAY_FIX = {
    "id": "KB5049999",
    "os_family": "windows_2019",
    "title": "2026-11 Out-of-band Security Update for Windows Server 2019",
    "classification": "SecurityUpdates",
    "severity": "Critical",
    "cves": ["CVE-2026-21001"],
    "released": "2026-11-24",
}
# AWS calls that change something in a cloud (reads and evidence writes are not among them).
CHANGING_CALLS = (
    "aws.ssm.SendCommand",
    "aws.ec2.CreateImage",
    "aws.ec2.CreateTags",
    "aws.ec2.CreateSnapshot",
)


def s3(url: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


def objects(url: str, name: str) -> dict[str, str]:
    client = s3(url)
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=name, Key=obj["Key"])["Body"].read()
            out[obj["Key"]] = hashlib.sha256(body).hexdigest()
    return out


def evidence(url: str, name: str, run_id: str) -> dict[str, Any]:
    import json

    client = s3(url)
    segment = run_id.replace(":", "_").replace("+", "_")
    keys = [k for k in objects(url, name) if f"/runs/{segment}/pack" in k and k.endswith("evidence.json")]
    return json.loads(client.get_object(Bucket=name, Key=sorted(keys)[-1])["Body"].read())


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[tuple[Stack, str]]:
    work = tmp_path_factory.mktemp("cycles")
    tenants = write_tenants(work / "tenants", TENANTS)
    alpha = yaml.safe_load((E2E / "tenants" / "aws_only" / "cu_alpha.yaml").read_text())
    for env in alpha["environments"]:
        env["approval_required"] = env["name"] == "prod"
    alpha["risk"] = {"zero_day": ZERO_DAY_POLICY}
    (tenants / "cu_alpha.yaml").write_text(yaml.safe_dump(alpha, sort_keys=False))
    small = yaml.safe_load((E2E / "scenarios" / "alpha_small.yaml").read_text())
    fleet = tenant_scenario(TENANTS, [FAILING], extra_tenants=small["tenants"])
    # Released after the November cutoff: no monthly run approves it; the zero-day cycle for its CVE does.
    fleet["patch_catalog"].append(ZERO_DAY_FIX)
    scenario = work / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(fleet, sort_keys=False))
    with (
        running_fleetsim(scenario, work / "fleetsim") as url,
        running_stack(
            work,
            url,
            tenants_dir=tenants,
            poll_seconds=0.5,
            worker_concurrency=6,
            extra_env={"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"},
            expect_dags=[ALPHA, *(f"patch_cycle__{tenant_id(n)}" for n in range(1, TENANTS + 1))],
            timeout=300,
        ) as stack,
    ):
        yield stack, url


def test_twelve_tenants_in_parallel_one_fails_and_eleven_complete(deployment) -> None:
    stack, url = deployment
    client = stack.client
    dags = [f"patch_cycle__{tenant_id(n)}" for n in range(1, TENANTS + 1)]
    for dag_id in dags:
        client.unpause(dag_id)
    started = time.monotonic()
    runs = {dag_id: client.trigger(dag_id, CONF, logical_date=NOV)["dag_run_id"] for dag_id in dags}
    # A generous bound for a shared 2-core machine: every plan now also waits (deferred) for its SSM
    # Scan against the tenant's baseline before freezing, one more deferral per tenant.
    finished = {dag_id: client.wait_for_run(dag_id, run, timeout=3000) for dag_id, run in runs.items()}
    elapsed = time.monotonic() - started
    print(f"twelve tenants' cycles in parallel: {elapsed:.0f}s")

    failing = f"patch_cycle__{tenant_id(FAILING)}"
    assert finished[failing]["state"] == "failed"
    assert {d: r["state"] for d, r in finished.items() if d != failing} == dict.fromkeys(
        set(dags) - {failing}, "success"
    )
    # They ran side by side: every run started before any of them ended.
    assert max(r["start_date"] for r in finished.values()) < min(r["end_date"] for r in finished.values())
    truth = fleetsim_get(url, "/fleetsim/ground-truth")["hosts"]
    for number in range(1, TENANTS + 1):
        doc = evidence(url, bucket(number), runs[f"patch_cycle__{tenant_id(number)}"])
        hosts = [h for h in truth if h["tenant"] == tenant_id(number)]
        if number == FAILING:
            assert doc["cycle"]["outcome"] == "failed"
            stages = {s["environment"]: s["status"] for s in doc["stages"]}
            assert stages == {"nonprod": "failed", "staging": "not_run", "prod": "not_run"}
            # Its later stages were never touched.
            assert all(
                not any(a["action"] == "ssm.install" for a in h["actions"])
                for h in hosts
                if h["environment"] != "nonprod"
            )
        else:
            assert doc["cycle"]["outcome"] == "completed", (number, doc["summary"])
            assert {h["final_state"] for h in doc["hosts"]} == {"patched"}
            # Every host got the plan (patches released too late for the plan stay missing, by design).
            assert all(any(a["action"] == "ssm.install" for a in h["actions"]) for h in hosts), number
            assert all(not h["failed"] for h in hosts), number


@pytest.fixture(scope="module")
def approved_run(deployment) -> dict[str, Any]:
    stack, url = deployment
    client = stack.client
    client.unpause(ALPHA)
    run_id = client.trigger(ALPHA, CONF, logical_date=NOV)["dag_run_id"]
    request = wait_for_approval_request(client, run_id)
    assert client.task_states(ALPHA, run_id)["prod.approval"] == "awaiting_input"
    assert "cu_alpha" in request["subject"] and "plan" in request["body"]
    # Nothing in prod has been touched while the approval waits.
    prod = [h for h in fleetsim_get(url, "/fleetsim/ground-truth")["hosts"] if "-prd-" in h["name"]]
    assert all(changes(h) == [] for h in prod)
    client.respond_hitl(ALPHA, run_id, "prod.approval", ["Approve"])
    run = client.wait_for_run(ALPHA, run_id, timeout=900)
    return {"run": run, "run_id": run_id}


def wait_for_approval_request(
    client: Any, run_id: str, timeout: float = 900, dag_id: str = ALPHA
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = [
            d
            for d in client.hitl_details(dag_id, run_id)
            if d["task_instance"]["task_id"] == "prod.approval" and not d.get("response_received")
        ]
        if waiting:
            return waiting[0]
        if (state := client.dag_run(dag_id, run_id)["state"]) in ("success", "failed"):
            raise AssertionError(
                f"{run_id} ended {state} without asking: {client.task_states(dag_id, run_id)}"
            )
        time.sleep(2)
    raise TimeoutError(
        f"no approval request in {run_id} within {timeout:.0f}s: {client.task_states(dag_id, run_id)}"
    )


def test_a_prod_approval_waits_for_a_person_and_records_who_approved(deployment, approved_run) -> None:
    stack, url = deployment
    assert approved_run["run"]["state"] == "success"
    doc = evidence(url, ALPHA_BUCKET, approved_run["run_id"])
    prod = next(s for s in doc["stages"] if s["environment"] == "prod")
    assert prod["status"] == "succeeded"
    assert prod["approval"]["decision"] == "approved"
    assert prod["approval"]["by"] == ADMIN_USER and prod["approval"]["at"]
    assert prod["approval"]["plan_hash"] == doc["cycle"]["plan_hash"]
    answered = [e for e in doc["events"] if e["action"] == "approval.answered"]
    assert [e["details"]["by"] for e in answered] == [ADMIN_USER]
    # The approval counts for change management, as the catalog maps it.
    (cc81,) = [c for c in doc["controls"] if (c["framework"], c["control_id"]) == ("soc2", "CC8.1")]
    assert {e["event"]: e["count"] for e in cc81["evidenced"]}.get("approval.answered") == 1


def test_clearing_every_task_of_a_finished_run_changes_nothing(deployment, approved_run) -> None:
    stack, url = deployment
    client = stack.client
    run_id = approved_run["run_id"]
    calls = fleetsim_get(url, "/fleetsim/calls")["calls"]
    truth = {h["name"]: h["actions"] for h in fleetsim_get(url, "/fleetsim/ground-truth")["hosts"]}
    before = objects(url, ALPHA_BUCKET)
    ran = {
        t["task_id"]: t["try_number"]
        for t in client.task_instances(ALPHA, run_id)
        if t["state"] in ("success", "failed")
    }
    assert "prod.patch_aws" in ran and "prod.canary.patch_aws" in ran

    client.request(
        "POST",
        f"/api/v2/dags/{ALPHA}/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": run_id, "only_failed": False, "reset_dag_runs": True},
    )
    # The cleared approval asks again; the approver answers again (recorded beside the first answer).
    wait_for_approval_request(client, run_id)
    client.respond_hitl(ALPHA, run_id, "prod.approval", ["Approve"])
    run = client.wait_for_run(ALPHA, run_id, timeout=900)
    assert run["state"] == "success"

    again = {t["task_id"]: t["try_number"] for t in client.task_instances(ALPHA, run_id)}
    assert [t for t in ran if again[t] <= ran[t]] == [], "every task that ran ran again"
    # One exception, by design: a host whose backup failed gets a new backup on the next attempt (a
    # failed AMI is no backup and is never reused), so it may be recovered; it stays held if that fails.
    failed_backups = {
        name
        for name, actions in truth.items()
        if any(a["action"] == "ec2.create_image" and a["result"] == "failed" for a in actions)
    }
    after_calls = fleetsim_get(url, "/fleetsim/calls")["calls"]
    for name in CHANGING_CALLS:
        expected = calls.get(name, 0) + (len(failed_backups) if name == "aws.ec2.CreateImage" else 0)
        assert after_calls.get(name, 0) == expected, f"{name} was called again"
    after_truth = {h["name"]: h["actions"] for h in fleetsim_get(url, "/fleetsim/ground-truth")["hosts"]}
    for name in failed_backups:
        new = after_truth[name][len(truth[name]) :]
        assert [a["action"] for a in new] == ["ec2.create_image"], (name, new)
        after_truth[name] = truth[name]
    assert after_truth == truth, "a host was touched again"
    after = objects(url, ALPHA_BUCKET)
    assert {k: after[k] for k in before} == before, "evidence was overwritten"
    assert len(after) > len(before), "the second attempts' records were added"


SWEEP = "patchcycle_evidence_sweep"
ROLLBACK = "patchcycle_rollback__cu_alpha"


def pack_keys(url: str, run_id: str) -> list[str]:
    segment = run_id.replace(":", "_").replace("+", "_")
    return sorted(k for k in objects(url, ALPHA_BUCKET) if f"/runs/{segment}/pack" in k)


def test_a_run_marked_failed_mid_cycle_still_gets_its_evidence_and_a_rollback(
    deployment, approved_run
) -> None:
    """The issue's reproduction: "Mark run as failed" while staging is patched (here: while prod waits for
    its approval) skips evidence, distribute and outcome; the evidence sweep writes the pack from what
    the run recorded, and the rollback DAG restores a staging host from the backups that run took."""
    stack, url = deployment
    client = stack.client
    run_id = client.trigger(ALPHA, CONF, logical_date="2026-11-22T03:00:00Z")["dag_run_id"]
    wait_for_approval_request(client, run_id)
    client.request("PATCH", f"/api/v2/dags/{ALPHA}/dagRuns/{run_id}", json={"state": "failed"})
    assert client.dag_run(ALPHA, run_id)["state"] == "failed"
    assert client.task_states(ALPHA, run_id).get("evidence") != "success"
    assert pack_keys(url, run_id) == [], "the run wrote no pack of its own"

    client.unpause(SWEEP)
    sweep = client.trigger(SWEEP, {})["dag_run_id"]
    assert client.wait_for_run(SWEEP, sweep, timeout=900)["state"] == "success"
    doc = evidence(url, ALPHA_BUCKET, run_id)
    assert doc["cycle"]["run_id"] == run_id and doc["cycle"]["outcome"] == "failed"
    assert "ended failed" in doc["cycle"]["halted_reason"] and SWEEP in doc["cycle"]["halted_reason"]
    assert doc["cycle"]["triggered_by"] == ADMIN_USER
    stages = {s["environment"]: s["status"] for s in doc["stages"]}
    assert stages == {"nonprod": "succeeded", "staging": "succeeded", "prod": "not_run"}
    ended = [e for e in doc["events"] if e["action"] == "run.ended_without_evidence"]
    assert [(e["result"], e["details"]["run_id"]) for e in ended] == [("failed", run_id)]
    written = pack_keys(url, run_id)
    assert {k.rsplit("/", 1)[1] for k in written} >= {
        "report.pdf",
        "evidence.json",
        "hosts.csv",
        "manifest.json",
    }

    # Swept once: a later sweep finds the pack and writes nothing more.
    again = client.trigger(SWEEP, {})["dag_run_id"]
    assert client.wait_for_run(SWEEP, again, timeout=900)["state"] == "success"
    assert pack_keys(url, run_id) == written

    staging = sorted(
        h["name"]
        for h in doc["hosts"]
        if h["environment"] == "staging" and h["final_state"] == "patched" and h.get("backup_id")
    )
    assert staging, doc["summary"]
    client.unpause(ROLLBACK)
    conf = {"cycle": "2026-11-22", "hosts": staging[:1], "reason": "deploy test: roll back after an abort"}
    rollback = client.trigger(ROLLBACK, conf)["dag_run_id"]
    assert client.wait_for_run(ROLLBACK, rollback, timeout=900)["state"] == "success", client.task_states(
        ROLLBACK, rollback
    )
    host = next(h for h in fleetsim_get(url, "/fleetsim/ground-truth")["hosts"] if h["name"] == staging[0])
    assert any(a["action"] == "ec2.replace_root_volume" for a in host["actions"]), host["actions"]


def gate_waits(client: Any, dag_id: str, run_id: str, gate: str, timeout: float = 600) -> None:
    """Wait until the run's gate has looked at the other cycle and let it be (reschedule mode: it is
    ``up_for_reschedule`` between looks); the run's plan has not started meanwhile."""
    deadline = time.monotonic() + timeout
    while (states := client.task_states(dag_id, run_id)).get(gate) != "up_for_reschedule":
        assert states.get(gate) != "success", f"{dag_id} {run_id}: the gate let the run go: {states}"
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id} {run_id}: the gate has not waited within {timeout:.0f}s: {states}")
        time.sleep(1)
    assert states.get("plan") is None, states


def started(client: Any, dag_id: str, run_id: str, task_id: str) -> str:
    (ti,) = [t for t in client.task_instances(dag_id, run_id) if t["task_id"] == task_id]
    return ti["start_date"]


def test_the_monthly_and_zero_day_cycles_of_a_tenant_never_overlap(deployment) -> None:
    """Each waits for the other on the scheduler: a monthly run that comes due while the zero-day cycle runs
    waits at its gate until the zero-day run ends, and a zero-day run started while the monthly cycle runs
    waits until that ends. Each run is held at its prod approval (a person's answer) so the other is
    started while it is certainly live."""
    stack, url = deployment
    client = stack.client
    client.unpause(ALPHA)
    client.unpause(ZERO_DAY)
    why = "deploy test: CVE-2026-21001 exploited in the wild"

    # The zero-day cycle runs (its gate let it go: no monthly run was live) and waits for its approval.
    emergency = client.trigger(
        ZERO_DAY, {"cve_ids": ["CVE-2026-21001"], "justification": why}, logical_date="2026-11-25T09:00:00Z"
    )["dag_run_id"]
    wait_for_approval_request(client, emergency, dag_id=ZERO_DAY)
    # A monthly run comes due meanwhile: it waits at its gate, its plan untouched.
    monthly = client.trigger(ALPHA, CONF, logical_date="2026-11-22T05:00:00Z")["dag_run_id"]
    gate_waits(client, ALPHA, monthly, "wait_for_zero_day")
    client.respond_hitl(ZERO_DAY, emergency, "prod.approval", ["Approve"])
    done = client.wait_for_run(ZERO_DAY, emergency, timeout=900)
    assert done["state"] == "success", client.task_states(ZERO_DAY, emergency)
    win = next(h for h in fleetsim_get(url, "/fleetsim/ground-truth")["hosts"] if h["name"] == "t-prd-win-01")
    assert "KB5049999" in win["installed"]

    # Then the monthly run goes; a zero-day run started while it waits for its approval waits in turn.
    wait_for_approval_request(client, monthly)
    assert started(client, ALPHA, monthly, "plan") >= done["end_date"]
    later = client.trigger(
        ZERO_DAY, {"cve_ids": ["CVE-2026-21001"], "justification": why}, logical_date="2026-11-26T09:00:00Z"
    )["dag_run_id"]
    gate_waits(client, ZERO_DAY, later, "wait_for_monthly")
    client.respond_hitl(ALPHA, monthly, "prod.approval", ["Approve"])
    month = client.wait_for_run(ALPHA, monthly, timeout=900)
    assert month["state"] == "success", client.task_states(ALPHA, monthly)
    wait_for_approval_request(client, later, dag_id=ZERO_DAY)
    assert started(client, ZERO_DAY, later, "plan") >= month["end_date"]
    client.respond_hitl(ZERO_DAY, later, "prod.approval", ["Approve"])
    again = client.wait_for_run(ZERO_DAY, later, timeout=900)
    assert again["state"] == "success", client.task_states(ZERO_DAY, later)
