"""Engine 2, provider-free: the Terraform state file compared with a live view the hooks read.

The state file format has no published documentation ("terraform show -json" is the documented way to
read state, and it needs the providers, which is what this engine avoids). This reader follows the
format as Terraform itself reads it, ``internal/states/statefile/version4.go``: top level ``version``
(4), ``terraform_version``, ``serial``, ``lineage``, ``resources``; each resource ``module`` (absent in
the root module), ``mode`` (``managed``/``data``), ``type``, ``name``, ``provider``, ``instances``; each
instance ``index_key`` (absent, a number or a string), ``status`` (absent or ``tainted``), ``deposed``,
``attributes`` (or the pre-0.12 ``attributes_flat``), and ``sensitive_attributes``: a list of paths, each a
list of steps ``{"type": "get_attr", "value": name}`` or ``{"type": "index", "value": {"value": key,
"type": "number"|"string"}}``. Any other ``version`` is refused: Terraform 0.12 and later write 4.

The live view is the caller's: for each address, the live object's attributes in the state's shape
(the registry's ``compared`` attributes), ``None`` when the object was looked up and is gone, and no
entry when it was not looked up (the resource is then unchecked, never clean).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patchcycle.domain.drift.differences import (
    UNKNOWN_TYPE,
    ResourceSides,
    resource_differences,
    unchecked_for,
)
from patchcycle.domain.drift.model import (
    Drift,
    DriftInputError,
    ScopeResult,
    UncheckedResource,
    UnsupportedStateVersionError,
)
from patchcycle.domain.drift.registry import AttributeRule, rule_for
from patchcycle.domain.drift.values import Path

SUPPORTED_VERSION = 4


@dataclass(frozen=True)
class StateInstance:
    """One resource instance object in a state file."""

    address: str
    mode: str
    type: str
    name: str
    provider: str
    attributes: Mapping[str, Any] | None  # None: only pre-0.12 flatmap attributes
    sensitive_paths: tuple[Path, ...] | None = ()  # None: unreadable, so everything is hidden
    status: str | None = None
    deposed: str | None = None


@dataclass(frozen=True)
class TerraformState:
    """A state file (format version 4): its identity and its resource instances."""

    terraform_version: str | None
    serial: int
    lineage: str
    instances: tuple[StateInstance, ...]

    def managed(self) -> tuple[StateInstance, ...]:
        """The managed instances' current objects (data sources and deposed objects left out)."""
        return tuple(i for i in self.instances if i.mode == "managed" and not i.deposed)


def read_state(document: Mapping[str, Any]) -> TerraformState:
    """The state file ``document`` (parsed JSON); raises :class:`UnsupportedStateVersionError` unless
    its ``version`` is 4, :class:`DriftInputError` when it is not a state at all."""
    if not isinstance(document, Mapping):
        raise DriftInputError(f"a state file is a JSON object, not {type(document).__name__}")
    version = document.get("version")
    if type(version) is not int or version != SUPPORTED_VERSION:
        raise UnsupportedStateVersionError(version)
    resources = document.get("resources")
    if not isinstance(resources, list):
        raise DriftInputError("state file has no resources list")
    serial = document.get("serial", 0)
    if type(serial) is not int:
        raise DriftInputError(f"state file serial {serial!r} is not a number")
    return TerraformState(
        terraform_version=document.get("terraform_version"),
        serial=serial,
        lineage=str(document.get("lineage") or ""),
        instances=tuple(i for r in resources for i in _instances(r)),
    )


def _instances(resource: Mapping[str, Any]) -> list[StateInstance]:
    mode = str(resource.get("mode"))
    base = f"{'data.' if mode == 'data' else ''}{resource.get('type')}.{resource.get('name')}"
    if resource.get("module"):
        base = f"{resource['module']}.{base}"
    return [
        StateInstance(
            address=base + _index(raw.get("index_key")),
            mode=mode,
            type=str(resource.get("type")),
            name=str(resource.get("name")),
            provider=str(resource.get("provider")),
            attributes=raw.get("attributes") if isinstance(raw.get("attributes"), Mapping) else None,
            sensitive_paths=_sensitive(raw.get("sensitive_attributes")),
            status=raw.get("status"),
            deposed=raw.get("deposed"),
        )
        for raw in resource.get("instances") or ()
    ]


