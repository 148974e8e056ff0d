"""The rollback DAGs as Airflow parses them: one per tenant, manual only, params validated as JSON Schema."""

from __future__ import annotations

import copy

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.param import ParamValidationError
from airflow.serialization.serialized_objects import DagSerialization

from patchcycle.config.loader import load_tenants
from patchcycle.rollback_dag import build_rollback_dag
from tests.conftest import REPO

TENANTS = load_tenants().tenants


def test_one_manual_rollback_dag_per_tenant() -> None:
    bag = DagBag(dag_folder=str(REPO / "dags" / "rollback.py"))
    assert bag.import_errors == {}
    assert {f"patchcycle_rollback__{t.id}" for t in TENANTS} == set(bag.dag_ids)
    for dag in bag.dags.values():
        assert type(dag.timetable).__name__ == "NullTimetable" and dag.catchup is False  # manual only
        assert dag.task_ids == ["select", "restore", "verify"]


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.id)
def test_serializes_and_the_wait_is_deferrable(tenant) -> None:
    dag = build_rollback_dag(tenant)
    data = DagSerialization.to_dict(dag)
    DagSerialization.validate_schema(data)
    assert sorted(DagSerialization.from_dict(data).task_ids) == sorted(dag.task_ids)
    assert dag.get_task("restore").deferrable is True
    assert dag.get_task("select").retries == 0  # a refusal is final; retrying changes nothing


GOOD = {"cycle": "2026-11-22", "hosts": ["t-prd-web-01"], "reason": "errors after the patch"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cycle": "22/11/2026"}, "cycle"),
        ({"hosts": []}, "hosts"),
        ({"hosts": ["a", "a"]}, "hosts"),
        ({"hosts": [""]}, "hosts"),
        ({"reason": ""}, "reason"),
        ({"reason": None}, "reason"),
    ],
)
def test_bad_params_are_refused_naming_the_field(change, field) -> None:
    params = copy.deepcopy(build_rollback_dag(TENANTS[0]).params)
    for key, value in GOOD.items():
        params[key] = value
    params.validate()
    with pytest.raises(ParamValidationError, match=field):
        for key, value in change.items():
            params[key] = value
        params.validate()
