"""The manual rollback dag (Apache airflow) of every tenant in include/tenants/: patchcycle_rollback__<id>.

Wiring only; see patchcycle.rollback_dag. Invalid tenant files are left out here, as in patch_cycles.py;
tenant_config_check.py reports them.
"""

import warnings

from airflow.sdk import get_parsing_context

from patchcycle.config.loader import load_tenants
from patchcycle.rollback_dag import build_rollback_dag, rollback_dag_id

# A worker running one task builds only that task's DAG (as patch_cycles.py does).
_running = get_parsing_context().dag_id
_tenants = load_tenants()
for _error in _tenants.errors:
    warnings.warn(f"tenant left out of rollback DAGs: {_error}", stacklevel=1)
for _tenant in _tenants.tenants:
    if _running in (None, rollback_dag_id(_tenant)):
        globals()[rollback_dag_id(_tenant)] = build_rollback_dag(_tenant)
