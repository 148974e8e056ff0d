"""The tenant file's vocabulary: OS families, severities, frameworks, environment names and weekdays;
the constrained field types (regions, zones, connection ids, SSM's rate-control patterns); and the
base every configuration model shares (unknown fields are errors, instances are frozen, a YAML
boolean is never a number).
"""

import re
import typing
from enum import StrEnum
from functools import cache
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)


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


EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HH_MM_PATTERN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
IPV4_PATTERN = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")

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


class ConfigModel(BaseModel):
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
