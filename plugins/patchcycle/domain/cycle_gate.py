"""The gate between a tenant's two cycles: its monthly cycle and its zero-day cycle never overlap.

Both drive the same SSM baselines (each plan rewrites their approval cutoff and list), tag the same hosts
and patch them through the same stages, so while one is live the other waits at its first task. The rule,
applied by each cycle's gate to the other cycle's live (queued or running) runs:

- a run that has passed its gate holds the other cycle until it ends, whichever cycle it is: a cycle that
  has started is never interrupted (stopping it half-way would leave its hosts between two plans);
- when both are still at their gates, the tenant's ``risk.zero_day.starts_first`` decides which goes first.

The two gates therefore never wait on each other: exactly one of the two cycles "goes first". What makes
the rule safe against two gates deciding at the same instant is the pool :data:`GATE_POOL` of one slot
that both gates run in: Airflow never runs two of its tasks at once, so each gate decides after the
other's last decision is recorded (a sensor in reschedule mode leaves the pool between pokes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

GATE_POOL = "patchcycle_cycle_gate"
"""The Airflow pool, of one slot, every cycle gate runs in; the deployment creates it (see the README)."""
GATE_POOL_DESCRIPTION = (
    "One slot: the gates between each tenant's monthly and zero-day cycles decide one at a time "
    "(patchcycle.domain.cycle_gate)"
)

StartsFirst = Literal["zero_day", "monthly"]

LIVE_RUN_STATES: tuple[str, ...] = ("queued", "running")
"""The states of a DAG run that is live: created and not yet ended."""
PASSED = "success"
"""The state of a gate that let its run go."""
AT_GATE: frozenset[str | None] = frozenset(
    {None, "scheduled", "queued", "running", "up_for_reschedule", "up_for_retry", "deferred", "restarting"}
)
"""The states of a gate whose run is still waiting to start (None: its task has not been scheduled yet)."""


@dataclass(frozen=True)
class OtherRun:
    """A live run of the other cycle, as its gate stands."""

    run_id: str
    gate_state: str | None

    @property
    def started(self) -> bool:
        """Whether the run has passed its gate (its plan may be running or done)."""
        return self.gate_state == PASSED

    @property
    def at_gate(self) -> bool:
        """Whether the run is still waiting at its gate."""
        return self.gate_state in AT_GATE


def runs_to_wait_for(live: Iterable[OtherRun], *, other_goes_first: bool) -> list[OtherRun]:
    """The other cycle's live runs this run must wait for: those that have started, and, when the other
    cycle goes first, those still at their gate. A live run whose gate failed (it timed out, or was marked
    failed) will not start, and holds nothing."""
    return [run for run in live if run.started or (other_goes_first and run.at_gate)]
