"""The DAG folder as Airflow's DAG processor sees it: imports, serialization, policy, schedule, params."""

from __future__ import annotations

import copy
import datetime as dt
import shutil
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.param import ParamValidationError
from airflow.serialization.serialized_objects import DagSerialization

from patchcycle.config.loader import load_tenants
from patchcycle.dag_factory import build_patch_cycle_dag
from tests.conftest import REPO

TENANTS = load_tenants().tenants


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}


def test_one_cycle_dag_per_tenant(dagbag: DagBag) -> None:
    assert len(TENANTS) >= 3
    assert {f"patch_cycle__{t.id}" for t in TENANTS} <= set(dagbag.dag_ids)


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.id)
def test_dag_serializes_and_round_trips(tenant) -> None:
    dag = build_patch_cycle_dag(tenant)
    data = DagSerialization.to_dict(dag)
    DagSerialization.validate_schema(data)
    restored = DagSerialization.from_dict(data)
    assert sorted(restored.task_ids) == sorted(dag.task_ids)


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.id)
def test_policy_owner_retries_and_no_per_host_tasks(tenant) -> None:
    dag = build_patch_cycle_dag(tenant)
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        assert task.owner == tenant.owner
        if task.task_id not in ("outcome", "dry_run_gate"):
            assert task.retries >= 1, task.task_id
        assert not task.task_id.startswith(("i-", "host")), task.task_id
    # The structure is a function of the tenant's environments and clouds only (never of its hosts):
    # plan, dry-run gate, one inventory task per cloud (+ Falcon) and the merge, pre-flight; per stage
    # [approval], [window], backup, wait, then per batch (the canary, if any, and the rest) [window],
    # one patch task per cloud (+ RDS where an account opts in), verify, [health] (+ soak); then
    # incidents, access review, evidence, distribute and outcome.
    clouds = len(tenant.clouds.declared)
    inventory = clouds + (1 if tenant.falcon else 0) + 1
    per_batch = clouds + int(tenant.patches_rds) + 1 + (1 if tenant.health else 0)
    stages = 0
    for env in tenant.environments:
        batches = 2 if env.canary.share or env.canary.hosts else 1
        windows = batches if env.change_window else 0
        stages += 2 + int(env.approval_required) + windows + batches * per_batch
    soaks = sum(1 for e in tenant.environments[:-1] if e.soak_hours > 0)
    assert len(dag.tasks) == 2 + inventory + 1 + stages + soaks + 5
    for env in tenant.environments:
        assert {f"{env.name.value}.patch_{c}" for c in tenant.clouds.declared} <= set(dag.task_ids)


def test_stages_run_in_the_tenant_order() -> None:
    dag = build_patch_cycle_dag(TENANTS[0])
    # The next stage waits for the last gate of the one before: its health gate (after the soak).
    assert dag.get_task("staging.backup").upstream_task_ids == {"nonprod.health"}
    assert dag.get_task("prod.window").upstream_task_ids == {"staging.health"}
    assert dag.get_task("prod.backup").upstream_task_ids == {"prod.window"}
    assert dag.get_task("staging.health").upstream_task_ids == {"staging.soak"}
    assert dag.get_task("staging.soak").upstream_task_ids == {"staging.verify"}
    evidence = dag.get_task("evidence")
    assert evidence.trigger_rule == "all_done"
    assert dag.get_task("outcome").upstream_task_ids == {"distribute"}
    assert dag.get_task("distribute").upstream_task_ids == {"evidence"}
    assert dag.get_task("evidence").upstream_task_ids == {"access_review"}
    assert dag.get_task("access_review").trigger_rule == "all_done"
    assert dag.get_task("access_review").upstream_task_ids == {"incidents"}
    assert dag.get_task("incidents").trigger_rule == "all_done"


def test_deferrable_waits() -> None:
    dag = build_patch_cycle_dag(TENANTS[0])
    for env in ("nonprod", "staging", "prod"):
        assert dag.get_task(f"{env}.wait_for_backups").deferrable is True
        for cloud in ("aws", "azure", "gcp"):
            assert dag.get_task(f"{env}.patch_{cloud}").deferrable is True


