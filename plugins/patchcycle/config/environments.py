"""The environments a tenant patches in order, each with its rate control, change window, canary,
soak and approval.
"""

from datetime import time
from functools import cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from patchcycle.config.unique import unique
from patchcycle.config.vocabulary import (
    HH_MM_PATTERN,
    MAX_CONCURRENCY_PATTERN,
    MAX_ERRORS_PATTERN,
    ConfigModel,
    EnvironmentName,
    NonEmptyStr,
    Share,
    Weekday,
)


class RateControl(ConfigModel):
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


class ChangeWindow(ConfigModel):
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
            match = HH_MM_PATTERN.fullmatch(value)
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


class Canary(ConfigModel):
    """Hosts patched first in an environment, before the rest of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: float = Field(default=0.0, ge=0.0, lt=1.0)
    hosts: Annotated[list[NonEmptyStr], unique("canary hosts")] = Field(default_factory=list)


class Environment(ConfigModel):
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
