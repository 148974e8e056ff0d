"""The roll-out's Detection-to-Prevention tasks: wired only for a tenant that declares prevention phases,
after validate and before the evidence, the approval between the decision and the promotion."""

from __future__ import annotations

from pathlib import Path

import yaml
from airflow.serialization.serialized_objects import DagSerialization

from patchcycle.config.loader import load_tenant
from patchcycle.dag_factory import build_falcon_rollout_dag
from patchcycle.operators.falcon_phases import PhaseApprovalOperator
from tests.conftest import REPO

ROLLOUT = {"host_groups": {"nonprod": "g-nonprod", "staging": "g-staging", "prod": "g-prod"}}
PHASES = [
    {
        "name": "nonprod",
        "environments": ["nonprod", "staging"],
        "settings": [
            {
                "id": "CloudAntiMalware",
                "type": "mlslider",
                "value": {"detection": "MODERATE", "prevention": "MODERATE"},
            }
        ],
    },
    {
        "name": "prod",
        "environments": ["prod"],
        "settings": [
            {
                "id": "CloudAntiMalware",
                "type": "mlslider",
                "value": {"detection": "MODERATE", "prevention": "MODERATE"},
            }
        ],
    },
]


def alpha(tmp_path: Path, **rollout) -> object:
    data = yaml.safe_load((REPO / "include" / "tenants" / "cu_alpha.yaml").read_text())
    data["falcon"] = {"rollout": {**ROLLOUT, **rollout}}
    path = tmp_path / "cu_alpha.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_tenant(path)


def test_the_phases_run_after_validate_and_before_the_evidence(tmp_path: Path) -> None:
    dag = build_falcon_rollout_dag(alpha(tmp_path, prevention_phases=PHASES))
    assert dag.get_task("phase_decide").upstream_task_ids == {"validate"}
    # The detections on a phase's groups do not depend on this run's installs.
    assert dag.get_task("phase_decide").trigger_rule == "all_done"
    assert dag.get_task("phase_approval").upstream_task_ids == {"phase_decide"}
    assert isinstance(dag.get_task("phase_approval"), PhaseApprovalOperator)
    assert dag.get_task("phase_promote").upstream_task_ids == {"phase_approval"}
    assert dag.get_task("phase_promote").trigger_rule == "all_success"  # only after an approval
    assert dag.get_task("evidence").upstream_task_ids == {"validate", "phase_promote"}
    assert dag.get_task("evidence").trigger_rule == "all_done"
    DagSerialization.validate_schema(DagSerialization.to_dict(dag))


def test_a_tenant_without_phases_gets_no_phase_tasks(tmp_path: Path) -> None:
    dag = build_falcon_rollout_dag(alpha(tmp_path))
    assert not [t for t in dag.task_ids if t.startswith("phase_")]