def _fourth_sunday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    first_sunday = first + dt.timedelta(days=(6 - first.weekday()) % 7)
    return first_sunday + dt.timedelta(weeks=3)


def test_schedule_is_fourth_sunday_0200_utc() -> None:
    from airflow.timetables.base import DataInterval, TimeRestriction

    serialized = DagSerialization.from_dict(DagSerialization.to_dict(build_patch_cycle_dag(TENANTS[0])))
    timetable = serialized.timetable
    restriction = TimeRestriction(earliest=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), latest=None, catchup=True)
    last: DataInterval | None = None
    seen = []
    for _ in range(14):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        assert info is not None
        seen.append(info.logical_date)
        last = info.data_interval
    for when in seen:
        assert when.date() == _fourth_sunday(when.year, when.month)
        assert (when.hour, when.minute) == (2, 0)
        assert when.utcoffset() == dt.timedelta(0)
    assert [w.month for w in seen[:12]] == list(range(1, 13))


def _validated(dag, conf):
    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params.validate()


def test_params_defaults_are_valid_and_bad_input_is_rejected() -> None:
    dag = build_patch_cycle_dag(TENANTS[0])
    defaults = _validated(dag, {})
    assert defaults["environments"] == ["nonprod", "staging", "prod"]
    assert defaults["dry_run"] is False
    assert (
        _validated(dag, {"cycle_date": "2026-10-25", "environments": ["nonprod"]})["cycle_date"]
        == "2026-10-25"
    )
    for bad in (
        {"environments": ["qa"]},
        {"environments": []},
        {"environments": ["prod", "prod"]},
        {"cycle_date": "25/10/2026"},
        {"soak_hours_override": -1},
        {"dry_run": "yes"},
    ):
        with pytest.raises(ParamValidationError):
            _validated(dag, bad)


def test_an_approval_gates_prod_before_its_window_and_backups() -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    tenant = TENANTS[0]
    envs = [e.model_copy(update={"approval_required": e.name.value == "prod"}) for e in tenant.environments]
    dag = build_patch_cycle_dag(tenant.model_copy(update={"environments": envs}))
    approval = dag.get_task("prod.approval")
    assert isinstance(approval, ApprovalOperator)
    assert approval.downstream_task_ids == {"prod.window"}
    assert "prod.approval" not in {t.task_id for t in dag.tasks if t.task_id.startswith("staging.")}
    assert "staging.approval" not in dag.task_ids


def test_prod_with_a_canary_patches_it_first_then_the_rest_after_the_window_again() -> None:
    tenant = TENANTS[0]
    assert tenant.environment("prod").canary.share > 0 and tenant.environment("prod").change_window
    dag = build_patch_cycle_dag(tenant)
    prod = sorted(t for t in dag.task_ids if t.startswith("prod."))
    clouds = [*tenant.clouds.declared, *(["rds"] if tenant.patches_rds else [])]
    assert prod == sorted(
        [
            "prod.window",
            "prod.backup",
            "prod.wait_for_backups",
            *(f"prod.canary.patch_{c}" for c in clouds),
            "prod.canary.verify",
            *(["prod.canary.health", "prod.health"] if tenant.health else []),
            "prod.window_main",
            *(f"prod.patch_{c}" for c in clouds),
            "prod.verify",
        ]
    )


def test_a_broken_tenant_file_is_an_import_error_naming_file_and_field(tmp_path: Path, monkeypatch) -> None:
    for source in (REPO / "include" / "tenants").glob("*.yaml"):
        shutil.copy(source, tmp_path / source.name)
    bad = (tmp_path / "cu_alpha.yaml").read_text().replace('max_errors: "5%"', 'max_errors: "150%"', 1)
    assert bad != (tmp_path / "cu_alpha.yaml").read_text()
    (tmp_path / "cu_broken.yaml").write_text(bad.replace("id: cu_alpha", "id: cu_broken"))
    monkeypatch.setenv("PATCHCYCLE_TENANTS_DIR", str(tmp_path))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    errors = {Path(k).name: v for k, v in bag.import_errors.items()}
    assert set(errors) == {"tenant_config_check.py"}
    message = errors["tenant_config_check.py"]
    assert "cu_broken.yaml" in message
    assert "rate_control.max_errors" in message
    assert "150%" in message
    assert {f"patch_cycle__{t.id}" for t in TENANTS} <= set(bag.dag_ids)
    assert "patch_cycle__cu_broken" not in bag.dag_ids


