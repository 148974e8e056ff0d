"""The scenario file: which tenants' fleets exist, the patch catalog, the timings and the faults."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fleetsim.platforms import PLATFORMS
from fleetsim.saml import SamlSeed


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The os_family of RDS DB instances: declared as ``aws.databases``, never as a group or catalog family.
DATABASE_OS_FAMILY = "rds"
# An RDS DB instance identifier: a lowercase letter first, then lowercase letters, digits and single
# hyphens, not ending in a hyphen (RDS stores identifiers lowercase); at most 63 characters.
_RDS_IDENTIFIER = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
RDS_IDENTIFIER_MAX = 63


def _known_os_family(value: str) -> str:
    if value == DATABASE_OS_FAMILY:
        raise ValueError(f"os_family {value!r} is for RDS DB instances: declare them under aws.databases")
    if value not in PLATFORMS:
        families = sorted(f for f in PLATFORMS if f != DATABASE_OS_FAMILY)
        raise ValueError(f"unknown os_family {value!r}; fleetsim emulates {families}")
    return value


class Timings(_Strict):
    """How long things take in the emulated clouds (seconds of wall-clock time)."""

    command_pending_seconds: float = 0.3
    invocation_seconds: tuple[float, float] = (0.5, 1.5)
    delivery_timeout_seconds: float = 5.0
    ami_pending_seconds: float = 1.5
    # RDS: a DB snapshot is ``creating`` this long; an applied OS update keeps its instance ``upgrading``
    # this long; an instance restored from a DB snapshot is ``creating`` this long.
    rds_snapshot_seconds: float = 1.5
    rds_os_update_seconds: float = 1.5
    rds_restore_seconds: float = 1.5
    # Falcon: a sensor installed (or upgraded) through a cloud's agent shows in the Hosts API (with its
    # new version) this long after the install; a prevention or sensor-update policy assigned to a device
    # reports ``applied: true`` this long after the assignment.
    falcon_registration_seconds: float = Field(5.0, ge=0)
    falcon_policy_apply_seconds: float = Field(3.0, ge=0)


class CatalogPatch(_Strict):
    """One patch the vendor has released, as SSM's patch catalog describes it."""

    id: str
    os_family: str
    title: str
    classification: str
    severity: (
        str  # vendor-native: Critical/Important/Medium/Low (Linux), Critical/Important/Moderate/Low (MSRC)
    )
    cves: list[str] = Field(default_factory=list)
    released: dt.date
    kernel: str | None = None  # the kernel release this patch boots into, for kernel updates
    # The package the patch updates (Linux) as package managers name it; derived from the title when
    # not given ("openssl-1.0.2k-24.amzn2.0.14" -> "openssl"; a kernel patch -> "kernel" or
    # "linux-image-<release>"). Windows patches are identified by their KB number instead.
    package: str | None = None
    # The RPM epoch of the package (0 when the vendor declares none); Windows and APT packages ignore it.
    epoch: int = Field(0, ge=0)

    _os_family = field_validator("os_family")(_known_os_family)

    @property
    def is_windows(self) -> bool:
        return PLATFORMS[self.os_family].platform_type == "Windows"

    @property
    def package_name(self) -> str | None:
        """The package name Azure's masks and OS Config's package lists match; None on Windows."""
        if self.is_windows:
            return None
        if self.package:
            return self.package
        if self.kernel:
            return f"linux-image-{self.kernel}" if self.os_family.startswith("ubuntu") else "kernel"
        head = self.title.split(" ")[0]
        if " " in self.title:  # Debian style: "openssl 3.0.2-0ubuntu1.19"
            return head
        parts = head.rsplit("-", 2)  # RPM style: name-version-release
        return parts[0] if len(parts) == 3 else head

    @property
    def package_version(self) -> str:
        """The version the update installs (Linux), as the package manager reports it."""
        if self.kernel and not self.os_family.startswith("ubuntu"):
            return self.kernel.rsplit(".", 1)[0]  # "5.14.0-503.21.1.el9_5" from "...el9_5.x86_64"
        if " " in self.title:
            return self.title.split(" ", 1)[1]
        parts = self.title.rsplit("-", 2)
        return "-".join(parts[1:]) if len(parts) == 3 else self.title

    @property
    def kb_number(self) -> str | None:
        """The KB article number of a Windows update ("5046615" for KB5046615)."""
        if not self.is_windows:
            return None
        return self.id.removeprefix("KB") if self.id.startswith("KB") else None


