"""Worker slots held while a cycle soaks: the soak must wait in the triggerer, not on a Celery worker.

    .venv/bin/python benchmarks/bench_soak_slots.py [--tenant cu_birch] [--steady-seconds 120]

Starts fleetsim (demo scenario) and the whole process stack (devtools/stack/: PostgreSQL, Redis,
api-server, scheduler, dag-processor, triggerer, Celery worker), triggers the tenant's cycle through the
REST API with its own staging soak (cu_birch: 48 hours; ``--soak-hours`` overrides it, with a reason),
waits until the soak task is deferred, then samples every few seconds for ``--steady-seconds``: task
instances running and deferred (REST API), tasks active on the Celery workers (Celery's inspect), and
whether the triggerer is alive and healthy. Then it stops everything and prints one JSON line.
Target: zero running task instances and zero active Celery tasks during the soak.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.local import running_fleetsim  # noqa: E402
from devtools.stack import Stack, running_stack  # noqa: E402

SCENARIO = REPO / "fleetsim" / "scenarios" / "demo.yaml"
CYCLE = "2026-11-22T02:00:00Z"


def soak_state(stack: Stack, dag_id: str, run_id: str) -> str | None:
    return stack.client.task_states(dag_id, run_id).get("staging.soak")


def sample(stack: Stack, dag_id: str, run_id: str, started: float) -> dict[str, Any]:
    client = stack.client
    health = client.health()
    return {
        "t": round(time.monotonic() - started, 1),
        "running": len(client.task_instances_in("running")),
        "queued": len(client.task_instances_in("queued", "scheduled")),
        "deferred": len(client.task_instances_in("deferred")),
        "celery_active": stack.celery_active_tasks(),
        "triggerer_alive": stack.components["triggerer"].alive()
        and (health.get("triggerer") or {}).get("status") == "healthy",
        "soak": soak_state(stack, dag_id, run_id),
    }


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    dag_id = f"patch_cycle__{args.tenant}"
    conf: dict[str, Any] = {"window_override_reason": "benchmark: prod outside its change window"}
    if args.soak_hours is not None:
        conf |= {"soak_hours_override": args.soak_hours, "soak_override_reason": "benchmark"}
    with (
        running_fleetsim(SCENARIO, work / "fleetsim") as url,
        running_stack(
            work,
            url,
            worker_concurrency=args.worker_concurrency,
            extra_env={"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"},  # only our run
            expect_dags=[dag_id],
        ) as stack,
    ):
        client = stack.client
        client.unpause(dag_id)
        triggered = time.monotonic()
        run_id = client.trigger(dag_id, conf, logical_date=CYCLE)["dag_run_id"]
        deadline = triggered + args.timeout
        while (state := soak_state(stack, dag_id, run_id)) != "deferred":
            run = client.dag_run(dag_id, run_id)
            if run["state"] in ("success", "failed") or state in ("success", "failed", "skipped"):
                raise SystemExit(f"{run_id} ended ({run['state']}, soak {state}) before soaking")
            if time.monotonic() > deadline:
                raise SystemExit(f"soak not deferred within {args.timeout}s (soak {state})")
            time.sleep(2)
        to_soak = time.monotonic() - triggered
        samples = []
        steady = time.monotonic()
        while time.monotonic() - steady < args.steady_seconds:
            samples.append(sample(stack, dag_id, run_id, steady))
            stack.check_alive()
            time.sleep(args.interval)
        soaking = [s for s in samples if s["soak"] == "deferred"]
        return {
            "benchmark": "soak_slots",
            "tenant": args.tenant,
            "soak_hours": args.soak_hours if args.soak_hours is not None else "tenant default",
            "stack_start_s": round(stack.started_in, 1),
            "trigger_to_soak_deferred_s": round(to_soak, 1),
            "samples": len(samples),
            "samples_while_soaking": len(soaking),
            "steady_seconds": args.steady_seconds,
            "worker_slots": args.worker_concurrency,
            "running_max": max((s["running"] for s in soaking), default=None),
            "celery_active_max": max((s["celery_active"] for s in soaking), default=None),
            "deferred_min": min((s["deferred"] for s in soaking), default=None),
            "deferred_max": max((s["deferred"] for s in soaking), default=None),
            "triggerer_alive_all": all(s["triggerer_alive"] for s in soaking),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenant", default="cu_birch")
    parser.add_argument("--soak-hours", type=float, default=None, help="override the tenant's soak")
    parser.add_argument("--steady-seconds", type=float, default=120.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600.0, help="trigger until the soak is deferred")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.workdir:
        result = measure(args, args.workdir.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
            result = measure(args, Path(tmp))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
