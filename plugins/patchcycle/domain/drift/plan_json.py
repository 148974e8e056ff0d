"""Engine 1: drift from a Terraform plan, where Terraform and its providers run.

Input: the plan representation of ``terraform show -json <planfile>`` for a plan made with
``terraform plan -refresh-only -detailed-exitcode -out=<planfile>``. (``terraform plan -json`` itself
prints the machine-readable UI stream, whose drift messages name resources but carry no before/after
values; the saved plan's JSON does.) The format is Terraform's documented "JSON Output Format"
(https://developer.hashicorp.com/terraform/internals/json-format):

- ``format_version``: "Reject any input which reports an unsupported major version"; minor versions are
  "backward-compatible changes or additions", so unknown properties are ignored.
- ``resource_drift``: "a description of the changes Terraform detected when it compared the most recent
  state to the prior saved state", with "the same object structure as resource_changes". So ``before`` is
  the prior saved state (what Terraform last applied: the declared side) and ``after`` the refreshed,
  live object. A resource deleted outside Terraform is refreshed away (the AWS provider's reads clear
  the id when the object is not found, e.g. ``resourceLaunchTemplateRead``), which the change
  representation shows as ``["delete"]`` with no ``after``. ``["no-op"]`` entries are move-only
  (Terraform's ``jsonplan`` keeps them in refresh-only mode).
- ``resource_changes``: what Terraform would do to make live objects match the configuration. A
  refresh-only plan has none: Terraform checks that "the set of resource changes should always be empty"
  in that mode (``internal/terraform/context_plan.go``, ``refreshOnlyPlan``). For a normal plan the
  docs do not say how these relate to drift; the conservative reading taken here reports every
  non-``no-op`` change as a difference (``before``: live, ``after``: the configuration), unless the same
  path already came from ``resource_drift``.
- ``before_sensitive``/``after_sensitive``: "should be combined with before and after to prevent
  accidental display of sensitive values"; a difference on or around a sensitive path is masked.
- ``after_unknown``: values not known until apply; nothing to compare there.

Exit codes of ``-detailed-exitcode`` (Terraform docs, "Command: plan"): 0 "Succeeded with empty diff
(no changes)", 1 "Error", 2 "Succeeded with non-empty diff (changes present)". In refresh-only mode the
code has been reported to disagree with the plan (hashicorp/terraform#36403 and #37406: 2 for output
changes; OpenTofu returns 0 with drift, opentofu/opentofu#3107), so the plan's content decides and a
disagreement is noted; exit code 1 means there is no plan to read.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
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
    PlanFailedError,
    ScopeResult,
    Source,
    UncheckedResource,
    UnsupportedPlanFormatError,
)
from patchcycle.domain.drift.registry import rule_for
from patchcycle.domain.drift.values import Path, sensitive_paths

SUPPORTED_MAJOR = 1


class PlanExitStatus(enum.Enum):
    """What ``terraform plan -detailed-exitcode`` says by its exit code."""

    NO_CHANGES = 0
    ERROR = 1
    CHANGES = 2


def plan_exit_status(code: int) -> PlanExitStatus:
    """The meaning of a ``-detailed-exitcode`` exit code; any code but 0 and 2 is an error."""
    if code == 0:
        return PlanExitStatus.NO_CHANGES
    if code == 2:
        return PlanExitStatus.CHANGES
    return PlanExitStatus.ERROR


def check_format_version(plan: Mapping[str, Any]) -> str:
    """The plan's ``format_version``; raises :class:`UnsupportedPlanFormatError` unless its major is 1."""
    version = plan.get("format_version")
    major = str(version).split(".", 1)[0] if isinstance(version, str) else None
    if major != str(SUPPORTED_MAJOR):
        raise UnsupportedPlanFormatError(version)
    return str(version)


def managed_instances(plan: Mapping[str, Any]) -> dict[str, str]:
    """``{address: type}`` of every managed resource instance in the plan's ``prior_state`` (the
    refreshed state: an object deleted outside Terraform is no longer there, only in ``resource_drift``)."""
    values = (plan.get("prior_state") or {}).get("values") or {}
    return {
        r["address"]: r["type"]
        for r in _module_resources(values.get("root_module") or {})
        if r.get("mode", "managed") == "managed"
    }


