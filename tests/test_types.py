"""The pure core type-checks in strict mode (``[tool.mypy]`` in pyproject.toml): the domain and the
tenant configuration. A change that breaks a type there fails the suite, with mypy's own report."""

from __future__ import annotations

import pytest
from mypy import api

from tests.conftest import REPO

STRICT_PACKAGES = ("patchcycle.domain", "patchcycle.config")


@pytest.mark.timeout(600)
def test_the_domain_and_the_configuration_type_check_strictly() -> None:
    args = ["--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(REPO / ".mypy_cache")]
    for package in STRICT_PACKAGES:
        args += ["-p", package]
    out, err, status = api.run(args)
    assert status == 0, out + err
    assert "Success: no issues found" in out
