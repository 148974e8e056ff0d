"""Fixtures for the evidence-pack renderers: a realistic, deterministic evidence document
(built by :mod:`devtools.evidence_documents`, which the evidence-pack benchmark uses too)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from devtools.evidence_documents import make_evidence


@pytest.fixture
def evidence() -> dict:
    """A 40-host cycle whose prod stage failed."""
    return make_evidence()


@pytest.fixture
def evidence_factory() -> Callable[..., dict]:
    """``make_evidence`` as a fixture, returning fresh deep copies."""

    def factory(*args: Any, **kwargs: Any) -> dict:
        return copy.deepcopy(make_evidence(*args, **kwargs))

    return factory
