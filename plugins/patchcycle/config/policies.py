"""A tenant's patch policy: baselines per OS family, and the pre-flight, Falcon, health, incident,
rollback, schedule, SLA, host-tag and evidence policies.
"""

from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from patchcycle.config.falcon_rollout import FalconRollout
from patchcycle.config.unique import unique
from patchcycle.config.vocabulary import (
    IPV4_PATTERN,
    AwsRegion,
    ConfigModel,
    ConnectionId,
    NonEmptyStr,
    OsFamily,
    Severity,
    Share,
)


class Baseline(ConfigModel):
    """Which patches an OS family receives and how long they age before approval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    os_family: OsFamily
    classifications: Annotated[list[NonEmptyStr], unique("classifications")] = Field(min_length=1)
    severities: Annotated[list[Severity], unique("severities")] = Field(min_length=1)
    approve_after_days: int = Field(ge=0, le=365)
    include_kernel_updates: bool = True


class PreflightPolicy(ConfigModel):
    """What pre-patch checks do with hosts that are not safe to patch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_held_share: Share
    """Above this share of held hosts, the tenant's scope halts."""
    kernel_gate: Literal["hold_kernel_update", "hold_host"] = "hold_kernel_update"


class FalconPolicy(ConfigModel):
    """The tenant's CrowdStrike Falcon tenancy (CID), read through its own API client."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connection_id: ConnectionId | None = None
    """Airflow connection of the tenant's Falcon API client; default ``falcon_<tenant id>``."""
    required: bool = True
    """Hold hosts without a sensor or in reduced-functionality mode (patching a blind host is not allowed)."""
    rollout: FalconRollout | None = None
    """The ``falcon_rollout__<tenant>`` DAG: sensor installs, upgrades and validation, and the phases from
    Detection to Prevention; absent: the tenant has no roll-out DAG."""


class HealthPolicy(ConfigModel):
    """The health gate after each stage: Dynatrace's open problems and the error rate of the stage's
    services against the hour before it was patched."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connection_id: ConnectionId | None = None
    """Airflow connection of the Dynatrace environment; default ``dynatrace_<tenant id>``."""
    watch_minutes: float = Field(default=15.0, ge=0, le=24 * 60)
    """How long the gate watches after a stage (after its soak) before it lets the next stage go."""
    baseline_minutes: float = Field(default=60.0, gt=0, le=24 * 60)
    """The window before the stage's patching whose error rate is the baseline."""
    require_data: bool = False
    """Fail the gate when Dynatrace has no error-rate data (a service without traffic has none)."""


class IncidentPolicy(ConfigModel):
    """Where a failed stage pages: a PagerDuty service's Events API v2 integration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connection_id: ConnectionId | None = None
    """Airflow connection holding the integration (routing) key; default ``pagerduty_<tenant id>``."""


class RollbackPolicy(ConfigModel):
    """Rollback of hosts from the cycle's own backups (the manual rollback DAG exists for every tenant)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    automatic: bool = False
    """Roll the failed prod hosts of a cycle back from that stage's backups without waiting for an SRE."""


class SchedulePolicy(ConfigModel):
    """What a scheduled run does when it starts late: after an unpause (Airflow creates the latest missed
    fourth-Sunday run at once when a DAG is unpaused, catchup or not), or after a scheduler outage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    late_after_hours: int = Field(12, ge=1, le=168)
    """A scheduled run that starts more than this long after its fourth Sunday 02:00 UTC is late."""
    patch_late_runs: bool = False
    """Patch in a late scheduled run (catch-up patching). Off: a late run is refused before any change,
    with evidence saying how to run the cycle on purpose (trigger it, or backfill it)."""


class SlaDays(ConfigModel):
    """The tenant's internal remediation deadlines, in days from a patch's release, by severity.

    Frameworks' own deadlines (PCI DSS 6.3.3) and the KEV window still apply: the earliest one wins.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    critical: int = Field(15, ge=1, le=365)
    high: int = Field(30, ge=1, le=365)
    medium: int = Field(60, ge=1, le=730)
    low: int = Field(90, ge=1, le=730)

    @model_validator(mode="after")
    def _more_severe_is_sooner(self) -> "SlaDays":
        if not self.critical <= self.high <= self.medium <= self.low:
            raise ValueError(
                f"deadlines must not loosen with severity: critical {self.critical} <= high {self.high} "
                f"<= medium {self.medium} <= low {self.low}"
            )
        return self


class HostTags(ConfigModel):
    """The tag keys read from cloud hosts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    environment: NonEmptyStr = "Environment"
    criticality: NonEmptyStr = "Criticality"
    name: NonEmptyStr = "Name"


class EvidencePolicy(ConfigModel):
    """Where compliance evidence is stored and how long shared links stay valid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    connection_id: ConnectionId = "patchcycle_evidence"
    region: AwsRegion = "us-east-1"
    link_expiry_hours: int = Field(default=72, ge=1, le=168)

    @field_validator("bucket")
    @classmethod
    def _s3_bucket_rules(cls, value: str) -> str:
        if ".." in value or ".-" in value or "-." in value:
            raise ValueError(f"S3 bucket name {value!r} must not contain '..', '.-' or '-.'")
        if IPV4_PATTERN.fullmatch(value):
            raise ValueError(f"S3 bucket name {value!r} must not look like an IP address")
        if value.startswith(("xn--", "sthree-")) or value.endswith(("-s3alias", "--ol-s3")):
            raise ValueError(f"S3 bucket name {value!r} uses a prefix or suffix AWS reserves")
        return value
