"""Hooks against a running fleetsim: the unmodified vendor SDKs over HTTP on loopback.

Each test module declares ``SCENARIO`` (a plain dict, parsed with ``parse_scenario``); the module-scoped
``fleet`` fixture serves it for the whole module, as ``tests/fleetsim/conftest.py`` does (moto's backends
are process-global, so at most one fleetsim server runs in this process at a time). Hooks reach it only
through Airflow connections, set per test with ``monkeypatch.setenv("AIRFLOW_CONN_<ID>", json)``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fleetsim"))

from fleetsim_testkit import Fleet, running  # noqa: E402


@pytest.fixture(scope="module")
def fleet(request: pytest.FixtureRequest) -> Iterator[Fleet]:
    """The module's ``SCENARIO`` served by fleetsim for the whole module."""
    raw = getattr(request.module, "SCENARIO", None)
    assert raw is not None, f"{request.module.__name__} must define SCENARIO"
    with running(raw) as f:
        yield f
