"""The scenario file: which tenants' fleets exist, the patch catalog, the timings and the faults."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fleetsim.platforms import PLATFORMS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_os_family(value: str) -> str:
    if value not in PLATFORMS:
        raise ValueError(f"unknown os_family {value!r}; fleetsim emulates {sorted(PLATFORMS)}")
    return value


class Timings(_Strict):
    """How long things take in the emulated clouds (seconds of wall-clock time)."""

    command_pending_seconds: float = 0.3
    invocation_seconds: tuple[float, float] = (0.5, 1.5)
    delivery_timeout_seconds: float = 5.0
    ami_pending_seconds: float = 1.5


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

    _os_family = field_validator("os_family")(_known_os_family)


class FleetGroup(_Strict):
    """A group of alike hosts named ``<prefix>-01`` .. ``<prefix>-NN``."""

    prefix: str
    count: int = Field(ge=1, le=20000)
    environment: str
    os_family: str
    kernel: str | None = None
    criticality: Literal["low", "medium", "high", "critical"] = "medium"
    installed_until: dt.date  # catalog patches released on or before this date are installed

    _os_family = field_validator("os_family")(_known_os_family)


class Faults(_Strict):
    """Hosts (by name) that misbehave."""

    agent_offline: list[str] = Field(default_factory=list)
    install_fails: list[str] = Field(default_factory=list)
    # The install reports success but one approved patch stays missing (a package the repo lacked).
    install_leaves_missing: list[str] = Field(default_factory=list)
    backup_fails: list[str] = Field(default_factory=list)
    backup_slow_seconds: dict[str, float] = Field(default_factory=dict)


class AwsFleet(_Strict):
    account_id: str = Field(pattern=r"^\d{12}$")
    region: str
    groups: list[FleetGroup]


class TenantFleet(_Strict):
    id: str
    aws: AwsFleet | None = None
    faults: Faults = Faults()


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


class Scenario(_Strict):
    timings: Timings = Timings()
    seed: int = 7
    last_scan: dt.datetime = dt.datetime(2026, 11, 1, 3, 0, tzinfo=dt.UTC)
    evidence: EvidenceAccount = EvidenceAccount()
    identity: IdentitySeed = IdentitySeed()
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
    def _faults_name_real_hosts(self) -> Scenario:
        for tenant in self.tenants:
            names = set(host_names(tenant))
            f = tenant.faults
            for field, hosts in (
                ("agent_offline", f.agent_offline),
                ("install_fails", f.install_fails),
                ("install_leaves_missing", f.install_leaves_missing),
                ("backup_fails", f.backup_fails),
                ("backup_slow_seconds", list(f.backup_slow_seconds)),
            ):
                unknown = sorted(set(hosts) - names)
                if unknown:
                    raise ValueError(f"tenants[{tenant.id}].faults.{field}: unknown hosts {unknown}")
        return self


def host_names(tenant: TenantFleet) -> list[str]:
    """All host names a tenant's fleet groups expand to."""
    names: list[str] = []
    if tenant.aws:
        for group in tenant.aws.groups:
            width = max(2, len(str(group.count)))
            names.extend(f"{group.prefix}-{i:0{width}d}" for i in range(1, group.count + 1))
    return names


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
