"""The typed parts of the product type-check in strict mode (``[tool.mypy]`` in pyproject.toml): the domain,
the tenant configuration, the reports (evidence documents, packs, their verification, the PDFs) and the
context an operator runs with. A change that breaks a type there fails the suite, with mypy's own report."""

from __future__ import annotations

import pytest
from mypy import api

from tests.conftest import REPO

#: Checked with all their modules (mypy's ``-p``).
STRICT_PACKAGES = ("patchcycle.domain", "patchcycle.config", "patchcycle.reports")
#: Checked on their own, in packages not yet strict (mypy's ``-m``).
STRICT_MODULES = ("patchcycle.operators.context",)


@pytest.mark.timeout(600)
def test_the_strict_packages_and_modules_type_check_strictly() -> None:
    args = ["--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(REPO / ".mypy_cache")]
    for package in STRICT_PACKAGES:
        args += ["-p", package]
    for module in STRICT_MODULES:
        args += ["-m", module]
    out, err, status = api.run(args)
    assert status == 0, out + err
    assert "Success: no issues found" in out
