"""Canary sizing: named hosts plus a share, least critical first, never the whole stage."""

from __future__ import annotations

import pytest

from patchcycle.config.models import Canary
from patchcycle.domain.canary import split_canary


def hosts(*specs: tuple[str, str]) -> list[dict]:
    return [{"host_id": f"i-{name}", "name": name, "criticality": crit} for name, crit in specs]


FLEET = hosts(
    ("web-1", "high"), ("web-2", "high"), ("app-1", "low"), ("db-1", "critical"), ("app-2", "medium")
)


@pytest.mark.parametrize(
    ("share", "count"),
    [(0.1, 1), (0.2, 1), (0.21, 2), (0.5, 3), (0.99, 4)],  # rounded up; never all five
)
def test_share_rounds_up_and_leaves_a_rest(share, count):
    split = split_canary(FLEET, Canary(share=share))
    assert len(split.canary) == count and len(split.rest) == len(FLEET) - count


def test_least_critical_hosts_go_first():
    assert split_canary(FLEET, Canary(share=0.4)).canary == ("i-app-1", "i-app-2")


def test_named_hosts_are_in_the_canary_whatever_the_share():
    split = split_canary(FLEET, Canary(share=0.2, hosts=["DB-1", "not-here"]))
    assert split.canary == ("i-db-1",)
    assert "named hosts not in this stage: ['not-here']" in split.reason


@pytest.mark.parametrize(
    ("fleet", "canary", "rest"),
    [
        (hosts(("solo", "high")), ("i-solo",), ()),  # one host: it is the canary
        (hosts(("a", "high"), ("b", "high")), ("i-a",), ("i-b",)),  # two hosts: one and one
        ([], (), ()),
    ],
)
def test_tiny_stages(fleet, canary, rest):
    split = split_canary(fleet, Canary(share=0.1))
    assert (split.canary, split.rest) == (canary, rest)


def test_no_canary_configured_sends_everything_in_the_main_batch():
    split = split_canary(FLEET, Canary())
    assert split.canary == () and len(split.rest) == 5 and split.reason == "no canary configured"
