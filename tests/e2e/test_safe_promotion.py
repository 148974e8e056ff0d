"""Safe promotion through Airflow against fleetsim: the canary, the prod change window, reboot checks.

Each test runs the AWS-only Alpha with one fault or one tenant setting changed and checks what the
cycle did against fleetsim's ground truth and the evidence it wrote.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from devtools.local import fleetsim_get
from tests.e2e.conftest import fleet_with

pytestmark = pytest.mark.e2e

DAG_ID = "patch_cycle__cu_alpha"
NOV = "2026-11-22"
# alpha_small's own faults: a failing install in nonprod (within budget), an offline agent and a failing
# backup in prod.
BASE_FAULTS: dict[str, Any] = {
    "install_fails": ["t-dev-app-02"],
    "agent_offline": ["t-prd-web-03"],
    "backup_fails": ["t-prd-web-04"],
}
INSTALL_ACTIONS = ("ssm.install", "azure.installPatches", "gcp.patch")


def installs(truth: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in truth["actions"] if a["action"].startswith(INSTALL_ACTIONS)]


def test_a_failed_canary_stops_the_prod_rollout_and_is_rolled_back(
    airflow_home, aws_only_tenants, tmp_path
) -> None:
    # Prod's eligible hosts are all "high": the canary (10%, at least one) is the first by name.
    faults = {**BASE_FAULTS, "install_fails": ["t-dev-app-02", "t-prd-web-01"]}

    def automatic_rollback(alpha: dict[str, Any]) -> None:
        alpha["rollback"] = {"automatic": True}
        alpha["incidents"] = {}

    with fleet_with(
        airflow_home, tmp_path, tenants_from=aws_only_tenants, faults=faults, edit_alpha=automatic_rollback
    ) as fleet:
        before = {h["name"]: h for h in fleetsim_get(fleet.url, "/fleetsim/ground-truth")["hosts"]}
        result = fleet.run(DAG_ID, NOV)
        pager = fleetsim_get(fleet.url, "/fleetsim/pagerduty")
    assert result.returncode != 0
    states = result.task_states
    assert states["prod.canary.patch_aws"] == "success"
    assert states["prod.canary.verify"] == "failed"
    assert states["prod.window_main"] == "upstream_failed"
    assert states["prod.patch_aws"] == "upstream_failed"
    assert installs(result.truth["t-prd-web-01"]), "the canary was patched"
    for name in ("t-prd-web-02", "t-prd-win-01"):
        assert installs(result.truth[name]) == [], f"{name} was patched after its canary failed"
        record = result.host(name)
        assert record["final_state"] == "not_run"
        assert "canary must pass" in record["reason"]
    assert result.host("t-prd-web-01")["final_state"] == "failed"
    prod = next(s for s in result.evidence["stages"] if s["environment"] == "prod")
    assert prod["status"] == "failed" and prod["reason"].startswith("canary failed")
    assert prod["canary"]["hosts"] and prod["canary"]["status"] == "failed"
    # The tenant opted in to automatic rollback: the failed canary went back to the AMI this stage took.
    assert states["prod.rollback_failed"] == "success"
    canary = result.truth["t-prd-web-01"]
    requested = next(a for a in canary["actions"] if a["action"] == "ec2.create_replace_root_volume_task")
    assert requested["image_id"] == result.host("t-prd-web-01")["backup_id"]
    assert canary["actions"][-1]["action"] == "ec2.replace_root_volume"
    for key in ("kernel", "missing", "installed"):
        if key in before["t-prd-web-01"]:
            assert canary[key] == before["t-prd-web-01"][key], key
    assert any("/rollback/" in k for k in result.keys)
    # The canary's failure is prod's one incident.
    keys = [i["dedup_key"] for i in pager["incidents"]]
    assert keys.count("patchcycle/cu_alpha/2026-11-22/prod") == 1


def test_a_host_that_does_not_come_back_from_its_reboot_is_failed(
    airflow_home, aws_only_tenants, tmp_path
) -> None:
    def short_reboot_timeout(alpha: dict[str, Any]) -> None:
        for env in alpha["environments"]:
            env["reboot_timeout_minutes"] = 0.3

    faults = {**BASE_FAULTS, "hung_reboot": ["t-stg-app-02"]}
    with fleet_with(
        airflow_home, tmp_path, tenants_from=aws_only_tenants, faults=faults, edit_alpha=short_reboot_timeout
    ) as fleet:
        result = fleet.run(DAG_ID, NOV)
    assert result.returncode != 0
    hung = result.host("t-stg-app-02")
    assert hung["final_state"] == "failed"
    assert "did not come back from its reboot within 0.3 minutes" in hung["reason"]
    assert "ConnectionLost" in hung["reason"]
    assert result.truth["t-stg-app-02"]["agent_status"] == "ConnectionLost"
    assert result.host("t-stg-app-01")["final_state"] == "patched"
    stages = {s["environment"]: s for s in result.evidence["stages"]}
    assert stages["staging"]["status"] == "failed"
    assert stages["prod"]["status"] == "not_run"
    events = [e for e in result.evidence["events"] if e["action"] == "reboot.failed"]
    assert [e["target"] for e in events] == [hung["host_id"]]


def _window_opening_soon(now: dt.datetime) -> dict[str, Any]:
    """A three-minute UTC window opening at the first whole minute at least 150 s from now."""
    opens = (now + dt.timedelta(seconds=150)).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    closes = opens + dt.timedelta(minutes=3)
    return {
        "timezone": "UTC",
        "days": [opens.strftime("%a").lower()],
        "start": opens.strftime("%H:%M"),
        "end": closes.strftime("%H:%M"),
        # The canary starts with three minutes left; the rest would start with under 2.2 left.
        "min_minutes_left": 2.2,
    }


def test_prod_waits_for_its_window_and_starts_no_batch_after_it_closes(
    airflow_home, aws_only_tenants, tmp_path
) -> None:
    window = _window_opening_soon(dt.datetime.now(dt.UTC))

    def short_window_and_a_canary_health_watch(alpha: dict[str, Any]) -> None:
        prod = next(e for e in alpha["environments"] if e["name"] == "prod")
        prod["change_window"] = window
        # The canary's health watch keeps the rollout busy past the point the rest could still start.
        alpha["health"] = {"watch_minutes": 1.0, "baseline_minutes": 5, "require_data": False}

    with fleet_with(
        airflow_home,
        tmp_path,
        tenants_from=aws_only_tenants,
        faults=BASE_FAULTS,
        edit_alpha=short_window_and_a_canary_health_watch,
    ) as fleet:
        result = fleet.run(DAG_ID, NOV, conf={"environments": ["prod"], "window_override_reason": None})
    states = result.task_states
    assert states["prod.window"] == "success"
    assert states["prod.canary.health"] == "success"
    assert states["prod.window_main"] == "skipped"
    assert states["prod.patch_aws"] == "skipped"
    events = {e["action"]: e for e in result.evidence["events"]}
    waited = dt.datetime.fromisoformat(events["window.waiting"]["details"]["until"])
    assert waited.strftime("%H:%M") == window["start"] and waited.utcoffset() == dt.timedelta(0)
    assert "window.wait_ended" in events and "window.open" in events
    assert events["window.closed"]["result"] == "not_started"
    assert installs(result.truth["t-prd-web-01"]), "the canary was patched inside the window"
    for name in ("t-prd-web-02", "t-prd-win-01"):
        assert installs(result.truth[name]) == []
        record = result.host(name)
        assert record["final_state"] == "not_run"
        assert record["reason"].startswith("change window closed: the change window closes at")
    prod = next(s for s in result.evidence["stages"] if s["environment"] == "prod")
    assert prod["status"] == "failed"
    assert [w["started"] for w in prod["windows"]] == [True, False]


def test_a_rerun_that_succeeds_resolves_the_incident_it_paged_without_paging_again(
    airflow_home, aws_only_tenants, tmp_path
) -> None:
    import json
    import urllib.request

    # Two of nonprod's four hosts fail: over its 25% budget, so nonprod fails and pages.
    faults = {**BASE_FAULTS, "install_fails": ["t-dev-app-01", "t-dev-app-02"]}

    def with_incidents(alpha: dict[str, Any]) -> None:
        alpha["incidents"] = {}

    key = "patchcycle/cu_alpha/2026-11-22/nonprod"
    with fleet_with(
        airflow_home, tmp_path, tenants_from=aws_only_tenants, faults=faults, edit_alpha=with_incidents
    ) as fleet:
        first = fleet.run(DAG_ID, NOV)
        assert first.returncode != 0
        paged = {i["dedup_key"]: i for i in fleetsim_get(fleet.url, "/fleetsim/pagerduty")["incidents"]}
        assert paged[key]["status"] == "triggered"
        # Someone fixes the two hosts; the cycle is run again (a new run of the same cycle date).
        request = urllib.request.Request(
            f"{fleet.url}/fleetsim/faults/clear",
            data=json.dumps({"hosts": ["t-dev-app-01", "t-dev-app-02"]}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback
            assert json.load(resp)["cleared"] == ["t-dev-app-01", "t-dev-app-02"]
        second = fleet.run(DAG_ID, "2026-11-22T05:00:00+00:00", conf={"cycle_date": NOV})
        pager = fleetsim_get(fleet.url, "/fleetsim/pagerduty")
    assert second.returncode == 0, second.log[-3000:]
    assert second.evidence["cycle"]["cycle_date"] == NOV
    assert second.evidence["cycle"]["run_id"] != first.evidence["cycle"]["run_id"]
    incidents = [i for i in pager["incidents"] if i["dedup_key"] == key]
    assert len(incidents) == 1 and incidents[0]["status"] == "resolved"
    # One trigger for the failure, one resolve for the re-run: nobody was paged twice.
    actions = [e["event_action"] for e in pager["events"] if e.get("dedup_key") == key]
    assert actions.count("trigger") == 1 and actions[-1] == "resolve"
