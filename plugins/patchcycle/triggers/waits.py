"""Every wait of a cycle, in the triggerer: one trigger class polling one named check.

A check is a plain function of a JSON payload (ids, connection ids, scopes) returning a dict with
``done`` and whatever the completing task needs. Checks run in a thread (the SDKs are synchronous), so
the triggerer's event loop never blocks, and they are looked up by name from :data:`CHECKS`: the
trigger's serialized form (stored in the metadata database) names a check, never an import path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from patchcycle.triggers import checks

CHECKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "backups": checks.backups,
    "run_commands": checks.run_commands,
    "rds_updates": checks.rds_updates,
    "arc_installs": checks.arc_installs,
    "osconfig_jobs": checks.osconfig_jobs,
    "health": checks.health,
    "reboots": checks.reboots,
    "restores": checks.restores,
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
        answer: dict[str, Any] = {}
        for attempt in range(1, self.waiter_max_attempts + 1):
            # Wait first: the task deferred right after it looked (or right after it started the work),
            # so an immediate poll would only cost every cloud another call per item.
            await asyncio.sleep(self.waiter_delay)
            answer = await asyncio.to_thread(CHECKS[self.check], self.payload)
            if answer.get("done") or answer.get("wake"):
                yield TriggerEvent(
                    {**answer, "status": "done" if answer.get("done") else "wake", "attempts": attempt}
                )
                return
        yield TriggerEvent({**answer, "status": "timeout", "attempts": self.waiter_max_attempts})
