"""AWS IAM SAML providers, read for the SAML certificate watch: one account per connection.

Thin seams over the Amazon provider's hook, read only (IAM API Reference,
https://docs.aws.amazon.com/IAM/latest/APIReference/):

- ListSAMLProviders: every SAML provider of the account, ``Arn``, ``ValidUntil``, ``CreateDate``. It
  takes no parameters and is not paginated (no ``Marker``/``MaxItems``): one call per account.
- GetSAMLProvider (``SAMLProviderArn``): the provider's ``SAMLMetadataDocument`` (the XML its trust is
  built on: the identity provider's certificates), ``ValidUntil``, ``CreateDate`` and ``Tags``. One call
  per provider: no batch form exists. ``NoSuchEntity`` when the provider was deleted between the two
  calls (answered None here).

The account a connection reaches is the one its credentials (or ``role_arn``) act in; the providers'
ARNs name it, and :meth:`IamSamlHook.saml_providers` refuses ARNs of another account than the one asked
for, so a connection pointed at the wrong account fails loudly instead of watching someone else's.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.exceptions import ClientError

from patchcycle.hooks.aws_session import CallerFromFrames


class WrongAccount(RuntimeError):
    """The connection acts in another AWS account than the tenant file declares."""


class IamSamlHook(CallerFromFrames, AwsBaseHook):
    """The IAM SAML providers of one AWS account."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "iam"
        super().__init__(*args, **kwargs)
        self.calls = 0

    def saml_providers(self, account_id: str | None = None) -> list[dict[str, Any]]:
        """ListSAMLProviders: ``Arn``, ``ValidUntil``, ``CreateDate`` of each provider; with
        ``account_id``, :class:`WrongAccount` when an ARN names another account."""
        self.calls += 1
        providers: list[dict[str, Any]] = self.conn.list_saml_providers()["SAMLProviderList"]
        if account_id is not None:
            others = sorted({p["Arn"].split(":")[4] for p in providers} - {account_id})
            if others:
                raise WrongAccount(
                    f"connection {self.aws_conn_id!r} lists SAML providers of account {', '.join(others)}, "
                    f"not of {account_id}: check its role_arn"
                )
        return providers

    def saml_provider(self, arn: str) -> dict[str, Any] | None:
        """GetSAMLProvider: ``SAMLMetadataDocument``, ``ValidUntil``, ``CreateDate``; None when the provider
        no longer exists (``NoSuchEntity``)."""
        self.calls += 1
        try:
            answer: dict[str, Any] = self.conn.get_saml_provider(SAMLProviderArn=arn)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
                return None
            raise
        answer.pop("ResponseMetadata", None)
        return answer
