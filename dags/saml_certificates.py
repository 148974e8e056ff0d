"""The daily SAML certificate watch dag (Apache airflow) of every tenant and of the platform.

Wiring only; see patchcycle.dag_factory.build_saml_certificates_dag. Invalid tenant files are left out
here, as in patch_cycles.py; tenant_config_check.py reports them.
"""

from patchcycle.config.loader import load_tenants
from patchcycle.dag_factory import build_saml_certificates_dag

saml_certificates = build_saml_certificates_dag(list(load_tenants().tenants))
