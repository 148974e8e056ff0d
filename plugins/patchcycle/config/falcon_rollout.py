"""The tenant file's Falcon roll-out (``falcon.rollout``): when the ``falcon_rollout__<tenant>`` DAG runs,
which sensor versions the tenant accepts, the Falcon host group of each environment, how each cloud's own
agent installs the sensor (no SSH), where the CID and installation token are kept, and the phases that move
the tenant from Detection to Prevention (the seed paper's 3.3: non-prod first, two weeks of monitoring,
exclusions tuned from what was seen, then prod).

Facts only. Names, never secrets: the CID and the installation token stay in an Airflow connection (and,
for AWS, in the SecureString parameters the Terraform module names), never in this file. Rules that need
the rest of the tenant (its environments and clouds) are :meth:`FalconRollout.problems`.
"""

import datetime as dt
from typing import Annotated, Literal

from croniter import croniter
from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator

from patchcycle.config.environments import RateControl
from patchcycle.config.vocabulary import (
    ENVIRONMENT_ORDER,
    ConfigModel,
    ConnectionId,
    EnvironmentName,
    NonEmptyStr,
)

FALCON_INSTALL_DOCUMENT = "Patchcycle-FalconSensorInstall"
"""The SSM Command document ``include/terraform/modules/falcon_install_document`` declares for each tenant
with Falcon (its ``document_name``, as ``patchcycle.domain.terraform_vars`` fills it)."""

BucketName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
"""An S3 bucket name (the evidence bucket's pattern)."""

DEFAULT_MONITORING_DAYS = 14.0
"""The paper's monitoring period: two weeks in a phase before the next one."""

MIN_SCHEDULE_GAP = dt.timedelta(hours=1)
"""A roll-out reads every host and device of the tenant: at most one run an hour."""

MlLevel = Literal["DISABLED", "CAUTIOUS", "MODERATE", "AGGRESSIVE", "EXTRA_AGGRESSIVE"]
ML_LEVELS: tuple[MlLevel, ...] = ("DISABLED", "CAUTIOUS", "MODERATE", "AGGRESSIVE", "EXTRA_AGGRESSIVE")
"""A machine-learning slider's levels, least to most aggressive (Falcon's prevention policy settings)."""

ExclusionMode = Literal["propose", "apply_approved"]

