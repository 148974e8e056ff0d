"""AMIs that take time and can fail, as EC2's do; moto's are ``available`` the moment they exist."""

from __future__ import annotations

import datetime as dt
from typing import Any

from moto.ec2.models.amis import Ami, AmiBackend
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

from fleetsim.fleet import FleetState

_STATE: dict[str, FleetState] = {}


def _state_get(ami: Ami) -> str:
    until = ami.__dict__.get("_fleetsim_until")
    state = _STATE.get("fleet")
    if until is not None and state is not None and state.clock() < until:
        return "pending"
    return ami.__dict__.get("_fleetsim_state", "available")


def _state_set(ami: Ami, value: str) -> None:
    ami.__dict__["_fleetsim_state"] = value


_original_create_image = AmiBackend.create_image


def _create_image(self: Any, instance_id: str, name: str, description: str, tag_specifications: Any) -> Ami:
    ami = _original_create_image(self, instance_id, name, description, tag_specifications)
    state = _STATE.get("fleet")
    if state is None:
        return ami
    with state.lock:
        host = state.host_by_id.get(instance_id)
        if host is None:
            return ami
        now = state.clock()
        seconds = (
            host.backup_seconds if host.backup_seconds is not None else state.timings.ami_pending_seconds
        )
        ami.__dict__["_fleetsim_until"] = now + seconds
        final = "failed" if host.backup_fails else "available"
        ami.__dict__["_fleetsim_state"] = final
        # What the image holds: a root volume replacement from it restores exactly this.
        ami.__dict__["_fleetsim_backup"] = state.backup_state(host)
        host.actions.append(
            {
                "at": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(),
                "action": "ec2.create_image",
                "image_id": ami.id,
                "result": final,
                "ready_at": dt.datetime.fromtimestamp(now + seconds, dt.UTC).isoformat(),
            }
        )
    return ami


def _snapshot_status_get(snapshot: Snapshot) -> str:
    until = snapshot.__dict__.get("_fleetsim_until")
    state = _STATE.get("fleet")
    if until is not None and state is not None and state.clock() < until:
        return "pending"
    return snapshot.__dict__.get("_fleetsim_state", "completed")


def _snapshot_status_set(snapshot: Snapshot, value: str) -> None:
    snapshot.__dict__["_fleetsim_state"] = value


def _snapshot_progress(snapshot: Snapshot) -> str:
    return {"pending": "0%", "error": "0%"}.get(snapshot.status, "100%")


_original_create_snapshot = EBSBackend.create_snapshot


def _create_snapshot(self: Any, volume_id: str, description: str, *args: Any, **kwargs: Any) -> Snapshot:
    """EBS snapshots of a fleet host's volume: pending for a while, then completed (or error)."""
    snapshot = _original_create_snapshot(self, volume_id, description, *args, **kwargs)
    state = _STATE.get("fleet")
    attachment = getattr(snapshot.volume, "attachment", None)
    instance = getattr(attachment, "instance", None)
    host = state.host_by_id.get(instance.id) if state is not None and instance is not None else None
    if host is None:
        return snapshot
    with state.lock:
        now = state.clock()
        seconds = (
            host.backup_seconds if host.backup_seconds is not None else state.timings.ami_pending_seconds
        )
        snapshot.__dict__["_fleetsim_until"] = now + seconds
        final = "error" if host.backup_fails else "completed"
        snapshot.__dict__["_fleetsim_state"] = final
        host.actions.append(
            {
                "at": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(),
                "action": "ec2.create_snapshot",
                "snapshot_id": snapshot.id,
                "volume_id": volume_id,
                "result": final,
                "ready_at": dt.datetime.fromtimestamp(now + seconds, dt.UTC).isoformat(),
            }
        )
    return snapshot


def _resource_tags(self: TaggedEC2Resource) -> list[dict[str, str]]:
    """A resource's own tags by dict lookup.

    moto answers this by scanning every tag in the region with regular expressions, so describing N
    tagged resources costs O(N x all tags); with thousands of hosts and their AMIs a tag-filtered
    DescribeImages took minutes. Same result, O(tags of this resource).
    """
    resource_id = getattr(self, "id", None)
    tags = self.ec2_backend.tags.get(resource_id) if resource_id else None  # type: ignore[attr-defined]
    if not tags:
        return []
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
    return [
        {"resource_id": resource_id, "key": k, "value": v, "resource_type": resource_type}
        for k, v in tags.items()
    ]


def install(state: FleetState) -> None:
    """Give AMIs created from fleet hosts a pending period and the scenario's failures; fast tag lookups."""
    _STATE["fleet"] = state
    TaggedEC2Resource.get_tags = _resource_tags  # type: ignore[method-assign]
    Snapshot.status = property(_snapshot_status_get, _snapshot_status_set)  # type: ignore[assignment]
    Snapshot.progress = property(_snapshot_progress)  # type: ignore[assignment]
    EBSBackend.create_snapshot = _create_snapshot  # type: ignore[method-assign]
    Ami.state = property(_state_get, _state_set)  # type: ignore[assignment]
    AmiBackend.create_image = _create_image  # type: ignore[method-assign]
