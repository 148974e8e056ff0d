"""The one wait trigger: it polls a named check after each delay, and fires done, wake or timeout."""

from __future__ import annotations

import asyncio

import pytest

from patchcycle.triggers import waits
from patchcycle.triggers.waits import CloudWaitTrigger


def _events(trigger: CloudWaitTrigger) -> list[dict]:
    async def collect() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


@pytest.fixture
def scripted(monkeypatch):
    """A check answering from a script, recording each payload it was polled with."""
    polls: list[dict] = []

    def install(*answers: dict) -> list[dict]:
        script = list(answers)

        def check(payload: dict) -> dict:
            polls.append(payload)
            return script.pop(0) if len(script) > 1 else script[0]

        monkeypatch.setitem(waits.CHECKS, "scripted", check)
        return polls

    return install


def test_polls_after_each_delay_until_done(scripted):
    polls = scripted({"done": False}, {"done": False}, {"done": True, "items": {"a": 1}})
    (event,) = _events(CloudWaitTrigger("scripted", {"ids": ["a"]}, 0.01, 10))
    assert event == {"done": True, "items": {"a": 1}, "status": "done", "attempts": 3}
    assert polls == [{"ids": ["a"]}] * 3


def test_wakes_the_task_early_when_the_check_asks(scripted):
    scripted({"done": False, "wake": True, "results": {"m1": {}}})
    (event,) = _events(CloudWaitTrigger("scripted", {}, 0.01, 10))
    assert (event["status"], event["attempts"]) == ("wake", 1)


def test_times_out_with_the_last_answer(scripted):
    polls = scripted({"done": False, "states": {"x": "pending"}})
    (event,) = _events(CloudWaitTrigger("scripted", {}, 0.01, 3))
    assert event == {"done": False, "states": {"x": "pending"}, "status": "timeout", "attempts": 3}
    assert len(polls) == 3


def test_serializes_by_check_name_and_refuses_unknown_checks():
    trigger = CloudWaitTrigger("backups", {"scopes": []}, 5.0, 7)
    path, kwargs = trigger.serialize()
    assert path == "patchcycle.triggers.waits.CloudWaitTrigger"
    assert kwargs == {
        "check": "backups",
        "payload": {"scopes": []},
        "waiter_delay": 5.0,
        "waiter_max_attempts": 7,
    }
    with pytest.raises(ValueError, match="unknown wait check 'os.system'"):
        CloudWaitTrigger("os.system", {}, 1.0, 1)
