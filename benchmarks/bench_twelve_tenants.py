"""Twelve tenants' cycles at once on the deployment's real processes, against fleetsim (zero soak).

Starts fleetsim with twelve small tenant fleets (``devtools/tenant_fleet.py``; one tenant's non-prod
installs fail over its budget), the process stack (PostgreSQL, Redis, api-server, scheduler,
dag-processor, triggerer, one Celery worker), triggers every tenant's cycle through the REST API at
once and waits for all of them. Prints one JSON line: wall time from the triggers to the last run's
end, each run's duration, outcomes, and the stack's start time.

    .venv/bin/python benchmarks/bench_twelve_tenants.py [--tenants 12] [--failing 7] [--concurrency 6]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.local import running_fleetsim  # noqa: E402
from devtools.stack import running_stack  # noqa: E402
from devtools.tenant_fleet import tenant_id, write_scenario, write_tenants  # noqa: E402

CONF = {
    "soak_hours_override": 0,
    "soak_override_reason": "benchmark: no soak",
    "window_override_reason": "benchmark: prod outside its change window",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=12)
    parser.add_argument("--failing", type=int, default=7, help="the tenant number whose cycle fails")
    parser.add_argument("--concurrency", type=int, default=6, help="Celery worker slots")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-twelve-") as tmp:
        work = Path(tmp)
        tenants = write_tenants(work / "tenants", args.tenants)
        scenario = write_scenario(work / "scenario.yaml", args.tenants, [args.failing])
        dags = [f"patch_cycle__{tenant_id(n)}" for n in range(1, args.tenants + 1)]
        with (
            running_fleetsim(scenario, work / "fleetsim") as url,
            running_stack(
                work,
                url,
                tenants_dir=tenants,
                poll_seconds=0.5,
                worker_concurrency=args.concurrency,
                extra_env={"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"},
                expect_dags=dags,
                timeout=300,
            ) as stack,
        ):
            client = stack.client
            for dag_id in dags:
                client.unpause(dag_id)
            started = time.monotonic()
            runs = {
                d: client.trigger(d, CONF, logical_date="2026-11-22T02:00:00Z")["dag_run_id"] for d in dags
            }
            done = {d: client.wait_for_run(d, r, timeout=3600) for d, r in runs.items()}
            wall = time.monotonic() - started
            tasks = sum(len(client.task_instances(d, r)) for d, r in runs.items())

    def seconds(run: dict) -> float:
        return (
            dt.datetime.fromisoformat(run["end_date"]) - dt.datetime.fromisoformat(run["start_date"])
        ).total_seconds()

    print(
        json.dumps(
            {
                "tenants": args.tenants,
                "worker_slots": args.concurrency,
                "stack_start_s": round(stack.started_in, 1),
                "wall_s": round(wall, 1),
                "runs_s": {d.removeprefix("patch_cycle__"): round(seconds(r), 1) for d, r in done.items()},
                "states": {d.removeprefix("patch_cycle__"): r["state"] for d, r in done.items()},
                "task_instances": tasks,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
