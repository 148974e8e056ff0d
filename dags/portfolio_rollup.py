"""The cross-tenant portfolio dag (Apache airflow): after every tenant's evidence pack is written.

Wiring only; see patchcycle.dag_factory.build_portfolio_dag.
"""

from patchcycle.config.loader import load_tenants
from patchcycle.dag_factory import build_portfolio_dag

_tenants = load_tenants().tenants
if _tenants:
    patchcycle_portfolio = build_portfolio_dag(list(_tenants))
