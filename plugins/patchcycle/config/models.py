"""Strict, immutable models of a tenant's patching configuration.

A tenant file holds facts only: who the tenant is, where its hosts live, which environments it
patches in which order, which patches each OS family takes, and where evidence goes. Every model
forbids unknown fields and is frozen, so a typo in a tenant file is an error and not a silent default.

The models live by what they describe: :mod:`.vocabulary` (enums, field types, the base model),
:mod:`.clouds`, :mod:`.environments`, :mod:`.policies`, :mod:`.saml` and :mod:`.tenant`. This module is
the one place to import them from. No file I/O here; see :mod:`patchcycle.config.loader` for reading tenant
files.
"""

from patchcycle.config.clouds import (
    AwsAccount,
    AwsCloud,
    AzureCloud,
    AzureSubscription,
    BackupAttestation,
    Clouds,
    GcpCloud,
    GcpProject,
)
from patchcycle.config.environments import (
    Canary,
    ChangeWindow,
    Environment,
    RateControl,
)
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
from patchcycle.config.risk import EmergencyWindow, RiskPolicy, ZeroDayPolicy
from patchcycle.config.saml import (
    EntraWatch,
    GcpWorkforceWatch,
    IdentityCenterWatch,
    SamlPolicy,
    SamlProviderKind,
)
from patchcycle.config.tenant import (
    Contact,
    Contacts,
    Tenant,
)
from patchcycle.config.vocabulary import (
    AWS_REGION_PATTERN,
    ENVIRONMENT_ORDER,
    MAX_CONCURRENCY_PATTERN,
    MAX_ERRORS_PATTERN,
    MAX_TEXT_CHARS,
    AwsRegion,
    AzureResourceGroup,
    ConfigModel,
    ConnectionId,
    EnvironmentName,
    Framework,
    GcpZone,
    NonEmptyStr,
    OsFamily,
    Severity,
    Share,
    Weekday,
    aws_regions,
)

__all__ = [
    "AWS_REGION_PATTERN",
    "AwsAccount",
    "AwsCloud",
    "AwsRegion",
    "AzureCloud",
    "AzureResourceGroup",
    "AzureSubscription",
    "BackupAttestation",
    "Baseline",
    "Canary",
    "ChangeWindow",
    "Clouds",
    "ConfigModel",
    "ConnectionId",
    "Contact",
    "Contacts",
    "ENVIRONMENT_ORDER",
    "Environment",
    "EmergencyWindow",
    "EntraWatch",
    "EnvironmentName",
    "EvidencePolicy",
    "FalconPolicy",
    "Framework",
    "GcpCloud",
    "GcpProject",
    "GcpWorkforceWatch",
    "GcpZone",
    "HealthPolicy",
    "HostTags",
    "IdentityCenterWatch",
    "IncidentPolicy",
    "MAX_CONCURRENCY_PATTERN",
    "MAX_ERRORS_PATTERN",
    "MAX_TEXT_CHARS",
    "NonEmptyStr",
    "OsFamily",
    "PreflightPolicy",
    "RateControl",
    "RiskPolicy",
    "RollbackPolicy",
    "SamlPolicy",
    "SamlProviderKind",
    "SchedulePolicy",
    "Severity",
    "Share",
    "SlaDays",
    "Tenant",
    "Weekday",
    "ZeroDayPolicy",
    "aws_regions",
]
