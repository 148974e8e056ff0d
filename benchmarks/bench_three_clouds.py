"""A three-cloud cycle at scale through Airflow against fleetsim: wall time, and API calls per 1,000 hosts
per cloud for inventory, for the plan's catalog reading and for patching, against the documented batch
maxima (the physical minimum).

    .venv/bin/python benchmarks/bench_three_clouds.py --hosts 3000

It scales the ``alpha_three_clouds`` end-to-end scenario to N hosts split evenly across AWS, Azure Arc
and GCP (no faults, no throttling), runs cu_alpha's monthly cycle with ``airflow dags test`` and zero
soak, then runs the inventory once more through the same hooks with the call counters reset, so the
inventory's calls are measured on their own. The plan's catalog reading is measured the same way: with
the counters reset, the plan operator's own code runs again (``prepare_aws_catalog``, a wait for its SSM
Scan polled with the ``run_commands`` check the trigger uses, then each cloud's reader of
``CATALOG_READERS``), phase by phase. This re-run is the steady state: the cycle's plan already created
the tenant's patch baselines, registered their patch groups and tagged the hosts, so the re-run updates
the baselines and tags only hosts whose ``Patch Group`` tag is wrong. The plan task's wall time is the
Airflow task instance's duration of the cycle's ``plan`` task, from the run's metadata DB (start to
end, the deferred wait for the Scan included).

What the scenario exercises (its families are kept so results stay comparable across runs): AWS hosts
are all Amazon Linux 2, whose catalog SSM documents through DescribeAvailablePatches, read once per
tenant baseline family that has that source (Amazon Linux 2 and Windows Server 2019, the latter with
no AWS host); the plan still tags and Scans the AWS hosts, but no host is of a family read from its Scan,
so DescribeInstancePatchStates and the per-instance DescribeInstancePatches are not exercised at scale
(the output counts them, zero here, and says so). Arc (Ubuntu 22.04, Windows Server 2019) is read
through Resource Graph and GCP (RHEL 8) through OS Config inventories and vulnerability reports, both at
scale. It prints one JSON document.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sqlite3
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "plugins"))

from devtools.demo import download_pack  # noqa: E402
from devtools.local import airflow_env, fleetsim_get, migrate_db, run_cycle, running_fleetsim  # noqa: E402

BASE = REPO / "tests" / "e2e" / "scenarios" / "alpha_three_clouds.yaml"
DAG_ID = "patch_cycle__cu_alpha"
ENVIRONMENTS = 3

# Documented maxima (see the hooks): the fewest calls that can read or patch n hosts.
SSM_PAGE, EC2_TAGS_PAGE = 50, 1000
ARM_MACHINES_PAGE, GRAPH_PAGE = 100, 1000
COMPUTE_PAGE, OSCONFIG_PAGE = 500, 100
FALCON_SCROLL, FALCON_DETAILS = 10000, 5000
SSM_PATCH_STATES_BATCH, SSM_AVAILABLE_PATCHES_PAGE, SSM_INSTANCE_PATCHES_PAGE = 50, 100, 100
SSM_PATCH_BASELINES_PAGE, SSM_PATCH_GROUPS_PAGE, EC2_CREATE_TAGS_BATCH = 100, 50, 1000
CYCLE_DATE = dt.date(2026, 11, 22)


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


def calls_now(url: str) -> Counter[str]:
    return Counter(fleetsim_get(url, "/fleetsim/calls")["calls"])


def bench_tenant(env: dict[str, str]) -> Any:
    """cu_alpha as the cycle's Airflow saw it (its environment: connections, tenants folder)."""
    os.environ.update({k: v for k, v in env.items() if k.startswith(("AIRFLOW", "PATCHCYCLE", "AWS_"))})
    from patchcycle.config.loader import default_tenants_dir, load_tenant

    return load_tenant(default_tenants_dir() / "cu_alpha.yaml")


def inventory_calls(url: str, env: dict[str, str]) -> Counter[str]:
    """Run the tenant's inventory once more, through the operators' own collection code and hooks."""
    from patchcycle.domain.inventory import plan_patch_index
    from patchcycle.hooks.falcon import FalconHook
    from patchcycle.operators.inventory import CloudInventoryOperator

    tenant = bench_tenant(env)
    reset_calls(url)
    for cloud in tenant.clouds.declared:
        operator = CloudInventoryOperator(task_id=f"bench_{cloud}", cloud=cloud, tenant_id=tenant.id)
        # The plan only shapes how hosts are normalized, not which calls are made: an empty one will do.
        for _label, collect in operator._scopes({}, plan_patch_index({})):
            collect()
    FalconHook(falcon_conn_id=tenant.falcon_connection_id()).devices()
    return calls_now(url)


