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
from patchcycle.config.yaml_files import (
    ConfigFileError,
    describe_validation_error,
    read_yaml_mapping,
    yaml_files,
)

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


class TenantConfigError(ConfigFileError):
    """A tenant file that cannot be used, with every problem found in it (see :class:`ConfigFileError`)."""

    what = "tenant configuration"


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
        problems.extend(describe_validation_error(error) for error in exc.errors(include_url=False))
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
    conflicts = _shared_claims(tenants, loaded_from)
    errors.extend(conflicts.values())
    kept = tuple(tenant for tenant in tenants if tenant.id not in conflicts)
    return TenantSet(tenants=kept, errors=tuple(sorted(errors, key=lambda error: error.path.name)))


def _shared_claims(tenants: list[Tenant], paths: dict[str, Path]) -> dict[str, TenantConfigError]:
    """One error per tenant that claims an account, subscription, project, bucket or connection that
    another tenant also claims (:meth:`Tenant.exclusive_claims`).

    Every claimant is refused, not only the later file: which of the two files is wrong cannot be told
    from the files, and running either could patch the other's hosts or write into its evidence.
    """
    owners: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for tenant in tenants:
        for where, kind, value in tenant.exclusive_claims():
            owners.setdefault((kind, value), []).append((tenant.id, where))
    problems: dict[str, list[tuple[str, str]]] = {}
    for (kind, value), claimants in owners.items():
        if len(claimants) < 2:
            continue
        for tenant_id, where in claimants:
            others = ", ".join(
                f"{other} ({paths[other].name})" for other, _ in claimants if other != tenant_id
            )
            problems.setdefault(tenant_id, []).append(
                (
                    where,
                    f"{kind} {value!r} is also claimed by {others}; it must belong to one tenant, "
                    "so neither tenant's cycle runs until one of the files is corrected",
                )
            )
    return {tenant_id: TenantConfigError(paths[tenant_id], found) for tenant_id, found in problems.items()}


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
