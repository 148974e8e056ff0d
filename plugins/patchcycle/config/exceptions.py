"""A tenant's register of risk acceptances (patch exceptions), and the loader for its YAML files.

Each tenant keeps one file, ``include/exceptions/<tenant_id>.yaml``, reviewed like code: every entry
records which hosts and/or patches are deferred, why, what compensates for the risk, who asked, which
executive signed off, and until when. The models are strict (unknown fields are errors, instances are
frozen) so a typo or a missing sign-off is caught when the register is loaded, never at audit time.

What an acceptance does to a cycle's hosts is decided in :mod:`patchcycle.domain.exceptions`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from patchcycle.config.unique import require_unique, unique
from patchcycle.config.yaml_files import (
    ConfigFileError,
    describe_validation_error,
    read_yaml_mapping,
    yaml_files,
)

__all__ = [
    "EXCEPTIONS_DIR",
    "MAX_ACCEPTANCE_DAYS",
    "ExceptionRegister",
    "ExceptionRegisterError",
    "RiskAcceptance",
    "RiskRating",
    "default_exceptions_dir",
    "load_exception_register",
    "check_exception_registers",
    "load_exception_registers",
    "load_tenant_exception_register",
]

MAX_ACCEPTANCE_DAYS = 365
"""Longest an acceptance may run: ``expires_on`` at most this many days after ``approved_on``."""

REGISTER_FILE_SUFFIXES = (".yaml", ".yml")

# plugins/patchcycle/config/exceptions.py -> repository root
EXCEPTIONS_DIR = Path(__file__).resolve().parents[3] / "include" / "exceptions"
"""The shipped registers: ``<repo>/include/exceptions``."""


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


class RiskRating(StrEnum):
    """The residual risk the approver accepted, from most to least severe."""

    Critical = "Critical"
    High = "High"
    Medium = "Medium"
    Low = "Low"


NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
# strict: only a YAML string is a tenant id (pydantic would otherwise turn bytes into one).
TenantId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,38}[a-z0-9]$", strict=True)]
AcceptanceId = Annotated[str, StringConstraints(pattern=r"^EXC-\d{4}-\d{3,}$")]


_WILDCARDS = frozenset("*?[]")


class RiskAcceptance(BaseModel):
    """One signed-off deferral of patches: its scope, its justification and its validity.

    Scope is either ``hosts`` (host names or cloud ids), optionally narrowed to ``patches``
    (empty/absent = every patch on those hosts), or ``patches`` alone (those patches on every host
    of the tenant). The acceptance is valid from ``approved_on`` through ``expires_on``, both
    inclusive, and may run at most :data:`MAX_ACCEPTANCE_DAYS` days.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: AcceptanceId
    """Register id, ``EXC-<year>-<number>`` (e.g. ``EXC-2026-014``)."""
    hosts: list[NonEmptyStr] | None = Field(default=None, min_length=1)
    """Host names or cloud host ids, matched exactly against the inventory's ``name`` or ``host_id``."""
    patches: list[NonEmptyStr] | None = Field(default=None, min_length=1)
    """Patch ids as the vendor writes them (e.g. ``CESA-2026:0412``, ``KB5046615``)."""
    justification: Annotated[str, StringConstraints(strip_whitespace=True, min_length=20)]
    compensating_control: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10)]
    requested_by: NonEmptyStr
    approver: NonEmptyStr
    """The executive who signed off; must not be the requester."""
    approver_role: NonEmptyStr
    """The approver's role (e.g. ``CISO``), recorded as evidence of executive sign-off."""
    approved_on: dt.date
    expires_on: dt.date
    risk_rating: RiskRating
    ticket: NonEmptyStr | None = None
    """Change or risk ticket id, when the tenant tracks one."""

    @field_validator("approved_on", "expires_on", mode="before")
    @classmethod
    def _calendar_date(cls, value: object) -> object:
        # YAML turns `2026-10-15 09:00` into a datetime and pydantic would take an int as a timestamp.
        if isinstance(value, dt.datetime):
            raise ValueError("give a calendar date (YYYY-MM-DD), not a date and time")
        if isinstance(value, dt.date | str):
            return value
        raise ValueError("give a calendar date (YYYY-MM-DD)")

    @field_validator("hosts", "patches")
    @classmethod
    def _unique_entries(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is not None:
            require_unique(value, f"{info.field_name} entries")
            patterns = [entry for entry in value if set(entry) & _WILDCARDS]
            if patterns:
                raise ValueError(
                    f"{info.field_name} entries are matched exactly, not as patterns: {patterns!r}; "
                    f"list each one (or, for every host, leave hosts out and name the patches)"
                )
        return value

    @field_validator("approver")
    @classmethod
    def _not_self_approved(cls, value: str, info: ValidationInfo) -> str:
        requester = info.data.get("requested_by")
        if isinstance(requester, str) and requester.casefold() == value.casefold():
            raise ValueError("the approver must not be the requester (requested_by); sign-off is independent")
        return value

    @field_validator("expires_on")
    @classmethod
    def _bounded_validity(cls, value: dt.date, info: ValidationInfo) -> dt.date:
        approved = info.data.get("approved_on")
        if not isinstance(approved, dt.date):
            return value  # approved_on is itself invalid and reported on its own
        if value <= approved:
            raise ValueError(f"expires_on must be after approved_on ({approved.isoformat()})")
        if (value - approved).days > MAX_ACCEPTANCE_DAYS:
            raise ValueError(
                f"an acceptance may run at most {MAX_ACCEPTANCE_DAYS} days: expires_on must be on or before "
                f"{(approved + dt.timedelta(days=MAX_ACCEPTANCE_DAYS)).isoformat()} "
                f"(approved_on {approved.isoformat()} + {MAX_ACCEPTANCE_DAYS} days); "
                "renew it with a new review"
            )
        return value

    @model_validator(mode="after")
    def _has_scope(self) -> RiskAcceptance:
        if self.hosts is None and self.patches is None:
            raise ValueError(
                "no scope: set hosts (optionally narrowed by patches), or patches alone for every host"
            )
        return self

    @property
    def host_scoped(self) -> bool:
        """True when the acceptance names its hosts; False when it covers its patches on every host."""
        return self.hosts is not None

    @property
    def all_patches(self) -> bool:
        """True when the acceptance covers every patch on its hosts."""
        return self.patches is None

    @property
    def scope_text(self) -> str:
        """The scope in words, for reports."""
        hosts = ", ".join(self.hosts) if self.hosts is not None else "every host"
        patches = ", ".join(self.patches) if self.patches is not None else "all patches"
        return f"{patches} on {hosts}"


class ExceptionRegister(BaseModel):
    """A tenant's risk acceptances; ids are unique within the register."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: TenantId
    exceptions: Annotated[list[RiskAcceptance], unique("exception ids", key=lambda acceptance: acceptance.id)]

    @classmethod
    def empty(cls, tenant_id: str) -> ExceptionRegister:
        """The register of a tenant that has accepted no risk."""
        return cls(tenant_id=tenant_id, exceptions=[])

    def get(self, exception_id: str) -> RiskAcceptance | None:
        """The acceptance with ``exception_id``, or None."""
        return next((acceptance for acceptance in self.exceptions if acceptance.id == exception_id), None)


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


class ExceptionRegisterError(ConfigFileError):
    """An exception register that cannot be used, with every problem found in it (see
    :class:`~patchcycle.config.yaml_files.ConfigFileError`)."""

    what = "exception register"


EXCEPTIONS_DIR_ENV = "PATCHCYCLE_EXCEPTIONS_DIR"


def default_exceptions_dir() -> Path:
    """``$PATCHCYCLE_EXCEPTIONS_DIR`` if set, else ``include/exceptions`` in the repository."""
    import os

    return Path(os.environ[EXCEPTIONS_DIR_ENV]) if os.environ.get(EXCEPTIONS_DIR_ENV) else EXCEPTIONS_DIR


def load_exception_register(path: Path | str) -> ExceptionRegister:
    """Read and validate one register file; raise :class:`ExceptionRegisterError` listing every problem.

    The file must be named after its tenant: ``cu_cedar.yaml`` holds ``tenant_id: cu_cedar``.
    """
    path = Path(path)
    data = _read_yaml(path)
    problems: list[tuple[str, str]] = []
    declared = data.get("tenant_id")
    if isinstance(declared, str) and declared != path.stem:
        problems.append(
            (
                "tenant_id",
                f"tenant id {declared!r} does not match the file name {path.name!r} "
                f"(the file must be named {declared}{path.suffix}, or the tenant_id must be {path.stem!r})",
            )
        )
    try:
        register = ExceptionRegister.model_validate(data)
    except ValidationError as exc:
        problems.extend(describe_validation_error(error) for error in exc.errors(include_url=False))
    if problems:
        raise ExceptionRegisterError(path, problems)
    return register


def load_exception_registers(
    directory: Path | str | None = None, tenant_ids: Iterable[str] = ()
) -> dict[str, ExceptionRegister]:
    """Every register in ``directory`` (default ``include/exceptions``), keyed by tenant id, sorted by id.

    Each of ``tenant_ids`` without a file gets an empty register: no file means no accepted risk.
    Nothing is swallowed: a missing directory or the first broken file (in file-name order) raises
    :class:`ExceptionRegisterError`. For reports over all tenants; a cycle reads only its own tenant's
    register (:func:`load_tenant_exception_register`), so one broken file never stops another tenant.
    """
    directory = _existing(directory)
    registers: dict[str, ExceptionRegister] = {}
    loaded_from: dict[str, Path] = {}
    for path in _register_files(directory):
        register = load_exception_register(path)
        if register.tenant_id in loaded_from:
            first = loaded_from[register.tenant_id].name
            raise ExceptionRegisterError(
                path, [("tenant_id", f"tenant {register.tenant_id!r} already has a register in {first}")]
            )
        loaded_from[register.tenant_id] = path
        registers[register.tenant_id] = register
    for tenant_id in tenant_ids:
        registers.setdefault(tenant_id, ExceptionRegister.empty(tenant_id))
    return dict(sorted(registers.items()))


def load_tenant_exception_register(tenant_id: str, directory: Path | str | None = None) -> ExceptionRegister:
    """``tenant_id``'s register, read from its own file only (``<tenant_id>.yaml`` or ``.yml``, any case).

    No file means no accepted risk (an empty register). A broken file, or two files for the tenant,
    raise :class:`ExceptionRegisterError`: applying half a register would misstate compliance. Other
    tenants' files are not read, so their mistakes cannot stop this tenant's cycle.
    """
    directory = _existing(directory)
    paths = [path for path in _register_files(directory) if path.stem == tenant_id]
    if not paths:
        return ExceptionRegister.empty(tenant_id)
    if len(paths) > 1:
        names = " and ".join(path.name for path in paths)
        raise ExceptionRegisterError(paths[1], [("", f"tenant {tenant_id!r} has two registers: {names}")])
    return load_exception_register(paths[0])


def check_exception_registers(
    tenant_ids: Iterable[str], directory: Path | str | None = None
) -> list[ExceptionRegisterError]:
    """Every problem with the registers in ``directory``, one error per file, for parse-time checks.

    Besides broken files, a register named after no tenant in ``tenant_ids`` is an error: a renamed or
    mistyped file (``cu_cedax.yaml``) would otherwise drop its tenant's acceptances without a word.
    """
    try:
        directory = _existing(directory)
    except ExceptionRegisterError as exc:
        return [exc]
    known = set(tenant_ids)
    errors: list[ExceptionRegisterError] = []
    seen: dict[str, Path] = {}
    for path in _register_files(directory):
        if path.stem not in known:
            listed = ", ".join(sorted(known)) or "none"
            problem = f"no tenant {path.stem!r}: a register is named after its tenant (tenants: {listed})"
            errors.append(ExceptionRegisterError(path, [("", problem)]))
        elif path.stem in seen:
            problem = f"tenant {path.stem!r} has two registers: {seen[path.stem].name} and {path.name}"
            errors.append(ExceptionRegisterError(path, [("", problem)]))
        else:
            seen[path.stem] = path
            try:
                load_exception_register(path)
            except ExceptionRegisterError as exc:
                errors.append(exc)
    return errors


def _existing(directory: Path | str | None) -> Path:
    directory = default_exceptions_dir() if directory is None else Path(directory)
    if not directory.is_dir():
        raise ExceptionRegisterError(
            directory, [("", "exceptions directory does not exist or is not a directory")]
        )
    return directory


def _register_files(directory: Path) -> list[Path]:
    """Register files in ``directory`` sorted by name, skipping hidden files such as editor swap files."""
    return yaml_files(directory, REGISTER_FILE_SUFFIXES)


def _read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping; :class:`ExceptionRegisterError` for unreadable or ill-formed files."""
    return read_yaml_mapping(
        path,
        ExceptionRegisterError,
        empty="file is empty; expected tenant_id and exceptions",
        mapping="a mapping",
    )