def _index(key: Any) -> str:
    if key is None:
        return ""
    return f"[{key}]" if isinstance(key, int) else f"[{json.dumps(str(key))}]"


def _sensitive(raw: Any) -> tuple[Path, ...] | None:
    if raw is None:
        return ()
    try:
        return tuple(tuple(_step(step) for step in path) for path in raw)
    except (TypeError, KeyError, ValueError):
        return None


def _step(step: Mapping[str, Any]) -> str | int:
    if step["type"] == "get_attr":
        return str(step["value"])
    if step["type"] != "index":
        raise ValueError(f"unknown path step {step['type']!r}")
    key = step["value"]["value"] if isinstance(step["value"], Mapping) else step["value"]
    return key if isinstance(key, int | str) else int(key)


def compare(
    state_resource: StateInstance,
    live_attributes: Mapping[str, Any] | None,
    comparable_attributes: Sequence[AttributeRule] | None = None,
) -> tuple[Drift, ...]:
    """The differences between one state instance and its live view (``None``: deleted outside
    Terraform), over ``comparable_attributes`` (by default the registry's for its type)."""
    rule = rule_for(state_resource.type)
    if comparable_attributes is None:
        if rule is None:
            raise ValueError(f"{state_resource.type} is not in the drift registry: no attributes to compare")
        comparable_attributes = rule.compared
    if state_resource.attributes is None:
        raise ValueError(f"{state_resource.address} has only pre-0.12 flatmap attributes")
    hide_all = state_resource.sensitive_paths is None
    sides = ResourceSides(
        address=state_resource.address,
        type=state_resource.type,
        declared=state_resource.attributes,
        live=live_attributes,
        source="state",
        action="delete" if live_attributes is None else "update",
        sensitive=((),) if hide_all else tuple(state_resource.sensitive_paths or ()),
    )
    return tuple(resource_differences(sides, only=[a.name for a in comparable_attributes]))


def compare_state(
    state: TerraformState, live: Mapping[str, Mapping[str, Any] | None], *, scope: str
) -> ScopeResult:
    """Every managed resource of ``state`` compared with ``live`` (address -> live attributes, or None
    when the object is gone): checked, or unchecked with the reason."""
    checked: list[str] = []
    differences: list[Drift] = []
    unchecked: list[UncheckedResource] = []
    notes: list[str] = []
    for instance in state.managed():
        reason = _unchecked_reason(instance, live)
        if reason:
            unchecked.append(unchecked_for(instance.address, instance.type, reason))
            continue
        checked.append(instance.address)
        differences += compare(instance, live[instance.address])
        if instance.status == "tainted":
            notes.append(f"{instance.address} is tainted: Terraform will replace it at the next apply")
    unchecked += [
        unchecked_for(i.address, i.type, f"deposed object {i.deposed}: left to Terraform's next apply")
        for i in state.instances
        if i.mode == "managed" and i.deposed
    ]
    return ScopeResult(
        scope=scope,
        engine="state_compare",
        checked=tuple(checked),
        differences=tuple(differences),
        unchecked=tuple(unchecked),
        notes=tuple(notes),
        source={
            "lineage": state.lineage,
            "serial": state.serial,
            "terraform_version": state.terraform_version,
        },
    )


def _unchecked_reason(instance: StateInstance, live: Mapping[str, Mapping[str, Any] | None]) -> str | None:
    if rule_for(instance.type) is None:
        return UNKNOWN_TYPE
    if instance.attributes is None:
        return "only pre-0.12 flatmap attributes in the state: nothing to compare"
    if instance.address not in live:
        return "no live view was read for it"
    return None
