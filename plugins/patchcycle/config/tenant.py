"""The tenant: who it is and whom to tell, its clouds, environments, baselines and policies, with the
rules that hold across them.
"""

from datetime import date
from typing import Annotated

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from patchcycle.config.clouds import AwsAccount, AzureSubscription, Clouds, GcpProject
from patchcycle.config.environments import Environment
from patchcycle.config.policies import (
    Baseline,
    EvidencePolicy,
    FalconPolicy,
    HealthPolicy,
    HostTags,
    IncidentPolicy,
    PreflightPolicy,
    RollbackPolicy,
    SchedulePolicy,
    SlaDays,
)
from patchcycle.config.risk import RiskPolicy
from patchcycle.config.saml import SamlPolicy
from patchcycle.config.unique import duplicates, unique
from patchcycle.config.vocabulary import (
    EMAIL_PATTERN,
    ENVIRONMENT_ORDER,
    ConfigModel,
    EnvironmentName,
    Framework,
    NonEmptyStr,
    OsFamily,
)


class Contact(ConfigModel):
    """A person or team mailbox to notify."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: NonEmptyStr
    email: str

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        if not EMAIL_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid email address")
        return value


class Contacts(ConfigModel):
    """Who is told about a tenant's patch cycles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sre: list[Contact] = Field(min_length=1)
    compliance: list[Contact] = Field(min_length=1)


