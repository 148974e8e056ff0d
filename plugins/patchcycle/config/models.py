"""Strict, immutable models of a tenant's patching configuration.

A tenant file holds facts only: who the tenant is, where its hosts live, which environments it
patches in which order, which patches each OS family takes, and where evidence goes. Every model
forbids unknown fields and is frozen, so a typo in a tenant file is an error and not a silent default.

This module does no file I/O; see :mod:`patchcycle.config.loader` for reading tenant files.
"""

import re
import typing
from datetime import date, time
from enum import StrEnum
from functools import cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from patchcycle.config.unique import duplicates, unique

__all__ = [
    "ENVIRONMENT_ORDER",
    "AwsAccount",
    "AwsCloud",
    "AzureCloud",
    "AzureSubscription",
    "Baseline",
    "Canary",
    "ChangeWindow",
    "Clouds",
    "Contact",
    "Contacts",
    "Environment",
    "EnvironmentName",
    "EvidencePolicy",
    "FalconPolicy",
    "Framework",
    "GcpCloud",
    "GcpProject",
    "HealthPolicy",
    "HostTags",
    "IncidentPolicy",
    "OsFamily",
    "PreflightPolicy",
    "RateControl",
    "Severity",
    "SlaDays",
    "Tenant",
    "Weekday",
]


# --------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------


class OsFamily(StrEnum):
    """Operating-system families a patch baseline can target."""

    amazon_linux_2 = "amazon_linux_2"
    amazon_linux_2023 = "amazon_linux_2023"
    rhel_7 = "rhel_7"
    rhel_8 = "rhel_8"
    rhel_9 = "rhel_9"
    centos_7 = "centos_7"
    ubuntu_20_04 = "ubuntu_20_04"
    ubuntu_22_04 = "ubuntu_22_04"
    windows_2016 = "windows_2016"
    windows_2019 = "windows_2019"
    windows_2022 = "windows_2022"

    @property
    def is_windows(self) -> bool:
        """True for Windows Server families."""
        return self.value.startswith("windows_")

    @property
    def is_linux(self) -> bool:
        """True for Linux families."""
        return not self.is_windows


