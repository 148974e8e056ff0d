"""fleetsim seen from outside: the unmodified boto3 SDK over HTTP, and the control plane over HTTP.

Each test module declares ``SCENARIO`` (a plain dict, parsed with ``parse_scenario``); the module-scoped
``fleet`` fixture serves it on loopback with short timings (see ``fleetsim_testkit``). moto's backends
are process-global and a new ``FleetsimServer`` resets them, so at most one server runs in this process
at a time (``running`` enforces it, and module scope keeps servers sequential). Tests that change a
host's state use hosts no other test in their module touches, so they hold in any order and when
xdist splits a module across workers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fleetsim_testkit import Fleet, running


@pytest.fixture(scope="module")
def fleet(request: pytest.FixtureRequest) -> Iterator[Fleet]:
    """The module's ``SCENARIO`` served by fleetsim for the whole module."""
    raw = getattr(request.module, "SCENARIO", None)
    assert raw is not None, f"{request.module.__name__} must define SCENARIO"
    with running(raw) as f:
        yield f
