"""Launch templates that would start instances Systems Manager never sees: called out before the next cycle.

The paper's 6.1: an image refresh without the SSM agent bootstrap and instance profile left hosts out of a
cycle, found only when they were missing from the inventory. The ``launch_template`` module declares both
(user data that installs, starts and verifies ``amazon-ssm-agent``; an instance profile with
``AmazonSSMManagedInstanceCore``). A launch template's versions are what Auto Scaling groups and
``RunInstances`` launch from (``$Latest``, ``$Default`` or a number), so the drift run reads both the
latest and the default version, and each one that would start an instance without the bootstrap or the
instance profile is a finding, whether or not it is also drift (a new version is drift; an old default
without the bootstrap may not be). Pure.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SSM_AGENT = "amazon-ssm-agent"
"""The SSM agent's package and service name on Amazon Linux (and its snap on Ubuntu): user data that never
names it neither installs nor starts the agent."""

NOTICE = "reported before the next cycle"


@dataclass(frozen=True)
class LaunchVersion:
    """One launch template version the drift run read: which one (``latest``/``default``), its number,
    and its data in the state's shape (``user_data`` base64, ``iam_instance_profile``)."""

    label: str
    number: int | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class LaunchFinding:
    """A launch template version that would start instances without the SSM bootstrap or instance
    profile, and why."""

    scope: str
    address: str
    template: str
    versions: tuple[str, ...]  # e.g. ("latest (4)",) or ("latest (3)", "default (3)")
    problems: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON evidence."""
        return {
            "scope": self.scope,
            "address": self.address,
            "template": self.template,
            "versions": list(self.versions),
            "problems": list(self.problems),
            "notice": NOTICE,
        }

    @property
    def sentence(self) -> str:
        """The finding in one sentence, for the summary and the mail."""
        return (
            f"{self.template} ({self.address}, {self.scope}) version {' and '.join(self.versions)}: "
            f"{'; '.join(self.problems)}. Instances launched from it would not register with Systems "
            f"Manager, so they would be missing from the next cycle's inventory ({NOTICE})."
        )


def user_data_text(value: Any) -> str:
    """A launch template's ``user_data`` (base64, as the API and the state hold it) as text."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return value


def _profile(data: Mapping[str, Any]) -> tuple[str, str] | None:
    blocks = data.get("iam_instance_profile") or []
    if not blocks or not isinstance(blocks[0], Mapping):
        return None
    arn, name = str(blocks[0].get("arn") or ""), str(blocks[0].get("name") or "")
    return (arn, name) if arn or name else None


def version_problems(data: Mapping[str, Any], declared: Mapping[str, Any] | None) -> list[str]:
    """Why instances launched from a version with ``data`` would not register with Systems Manager:
    no mention of the agent in its user data, no instance profile, or an instance profile other than the
    declared one (which may lack ``AmazonSSMManagedInstanceCore``). An attribute ``data`` does not have
    was not read, and says nothing."""
    problems = []
    if "user_data" in data and SSM_AGENT not in user_data_text(data.get("user_data")):
        problems.append(f"its user data neither installs nor starts the SSM agent ({SSM_AGENT})")
    if "iam_instance_profile" not in data:  # not read (an abridged plan): nothing to say
        return problems
    profile = _profile(data)
    wanted = _profile(declared or {})
    if profile is None:
        problems.append("it has no instance profile, so the agent cannot register")
    elif wanted is not None and profile != wanted:
        shown = profile[0] or profile[1]
        problems.append(
            f"its instance profile {shown} is not the declared {wanted[0] or wanted[1]} "
            "(which carries AmazonSSMManagedInstanceCore)"
        )
    return problems


def launch_findings(
    scope: str,
    address: str,
    template: str,
    declared: Mapping[str, Any] | None,
    versions: Iterable[LaunchVersion],
) -> list[LaunchFinding]:
    """The findings of one launch template: one per distinct version read that has a problem (the latest
    and the default version are one finding when they are the same version)."""
    by_number: dict[Any, list[LaunchVersion]] = {}
    for version in versions:
        key = version.number if version.number is not None else version.label
        by_number.setdefault(key, []).append(version)
    found = []
    for same in by_number.values():
        problems = version_problems(same[0].data, declared)
        if problems:
            labels = tuple(f"{v.label} ({v.number})" if v.number is not None else v.label for v in same)
            found.append(LaunchFinding(scope, address, template, labels, tuple(problems)))
    return found


def plan_launch_templates(
    plan: Mapping[str, Any],
) -> list[tuple[str, str, Mapping[str, Any] | None, LaunchVersion]]:
    """``(address, name, declared, latest version)`` of each launch template a refresh-only plan shows: the
    refreshed object (``prior_state``, or its ``resource_drift`` entry's ``after``: what the provider read,
    the latest version) and the declared one (the entry's ``before``, else the refreshed object: no
    drift)."""
    drifts = {
        str(e.get("address")): e.get("change") or {}
        for e in plan.get("resource_drift") or ()
        if e.get("type") == "aws_launch_template"
    }
    before = {address: change.get("before") for address, change in drifts.items()}
    found = []
    modules = [((plan.get("prior_state") or {}).get("values") or {}).get("root_module") or {}]
    while modules:
        module = modules.pop()
        modules.extend(module.get("child_modules") or ())
        for resource in module.get("resources") or ():
            if resource.get("mode", "managed") != "managed" or resource.get("type") != "aws_launch_template":
                continue
            address = str(resource.get("address"))
            # The refreshed object: prior_state's values, or the drift entry's ``after`` (the same object).
            values = {**(resource.get("values") or {}), **(drifts.get(address, {}).get("after") or {})}
            latest = LaunchVersion("latest", values.get("latest_version"), values)
            name = str(values.get("name") or address)
            found.append((address, name, before.get(address) or values, latest))
    return sorted(found, key=lambda f: f[0])
