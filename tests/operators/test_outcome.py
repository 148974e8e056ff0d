"""The outcome task: the run's final state in Airflow from the pack's outcome, and the hosts it names.

A unit test of ``CycleOutcomeOperator.run`` with the evidence task's result as its input (as XCom hands
it over); the whole run is in ``tests/e2e/test_patch_cycle.py``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

from patchcycle.config.loader import TENANTS_DIR_ENV, load_tenant
from patchcycle.dag_factory import build_patch_cycle_dag
from patchcycle.operators.base import CycleContext, EventLog
from tests.conftest import REPO

PARTIAL = {
    "outcome": "partial",
    "pack_url": "s3://patchcycle-evidence-cu-alpha/cycles/2026-11-22/runs/r/pack/",
    "hosts_left": [
        {"name": "t-dev-app-02", "environment": "nonprod", "state": "failed", "reason": "2 patches failed"},
        {
            "name": "t-prd-web-03",
            "environment": "prod",
            "state": "held",
            "reason": "ssm agent ConnectionLost",
        },
    ],
    "hosts_left_total": 3,
}


@pytest.fixture
def outcome_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def make(**changes: Any) -> Any:
        folder = tmp_path / "tenants"
        folder.mkdir(exist_ok=True)
        for path in (REPO / "include" / "tenants").glob("*.yaml"):
            (folder / path.name).write_text(path.read_text())
        alpha = folder / "cu_alpha.yaml"
        alpha.write_text(yaml.safe_dump({**yaml.safe_load(alpha.read_text()), **changes}, sort_keys=False))
        monkeypatch.setenv(TENANTS_DIR_ENV, str(folder))
        return build_patch_cycle_dag(load_tenant(alpha)).get_task("outcome")

    return make


def run(task: Any, result: dict[str, Any]) -> Any:
    airflow = {"ti": SimpleNamespace(xcom_pull=lambda task_ids: result)}
    cycle = CycleContext(airflow, tenant=task.tenant, store=None, actor="test", after_the_run=True)
    return task.run(cycle, EventLog("test"))


def test_a_partial_cycle_names_every_host_it_left_and_stays_green_by_default(outcome_task, capsys) -> None:
    task = outcome_task()
    assert run(task, PARTIAL)["outcome"] == "partial"
    logged = capsys.readouterr().out  # Airflow's task logger (structlog) writes here outside a worker
    assert "t-dev-app-02 (nonprod) failed: 2 patches failed" in logged
    assert "t-prd-web-03 (prod) held: ssm agent ConnectionLost" in logged
    assert "1 more hosts left" in logged


def test_a_tenant_that_wants_it_sees_a_partial_cycle_fail(outcome_task) -> None:
    with pytest.raises(AirflowFailException) as exc:
        run(outcome_task(partial_run_fails=True), PARTIAL)
    assert "3 host(s) left unpatched" in str(exc.value) and PARTIAL["pack_url"] in str(exc.value)
    completed = {**PARTIAL, "outcome": "completed", "hosts_left": [], "hosts_left_total": 0}
    assert run(outcome_task(partial_run_fails=True), completed)["outcome"] == "completed"


def test_a_failed_cycle_fails_the_run(outcome_task) -> None:
    with pytest.raises(AirflowFailException, match="cycle failed for cu_alpha"):
        run(outcome_task(), {**PARTIAL, "outcome": "failed"})
