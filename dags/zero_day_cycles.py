"""The out-of-band zero-day cycle dag (Apache airflow) of every tenant whose file declares risk.zero_day.

Wiring only; see patchcycle.dag_factory.build_zero_day_dag. Tenant files that fail validation are left out
here (``tenant_config_check.py`` reports them), as in patch_cycles.py.
"""

from airflow.sdk import get_parsing_context

from patchcycle.config.loader import load_tenants
from patchcycle.dag_factory import build_zero_day_dag, zero_day_dag_id

# A worker parsing this file to run one task names its DAG: build only that one.
_running = get_parsing_context().dag_id
for _tenant in load_tenants().tenants:
    if _tenant.risk.zero_day is not None and _running in (None, zero_day_dag_id(_tenant)):
        globals()[zero_day_dag_id(_tenant)] = build_zero_day_dag(_tenant)
