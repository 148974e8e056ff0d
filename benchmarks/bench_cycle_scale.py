"""Scale of one cycle through Airflow against fleetsim: task count, API calls per host, wall time.

    .venv/bin/python benchmarks/bench_cycle_scale.py --hosts 10 2000

For each fleet size it generates a cu_alpha fleet (no faults), starts fleetsim, runs the cycle with
``airflow dags test`` (zero soak), and prints one JSON line: hosts, task instances, wall seconds,
fleetsim calls in total and per host, and the calls by service/action.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.local import airflow_env, fleetsim_get, migrate_db, run_cycle, running_fleetsim  # noqa: E402

BASE = REPO / "tests" / "e2e" / "scenarios" / "alpha_small.yaml"


def scenario_for(hosts: int, path: Path) -> Path:
    data = yaml.safe_load(BASE.read_text())
    tenant = data["tenants"][0]
    tenant["faults"] = {}
    groups = tenant["aws"]["groups"]
    shares = (0.3, 0.2, 0.4, 0.1)  # nonprod, staging, prod linux, prod windows
    counts = [max(1, round(hosts * s)) for s in shares]
    counts[2] += hosts - sum(counts)
    for group, count in zip(groups, counts, strict=True):
        group["count"] = count
    path.write_text(yaml.safe_dump(data))
    return path


def task_instances(home: Path, dag_id: str) -> int:
    with sqlite3.connect(home / "airflow.db") as conn:
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM task_instance ti JOIN dag_run dr"
            " ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id"
            " WHERE dr.id = (SELECT MAX(id) FROM dag_run WHERE dag_id = ?)",
            (dag_id,),
        ).fetchone()
    return count


def measure(hosts: int, work: Path) -> dict:
    scenario = scenario_for(hosts, work / f"scenario-{hosts}.yaml")
    home = work / f"airflow-{hosts}"
    with running_fleetsim(scenario, work / f"fleetsim-{hosts}", timeout=600) as url:
        env = airflow_env(home, url, poll_seconds=2.0)
        migrate_db(env)
        fleetsim_get_reset(url)
        started = time.monotonic()
        rc = run_cycle(
            env,
            "patch_cycle__cu_alpha",
            "2026-11-22T02:00:00+00:00",
            {
                "soak_hours_override": 0,
                "soak_override_reason": "benchmark",
                "window_override_reason": "benchmark",
            },
            work / f"cycle-{hosts}.log",
        )
        seconds = time.monotonic() - started
        calls = fleetsim_get(url, "/fleetsim/calls")["calls"]
    cloud = {k: v for k, v in calls.items() if not k.startswith(("aws.s3.", "aws.sts."))}
    return {
        "hosts": hosts,
        "exit_code": rc,
        "task_instances": task_instances(home, "patch_cycle__cu_alpha"),
        "wall_seconds": round(seconds, 1),
        "fleet_calls": sum(cloud.values()),
        "fleet_calls_per_host": round(sum(cloud.values()) / hosts, 3),
        "evidence_store_calls": sum(v for k, v in calls.items() if k.startswith("aws.s3.")),
        "sts_calls": calls.get("aws.sts.AssumeRole", 0),
        "calls": calls,
    }


def fleetsim_get_reset(url: str) -> None:
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(f"{url}/fleetsim/calls/reset", method="POST"), timeout=30
    ).read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, nargs="+", default=[10, 2000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="patchcycle-bench-") as tmp:
        for hosts in args.hosts:
            print(json.dumps(measure(hosts, Path(tmp))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
