"""The Falcon sensor roll-out at scale through Airflow against fleetsim: wall time, each task's time, the
number of task instances (constant in hosts), and API calls per 1,000 hosts per cloud and service against
the fewest the documented batch sizes allow.

    .venv/bin/python benchmarks/bench_falcon_rollout.py --hosts 3000 --compare 300

It scales the ``alpha_falcon_rollout`` end-to-end scenario (tests/e2e/test_falcon_rollout.py) to N hosts
split evenly across AWS, Azure Arc and GCP and, in each cloud, across nonprod, staging and prod; a share
of each environment's Linux hosts (``--without-sensor``, a third by default) has no Falcon sensor, the
others run the current one. No faults, no throttling: every host ends validated. cu_alpha's tenant file
gets the e2e's ``falcon.rollout`` (host groups: a static nonprod group the roll-out creates and fills,
staging and prod the dynamic groups fleetsim seeds; the installer bucket; ``min_wait_seconds: 0``), and
``falcon_rollout__cu_alpha`` runs once with ``airflow dags test``. Each size runs in a fleetsim and an
Airflow metadata DB of its own.

What is measured: the run's wall time; each task instance's state, start, end and duration from the run's
metadata DB; fleetsim's count of every API call the run made (``/fleetsim/calls``, reset before the run).
What the minimum is computed from: the scenario (hosts per cloud, scope, zone and environment, which
have a sensor) and the documented maximum of each call (see ``MAXIMA``, each with where it is
documented); never from the code under test. Status polls (SSM ListCommands, OS Config's operation reads,
the Arc extension operations' reads beyond one per machine, the Falcon device reads of the validation's
wait beyond one) scale with how long the work takes divided by the poll interval, not with how the calls
are batched: they are listed apart and are not part of the minimum or the ratio. It prints one JSON
document.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sqlite3
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "plugins"))

from devtools.local import airflow_env, fleetsim_get, fleetsim_s3, migrate_db, run_cycle, running_fleetsim  # noqa: E402

BASE = REPO / "tests" / "e2e" / "scenarios" / "alpha_falcon_rollout.yaml"
DAG_ID = "falcon_rollout__cu_alpha"
BUCKET = "patchcycle-evidence-cu-alpha"
LOGICAL_DATE = "2026-12-01T06:00:00+00:00"
ENVIRONMENTS = ("nonprod", "staging", "prod")
# cu_alpha's roll-out as tests/e2e/test_falcon_rollout.py declares it (ROLLOUT).
ROLLOUT = {
    "host_groups": {"nonprod": "cu-alpha-nonprod", "staging": "tag-staging", "prod": "tag-prod"},
    "sensor_version": {"max_versions_behind": 0},
    "install": {
        "aws": {"installer_bucket": "patchcycle-falcon-installers-cu-alpha"},
        "gcp": {"min_wait_seconds": 0},
    },
}

# Documented maxima per call: (items per call, where it is documented).
MAXIMA: dict[str, tuple[int, str]] = {
    "ssm_instance_information": (50, "DescribeInstanceInformation MaxResults 5-50 (SSM API reference)"),
    "ssm_patch_states": (50, "DescribeInstancePatchStates InstanceIds up to 50 (SSM API reference)"),
    "ssm_send": (50, 'SendCommand InstanceIds "up to a maximum of 50 IDs" (SSM API reference)'),
    "ssm_invocations": (50, "ListCommandInvocations MaxResults 1-50 (SSM API reference)"),
    "ec2_tags": (1000, "DescribeTags MaxResults 5-1000 (EC2 API reference)"),
    "arm_machines": (100, "Machines_ListByResourceGroup: ARM pages of at most 100 machines (nextLink)"),
    "graph": (
        1000,
        "Resource Graph $top at most 1000 rows per page (Resource Graph REST, QueryRequestOptions)",
    ),
    "compute_instances": (500, "instances.list maxResults 0-500 (Compute Engine API reference)"),
    "osconfig_page": (
        100,
        "OS Config inventories / vulnerabilityReports / reports pageSize (hooks/gcp_osconfig.py)",
    ),
    "falcon_scroll": (10000, "QueryDevicesByFilterScroll limit 1-10000 (FalconPy _endpoint/_hosts.py)"),
    "falcon_details": (5000, "PostDeviceDetailsV2 up to 5000 ids (FalconPy _endpoint/_hosts.py)"),
    "falcon_group_action": (
        500,
        "performGroupAction add-hosts: no published maximum; PSFalcon Invoke-FalconHostGroupAction "
        "batches of 500, fleetsim refuses more (hooks/falcon.py GROUP_ACTION_BATCH)",
    ),
    "falcon_group_members": (5000, "queryGroupMembers limit 1-5000 (FalconPy _endpoint/_host_group.py)"),
}


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def scenario_for(hosts: int, without_sensor: float, path: Path) -> Path:
    """The roll-out scenario with ``hosts`` hosts: a third per cloud, a third of those per environment;
    in each environment ``without_sensor`` of the hosts have no sensor (a copy of each Linux group of the
    environment, suffix ``-ns``), the rest the scenario's current sensor; no faults, no throttling."""
    data = yaml.safe_load(BASE.read_text())
    tenant = data["tenants"][0]
    tenant["faults"] = {}
    tenant["azure"]["throttle"] = {"requests": 0}
    for cloud, per_cloud in zip(("aws", "azure", "gcp"), _split(hosts, 3), strict=True):
        # The scenario's special hosts (no sensor, an old one) are replaced by the share without a sensor.
        templates = [g for g in tenant[cloud]["groups"] if "falcon_sensor" not in g]
        groups = []
        for environment, per_env in zip(ENVIRONMENTS, _split(per_cloud, len(ENVIRONMENTS)), strict=True):
            members = [g for g in templates if g["environment"] == environment]
            linux = [g for g in members if not g["os_family"].startswith("windows")]
            bare = round(per_env * without_sensor)
            for group, count in zip(members, _split(per_env - bare, len(members)), strict=True):
                if count:
                    groups.append({**group, "count": count})
            for group, count in zip(linux, _split(bare, len(linux)), strict=True):
                if count:
                    groups.append(
                        {**group, "prefix": f"{group['prefix']}-ns", "count": count, "falcon_sensor": None}
                    )
        tenant[cloud]["groups"] = groups
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tenants_for(folder: Path) -> Path:
    """The demo tenants, cu_alpha with the e2e's roll-out (as tests/e2e/conftest.py's fleet_with edits it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in (REPO / "include" / "tenants").glob("*.yaml"):
        (folder / source.name).write_text(source.read_text())
    alpha = yaml.safe_load((folder / "cu_alpha.yaml").read_text())
    alpha["falcon"] = {**alpha.get("falcon", {}), "rollout": ROLLOUT}
    (folder / "cu_alpha.yaml").write_text(yaml.safe_dump(alpha, sort_keys=False))
    return folder


def reset_calls(url: str) -> None:
    request = urllib.request.Request(f"{url}/fleetsim/calls/reset", data=b"", method="POST")
    urllib.request.urlopen(request, timeout=30).read()  # noqa: S310 - loopback


def task_instances(airflow_home: Path, dag_id: str) -> list[dict[str, Any]]:
    """Every task instance of the DAG's latest run, from the run's metadata DB."""
    with sqlite3.connect(airflow_home / "airflow.db") as conn:
        rows = conn.execute(
            "SELECT ti.task_id, ti.map_index, ti.state, ti.try_number, ti.start_date, ti.end_date, "
            "ti.duration "
            "FROM task_instance ti JOIN dag_run dr ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id "
            "WHERE ti.dag_id = ? AND dr.id = (SELECT MAX(id) FROM dag_run WHERE dag_id = ?) "
            "ORDER BY ti.start_date",
            (dag_id, dag_id),
        ).fetchall()
    out = []
    for task_id, map_index, state, tries, start, end, duration in rows:
        if duration is None and start and end:
            duration = (
                dt.datetime.fromisoformat(str(end)) - dt.datetime.fromisoformat(str(start))
            ).total_seconds()
        out.append(
            {
                "task_id": task_id,
                "map_index": map_index,
                "state": state,
                "try_number": tries,
                "start_date": str(start) if start else None,
                "end_date": str(end) if end else None,
                "duration_seconds": round(float(duration), 2) if duration is not None else None,
            }
        )
    return out


def rollout_pack(url: str) -> dict[str, Any]:
    """The run's rollout.json (its pack in the evidence bucket)."""
    s3 = fleetsim_s3(url)
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="falcon-rollout/")
        for o in page.get("Contents", [])
        if o["Key"].endswith("/pack/rollout.json")
    ]
    if not keys:
        return {}
    return json.loads(s3.get_object(Bucket=BUCKET, Key=sorted(keys)[-1])["Body"].read())


