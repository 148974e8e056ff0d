"""include/terraform read with python-hcl2, for the tests: modules, roots and the values they pass.

python-hcl2 (8.x) keeps block labels quoted (``'"aws_s3_bucket"'``) and expressions as ``${...}`` text;
:func:`read_dir` unquotes the labels and drops its bookkeeping keys, so a test reads
``config["resource"]["aws_s3_bucket"]["evidence"]``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2

from tests.conftest import REPO

TERRAFORM = REPO / "include" / "terraform"
MODULES = TERRAFORM / "modules"
TENANT_ROOTS = TERRAFORM / "tenants"
SHARED_ROOT = TENANT_ROOTS / "_root"
_BOOKKEEPING = ("__is_block__", "__comments__", "__inline_comments__")


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k.strip('"'): _clean(v) for k, v in value.items() if k not in _BOOKKEEPING}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def read_file(path: Path) -> dict[str, Any]:
    """One ``.tf`` file, cleaned."""
    with path.open() as handle:
        return _clean(hcl2.load(handle))


def read_dir(directory: Path) -> dict[str, Any]:
    """Every ``.tf`` file of a directory merged by block type: ``variable``, ``resource``, ``data``,
    ``module``, ``output``, ``locals``, ``provider``, ``terraform`` (each a dict by name, or a list)."""
    merged: dict[str, Any] = {}
    for path in sorted(directory.glob("*.tf")):
        for kind, blocks in read_file(path).items():
            if kind in ("variable", "module", "output"):
                for block in blocks:
                    merged.setdefault(kind, {}).update(block)
            elif kind in ("resource", "data"):
                for block in blocks:
                    for rtype, by_name in block.items():
                        merged.setdefault(kind, {}).setdefault(rtype, {}).update(by_name)
            else:
                merged.setdefault(kind, []).extend(blocks)
    return merged


def source_text(directory: Path) -> str:
    """The directory's ``.tf`` files as one text (for reference searches)."""
    return "\n".join(p.read_text() for p in sorted(directory.glob("*.tf")))


def module_dirs() -> list[Path]:
    """Every module under include/terraform/modules."""
    return sorted(p for p in MODULES.iterdir() if p.is_dir())


def tenant_root_dirs() -> list[Path]:
    """Every tenant's example root (not the shared ``_root`` its files link to)."""
    return sorted(p for p in TENANT_ROOTS.iterdir() if p.is_dir() and not p.name.startswith("_"))


_REFERENCE = re.compile(r"^\$\{([A-Za-z_][\w.\[\]0-9]*)\}$")


def reference(expression: Any) -> str | None:
    """``"${var.a.b}"`` -> ``"var.a.b"``; None for anything that is not one plain reference."""
    if not isinstance(expression, str):
        return None
    match = _REFERENCE.match(expression)
    return match.group(1) if match else None


def resolve(path: str, scope: dict[str, Any]) -> Any:
    """The value of a dotted reference (``each.value.approval_rule.patch_filters``) in ``scope``."""
    value: Any = scope
    for part in path.split("."):
        value = value[part]
    return value
