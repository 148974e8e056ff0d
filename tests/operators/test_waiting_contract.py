"""One waiting contract (``WaitArguments``): every operator that waits takes the same arguments, and
``deferrable=False`` means the same everywhere: poll the same check in the worker, with the same delay
and attempts, and complete in the same method with the same event the trigger would have sent."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
from typing import Any

import pytest
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import TaskDeferred

from patchcycle.config.loader import load_tenants
from patchcycle.dag_factory import build_patch_cycle_dag
from patchcycle.operators.base import WaitArguments
from patchcycle.rollback_dag import build_rollback_dag
from patchcycle.triggers import waits

TENANTS = load_tenants().tenants


class Probe(WaitArguments, BaseOperator):
    """The smallest operator that waits: it records how it completed."""

    def __init__(
        self, *, deferrable: bool, waiter_delay: float = 0.0, waiter_max_attempts: int = 5, **kwargs: Any
    ) -> None:
        super().__init__(task_id="probe", **kwargs)
        self.set_wait_arguments(deferrable, waiter_delay, waiter_max_attempts)
        self.completed: list[Any] = []

    def execute_complete(self, context: Any, event: Any = None, **kwargs: Any) -> Any:
        self.completed.append(event if event is not None else kwargs)
        return "completed"


def answers(*sequence: dict[str, Any]):
    """A check that answers ``sequence`` in turn (the last one again once it runs out)."""
    calls: list[dict[str, Any]] = []

    def check(payload: dict[str, Any]) -> dict[str, Any]:
        calls.append(payload)
        return dict(sequence[min(len(calls), len(sequence)) - 1])

    check.calls = calls  # type: ignore[attr-defined]
    return check


@pytest.fixture
def fake_check(monkeypatch):
    def install(*sequence: dict[str, Any]):
        check = answers(*sequence)
        monkeypatch.setitem(waits.CHECKS, "fake", check)
        return check

    return install


def trigger_events(check: str, payload: dict[str, Any], attempts: int) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        trigger = waits.CloudWaitTrigger(check, payload, 0.0, attempts)
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


@pytest.mark.parametrize(
    ("sequence", "status", "attempts"),
    [
        ([{"done": False}, {"done": False}, {"done": True, "n": 3}], "done", 3),
        ([{"done": False}, {"done": False, "wake": True}], "wake", 2),
        ([{"done": False, "n": 0}], "timeout", 5),  # never done: the last answer, out of attempts
    ],
)
def test_without_deferral_the_worker_polls_and_completes_with_the_triggers_event(
    fake_check, sequence, status, attempts
) -> None:
    check = fake_check(*sequence)
    probe = Probe(deferrable=False, waiter_max_attempts=5)
    assert probe.wait_for({}, "fake", {"ids": ["a"]}) == "completed"
    (event,) = probe.completed
    assert (event["status"], event["attempts"]) == (status, attempts)
    assert check.calls == [{"ids": ["a"]}] * attempts
    # The triggerer, given the same answers, ends the wait with the same event.
    fake_check(*sequence)
    assert trigger_events("fake", {"ids": ["a"]}, 5) == [event]


def test_with_deferral_the_same_check_delay_and_attempts_go_to_the_triggerer(fake_check) -> None:
    fake_check({"done": True})
    probe = Probe(deferrable=True, waiter_delay=7.0, waiter_max_attempts=12)
    with pytest.raises(TaskDeferred) as deferred:
        probe.wait_for({}, "fake", {"ids": ["a"]}, max_attempts=3)
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath.endswith("CloudWaitTrigger")
    assert kwargs == {
        "check": "fake",
        "payload": {"ids": ["a"]},
        "waiter_delay": 7.0,
        "waiter_max_attempts": 3,
    }
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == dt.timedelta(seconds=7.0 * 5)
    assert probe.completed == []


def test_a_wait_on_the_clock_is_deferred_or_slept_until_the_moment() -> None:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.2)
    with pytest.raises(TaskDeferred) as deferred:
        Probe(deferrable=True).wait_until({}, moment, kwargs={"until": moment.isoformat()})
    assert deferred.value.trigger.serialize()[1]["moment"] == moment
    probe = Probe(deferrable=False, waiter_delay=0.05)
    assert probe.wait_until({}, moment, kwargs={"until": moment.isoformat()}) == "completed"
    assert dt.datetime.now(dt.UTC) >= moment
    assert probe.completed == [{"until": moment.isoformat()}]


def test_an_unknown_check_is_refused_both_ways() -> None:
    with pytest.raises(ValueError, match="unknown wait check 'nope'"):
        Probe(deferrable=False).wait_for({}, "nope", {})
    with pytest.raises(ValueError, match="unknown wait check 'nope'"):
        Probe(deferrable=True).wait_for({}, "nope", {})


def _waiting_tasks() -> list[BaseOperator]:
    tasks: list[BaseOperator] = []
    for tenant in TENANTS:
        tasks += build_patch_cycle_dag(tenant).tasks + build_rollback_dag(tenant).tasks
    return tasks


def test_every_task_that_waits_takes_the_one_contracts_arguments_and_defers_by_default() -> None:
    waiting = [t for t in _waiting_tasks() if isinstance(t, WaitArguments)]
    kinds = {type(t).__name__ for t in waiting}
    # Every kind of wait the cycle and the rollback have: the plan's Scan, backups, installs on each
    # cloud, reboots, the health watch, the soak, the change window, the restores.
    assert {
        "PlanCycleOperator",
        "BackupsCompleteSensor",
        "PatchAwsOperator",
        "PatchAzureOperator",
        "PatchGcpOperator",
        "VerifyStageOperator",
        "HealthGateOperator",
        "SoakOperator",
        "ChangeWindowGateOperator",
        "RestoreHostsOperator",
    } <= kinds
    for task in waiting:
        parameters = inspect.signature(type(task).__init__).parameters
        assert {"deferrable", "waiter_delay"} <= set(parameters), type(task).__name__
        assert task.deferrable is True, task.task_id
    # No task defers by itself, outside the contract.
    for task in _waiting_tasks():
        source = inspect.getsource(type(task))
        assert "self.defer(" not in source, type(task).__name__
