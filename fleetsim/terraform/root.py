"""A tenant's example Terraform root (include/terraform/tenants/<tenant>) read as data.

Terraform reads ``terraform.tfvars.json`` and then every ``*.auto.tfvars.json`` in lexical order, a later
file's value of a variable replacing an earlier one's ("Variable Definition Precedence",
https://developer.hashicorp.com/terraform/language/values/variables#variable-definition-precedence).
The S3 backend's ``bucket``, ``key`` and ``region`` are literal strings in ``backend.tf`` (a backend
block cannot read variables, https://developer.hashicorp.com/terraform/language/backend/s3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_BACKEND = re.compile(r'backend\s+"s3"\s*\{(?P<body>[^}]*)\}', re.S)
_SETTING = re.compile(r'^\s*(bucket|key|region)\s*=\s*"([^"]*)"\s*$', re.M)


class RootError(ValueError):
    """A tenant root fleetsim cannot apply; the message names the file."""


@dataclass(frozen=True)
class Backend:
    """Where the root keeps its state: the S3 backend's bucket, key and region."""

    bucket: str
    key: str
    region: str


@dataclass(frozen=True)
class TenantRoot:
    """One tenant's root: its variables (tfvars merged as Terraform merges them) and its backend."""

    tenant: str
    directory: Path
    variables: Mapping[str, Any]
    backend: Backend

    @property
    def modules(self) -> Path:
        """include/terraform/modules, which every tenant root's ``source`` points into."""
        return self.directory.parent.parent / "modules"

    @property
    def account_id(self) -> str:
        return str(self.variables["aws_scope"]["account_id"])

    @property
    def region(self) -> str:
        return str(self.variables["aws_scope"]["region"])


def read_root(directory: Path) -> TenantRoot:
    """The root in ``directory``: tfvars and backend; raises :class:`RootError` naming what is missing."""
    variables: dict[str, Any] = {}
    files = [directory / "terraform.tfvars.json", *sorted(directory.glob("*.auto.tfvars.json"))]
    for path in files:
        try:
            variables.update(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise RootError(f"{path}: cannot read variables: {exc}") from exc
    backend_file = directory / "backend.tf"
    try:
        block = _BACKEND.search(backend_file.read_text())
    except OSError as exc:
        raise RootError(f"{backend_file}: cannot read the backend: {exc}") from exc
    settings = dict(_SETTING.findall(block.group("body"))) if block else {}
    if set(settings) != {"bucket", "key", "region"}:
        raise RootError(f"{backend_file}: no s3 backend with literal bucket, key and region")
    for required in ("aws_scope", "tenant_id", "compliance_tags", "patch_baselines", "platform"):
        if required not in variables:
            raise RootError(f"{directory}: variable {required!r} is not set by its tfvars")
    return TenantRoot(
        tenant=str(variables["tenant_id"]),
        directory=directory,
        variables=variables,
        backend=Backend(**settings),
    )
