"""A drift report read back from its evidence (``DriftReport.to_dict()``), for the trend and the
cycle's pre-flight. Pure: the caller reads the JSON."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from patchcycle.domain.drift.model import (
    ChangeAuthor,
    Drift,
    DriftInputError,
    DriftReport,
    ScopeError,
    UncheckedResource,
)


def _author(data: Mapping[str, Any] | None) -> ChangeAuthor | None:
    if not data:
        return None
    return ChangeAuthor(
        event_id=data.get("event_id"),
        event_name=str(data.get("event_name")),
        event_time=dt.datetime.fromisoformat(str(data["event_time"])),
        username=data.get("username"),
        principal_arn=data.get("principal_arn"),
        identity_type=data.get("identity_type"),
        session_issuer_arn=data.get("session_issuer_arn"),
        source_ip_address=data.get("source_ip_address"),
    )


def drift_from_dict(data: Mapping[str, Any]) -> Drift:
    """One difference as :meth:`Drift.to_dict` wrote it."""
    return Drift(
        address=str(data["address"]),
        type=str(data["type"]),
        path=str(data.get("path") or ""),
        action=str(data["action"]),
        declared=data.get("declared"),
        live=data.get("live"),
        classification=data["classification"],
        source=data["source"],
        sensitive=bool(data.get("sensitive", False)),
        identity={str(k): str(v) for k, v in (data.get("identity") or {}).items()},
        changed_by=_author(data.get("changed_by")),
        scope=str(data.get("scope") or ""),
    )


def report_from_dict(data: Mapping[str, Any]) -> DriftReport:
    """A report as :meth:`DriftReport.to_dict` wrote it; :class:`DriftInputError` when it is not one."""
    try:
        return DriftReport(
            tenant=str(data["tenant"]),
            day=dt.date.fromisoformat(str(data["date"])),
            engine=data["engine"],
            scopes=tuple(str(s) for s in data.get("scopes") or ()),
            resources_checked=int(data.get("resources_checked") or 0),
            drifts=tuple(drift_from_dict(d) for d in data.get("drifts") or ()),
            owned_by_cycle=tuple(drift_from_dict(d) for d in data.get("owned_by_cycle") or ()),
            unchecked=tuple(
                UncheckedResource(
                    address=str(u["address"]),
                    type=str(u["type"]),
                    reason=str(u["reason"]),
                    differences=tuple(drift_from_dict(d) for d in u.get("differences") or ()),
                    scope=str(u.get("scope") or ""),
                )
                for u in data.get("unchecked") or ()
            ),
            errors=tuple(ScopeError(str(e["scope"]), str(e["message"])) for e in data.get("errors") or ()),
            notes=tuple(str(n) for n in data.get("notes") or ()),
            sources={str(k): dict(v) for k, v in (data.get("sources") or {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DriftInputError(f"not a drift report: {type(exc).__name__}: {exc}") from exc
