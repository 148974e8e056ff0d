"""Detection to Prevention through Airflow against fleetsim (issue 15, the seed paper's 3.3): the first run
asks the cycle's approval step (Airflow's human-in-the-loop approval, answered through Airflow's REST API
as a named user) and moves non-prod to Prevention; a detection storm on the non-prod sensors then holds
prod back and pages once, however many runs see it."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from devtools.hitl_local import respond_hitl_local
from devtools.local import fleetsim_get, fleetsim_s3, run_cycle
from tests.conftest import REPO
from tests.e2e.conftest import fleet_with

pytestmark = pytest.mark.e2e

DAG_ID = "falcon_rollout__cu_alpha"
BUCKET = "patchcycle-evidence-cu-alpha"
APPROVER = "jlee"
STORM_AT_SECONDS = 45.0
ML = {"id": "CloudAntiMalware", "type": "mlslider"}
ROLLOUT = {
    "host_groups": {"nonprod": "tag-nonprod", "staging": "tag-staging", "prod": "tag-prod"},
    "sensor_version": {"max_versions_behind": 0},
    "prevention_phases": [
        {
            "name": "nonprod",
            "environments": ["nonprod", "staging"],
            "settings": [{**ML, "value": {"detection": "MODERATE", "prevention": "MODERATE"}}],
            # A day of monitoring: the runs below are days apart (the phases run on the logical date).
            "monitoring_days": 1,
            "detection_threshold": 5,
            "exclusions": "apply_approved",
        },
        {
            "name": "prod",
            "environments": ["prod"],
            "settings": [{**ML, "value": {"detection": "MODERATE", "prevention": "CAUTIOUS"}}],
        },
    ],
}


def with_phases(alpha: dict[str, Any]) -> None:
    alpha["falcon"] = {**alpha.get("falcon", {}), "rollout": ROLLOUT}


def rollout_doc(url: str, day: str) -> dict[str, Any]:
    s3 = fleetsim_s3(url)
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=f"falcon-rollout/{day}/"
        )
        for o in page.get("Contents", [])
        if o["Key"].endswith("/pack/rollout.json")
    ]
    (key,) = keys
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def awaiting_approval(env: dict[str, str]) -> str | None:
    """The run id whose phase_approval waits for a person, if one does."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as conn:
        row = conn.execute(
            "SELECT run_id FROM task_instance WHERE dag_id = ? AND task_id = 'phase_approval' "
            "AND state = 'awaiting_input'",
            (DAG_ID,),
        ).fetchone()
    return row[0] if row else None


def run_and_approve(env: dict[str, str], logical_date: str, log: Path, timeout: float = 300.0) -> int:
    """Run the roll-out; when its phase approval waits, approve it as APPROVER through the REST API."""
    result: dict[str, int] = {}
    runner = threading.Thread(target=lambda: result.update(rc=run_cycle(env, DAG_ID, logical_date, {}, log)))
    runner.start()
    deadline = time.monotonic() + timeout
    while runner.is_alive() and time.monotonic() < deadline:
        run_id = awaiting_approval(env)
        if run_id is not None:
            respond_hitl_local(env, DAG_ID, run_id, "phase_approval", APPROVER, ["Approve"])
            break
        time.sleep(1)
    runner.join(timeout=max(deadline - time.monotonic(), 1))
    assert not runner.is_alive(), f"the run of {logical_date} did not end; see {log}"
    return result["rc"]


