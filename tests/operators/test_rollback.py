"""Rollback operators without a cloud: the automatic rollback's opt-in and the GCE disk names."""

from __future__ import annotations

import re

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from patchcycle.config.loader import default_tenants_dir, load_tenant
from patchcycle.config.models import RollbackPolicy
from patchcycle.operators.rollback import RollbackFailedHostsOperator, restored_disk_name


def test_automatic_rollback_skips_a_tenant_that_did_not_opt_in() -> None:
    op = RollbackFailedHostsOperator(task_id="rollback", tenant_id="cu_alpha", environment="prod")
    tenant = load_tenant(default_tenants_dir() / "cu_alpha.yaml")
    assert tenant.rollback is None
    op.__dict__["tenant"] = tenant
    with pytest.raises(AirflowSkipException, match="not opted in"):
        op.targets({}, log=None)
    assert op.automatic and op.deferrable


def test_automatic_rollback_skips_a_stage_not_in_the_run() -> None:
    op = RollbackFailedHostsOperator(task_id="rollback", tenant_id="cu_alpha", environment="prod")
    tenant = load_tenant(default_tenants_dir() / "cu_alpha.yaml")
    op.__dict__["tenant"] = tenant.model_copy(update={"rollback": RollbackPolicy(automatic=True)})

    class Ti:
        @staticmethod
        def xcom_pull(task_ids: str) -> dict:
            return {"dry_run": False, "environments": ["nonprod"], "cycle_date": "2026-11-22"}

    with pytest.raises(AirflowSkipException, match="prod is not part of this run"):
        op.targets({"ti": Ti()}, log=None)


@pytest.mark.parametrize("instance", ["t-gce-stg-db-01", "A" * 63, "web_01.example"])
def test_restored_disk_names_are_valid_and_stable(instance: str) -> None:
    name = restored_disk_name(instance, "cu_alpha|2026-11-22|run")
    assert re.fullmatch(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?", name), name
    assert name == restored_disk_name(instance, "cu_alpha|2026-11-22|run")
    assert name != restored_disk_name(instance, "cu_alpha|2026-11-22|other-run")
