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


# -- Auto Scaling groups ---------------------------------------------------------------------------------
# EC2 Auto Scaling DescribeAutoScalingGroups
# (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeAutoScalingGroups.html): a group
# launches from ``LaunchTemplate`` (a LaunchTemplateSpecification: ``LaunchTemplateId`` or
# ``LaunchTemplateName``, and ``Version``: a number, ``$Latest`` or ``$Default``; "If you do not specify a
# value, the default is $Default", API_LaunchTemplateSpecification.html), or from
# ``MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification`` (the same shape), or from a legacy
# launch configuration (``LaunchConfigurationName``, read with DescribeLaunchConfigurations: ``UserData``
# base64, ``IamInstanceProfile`` a name or an ARN).
#
# Which groups are the tenant's, consistently with the launch template check (which judges the templates
# the tenant's Terraform state manages): a group whose launch template (by id or by name) is one the
# state of the scope manages, or a group tagged ``patchcycle:tenant`` with the tenant's id (the
# compliance tag the tenant's resources carry; the only way a group on a launch configuration, which no
# state template names, can be the tenant's). Other groups of the account are left alone.

TENANT_TAG = "patchcycle:tenant"
DEFAULT_VERSION = "$Default"


@dataclass(frozen=True)
class GroupLaunch:
    """What one Auto Scaling group launches from, as DescribeAutoScalingGroups gives it."""

    name: str
    template_id: str | None
    template_name: str | None
    version: str  # a number, "$Latest" or "$Default"
    launch_configuration: str | None
    tags: Mapping[str, str]

    @property
    def source(self) -> str:
        """What the group launches from, in words."""
        if self.launch_configuration:
            return f"launch configuration {self.launch_configuration}"
        if self.template_id or self.template_name:
            return f"launch template {self.template_name or self.template_id} version {self.version}"
        return "nothing it names"


def group_launch(group: Mapping[str, Any]) -> GroupLaunch:
    """A DescribeAutoScalingGroups group's launch source: its ``LaunchTemplate``, else its mixed instances
    policy's launch template, else its launch configuration."""
    spec = group.get("LaunchTemplate") or (
        ((group.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}).get(
            "LaunchTemplateSpecification"
        )
        or {}
    )
    tags = {
        str(t.get("Key")): str(t.get("Value") or "")
        for t in group.get("Tags") or ()
        if isinstance(t, Mapping) and t.get("Key")
    }
    return GroupLaunch(
        name=str(group.get("AutoScalingGroupName") or ""),
        template_id=spec.get("LaunchTemplateId") or None,
        template_name=spec.get("LaunchTemplateName") or None,
        version=str(spec.get("Version") or DEFAULT_VERSION),
        launch_configuration=None if spec else (group.get("LaunchConfigurationName") or None),
        tags=tags,
    )


def tenants_group(launch: GroupLaunch, tenant_id: str, managed_templates: Iterable[str]) -> bool:
    """Whether the group is the tenant's: its launch template's id or name is one of
    ``managed_templates`` (the ids and names of the templates the scope's state manages), or it carries
    the tenant's ``patchcycle:tenant`` tag."""
    managed = set(managed_templates)
    if launch.template_id in managed or launch.template_name in managed:
        return True
    return launch.tags.get(TENANT_TAG) == tenant_id


def launch_configuration_data(configuration: Mapping[str, Any]) -> dict[str, Any]:
    """A DescribeLaunchConfigurations launch configuration in a launch template's state shape
    (``user_data`` base64, ``iam_instance_profile`` blocks with the ARN or the name)."""
    profile = str(configuration.get("IamInstanceProfile") or "")
    blocks = [{"arn": profile, "name": ""} if profile.startswith("arn:") else {"arn": "", "name": profile}]
    return {
        "user_data": configuration.get("UserData") or "",
        "iam_instance_profile": blocks if profile else [],
    }


@dataclass(frozen=True)
class GroupFinding:
    """An Auto Scaling group that would start instances without the SSM bootstrap or instance profile
    (or whose launch source could not be checked: never counted as clean), and why."""

    scope: str
    group: str
    source: str  # e.g. "launch template fleet (aws_launch_template.fleet) version 3"
    problems: tuple[str, ...]
    checked: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON evidence."""
        return {
            "scope": self.scope,
            "group": self.group,
            "source": self.source,
            "problems": list(self.problems),
            "checked": self.checked,
            "notice": NOTICE,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupFinding:
        """The finding from its JSON evidence."""
        return cls(
            scope=str(data["scope"]),
            group=str(data["group"]),
            source=str(data["source"]),
            problems=tuple(str(p) for p in data.get("problems") or ()),
            checked=bool(data.get("checked", True)),
        )

    @property
    def sentence(self) -> str:
        """The finding in one sentence, for the summary and the mail."""
        if not self.checked:
            return (
                f"Auto Scaling group {self.group} ({self.scope}) launching from {self.source}: "
                f"{'; '.join(self.problems)} ({NOTICE}; not counted as clean)."
            )
        return (
            f"Auto Scaling group {self.group} ({self.scope}) launches from {self.source}: "
            f"{'; '.join(self.problems)}. The instances it starts would not register with Systems "
            f"Manager, so they would be missing from the next cycle's inventory ({NOTICE})."
        )


def group_findings(
    scope: str,
    launch: GroupLaunch,
    source: str,
    declared: Mapping[str, Any] | None,
    launched: LaunchVersion | None,
    unread: str | None = None,
) -> list[GroupFinding]:
    """The finding of one of the tenant's groups, judged as a launch template version is
    (:func:`version_problems`) on what it would really launch: ``launched``, the version its ``Version``
    resolves to (a group pinned to an old version is judged on that version, whatever the template's
    latest and default are) or its launch configuration's data. ``declared`` is the template the state
    declares (None: any instance profile will do, as long as there is one). ``launched`` None means it
    could not be read (``unread`` says why): a finding marked not checked, never clean."""
    if launched is None:
        why = unread or f"not checked: {launch.source} could not be read"
        return [GroupFinding(scope, launch.name, source, (why,), checked=False)]
    problems = version_problems(launched.data, declared)
    return [GroupFinding(scope, launch.name, source, tuple(problems))] if problems else []
