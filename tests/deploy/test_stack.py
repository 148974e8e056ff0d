"""The deployment's components as real processes: PostgreSQL, Redis, api-server, scheduler, dag-processor,
triggerer and a Celery worker, against fleetsim; a backfill of missed cycles through the REST API.

One stack for the module (it takes about a minute to start); the xdist group keeps both tests on one
worker, so the stack starts once per suite run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import psutil
import pytest

from devtools.local import running_fleetsim
from devtools.stack import COMPONENT_COMMANDS, LOCAL_FLAGS, Stack, running_stack
from devtools.tenant_fleet import write_aws_only_tenants

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stack"), pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
E2E = REPO / "tests" / "e2e"
DAG_ID = "patch_cycle__cu_alpha"
BUCKET = "patchcycle-evidence-cu-alpha"
MISSED = ["2026-08-23", "2026-09-27", "2026-10-25"]  # the fourth Sundays of August to October 2026
CONF = {
    "soak_hours_override": 0,
    "soak_override_reason": "deploy test: backfilled cycles",
    "window_override_reason": "deploy test: backfilled cycles run outside prod's change window",
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[tuple[Stack, str]]:
    work = tmp_path_factory.mktemp("stack")
    pids: list[int] = []
    with (
        running_fleetsim(E2E / "scenarios" / "alpha_small.yaml", work / "fleetsim") as url,
        running_stack(
            work,
            url,
            tenants_dir=write_aws_only_tenants(work / "tenants"),
            poll_seconds=0.5,
            worker_concurrency=2,  # the backfill's runs go one at a time; two slots cover its widest step
            # Only the backfill may create runs: unpausing a catchup=False DAG would otherwise start a
            # scheduled run for the latest fourth Sunday beside it.
            extra_env={"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"},
            expect_dags=[DAG_ID],
            timeout=240,
        ) as stack,
    ):
        print(f"stack started in {stack.started_in:.0f}s")
        for component in stack.components.values():
            root = psutil.Process(component.proc.pid)
            pids.extend(p.pid for p in [root, *root.children(recursive=True)])
        yield stack, url
    leftovers = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert not leftovers, f"processes left running after the stack stopped: {leftovers}"


def test_every_component_runs_as_its_own_healthy_process(deployment) -> None:
    stack, _ = deployment
    assert set(stack.components) == set(COMPONENT_COMMANDS)
    pids = stack.pids()
    assert len(set(pids.values())) == len(COMPONENT_COMMANDS)
    for name, component in stack.components.items():
        assert component.alive(), f"{name} is not running"
        argv = list(component.proc.args)
        assert Path(argv[0]).name == "airflow"
        assert tuple(argv[1:]) == COMPONENT_COMMANDS[name] + LOCAL_FLAGS.get(name, ()), argv
    assert stack.unhealthy() == []
    health = stack.client.health()
    assert {health[p]["status"] for p in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == {
        "healthy"
    }
    assert stack.celery_workers(), "no Celery worker answers through the broker"
    assert stack.env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert stack.client.version()["version"] == "3.3.2"


def test_a_backfill_of_three_missed_cycles_runs_on_the_scheduler_and_workers(deployment) -> None:
    stack, url = deployment
    client = stack.client
    client.unpause(DAG_ID)
    started = time.monotonic()
    backfill = client.create_backfill(
        DAG_ID, "2026-08-01T00:00:00Z", "2026-10-31T00:00:00Z", conf=CONF, max_active_runs=1
    )
    assert backfill["dag_id"] == DAG_ID
    runs = client.wait_for_runs(DAG_ID, count=3, run_type="backfill", timeout=900)
    elapsed = time.monotonic() - started
    print(f"backfill of {len(runs)} cycles: {elapsed:.0f}s")

    assert [r["logical_date"][:10] for r in runs] == MISSED
    assert len({r["dag_run_id"] for r in runs}) == 3
    assert all(r["run_type"] == "backfill" for r in runs)
    # Nothing but the backfill ran (no scheduled or manual run slipped in).
    assert len(client.dag_runs(DAG_ID)) == 3
    for run in runs:
        states = client.task_states(DAG_ID, run["dag_run_id"])
        assert states["plan"] == "success", (run["dag_run_id"], states)
        assert states["evidence"] == "success", (run["dag_run_id"], states)
        # Executed by the Celery workers, not in-process.
        plan_ti = next(t for t in client.task_instances(DAG_ID, run["dag_run_id"]) if t["task_id"] == "plan")
        assert plan_ti["executor"] in (None, "CeleryExecutor") and plan_ti["hostname"], plan_ti

    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for o in page.get("Contents", [])
    ]

    def read(key: str) -> dict:
        return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    plans = {}
    for cycle_date, run in zip(MISSED, runs, strict=True):
        plan_keys = [
            k for k in keys if k.startswith(f"cycles/{cycle_date}/plans/") and k.endswith("/plan.json")
        ]
        assert len(plan_keys) == 1, plan_keys
        plan = read(plan_keys[0])
        assert plan["cycle_date"] == cycle_date, "each backfilled cycle is planned as of its own date"
        plans[cycle_date] = plan
        segment = run["dag_run_id"].replace(":", "_").replace("+", "_")
        pack = [k for k in keys if k.startswith(f"cycles/{cycle_date}/runs/{segment}/pack/")]
        assert {k.rsplit("/", 1)[1] for k in pack} >= {
            "evidence.json",
            "manifest.json",
            "hosts.csv",
            "report.pdf",
        }
        evidence = read(f"cycles/{cycle_date}/runs/{segment}/pack/evidence.json")
        assert evidence["cycle"]["plan_hash"] == plan_keys[0].split("/")[3]
        assert evidence["plan"]["cycle_date"] == cycle_date
    hashes = {k.split("/")[3] for k in keys if k.endswith("/plan.json")}
    assert len(hashes) == 3, "three cycles, three frozen plans"
    approved = {d: {p["id"] for ps in plan["approved"].values() for p in ps} for d, plan in plans.items()}
    # The patches approvable on each date (released at least 7 days before it), nothing later.
    assert approved["2026-08-23"] == set()
    assert approved["2026-09-27"] == {"ALAS2-2026-2610"}
    assert approved["2026-10-25"] == {"ALAS2-2026-2610", "ALAS2-2026-2644"}