def fleet_facts(scenario: Path, tenants: Path) -> dict[str, Any]:
    """What the minimum needs to know, from the scenario and the tenant file (never from the run)."""
    tenant = yaml.safe_load(scenario.read_text())["tenants"][0]
    declared = yaml.safe_load((tenants / "cu_alpha.yaml").read_text())["clouds"]
    facts: dict[str, Any] = {"hosts": {}, "without_sensor": {}, "by_env": {}, "platforms": set()}
    zones: dict[str, dict[str, Any]] = {
        z: {"hosts": 0, "without_sensor": 0, "envs": Counter(), "bare_envs": set()}
        for p in declared["gcp"]["projects"]
        for z in p["zones"]
    }
    for cloud in ("aws", "azure", "gcp"):
        groups = tenant[cloud]["groups"]
        facts["hosts"][cloud] = sum(g["count"] for g in groups)
        facts["without_sensor"][cloud] = sum(g["count"] for g in groups if g.get("falcon_sensor", "") is None)
        by_env: dict[str, dict[str, int]] = defaultdict(lambda: {"with_sensor": 0, "without_sensor": 0})
        for g in groups:
            by_env[g["environment"]][
                "without_sensor" if g.get("falcon_sensor", "") is None else "with_sensor"
            ] += g["count"]
            facts["platforms"].add("windows" if g["os_family"].startswith("windows") else "linux")
            if cloud == "gcp":
                zone = zones[g["zone"]]
                zone["hosts"] += g["count"]
                zone["envs"][g["environment"]] += g["count"]
                if g.get("falcon_sensor", "") is None:
                    zone["without_sensor"] += g["count"]
                    zone["bare_envs"].add(g["environment"])
        facts["by_env"][cloud] = dict(by_env)
    # An OS policy assignment selects VMs by label: every VM of the environments it installs in, in its zone.
    facts["zones"] = {
        z: {
            "hosts": v["hosts"],
            "without_sensor": v["without_sensor"],
            "selected": sum(n for env, n in v["envs"].items() if env in v["bare_envs"]),
        }
        for z, v in sorted(zones.items())
    }
    facts["aws_scopes"] = sum(len(a["regions"]) for a in declared["aws"]["accounts"])
    facts["arc_resource_groups"] = sum(len(s["resource_groups"]) for s in declared["azure"]["subscriptions"])
    total = sum(facts["hosts"].values())
    bare = sum(facts["without_sensor"].values())
    facts["devices_before"], facts["devices_after"] = total - bare, total
    facts["nonprod_sensors_before"] = sum(
        facts["by_env"][c]["nonprod"]["with_sensor"] for c in facts["by_env"]
    )
    facts["nonprod_sensors_installed"] = sum(
        facts["by_env"][c]["nonprod"]["without_sensor"] for c in facts["by_env"]
    )
    facts["platforms"] = sorted(facts["platforms"])
    return facts


