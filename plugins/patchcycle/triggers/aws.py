"""Waits on AWS, in the triggerer: AMI backups becoming available, Run Command finishing.

Each poll is one batched call per account and region, run in a thread so the triggerer's event loop
never blocks on boto3. Terminal states are data (the sets below), read by one function per wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

AMI_TERMINAL = {
    "available": "ready",
    "failed": "failed",
    "invalid": "failed",
    "deregistered": "failed",
    "error": "failed",
}
COMMAND_TERMINAL = {"Success", "Failed", "Cancelled", "TimedOut"}


def ami_states(scopes: list[dict[str, Any]]) -> dict[str, str]:
    """State of every awaited AMI, one DescribeImages (by tag) per account and region."""
    from patchcycle.hooks.aws import Ec2BackupHook

    states: dict[str, str] = {}
    for scope in scopes:
        hook = Ec2BackupHook(aws_conn_id=scope["conn_id"], region_name=scope["region"])
        seen = {img["ImageId"]: img["State"] for img in hook.images_tagged(scope["tags"])}
        for image_id in scope["image_ids"]:
            states[image_id] = seen.get(image_id, "missing")
    return states


def command_states(commands: list[dict[str, Any]]) -> dict[str, str]:
    from patchcycle.hooks.aws import SsmFleetHook

    return {
        c["command_id"]: SsmFleetHook(aws_conn_id=c["conn_id"], region_name=c["region"]).command(
            c["command_id"]
        )["Status"]
        for c in commands
    }


class AmiBackupsTrigger(BaseTrigger):
    """Fires when no awaited AMI is pending any more, or when the attempts run out."""

    def __init__(self, scopes: list[dict[str, Any]], waiter_delay: float, waiter_max_attempts: int) -> None:
        super().__init__()
        self.scopes = scopes
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "scopes": self.scopes,
                "waiter_delay": self.waiter_delay,
                "waiter_max_attempts": self.waiter_max_attempts,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        states: dict[str, str] = {}
        for attempt in range(1, self.waiter_max_attempts + 1):
            states = await asyncio.to_thread(ami_states, self.scopes)
            if all(s in AMI_TERMINAL for s in states.values()):
                yield TriggerEvent({"status": "done", "images": states, "attempts": attempt})
                return
            await asyncio.sleep(self.waiter_delay)
        yield TriggerEvent({"status": "timeout", "images": states, "attempts": self.waiter_max_attempts})


class RunCommandTrigger(BaseTrigger):
    """Fires when every command of a stage has reached a terminal status, or the attempts run out."""

    def __init__(self, commands: list[dict[str, Any]], waiter_delay: float, waiter_max_attempts: int) -> None:
        super().__init__()
        self.commands = commands
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "commands": self.commands,
                "waiter_delay": self.waiter_delay,
                "waiter_max_attempts": self.waiter_max_attempts,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        states: dict[str, str] = {}
        for attempt in range(1, self.waiter_max_attempts + 1):
            states = await asyncio.to_thread(command_states, self.commands)
            if all(s in COMMAND_TERMINAL for s in states.values()):
                yield TriggerEvent({"status": "done", "commands": states, "attempts": attempt})
                return
            await asyncio.sleep(self.waiter_delay)
        yield TriggerEvent({"status": "timeout", "commands": states, "attempts": self.waiter_max_attempts})
