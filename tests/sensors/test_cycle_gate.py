"""The gate task of a tenant's monthly and zero-day cycles (``OtherCycleIdleSensor``): what it reads of
Airflow's record of the other DAG through the task SDK and what it decides. The record is a plain stand-in
of the three task-SDK calls; both gates through Airflow, on the scheduler, are in
tests/deploy/test_cycles_on_stack.py."""

from __future__ import annotations

from typing import Any

import pytest

from patchcycle.domain.cycle_gate import GATE_POOL
from patchcycle.sensors.cycle_gate import OtherCycleIdleSensor

ZERO_DAY = "zero_day__cu_alpha"


class AirflowRecord:
    """The other DAG's runs and their gate states, answered as RuntimeTaskInstance answers."""

    def __init__(self, runs: dict[str, tuple[str, str | None]]) -> None:
        self.runs = runs  # run id -> (run state, gate state)
        self.state_reads: list[str] = []

    def get_dr_count(self, dag_id: str, states: list[str]) -> int:
        assert dag_id == ZERO_DAY
        return sum(1 for state, _ in self.runs.values() if state in states)

    def get_task_states(self, dag_id: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        assert (dag_id, task_ids) == (ZERO_DAY, ["wait_for_monthly"])
        return {run_id: {"wait_for_monthly": gate} for run_id, (_, gate) in self.runs.items()}

    def get_dagrun_state(self, dag_id: str, run_id: str) -> str:
        self.state_reads.append(run_id)
        return self.runs[run_id][0]


def gate(other_goes_first: bool) -> OtherCycleIdleSensor:
    return OtherCycleIdleSensor(
        task_id="wait_for_zero_day",
        other_dag_id=ZERO_DAY,
        other_gate_task_id="wait_for_monthly",
        other_goes_first=other_goes_first,
    )


def test_it_waits_in_the_one_slot_pool_in_reschedule_mode() -> None:
    sensor = gate(True)
    assert sensor.pool == GATE_POOL and sensor.mode == "reschedule"
    assert sensor.timeout == 10 * 24 * 3600


def test_no_live_run_of_the_other_cycle_lets_the_run_go_without_reading_more() -> None:
    record = AirflowRecord({"manual__1": ("success", "success"), "manual__2": ("failed", "failed")})
    assert gate(True).poke({"ti": record}) is True
    assert record.state_reads == []


def test_a_started_run_of_the_other_cycle_holds_until_it_ends() -> None:
    record = AirflowRecord({"manual__old": ("success", "success"), "manual__now": ("running", "success")})
    assert gate(False).poke({"ti": record}) is False
    record.runs["manual__now"] = ("failed", "success")
    assert gate(False).poke({"ti": record}) is True


@pytest.mark.parametrize(("other_goes_first", "goes"), [(True, False), (False, True)])
def test_when_both_are_at_their_gates_the_tenants_policy_decides(other_goes_first: bool, goes: bool) -> None:
    record = AirflowRecord({"asset_triggered__1": ("running", "up_for_reschedule")})
    assert gate(other_goes_first).poke({"ti": record}) is goes


def test_a_run_whose_gate_failed_is_not_asked_for_its_state() -> None:
    record = AirflowRecord({"manual__timed_out": ("running", "failed"), "manual__q": ("queued", None)})
    assert gate(False).poke({"ti": record}) is True
    assert record.state_reads == ["manual__q"]
