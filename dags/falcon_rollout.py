"""The Falcon sensor roll-out dag (Apache airflow) of every tenant whose file declares falcon.rollout.

Wiring only; see patchcycle.dag_factory.build_falcon_rollout_dag. Tenant files that fail validation are
left out here (``tenant_config_check.py`` reports them), as in patch_cycles.py.
"""

from airflow.sdk import get_parsing_context

from patchcycle.config.loader import load_tenants
from patchcycle.dag_factory import build_falcon_rollout_dag, falcon_rollout_dag_id

# A worker parsing this file to run one task names its DAG: build only that one.
_running = get_parsing_context().dag_id
for _tenant in load_tenants().tenants:
    _rolls_out = _tenant.falcon is not None and _tenant.falcon.rollout is not None
    if _rolls_out and _running in (None, falcon_rollout_dag_id(_tenant)):
        globals()[falcon_rollout_dag_id(_tenant)] = build_falcon_rollout_dag(_tenant)
