"""The daily drift report dag (Apache airflow) of every tenant with AWS in include/tenants/.

Wiring only; see patchcycle.dag_factory.build_iac_drift_dag. A tenant without AWS has no Terraform
state for the report to read (its Terraform root needs an AWS scope), so it has no drift DAG.
"""

from airflow.sdk import get_parsing_context

from patchcycle.config.loader import load_tenants
from patchcycle.dag_factory import build_iac_drift_dag, iac_drift_dag_id

# A worker parsing this file to run one task names its DAG: build only that one.
_running = get_parsing_context().dag_id
for _tenant in load_tenants().tenants:
    if _tenant.clouds.aws is not None and _running in (None, iac_drift_dag_id(_tenant)):
        globals()[iac_drift_dag_id(_tenant)] = build_iac_drift_dag(_tenant)
