"""A tenant's SAML certificate watch: the expiry tiers it is alerted at, and which identity-provider
configurations are watched (by default every kind its clouds have)."""

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictInt, StringConstraints, field_validator

from patchcycle.config.vocabulary import ConfigModel, ConnectionId

SamlProviderKind = Literal["aws_iam", "aws_identity_center", "entra_id", "gcp_workforce"]
DEFAULT_TIERS_DAYS = [60, 30, 14, 7]
"""The seed paper's 60-day threshold (section 4.2), then the tiers an on-call rotation escalates through."""
MAX_TIER_DAYS = 730


class EntraWatch(ConfigModel):
    """Where the tenant's Entra ID directory is read (Microsoft Graph)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connection_id: ConnectionId | None = None
    """Airflow ``azure`` connection whose app may read service principals (Application.Read.All);
    default: the connection of the tenant's first Azure subscription."""


class GcpWorkforceWatch(ConfigModel):
    """Where the tenant's workforce identity pools are read (IAM, organization level)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    organization_id: Annotated[str, StringConstraints(pattern=r"^\d{1,20}$")] | None = None
    """The Google Cloud organization number; default: the connection's extra ``organization_id``, else
    the organization of the tenant's first project (Resource Manager ``projects.getAncestry``)."""
    connection_id: ConnectionId | None = None
    """Airflow ``google_cloud_platform`` connection; default: the tenant's first project's."""


class IdentityCenterWatch(ConfigModel):
    """IAM Identity Center's external identity provider, read from the IdP's published metadata (AWS has
    no API that reads Identity Center's identity source)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metadata_url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2048)]
    """The identity provider's SAML metadata URL (https; http only on loopback)."""


class SamlPolicy(ConfigModel):
    """Watch the SAML identity-provider certificates the tenant's clouds trust, daily."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    tiers_days: list[StrictInt] = Field(
        default_factory=lambda: list(DEFAULT_TIERS_DAYS), min_length=1, max_length=8
    )
    """Days of validity left at which a certificate alerts, one incident per certificate and tier."""
    watch: list[SamlProviderKind] | None = None
    """Which provider kinds to read; default: ``aws_iam`` for AWS tenants, ``entra_id`` for Azure tenants,
    ``gcp_workforce`` for GCP tenants, and ``aws_identity_center`` when its metadata URL is given."""
    entra_id: EntraWatch = Field(default_factory=EntraWatch)
    gcp_workforce: GcpWorkforceWatch = Field(default_factory=GcpWorkforceWatch)
    aws_identity_center: IdentityCenterWatch | None = None

    @field_validator("tiers_days")
    @classmethod
    def _sound_tiers(cls, value: list[int]) -> list[int]:
        for tier in value:
            if not 1 <= tier <= MAX_TIER_DAYS:
                raise ValueError(f"each tier is a number of days from 1 to {MAX_TIER_DAYS}, got {tier}")
        if len(set(value)) != len(value):
            raise ValueError(f"a tier is listed twice: {value}")
        return sorted(value, reverse=True)

    @field_validator("watch")
    @classmethod
    def _no_repeats(cls, value: list[SamlProviderKind] | None) -> list[SamlProviderKind] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"a provider kind is listed twice: {value}")
        return value

    def kinds(self, clouds: list[str]) -> list[SamlProviderKind]:
        """The provider kinds watched for a tenant whose declared clouds are ``clouds``."""
        if not self.enabled:
            return []
        if self.watch is not None:
            return list(self.watch)
        kinds: list[SamlProviderKind] = []
        if "aws" in clouds:
            kinds.append("aws_iam")
        if self.aws_identity_center is not None:
            kinds.append("aws_identity_center")
        if "azure" in clouds or self.entra_id.connection_id:
            kinds.append("entra_id")
        if "gcp" in clouds or self.gcp_workforce.connection_id:
            kinds.append("gcp_workforce")
        return kinds

    def problems(self, clouds: list[str]) -> list[str]:
        """Why the watched kinds cannot be read for a tenant with ``clouds`` (empty when they can)."""
        found: list[str] = []
        for kind in self.watch or []:
            if kind == "aws_iam" and "aws" not in clouds:
                found.append("watch lists aws_iam, but the tenant declares no AWS account")
            if kind == "aws_identity_center" and self.aws_identity_center is None:
                found.append("watch lists aws_identity_center: give aws_identity_center.metadata_url")
            if kind == "entra_id" and "azure" not in clouds and not self.entra_id.connection_id:
                found.append("watch lists entra_id: declare an Azure subscription or entra_id.connection_id")
            if kind == "gcp_workforce" and "gcp" not in clouds and not self.gcp_workforce.connection_id:
                found.append(
                    "watch lists gcp_workforce: declare a GCP project or gcp_workforce.connection_id "
                    "and organization_id"
                )
        return found
