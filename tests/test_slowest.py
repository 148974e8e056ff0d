"""``tests/slowest.json`` (the queue order of the suite, see ``tests/conftest.py``) names tests that exist:
a renamed or removed slow test would otherwise silently lose its place at the front of the queue."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_listed_test_exists_with_a_positive_figure() -> None:
    listed = json.loads((REPO / "tests" / "slowest.json").read_text())["seconds"]
    assert listed
    for nodeid, seconds in listed.items():
        module, _, name = nodeid.partition("::")
        source = (REPO / module).read_text()
        assert re.search(rf"^def {re.escape(name.split('[')[0])}\(", source, re.M), nodeid
        assert seconds > 0, nodeid
