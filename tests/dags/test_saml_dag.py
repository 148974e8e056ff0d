"""The saml_certificates DAG as Airflow's DAG processor sees it: one import, one task per watching tenant
and one for the platform, daily without catchup, retries, serializable; built by the factory."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization

from patchcycle.config.loader import load_tenants
from patchcycle.dag_factory import PLATFORM_TASK_ID, build_saml_certificates_dag
from tests.conftest import REPO

TENANTS = load_tenants().tenants


@pytest.fixture(scope="module")
def bag() -> DagBag:
    return DagBag(dag_folder=str(REPO / "dags" / "saml_certificates.py"))


def test_the_dag_file_imports_and_is_only_wiring(bag):
    assert bag.import_errors == {}
    assert bag.dag_ids == ["saml_certificates"]
    source = (REPO / "dags" / "saml_certificates.py").read_text()
    assert "def " not in source and "class " not in source


def test_one_watch_per_tenant_and_one_for_the_platform(bag):
    dag = bag.dags["saml_certificates"]
    assert sorted(dag.task_ids) == sorted([*(t.id for t in TENANTS), PLATFORM_TASK_ID])
    assert not dag.task_dict[PLATFORM_TASK_ID].upstream_task_ids  # independent: one never holds another up
    for task in dag.tasks:
        assert task.owner == "sre-platform" and task.retries >= 1
        assert type(task).__name__ == "SamlCertificateWatchOperator"
        assert task.target_id == ("platform" if task.task_id == PLATFORM_TASK_ID else task.task_id)


def test_daily_without_catchup_and_backfillable(bag):
    dag = bag.dags["saml_certificates"]
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.timetable.expression == "30 6 * * *"
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    first = serialized.timetable.next_dagrun_info(
        last_automated_data_interval=None, restriction=_restriction()
    )
    assert first is not None and first.logical_date == dt.datetime(2026, 1, 1, 6, 30, tzinfo=dt.UTC)
    assert {"patchcycle", "saml"} <= set(dag.tags)
    assert "airflow backfill create --dag-id saml_certificates" in (dag.doc_md or "")


def _restriction():
    from airflow.timetables.base import TimeRestriction

    return TimeRestriction(earliest=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), latest=None, catchup=True)


def test_the_dag_serializes_and_round_trips(bag):
    data = DagSerialization.to_dict(bag.dags["saml_certificates"])
    DagSerialization.validate_schema(data)
    assert sorted(DagSerialization.from_dict(data).task_ids) == sorted(bag.dags["saml_certificates"].task_ids)


def test_a_tenant_that_turned_the_watch_off_has_no_task(tmp_path):
    from patchcycle.config.loader import load_tenant

    data = yaml.safe_load((REPO / "include" / "tenants" / "cu_birch.yaml").read_text())
    data["saml"] = {"enabled": False}
    (tmp_path / "cu_birch.yaml").write_text(yaml.safe_dump(data))
    birch = load_tenant(tmp_path / "cu_birch.yaml")
    others = [t for t in TENANTS if t.id != "cu_birch"]
    dag = build_saml_certificates_dag([*others, birch])
    assert "cu_birch" not in dag.task_ids and PLATFORM_TASK_ID in dag.task_ids
