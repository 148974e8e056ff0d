"""The Falcon roll-out's DAG: built by the factory only for tenants whose file declares falcon.rollout, on
the tenant's schedule or on demand, and the evidence task last, run however the others end."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from airflow.serialization.serialized_objects import DagSerialization

from patchcycle.config.loader import load_tenant, load_tenants
from patchcycle.dag_factory import build_falcon_rollout_dag
from tests.conftest import REPO

ROLLOUT = {"host_groups": {"nonprod": "g-nonprod", "staging": "g-staging", "prod": "g-prod"}}


def alpha(tmp_path: Path, **rollout) -> object:
    data = yaml.safe_load((REPO / "include" / "tenants" / "cu_alpha.yaml").read_text())
    data["falcon"] = {"rollout": {**ROLLOUT, **rollout}}
    path = tmp_path / "cu_alpha.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_tenant(path)


def test_the_rollout_is_find_validate_then_evidence_whatever_they_did(tmp_path: Path) -> None:
    dag = build_falcon_rollout_dag(alpha(tmp_path))
    assert dag.dag_id == "falcon_rollout__cu_alpha" and dag.max_active_runs == 1 and dag.catchup is False
    # cu_alpha has AWS, Azure Arc and GCP: each cloud's own agent installs the sensor, then validation.
    installs = {"install_aws", "install_azure", "install_gcp"}
    for task_id in installs:
        assert dag.get_task(task_id).upstream_task_ids == {"find"}
        assert dag.get_task(task_id).deferrable is True
    assert dag.get_task("validate").upstream_task_ids == {"find", *installs}
    assert dag.get_task("validate").trigger_rule == "all_done"  # whatever the installs did
    assert dag.get_task("validate").deferrable is True
    assert dag.get_task("evidence").upstream_task_ids == {"validate"}
    assert dag.get_task("evidence").trigger_rule == "all_done"
    # No schedule in the file: after each monthly cycle of the tenant (its evidence asset), and on demand.
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    assert [a.name for a in dag.timetable.asset_condition.objects] == ["patchcycle_evidence__cu_alpha"]
    DagSerialization.validate_schema(DagSerialization.to_dict(dag))


def test_it_runs_on_the_tenants_schedule_and_after_each_cycle(tmp_path: Path) -> None:
    dag = build_falcon_rollout_dag(alpha(tmp_path, schedule="0 6 * * MON"))
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assert dag.timetable.timetable.expression == "0 6 * * MON"
    assert [a.name for a in dag.timetable.asset_condition.objects] == ["patchcycle_evidence__cu_alpha"]
    DagSerialization.validate_schema(DagSerialization.to_dict(dag))


def test_a_tenant_without_a_rollout_has_no_rollout_dag() -> None:
    tenant = load_tenants().tenants[0]
    with pytest.raises(ValueError, match="declares no falcon.rollout"):
        build_falcon_rollout_dag(tenant)