class FleetGroup(_Strict):
    """A group of alike hosts named ``<prefix>-01`` .. ``<prefix>-NN``."""

    prefix: str
    count: int = Field(ge=1, le=20000)
    environment: str
    os_family: str
    kernel: str | None = None
    criticality: Literal["low", "medium", "high", "critical"] = "medium"
    installed_until: dt.date  # catalog patches released on or before this date are installed
    zone: str | None = None  # GCP groups only: the zone their instances run in
    # The CrowdStrike Falcon sensor version the group runs ("7.14.16703"); "default" takes the
    # scenario's falcon.default_sensor_version; null means no sensor is installed.
    falcon_sensor: str | None = "default"

    _os_family = field_validator("os_family")(_known_os_family)


class DatabaseGroup(_Strict):
    """A group of alike RDS DB instances named ``<prefix>-01`` .. ``<prefix>-NN``.

    Each instance has one pending ``system-update`` maintenance action (its operating system update)
    described by ``os_update``: "default" takes the scenario's ``rds_os_update``; null means none is
    pending.
    """

    prefix: str
    count: int = Field(ge=1, le=2000)
    environment: str
    engine: Literal["postgres", "mysql", "mariadb"] = "postgres"
    engine_version: str = "16.4"
    instance_class: str = "db.m6g.large"
    criticality: Literal["low", "medium", "high", "critical"] = "medium"
    os_update: str | None = "default"

    @field_validator("prefix")
    @classmethod
    def _rds_identifier(cls, value: str) -> str:
        if not _RDS_IDENTIFIER.match(value):
            raise ValueError(
                f"{value!r} is not a valid RDS DB instance identifier prefix: it must start with a "
                "lowercase letter and hold only lowercase letters, digits and hyphens, with no two "
                "hyphens in a row and no hyphen at the end"
            )
        return value

    @model_validator(mode="after")
    def _names_fit(self) -> DatabaseGroup:
        longest = group_host_names(self)[-1]
        if len(longest) > RDS_IDENTIFIER_MAX:
            raise ValueError(
                f"prefix: {longest!r} is longer than the {RDS_IDENTIFIER_MAX} characters an RDS DB "
                "instance identifier may have"
            )
        return self


class DetectionProcess(_Strict):
    """A process a detection names: its image file name and path, and its command line."""

    filename: str = Field(min_length=1)
    filepath: str = Field(min_length=1)
    cmdline: str = ""
    user_name: str = ""


class _DetectionShape(_Strict):
    """What the Falcon sensor reports for a detection (fields of an Alerts API ``epp`` alert).

    ``kind`` is the technology that fired: ``machine_learning`` (a file judged malicious, which an ML
    exclusion on its path silences) or ``behavioral`` (an indicator of attack, which an IOA exclusion
    on its pattern, image file name and command line silences). ``disposition`` ``policy`` takes what
    the device's applied prevention policy does (prevent when it sets prevention for that technology,
    else detect); ``detect`` and ``prevent`` force one.
    """

    process: DetectionProcess
    parent: DetectionProcess | None = None
    kind: Literal["machine_learning", "behavioral"] = "behavioral"
    severity: int = Field(50, ge=1, le=100)
    confidence: int = Field(80, ge=1, le=100)
    pattern_id: int = Field(10197, ge=1)
    name: str | None = None
    description: str | None = None
    tactic: str | None = None
    tactic_id: str | None = None
    technique: str | None = None
    technique_id: str | None = None
    disposition: Literal["policy", "detect", "prevent"] = "policy"


class DetectionSeed(_DetectionShape):
    """Detections the sensor on ``host`` raises: ``count`` of them, the first ``at_seconds`` after fleetsim
    started (negative: before it), then one every ``every_seconds``. A host without a registered sensor
    at that moment raises nothing."""

    host: str
    at_seconds: float = 0.0
    count: int = Field(1, ge=1, le=10000)
    every_seconds: float = Field(60.0, gt=0)


