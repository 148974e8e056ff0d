"""A three-cloud cycle at scale through Airflow against fleetsim: wall time, and API calls per 1,000 hosts
per cloud for inventory and for patching, against the documented batch maxima (the physical minimum).

    .venv/bin/python benchmarks/bench_three_clouds.py --hosts 3000

It scales the ``alpha_three_clouds`` end-to-end scenario to N hosts split evenly across AWS, Azure Arc
and GCP (no faults, no throttling), runs cu_alpha's monthly cycle with ``airflow dags test`` and zero
soak, then runs the inventory once more through the same hooks with the call counters reset, so the
inventory's calls are measured on their own. It prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "plugins"))

from devtools.local import airflow_env, fleetsim_get, migrate_db, run_cycle, running_fleetsim  # noqa: E402

BASE = REPO / "tests" / "e2e" / "scenarios" / "alpha_three_clouds.yaml"
DAG_ID = "patch_cycle__cu_alpha"
ENVIRONMENTS = 3

# Documented maxima (see the hooks): the fewest calls that can read or patch n hosts.
SSM_PAGE, EC2_TAGS_PAGE = 50, 1000
ARM_MACHINES_PAGE, GRAPH_PAGE = 100, 1000
COMPUTE_PAGE, OSCONFIG_PAGE = 500, 100
FALCON_SCROLL, FALCON_DETAILS = 10000, 5000


def scenario_for(hosts: int, path: Path) -> Path:
    """The three-cloud scenario with ``hosts`` hosts: a third per cloud, 30/20/50% nonprod/staging/prod."""
    data = yaml.safe_load(BASE.read_text())
    tenant = data["tenants"][0]
    tenant["faults"] = {}
    tenant["azure"]["throttle"] = {"requests": 0}
    per_cloud = hosts // 3
    for cloud in ("aws", "azure", "gcp"):
        groups = tenant[cloud]["groups"]
        envs = {"nonprod": 0.3, "staging": 0.2, "prod": 0.5}
        by_env: dict[str, list[dict]] = {}
        for group in groups:
            group.pop("falcon_sensor", None)
            by_env.setdefault(group["environment"], []).append(group)
        for env, share in envs.items():
            members = by_env[env]
            total = max(len(members), round(per_cloud * share))
            for i, group in enumerate(members):
                group["count"] = total // len(members) + (1 if i < total % len(members) else 0)
    path.write_text(yaml.safe_dump(data))
    return path


def reset_calls(url: str) -> None:
    request = urllib.request.Request(f"{url}/fleetsim/calls/reset", data=b"", method="POST")
    urllib.request.urlopen(request, timeout=30).read()  # noqa: S310 - loopback


def inventory_calls(url: str, env: dict[str, str]) -> Counter[str]:
    """Run the tenant's inventory once more, through the operators' own collection code and hooks."""
    os.environ.update({k: v for k, v in env.items() if k.startswith(("AIRFLOW", "PATCHCYCLE", "AWS_"))})
    from patchcycle.config.loader import default_tenants_dir, load_tenant
    from patchcycle.hooks.falcon import FalconHook
    from patchcycle.operators.inventory import CloudInventoryOperator

    tenant = load_tenant(default_tenants_dir() / "cu_alpha.yaml")
    reset_calls(url)
    for cloud in tenant.clouds.declared:
        operator = CloudInventoryOperator(task_id=f"bench_{cloud}", cloud=cloud, tenant_id=tenant.id)
        for _label, collect in operator._scopes({}):
            collect()
    FalconHook(falcon_conn_id=tenant.falcon_connection_id()).devices()
    return Counter(fleetsim_get(url, "/fleetsim/calls")["calls"])


def by_cloud(calls: Counter[str]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for name, count in calls.items():
        if name.startswith(("aws.s3.", "aws.sts.", "aws.sso", "aws.identitystore")):
            continue
        prefix = name.split(".", 1)[0]
        out[{"backup": "azure"}.get(prefix, prefix)] += count
    return dict(out)


def zone_counts(scenario: Path) -> list[int]:
    groups = yaml.safe_load(scenario.read_text())["tenants"][0]["gcp"]["groups"]
    zones: Counter[str] = Counter()
    for group in groups:
        zones[group["zone"]] += group["count"]
    return list(zones.values())


def minimum_inventory(per_cloud: int, zones: list[int]) -> dict[str, int]:
    """The fewest calls that read every host: each list at its documented page size."""
    return {
        "aws": math.ceil(per_cloud / SSM_PAGE) * 2 + math.ceil(per_cloud / EC2_TAGS_PAGE),
        "azure": math.ceil(per_cloud / ARM_MACHINES_PAGE) + 2 * math.ceil(per_cloud / GRAPH_PAGE),
        # Instances, inventories and vulnerability reports are listed per zone.
        "gcp": sum(math.ceil(n / COMPUTE_PAGE) + 2 * math.ceil(n / OSCONFIG_PAGE) for n in zones),
        "falcon": 1 + math.ceil(per_cloud * 3 / FALCON_SCROLL) + math.ceil(per_cloud * 3 / FALCON_DETAILS),
    }


# Patching calls that scale with hosts (sends and result reads), against their minimum; status polls
# scale with how long the work takes divided by the poll interval, not with hosts, and are listed apart.
# An Arc operation's status read is both its poll and its result: at least one per machine.
PATCH_CALLS = {
    "aws": ["aws.ssm.SendCommand", "aws.ssm.ListCommandInvocations"],
    "azure": ["azure.arm.Machines_InstallPatches", "azure.arm.OperationStatus_Get"],
    "gcp": ["gcp.osconfig.ExecutePatchJob", "gcp.osconfig.ListPatchJobInstanceDetails"],
}
STATUS_POLLS = {"aws": ["aws.ssm.ListCommands"], "gcp": ["gcp.osconfig.GetPatchJob"]}


def minimum_patching(per_cloud: int) -> dict[str, int]:
    """Per stage: AWS one SendCommand and the invocations in pages of 50; Azure one installPatches and
    one result read per machine (the API has no batch form); GCP one patch job and the instance details
    in pages of 100."""
    stages = [round(per_cloud * share) for share in (0.3, 0.2, 0.5)]
    return {
        "aws": sum(1 + math.ceil(n / SSM_PAGE) for n in stages),
        "azure": 2 * per_cloud,
        "gcp": sum(1 + math.ceil(n / OSCONFIG_PAGE) for n in stages),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=3000)
    parser.add_argument("--poll-seconds", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="patchcycle-bench3-") as tmp:
        work = Path(tmp)
        scenario = scenario_for(args.hosts, work / "scenario.yaml")
        with running_fleetsim(scenario, work / "fleetsim", timeout=900) as url:
            env = airflow_env(
                work / "airflow",
                url,
                poll_seconds=args.poll_seconds,
                tenants_dir=REPO / "include" / "tenants",
            )
            migrate_db(env)
            reset_calls(url)
            started = time.monotonic()
            rc = run_cycle(
                env,
                DAG_ID,
                "2026-11-22T02:00:00+00:00",
                {
                    "soak_hours_override": 0,
                    "soak_override_reason": "benchmark",
                    "window_override_reason": "benchmark",
                },
                work / "cycle.log",
            )
            wall = time.monotonic() - started
            cycle = Counter(fleetsim_get(url, "/fleetsim/calls")["calls"])
            truth = fleetsim_get(url, "/fleetsim/ground-truth")["hosts"]
            inventory = inventory_calls(url, env)
        per_cloud = args.hosts // 3
        thousand = per_cloud / 1000
        inv = by_cloud(inventory)
        inv_min = minimum_inventory(per_cloud, zone_counts(scenario))
        patching = {cloud: {op: cycle.get(op, 0) for op in ops} for cloud, ops in PATCH_CALLS.items()}
        patch_min = minimum_patching(per_cloud)
        result = {
            "hosts": args.hosts,
            "hosts_per_cloud": per_cloud,
            "exit_code": rc,
            "wall_seconds": round(wall, 1),
            "hosts_patched": sum(
                1
                for h in truth
                if any("install" in a["action"] or "patchJob" in a["action"] for a in h["actions"])
            ),
            "inventory_calls_per_1000_hosts": {c: round(n / thousand, 1) for c, n in sorted(inv.items())},
            "inventory_minimum_per_1000_hosts": {c: round(n / thousand, 1) for c, n in inv_min.items()},
            "inventory_ratio_to_minimum": {c: round(inv.get(c, 0) / n, 2) for c, n in inv_min.items()},
            "patching_calls": patching,
            "patching_calls_per_1000_hosts": {
                c: round(sum(o.values()) / thousand, 1) for c, o in patching.items()
            },
            "patching_minimum_per_1000_hosts": {c: round(n / thousand, 1) for c, n in patch_min.items()},
            "patching_ratio_to_minimum": {
                c: round(sum(patching[c].values()) / n, 2) for c, n in patch_min.items()
            },
            "status_polls": {c: {op: cycle.get(op, 0) for op in ops} for c, ops in STATUS_POLLS.items()},
            "poll_seconds": args.poll_seconds,
            "cycle_calls_by_cloud": by_cloud(cycle),
            "inventory_calls": dict(sorted(inventory.items())),
        }
        print(json.dumps(result, indent=1))
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
