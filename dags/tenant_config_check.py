"""Surfaces invalid tenant files as an import error in Airflow, naming each file and field (no DAG here).

Airflow records import errors per DAG file; keeping this check apart means one broken tenant file
shows up clearly without taking the other tenants' cycles (in patch_cycles.py) down with it.
It names airflow and dag so Airflow's safe-mode scan reads it.
"""

from patchcycle.config.loader import load_tenants

_tenants = load_tenants()
if _tenants.errors:
    raise ValueError("\n\n".join(str(error) for error in _tenants.errors))