class DetectionStorm(_DetectionShape):
    """Many detections: ``per_host`` on every device registered in the tenant's CID that is in
    ``environment`` or in the Falcon host group named ``host_group`` when the storm starts
    (``at_seconds`` after fleetsim started), spread evenly over ``spread_seconds``."""

    environment: str | None = None
    host_group: str | None = None
    at_seconds: float = 0.0
    per_host: int = Field(20, ge=1, le=1000)
    spread_seconds: float = Field(60.0, ge=0)
    process: DetectionProcess = DetectionProcess(
        filename="kdevtmpfsi", filepath="/tmp/kdevtmpfsi", cmdline="/tmp/kdevtmpfsi -o pool:3333"
    )
    severity: int = Field(70, ge=1, le=100)

    @model_validator(mode="after")
    def _one_target(self) -> DetectionStorm:
        if (self.environment is None) == (self.host_group is None):
            raise ValueError("detection_storm: name exactly one of environment or host_group")
        return self


class Faults(_Strict):
    """Hosts (by name) that misbehave.

    On RDS DB instances (``aws.databases``) these apply: ``agent_offline`` (the instance is stopped),
    ``install_fails`` (its OS update fails), ``backup_fails`` (its DB snapshots end ``failed``) and
    ``backup_slow_seconds`` (its DB snapshots stay ``creating`` that long); the others are ignored.
    """

    agent_offline: list[str] = Field(default_factory=list)
    install_fails: list[str] = Field(default_factory=list)
    # The install reports success but one approved patch stays missing (a package the repo lacked).
    install_leaves_missing: list[str] = Field(default_factory=list)
    # The install's reboot into the new kernel never completes: the agent stays lost, the old kernel
    # is the last one the cloud saw (the host is up to the platform team's console).
    hung_reboot: list[str] = Field(default_factory=list)
    backup_fails: list[str] = Field(default_factory=list)
    backup_slow_seconds: dict[str, float] = Field(default_factory=dict)
    # Falcon: the sensor runs in reduced-functionality mode already; or the host has two device
    # records (a reinstalled sensor left a stale one behind, with an older last_seen).
    falcon_rfm: list[str] = Field(default_factory=list)
    falcon_duplicate: list[str] = Field(default_factory=list)
    # Dynatrace: hosts with an OPEN availability problem from the start (opened before the cycle); hosts
    # that get an OPEN ERROR problem (on the host and its environment's service) once they have been
    # patched successfully; hosts whose patch raises their environment service's error rate by that many
    # percentage points from the install on.
    open_problem: list[str] = Field(default_factory=list)
    health_problem_after_patch: list[str] = Field(default_factory=list)
    error_rate_after_patch: dict[str, float] = Field(default_factory=dict)
    # Falcon roll-out: installing the sensor through the cloud's agent fails (nothing registers); the
    # sensor installs but registers under another CID (the tenant's API clients never see it); every
    # prevention or sensor-update policy assigned to the device stays ``applied: false``.
    falcon_install_fails: list[str] = Field(default_factory=list)
    falcon_registers_other_cid: list[str] = Field(default_factory=list)
    policy_never_applied: list[str] = Field(default_factory=list)
    # Falcon: many detections on every registered device of an environment or of a Falcon host group.
    detection_storm: DetectionStorm | None = None


class AwsFleet(_Strict):
    """EC2 instances (``groups``) and RDS DB instances (``databases``) of one account and region."""

    account_id: str = Field(pattern=r"^\d{12}$")
    region: str
    groups: list[FleetGroup] = Field(default_factory=list)
    databases: list[DatabaseGroup] = Field(default_factory=list)
    # The first n SendCommand Install requests in this account take effect, but their answer is lost:
    # the caller gets HTTP 500 InternalServerError (a dropped connection, a failed front end). SSM's
    # SendCommand takes no idempotency token, so a caller that simply sends again installs twice.
    lost_install_answers: int = Field(0, ge=0)


class ArmThrottle(_Strict):
    """429 answers from Azure Resource Manager for one subscription.

    The first ``requests`` ARM requests to the subscription are refused with 429 and ``Retry-After``;
    ``every`` > 0 refuses every n-th request after that as well (a subscription near its quota).
    """

    requests: int = Field(0, ge=0)
    every: int = Field(0, ge=0)
    retry_after_seconds: int = Field(1, ge=0, le=60)


class AzureFleet(_Strict):
    """Arc-enabled servers of one subscription and resource group."""

    subscription_id: str = Field(pattern=r"^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$")
    resource_group: str
    location: str = "eastus"
    throttle: ArmThrottle = ArmThrottle()
    groups: list[FleetGroup]
    # The first n installPatches requests in this subscription take effect, but their answer is lost:
    # the caller gets HTTP 500 InternalServerError. installPatches is a POST without an idempotency key,
    # and azure-core's RetryPolicy retries a POST answered 500, 503 or 504 (RetryPolicyBase.
    # _is_method_retryable), so a caller that lets the SDK retry installs twice (here: is refused 409).
    lost_install_answers: int = Field(0, ge=0)