def plan_catalog_calls(url: str, env: dict[str, str], poll_seconds: float, timeout: float) -> dict[str, Any]:
    """Read the tenant's catalog once more through the plan operator's own code, counters reset per
    phase: ``prepare`` (AWS baselines, patch groups, tags, the Scan), ``scan_wait`` (the Scan's status
    polls, the ``run_commands`` check), then each cloud's reader. Returns the calls of each phase, its
    seconds, the readers' event records and what the minimum needs to know of the data read."""
    from patchcycle.config.models import OsFamily
    from patchcycle.domain.catalog import AVAILABLE_PATCHES_FAMILIES
    from patchcycle.hooks.aws import SsmFleetHook
    from patchcycle.operators.base import EventLog
    from patchcycle.operators.plan import CATALOG_READERS, cloud_has_hosts, prepare_aws_catalog
    from patchcycle.triggers import checks

    tenant = bench_tenant(env)
    environments = [e.name.value for e in tenant.environments]
    log = EventLog("bench_plan_catalog")
    phases: dict[str, Counter[str]] = {}
    seconds: dict[str, float] = {}
    prepared: dict[str, Any] = {}

    def phase(name: str, work: Any) -> Any:
        reset_calls(url)
        started = time.monotonic()
        out = work()
        seconds[name] = round(time.monotonic() - started, 2)
        phases[name] = calls_now(url)
        return out

    if tenant.clouds.aws is not None:
        prepared["aws"] = phase(
            "prepare_aws",
            lambda: prepare_aws_catalog(tenant, CYCLE_DATE, "bench__plan_catalog", environments, log),
        )
    commands = [
        {"command_id": s["command_id"], "conn_id": s["conn_id"], "region": s["region"]}
        for s in prepared.get("aws", {}).get("scans", [])
        if s.get("command_id")
    ]

    def wait() -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            state = checks.run_commands({"commands": commands})
            if state["done"] or time.monotonic() > deadline:
                return state
            time.sleep(poll_seconds)

    scan = phase("scan_wait", wait) if commands else {"done": True, "commands": {}}
    for cloud, reader in CATALOG_READERS.items():
        if cloud_has_hosts(tenant, cloud):
            phase(f"read_{cloud}", lambda r=reader, c=cloud: r(tenant, CYCLE_DATE, prepared.get(c, {}), log))
    # Independent of the reader: which Scanned hosts of a family read from its Scan miss something, and
    # how much (read after the counters were taken, so not counted).
    scan_hosts_missing: list[int] = []
    for scope in prepared.get("aws", {}).get("scans", []):
        ids = [
            h
            for f, hosts in scope["hosts"].items()
            if OsFamily(f) not in AVAILABLE_PATCHES_FAMILIES
            for h in hosts
        ]
        if ids:
            states = SsmFleetHook(aws_conn_id=scope["conn_id"], region_name=scope["region"]).patch_states(ids)
            scan_hosts_missing.extend(
                int(s.get("MissingCount") or 0) for s in states.values() if int(s.get("MissingCount") or 0)
            )
    return {
        "phases": phases,
        "seconds": seconds,
        "scan": scan,
        "prepared": prepared,
        "events": log.events,
        "families": sorted(OsFamily(b.os_family).value for b in tenant.baselines),
        "available_patches_families": sorted(
            OsFamily(b.os_family).value
            for b in tenant.baselines
            if OsFamily(b.os_family) in AVAILABLE_PATCHES_FAMILIES
        ),
        "scan_hosts_missing": scan_hosts_missing,
    }


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


