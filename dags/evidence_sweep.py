"""The hourly evidence sweep dag (Apache airflow): packs for cycle runs that ended without one.

Wiring only; see patchcycle.dag_factory.build_evidence_sweep_dag.
"""

from patchcycle.config.loader import load_tenants
from patchcycle.dag_factory import build_evidence_sweep_dag

_tenants = load_tenants().tenants
if _tenants:
    patchcycle_evidence_sweep = build_evidence_sweep_dag(list(_tenants))
