"""The gate between a tenant's monthly and zero-day cycles, as policy: which of the other cycle's live runs
hold a run at its gate. Exactly one cycle goes first, so the two gates never wait on each other."""

from __future__ import annotations

import itertools

import pytest

from patchcycle.domain.cycle_gate import AT_GATE, PASSED, OtherRun, runs_to_wait_for

STARTED = OtherRun("scheduled__2026-11-22T02:00:00+00:00", PASSED)
WAITING = OtherRun("manual__2026-11-25T09:00:00+00:00", "up_for_reschedule")
NOT_YET = OtherRun("asset_triggered__2026-11-25T01:05:00+00:00", None)
GATE_FAILED = OtherRun("manual__2026-11-20T09:00:00+00:00", "failed")


@pytest.mark.parametrize("other_goes_first", [True, False])
def test_a_run_of_the_other_cycle_that_has_started_always_holds(other_goes_first: bool) -> None:
    assert runs_to_wait_for([STARTED], other_goes_first=other_goes_first) == [STARTED]


def test_a_run_still_at_its_gate_holds_only_when_its_cycle_goes_first() -> None:
    assert runs_to_wait_for([WAITING, NOT_YET], other_goes_first=True) == [WAITING, NOT_YET]
    assert runs_to_wait_for([WAITING, NOT_YET], other_goes_first=False) == []


@pytest.mark.parametrize("other_goes_first", [True, False])
def test_a_run_whose_gate_failed_will_not_start_and_holds_nothing(other_goes_first: bool) -> None:
    assert runs_to_wait_for([GATE_FAILED], other_goes_first=other_goes_first) == []


@pytest.mark.parametrize("state", sorted(AT_GATE, key=str))
def test_every_state_of_a_waiting_gate_counts_as_at_the_gate(state: str | None) -> None:
    assert OtherRun("r", state).at_gate and not OtherRun("r", state).started


@pytest.mark.parametrize(
    ("monthly", "zero_day"), list(itertools.product([None, "up_for_reschedule", "running", PASSED], repeat=2))
)
@pytest.mark.parametrize("starts_first", ["zero_day", "monthly"])
def test_the_two_gates_never_wait_on_each_other_nor_both_let_their_runs_go(
    monthly: str | None, zero_day: str | None, starts_first: str
) -> None:
    """Each gate as the other sees it, in every combination: while both runs are live, at most one of them
    is past its gate, and when neither is, exactly one of the two gates lets its run go."""
    if monthly == PASSED and zero_day == PASSED:
        return  # the pool of one slot serialises the gates: the second one saw the first pass
    monthly_waits = bool(
        runs_to_wait_for([OtherRun("z", zero_day)], other_goes_first=starts_first == "zero_day")
    )
    zero_day_waits = bool(
        runs_to_wait_for([OtherRun("m", monthly)], other_goes_first=starts_first == "monthly")
    )
    if monthly == PASSED:  # the one that has started holds the other, whatever the policy says
        assert zero_day_waits
    elif zero_day == PASSED:
        assert monthly_waits
    else:
        assert monthly_waits != zero_day_waits, "exactly one goes first"
        assert zero_day_waits == (starts_first == "monthly")
