"""The zero-day cycle's DAG: built by the factory only for tenants that declare risk.zero_day, started by
hand or by the tenant's KEV asset, waiting on the monthly cycle before its plan, and otherwise the monthly
cycle's own tasks (one builder, not a copy)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.param import ParamValidationError
from airflow.serialization.serialized_objects import DagSerialization

from patchcycle.config.loader import TENANTS_DIR_ENV, load_tenant, load_tenants
from patchcycle.dag_factory import (
    build_feeds_dag,
    build_patch_cycle_dag,
    build_zero_day_dag,
    evidence_asset,
    kev_asset,
    zero_day_evidence_asset,
)
from tests.conftest import REPO

ZERO_DAY = {
    "emergency_soak_hours": 2,
    "emergency_change_window": "patch_outside_window",
    "approver": "J. Alvarez",
    "approver_role": "CISO",
    "approved_on": "2026-10-01",
}


def alpha(tmp_path: Path, **risk) -> object:
    data = yaml.safe_load((REPO / "include" / "tenants" / "cu_alpha.yaml").read_text())
    data["risk"] = {"zero_day": ZERO_DAY, **risk}
    path = tmp_path / "cu_alpha.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_tenant(path)


def test_the_zero_day_dag_is_the_monthly_cycle_behind_a_wait_and_another_plan(tmp_path: Path) -> None:
    tenant = alpha(tmp_path)
    dag, monthly = build_zero_day_dag(tenant), build_patch_cycle_dag(tenant)
    assert dag.dag_id == "zero_day__cu_alpha" and dag.max_active_runs == 1 and dag.catchup is False
    assert set(dag.task_ids) - set(monthly.task_ids) == {"wait_for_monthly"}
    assert dag.get_task("plan").upstream_task_ids == {"wait_for_monthly"}
    assert type(dag.get_task("plan")).__name__ == "ZeroDayPlanOperator"
    # Each cycle's first task waits on the other's: the emergency goes first unless the tenant says not.
    gate, monthly_gate = dag.get_task("wait_for_monthly"), monthly.get_task("wait_for_zero_day")
    assert (gate.other_dag_id, gate.other_gate_task_id) == ("patch_cycle__cu_alpha", "wait_for_zero_day")
    assert (monthly_gate.other_dag_id, monthly_gate.other_gate_task_id) == (dag.dag_id, "wait_for_monthly")
    assert (gate.other_goes_first, monthly_gate.other_goes_first) == (False, True)
    assert gate.pool == monthly_gate.pool == "patchcycle_cycle_gate"
    assert monthly.get_task("plan").upstream_task_ids == {"wait_for_zero_day"}
    # The same stages, gates and evidence as the monthly cycle, edge for edge after the plan.
    for task_id in monthly.task_ids:
        if task_id not in ("plan", "wait_for_zero_day"):
            assert dag.get_task(task_id).upstream_task_ids == monthly.get_task(task_id).upstream_task_ids
    # Its pack is its own asset's event, never the monthly round's the portfolio waits for.
    assert dag.get_task("evidence").outlets == [zero_day_evidence_asset(tenant)]
    assert monthly.get_task("evidence").outlets == [evidence_asset(tenant)]
    DagSerialization.validate_schema(DagSerialization.to_dict(dag))


def test_it_is_scheduled_on_the_tenants_kev_asset_unless_the_tenant_starts_it_only_by_hand(tmp_path) -> None:
    tenant = alpha(tmp_path)
    automatic = build_zero_day_dag(tenant)
    assert tuple(automatic.timetable.asset_condition.objects) == (kev_asset(tenant),)
    assert kev_asset(tenant).name == "patchcycle_new_kev__cu_alpha"
    manual = build_zero_day_dag(alpha(tmp_path, zero_day={**ZERO_DAY, "automatic": False}))
    assert type(manual.timetable).__name__ == "NullTimetable"


def test_the_tenant_may_let_the_monthly_cycle_go_first_when_both_wait(tmp_path) -> None:
    tenant = alpha(tmp_path, zero_day={**ZERO_DAY, "starts_first": "monthly"})
    assert build_zero_day_dag(tenant).get_task("wait_for_monthly").other_goes_first is True
    assert build_patch_cycle_dag(tenant).get_task("wait_for_zero_day").other_goes_first is False


def test_a_tenant_without_an_emergency_policy_has_no_zero_day_dag_and_no_gate() -> None:
    tenant = load_tenants().tenants[0]
    with pytest.raises(ValueError, match="declares no risk.zero_day policy"):
        build_zero_day_dag(tenant)
    monthly = build_patch_cycle_dag(tenant)
    assert "wait_for_zero_day" not in monthly.task_ids and monthly.get_task("plan").upstream_task_ids == set()


def _validated(dag, conf):
    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params.validate()


def test_the_form_takes_cve_ids_in_their_format_and_a_justification(tmp_path: Path) -> None:
    dag = build_zero_day_dag(alpha(tmp_path))
    # The defaults validate: a run started by an asset event carries none.
    assert _validated(dag, {})["cve_ids"] == []
    why = "Exploited in the wild; the vendor's fix is out of band"
    assert _validated(dag, {"cve_ids": ["CVE-2026-12345"], "justification": why})["justification"] == why
    for bad in (
        {"cve_ids": ["CVE-2026-1"]},
        {"cve_ids": ["CVE-2026-12345", "CVE-2026-12345"]},
        {"cve_ids": [f"CVE-2026-{i:05d}" for i in range(51)]},
        {"justification": "x" * 1001},
    ):
        with pytest.raises(ParamValidationError):
            _validated(dag, bad)


def test_the_dag_folder_builds_zero_day_dags_for_the_tenants_that_declare_one(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "tenants"
    folder.mkdir()
    for path in (REPO / "include" / "tenants").glob("*.yaml"):
        (folder / path.name).write_text(path.read_text())
    data = yaml.safe_load((folder / "cu_birch.yaml").read_text())
    data["risk"] = {"zero_day": ZERO_DAY}
    (folder / "cu_birch.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv(TENANTS_DIR_ENV, str(folder))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    assert {d for d in bag.dag_ids if d.startswith("zero_day__")} == {"zero_day__cu_birch"}


def test_the_feed_refresh_announces_new_kev_listings_through_an_asset_alias() -> None:
    (refresh,) = build_feeds_dag().tasks
    assert [type(o).__name__ for o in refresh.outlets] == ["AssetAlias"]
    assert refresh.outlets[0].name == "patchcycle_new_kev"
