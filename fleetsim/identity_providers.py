"""Seed every tenant's SAML identity-provider configurations into the clouds that trust them: IAM SAML
providers (moto), Entra ID applications (:mod:`fleetsim.azure.graph_saml`) and workforce pool providers
(:mod:`fleetsim.gcp.workforce`). What each tenant has is the scenario's ``saml:`` section, else one
healthy provider per cloud of its fleet (see :mod:`fleetsim.saml`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fleetsim.aws.saml import seed_iam_providers
from fleetsim.saml import EntraAppSeed, IamProviderSeed, SamlSeed, TenantSaml, WorkforceProviderSeed
from fleetsim.scenario import Scenario, TenantFleet


def default_saml(tenant: TenantFleet) -> TenantSaml:
    """One healthy provider per cloud the tenant's fleet is in."""
    dashed = tenant.id.replace("_", "-")
    return TenantSaml(
        id=tenant.id,
        aws_iam=[IamProviderSeed(name=f"{dashed}-idp")] if tenant.aws else [],
        entra_id=[EntraAppSeed(name=f"{tenant.id} employee portal")] if tenant.azure else [],
        gcp_workforce=[WorkforceProviderSeed(pool=f"{dashed}-workforce", provider="corp-idp")]
        if tenant.gcp
        else [],
    )


def scenario_saml(scenario: Scenario) -> SamlSeed:
    """The scenario's ``saml:`` section (an empty one when it has none)."""
    return scenario.saml


def effective(scenario: Scenario) -> list[tuple[TenantFleet, TenantSaml]]:
    """Each scenario tenant with the SAML configurations it has."""
    seed = scenario_saml(scenario)
    listed = {t.id: t for t in seed.tenants}
    unknown = sorted(set(listed) - {t.id for t in scenario.tenants})
    if unknown:
        raise ValueError(f"saml.tenants: {unknown} are not tenants of the scenario")
    pairs: list[tuple[TenantFleet, TenantSaml]] = []
    for tenant in scenario.tenants:
        if tenant.id in listed:
            pairs.append((tenant, listed[tenant.id]))
        elif seed.default_healthy:
            pairs.append((tenant, default_saml(tenant)))
    return pairs


def seed_identity_providers(scenario: Scenario, vendors: list[Any], now: dt.datetime | None = None) -> None:
    """Create every tenant's providers, their certificates made relative to ``now`` (the wall clock)."""
    from fleetsim.azure.graph_saml import GraphSamlApi
    from fleetsim.gcp.workforce import WorkforceApi

    now = now or dt.datetime.now(dt.UTC)
    graph = next(v for v in vendors if isinstance(v, GraphSamlApi))
    workforce = next(v for v in vendors if isinstance(v, WorkforceApi))
    for tenant, saml in effective(scenario):
        seed_iam_providers(saml, tenant.aws.account_id if tenant.aws else None, now)
        graph.seed(tenant.id, saml.entra_id, now)
        projects = [tenant.gcp.project_id] if tenant.gcp else []
        workforce.seed(tenant.id, projects, saml.gcp_workforce, now)
