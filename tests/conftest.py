"""Test-wide setup: a private Airflow home, so no test ever touches a user's Airflow or a real cloud.

Airflow reads its configuration when first imported, so this runs before any test module imports it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_home = Path(tempfile.mkdtemp(prefix="patchcycle-airflow-home-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        # No test may reach a real cloud, whatever the shell has configured.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
)
os.environ.pop("AWS_PROFILE", None)


SLOWEST = json.loads((REPO / "tests" / "slowest.json").read_text())["seconds"]


def pytest_collection_modifyitems(config, items) -> None:
    """The longest tests first: end-to-end cycles and the process stacks take minutes each, unit tests
    milliseconds. pytest-xdist hands work out in collection order (groups with more tests first), so
    queued longest first (by the seconds measured in ``tests/slowest.json``; an unlisted end-to-end or
    integration test counts as 1 s, any other as 0) the fast ones fill the workers' last minutes instead
    of one slow test starting last and running alone.

    Tests of an xdist group share module-scoped fixtures (a process stack): their modules stay whole and
    in file order, ranked by their longest test, so no stack is torn down and started again."""

    def expected_seconds(item) -> float:
        if item.nodeid in SLOWEST:
            return SLOWEST[item.nodeid]
        return 1.0 if any(item.get_closest_marker(mark) for mark in ("e2e", "integration")) else 0.0

    module_longest: dict[str, float] = {}
    for item in items:
        if item.get_closest_marker("xdist_group"):
            module = item.nodeid.split("::", 1)[0]
            module_longest[module] = max(module_longest.get(module, 0.0), expected_seconds(item))

    def rank(item) -> float:
        module = item.nodeid.split("::", 1)[0]
        if item.get_closest_marker("xdist_group") and module in module_longest:
            return -module_longest[module]
        return -expected_seconds(item)

    items[:] = sorted(items, key=rank)
