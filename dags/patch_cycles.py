"""The monthly patch cycle dag (Apache airflow) of every tenant in include/tenants/.

Wiring only; see patchcycle.dag_factory.

A tenant file that fails validation is left out here, with a warning, so the other tenants still load;
``tenant_config_check.py`` turns it into an import error that names the file and the field.
"""

# Airflow's safe-mode scan reads only files that mention both "airflow" and "dag" (as this line does).
import warnings

from airflow.sdk import get_parsing_context

from patchcycle.config.loader import load_tenants
from patchcycle.dag_factory import build_patch_cycle_dag

# A worker parsing this file to run one task names its DAG: build only that one (Airflow's "Dynamic DAG
# Generation", "Optimizing DAG parsing delays during execution"); every tenant file is still loaded and
# checked against the others. Building all of a dozen tenants' DAGs took 1.2 s of each task's start.
_running = get_parsing_context().dag_id
_tenants = load_tenants()
for _error in _tenants.errors:
    warnings.warn(f"tenant left out: {_error}", stacklevel=1)
for _tenant in _tenants.tenants:
    if _running in (None, _tenant.dag_id):
        globals()[_tenant.dag_id] = build_patch_cycle_dag(_tenant)
