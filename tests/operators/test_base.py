"""What every cycle task shares (``CycleTaskMixin`` and the ``CycleContext`` it builds once per execute):
the one rule that skips a stage's task when its stage is not part of the run, used by the backup, window,
approval, verify, health and rollback tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk.exceptions import AirflowSkipException

from patchcycle.config.loader import TENANTS_DIR_ENV, load_tenant, load_tenants
from patchcycle.config.models import Tenant
from patchcycle.dag_factory import build_patch_cycle_dag
from patchcycle.operators.base import CycleContext, CycleOperator, EventLog

TENANT = load_tenants().tenants[0]
REPO = Path(__file__).resolve().parents[2]


class StageTask(CycleOperator):
    def run(self, cycle: CycleContext, log: EventLog) -> Any:
        return cycle.stage_info("prod")


class Ti:
    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info

    def xcom_pull(self, task_ids: str) -> dict[str, Any]:
        assert task_ids == "plan"
        return self.info


def info(**changes: Any) -> dict[str, Any]:
    return {"environments": ["dev", "staging", "prod"], "dry_run": False, **changes}


def stage_context(facts: dict[str, Any]) -> CycleContext:
    return StageTask(task_id="t", tenant_id=TENANT.id).cycle_context({"ti": Ti(facts), "dag_run": None})


def test_a_stage_of_the_run_gets_the_plan_facts() -> None:
    assert stage_context(info()).stage_info("prod") == info()


@pytest.mark.parametrize(
    ("facts", "why"),
    [(info(dry_run=True), "dry run"), (info(environments=["dev", "staging"]), "left out by the params")],
)
def test_a_stage_outside_the_run_is_skipped_not_failed(facts: dict[str, Any], why: str) -> None:
    with pytest.raises(AirflowSkipException, match="prod is not part of this run"):
        stage_context(facts).stage_info("prod")


def test_without_a_plan_a_stage_task_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="the plan task left no cycle plan"):
        stage_context({}).stage_info("prod")


STAGE_TASKS = ("backup", "window", "approval", "verify", "health", "rollback")


@pytest.fixture
def strict_tenant(tmp_path, monkeypatch) -> Tenant:
    """cu_alpha with every stage behind an approval and automatic rollback, so the DAG has every kind
    of stage task."""
    data = yaml.safe_load((REPO / "include" / "tenants" / "cu_alpha.yaml").read_text())
    for env in data["environments"]:
        env["approval_required"] = True
    data["rollback"] = {"automatic": True}
    (tmp_path / "cu_alpha.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv(TENANTS_DIR_ENV, str(tmp_path))
    return load_tenant(tmp_path / "cu_alpha.yaml")


def test_every_stage_task_of_the_cycle_skips_through_the_one_rule(strict_tenant) -> None:
    """Each stage task of the built DAG, run for a stage the run left out, skips with the rule's reason
    before it reads a record or calls a cloud."""
    dag = build_patch_cycle_dag(strict_tenant)
    seen = set()
    for task in dag.tasks:
        kind = task.task_id.rsplit(".", 1)[-1]
        if not hasattr(task, "environment") or not kind.startswith(STAGE_TASKS):
            continue
        env = str(task.environment)
        facts = info(environments=[e for e in info()["environments"] if e != env])
        with pytest.raises(AirflowSkipException, match=f"{env} is not part of this run"):
            task.execute({"ti": Ti(facts), "run_id": "manual__x", "dag_run": None})
        seen.add(next(k for k in STAGE_TASKS if kind.startswith(k)))
    assert seen == set(STAGE_TASKS)
