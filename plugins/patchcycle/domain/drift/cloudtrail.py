"""Who changed a drifted resource: the latest CloudTrail write event that touched it.

Input: the ``Events`` of CloudTrail ``LookupEvents`` responses (API Reference, ``Event``): ``EventId``,
``EventName``, ``ReadOnly`` ("whether the event is a write event or a read event"), ``EventTime``,
``Username`` ("a user name or role name of the requester"), ``Resources`` (``ResourceType``,
``ResourceName``) and ``CloudTrailEvent`` ("a JSON string that contains a representation of the event
returned"). That string is a CloudTrail record: its ``userIdentity`` (``type``, ``arn``, ``userName``,
``sessionContext.sessionIssuer``; CloudTrail userIdentity element), ``requestParameters`` ("the
parameters, if any, that were sent with the request", as in the service's API reference),
``sourceIPAddress`` and, for a call that failed, ``errorCode``.

Decisions where the documentation is silent:
- The request parameters' spelling and nesting vary by service (IAM ``roleName``; EC2 wraps the request,
  ``CreateLaunchTemplateVersionRequest.LaunchTemplateId``), so a parameter is looked up by name
  case-insensitively at the shallowest depth it appears.
- ``Resources`` is documented as possibly empty or with a null type, and its type names are given as
  examples only ("Instance for EC2"), so it is a fallback (every identifying value must be among its
  ``ResourceName``\\ s), used when the record has no request parameters.
- A call with an ``errorCode`` changed nothing and is skipped; so is an event marked read-only.
- The caller may exclude principals (Terraform's own role, the cycle's orchestrator, whose monthly
  ``UpdatePatchBaseline`` would otherwise hide the person who changed a baseline's compliance level).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from typing import Any

from patchcycle.domain.drift.model import ChangeAuthor, Drift, ScopeResult
from patchcycle.domain.drift.registry import TypeRule, rule_for


def event_time(value: Any) -> dt.datetime | None:
    """``EventTime`` as an aware datetime: a datetime (boto3), epoch seconds (the wire) or ISO 8601."""
    when: dt.datetime | None = None
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        when = dt.datetime.fromtimestamp(value, tz=dt.UTC)
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when


def _record(event: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = event.get("CloudTrailEvent")
    if isinstance(raw, Mapping):
        return raw
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, Mapping) else {}


def request_parameter(parameters: Any, name: str) -> Any:
    """The value of request parameter ``name`` (any case), at the shallowest depth it appears."""
    level = [parameters]
    wanted = name.lower()
    while level:
        deeper: list[Any] = []
        for node in level:
            if isinstance(node, Mapping):
                for key, value in node.items():
                    if str(key).lower() == wanted:
                        return value
                    deeper.append(value)
        level = deeper
    return None


def _names_resource(rule: TypeRule, identity: Mapping[str, str], event: Mapping[str, Any]) -> bool:
    parameters = _record(event).get("requestParameters")
    if isinstance(parameters, Mapping) and parameters:
        return any(
            all(
                attribute in identity and str(request_parameter(parameters, key)) == identity[attribute]
                for key, attribute in match
            )
            for match in rule.event_match
        )
    names = {r.get("ResourceName") for r in event.get("Resources") or () if isinstance(r, Mapping)}
    return any(all(identity.get(attribute) in names for _, attribute in match) for match in rule.event_match)


def _author(event: Mapping[str, Any], when: dt.datetime) -> ChangeAuthor:
    record = _record(event)
    who = record.get("userIdentity") or {}
    issuer = ((who.get("sessionContext") or {}).get("sessionIssuer") or {}).get("arn")
    return ChangeAuthor(
        event_id=event.get("EventId"),
        event_name=str(event.get("EventName")),
        event_time=when,
        username=event.get("Username") or who.get("userName"),
        principal_arn=who.get("arn"),
        identity_type=who.get("type"),
        session_issuer_arn=issuer,
        source_ip_address=record.get("sourceIPAddress"),
    )


def _excluded(event: Mapping[str, Any], exclude: Collection[str]) -> bool:
    who = _record(event).get("userIdentity") or {}
    issuer = ((who.get("sessionContext") or {}).get("sessionIssuer") or {}).get("arn")
    return bool({event.get("Username"), who.get("arn"), issuer} & set(exclude))


def who_changed(
    resource_type: str,
    identity: Mapping[str, str],
    events: Iterable[Mapping[str, Any]],
    *,
    exclude_principals: Collection[str] = (),
    not_after: dt.datetime | None = None,
) -> ChangeAuthor | None:
    """The author of the latest write event on the resource named by ``identity``, or None.

    A write event is one of the type's ``write_events`` (see the registry), not read-only, without an
    ``errorCode``, at or before ``not_after``, by none of ``exclude_principals`` (user names or ARNs).
    """
    rule = rule_for(resource_type)
    if rule is None or not identity:
        return None
    latest: ChangeAuthor | None = None
    for event in events:
        when = event_time(event.get("EventTime"))
        if when is None or event.get("EventName") not in rule.write_events:
            continue
        if str(event.get("ReadOnly", "false")).lower() == "true" or _record(event).get("errorCode"):
            continue
        if (not_after and when > not_after) or _excluded(event, exclude_principals):
            continue
        if _names_resource(rule, identity, event) and (latest is None or when > latest.event_time):
            latest = _author(event, when)
    return latest


def attach_authors(
    result: ScopeResult,
    events: Iterable[Mapping[str, Any]],
    *,
    exclude_principals: Collection[str] = (),
    not_after: dt.datetime | None = None,
) -> ScopeResult:
    """``result`` with each drift's author attached where CloudTrail names one (cycle-owned
    differences get none: the cycle wrote them)."""
    events = list(events)

    def with_author(drift: Drift) -> Drift:
        if drift.classification != "drift":
            return drift
        author = who_changed(
            drift.type, drift.identity, events, exclude_principals=exclude_principals, not_after=not_after
        )
        return replace(drift, changed_by=author)

    return replace(result, differences=tuple(with_author(d) for d in result.differences))