SensorVersion = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d+\.\d+\.\d+(\.\d+)?$")]
"""A sensor version as Falcon writes it: major.minor.build, optionally with a fourth part (7.14.16703)."""
PhaseName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
SettingId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{1,79}$")]
SsmDocumentName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_.:/-]{3,128}$")]
AzureName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")]
OsPolicyAssignmentId = Annotated[str, StringConstraints(pattern=r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")]

_CRON_PRESETS = frozenset({"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"})


def _install_rate() -> RateControl:
    # A sensor install does not reboot the host: faster than a patch stage, still in batches.
    return RateControl(max_concurrency="20%", max_errors="10%")


class SensorVersionPolicy(ConfigModel):
    """Which sensor versions the tenant accepts; a host below them is upgraded. Both rules may be given
    (the stricter one wins); at least one must be."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_versions_behind: int | None = Field(default=2, ge=0, le=10)
    """N-x: how many sensor versions behind the newest one Falcon's sensor-update builds list for the host's
    platform a sensor may be (0: the newest only). Null: no such rule (then give ``minimum_version``)."""
    minimum_version: SensorVersion | None = None
    """No sensor older than this (major.minor.build); applies together with ``max_versions_behind``."""

    @model_validator(mode="after")
    def _one_rule(self) -> "SensorVersionPolicy":
        if self.max_versions_behind is None and self.minimum_version is None:
            raise ValueError(
                "give max_versions_behind, minimum_version or both "
                "(both null would accept any sensor, however old)"
            )
        return self


class AwsSensorInstall(ConfigModel):
    """How AWS hosts get the sensor: Run Command of the Falcon install SSM document."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    document_name: SsmDocumentName = FALCON_INSTALL_DOCUMENT
    """The SSM Command document that installs, registers and verifies the sensor."""
    rate_control: RateControl = Field(default_factory=_install_rate)
    """SendCommand's MaxConcurrency and MaxErrors for the install runs."""
    installer_bucket: BucketName | None = None
    """The S3 bucket, in each account the tenant patches (or readable from it), the roll-out stages each
    sensor package in (``falcon-sensor/<sha256>/<file>``) for the document's ``InstallerUrl``: the hosts
    read it with their instance profile. Without it no AWS host is installed (each is reported so)."""


class ArcSensorInstall(ConfigModel):
    """How Azure Arc machines get the sensor: CrowdStrike's machine extension (github.com/CrowdStrike/
    azure-vm-extension), which downloads and installs the sensor itself with a Falcon API client."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    publisher: AzureName = "Crowdstrike.Falcon"
    """The extension's publisher (CrowdStrike's Azure VM extension)."""
    linux_type: AzureName = "FalconSensorLinux"
    windows_type: AzureName = "FalconSensorWindows"
    api_client_connection_id: ConnectionId | None = None
    """Airflow connection of the Falcon API client the extension is given (login = client id, password =
    client secret; default ``falcon_sensor_download_<tenant id>``). A narrow client of its own, with only
    the scopes CrowdStrike's extension needs (Sensor Download: read, Sensor update policies: read), distinct
    from the tenant's Falcon read connection (``falcon.connection_id``): it is handed to every machine."""
    rate_control: RateControl = Field(default_factory=_install_rate)
    """Machines installed at once and failures tolerated, as the cycle applies them to Arc."""

    def api_client_connection(self, tenant_id: str) -> str:
        """Airflow connection of the Falcon API client the extension installs with."""
        return self.api_client_connection_id or f"falcon_sensor_download_{tenant_id}"


class GcpSensorInstall(ConfigModel):
    """How GCP instances get the sensor: an OS Config OS policy assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    os_policy_assignment: OsPolicyAssignmentId = "patchcycle-falcon-sensor"
    """The OS policy assignment id (in each of the tenant's projects and zones) that installs the sensor."""
    min_wait_seconds: int = Field(default=60, ge=0, le=86_400)
    """The rollout's ``minWaitDuration``: "A VM continues to count towards the disruption_budget at least
    until this duration of time has passed after configuration changes are applied" (OS Config's
    ``OSPolicyAssignment.Rollout``), so the next VMs of a zone wait that long after each install."""
    rate_control: RateControl = Field(default_factory=_install_rate)
    """The assignment's rollout disruption budget and the failures tolerated, as for a patch job."""


class SensorInstall(ConfigModel):
    """The install path of each cloud; the defaults serve a tenant that writes nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aws: AwsSensorInstall = Field(default_factory=AwsSensorInstall)
    azure: ArcSensorInstall = Field(default_factory=ArcSensorInstall)
    gcp: GcpSensorInstall = Field(default_factory=GcpSensorInstall)


class MlSliderValue(ConfigModel):
    """A machine-learning slider: its detection and prevention levels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detection: MlLevel
    prevention: MlLevel


class MlSliderSetting(ConfigModel):
    """A prevention policy setting of type ``mlslider``, in Falcon's shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: SettingId
    """Falcon's setting id, e.g. ``CloudAntiMalware``."""
    type: Literal["mlslider"]
    value: MlSliderValue

    @model_validator(mode="after")
    def _prevention_within_detection(self) -> "MlSliderSetting":
        value = self.value
        if ML_LEVELS.index(value.prevention) > ML_LEVELS.index(value.detection):
            raise ValueError(
                f"setting {self.id!r}: prevention {value.prevention} is more aggressive than detection "
                f"{value.detection}; Falcon cannot block what it does not detect"
            )
        return self


class ToggleValue(ConfigModel):
    """A toggle's state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool


class ToggleSetting(ConfigModel):
    """A prevention policy setting of type ``toggle``, in Falcon's shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: SettingId
    """Falcon's setting id, e.g. ``ScriptBasedExecutionMonitoring``."""
    type: Literal["toggle"]
    value: ToggleValue


PreventionSetting = Annotated[MlSliderSetting | ToggleSetting, Field(discriminator="type")]


class PreventionPhase(ConfigModel):
    """One step from Detection to Prevention: the environments whose host groups take these prevention
    settings, how long they are watched, and what stops the next step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PhaseName
    """Names the phase in approvals, evidence and the incident key."""
    environments: list[EnvironmentName] = Field(min_length=1)
    """The environments whose Falcon host groups (``host_groups``) this phase moves."""
    settings: list[PreventionSetting] = Field(min_length=1)
    """The prevention policy settings applied to those host groups."""
    monitoring_days: float = Field(default=DEFAULT_MONITORING_DAYS, ge=0, le=90)
    """How long the phase's detections are watched before the next phase may be promoted."""
    detection_threshold: int = Field(default=0, ge=0, le=100_000)
    """More detections than this on the phase's hosts in its monitoring period: the next phase is not
    promoted and the tenant is paged once."""
    exclusions: ExclusionMode = "propose"
    """``propose``: exclusions are proposed from the detections seen, for a person to create;
    ``apply_approved``: the roll-out creates the proposals an approver approved (never one without)."""

    @field_validator("environments")
    @classmethod
    def _environments_once(cls, value: list[EnvironmentName]) -> list[EnvironmentName]:
        if len(set(value)) != len(value):
            raise ValueError(f"an environment is listed twice: {[str(name) for name in value]}")
        if EnvironmentName.prod in value and len(value) > 1:
            others = [str(name) for name in value if name != EnvironmentName.prod]
            raise ValueError(
                f"prod is moved in a phase of its own, after the others have been monitored; "
                f"this phase also moves {others}"
            )
        return sorted(value, key=ENVIRONMENT_ORDER.index)

    @field_validator("settings")
    @classmethod
    def _settings_once(
        cls, value: list[MlSliderSetting | ToggleSetting]
    ) -> list[MlSliderSetting | ToggleSetting]:
        ids = [setting.id for setting in value]
        repeated = sorted({setting_id for setting_id in ids if ids.count(setting_id) > 1})
        if repeated:
            raise ValueError(f"a setting is listed twice: {repeated}")
        return value


class FalconRollout(ConfigModel):
    """The tenant's ``falcon_rollout__<tenant>`` DAG: sensor installs and upgrades through each cloud's
    agent, their validation through the Falcon API, and the phases from Detection to Prevention."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule: str | None = None
    """Cron expression (UTC) of scheduled runs, at most hourly; absent: on demand (the trigger form) only."""
    connection_id: ConnectionId | None = None
    """Airflow connection holding the CID (login) and the installation token (password); default
    ``falcon_install_<tenant id>``. Never the values themselves."""
    sensor_version: SensorVersionPolicy = Field(default_factory=SensorVersionPolicy)
    host_groups: dict[EnvironmentName, NonEmptyStr] = Field(min_length=1)
    """The Falcon host group (its name) of each environment's hosts."""
    install: SensorInstall = Field(default_factory=SensorInstall)
    prevention_phases: list[PreventionPhase] = Field(default_factory=list)
    """Detection to Prevention, in order: non-prod environments before prod. Empty: settings are not moved."""

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        if text in _CRON_PRESETS:
            return text
        if len(text.split()) != 5 or not croniter.is_valid(text):
            raise ValueError(
                f"schedule {value!r} is not a cron expression of five fields (minute hour day month weekday, "
                f"UTC), nor one of {', '.join(sorted(_CRON_PRESETS))}"
            )
        gap = _shortest_gap(text)
        if gap < MIN_SCHEDULE_GAP:
            raise ValueError(
                f"schedule {value!r} runs {int(gap.total_seconds() // 60)} minutes apart; "
                "a roll-out runs at most once an hour"
            )
        return text

    @model_validator(mode="after")
    def _phases_in_order(self) -> "FalconRollout":
        moved_by: dict[EnvironmentName, str] = {}
        previous: PreventionPhase | None = None
        for index, phase in enumerate(self.prevention_phases):
            for other in self.prevention_phases[:index]:
                if other.name == phase.name:
                    raise ValueError(f"prevention_phases: phase name {phase.name!r} is used twice")
            for name in phase.environments:
                if name in moved_by:
                    raise ValueError(
                        f"prevention_phases: environment {str(name)!r} is moved by phase {moved_by[name]!r} "
                        f"and again by phase {phase.name!r}"
                    )
                moved_by[name] = phase.name
                if name not in self.host_groups:
                    raise ValueError(
                        f"prevention_phases: phase {phase.name!r} moves environment {str(name)!r}, "
                        "which has no Falcon host group in host_groups"
                    )
            if previous is not None:
                last = max(previous.environments, key=ENVIRONMENT_ORDER.index)
                first = min(phase.environments, key=ENVIRONMENT_ORDER.index)
                if ENVIRONMENT_ORDER.index(first) <= ENVIRONMENT_ORDER.index(last):
                    order = " before ".join(str(name) for name in ENVIRONMENT_ORDER)
                    raise ValueError(
                        f"prevention_phases: phase {phase.name!r} moves {str(first)!r} after phase "
                        f"{previous.name!r} moved {str(last)!r}; phases move {order}"
                    )
            previous = phase
        self._shared_groups_move_together(moved_by)
        return self

    def _shared_groups_move_together(self, moved_by: dict[EnvironmentName, str]) -> None:
        """Two environments in one host group cannot be in different phases: moving the group moves both."""
        by_group: dict[str, list[EnvironmentName]] = {}
        for name, group in self.host_groups.items():
            by_group.setdefault(group, []).append(name)
        for group, names in by_group.items():
            phases = {moved_by.get(name) for name in names}
            if len(phases) > 1:
                listed = ", ".join(f"{str(name)!r} (phase {moved_by.get(name)!r})" for name in names)
                raise ValueError(
                    f"host_groups: {listed} share the host group {group!r} but not a phase; "
                    "give each its own host group or move them in one phase"
                )

    def install_connection_id(self, tenant_id: str) -> str:
        """Airflow connection holding the tenant's CID and installation token."""
        return self.connection_id or f"falcon_install_{tenant_id}"

    def phase(self, name: str) -> PreventionPhase:
        """The phase called ``name``; ``KeyError`` naming the declared phases otherwise."""
        for phase in self.prevention_phases:
            if phase.name == name:
                return phase
        declared = ", ".join(phase.name for phase in self.prevention_phases) or "none"
        raise KeyError(f"no prevention phase {name!r} (declared: {declared})")

    def problems(self, environments: list[EnvironmentName], clouds: list[str]) -> list[str]:
        """Why this roll-out does not fit a tenant with these environments (in order) and clouds (empty when
        it does): host groups and phases naming environments the tenant does not declare, a declared
        environment without a host group, prod promoted before the environments patched ahead of it, an
        install path written for a cloud the tenant does not use."""
        found: list[str] = []
        declared = ", ".join(str(name) for name in environments)
        for name in self.host_groups:
            if name not in environments:
                found.append(
                    f"falcon.rollout.host_groups: environment {str(name)!r} is not one the tenant declares "
                    f"({declared})"
                )
        for name in environments:
            if name not in self.host_groups:
                found.append(
                    f"falcon.rollout.host_groups: the tenant's environment {str(name)!r} has no Falcon "
                    "host group"
                )
        for index, phase in enumerate(self.prevention_phases):
            for name in phase.environments:
                if name not in environments:
                    found.append(
                        f"falcon.rollout.prevention_phases.{index}: phase {phase.name!r} moves environment "
                        f"{str(name)!r}, which the tenant does not declare ({declared})"
                    )
        if self.prevention_phases and EnvironmentName.prod in self.prevention_phases[0].environments:
            before = [str(name) for name in environments if name != EnvironmentName.prod]
            if before:
                found.append(
                    f"falcon.rollout.prevention_phases.0: prod is the first phase, but the tenant also "
                    f"declares {before}: move them to Prevention (and monitor them) first"
                )
        for cloud in ("aws", "azure", "gcp"):
            if cloud in self.install.model_fields_set and cloud not in clouds:
                found.append(
                    f"falcon.rollout.install.{cloud}: an install path for {cloud}, where the tenant declares "
                    "no hosts"
                )
        return found


def _shortest_gap(cron: str) -> dt.timedelta:
    """The shortest time between two of the expression's first 200 fire times."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    runs = croniter(cron, start)
    times = [runs.get_next(dt.datetime) for _ in range(200)]
    return min(later - earlier for earlier, later in zip(times, times[1:], strict=False))