class GcpFleet(_Strict):
    """Compute Engine instances of one project, each group in its zone.

    ``secrets``: the project's Secret Manager secrets (name -> the latest version's value) that its
    instances' service account may read: what CrowdStrike's falcon-installer reads with
    ``--gcp-project-id`` (``FALCON_CLIENT_ID``, ``FALCON_CLIENT_SECRET``, ...) when an OS policy runs it.
    Made-up test values, never real credentials.
    """

    project_id: str
    groups: list[FleetGroup]
    secrets: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,255}$")], str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _groups_have_zones(self) -> GcpFleet:
        for i, group in enumerate(self.groups):
            if not group.zone:
                raise ValueError(f"groups.{i}.zone: a GCP group needs the zone its instances run in")
        return self


class ConsolePerson(_Strict):
    """Who makes a console edit: an IAM user (``iam_user``), or an IAM Identity Center user
    (``sso_user``, the session's name) working through a permission set's role (``permission_set``)."""

    iam_user: str | None = None
    sso_user: str | None = None
    permission_set: str | None = None
    source_ip: str = "203.0.113.10"

    @model_validator(mode="after")
    def _one_identity(self) -> ConsolePerson:
        if (self.iam_user is None) == (self.sso_user is None):
            raise ValueError("by: name exactly one of iam_user or sso_user")
        if self.sso_user is not None and not self.permission_set:
            raise ValueError("by: an sso_user works through a permission_set")
        return self


class _ConsoleEdit(_Strict):
    by: ConsolePerson
    hours_ago: float = Field(gt=0)  # when, before fleetsim started; after the Terraform apply


class RoleInlinePolicyEdit(_ConsoleEdit):
    """PutRolePolicy during an incident: a statement allowing ``actions`` on every resource added to the
    orchestrator role's inline policy (module.orchestrator_iam_aws.aws_iam_role_policy.execution)."""

    change: Literal["role_inline_policy"]
    actions: list[str] = Field(min_length=1)
    sid: str = Field("IncidentFix", pattern=r"^[A-Za-z0-9]+$")


class BaselineApproveAfterDaysEdit(_ConsoleEdit):
    """UpdatePatchBaseline: the baseline's rules approve ``days`` after release instead of up to a date
    (a field the monthly cycle owns and writes back: never drift)."""

    change: Literal["baseline_approve_after_days"]
    os_family: str
    days: int = Field(ge=0, le=360)


class BaselineComplianceLevelEdit(_ConsoleEdit):
    """UpdatePatchBaseline: the baseline's ApprovedPatchesComplianceLevel set to ``level``."""

    change: Literal["baseline_compliance_level"]
    os_family: str
    level: Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNSPECIFIED"]


class LaunchTemplateVersionEdit(_ConsoleEdit):
    """CreateLaunchTemplateVersion from an AMI refresh, without the SSM bootstrap user data and the
    instance profile, then ModifyLaunchTemplate making it the default (the paper's 6.1)."""

    change: Literal["launch_template_version"]
    template: str  # the key of the root's launch_templates (an OS family)
    image_id: str = Field(pattern=r"^ami-[0-9a-f]{8,17}$")


class ObjectLockRetentionEdit(_ConsoleEdit):
    """PutObjectLockConfiguration: the evidence bucket's default COMPLIANCE retention set to ``days``."""

    change: Literal["object_lock_retention"]
    days: int = Field(ge=1)


ConsoleEdit = Annotated[
    RoleInlinePolicyEdit
    | BaselineApproveAfterDaysEdit
    | BaselineComplianceLevelEdit
    | LaunchTemplateVersionEdit
    | ObjectLockRetentionEdit,
    Field(discriminator="change"),
]


class TenantFleet(_Strict):
    id: str
    aws: AwsFleet | None = None
    azure: AzureFleet | None = None
    gcp: GcpFleet | None = None
    faults: Faults = Faults()
    # Console edits made after the Terraform apply (the tenant must be in terraform.tenants).
    drift: list[ConsoleEdit] = Field(default_factory=list)
    # Falcon detections the scenario raises on the tenant's hosts (the Alerts API).
    detections: list[DetectionSeed] = Field(default_factory=list)


