"""The first task of a tenant's monthly and zero-day cycles: wait while the other cycle is live."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator

from patchcycle.domain.cycle_gate import GATE_POOL, LIVE_RUN_STATES, OtherRun, runs_to_wait_for

GATE_TIMEOUT = dt.timedelta(days=10)
"""As long as a cycle may run (``dagrun_timeout``): the other cycle's run has ended by then."""


class OtherCycleIdleSensor(BaseSensorOperator):
    """Waits while the tenant's other cycle holds it (see :mod:`patchcycle.domain.cycle_gate`): a run of
    the other cycle that has passed its own gate and is still live, or one still at its gate when the other
    cycle goes first.

    What it reads is Airflow's own record, through the task SDK: the count of the other DAG's live runs,
    the state of their gate task, and each such run's state. Reschedule mode: between pokes the task holds
    no worker slot and no slot of :data:`GATE_POOL`, the one-slot pool that makes the two gates decide one
    at a time. The DAGs' ``max_active_runs=1`` keeps two runs of one cycle apart.

    Not deferrable, unlike the waits on the clouds (``WaitArguments``): a deferred task holds no pool slot,
    so two gates deciding in the triggerer could both let their runs go; each poke here decides inside the
    pool's one slot.
    """

    template_fields: Sequence[str] = ("other_dag_id", "other_gate_task_id")
    ui_color = "#fde8e8"

    def __init__(
        self, *, other_dag_id: str, other_gate_task_id: str, other_goes_first: bool, **kwargs: Any
    ) -> None:
        from patchcycle.operators.base import poll_seconds

        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", poll_seconds())
        kwargs.setdefault("timeout", GATE_TIMEOUT.total_seconds())
        kwargs.setdefault("pool", GATE_POOL)
        super().__init__(**kwargs)
        self.other_dag_id = other_dag_id
        self.other_gate_task_id = other_gate_task_id
        self.other_goes_first = other_goes_first

    def live_runs(self, ti: Any) -> list[OtherRun]:
        """The other cycle's live runs, each with the state of its gate."""
        if not ti.get_dr_count(dag_id=self.other_dag_id, states=list(LIVE_RUN_STATES)):
            return []
        gates = ti.get_task_states(dag_id=self.other_dag_id, task_ids=[self.other_gate_task_id])
        live = []
        for run_id, states in sorted(gates.items()):
            run = OtherRun(run_id=run_id, gate_state=states.get(self.other_gate_task_id))
            # A run whose gate failed holds nothing, live or not: no need to ask for its state.
            if (run.started or run.at_gate) and ti.get_dagrun_state(
                dag_id=self.other_dag_id, run_id=run_id
            ) in LIVE_RUN_STATES:
                live.append(run)
        return live

    def poke(self, context: Any) -> bool:
        """True once none of the other cycle's live runs holds this one."""
        holding = runs_to_wait_for(self.live_runs(context["ti"]), other_goes_first=self.other_goes_first)
        for run in holding:
            self.log.info(
                "%s run %s %s: waiting",
                self.other_dag_id,
                run.run_id,
                "has started" if run.started else "is at its gate and goes first",
            )
        return not holding
