"""The zero-day cycle's plan task: where its CVEs come from (the form, or the KEV asset events that started
it), what refuses a run before anything is read or changed, and the facts it runs under (the tenant's
emergency soak and change-window policy, with its approver). Unit tests of the task's methods with the
run's context as plain values; the whole cycle through Airflow is in tests/e2e/test_zero_day.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from patchcycle.config.loader import TENANTS_DIR_ENV, load_tenant
from patchcycle.dag_factory import build_zero_day_dag
from patchcycle.operators.zero_day import KEV_ASSET_EVENT, MANUAL, zero_day_request
from tests.conftest import REPO

NOW = dt.datetime(2026, 11, 25, 9, 30, tzinfo=dt.UTC)
ZERO_DAY = {
    "emergency_soak_hours": 2,
    "emergency_change_window": "patch_outside_window",
    "approver": "J. Alvarez",
    "approver_role": "CISO",
    "approved_on": "2026-10-01",
}


@pytest.fixture
def plan_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    folder = tmp_path / "tenants"
    folder.mkdir()
    for path in (REPO / "include" / "tenants").glob("*.yaml"):
        (folder / path.name).write_text(path.read_text())
    data = yaml.safe_load((folder / "cu_alpha.yaml").read_text())
    data["risk"] = {"zero_day": ZERO_DAY}
    (folder / "cu_alpha.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv(TENANTS_DIR_ENV, str(folder))
    return build_zero_day_dag(load_tenant(folder / "cu_alpha.yaml")).get_task("plan")


def event(cves: list[str], version: str = "2026.11.25") -> SimpleNamespace:
    return SimpleNamespace(
        extra={"tenant_id": "cu_alpha", "cve_ids": cves, "kev_catalog_version": version},
        source_dag_id="patchcycle_feeds",
        source_run_id="scheduled__2026-11-25T01:00:00+00:00",
        timestamp=dt.datetime(2026, 11, 25, 1, 2, tzinfo=dt.UTC),
    )


def context(task: Any, conf: dict | None = None, triggering: dict | None = None, **params: Any) -> Any:
    run = SimpleNamespace(conf=dict(conf or params), run_after=NOW, run_type="manual", start_date=NOW)
    airflow = {
        "params": {"cve_ids": [], "justification": None, **params},
        "dag_run": run,
        "logical_date": NOW,
        "run_id": "manual__x",
        "triggering_asset_events": triggering or {},
    }
    return task.cycle_context(airflow)


def test_a_run_by_hand_plans_its_cves_as_of_the_day_it_runs(plan_task) -> None:
    cycle = context(plan_task, cve_ids=["CVE-2025-33053"], justification="Exploited; vendor fix out")
    cycle_date, environments, refusals = plan_task._run_scope(cycle)
    assert (cycle_date, environments, refusals) == (NOW.date(), ["nonprod", "staging", "prod"], [])
    assert plan_task.zero_day_cves(cycle) == ("CVE-2025-33053",)


def test_a_run_started_by_kev_asset_events_plans_their_cves_and_says_so(plan_task) -> None:
    cycle = context(plan_task, triggering={"asset": [event(["CVE-2026-5001"]), event(["CVE-2026-5002"])]})
    assert plan_task._run_scope(cycle)[2] == []
    request = plan_task.request(cycle)
    assert request.trigger == KEV_ASSET_EVENT and request.cves == ("CVE-2026-5001", "CVE-2026-5002")
    assert "CISA KEV catalog 2026.11.25 lists CVE-2026-5001, CVE-2026-5002" in request.justification
    assert request.to_dict()["asset_events"][0]["source"] == (
        "patchcycle_feeds/scheduled__2026-11-25T01:00:00+00:00"
    )


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"cve_ids": [], "justification": "why"}, "no CVE to plan"),
        ({"cve_ids": ["CVE-26-1"], "justification": "why"}, "are not CVE ids"),
        ({"cve_ids": ["CVE-2025-33053"]}, "needs a justification"),
    ],
)
def test_what_refuses_a_run_before_anything_is_read(plan_task, params: dict, says: str) -> None:
    refusals = plan_task._run_scope(context(plan_task, **params))[2]
    assert any(says in r for r in refusals), refusals


def test_a_conf_key_of_the_monthly_form_is_refused_by_name(plan_task) -> None:
    conf = {"cve_ids": ["CVE-2025-33053"], "justification": "why", "soak_hours_override": 0}
    cycle = context(plan_task, conf=conf, cve_ids=["CVE-2025-33053"], justification="why")
    (refusal,) = plan_task._run_scope(cycle)[2]
    assert "conf key 'soak_hours_override' is not a parameter of zero_day__cu_alpha" in refusal


def test_the_emergency_policy_is_the_runs_soak_and_window_with_its_approver(plan_task) -> None:
    cycle = context(plan_task, cve_ids=["CVE-2025-33053"], justification="Exploited")
    params = plan_task.run_params(cycle)
    assert params["soak_hours_override"] == 2
    assert "approved by J. Alvarez (CISO) on 2026-10-01" in params["soak_override_reason"]
    assert "outside the change window" in params["window_override_reason"]
    extras = plan_task.run_extras(cycle)
    assert extras["kind"] == "zero_day"
    assert extras["zero_day"]["trigger"] == MANUAL and extras["zero_day"]["justification"] == "Exploited"
    assert extras["zero_day"]["policy"]["approver"] == "J. Alvarez"


def test_the_request_without_events_is_the_forms() -> None:
    request = zero_day_request({"cve_ids": ["CVE-2025-33053"], "justification": " why "}, None)
    assert (request.cves, request.justification, request.trigger) == (("CVE-2025-33053",), "why", MANUAL)