def test_the_portfolio_waits_for_every_tenants_evidence(dagbag: DagBag) -> None:
    from patchcycle.dag_factory import evidence_asset

    portfolio = dagbag.dags["patchcycle_portfolio"]
    wanted = {evidence_asset(t).name for t in TENANTS}
    scheduled = {a.name for a in portfolio.timetable.asset_condition.objects}
    assert scheduled == wanted
    for tenant in TENANTS:
        evidence = build_patch_cycle_dag(tenant).get_task("evidence")
        assert [a.name for a in evidence.outlets] == [evidence_asset(tenant).name]


def test_the_evidence_sweep_has_one_task_per_tenant_and_runs_hourly_without_catchup(dagbag: DagBag) -> None:
    sweep = dagbag.dags["patchcycle_evidence_sweep"]
    assert sorted(sweep.task_ids) == sorted(t.id for t in TENANTS)
    assert sweep.catchup is False and sweep.max_active_runs == 1
    assert sweep.timetable.expression == "20 * * * *"
    assert all(task.retries >= 1 for task in sweep.tasks)


def test_an_opted_in_tenant_rolls_back_failed_prod_hosts_after_both_batches_whatever_happened() -> None:
    from patchcycle.config.models import RollbackPolicy

    tenant = TENANTS[0].model_copy(update={"rollback": RollbackPolicy(automatic=True)})
    dag = build_patch_cycle_dag(tenant)
    rollback = dag.get_task("prod.rollback_failed")
    assert rollback.trigger_rule == "all_done"
    assert rollback.upstream_task_ids == {"prod.canary.verify", "prod.verify"}
    assert not any(t.endswith("rollback_failed") for t in build_patch_cycle_dag(TENANTS[0]).task_ids)
    assert "staging.rollback_failed" not in dag.task_ids


def test_rds_is_patched_by_its_own_task_in_every_batch_only_for_tenants_that_opt_in() -> None:
    tenant = TENANTS[0]
    aws = tenant.clouds.aws
    accounts = [a.model_copy(update={"rds": True}) for a in aws.accounts]
    clouds = tenant.clouds.model_copy(update={"aws": aws.model_copy(update={"accounts": accounts})})
    with_rds = build_patch_cycle_dag(tenant.model_copy(update={"clouds": clouds}))
    without = build_patch_cycle_dag(
        tenant.model_copy(
            update={
                "clouds": tenant.clouds.model_copy(
                    update={
                        "aws": aws.model_copy(
                            update={"accounts": [a.model_copy(update={"rds": False}) for a in aws.accounts]}
                        )
                    }
                )
            }
        )
    )
    rds_tasks = sorted(t for t in with_rds.task_ids if t.endswith("patch_rds"))
    assert rds_tasks == sorted(
        f"{env.name.value}.{batch}patch_rds"
        for env in tenant.environments
        for batch in (["canary.", ""] if env.canary.share or env.canary.hosts else [""])
    )
    assert not any(t.endswith("patch_rds") for t in without.task_ids)
    for task_id in rds_tasks:
        task = with_rds.get_task(task_id)
        verify = task_id.rsplit(".", 1)[0] + ".verify"
        assert task.downstream_task_ids == {verify}
        assert (
            task.upstream_task_ids
            == with_rds.get_task(task_id.replace("patch_rds", "patch_aws")).upstream_task_ids
        )


def test_the_trigger_forms_declare_exactly_the_keys_the_runs_accept() -> None:
    from patchcycle.config.loader import load_tenants
    from patchcycle.dag_factory import cycle_params
    from patchcycle.domain.run_conf import CYCLE_PARAMS, ROLLBACK_PARAMS
    from patchcycle.rollback_dag import rollback_params

    tenant = load_tenants().tenants[0]
    assert tuple(cycle_params(tenant)) == CYCLE_PARAMS
    assert tuple(rollback_params()) == ROLLBACK_PARAMS


