"""One tenant cycle on the process stack: wall time, per-task times, and the CPU each component spent.

    .venv/bin/python benchmarks/bench_stack_cycle.py [--workdir DIR]

Starts fleetsim (the e2e scenario ``alpha_small``: cu_alpha, 11 AWS hosts in three environments) and the
whole process stack (devtools/stack/: PostgreSQL, Redis, api-server, scheduler, dag-processor,
triggerer, Celery worker with two slots), triggers ``patch_cycle__cu_alpha`` through the REST API with
zero soak, waits for it to end, and prints one JSON line: the run's wall time from trigger to end, each
task's duration, and the CPU seconds each component's process tree spent during the run (its live
processes and the children it has reaped, which is where the worker's forked tasks are counted).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.local import running_fleetsim  # noqa: E402
from devtools.stack import Stack, running_stack  # noqa: E402
from devtools.tenant_fleet import write_aws_only_tenants  # noqa: E402

E2E = REPO / "tests" / "e2e"
DAG_ID = "patch_cycle__cu_alpha"
CYCLE = "2026-11-22T02:00:00Z"
CONF = {
    "soak_hours_override": 0,
    "soak_override_reason": "benchmark: no soak",
    "window_override_reason": "benchmark: prod outside its change window",
}


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its live descendants, and the children each has reaped."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in family:
        try:
            t = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def cpu_by_component(stack: Stack) -> dict[str, float]:
    return {name: tree_cpu(component.proc.pid) for name, component in stack.components.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-stack-cycle-"))
    tenants = write_aws_only_tenants(work / "tenants")
    with (
        running_fleetsim(E2E / "scenarios" / "alpha_small.yaml", work / "fleetsim") as url,
        running_stack(
            work,
            url,
            tenants_dir=tenants,
            poll_seconds=0.5,
            worker_concurrency=2,
            extra_env={"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"},
            expect_dags=[DAG_ID],
            timeout=300,
        ) as stack,
    ):
        client = stack.client
        client.unpause(DAG_ID)
        before = cpu_by_component(stack)
        started = time.monotonic()
        run_id = client.trigger(DAG_ID, CONF, logical_date=CYCLE)["dag_run_id"]
        run = client.wait_for_run(DAG_ID, run_id, timeout=1800, interval=1.0)
        wall = time.monotonic() - started
        after = cpu_by_component(stack)
        tasks = {
            ti["task_id"]: round(ti["duration"] or 0.0, 1)
            for ti in sorted(client.task_instances(DAG_ID, run_id), key=lambda t: t["start_date"] or "")
        }
        print(
            json.dumps(
                {
                    "state": run["state"],
                    "stack_started_s": round(stack.started_in, 1),
                    "wall_s": round(wall, 1),
                    "tasks": len(tasks),
                    "task_seconds": tasks,
                    "cpu_s": {name: round(after[name] - before.get(name, 0.0), 1) for name in after},
                }
            )
        )


if __name__ == "__main__":
    main()
