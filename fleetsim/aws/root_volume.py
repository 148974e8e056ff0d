"""EC2 root volume replacement from an AMI, which moto lacks: ``CreateReplaceRootVolumeTask`` and
``DescribeReplaceRootVolumeTasks``, installed onto moto's EC2 response class.

A task replaces a running instance's root volume with a new one restored from an AMI (Patchcycle's
pre-patch backup), then the instance boots from it. As EC2 documents, it is ``pending`` while the
replacement volume is created, ``in-progress`` while the volumes are swapped and the instance reboots,
then ``succeeded``. fleetsim takes ``timings.ami_pending_seconds`` for the first and the upper
``timings.invocation_seconds`` for the second. When it succeeds the host is restored to what the AMI
captured when it was created (:meth:`fleetsim.fleet.FleetState.restore`, ground-truth action
``ec2.replace_root_volume``); the effect is applied once, whenever the fleet next advances.

Refused as EC2 refuses them: an unknown instance (``InvalidInstanceID.NotFound``), an unknown AMI
(``InvalidAMIID.NotFound``), an AMI that is not ``available`` (``InvalidAMIID.Unavailable``: a pending
or failed backup cannot be restored), an instance that already has a task in flight
(``IncorrectState``). ``ClientToken`` makes a retried create return the first task. An AMI that did not
come from a fleet host (no captured state) fails the task (``failed``: the original volume stays).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ec2.responses import EC2Response

from fleetsim.fleet import BackupState, FleetState, SimHost

TERMINAL_STATES = frozenset({"succeeded", "failed", "failed-detached"})
DESCRIBE_MAX_RESULTS = 50  # DescribeReplaceRootVolumeTasks' documented maximum


class EC2Error(ServiceException):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


@dataclass
class ReplaceRootVolumeTask:
    task_id: str
    account: str
    region: str
    instance_id: str
    image_id: str
    host: SimHost | None
    backup: BackupState | None
    started_at: float
    in_progress_at: float
    ends_at: float
    delete_replaced: bool
    tags: list[dict[str, str]] = field(default_factory=list)
    applied: bool = False

    @property
    def outcome(self) -> str:
        return "succeeded" if self.host is not None and self.backup is not None else "failed"

    def state_at(self, now: float) -> str:
        if now >= self.ends_at:
            return self.outcome
        return "in-progress" if now >= self.in_progress_at else "pending"


@dataclass
class _Registry:
    tasks: dict[str, ReplaceRootVolumeTask] = field(default_factory=dict)
    by_token: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (account, region, token)


_STATE: dict[str, Any] = {}


def _fleet() -> FleetState:
    return _STATE["fleet"]


def _registry() -> _Registry:
    return _STATE["registry"]


def _ts(seconds: float) -> str:
    return (
        dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _apply_due(now: float) -> None:
    """Restore the hosts whose task has succeeded by ``now`` (once each)."""
    state = _fleet()
    for task in _registry().tasks.values():
        if task.applied or now < task.ends_at:
            continue
        task.applied = True
        if task.outcome == "succeeded" and task.host is not None and task.backup is not None:
            state.restore(
                task.host,
                task.backup,
                action="ec2.replace_root_volume",
                task_id=task.task_id,
                image_id=task.image_id,
            )


def _task_json(task: ReplaceRootVolumeTask, now: float) -> dict[str, Any]:
    status = task.state_at(now)
    body: dict[str, Any] = {
        "ReplaceRootVolumeTaskId": task.task_id,
        "InstanceId": task.instance_id,
        "TaskState": status,
        "StartTime": _ts(task.started_at),
        "ImageId": task.image_id,
        "DeleteReplacedRootVolume": task.delete_replaced,
        "Tags": task.tags,
    }
    if status in TERMINAL_STATES:
        body["CompleteTime"] = _ts(task.ends_at)
    return body


def _create_replace_root_volume_task(self: EC2Response) -> ActionResult:
    state = _fleet()
    instance_id = self._get_param("InstanceId")
    image_id = self._get_param("ImageId")
    token = self._get_param("ClientToken")
    self.error_on_dryrun()
    if not image_id:
        # Restoring to the launch state or from a snapshot is not emulated: Patchcycle restores from AMIs.
        raise EC2Error("InvalidParameterCombination", "fleetsim emulates replacement from an ImageId only")
    account, region = self.current_account, self.region
    registry = _registry()
    with state.lock:
        now = state.advance()
        if token and (account, region, token) in registry.by_token:
            task = registry.tasks[registry.by_token[(account, region, token)]]
            return ActionResult({"ReplaceRootVolumeTask": _task_json(task, now)})
        host = state.host(account, region, instance_id)
        if host is None:
            self.ec2_backend.get_instance(instance_id)  # InvalidInstanceID.NotFound for an unknown id
        ami = self.ec2_backend.amis.get(image_id)
        if ami is None:
            raise EC2Error("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")
        if ami.state != "available":
            raise EC2Error(
                "InvalidAMIID.Unavailable",
                f"The image '{image_id}' is {ami.state}; only an available AMI can be restored",
            )
        for other in registry.tasks.values():
            if (other.account, other.region, other.instance_id) == (account, region, instance_id) and (
                other.state_at(now) not in TERMINAL_STATES
            ):
                raise EC2Error(
                    "IncorrectState",
                    f"Instance '{instance_id}' has root volume replacement {other.task_id} in progress",
                )
        digest = hashlib.sha256(f"{account}|{region}|{instance_id}|{image_id}|{now}".encode()).hexdigest()
        timings = state.timings
        tags = [
            {"Key": t["Key"], "Value": t["Value"]}
            for spec in self._get_param("TagSpecifications", [])
            for t in spec.get("Tags", [])
        ]
        task = ReplaceRootVolumeTask(
            task_id=f"replacevol-{digest[:17]}",
            account=account,
            region=region,
            instance_id=instance_id,
            image_id=image_id,
            host=host,
            backup=ami.__dict__.get("_fleetsim_backup"),
            started_at=now,
            in_progress_at=now + timings.ami_pending_seconds,
            ends_at=now + timings.ami_pending_seconds + timings.invocation_seconds[1],
            delete_replaced=bool(self._get_param("DeleteReplacedRootVolume", False)),
            tags=tags,
        )
        registry.tasks[task.task_id] = task
        if token:
            registry.by_token[(account, region, token)] = task.task_id
        if host is not None:
            host.actions.append(
                {
                    "at": _ts(now),
                    "action": "ec2.create_replace_root_volume_task",
                    "task_id": task.task_id,
                    "image_id": image_id,
                    "result": task.outcome,
                }
            )
        return ActionResult({"ReplaceRootVolumeTask": _task_json(task, now)})


def _describe_replace_root_volume_tasks(self: EC2Response) -> ActionResult:
    state = _fleet()
    ids = self._get_param("ReplaceRootVolumeTaskIds", [])
    filters = self._filters_from_querystring()
    self.error_on_dryrun()
    unknown = [f for f in filters if f != "instance-id"]
    if unknown:
        raise EC2Error("InvalidParameterValue", f"The filter '{unknown[0]}' is invalid")
    raw_max = self._get_param("MaxResults")
    size = DESCRIBE_MAX_RESULTS if raw_max is None else int(raw_max)
    if not 1 <= size <= DESCRIBE_MAX_RESULTS:
        raise EC2Error("InvalidParameterValue", f"MaxResults must be between 1 and {DESCRIBE_MAX_RESULTS}")
    account, region = self.current_account, self.region
    registry = _registry()
    with state.lock:
        now = state.advance()
        tasks = [t for t in registry.tasks.values() if (t.account, t.region) == (account, region)]
        if ids:
            missing = [i for i in ids if i not in registry.tasks or registry.tasks[i] not in tasks]
            if missing:
                raise EC2Error(
                    "InvalidReplaceRootVolumeTaskId.NotFound",
                    f"The root volume replacement task ID '{missing[0]}' does not exist",
                )
            tasks = [registry.tasks[i] for i in ids]
        if "instance-id" in filters:
            tasks = [t for t in tasks if t.instance_id in filters["instance-id"]]
        tasks.sort(key=lambda t: (t.started_at, t.task_id))
        token = self._get_param("NextToken")
        start = int(token) if token else 0
        page = tasks[start : start + size]
        body: dict[str, Any] = {"ReplaceRootVolumeTasks": [_task_json(t, now) for t in page]}
        if start + size < len(tasks):
            body["NextToken"] = str(start + size)
        return ActionResult(body)


def install(state: FleetState) -> None:
    """Serve root volume replacement on moto's EC2 over ``state``'s fleet; apply restores as it advances."""
    _STATE["fleet"] = state
    _STATE["registry"] = _Registry()
    state.on_advance(_apply_due)
    EC2Response.create_replace_root_volume_task = _create_replace_root_volume_task  # type: ignore[attr-defined]
    EC2Response.describe_replace_root_volume_tasks = _describe_replace_root_volume_tasks  # type: ignore[attr-defined]