class Severity(StrEnum):
    """Vendor severity of a patch, from most to least urgent."""

    Critical = "Critical"
    High = "High"
    Medium = "Medium"
    Low = "Low"

    @property
    def rank(self) -> int:
        """Urgency as a number: Critical=4, High=3, Medium=2, Low=1."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK: dict[Severity, int] = {
    Severity.Critical: 4,
    Severity.High: 3,
    Severity.Medium: 2,
    Severity.Low: 1,
}


class Framework(StrEnum):
    """Compliance frameworks a tenant reports against."""

    soc2 = "soc2"
    pci_dss = "pci_dss"
    hipaa = "hipaa"
    sox = "sox"


class EnvironmentName(StrEnum):
    """Deployment environments, patched in the order of :data:`ENVIRONMENT_ORDER`."""

    nonprod = "nonprod"
    staging = "staging"
    prod = "prod"


ENVIRONMENT_ORDER: tuple[EnvironmentName, ...] = (
    EnvironmentName.nonprod,
    EnvironmentName.staging,
    EnvironmentName.prod,
)
"""Canonical patching order: nonprod before staging before prod."""


class Weekday(StrEnum):
    """Days of the week, as written in change windows."""

    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"

    @property
    def number(self) -> int:
        """Day number as :meth:`datetime.date.weekday` counts it (Monday=0 ... Sunday=6)."""
        return _WEEKDAYS.index(self)


_WEEKDAYS: tuple[Weekday, ...] = tuple(Weekday)


# --------------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HH_MM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")

AWS_REGION_PATTERN = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"
# Exactly the values SSM's SendCommand accepts (its API reference's patterns).
MAX_CONCURRENCY_PATTERN = r"^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$"
MAX_ERRORS_PATTERN = r"^([1-9][0-9]*|0|[1-9][0-9]%|[0-9]%|100%)$"

MAX_TEXT_CHARS = 500
"""Longest free-text field (a name, a team, a tag value); longer text is a mistake, not a name."""

NonEmptyStr = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)
]
ConnectionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]+$", max_length=250)]

# The partitions whose regions a tenant may name: the commercial, China and GovCloud partitions.
_AWS_PARTITIONS = ("aws", "aws-cn", "aws-us-gov")


@cache
def aws_regions() -> frozenset[str]:
    """Every region of :data:`_AWS_PARTITIONS` in the installed AWS SDK's published endpoint data
    (``botocore/data/endpoints.json``, the file boto3 resolves endpoints from). A region missing there
    has no endpoint the hooks could reach, so it is refused rather than tried."""
    import importlib.resources
    import json

    data = json.loads((importlib.resources.files("botocore") / "data" / "endpoints.json").read_text())
    return frozenset(
        region
        for partition in data["partitions"]
        if partition["partition"] in _AWS_PARTITIONS
        for region in partition["regions"]
    )


def _known_aws_region(value: str) -> str:
    if value not in aws_regions():
        raise ValueError(
            f"unknown AWS region {value!r}: not a region of the {', '.join(_AWS_PARTITIONS)} partitions "
            "in the AWS SDK's endpoint data (e.g. 'us-east-1')"
        )
    return value


AwsRegion = Annotated[str, StringConstraints(pattern=AWS_REGION_PATTERN), AfterValidator(_known_aws_region)]
AzureResourceGroup = Annotated[str, StringConstraints(pattern=r"^[-\w.()]*[-\w()]$", max_length=90)]
GcpZone = Annotated[str, StringConstraints(pattern=r"^[a-z]+-[a-z]+\d+-[a-z]$")]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


def _numeric(annotation: object) -> bool:
    """True for ``int``, ``float`` and unions holding one (``float | None``)."""
    if annotation in (int, float):
        return True
    return any(_numeric(arg) for arg in typing.get_args(annotation))


class _ConfigModel(BaseModel):
    """Base for tenant configuration models: unknown fields are errors and instances are immutable.

    A YAML boolean is never a number here: pydantic would read ``soak_hours: true`` as 1 hour.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, data: object) -> object:
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name) if isinstance(name, str) else None
                if isinstance(value, bool) and field is not None and _numeric(field.annotation):
                    raise ValueError(f"{name}: give a number, not the boolean {str(value).lower()}")
        return data


# --------------------------------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------------------------------


class Contact(_ConfigModel):
    """A person or team mailbox to notify."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: NonEmptyStr
    email: str

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        if not _EMAIL.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid email address")
        return value


class Contacts(_ConfigModel):
    """Who is told about a tenant's patch cycles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sre: list[Contact] = Field(min_length=1)
    compliance: list[Contact] = Field(min_length=1)


# --------------------------------------------------------------------------------------------------
# Clouds
# --------------------------------------------------------------------------------------------------


class AwsAccount(_ConfigModel):
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


class AwsCloud(_ConfigModel):
    """The tenant's AWS footprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accounts: Annotated[
        list[AwsAccount], unique("account_id values", key=lambda account: account.account_id)
    ] = Field(min_length=1)


class AzureSubscription(_ConfigModel):
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


class BackupAttestation(_ConfigModel):
    """Where the tenant's backup system attests recent good backups of servers that have no cloud snapshot
    API (Azure Arc machines run anywhere), and how recent a backup must be to patch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connection_id: ConnectionId | None = None
    """Airflow connection of the backup system's API; default ``backup_<tenant id>``."""
    max_age_hours: int = Field(default=24, ge=1, le=168)


class AzureCloud(_ConfigModel):
    """The tenant's Azure footprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subscriptions: Annotated[
        list[AzureSubscription], unique("subscription_id values", key=lambda sub: sub.subscription_id)
    ] = Field(min_length=1)
    backup_attestation: BackupAttestation = Field(default_factory=BackupAttestation)


class GcpProject(_ConfigModel):
    """A Google Cloud project and the zones in it that hold the tenant's hosts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project_id: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    zones: Annotated[list[GcpZone], unique("zones")] = Field(min_length=1)
    connection_id: ConnectionId | None = None


