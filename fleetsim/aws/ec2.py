"""AMIs that take time and can fail, as EC2's do; moto's are ``available`` the moment they exist."""

from __future__ import annotations

import datetime as dt
from typing import Any

from moto.ec2.models.amis import Ami, AmiBackend

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
        seconds = host.backup_seconds if host.backup_seconds is not None else state.timings.ami_pending_seconds
        ami.__dict__["_fleetsim_until"] = now + seconds
        final = "failed" if host.backup_fails else "available"
        ami.__dict__["_fleetsim_state"] = final
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


def install(state: FleetState) -> None:
    """Give AMIs created from fleet hosts a pending period and the scenario's failures."""
    _STATE["fleet"] = state
    Ami.state = property(_state_get, _state_set)  # type: ignore[assignment]
    AmiBackend.create_image = _create_image  # type: ignore[method-assign]
