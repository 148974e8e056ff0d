"""Every wait of a cycle, in the triggerer: one trigger class polling one named check.

A check is a plain function of a JSON payload (ids, connection ids, scopes) returning a dict with
``done`` and whatever the completing task needs. Checks run in a thread (the SDKs are synchronous), so
the triggerer's event loop never blocks, and they are looked up by name from :data:`CHECKS`: the
trigger's serialized form (stored in the metadata database) names a check, never an import path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from patchcycle.triggers import checks

CHECKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "backups": checks.backups,
    "run_commands": checks.run_commands,
    "rds_updates": checks.rds_updates,
    "arc_installs": checks.arc_installs,
    "arc_extensions": checks.arc_extensions,
    "osconfig_jobs": checks.osconfig_jobs,
    "os_policy_assignments": checks.os_policy_assignments,
    "health": checks.health,
    "reboots": checks.reboots,
    "restores": checks.restores,
    "falcon_sensors": checks.falcon_sensors,
}


class CloudWaitTrigger(BaseTrigger):
    """Polls ``CHECKS[check](payload)`` every ``waiter_delay`` seconds until done or out of attempts.

    Fires ``{"status": "done", ...}`` with the check's last answer, or ``{"status": "timeout", ...}``.
    A check may also answer ``{"done": False, "wake": True}`` to hand control back to the task early
    (Arc installs do, so the operator can start the next machines as slots free up).
    """

    def __init__(
        self, check: str, payload: dict[str, Any], waiter_delay: float, waiter_max_attempts: int
    ) -> None:
        super().__init__()
        if check not in CHECKS:
            raise ValueError(f"unknown wait check {check!r}; known: {sorted(CHECKS)}")
        self.check = check
        self.payload = payload
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The trigger's class path and arguments, as the triggerer stores it in the metadata database."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "check": self.check,
                "payload": self.payload,
                "waiter_delay": self.waiter_delay,
                "waiter_max_attempts": self.waiter_max_attempts,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait ``waiter_delay``, then poll, once per attempt; fire the first done or wake event, else a
        timeout with the last answer."""
        answer: dict[str, Any] = {}
        for attempt in range(1, self.waiter_max_attempts + 1):
            # Wait first: the task deferred right after it looked (or right after it started the work),
            # so an immediate poll would only cost every cloud another call per item.
            await asyncio.sleep(self.waiter_delay)
            answer = await asyncio.to_thread(CHECKS[self.check], self.payload)
            if (event := wait_event(answer, attempt, self.waiter_max_attempts)) is not None:
                yield TriggerEvent(event)
                return
        yield TriggerEvent(timeout_event(answer, self.waiter_max_attempts))


def wait_event(answer: dict[str, Any], attempt: int, max_attempts: int) -> dict[str, Any] | None:
    """The event a check's answer ends the wait with (``done``, or ``wake`` to hand control back early),
    or None to poll again."""
    if answer.get("done") or answer.get("wake"):
        return {**answer, "status": "done" if answer.get("done") else "wake", "attempts": attempt}
    return None


def timeout_event(answer: dict[str, Any], max_attempts: int) -> dict[str, Any]:
    """The event of a wait out of attempts, with the check's last answer."""
    return {**answer, "status": "timeout", "attempts": max_attempts}


def poll_in_worker(
    check: str,
    payload: dict[str, Any],
    waiter_delay: float,
    waiter_max_attempts: int,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The trigger's loop run in the task itself (``deferrable=False``): the same check, delay and
    attempts, and the same event at the end, so a task completes the same way either way."""
    if check not in CHECKS:
        raise ValueError(f"unknown wait check {check!r}; known: {sorted(CHECKS)}")
    answer: dict[str, Any] = {}
    for attempt in range(1, waiter_max_attempts + 1):
        sleep(waiter_delay)
        answer = CHECKS[check](payload)
        if (event := wait_event(answer, attempt, waiter_max_attempts)) is not None:
            return event
    return timeout_event(answer, waiter_max_attempts)
