"""IAM SAML providers as AWS documents them, over moto's, seeded with the scenario's providers.

moto keeps the metadata document as given and serves it back from GetSAMLProvider (checked), but:

- its ``ValidUntil`` is one constant for every provider (2032-05-09T16:27:11). AWS gives the provider
  object a validity of its own: the IAM API Reference's GetSAMLProvider example (IAM User Guide, "Use
  GetSamlProvider with a CLI") shows ``"CreateDate": "2017-03-06T22:29:46+00:00"`` with ``"ValidUntil":
  "2117-03-06T22:29:46.433000+00:00"``, a hundred years on. Here ``ValidUntil`` is the creation time plus
  a hundred years; the certificates' own expiry is in the metadata document, which is what the watch
  reads.
- its CreateSAMLProvider replaces a provider of the same name; AWS refuses it with
  ``EntityAlreadyExists`` (CreateSAMLProvider, Errors: "The request was rejected because it attempted to
  create a resource that already exists"), so a seed or a test cannot silently overwrite one.

UpdateSAMLProvider with a new ``SAMLMetadataDocument`` is how a certificate is rolled (renewed) in a
test, as in AWS: the provider keeps its ARN and ``CreateDate``; ``ValidUntil`` does not change.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from moto.iam.exceptions import EntityAlreadyExists
from moto.iam.models import IAMBackend, iam_backends

from fleetsim.fleet import FleetState
from fleetsim.saml import IamProviderSeed, TenantSaml, provider_metadata

PROVIDER_YEARS = 100

_original_create = IAMBackend.create_saml_provider


def _hundred_years_on(moment: dt.datetime) -> dt.datetime:
    try:
        return moment.replace(year=moment.year + PROVIDER_YEARS)
    except ValueError:  # 29 February into a common year
        return moment.replace(year=moment.year + PROVIDER_YEARS, day=28)


def _create_saml_provider(self: IAMBackend, name: str, saml_metadata_document: str) -> Any:
    if name in self.saml_providers:
        raise EntityAlreadyExists(f"SAMLProvider {name} already exists")
    provider = _original_create(self, name, saml_metadata_document)
    provider.valid_until = _hundred_years_on(provider.create_date)
    return provider


def install(state: FleetState) -> None:
    """Serve IAM SAML providers as AWS does (``state`` unused: IAM is the account's, not the fleet's)."""
    del state
    IAMBackend.create_saml_provider = _create_saml_provider  # type: ignore[method-assign]


def seed_iam_providers(tenant: TenantSaml, default_account: str | None, now: dt.datetime) -> list[str]:
    """Create the tenant's IAM SAML providers in moto's IAM of each account; return their ARNs."""
    arns: list[str] = []
    for seed in tenant.aws_iam:
        account = seed.account_id or default_account
        if account is None:
            raise ValueError(
                f"saml.tenants[{tenant.id}].aws_iam[{seed.name}]: no account_id and no AWS fleet"
            )
        arns.append(_create(account, seed, tenant.id, now))
    return arns


def _create(account: str, seed: IamProviderSeed, tenant_id: str, now: dt.datetime) -> str:
    entity = seed.entity_id or f"https://idp.{tenant_id.replace('_', '-')}.example/{seed.name}"
    document = provider_metadata(
        entity, seed.certificates, f"{tenant_id}-{seed.name}", now, unparseable=seed.unparseable
    )
    backend = iam_backends[account]["aws"]
    return backend.create_saml_provider(seed.name, document).arn