def _module_resources(module: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from module.get("resources") or ()
    for child in module.get("child_modules") or ():
        yield from _module_resources(child)


def _actions(change: Mapping[str, Any]) -> str:
    actions = list(change.get("actions") or ())
    if sorted(actions) == ["create", "delete"]:
        return "replace"
    return actions[0] if len(actions) == 1 else "+".join(actions) or "missing"


def _sides(entry: Mapping[str, Any], source: Source, action: str) -> ResourceSides:
    change = entry.get("change") or {}
    before, after = change.get("before"), change.get("after")
    marks: list[Path] = sensitive_paths(change.get("before_sensitive")) + sensitive_paths(
        change.get("after_sensitive")
    )
    # resource_drift: before = prior saved state (declared), after = refreshed (live).
    # resource_changes: before = refreshed (live), after = the configuration (declared).
    declared, live = (before, after) if source == "resource_drift" else (after, before)
    return ResourceSides(
        address=str(entry.get("address")),
        type=str(entry.get("type")),
        declared=declared,
        live=live,
        source=source,
        action=action,
        sensitive=tuple(marks),
        unknown=tuple(sensitive_paths(change.get("after_unknown"))),
    )


_UNDERSTOOD: Mapping[Source, frozenset[str]] = {
    "resource_drift": frozenset({"update", "delete"}),
    "resource_changes": frozenset({"update", "delete", "create", "replace"}),
}


def _entry_differences(entry: Mapping[str, Any], source: Source) -> list[Drift] | str:
    """The entry's differences, or the reason they cannot be read."""
    if entry.get("deposed"):
        return f"deposed object {entry['deposed']} in {source}: left to Terraform's next apply"
    action = _actions(entry.get("change") or {})
    if action not in _UNDERSTOOD[source]:
        return f"{source} action {action!r} is not one this reader understands"
    return resource_differences(_sides(entry, source, action))


def read_plan(plan: Mapping[str, Any], *, scope: str, exit_code: int | None = None) -> ScopeResult:
    """Every managed resource of the plan, checked or unchecked, and every difference Terraform found.

    Raises :class:`UnsupportedPlanFormatError` for a format of another major version and
    :class:`PlanFailedError` when ``exit_code`` says the plan failed or Terraform marked it ``errored``
    (a partial plan cannot say a resource is clean).
    """
    if exit_code is not None and plan_exit_status(exit_code) is PlanExitStatus.ERROR:
        raise PlanFailedError(f"terraform plan exited {exit_code}: no plan to read for {scope}")
    if not isinstance(plan, Mapping):
        raise DriftInputError(f"a plan is a JSON object, not {type(plan).__name__}")
    check_format_version(plan)
    if plan.get("errored") is True:
        raise PlanFailedError(f"Terraform marked the plan for {scope} errored: it may be partial")
    types = managed_instances(plan)
    found: dict[str, list[Drift]] = {}
    reasons: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    for source in ("resource_drift", "resource_changes"):
        for entry in _entries(plan, source):
            address = str(entry.get("address"))
            types.setdefault(address, str(entry.get("type")))
            result = _entry_differences(entry, source)
            if isinstance(result, str):
                reasons.setdefault(address, result)
                continue
            fresh = [d for d in result if (d.address, d.path) not in seen and not _covered(d, seen)]
            seen.update((d.address, d.path) for d in fresh)
            found.setdefault(address, []).extend(fresh)
    plan_source = {
        "format_version": plan.get("format_version"),
        "terraform_version": plan.get("terraform_version"),
        "timestamp": plan.get("timestamp"),
        "exit_code": exit_code,
    }
    return replace(_result(scope, types, found, reasons, _notes(plan, exit_code, found)), source=plan_source)


def _entries(plan: Mapping[str, Any], source: Source) -> Sequence[Mapping[str, Any]]:
    return [e for e in plan.get(source) or () if e.get("mode", "managed") == "managed"]


def _covered(drift: Drift, seen: set[tuple[str, str]]) -> bool:
    # A deleted-outside-Terraform object also appears in a normal plan's resource_changes as "create".
    return (drift.address, "") in seen


def _result(
    scope: str,
    types: Mapping[str, str],
    found: Mapping[str, list[Drift]],
    reasons: Mapping[str, str],
    notes: list[str],
) -> ScopeResult:
    checked: list[str] = []
    differences: list[Drift] = []
    unchecked: list[UncheckedResource] = []
    for address, resource_type in sorted(types.items()):
        drifts = found.get(address, [])
        if rule_for(resource_type) is None:
            unchecked.append(unchecked_for(address, resource_type, UNKNOWN_TYPE, drifts))
        elif address in reasons:
            unchecked.append(unchecked_for(address, resource_type, reasons[address], drifts))
        else:
            checked.append(address)
            differences += drifts
    return ScopeResult(
        scope=scope,
        engine="plan_json",
        checked=tuple(checked),
        differences=tuple(differences),
        unchecked=tuple(unchecked),
        notes=tuple(notes),
    )


def _notes(plan: Mapping[str, Any], exit_code: int | None, found: Mapping[str, list[Drift]]) -> list[str]:
    notes = []
    planned = [_actions(e.get("change") or {}) for e in _entries(plan, "resource_changes")]
    if any(action not in ("no-op", "read") for action in planned):
        notes.append("not a refresh-only plan: resource_changes compared the configuration with live objects")
    any_difference = any(found.values())
    if exit_code is not None:
        says_changes = plan_exit_status(exit_code) is PlanExitStatus.CHANGES
        if says_changes != any_difference:
            notes.append(
                f"exit code {exit_code} says {'changes' if says_changes else 'no changes'} but the plan "
                f"shows {'differences' if any_difference else 'none'}: the plan's content was used"
            )
    return notes
