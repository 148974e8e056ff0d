"""A rate control as numbers for a run over a count of targets (patchcycle.domain.rates)."""

from __future__ import annotations

import pytest

from patchcycle.config.models import RateControl
from patchcycle.domain import rates


@pytest.mark.parametrize(
    ("max_errors", "targets", "expected"),
    [
        ("10%", 0, 0),
        ("10%", 1, 0),
        ("10%", 9, 0),
        ("10%", 10, 1),
        ("10%", 19, 1),
        ("100%", 7, 7),
        ("0%", 50, 0),
        ("0", 0, 0),
        ("0", 10, 0),
        ("3", 1, 3),
    ],
)
def test_allowed_errors_round_a_percentage_down(max_errors: str, targets: int, expected: int) -> None:
    rate = RateControl(max_concurrency="1", max_errors=max_errors)
    assert rates.allowed_errors(rate, targets) == expected


@pytest.mark.parametrize(
    ("max_concurrency", "targets", "expected"),
    [
        ("10%", 0, 0),
        ("10%", 1, 1),
        ("10%", 9, 1),
        ("10%", 25, 2),
        ("100%", 4, 4),
        ("50%", 3, 1),
        ("1", 0, 0),
        ("1", 5, 1),
        ("20", 5, 5),
    ],
)
def test_concurrency_rounds_down_not_below_one(max_concurrency: str, targets: int, expected: int) -> None:
    rate = RateControl(max_concurrency=max_concurrency, max_errors="0")
    assert rates.concurrency(rate, targets) == expected


def test_rate_control_rejects_negative_targets() -> None:
    with pytest.raises(ValueError, match="targets"):
        rates.allowed_errors(RateControl(max_concurrency="1", max_errors="0"), -1)
