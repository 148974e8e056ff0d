"""Benchmark: render a 10,000-host evidence pack (PDF + CSV + JSON + manifest) and measure it.

Run from the repo root:  .venv/bin/python benchmarks/bench_evidence_pack.py [--hosts N] [--repeat R]

Prints one line of JSON: {"hosts", "seconds", "peak_mb", "pack_bytes", "bytes_per_1000_hosts", ...}.
``seconds`` is the median wall time of ``--repeat`` runs after one warm-up run; ``peak_mb`` is the
tracemalloc peak of one extra, traced run (tracing slows code, so it is not timed); ``maxrss_mb``
is the process's peak resident set size (resource.getrusage) at the end, input document included.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from patchcycle.reports.manifest import build_manifest, manifest_bytes  # noqa: E402
from patchcycle.reports.pdf import render_cycle_report  # noqa: E402
from patchcycle.reports.tables import hosts_csv  # noqa: E402

ENVIRONMENTS = ("nonprod", "staging", "prod")
CLOUDS = ("aws", "aws", "azure", "gcp")
OS_FAMILIES = {
    "aws": ("amazon_linux_2", "Amazon Linux 2"),
    "azure": ("windows_server_2022", "Windows Server 2022 Datacenter"),
    "gcp": ("ubuntu_22_04", "Ubuntu 22.04 LTS"),
}
STATES = (
    ("patched",) * 80
    + ("failed",) * 4
    + ("held",) * 4
    + ("non_compliant",) * 2
    + ("excepted",) * 2
    + ("not_run",) * 2
    + ("out_of_scope",) * 6
)
REASONS = {
    "failed": "patch install exit code 1: yum transaction check error",
    "held": "change freeze: quarter-end ledger close",
    "non_compliant": "2 approved patches still missing after install",
    "excepted": "risk exception RX-2026-014 until 2026-12-31",
    "not_run": "stage prod not run: staging gate failed",
    "out_of_scope": "tag patchcycle:scope=none",
}


def _rollup(hosts: list[dict]) -> dict[str, Any]:
    in_scope = [h for h in hosts if h["final_state"] != "out_of_scope"]
    n = len(in_scope) or 1
    return {
        "in_scope": len(in_scope),
        "patched": sum(h["final_state"] == "patched" for h in hosts),
        "failed": sum(h["final_state"] == "failed" for h in hosts),
        "held": sum(h["final_state"] == "held" for h in hosts),
        "not_run": sum(h["final_state"] == "not_run" for h in hosts),
        "compliance_before": round(sum(h["missing_before"] == 0 for h in in_scope) / n, 4),
        "compliance_after": round(sum(h["missing_after"] == 0 for h in in_scope) / n, 4),
    }


def synthetic_evidence(n_hosts: int, seed: int = 20261122) -> dict:
    """A deterministic evidence document (schema 1.0) with ``n_hosts`` hosts."""
    rng = random.Random(seed)
    hosts = []
    for i in range(n_hosts):
        cloud = rng.choice(CLOUDS)
        env = rng.choice(("nonprod", "staging", "prod", "prod"))
        state = rng.choice(STATES)
        os_family, platform = OS_FAMILIES[cloud]
        name = f"alpha-{env}-{rng.choice(('web', 'app', 'db', 'batch'))}-{i:05d}"
        account = {
            "aws": "111111111111",
            "azure": "5f1c0a7e-2b8d-4c1e-9a3f-0d6b7e8c9a10",
            "gcp": "alpha-prod",
        }[cloud]
        host_id = {
            "aws": f"i-0{rng.randrange(16**16):016x}",
            "azure": f"/subscriptions/{account}/resourceGroups/rg-{env}/providers/"
            f"Microsoft.Compute/virtualMachines/{name}",
            "gcp": str(rng.randrange(10**18, 10**19)),
        }[cloud]
        ran = state in ("patched", "failed", "non_compliant")
        missing_before = rng.randint(0, 9) if state != "out_of_scope" else 0
        hosts.append(
            {
                "host_id": host_id,
                "name": name,
                "cloud": cloud,
                "account": account,
                "region": {"aws": "us-east-1", "azure": "eastus2", "gcp": "us-central1"}[cloud],
                "environment": env,
                "os_family": os_family,
                "platform": platform,
                "criticality": rng.choice(("low", "medium", "high", "critical")),
                "agent_status": "Online",
                "final_state": state,
                "reason": REASONS.get(state),
                "backup_id": f"ami-0{rng.randrange(16**16):016x}" if ran else None,
                "command_id": f"{rng.randrange(16**8):08x}-4c1e-4a3f-9d6b-{i:012d}" if ran else None,
                "missing_before": missing_before,
                "missing_after": 0 if state == "patched" else missing_before,
                "failed_after": rng.randint(1, 3) if state == "failed" else 0,
                "installed_after": rng.randint(20, 400),
            }
        )
    plan_hash = f"{rng.randrange(16**64):064x}"
    approved = {
        family: [
            {
                "id": f"{family.upper()}-2026-{2100 + j}",
                "title": f"Security update {j}",
                "severity": rng.choice(("Critical", "Important", "Moderate", "Low")),
                "classification": "Security",
                "cves": [f"CVE-2026-{rng.randint(1000, 49999)}" for _ in range(rng.randint(0, 5))],
                "released": f"2026-11-{rng.randint(1, 20):02d}",
            }
            for j in range(80)
        ]
        for family, _ in OS_FAMILIES.values()
    }
    total = _rollup(hosts)
    return {
        "schema_version": "1.0",
        "tenant": {
            "id": "cu_alpha",
            "display_name": "Alpha Federal Credit Union",
            "frameworks": ["soc2", "pci_dss"],
        },
        "cycle": {
            "cycle_date": "2026-11-22",
            "run_id": "manual__2026-11-22T02:00:00+00:00",
            "plan_hash": plan_hash,
            "dry_run": False,
            "started_at": "2026-11-22T02:00:00+00:00",
            "finished_at": "2026-11-22T05:01:00+00:00",
            "outcome": "failed",
            "generated_by": "patchcycle 0.1.0",
        },
        "summary": {
            "hosts_total": len(hosts),
            **{k: total[k] for k in ("in_scope", "patched", "failed", "held", "not_run")},
            "excepted": sum(h["final_state"] == "excepted" for h in hosts),
            "out_of_scope": sum(h["final_state"] == "out_of_scope" for h in hosts),
            "compliance_before": total["compliance_before"],
            "compliance_after": total["compliance_after"],
            "by_environment": {e: _rollup([h for h in hosts if h["environment"] == e]) for e in ENVIRONMENTS},
            "by_cloud": {c: _rollup([h for h in hosts if h["cloud"] == c]) for c in sorted(set(CLOUDS))},
        },
        "stages": [
            {
                "environment": env,
                "status": "failed" if env == "prod" else "succeeded",
                "started_at": "2026-11-22T02:05:00+00:00",
                "finished_at": "2026-11-22T02:55:00+00:00",
                "hosts_targeted": sum(h["environment"] == env for h in hosts),
                "hosts_succeeded": sum(
                    h["environment"] == env and h["final_state"] == "patched" for h in hosts
                ),
                "hosts_failed": sum(h["environment"] == env and h["final_state"] == "failed" for h in hosts),
                "backups": sum(h["environment"] == env and h["backup_id"] is not None for h in hosts),
                "command_ids": [],
                "reason": "failure threshold exceeded" if env == "prod" else None,
            }
            for env in ENVIRONMENTS
        ],
        "hosts": hosts,
        "plan": {"hash": plan_hash, "cycle_date": "2026-11-22", "approved": approved},
        "events": [
            {
                "at": "2026-11-22T02:10:00+00:00",
                "actor": "airflow:patch_cycle__cu_alpha",
                "action": "backup.created" if h["backup_id"] else "host.skipped",
                "target": h["host_id"],
                "result": "ok",
                "details": {"backup_id": h["backup_id"]},
            }
            for h in hosts
        ],
    }


def build_pack(evidence: dict) -> dict[str, bytes]:
    """Render every file of the pack, manifest last; return name -> bytes."""
    files = {
        "report.pdf": render_cycle_report(evidence),
        "hosts.csv": hosts_csv(evidence["hosts"]),
        "evidence.json": json.dumps(evidence, sort_keys=True, ensure_ascii=False).encode("utf-8"),
    }
    manifest = build_manifest(
        files,
        tenant_id=evidence["tenant"]["id"],
        cycle_date=evidence["cycle"]["cycle_date"],
        run_id=evidence["cycle"]["run_id"],
        created_at="2026-11-22T05:02:00+00:00",
        previous_manifest_sha256=None,
    )
    files["manifest.json"] = manifest_bytes(manifest)
    return files


def main() -> None:
    """Run the benchmark and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args()

    evidence = synthetic_evidence(args.hosts, args.seed)
    build_pack(evidence)  # warm-up: imports, font metrics

    timings = []
    for _ in range(max(1, args.repeat)):
        start = time.perf_counter()
        pack = build_pack(evidence)
        timings.append(time.perf_counter() - start)

    step_seconds: dict[str, float] = {}
    for name, step in (
        ("pdf", lambda: render_cycle_report(evidence)),
        ("csv", lambda: hosts_csv(evidence["hosts"])),
        ("json", lambda: json.dumps(evidence, sort_keys=True, ensure_ascii=False).encode("utf-8")),
    ):
        start = time.perf_counter()
        step()
        step_seconds[name] = round(time.perf_counter() - start, 3)

    tracemalloc.start()
    build_pack(evidence)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    pack_bytes = sum(len(data) for data in pack.values())
    result = {
        "hosts": args.hosts,
        "seconds": round(statistics.median(timings), 3),
        "peak_mb": round(peak / 2**20, 1),
        "pack_bytes": pack_bytes,
        "bytes_per_1000_hosts": round(pack_bytes / max(args.hosts, 1) * 1000),
        "maxrss_mb": round(maxrss_kb / 1024, 1),
        "files": {name: len(data) for name, data in pack.items()},
        "step_seconds": step_seconds,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
