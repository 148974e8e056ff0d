"""One manual rollback DAG per tenant: restore chosen hosts from a cycle's backups, verify, record.

Wiring only: the tasks are :mod:`patchcycle.operators.rollback`. ``select`` refuses the whole request
(naming each host) before anything is touched; ``restore`` defers while the clouds restore; ``verify``
reads the hosts back and writes the rollback record to the tenant's evidence bucket under the cycle.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, Param

from patchcycle.config.models import Tenant
from patchcycle.operators.rollback import (
    RESTORE_TASK_ID,
    SELECT_TASK_ID,
    RestoreHostsOperator,
    SelectRollbackOperator,
    VerifyRollbackOperator,
)

START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def rollback_dag_id(tenant: Tenant) -> str:
    """The id of the tenant's rollback DAG: ``patchcycle_rollback__<tenant id>``."""
    return f"patchcycle_rollback__{tenant.id}"


def rollback_params() -> dict[str, Param]:
    """The trigger form (validated as JSON Schema): which cycle, which hosts, and why."""
    return {
        "cycle": Param(
            type="string",
            format="date",
            title="Cycle date",
            description="The cycle (YYYY-MM-DD) whose pre-patch backups the hosts are restored from.",
        ),
        "hosts": Param(
            type="array",
            items={"type": "string", "minLength": 1},
            minItems=1,
            uniqueItems=True,
            title="Hosts",
            description=(
                "Host names or ids to roll back: EC2 instance id, RDS DB instance identifier, Arc machine "
                "id, GCE instance id. A host named twice (by name and by id) is rolled back once."
            ),
        ),
        "reason": Param(
            type="string",
            minLength=1,
            maxLength=500,
            title="Reason",
            description="Why these hosts are rolled back (recorded in the evidence).",
        ),
    }


def default_args(tenant: Tenant) -> dict[str, Any]:
    """Default task arguments of the rollback DAG: the tenant's owner, and 2 retries
    ``[patchcycle] retry_delay_seconds`` apart (120 s unless configured)."""
    from airflow.configuration import conf

    delay = dt.timedelta(seconds=conf.getfloat("patchcycle", "retry_delay_seconds", fallback=120.0))
    return {"owner": tenant.owner, "retries": 2, "retry_delay": delay}


def build_rollback_dag(tenant: Tenant) -> DAG:
    """Manual only: restore the chosen hosts of one of the tenant's cycles from that cycle's backups."""
    ids = {"tenant_id": tenant.id}
    with DAG(
        dag_id=rollback_dag_id(tenant),
        description=f"Roll hosts of {tenant.display_name} back from a cycle's pre-patch backups",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(tenant),
        params=rollback_params(),
        tags=["patchcycle", "rollback", f"tenant:{tenant.id}"],
        doc_md=(
            f"Roll **{tenant.display_name}** (`{tenant.id}`) hosts back from the backups a cycle took before "
            "patching them (EC2: root volume replaced from the AMI; GCE: boot disk rebuilt from the "
            "snapshot; "
            f"Arc: restored by the backup system). Record: `s3://{tenant.evidence.bucket}/cycles/<cycle>/runs/"
            "<this run>/rollback/`."
        ),
        dagrun_timeout=dt.timedelta(days=1),
    ) as dag:
        select = SelectRollbackOperator(task_id=SELECT_TASK_ID, retries=0, **ids)
        restore = RestoreHostsOperator(task_id=RESTORE_TASK_ID, **ids)
        verify = VerifyRollbackOperator(task_id="verify", **ids)
        select >> restore >> verify
    return dag
