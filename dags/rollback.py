"""The manual rollback dag (Apache airflow) of every tenant in include/tenants/: patchcycle_rollback__<id>.

Wiring only; see patchcycle.rollback_dag. Invalid tenant files are left out here, as in patch_cycles.py;
tenant_config_check.py reports them.
"""

import warnings

from patchcycle.config.loader import load_tenants
from patchcycle.rollback_dag import build_rollback_dag, rollback_dag_id

_tenants = load_tenants()
for _error in _tenants.errors:
    warnings.warn(f"tenant left out of rollback DAGs: {_error}", stacklevel=1)
for _tenant in _tenants.tenants:
    globals()[rollback_dag_id(_tenant)] = build_rollback_dag(_tenant)