def test_nonprod_moves_to_prevention_and_a_storm_there_holds_prod_and_pages_once(
    airflow_home: Path, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # The phases are timed by each run's logical date; fleetsim's detections by its clock (now). Non-prod
    # enters two days ago, so the storm below falls in its monitoring window.
    days = [now - dt.timedelta(days=2), now + dt.timedelta(days=1), now + dt.timedelta(days=2)]
    started = time.monotonic()
    with fleet_with(
        airflow_home,
        tmp_path,
        scenario="alpha_falcon_phases.yaml",
        tenants_from=REPO / "include" / "tenants",
        edit_alpha=with_phases,
    ) as fleet:
        first = run_and_approve(fleet.env, days[0].isoformat(), tmp_path / "run1.log")
        promoted = rollout_doc(fleet.url, days[0].date().isoformat())
        falcon = fleetsim_get(fleet.url, "/fleetsim/falcon")
        # The storm starts STORM_AT_SECONDS after fleetsim did: after non-prod moved, before the next run.
        time.sleep(max(0.0, STORM_AT_SECONDS + 3 - (time.monotonic() - started)))
        second = run_and_approve(fleet.env, days[1].isoformat(), tmp_path / "run2.log")
        blocked = rollout_doc(fleet.url, days[1].date().isoformat())
        third = run_and_approve(fleet.env, days[2].isoformat(), tmp_path / "run3.log")
        still = rollout_doc(fleet.url, days[2].date().isoformat())
        paged = fleetsim_get(fleet.url, "/fleetsim/pagerduty")
        after = fleetsim_get(fleet.url, "/fleetsim/falcon")
    for name, doc in (("run1", promoted), ("run2", blocked), ("run3", still)):
        (tmp_path / f"{name}.rollout.json").write_text(json.dumps(doc, indent=1))

    assert (first, second, third) == (0, 0, 0), (promoted["problems"], blocked["problems"], still["problems"])
    # Run 1: Detection everywhere; the approval step asked, a named person approved, non-prod moved.
    phases = promoted["phases"]
    assert phases["phase_before"] is None and phases["phase"] == "nonprod"
    assert phases["decision"]["action"] == "promote" and phases["decision"]["next_phase"] == "nonprod"
    assert phases["approval"]["decision"] == "approved" and phases["approval"]["by"] == APPROVER
    (change,) = phases["changes"]
    assert change["approval"]["by"] == APPROVER and change["entered_at"] == days[0].isoformat()
    assert sorted(change["groups"]) == ["tag-nonprod", "tag-staging"]
    assert {p["platform"] for p in change["policies"]} == {"Linux"}  # non-prod runs Linux only
    answered = [e for e in promoted["events"] if e["action"] == "approval.answered"]
    assert [(e["result"], e["details"]["by"]) for e in answered] == [("approved", APPROVER)]
    assert any(e["action"] == "falcon.prevention_phase_changed" for e in promoted["events"])
    # In Falcon: the phase's own Linux policy, enabled, first in precedence, holding the non-prod groups.
    customers = falcon.get("customers") or falcon
    snapshot = next(iter(customers.values()))
    group_ids = {g["name"]: g["id"] for g in snapshot["host_groups"]}
    (policy,) = [p for p in snapshot["policies"] if p["name"] == "patchcycle-cu_alpha-nonprod-linux"]
    assert (policy["kind"], policy["platform_name"], policy["enabled"], policy["precedence"]) == (
        "prevention",
        "Linux",
        True,
        1,
    )
    assert sorted(policy["groups"]) == sorted([group_ids["tag-nonprod"], group_ids["tag-staging"]])
    assert change["policies"][0]["id"] == policy["id"]
    # Run 2: the storm on the non-prod sensors is above the threshold: prod is not promoted; paged once.
    phases = blocked["phases"]
    assert phases["phase_before"] == "nonprod" and phases["phase"] == "nonprod" and phases["changes"] == []
    decision = phases["decision"]
    assert decision["action"] == "blocked" and decision["next_phase"] == "prod", decision
    assert phases["detections"]["count"] > 5 and phases["approval"] is None
    processes = {p["process"]: p for p in phases["processes"]}
    assert processes["/tmp/kdevtmpfsi"]["count"] == 3 * 6  # every registered non-prod sensor
    assert processes["/bin/sh"]["count"] == 2  # the SSM agent's own script, the paper's false positive
    # Proposed, not applied (nothing is promoted): scoped to the groups of non-prod and of prod. The miner
    # dropped in /tmp is never proposed: anyone can write there (and the detection is real).
    scoped = sorted(group_ids[name] for name in ("tag-nonprod", "tag-staging", "tag-prod"))
    assert [(p["process"], p["kind"], sorted(p["groups"])) for p in phases["proposals"]] == [
        ("/bin/sh", "ioa", scoped)
    ]
    assert any(
        why.startswith("/tmp/kdevtmpfsi: it runs from a directory any user or process can write to")
        for why in phases["not_proposed"]
    ), phases["not_proposed"]
    assert phases["exclusions_created"] == []
    key = decision["incident_key"]
    assert phases["paged"]["paged"] is True and phases["paged"]["incident_key"] == key
    # Run 3: still held, the same incident, not paged again.
    phases = still["phases"]
    assert phases["decision"]["action"] == "blocked" and phases["decision"]["incident_key"] == key
    assert phases["paged"]["paged"] is False and phases["paged"]["already_paged_at"]
    triggers = [e for e in paged["events"] if e.get("dedup_key") == key]
    assert len(triggers) == 1, triggers
    assert [e["target"] for e in blocked["events"] if e["action"] == "incident.triggered"] == [key]
    assert not [e for e in still["events"] if e["action"] == "incident.triggered"]
    # Falcon after the three runs: no prod policy, no exclusion.
    final = next(iter((after.get("customers") or after).values()))
    assert not [p for p in final["policies"] if p["name"].startswith("patchcycle-cu_alpha-prod")]
    assert final["exclusions"] == []
    # The runs complete: a held phase is a decision, paged, not a failed roll-out.
    assert blocked["outcome"] == "complete" and still["outcome"] == "complete"