class GcpCloud(_ConfigModel):
    """The tenant's Google Cloud footprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    projects: Annotated[
        list[GcpProject], unique("project_id values", key=lambda project: project.project_id)
    ] = Field(min_length=1)


class Clouds(_ConfigModel):
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


# --------------------------------------------------------------------------------------------------
# Environments
# --------------------------------------------------------------------------------------------------


class RateControl(_ConfigModel):
    """How fast a patch run may go and how many failures it tolerates.

    Both values are written exactly as AWS Systems Manager accepts ``MaxConcurrency`` and
    ``MaxErrors``: an absolute count (``"10"``) or a percentage of the targets (``"25%"``). What they
    come to for a run over a number of targets is :mod:`patchcycle.domain.rates`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The SSM API's own bounds (botocore's service model, shapes MaxConcurrency and MaxErrors:
    # 1 to 7 characters, and these patterns).
    max_concurrency: str = Field(pattern=MAX_CONCURRENCY_PATTERN, min_length=1, max_length=7)
    max_errors: str = Field(pattern=MAX_ERRORS_PATTERN, min_length=1, max_length=7)

    @field_validator("max_concurrency", "max_errors", mode="before")
    @classmethod
    def _count_as_text(cls, value: object) -> object:
        # YAML reads `max_errors: 0` as an int; a bare count is unambiguous, so accept it as text.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value


_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@cache
def _iana_zones() -> frozenset[str]:
    return frozenset(available_timezones())


class ChangeWindow(_ConfigModel):
    """When production changes are allowed, in the tenant's local time.

    The window opens at ``start`` on each of ``days`` and closes at ``end``; when ``end`` is not
    after ``start`` the window crosses midnight and closes on the following day.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str
    days: Annotated[list[Weekday], unique("days")] = Field(min_length=1)
    start: time
    end: time
    # No batch starts with less of the window left than this: a batch must be able to finish inside it.
    min_minutes_left: float = Field(default=30.0, ge=0, le=1440)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        # Only IANA keys: "localtime" (the host's own zone, so the window would follow each worker's
        # clock) and "Factory" are files in the zoneinfo folder but not zones a window can mean.
        if value in _NOT_ZONES or value not in _iana_zones():
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA zoneinfo key such as 'America/New_York' or 'UTC'"
            )
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(f"timezone {value!r} cannot be loaded: {exc}") from exc
        return value

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hh_mm(cls, value: object) -> object:
        if isinstance(value, time):
            if value.tzinfo is not None:
                raise ValueError("times must not carry a timezone; set the window's timezone instead")
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(
                f"got the number {value!r}: quote times as 'HH:MM' strings "
                "(YAML reads an unquoted 10:00 as the base-60 number 600)"
            )
        if isinstance(value, str):
            match = _HH_MM.fullmatch(value)
            if match is None:
                raise ValueError(f"time must be written 'HH:MM' (24-hour clock), got {value!r}")
            return time(int(match[1]), int(match[2]))
        raise ValueError(f"time must be written 'HH:MM' (24-hour clock), got {value!r}")

    @model_validator(mode="after")
    def _not_empty(self) -> "ChangeWindow":
        if self.start == self.end:
            raise ValueError(f"start and end are both {self.start:%H:%M}; the window would be empty")
        if self.min_minutes_left >= self.length_minutes:
            raise ValueError(
                f"min_minutes_left {self.min_minutes_left:g} is not shorter than the window "
                f"({self.start:%H:%M}-{self.end:%H:%M}, {self.length_minutes} minutes): "
                "no batch could ever start"
            )
        return self

    @property
    def length_minutes(self) -> int:
        """The window's length in minutes (a window that crosses midnight closes on the next day)."""
        start = self.start.hour * 60 + self.start.minute
        end = self.end.hour * 60 + self.end.minute
        return (end - start) % (24 * 60)

    @property
    def zone(self) -> ZoneInfo:
        """The window's timezone."""
        return ZoneInfo(self.timezone)

    @property
    def crosses_midnight(self) -> bool:
        """True when the window closes on the day after it opens."""
        return self.end <= self.start


