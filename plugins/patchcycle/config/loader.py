"""Reading tenant files into :class:`~patchcycle.config.models.Tenant` models.

Loading runs at DAG parse time, so it is quick (libyaml when available) and never lets one broken
tenant file hide the others: :func:`load_tenants` returns the good tenants together with one
:class:`TenantConfigError` per broken file.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from patchcycle.config.models import Tenant
from patchcycle.config.yaml_files import read_yaml_mapping, yaml_files

__all__ = [
    "TENANTS_DIR_ENV",
    "TenantConfigError",
    "TenantSet",
    "default_tenants_dir",
    "load_tenant",
    "load_tenants",
]

TENANTS_DIR_ENV = "PATCHCYCLE_TENANTS_DIR"
"""Environment variable that overrides the directory of tenant files."""

TENANT_FILE_SUFFIXES = (".yaml", ".yml")


class TenantConfigError(ValueError):
    """A tenant file that cannot be used, with every problem found in it.

    ``problems`` holds ``(location, message)`` pairs; ``location`` is a dotted field path such as
    ``environments.1.rate_control.max_errors``, or empty for problems with the file as a whole.
    """

    def __init__(self, path: Path | str, problems: list[tuple[str, str]]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        super().__init__(self._render())

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problems))

    @property
    def display_path(self) -> str:
        """The file's path relative to the working directory when it lies below it, else as given."""
        try:
            return str(self.path.resolve().relative_to(Path.cwd().resolve()))
        except (ValueError, OSError):
            return str(self.path)

    def _render(self) -> str:
        lines = [f"{self.display_path}: invalid tenant configuration:"]
        for location, message in self.problems:
            lines.append(f"  - {location}: {message}" if location else f"  - {message}")
        return "\n".join(lines)


@dataclass(frozen=True)
class TenantSet:
    """The tenants that loaded from a directory, and the files that did not."""

    tenants: tuple[Tenant, ...]
    errors: tuple[TenantConfigError, ...]

    @property
    def ok(self) -> bool:
        """True when every tenant file loaded."""
        return not self.errors

    def get(self, tenant_id: str) -> Tenant | None:
        """The tenant with ``tenant_id``, or None."""
        return next((tenant for tenant in self.tenants if tenant.id == tenant_id), None)


def default_tenants_dir() -> Path:
    """``$PATCHCYCLE_TENANTS_DIR`` when set, else ``include/tenants`` in the repository."""
    configured = os.environ.get(TENANTS_DIR_ENV)
    if configured:
        return Path(configured)
    # plugins/patchcycle/config/loader.py -> repository root
    return Path(__file__).resolve().parents[3] / "include" / "tenants"


def load_tenant(path: Path | str) -> Tenant:
    """Read and validate one tenant file; raise :class:`TenantConfigError` listing every problem."""
    path = Path(path)
    data = _read_yaml(path)
    problems: list[tuple[str, str]] = []
    declared_id = data.get("id")
    if isinstance(declared_id, str) and declared_id != path.stem:
        problems.append(_id_mismatch(path, declared_id))
    try:
        tenant = Tenant.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(error) for error in exc.errors(include_url=False))
        raise TenantConfigError(path, problems) from None
    if problems:
        raise TenantConfigError(path, problems)
    return tenant


def load_tenants(directory: Path | str | None = None) -> TenantSet:
    """Load every ``*.yaml``/``*.yml`` tenant file in ``directory``, in file-name order.

    Broken files do not stop the others from loading: each becomes one error in the result.
    A tenant id already loaded from an earlier file makes the later file an error.
    """
    directory = default_tenants_dir() if directory is None else Path(directory)
    if not directory.is_dir():
        missing = TenantConfigError(
            directory, [("", "tenants directory does not exist or is not a directory")]
        )
        return TenantSet(tenants=(), errors=(missing,))
    tenants: list[Tenant] = []
    errors: list[TenantConfigError] = []
    loaded_from: dict[str, Path] = {}
    for path in _tenant_files(directory):
        try:
            tenant = load_tenant(path)
        except TenantConfigError as exc:
            errors.append(exc)
            continue
        if tenant.id in loaded_from:
            first = loaded_from[tenant.id]
            errors.append(
                TenantConfigError(path, [("id", f"tenant {tenant.id!r} is already defined in {first.name}")])
            )
            continue
        loaded_from[tenant.id] = path
        tenants.append(tenant)
    return TenantSet(tenants=tuple(tenants), errors=tuple(errors))


def _tenant_files(directory: Path) -> list[Path]:
    """Tenant files in ``directory`` sorted by name, skipping hidden files such as editor swap files."""
    return yaml_files(directory, TENANT_FILE_SUFFIXES)


def _read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping; :class:`TenantConfigError` for unreadable, empty or non-mapping files."""
    return read_yaml_mapping(
        path,
        TenantConfigError,
        empty="file is empty; expected a mapping of tenant fields",
        mapping="a mapping of tenant fields",
    )


def _id_mismatch(path: Path, declared_id: str) -> tuple[str, str]:
    return (
        "id",
        f"tenant id {declared_id!r} does not match the file name {path.name!r} "
        f"(the file must be named {declared_id}{path.suffix}, or the id must be {path.stem!r})",
    )


_MESSAGE_BY_TYPE = {
    "extra_forbidden": "unknown field (not allowed)",
    "missing": "required field is missing",
}
_PREFIXES = ("Value error, ", "Assertion failed, ")
_MAX_SHOWN_INPUT = 80


def _describe(error: Any) -> tuple[str, str]:
    """A pydantic error as ``(dotted location, message naming the offending value)``."""
    location = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind in _MESSAGE_BY_TYPE:
        return location, _MESSAGE_BY_TYPE[kind]
    message: str = error["msg"]
    for prefix in _PREFIXES:
        if message.startswith(prefix):
            message = message[len(prefix) :]
    shown = _show_input(error.get("input"))
    if shown is not None and shown not in message:
        message = f"{message} (got {shown})"
    return location, message


def _show_input(value: Any) -> str | None:
    """A short repr of an offending input, or None when it is too large to help."""
    text = repr(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return text if len(text) <= _MAX_SHOWN_INPUT else text[: _MAX_SHOWN_INPUT - 3] + "..."
    return text if len(text) <= _MAX_SHOWN_INPUT else None