class TerraformApply(_Strict):
    """fleetsim plays ``terraform apply`` of these tenants' roots (``<roots>/<tenant>``) at start.

    ``roots`` is relative to the repository (fleetsim's parent directory) unless absolute. The apply is
    made ``applied_days_ago`` before fleetsim started, by the role ``role_name`` (session
    ``session_name``) in each account it writes to, and CloudTrail records it so.
    """

    tenants: list[str] = Field(min_length=1)
    roots: str = "include/terraform/tenants"
    applied_days_ago: float = Field(14.0, gt=0, lt=90)  # within event history's 90 days
    role_name: str = "patchcycle-terraform"
    session_name: str = "terraform"
    source_ip: str = "198.51.100.20"
    terraform_version: str = Field("1.11.4", pattern=r"^1\.11\.\d+$")
    provider_version: str = Field("6.20.0", pattern=r"^6\.\d+\.\d+$")


class EvidenceAccount(_Strict):
    """The platform account that holds the tenants' evidence buckets."""

    account_id: str = "123456789012"
    region: str = "us-east-1"
    buckets: list[str] = Field(default_factory=list)
    object_lock_days: int = 365


class IdentityUser(_Strict):
    user_name: str
    display_name: str
    email: str


class IdentityGroup(_Strict):
    name: str
    members: list[str] = Field(default_factory=list)


class PermissionSetSeed(_Strict):
    name: str
    description: str = ""
    managed_policies: list[str] = Field(default_factory=list)
    session_duration: str = "PT1H"


class AssignmentSeed(_Strict):
    """A permission set granted to a group or a user in some accounts."""

    permission_set: str
    group: str | None = None
    user: str | None = None
    accounts: list[str]

    @model_validator(mode="after")
    def _one_principal(self) -> AssignmentSeed:
        if (self.group is None) == (self.user is None):
            raise ValueError("an assignment names exactly one of group or user")
        return self


class IdentitySeed(_Strict):
    """IAM Identity Center (SSO) in the platform account: who could run a cycle in which account."""

    users: list[IdentityUser] = Field(default_factory=list)
    groups: list[IdentityGroup] = Field(default_factory=list)
    permission_sets: list[PermissionSetSeed] = Field(default_factory=list)
    assignments: list[AssignmentSeed] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_exist(self) -> IdentitySeed:
        users = {u.user_name for u in self.users}
        groups = {g.name for g in self.groups}
        sets = {p.name for p in self.permission_sets}
        for i, group in enumerate(self.groups):
            if unknown := sorted(set(group.members) - users):
                raise ValueError(f"groups.{i}.members: unknown users {unknown}")
        for i, a in enumerate(self.assignments):
            if a.permission_set not in sets:
                raise ValueError(f"assignments.{i}.permission_set: unknown {a.permission_set!r}")
            if a.group and a.group not in groups:
                raise ValueError(f"assignments.{i}.group: unknown {a.group!r}")
            if a.user and a.user not in users:
                raise ValueError(f"assignments.{i}.user: unknown {a.user!r}")
        return self


class KernelSupport(_Strict):
    """Which Falcon sensor versions support one kernel release (the sensor-update-kernels API)."""

    release: str
    vendor: str
    distro: str = ""
    architecture: str = "x86_64"
    base_package_supported_sensor_versions: list[str] = Field(default_factory=list)
    ztl_supported_sensor_versions: list[str] = Field(default_factory=list)
    ztl_module_supported_sensor_versions: list[str] = Field(default_factory=list)

    def supports(self, sensor_version: str) -> bool:
        """Whether a sensor ("7.14.16703" or "7.14.16703.0") supports this kernel."""
        short = ".".join(sensor_version.split(".")[:3])
        return short in {
            *self.base_package_supported_sensor_versions,
            *self.ztl_supported_sensor_versions,
            *self.ztl_module_supported_sensor_versions,
        }


class FalconSeed(_Strict):
    """CrowdStrike Falcon: the API client fleetsim accepts and the vendor's kernel support table."""

    client_id: str = "fleetsim-falcon"
    client_secret: str = "fleetsim-falcon-secret"
    default_sensor_version: str = "7.14.16703"
    # Kernels not listed here are unknown to the API (an empty answer), as for a brand-new kernel.
    kernels: list[KernelSupport] = Field(default_factory=list)

    def supported(self, sensor_version: str, release: str) -> bool | None:
        """True/False when the table knows the kernel; None when it does not."""
        for kernel in self.kernels:
            if kernel.release == release:
                return kernel.supports(sensor_version)
        return None