class Canary(_ConfigModel):
    """Hosts patched first in an environment, before the rest of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: float = Field(default=0.0, ge=0.0, lt=1.0)
    hosts: Annotated[list[NonEmptyStr], unique("canary hosts")] = Field(default_factory=list)


class Environment(_ConfigModel):
    """One environment of a tenant and how it is patched."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: EnvironmentName
    tag_values: Annotated[list[NonEmptyStr], Field(min_length=1), unique("tag_values")] | None = None
    soak_hours: float = Field(default=0.0, ge=0, le=720)
    change_window: ChangeWindow | None = None
    rate_control: RateControl
    canary: Canary = Field(default_factory=Canary)
    approval_required: bool = False
    # A patched host must be back (agent answering, expected kernel, Falcon healthy) within this time.
    reboot_timeout_minutes: float = Field(default=30.0, gt=0, le=720)
    health_error_rate_tolerance: Share = 0.1

    @property
    def matches_tag_values(self) -> list[str]:
        """Values of the host environment tag that put a host in this environment."""
        return list(self.tag_values) if self.tag_values is not None else [self.name.value]


# --------------------------------------------------------------------------------------------------
# Patch policy, preflight, evidence
# --------------------------------------------------------------------------------------------------


class Baseline(_ConfigModel):
    """Which patches an OS family receives and how long they age before approval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    os_family: OsFamily
    classifications: Annotated[list[NonEmptyStr], unique("classifications")] = Field(min_length=1)
    severities: Annotated[list[Severity], unique("severities")] = Field(min_length=1)
    approve_after_days: int = Field(ge=0, le=365)
    include_kernel_updates: bool = True


class PreflightPolicy(_ConfigModel):
    """What pre-patch checks do with hosts that are not safe to patch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_held_share: Share
    """Above this share of held hosts, the tenant's scope halts."""
    kernel_gate: Literal["hold_kernel_update", "hold_host"] = "hold_kernel_update"


class FalconPolicy(_ConfigModel):
    """The tenant's CrowdStrike Falcon tenancy (CID), read through its own API client."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connection_id: ConnectionId | None = None
    """Airflow connection of the tenant's Falcon API client; default ``falcon_<tenant id>``."""
    required: bool = True
    """Hold hosts without a sensor or in reduced-functionality mode (patching a blind host is not allowed)."""


class HealthPolicy(_ConfigModel):
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


class IncidentPolicy(_ConfigModel):
    """Where a failed stage pages: a PagerDuty service's Events API v2 integration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connection_id: ConnectionId | None = None
    """Airflow connection holding the integration (routing) key; default ``pagerduty_<tenant id>``."""


class RollbackPolicy(_ConfigModel):
    """Rollback of hosts from the cycle's own backups (the manual rollback DAG exists for every tenant)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    automatic: bool = False
    """Roll the failed prod hosts of a cycle back from that stage's backups without waiting for an SRE."""


class SchedulePolicy(_ConfigModel):
    """What a scheduled run does when it starts late: after an unpause (Airflow creates the latest missed
    fourth-Sunday run at once when a DAG is unpaused, catchup or not), or after a scheduler outage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    late_after_hours: int = Field(12, ge=1, le=168)
    """A scheduled run that starts more than this long after its fourth Sunday 02:00 UTC is late."""
    patch_late_runs: bool = False
    """Patch in a late scheduled run (catch-up patching). Off: a late run is refused before any change,
    with evidence saying how to run the cycle on purpose (trigger it, or backfill it)."""


class SlaDays(_ConfigModel):
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


class HostTags(_ConfigModel):
    """The tag keys read from cloud hosts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    environment: NonEmptyStr = "Environment"
    criticality: NonEmptyStr = "Criticality"
    name: NonEmptyStr = "Name"


class EvidencePolicy(_ConfigModel):
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
        if _IPV4.fullmatch(value):
            raise ValueError(f"S3 bucket name {value!r} must not look like an IP address")
        if value.startswith(("xn--", "sthree-")) or value.endswith(("-s3alias", "--ol-s3")):
            raise ValueError(f"S3 bucket name {value!r} uses a prefix or suffix AWS reserves")
        return value


# --------------------------------------------------------------------------------------------------
# Tenant
# --------------------------------------------------------------------------------------------------


class Tenant(_ConfigModel):
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
            ("health.connection_id", self.dynatrace_connection_id()),
            ("incidents.connection_id", self.pagerduty_connection_id()),
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