def test_each_cycle_dag_documents_its_stages_gates_and_what_to_do() -> None:
    """The DAG's doc in the UI says, for this tenant, what the cycle does and how to run and stop it."""
    from patchcycle.config.loader import load_tenant
    from patchcycle.dag_factory import build_patch_cycle_dag

    dag = build_patch_cycle_dag(load_tenant(REPO / "include" / "tenants" / "cu_alpha.yaml"))
    doc = dag.doc_md or ""
    assert "**staging** (soak 24 h)" in doc
    assert "**prod** (window sun 01:00-06:00 America/New_York; canary batch first)" in doc
    assert "SOC 2, PCI DSS, SOX" in doc and "s3://patchcycle-evidence-cu-alpha/" in doc
    assert "Dry run" in doc and "12 h late" in doc and "patchcycle_rollback__cu_alpha" in doc


@pytest.mark.parametrize("dag_id", ["patch_cycle__cu_birch", "patchcycle_rollback__cu_birch"])
def test_a_worker_running_one_task_builds_only_that_tenants_dag(dag_id: str, monkeypatch) -> None:
    """The task runner parses the DAG file inside Airflow's parsing context, naming the DAG it runs
    (``airflow.sdk.get_parsing_context``); the per-tenant files then build that tenant's DAG alone."""
    from airflow.sdk.definitions.context import _AIRFLOW_PARSING_CONTEXT_DAG_ID

    monkeypatch.setenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID, dag_id)
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    per_tenant = {d for d in bag.dag_ids if d.startswith(("patch_cycle__", "patchcycle_rollback__"))}
    assert per_tenant == {dag_id}
    assert bag.dags[dag_id].task_ids


# -- the daily drift report ---------------------------------------------------------------------------------
def test_one_drift_dag_per_tenant_with_aws_runs_daily_at_0500_utc_without_catchup(dagbag: DagBag) -> None:
    from airflow.timetables.base import TimeRestriction

    with_aws = [t for t in TENANTS if t.clouds.aws is not None]
    assert with_aws
    for tenant in with_aws:
        dag = dagbag.dags[f"iac_drift__{tenant.id}"]
        assert dag.catchup is False and dag.max_active_runs == 1
        assert sorted(dag.task_ids) == ["notify", "report"]
        assert dag.get_task("notify").upstream_task_ids == {"report"}
        assert {"drift", f"tenant:{tenant.id}"} <= set(dag.tags)
        assert all(task.retries >= 1 and task.owner == tenant.owner for task in dag.tasks)
    serialized = DagSerialization.from_dict(
        DagSerialization.to_dict(dagbag.dags[f"iac_drift__{with_aws[0].id}"])
    )
    restriction = TimeRestriction(earliest=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), latest=None, catchup=True)
    last = None
    runs = []
    for _ in range(3):
        info = serialized.timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction
        )
        assert info is not None
        runs.append(info.logical_date)
        last = info.data_interval
    assert runs == [dt.datetime(2026, 1, d, 5, tzinfo=dt.UTC) for d in (1, 2, 3)]


def test_the_drift_dags_params_take_a_report_date_and_an_engine_and_refuse_others() -> None:
    from patchcycle.dag_factory import build_iac_drift_dag

    dag = build_iac_drift_dag(TENANTS[0])
    defaults = _validated(dag, {})
    assert defaults == {"as_of": None, "engine": "auto"}
    assert _validated(dag, {"as_of": "2026-11-20", "engine": "state"})["as_of"] == "2026-11-20"
    for bad in ({"as_of": "20/11/2026"}, {"engine": "terraform"}, {"engine": None}):
        with pytest.raises(ParamValidationError):
            _validated(dag, bad)
    data = DagSerialization.to_dict(dag)
    DagSerialization.validate_schema(data)


def test_a_worker_running_a_drift_task_builds_only_that_tenants_drift_dag(monkeypatch) -> None:
    from airflow.sdk.definitions.context import _AIRFLOW_PARSING_CONTEXT_DAG_ID

    monkeypatch.setenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID, "iac_drift__cu_birch")
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    assert {d for d in bag.dag_ids if d.startswith("iac_drift__")} == {"iac_drift__cu_birch"}
