"""Where a tenant's hosts live: AWS accounts and regions, Azure subscriptions and resource groups,
GCP projects and zones, each with the connection the hooks use.
"""

from typing import Annotated

from pydantic import (
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from patchcycle.config.unique import unique
from patchcycle.config.vocabulary import AwsRegion, AzureResourceGroup, ConfigModel, ConnectionId, GcpZone


class AwsAccount(ConfigModel):
    """An AWS account and the regions in it that hold the tenant's hosts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: str = Field(pattern=r"^\d{12}$")
    regions: Annotated[list[AwsRegion], unique("regions")] = Field(min_length=1)
    connection_id: ConnectionId | None = None
    # Amazon RDS DB instances carrying the tenant's environment tag are patched too: a DB snapshot
    # before, then the OS update RDS offers (its pending ``system-update`` maintenance action). Off by
    # default: the update restarts the database, so a tenant opts in per account.
    rds: bool = False

    @field_validator("account_id", mode="before")
    @classmethod
    def _quoted_account_id(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(
                f"AWS account ids must be quoted strings (unquoted numbers lose leading zeros), got {value!r}"
            )
        return value


class AwsCloud(ConfigModel):
    """The tenant's AWS footprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accounts: Annotated[
        list[AwsAccount], unique("account_id values", key=lambda account: account.account_id)
    ] = Field(min_length=1)


class AzureSubscription(ConfigModel):
    """An Azure subscription and the resource groups in it that hold the tenant's hosts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subscription_id: str = Field(pattern=r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
    resource_groups: Annotated[list[AzureResourceGroup], unique("resource_groups", key=str.lower)] = Field(
        min_length=1
    )
    connection_id: ConnectionId | None = None

    @field_validator("subscription_id")
    @classmethod
    def _lowercase_id(cls, value: str) -> str:
        return value.lower()


class BackupAttestation(ConfigModel):
    """Where the tenant's backup system attests recent good backups of servers that have no cloud snapshot
    API (Azure Arc machines run anywhere), and how recent a backup must be to patch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connection_id: ConnectionId | None = None
    """Airflow connection of the backup system's API; default ``backup_<tenant id>``."""
    max_age_hours: int = Field(default=24, ge=1, le=168)


class AzureCloud(ConfigModel):
    """The tenant's Azure footprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subscriptions: Annotated[
        list[AzureSubscription], unique("subscription_id values", key=lambda sub: sub.subscription_id)
    ] = Field(min_length=1)
    backup_attestation: BackupAttestation = Field(default_factory=BackupAttestation)


class GcpProject(ConfigModel):
    """A Google Cloud project and the zones in it that hold the tenant's hosts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project_id: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    zones: Annotated[list[GcpZone], unique("zones")] = Field(min_length=1)
    connection_id: ConnectionId | None = None


class GcpCloud(ConfigModel):
    """The tenant's Google Cloud footprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    projects: Annotated[
        list[GcpProject], unique("project_id values", key=lambda project: project.project_id)
    ] = Field(min_length=1)


class Clouds(ConfigModel):
    """The clouds a tenant's hosts live in; at least one must be declared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aws: AwsCloud | None = None
    azure: AzureCloud | None = None
    gcp: GcpCloud | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> "Clouds":
        if not self.declared:
            raise ValueError("declare at least one cloud (aws, azure or gcp)")
        return self

    @property
    def declared(self) -> list[str]:
        """Names of the declared clouds, in the order aws, azure, gcp."""
        return [name for name in ("aws", "azure", "gcp") if getattr(self, name) is not None]