class PagerDutySeed(_Strict):
    """PagerDuty Events API v2: how the emulated service throttles.

    Each integration (routing) key's first ``throttle_first`` valid events are refused with 429, as
    PagerDuty throttles per integration key; only the keys in ``throttle_routing_keys`` when it lists any.
    The 429 carries ``Retry-After: <retry_after_seconds>`` when that is set (the real API does not
    document the header, so by default it is absent).
    """

    throttle_first: int = Field(0, ge=0)
    throttle_routing_keys: list[str] = Field(default_factory=list)
    retry_after_seconds: int | None = Field(None, ge=0, le=300)


class DynatraceThrottle(_Strict):
    """429 answers from the Dynatrace API (its request thread pool and queue are full).

    The first ``requests`` authenticated requests are refused with 429 and ``Retry-After``; ``every`` > 0
    refuses every n-th request after that as well. With ``token`` set, only requests made with that API
    token (accepted besides ``dynatrace.token``) are throttled and counted, so one scenario can serve a
    throttled client next to normal ones.
    """

    requests: int = Field(0, ge=0)
    every: int = Field(0, ge=0)
    retry_after_seconds: int = Field(1, ge=0, le=60)
    token: str | None = Field(None, min_length=1)


class DynatraceSeed(_Strict):
    """Dynatrace: the API token fleetsim accepts and the services' normal failure rates (percent)."""

    token: str = Field("dt0c01.FLEETSIM.TOKEN", min_length=1)
    # builtin:service.errors.total.rate of every service before any patch: percent of requests failing.
    baseline_error_rate: float = Field(0.5, ge=0, le=100)
    # Per environment name (every tenant's service of that environment): overrides the baseline.
    error_rate_by_environment: dict[str, float] = Field(default_factory=dict)
    # How long before fleetsim started the pre-existing problems (faults.open_problem) opened.
    open_problem_age_minutes: float = Field(30.0, ge=0)
    throttle: DynatraceThrottle = DynatraceThrottle()

    @field_validator("error_rate_by_environment")
    @classmethod
    def _rates_are_percentages(cls, value: dict[str, float]) -> dict[str, float]:
        if bad := {env: rate for env, rate in value.items() if not 0 <= rate <= 100}:
            raise ValueError(f"error rates are percentages between 0 and 100, not {bad}")
        return value


class KevListing(_Strict):
    """A listing CISA adds to the KEV catalog in this scenario (made-up test data, never a real entry): the
    feed fleetsim serves is the committed subset (``include/feeds/kev-subset.json``, real CISA entries) plus
    these, in CISA's own field names and formats."""

    cveID: str = Field(pattern=r"^CVE-\d{4}-\d{4,}$")  # noqa: N815 - CISA's field name
    vendorProject: str  # noqa: N815
    product: str
    vulnerabilityName: str = "Made-up vulnerability (fleetsim scenario)"  # noqa: N815
    dateAdded: dt.date  # noqa: N815
    dueDate: dt.date  # noqa: N815
    knownRansomwareCampaignUse: Literal["Known", "Unknown"] = "Unknown"  # noqa: N815
    epss: float | None = Field(None, ge=0, le=1)  # a made-up EPSS probability served with it


class FeedsSeed(_Strict):
    """The threat feeds fleetsim serves at ``/feeds/`` (CISA KEV JSON, FIRST EPSS CSV gzipped)."""

    kev_added: list[KevListing] = Field(default_factory=list)
    catalog_version: str | None = None  # default: the committed subset's, or the last added listing's date


