"""Surfaces invalid tenant files and exception registers as an import error in Airflow, naming each file
and field (no DAG here).

Airflow records import errors per DAG file; keeping this check apart means one broken tenant file
shows up clearly without taking the other tenants' cycles (in patch_cycles.py) down with it.
It names airflow and dag so Airflow's safe-mode scan reads it.
"""

from patchcycle.config.exceptions import check_exception_registers
from patchcycle.config.loader import load_tenants

_tenants = load_tenants()
# A register belongs to a tenant file even when that file is broken (its own error says why).
_tenant_ids = {tenant.id for tenant in _tenants.tenants} | {error.path.stem for error in _tenants.errors}
_errors = [*_tenants.errors, *check_exception_registers(_tenant_ids)]
if _errors:
    raise ValueError("\n\n".join(str(error) for error in _errors))
