"""The roll-out's Detection-to-Prevention tasks: wired only for a tenant that declares prevention phases,
after validate and before the evidence, the approval between the decision and the promotion."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from airflow.sdk.definitions.param import ParamValidationError
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


def triggered(dag: object, conf: dict) -> dict:
    """The params of a run triggered with ``conf``, validated as Airflow does when it creates the run (the
    serialized DAG's params merged with the conf)."""
    serialized = DagSerialization.to_dict(dag)
    DagSerialization.validate_schema(serialized)
    return DagSerialization.from_dict(serialized).params.deep_merge(conf).validate()


def test_a_held_phase_is_entered_again_from_the_trigger_form(tmp_path: Path) -> None:
    dag = build_falcon_rollout_dag(alpha(tmp_path, prevention_phases=PHASES))
    assert triggered(dag, {}) == {"reenter_phase": None, "reason": None}  # a scheduled run: as usual
    asked = triggered(dag, {"reenter_phase": "nonprod", "reason": "excluded the SSM agent's script"})
    assert asked == {"reenter_phase": "nonprod", "reason": "excluded the SSM agent's script"}
    assert "`reenter_phase`" in dag.doc_md


def test_a_phase_the_tenant_does_not_declare_is_refused_when_the_run_is_triggered(tmp_path: Path) -> None:
    dag = build_falcon_rollout_dag(alpha(tmp_path, prevention_phases=PHASES))
    with pytest.raises(ParamValidationError) as refused:
        triggered(dag, {"reenter_phase": "canary", "reason": "why not"})
    message = str(refused.value)
    assert "reenter_phase" in message and "'canary' is not one of [None, 'nonprod', 'prod']" in message


def test_only_a_tenant_with_phases_gets_the_reentry_params(tmp_path: Path) -> None:
    assert dict(build_falcon_rollout_dag(alpha(tmp_path)).params) == {}


def test_an_unanswered_phase_approval_expires_before_the_run_does(tmp_path: Path) -> None:
    from patchcycle.operators.falcon_phases import APPROVAL_RESPONSE_TIMEOUT

    dag = build_falcon_rollout_dag(alpha(tmp_path, prevention_phases=PHASES))
    approval = dag.get_task("phase_approval")
    assert approval.response_timeout == APPROVAL_RESPONSE_TIMEOUT < dag.dagrun_timeout
