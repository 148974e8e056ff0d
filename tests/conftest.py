"""Test-wide setup: a private Airflow home, so no test ever touches a user's Airflow or a real cloud.

Airflow reads its configuration when first imported, so this runs before any test module imports it.
"""

from __future__ import annotations

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


def pytest_collection_modifyitems(config, items) -> None:
    """The slow tests first: end-to-end cycles and the process stacks take minutes each, unit tests
    milliseconds. pytest-xdist hands work out in collection order (groups with more tests first), so
    with the slow ones queued first the fast ones fill the workers' last minutes instead of one slow
    test starting last and running alone. The order of tests within each kind is kept."""

    def slow(item) -> bool:
        return any(item.get_closest_marker(mark) is not None for mark in ("e2e", "integration"))

    items[:] = sorted(items, key=lambda item: not slow(item))