def c(n: int, size: int) -> int:
    return math.ceil(n / size) if n > 0 else 0


# How each call the roll-out makes counts: "work" against a minimum; "unneeded": a read the roll-out does
# not use (the cycle's inventory reader's patch data), minimum 0; "poll": a status poll; "split": a minimum
# number of reads that are the result, every further read a poll; "platform": the evidence store, the
# installer staging and role assumption (S3, STS) and Falcon's OAuth2 tokens, listed apart.
def minimum_calls(facts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each call's minimum, with its basis; the documented maxima of ``MAXIMA``."""
    n, bare, zones = facts["hosts"], facts["without_sensor"], facts["zones"]
    platforms = len(facts["platforms"])
    m = {k: size for k, (size, _) in MAXIMA.items()}
    aws_bare_scopes = facts["aws_scopes"] if bare["aws"] else 0
    bare_zones = [z for z in zones.values() if z["without_sensor"]]
    d0, d1 = facts["devices_before"], facts["devices_after"]
    table: dict[str, tuple[str, int, str]] = {
        # AWS: find (the inventory), install_aws
        "aws.ssm.DescribeInstanceInformation": (
            "work",
            facts["aws_scopes"] * max(1, c(n["aws"], m["ssm_instance_information"])),
            f"{n['aws']} instances in pages of {m['ssm_instance_information']}",
        ),
        "aws.ec2.DescribeTags": (
            "work",
            max(1, c(2 * n["aws"], m["ec2_tags"])),
            f"Name and environment tags of {n['aws']} instances (one row each) in pages of {m['ec2_tags']}",
        ),
        "aws.ssm.DescribeInstancePatchStates": ("unneeded", 0, "patch states: not used by the roll-out"),
        "aws.rds.DescribeDBInstances": ("unneeded", 0, "RDS: no sensor; listed only to report them skipped"),
        "aws.rds.DescribePendingMaintenanceActions": (
            "unneeded",
            0,
            "RDS OS updates: not used by the roll-out",
        ),
        "aws.ssm.PutParameter": (
            "work",
            2 * aws_bare_scopes,
            "CID and token SecureStrings per account/region",
        ),
        "aws.ssm.SendCommand": (
            "work",
            c(bare["aws"], m["ssm_send"]),
            f"{bare['aws']} instances to install (one OS family and version) by {m['ssm_send']}",
        ),
        "aws.ssm.ListCommandInvocations": (
            "work",
            c(bare["aws"], m["ssm_invocations"]),
            f"each command's invocations (at most {m['ssm_send']}) in one page of {m['ssm_invocations']}",
        ),
        "aws.ssm.ListCommands": ("poll", 0, "the install commands' status polls"),
        # Azure Arc
        "azure.arm.Machines_ListByResourceGroup": (
            "work",
            facts["arc_resource_groups"] * max(1, c(n["azure"], m["arm_machines"])),
            f"{n['azure']} machines in pages of {m['arm_machines']}",
        ),
        "azure.resourcegraph.Resources": ("unneeded", 0, "patch assessments: not used by the roll-out"),
        "azure.arm.MachineExtensions_CreateOrUpdate": (
            "work",
            bare["azure"],
            "one PUT per machine: MachineExtensions_CreateOrUpdate is a per-machine resource "
            "(.../machines/{machineName}/extensions/{extensionName}, HybridCompute 2024-07-10); no batch API",
        ),
        "azure.arm.ExtensionOperationStatus_Get": (
            "split",
            bare["azure"],
            "one Azure-AsyncOperation read per machine is its result; further reads are polls",
        ),
        "azure.arm.MachineExtensions_Get": (
            "work",
            bare["azure"],
            "the extension's instance view per machine (MachineExtensions_Get: per machine, no batch form)",
        ),
        # GCP
        "gcp.compute.ListInstances": (
            "work",
            sum(max(1, c(z["hosts"], m["compute_instances"])) for z in zones.values()),
            f"per zone, instances in pages of {m['compute_instances']} (zones {zones})",
        ),
        "gcp.osconfig.ListInventories": (
            "work",
            sum(max(1, c(z["hosts"], m["osconfig_page"])) for z in zones.values()),
            f"per zone, inventories in pages of {m['osconfig_page']}",
        ),
        "gcp.osconfig.ListVulnerabilityReports": (
            "unneeded",
            0,
            "vulnerability reports: not used by the roll-out",
        ),
        "gcp.osconfig.CreateOSPolicyAssignment": (
            "work",
            len(bare_zones),
            "one OS policy assignment per zone with VMs to install",
        ),
        "gcp.osconfig.GetOperation": (
            "split",
            len(bare_zones),
            "one read per assignment's operation finds it done; further reads are polls",
        ),
        "gcp.osconfig.ListOSPolicyAssignmentReports": (
            "work",
            sum(c(z["selected"], m["osconfig_page"]) for z in bare_zones),
            "per zone, the reports of every VM the assignment's labels select, in pages of "
            f"{m['osconfig_page']}",
        ),
        # Falcon
        "falcon.QueryDevicesByFilterScroll": (
            "split",
            c(d0, m["falcon_scroll"]) + c(d1, m["falcon_scroll"]),
            f"find reads {d0} devices, validation {d1} once, in pages of {m['falcon_scroll']}; further reads "
            "are the validation wait's polls",
        ),
        "falcon.GetDeviceDetails": (
            "split",
            c(d0, m["falcon_details"]) + c(d1, m["falcon_details"]),
            f"the same reads' details, {m['falcon_details']} ids per call; further reads are polls",
        ),
        "falcon.queryCombinedSensorUpdateBuilds": ("work", platforms, "one per platform (it takes one)"),
        "falcon.GetCombinedSensorInstallersByQuery": (
            "work",
            1 if bare["aws"] else 0,
            "one per platform and version staged for AWS",
        ),
        "falcon.DownloadSensorInstallerByIdV2": ("work", 1 if bare["aws"] else 0, "one per installer staged"),
        "falcon.GetSensorInstallersCCIDByQuery": (
            "work",
            1 if bare["aws"] else 0,
            "the CID (the install connection gives none)",
        ),
        "falcon.queryCombinedHostGroups": ("work", 3, "one look per environment's host group"),
        "falcon.createHostGroups": ("work", 1, "the nonprod static group does not exist yet"),
        "falcon.queryCombinedPreventionPolicies": ("work", platforms, "one listing per platform"),
        "falcon.queryCombinedSensorUpdatePoliciesV2": ("work", platforms, "one listing per platform"),
        "falcon.queryGroupMembers": (
            "work",
            max(1, c(0, m["falcon_group_members"])),
            "the static group's members (empty when created), pages of 5,000",
        ),
        "falcon.performGroupAction": (
            "work",
            c(facts["nonprod_sensors_before"] + facts["nonprod_sensors_installed"], m["falcon_group_action"]),
            f"add-hosts by {m['falcon_group_action']}: the {facts['nonprod_sensors_before']} nonprod sensors "
            f"there and the {facts['nonprod_sensors_installed']} installed (one registering after the first "
            "add is added on a wake of the wait: one more call per wake, not per host)",
        ),
    }
    return {
        op: {"kind": kind, "minimum": minimum, "basis": basis} for op, (kind, minimum, basis) in table.items()
    }


def cloud_of(op: str) -> str:
    head = op.split(".", 1)[0]
    return {"falcon": "falcon"}.get(head, head)


def analyse(calls: Counter[str], facts: dict[str, Any]) -> dict[str, Any]:
    """Calls per cloud and operation: work (against its minimum), unneeded reads, polls, platform."""
    table = minimum_calls(facts)
    total_hosts = sum(facts["hosts"].values())
    per_op: dict[str, dict[str, Any]] = {}
    platform: dict[str, int] = {}
    polls: dict[str, int] = {}
    unclassified: dict[str, int] = {}
    for op, count in sorted(calls.items()):
        if op.startswith(("aws.s3.", "aws.sts.")) or op == "falcon.oauth2.token":
            platform[op] = count
            continue
        entry = table.get(op)
        if entry is None:
            unclassified[op] = count
            continue
        if entry["kind"] == "poll":
            polls[op] = count
            continue
        work = count
        if entry["kind"] == "split":
            work = min(count, entry["minimum"])
            if count > work:
                polls[op] = count - work
        per_op[op] = {
            "calls": work,
            "minimum": entry["minimum"],
            "kind": entry["kind"],
            "basis": entry["basis"],
        }
    for op, entry in table.items():  # a call the minimum needs that the run never made
        if entry["minimum"] and op not in per_op:
            per_op[op] = {
                "calls": 0,
                "minimum": entry["minimum"],
                "kind": entry["kind"],
                "basis": entry["basis"],
            }
    clouds: dict[str, dict[str, Any]] = {}
    for cloud in ("aws", "azure", "gcp", "falcon"):
        ops = {op: v for op, v in per_op.items() if cloud_of(op) == cloud}
        hosts = total_hosts if cloud == "falcon" else facts["hosts"][cloud]
        per_k = 1000 / hosts
        needed = sum(v["calls"] for v in ops.values() if v["kind"] != "unneeded")
        unneeded = sum(v["calls"] for v in ops.values() if v["kind"] == "unneeded")
        minimum = sum(v["minimum"] for v in ops.values())
        clouds[cloud] = {
            "hosts": hosts,
            "calls": needed + unneeded,
            "calls_per_1000_hosts": round((needed + unneeded) * per_k, 1),
            "minimum_per_1000_hosts": round(minimum * per_k, 1),
            "ratio_to_minimum": round((needed + unneeded) / minimum, 2) if minimum else None,
            "ratio_without_unneeded_reads": round(needed / minimum, 2) if minimum else None,
            "polls": {op: k for op, k in polls.items() if cloud_of(op) == cloud},
            "polls_per_1000_hosts": round(
                sum(k for op, k in polls.items() if cloud_of(op) == cloud) * per_k, 1
            ),
            "operations": {
                op: {
                    **v,
                    "per_1000_hosts": round(v["calls"] * per_k, 2),
                    "minimum_per_1000_hosts": round(v["minimum"] * per_k, 2),
                    "ratio": round(v["calls"] / v["minimum"], 2) if v["minimum"] else None,
                }
                for op, v in sorted(ops.items())
            },
        }
    # Fewer calls than the documented page size allows: the emulator answered more per page than the cloud
    # would, or the minimum's assumption does not hold here.
    below = {
        op: {"calls": v["calls"], "minimum": v["minimum"]}
        for op, v in sorted(per_op.items())
        if v["calls"] < v["minimum"]
    }
    return {
        "clouds": clouds,
        "below_minimum": below,
        "platform_calls": platform,
        "unclassified_calls": unclassified,
    }


def run_once(hosts: int, without_sensor: float, poll_seconds: float, work: Path) -> dict[str, Any]:
    """One roll-out of ``hosts`` hosts in a fleetsim and an Airflow home of its own; what it measured."""
    scenario = scenario_for(hosts, without_sensor, work / "scenario.yaml")
    tenants = tenants_for(work / "tenants")
    with running_fleetsim(scenario, work / "fleetsim", timeout=900) as url:
        env = airflow_env(work / "airflow", url, poll_seconds=poll_seconds, tenants_dir=tenants)
        migrate_db(env)
        reset_calls(url)
        started = time.monotonic()
        rc = run_cycle(env, DAG_ID, LOGICAL_DATE, {}, work / "rollout.log")
        wall = time.monotonic() - started
        calls = Counter(fleetsim_get(url, "/fleetsim/calls")["calls"])
        truth = fleetsim_get(url, "/fleetsim/ground-truth")["hosts"]
        doc = rollout_pack(url)
    if rc != 0:
        print((work / "rollout.log").read_text()[-6000:], file=sys.stderr)
    facts = fleet_facts(scenario, tenants)
    tis = task_instances(work / "airflow", DAG_ID)
    starts = [t["start_date"] for t in tis if t["start_date"]]
    ends = [t["end_date"] for t in tis if t["end_date"]]
    installed = sum(
        1
        for h in truth
        if any(a.get("action") == "falcon.install" and a.get("result") == "installed" for a in h["actions"])
    )
    events = Counter(e["action"] for e in doc.get("events") or [])
    return {
        "hosts": hosts,
        "exit_code": rc,
        "wall_seconds": round(wall, 1),
        "tasks_span_seconds": (
            round(
                (
                    dt.datetime.fromisoformat(max(ends)) - dt.datetime.fromisoformat(min(starts))
                ).total_seconds(),
                1,
            )
            if starts and ends
            else None
        ),
        "task_instances": len(tis),
        "tasks": {t["task_id"]: {k: v for k, v in t.items() if k != "task_id"} for t in tis},
        "fleet": {k: v for k, v in facts.items() if k not in ("by_env",)},
        "outcome": doc.get("outcome"),
        "summary": doc.get("summary"),
        "sensors_installed_in_ground_truth": installed,
        "events": {k: events[k] for k in sorted(events) if k.startswith("falcon.")},
        **analyse(calls, facts),
        "calls": dict(sorted(calls.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=3000)
    parser.add_argument(
        "--compare",
        type=int,
        nargs="*",
        default=[300],
        help="smaller sizes run too (task instances must match)",
    )
    parser.add_argument("--without-sensor", type=float, default=1 / 3, help="share of hosts with no sensor")
    parser.add_argument("--poll-seconds", type=float, default=2.0)
    parser.add_argument("--keep", type=Path, help="keep each run's fleetsim, Airflow home and log under here")
    args = parser.parse_args()
    runs = []
    for hosts in [args.hosts, *args.compare]:
        with tempfile.TemporaryDirectory(prefix="patchcycle-bench-rollout-") as tmp:
            work = args.keep / f"hosts-{hosts}" if args.keep else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            runs.append(run_once(hosts, args.without_sensor, args.poll_seconds, work))
    counts = {r["hosts"]: r["task_instances"] for r in runs}
    result = {
        "dag_id": DAG_ID,
        "poll_seconds": args.poll_seconds,
        "without_sensor": round(args.without_sensor, 3),
        "maxima": {k: {"per_call": size, "source": src} for k, (size, src) in MAXIMA.items()},
        "task_instances_by_hosts": counts,
        "task_instances_constant": len(set(counts.values())) == 1,
        "wall_seconds_by_hosts": {r["hosts"]: r["wall_seconds"] for r in runs},
        "runs": runs,
    }
    print(json.dumps(result, indent=1, default=str))
    return 0 if all(r["exit_code"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