def minimum_inventory(per_cloud: int, zones: list[int], rds_scopes: int = 0) -> dict[str, int]:
    """The fewest calls that read every host: each list at its documented page size (DescribeTags returns
    one row per tag: each host's Name, Environment and Criticality tags); an account and region that
    patches RDS reads its DB instances and their pending maintenance once each (one page here: at most
    100 DB instances)."""
    return {
        "aws": math.ceil(per_cloud / SSM_PAGE) * 2
        + math.ceil(3 * per_cloud / EC2_TAGS_PAGE)
        + 2 * rds_scopes,
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


def minimum_patching(per_cloud: int, batches: dict[str, list[int]] | None = None) -> dict[str, int]:
    """Per batch (a stage, and prod's canary batch apart from the rest, which the design sends on its
    own): AWS one SendCommand and the invocations in pages of 50; Azure one installPatches and one
    result read per machine (the API has no batch form); GCP one patch job and the instance details in
    pages of 100. ``batches``: each cloud's batch sizes as the cycle made them (from its evidence);
    without them, one batch per stage."""
    stages = [round(per_cloud * share) for share in (0.3, 0.2, 0.5)]
    sizes = {cloud: (batches or {}).get(cloud) or stages for cloud in ("aws", "gcp")}
    return {
        "aws": sum(1 + math.ceil(n / SSM_PAGE) for n in sizes["aws"] if n),
        "azure": 2 * per_cloud,
        "gcp": sum(1 + math.ceil(n / OSCONFIG_PAGE) for n in sizes["gcp"] if n),
    }


def batch_sizes(evidence: dict[str, Any]) -> dict[str, list[int]]:
    """Each cloud's patched batches (stage, and canary or rest in a stage with a canary) and their hosts."""
    canary = {h for s in evidence["stages"] for h in ((s.get("canary") or {}).get("hosts") or [])}
    sizes: Counter[tuple[str, str, bool]] = Counter(
        (h["cloud"], h["environment"], h["host_id"] in canary)
        for h in evidence["hosts"]
        if h.get("final_state") == "patched"
    )
    out: dict[str, list[int]] = {}
    for (cloud, _, _), n in sorted(sizes.items()):
        out.setdefault(cloud, []).append(n)
    return out


# The plan's catalog calls that are status polls of the Scan (they scale with how long the Scan takes
# divided by the poll interval, not with hosts): listed apart, as the patching's status polls are.
PLAN_STATUS_POLLS = {"aws": ["aws.ssm.ListCommands"]}


def plan_catalog_by_cloud(measured: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """The plan catalog's calls by cloud, without the Scan's status polls; and those polls."""
    total: Counter[str] = Counter()
    for calls in measured["phases"].values():
        total.update(calls)
    polls = {c: sum(total.get(op, 0) for op in ops) for c, ops in PLAN_STATUS_POLLS.items()}
    counted = Counter(
        {k: v for k, v in total.items() if not any(k in ops for ops in PLAN_STATUS_POLLS.values())}
    )
    return by_cloud(counted), polls


def _events(measured: dict[str, Any], action: str, prefix: str) -> list[dict[str, Any]]:
    return [
        e["details"]
        for e in measured["events"]
        if e["action"] == action and str(e.get("target") or "").startswith(prefix)
    ]


def minimum_plan_catalog(
    measured: dict[str, Any], per_cloud: int, zones: list[int]
) -> tuple[dict[str, int], dict[str, str]]:
    """The fewest calls that make the plan's catalog, at the documented maxima; with each cloud's terms.

    Data sizes (hosts to tag, catalog rows, assessment rows) are what the APIs returned in this run;
    call counts are never taken from the code under test."""
    families = len(measured["families"])
    scopes = measured["prepared"].get("aws", {}).get("scans", [])
    sent = _events(measured, "plan.scan_sent", "aws:")
    tagged = sum(int(e.get("tagged") or 0) for e in sent)
    scanned = sum(len(ids) for scope in scopes for ids in scope["hosts"].values())
    scan_read = sum(
        len(ids)
        for scope in scopes
        for f, ids in scope["hosts"].items()
        if f not in measured["available_patches_families"]
    )
    available_rows = {
        e["os_family"]: int(e.get("entries") or 0)
        for e in _events(measured, "plan.catalog_read", "aws:")
        if e.get("source") and "describe_instance_patches_calls" not in e
    }
    region_scopes = max(1, len(scopes))
    aws = (
        region_scopes * (1 + 1)  # DescribePatchBaselines and DescribePatchGroups: one page each per region
        + region_scopes * families  # Create/UpdatePatchBaseline: one per family (no batch form)
        + region_scopes * math.ceil(per_cloud / SSM_PAGE)  # DescribeInstanceInformation
        + math.ceil(2 * per_cloud / EC2_TAGS_PAGE)  # DescribeTags: environment and Patch Group tags
        + math.ceil(tagged / EC2_CREATE_TAGS_BATCH)  # CreateTags for hosts whose Patch Group tag is wrong
        + (len(sent) if scanned else 0)  # one Scan SendCommand per region
        + sum(max(1, math.ceil(n / SSM_AVAILABLE_PATCHES_PAGE)) for n in available_rows.values())
        + math.ceil(scan_read / SSM_PATCH_STATES_BATCH)  # DescribeInstancePatchStates
        # DescribeInstancePatches is per instance by API design: one call per host whose Scan found
        # something missing (more past 100 missing); no batch form exists.
        + sum(math.ceil(n / SSM_INSTANCE_PATCHES_PAGE) for n in measured["scan_hosts_missing"])
    )
    arc_rows = sum(int(e.get("patch_rows") or 0) for e in _events(measured, "plan.catalog_read", "azure:"))
    azure = math.ceil(per_cloud / ARM_MACHINES_PAGE) + max(1, math.ceil(arc_rows / GRAPH_PAGE))
    gcp = sum(2 * max(1, math.ceil(n / OSCONFIG_PAGE)) for n in zones)
    basis = {
        "aws": (
            "per region: 1 DescribePatchBaselines + 1 DescribePatchGroups page, "
            f"1 Create/UpdatePatchBaseline per baseline family ({families}), "
            f"DescribeInstanceInformation in pages of {SSM_PAGE}; "
            f"DescribeTags for 2 tag keys in pages of {EC2_TAGS_PAGE}; CreateTags for the {tagged} host(s) "
            f"to tag in batches of {EC2_CREATE_TAGS_BATCH}; 1 Scan SendCommand; DescribeAvailablePatches in "
            f"pages of {SSM_AVAILABLE_PATCHES_PAGE} per family with that source "
            f"({', '.join(sorted(available_rows)) or 'none'}: {sum(available_rows.values())} row(s)); "
            f"DescribeInstancePatchStates in batches of {SSM_PATCH_STATES_BATCH} for the {scan_read} host(s) "
            "read from their Scan; DescribeInstancePatches is per instance by API design, so the minimum "
            f"is one call per host whose Scan found something missing ({len(measured['scan_hosts_missing'])} "
            "here), one more per further 100 missing"
        ),
        "azure": (
            f"Arc machines in pages of {ARM_MACHINES_PAGE}; Resource Graph softwarepatches rows "
            f"({arc_rows}) in pages of {GRAPH_PAGE}"
        ),
        "gcp": (
            f"per zone: ListInventories and ListVulnerabilityReports in pages of {OSCONFIG_PAGE} "
            f"(zones of {zones} instances)"
        ),
    }
    return {"aws": aws, "azure": azure, "gcp": gcp}, basis


def plan_catalog_exercised(measured: dict[str, Any]) -> dict[str, Any]:
    """What this scenario's plan read, per cloud and source (from the readers' event records)."""
    scopes = measured["prepared"].get("aws", {}).get("scans", [])
    reads = _events(measured, "plan.catalog_read", "aws:")
    return {
        "aws_hosts_by_family": {
            f: sum(len(s["hosts"].get(f, [])) for s in scopes)
            for f in sorted({f for s in scopes for f in s["hosts"]})
        },
        "aws_describe_available_patches": {
            e["os_family"]: e.get("entries") for e in reads if "describe_instance_patches_calls" not in e
        },
        "aws_scan_read_families": {
            e["os_family"]: {
                "hosts": e.get("hosts"),
                "entries": e.get("entries"),
                "describe_instance_patches_calls": e.get("describe_instance_patches_calls"),
            }
            for e in reads
            if "describe_instance_patches_calls" in e
        },
        "aws_hosts_with_missing_from_scan": len(measured["scan_hosts_missing"]),
        "aws_scan_status": measured["scan"].get("commands"),
        "azure": _events(measured, "plan.catalog_read", "azure:"),
        "gcp": _events(measured, "plan.catalog_read", "gcp:"),
    }


def plan_task_instance(airflow_home: Path, dag_id: str) -> dict[str, Any]:
    """The ``plan`` task instance of the DAG's latest run, from the run's Airflow metadata DB (as
    tests/e2e/conftest.py's task_states reads it)."""
    with sqlite3.connect(airflow_home / "airflow.db") as conn:
        row = conn.execute(
            "SELECT ti.state, ti.try_number, ti.start_date, ti.end_date, ti.duration FROM task_instance ti "
            "JOIN dag_run dr ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id "
            "WHERE ti.dag_id = ? AND ti.task_id = 'plan' "
            "AND dr.id = (SELECT MAX(id) FROM dag_run WHERE dag_id = ?)",
            (dag_id, dag_id),
        ).fetchone()
    if row is None:
        return {"state": None}
    state, try_number, start, end, duration = row
    if duration is None and start and end:
        duration = (
            dt.datetime.fromisoformat(str(end)) - dt.datetime.fromisoformat(str(start))
        ).total_seconds()
    return {
        "state": state,
        "try_number": try_number,
        "start_date": str(start) if start else None,
        "end_date": str(end) if end else None,
        "duration_seconds": round(float(duration), 2) if duration is not None else None,
    }


def seed_history(url: str) -> None:
    """cu_alpha's first-seen ledger as its earlier runs left it (devtools/demo_history.yaml), as the
    demo seeds it: Update Manager dates no Linux update, so without it this past-dated cycle would
    approve none of the Arc machines' Ubuntu updates (a tenant's first cycle only observes them)."""
    import boto3

    from patchcycle.domain.plan import LEDGER_PREFIX

    history = yaml.safe_load((REPO / "devtools" / "demo_history.yaml").read_text())["cu_alpha"]
    s3 = boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    body = json.dumps({k: str(v) for k, v in history.items()}).encode()
    s3.put_object(Bucket="patchcycle-evidence-cu-alpha", Key=f"{LEDGER_PREFIX}earlier-runs.json", Body=body)


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
            seed_history(url)
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
            if rc != 0:
                print((work / "cycle.log").read_text()[-4000:], file=sys.stderr)
            cycle = Counter(fleetsim_get(url, "/fleetsim/calls")["calls"])
            truth = fleetsim_get(url, "/fleetsim/ground-truth")["hosts"]
            inventory = inventory_calls(url, env)
            plan_measured = plan_catalog_calls(url, env, args.poll_seconds, timeout=600)
            plan_ti = plan_task_instance(work / "airflow", DAG_ID)
            tenant = bench_tenant(env)
            evidence, _ = download_pack(url, tenant, work / "pack")
            if not evidence:
                raise SystemExit(f"no evidence pack in s3://{tenant.evidence.bucket}: see the cycle's log")
        per_cloud = args.hosts // 3
        thousand = per_cloud / 1000
        inv = by_cloud(inventory)
        rds_scopes = sum(
            len(a.regions) for a in (tenant.clouds.aws.accounts if tenant.clouds.aws else []) if a.rds
        )
        inv_min = minimum_inventory(per_cloud, zone_counts(scenario), rds_scopes)
        patching = {cloud: {op: cycle.get(op, 0) for op in ops} for cloud, ops in PATCH_CALLS.items()}
        batches = batch_sizes(evidence)
        patch_min = minimum_patching(per_cloud, batches)
        plan_calls, plan_polls = plan_catalog_by_cloud(plan_measured)
        plan_min, plan_basis = minimum_plan_catalog(plan_measured, per_cloud, zone_counts(scenario))
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
            "patching_batches": batches,
            "status_polls": {c: {op: cycle.get(op, 0) for op in ops} for c, ops in STATUS_POLLS.items()},
            "plan_task_seconds": plan_ti.get("duration_seconds"),
            "plan_task_instance": plan_ti
            | {"source": "airflow metadata DB task_instance (start to end, deferred Scan wait included)"},
            "plan_catalog_calls_per_1000_hosts": {
                c: round(plan_calls.get(c, 0) / thousand, 1) for c in ("aws", "azure", "gcp")
            },
            "plan_catalog_minimum_per_1000_hosts": {c: round(n / thousand, 1) for c, n in plan_min.items()},
            "plan_catalog_ratio_to_minimum": {
                c: round(plan_calls.get(c, 0) / n, 2) for c, n in plan_min.items()
            },
            "plan_catalog_minimum_basis": plan_basis,
            "plan_catalog_scan_status_polls": plan_polls,
            "plan_catalog_phase_seconds": plan_measured["seconds"],
            "plan_catalog_exercised": plan_catalog_exercised(plan_measured),
            "plan_catalog_calls": {
                name: dict(sorted(calls.items())) for name, calls in plan_measured["phases"].items()
            },
            "poll_seconds": args.poll_seconds,
            "cycle_calls_by_cloud": by_cloud(cycle),
            "inventory_calls": dict(sorted(inventory.items())),
        }
        print(json.dumps(result, indent=1))
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