class Scenario(_Strict):
    timings: Timings = Timings()
    falcon: FalconSeed = FalconSeed()
    dynatrace: DynatraceSeed = DynatraceSeed()
    pagerduty: PagerDutySeed = PagerDutySeed()
    seed: int = 7
    last_scan: dt.datetime = dt.datetime(2026, 11, 1, 3, 0, tzinfo=dt.UTC)
    # The Description of the pending RDS ``system-update`` of database groups whose os_update is "default".
    rds_os_update: str = "New Operating System update is available"
    evidence: EvidenceAccount = EvidenceAccount()
    identity: IdentitySeed = IdentitySeed()
    saml: SamlSeed = SamlSeed()
    feeds: FeedsSeed = FeedsSeed()
    terraform: TerraformApply | None = None
    patch_catalog: list[CatalogPatch]
    tenants: list[TenantFleet]

    @field_validator("tenants")
    @classmethod
    def _unique_tenants(cls, tenants: list[TenantFleet]) -> list[TenantFleet]:
        ids = [t.id for t in tenants]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate tenant ids: {dupes}")
        return tenants

    @model_validator(mode="after")
    def _terraform_names_aws_tenants(self) -> Scenario:
        by_id = {t.id: t for t in self.tenants}
        applied = set(self.terraform.tenants) if self.terraform else set()
        for tenant_id in sorted(applied):
            if tenant_id not in by_id or by_id[tenant_id].aws is None:
                raise ValueError(f"terraform.tenants: {tenant_id!r} is not a tenant with an aws fleet")
        for tenant in self.tenants:
            if tenant.drift and tenant.id not in applied:
                raise ValueError(f"tenants[{tenant.id}].drift: the tenant is not in terraform.tenants")
            limit = self.terraform.applied_days_ago * 24 if self.terraform else 0
            for i, edit in enumerate(tenant.drift):
                if edit.hours_ago >= limit:
                    raise ValueError(
                        f"tenants[{tenant.id}].drift.{i}.hours_ago: {edit.hours_ago} is not after the "
                        f"apply ({limit} hours ago)"
                    )
        return self

    @model_validator(mode="after")
    def _faults_name_real_hosts(self) -> Scenario:
        for tenant in self.tenants:
            all_names = host_names(tenant)
            if repeated := sorted({n for n in all_names if all_names.count(n) > 1}):
                raise ValueError(f"tenants[{tenant.id}]: host names repeat across groups: {repeated[:5]}")
            names = set(all_names)
            f = tenant.faults
            for field, hosts in (
                ("agent_offline", f.agent_offline),
                ("install_fails", f.install_fails),
                ("install_leaves_missing", f.install_leaves_missing),
                ("hung_reboot", f.hung_reboot),
                ("backup_fails", f.backup_fails),
                ("backup_slow_seconds", list(f.backup_slow_seconds)),
                ("falcon_rfm", f.falcon_rfm),
                ("falcon_duplicate", f.falcon_duplicate),
                ("open_problem", f.open_problem),
                ("health_problem_after_patch", f.health_problem_after_patch),
                ("error_rate_after_patch", list(f.error_rate_after_patch)),
                ("falcon_install_fails", f.falcon_install_fails),
                ("falcon_registers_other_cid", f.falcon_registers_other_cid),
                ("policy_never_applied", f.policy_never_applied),
                ("detections.host", [d.host for d in tenant.detections]),
            ):
                unknown = sorted(set(hosts) - names)
                if unknown:
                    where = field if field.startswith("detections") else f"faults.{field}"
                    raise ValueError(f"tenants[{tenant.id}].{where}: unknown hosts {unknown}")
            storm = f.detection_storm
            if storm is not None and storm.environment is not None:
                environments = {
                    g.environment
                    for fleet in (tenant.aws, tenant.azure, tenant.gcp)
                    if fleet
                    for g in fleet.groups
                }
                if storm.environment not in environments:
                    raise ValueError(
                        f"tenants[{tenant.id}].faults.detection_storm.environment: no group of the tenant "
                        f"runs in {storm.environment!r}"
                    )
        return self


def host_names(tenant: TenantFleet) -> list[str]:
    """All host names a tenant's fleet groups (and RDS database groups) expand to."""
    names: list[str] = []
    for fleet in (tenant.aws, tenant.azure, tenant.gcp):
        for group in fleet.groups if fleet else []:
            names.extend(group_host_names(group))
    for database in tenant.aws.databases if tenant.aws else []:
        names.extend(group_host_names(database))
    return names


def group_host_names(group: FleetGroup | DatabaseGroup) -> list[str]:
    width = max(2, len(str(group.count)))
    return [f"{group.prefix}-{i:0{width}d}" for i in range(1, group.count + 1)]


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the field."""


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc}") from exc
    return parse_scenario(raw, source=str(path))


def parse_scenario(raw: object, source: str = "<scenario>") -> Scenario:
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"  - {'.'.join(str(p) for p in err['loc']) or '<top>'}: {err['msg']}" for err in exc.errors()
        ]
        raise ScenarioError(f"{source}: invalid scenario:\n" + "\n".join(lines)) from exc