class Tenant(ConfigModel):
    """A client institution whose fleet is patched as one compliance scope."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # strict: only a YAML string is an id (pydantic would otherwise turn bytes into one).
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,38}[a-z0-9]$", strict=True)
    display_name: NonEmptyStr
    owner: NonEmptyStr
    """Team name, used as the Airflow DAG owner."""
    contacts: Contacts
    frameworks: Annotated[list[Framework], unique("frameworks")] = Field(min_length=1)
    clouds: Clouds
    environments: list[Environment] = Field(min_length=1)
    baselines: list[Baseline] = Field(min_length=1)
    preflight: PreflightPolicy
    evidence: EvidencePolicy
    sla: SlaDays = Field(default_factory=SlaDays)
    schedule: SchedulePolicy = Field(default_factory=SchedulePolicy)
    partial_run_fails: bool = False
    """A cycle that left hosts unpatched (outcome partial) ends as a failed Airflow run, not a green one
    (its outcome task fails after naming the hosts); off, such a run is green and its log names them."""
    falcon: FalconPolicy | None = None
    incidents: IncidentPolicy | None = None
    health: HealthPolicy | None = None
    rollback: RollbackPolicy | None = None
    host_tags: HostTags = Field(default_factory=HostTags)
    incident_runbook_url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None
    onboarded_on: date | None = None
    """The day the tenant's first cycle could run: no cycle date before it is planned (backfills stop
    here). Without it, a cycle date may go back at most a little over a year."""
    saml: SamlPolicy = Field(default_factory=SamlPolicy)
    """The daily SAML certificate watch (on by default: every identity provider its clouds trust)."""
    risk: RiskPolicy = Field(default_factory=RiskPolicy)
    """Fast-tracking of KEV (and high-EPSS) patches and the zero-day cycle; off by default."""

    @field_validator("environments")
    @classmethod
    def _environments_in_order(cls, value: list[Environment]) -> list[Environment]:
        names = [env.name for env in value]
        for name in duplicates(names):
            positions = " and ".join(str(i) for i, other in enumerate(names) if other == name)
            raise ValueError(f"environment {str(name)!r} is declared more than once (entries {positions})")
        for earlier, later in zip(names, names[1:], strict=False):
            if ENVIRONMENT_ORDER.index(later) < ENVIRONMENT_ORDER.index(earlier):
                order = " before ".join(str(name) for name in ENVIRONMENT_ORDER)
                raise ValueError(
                    f"environments are out of order: {str(later)!r} is listed after {str(earlier)!r}, "
                    f"but they must be listed {order}"
                )
        owners: dict[str, EnvironmentName] = {}
        for env in value:
            for tag_value in env.matches_tag_values:
                # Hosts' tags are matched case-insensitively, so "Prod" and "prod" are one value.
                claimed_by = owners.setdefault(tag_value.lower(), env.name)
                if claimed_by != env.name:
                    raise ValueError(
                        f"environment tag value {tag_value!r} is claimed by both "
                        f"{str(claimed_by)!r} and {str(env.name)!r}"
                    )
        return value

    @field_validator("falcon")
    @classmethod
    def _rollout_fits(cls, value: FalconPolicy | None, info: ValidationInfo) -> FalconPolicy | None:
        if value is None or value.rollout is None:
            return value
        clouds = info.data.get("clouds")
        environments = [env.name for env in info.data.get("environments") or []]
        problems = value.rollout.problems(environments, clouds.declared if isinstance(clouds, Clouds) else [])
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("saml")
    @classmethod
    def _saml_watch_readable(cls, value: SamlPolicy, info: ValidationInfo) -> SamlPolicy:
        clouds = info.data.get("clouds")
        problems = value.problems(clouds.declared if isinstance(clouds, Clouds) else [])
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("baselines")
    @classmethod
    def _one_baseline_per_family(cls, value: list[Baseline]) -> list[Baseline]:
        for family in duplicates(baseline.os_family for baseline in value):
            raise ValueError(f"more than one baseline for os_family {str(family)!r}")
        return value

    @property
    def dag_id(self) -> str:
        """Id of the tenant's patch-cycle DAG."""
        return f"patch_cycle__{self.id}"

    @property
    def falcon_rollout_dag_id(self) -> str:
        """Id of the tenant's Falcon sensor roll-out DAG (when it declares ``falcon.rollout``)."""
        return f"falcon_rollout__{self.id}"

    @property
    def environment_names(self) -> list[EnvironmentName]:
        """The tenant's environments, in patching order."""
        return [env.name for env in self.environments]

    def environment(self, name: EnvironmentName | str) -> Environment:
        """The environment called ``name``; ``KeyError`` if the tenant does not have it."""
        for env in self.environments:
            if env.name == name:
                return env
        declared = ", ".join(self.environment_names)
        raise KeyError(f"tenant {self.id!r} has no environment {str(name)!r} (it declares: {declared})")

    def baseline_for(self, os_family: OsFamily | str) -> Baseline | None:
        """The baseline for ``os_family``, or None when the tenant does not patch that family."""
        for baseline in self.baselines:
            if baseline.os_family == os_family:
                return baseline
        return None

    @property
    def patches_rds(self) -> bool:
        """True when any of the tenant's AWS accounts opts in to patching its RDS DB instances."""
        return any(a.rds for a in self.clouds.aws.accounts) if self.clouds.aws else False

    def exclusive_claims(self) -> list[tuple[str, str, str]]:
        """What must belong to this tenant alone, as ``(field path, kind, value)``.

        Its AWS accounts, Azure subscriptions, GCP projects, evidence bucket and every Airflow connection
        its cycle uses (those name the credentials that reach its clouds and tools). Inventory selects
        hosts by tag *within* an account, subscription or project, so two tenants sharing one would
        patch each other's hosts. The evidence writer's connection is the platform's and is shared.
        """
        claims: list[tuple[str, str, str]] = []
        clouds = self.clouds
        if clouds.aws:
            for i, account in enumerate(clouds.aws.accounts):
                claims.append((f"clouds.aws.accounts.{i}.account_id", "AWS account", account.account_id))
                where = f"clouds.aws.accounts.{i}.connection_id"
                claims.append((where, "connection", self.aws_connection_id(account)))
        if clouds.azure:
            for i, subscription in enumerate(clouds.azure.subscriptions):
                where = f"clouds.azure.subscriptions.{i}"
                claims.append(
                    (f"{where}.subscription_id", "Azure subscription", subscription.subscription_id.lower())
                )
                claims.append(
                    (f"{where}.connection_id", "connection", self.azure_connection_id(subscription))
                )
            claims.append(
                (
                    "clouds.azure.backup_attestation.connection_id",
                    "connection",
                    self.backup_attestation_connection_id(),
                )
            )
        if clouds.gcp:
            for i, project in enumerate(clouds.gcp.projects):
                claims.append((f"clouds.gcp.projects.{i}.project_id", "GCP project", project.project_id))
                where = f"clouds.gcp.projects.{i}.connection_id"
                claims.append((where, "connection", self.gcp_connection_id(project)))
        claims.append(("evidence.bucket", "evidence bucket", self.evidence.bucket))
        for where, connection in (
            ("falcon.connection_id", self.falcon_connection_id()),
            (
                "falcon.rollout.connection_id",
                self.falcon.rollout.install_connection_id(self.id)
                if self.falcon is not None and self.falcon.rollout is not None
                else None,
            ),
            (
                "falcon.rollout.install.azure.api_client_connection_id",
                self.falcon.rollout.install.azure.api_client_connection(self.id)
                if self.falcon is not None and self.falcon.rollout is not None and clouds.azure
                else None,
            ),
            ("health.connection_id", self.dynatrace_connection_id()),
            ("incidents.connection_id", self.pagerduty_connection_id()),
            # The SAML watch reads the tenant's directory and organization through these.
            ("saml.entra_id.connection_id", self.saml.entra_id.connection_id),
            ("saml.gcp_workforce.connection_id", self.saml.gcp_workforce.connection_id),
        ):
            if connection is not None:
                claims.append((where, "connection", connection))
        # One tenant may use one connection for several of its accounts; it is still one claim.
        return list({(kind, value): (where, kind, value) for where, kind, value in claims}.values())

    def aws_connection_id(self, account: AwsAccount) -> str:
        """Airflow connection for an AWS account: its own, else ``aws_<tenant id>``."""
        return account.connection_id or f"aws_{self.id}"

    def azure_connection_id(self, subscription: AzureSubscription) -> str:
        """Airflow connection for an Azure subscription: its own, else ``azure_<tenant id>``."""
        return subscription.connection_id or f"azure_{self.id}"

    def backup_attestation_connection_id(self) -> str:
        """Airflow connection of the backup system that attests Arc machines' backups."""
        azure = self.clouds.azure
        return (azure.backup_attestation.connection_id if azure else None) or f"backup_{self.id}"

    def dynatrace_connection_id(self) -> str | None:
        """Airflow connection of the tenant's Dynatrace environment, or None without a health gate."""
        if self.health is None:
            return None
        return self.health.connection_id or f"dynatrace_{self.id}"

    def pagerduty_connection_id(self) -> str | None:
        """Airflow connection of the tenant's PagerDuty integration, or None when it does not page."""
        if self.incidents is None:
            return None
        return self.incidents.connection_id or f"pagerduty_{self.id}"

    def falcon_connection_id(self) -> str | None:
        """Airflow connection of the tenant's Falcon API client, or None when it has no Falcon."""
        if self.falcon is None:
            return None
        return self.falcon.connection_id or f"falcon_{self.id}"

    def gcp_connection_id(self, project: GcpProject) -> str:
        """Airflow connection for a GCP project: its own, else ``gcp_<tenant id>``."""
        return project.connection_id or f"gcp_{self.id}"
