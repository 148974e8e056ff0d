"""One resource's differences, classified: shared by the plan engine and the provider-free engine."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from patchcycle.domain.drift.model import Drift, Source, UncheckedResource, masked
from patchcycle.domain.drift.registry import TypeRule, rule_for
from patchcycle.domain.drift.values import (
    Difference,
    Path,
    format_path,
    leaf_differences,
    normalize,
    same_value,
    touches,
)


@dataclass(frozen=True)
class ResourceSides:
    """One resource as Terraform declares it and as it is live, with what to hide and what to skip."""

    address: str
    type: str
    declared: Mapping[str, Any] | None
    live: Mapping[str, Any] | None
    source: Source
    action: str
    sensitive: tuple[Path, ...] = ()
    unknown: tuple[Path, ...] = ()  # values not known until apply: nothing to compare


def identity_of(rule: TypeRule | None, *objects: Mapping[str, Any] | None) -> dict[str, str]:
    """The attributes that name the live object (the rule's ``identity``, else ``id``), as strings."""
    names = rule.identity if rule else ("id",)
    found: dict[str, str] = {}
    for name in names:
        for obj in objects:
            value = obj.get(name) if obj else None
            if value not in (None, ""):
                found[name] = str(value)
                break
    return found


def attribute_differences(
    rule: TypeRule | None,
    declared: Mapping[str, Any],
    live: Mapping[str, Any],
    only: Collection[str] | None = None,
) -> list[Difference]:
    """Where ``declared`` and ``live`` differ, attribute by attribute.

    ``only``: the attributes to compare (the provider-free engine's registry); otherwise every attribute
    but the rule's ``derived`` ones. A ``value`` attribute is compared leaf by leaf; a document, set or
    encoded attribute as a whole, in its normalized form (:func:`~.values.normalize`).
    """
    names = set(declared) | set(live) if only is None else set(only)
    if rule is not None and only is None:
        names -= set(rule.derived)
    found: list[Difference] = []
    for name in sorted(names):
        kind = rule.kind_of(name) if rule else "value"
        before, after = declared.get(name), live.get(name)
        if kind == "value":
            found += leaf_differences(before, after, (name,))
            continue
        before, after = normalize(kind, before), normalize(kind, after)
        if not same_value(before, after):
            found.append(((name,), before, after))
    return found


def resource_differences(sides: ResourceSides, only: Collection[str] | None = None) -> list[Drift]:
    """Every difference of one resource as :class:`Drift`, classified and with sensitive values masked."""
    rule = rule_for(sides.type)
    identity = identity_of(rule, sides.declared, sides.live)
    whole: list[Difference]
    if sides.declared is None or sides.live is None:
        on_declared = dict(identity) if sides.declared is not None else None
        on_live = dict(identity) if sides.live is not None else None
        whole = [((), on_declared, on_live)]
    else:
        whole = [
            d
            for d in attribute_differences(rule, sides.declared, sides.live, only)
            if not any(d[0][: len(u)] == u for u in sides.unknown)
        ]
    drifts = []
    for path, declared, live in whole:
        drift = Drift(
            address=sides.address,
            type=sides.type,
            path=format_path(path),
            action=sides.action,
            declared=declared,
            live=live,
            classification="owned_by_cycle" if rule and path and rule.owned_by_cycle(path) else "drift",
            source=sides.source,
            identity=identity,
        )
        drifts.append(masked(drift) if path and touches(path, sides.sensitive) else drift)
    return drifts


def unchecked_for(
    address: str, resource_type: str, reason: str, drifts: Iterable[Drift] = ()
) -> UncheckedResource:
    """An unchecked resource, with any differences found for it shown but classified ``unchecked``."""
    shown = tuple(replace(d, classification="unchecked") for d in drifts)
    return UncheckedResource(address=address, type=resource_type, reason=reason, differences=shown)


UNKNOWN_TYPE = "type not in the drift registry: the report does not know which of its fields the cycle owns"
