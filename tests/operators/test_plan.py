"""The plan task's scope: which runs it refuses before reading or changing anything, and why.

A unit test of one method (``PlanCycleOperator._run_scope``) with the run's context as plain values; the
refused run's evidence through Airflow is in ``tests/e2e/test_patch_cycle.py``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from patchcycle.config.loader import TENANTS_DIR_ENV, load_tenant
from patchcycle.dag_factory import build_patch_cycle_dag
from tests.conftest import REPO

SUNDAY = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)
UNPAUSED = dt.datetime(2026, 12, 3, 14, 5, tzinfo=dt.UTC)  # a Thursday, eleven days later


@pytest.fixture
def tenants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "tenants"
    folder.mkdir()
    for path in (REPO / "include" / "tenants").glob("*.yaml"):
        (folder / path.name).write_text(path.read_text())
    monkeypatch.setenv(TENANTS_DIR_ENV, str(folder))
    return folder


def plan_task(tenants: Path, **changes: Any) -> Any:
    path = tenants / "cu_alpha.yaml"
    if changes:
        path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **changes}, sort_keys=False))
    return build_patch_cycle_dag(load_tenant(path)).get_task("plan")


def scope(task: Any, *, run_type: str, started: dt.datetime, logical: dt.datetime | None = SUNDAY, **params):
    run = SimpleNamespace(
        conf=dict(params), run_after=logical or started, run_type=run_type, start_date=started
    )
    context = {"params": params, "dag_run": run, "logical_date": logical, "run_id": f"{run_type}__x"}
    return task._run_scope(task.cycle_context(context))


def test_a_scheduled_run_on_time_goes_on(tenants: Path) -> None:
    cycle_date, environments, refusals = scope(
        plan_task(tenants), run_type="scheduled", started=SUNDAY + dt.timedelta(seconds=3)
    )
    assert (cycle_date, environments, refusals) == (SUNDAY.date(), ["nonprod", "staging", "prod"], [])


def test_a_scheduled_run_created_by_an_unpause_is_refused_and_says_how_to_run_it(tenants: Path) -> None:
    cycle_date, environments, refusals = scope(plan_task(tenants), run_type="scheduled", started=UNPAUSED)
    assert (cycle_date, environments) == (SUNDAY.date(), [])
    (refusal,) = refusals
    assert "started 11.5 days after its scheduled time" in refusal
    assert "trigger patch_cycle__cu_alpha with cycle_date 2026-11-22" in refusal


def test_a_tenant_that_patches_late_runs_goes_on(tenants: Path) -> None:
    task = plan_task(tenants, schedule={"patch_late_runs": True})
    assert scope(task, run_type="scheduled", started=UNPAUSED)[2] == []


@pytest.mark.parametrize("run_type", ["manual", "backfill"])
def test_a_person_or_a_backfill_is_never_late(tenants: Path, run_type: str) -> None:
    assert scope(plan_task(tenants), run_type=run_type, started=UNPAUSED)[2] == []


def test_a_triggered_run_without_a_cycle_date_plans_the_sunday_before(tenants: Path) -> None:
    cycle_date, _, refusals = scope(plan_task(tenants), run_type="manual", started=UNPAUSED, logical=UNPAUSED)
    assert (cycle_date, refusals) == (SUNDAY.date(), [])


def test_every_problem_of_a_conf_is_named_and_the_run_is_filed_under_its_own_cycle(tenants: Path) -> None:
    cycle_date, environments, refusals = scope(
        plan_task(tenants),
        run_type="manual",
        started=UNPAUSED,
        logical=UNPAUSED,
        cycle_dat="2026-10-25",
        cycle_date="2027-05-23",
        environments=["prod", "qa"],
        soak_hours_override=2,
    )
    assert (cycle_date, environments) == (SUNDAY.date(), [])
    text = "\n".join(refusals)
    assert "conf key 'cycle_dat'" in text and "did you mean 'cycle_date'?" in text
    assert "['qa'] not configured for this tenant" in text
    assert "a soak override needs a recorded reason" in text
    assert "cycle date 2027-05-23 is after the next scheduled cycle" in text
    assert len(refusals) == 4  # the unknown key, the environment, the soak reason, the date bound
