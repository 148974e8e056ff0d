"""What every Falcon service shares on the wire: tokens, error answers, query and body parameters.

Falcon answers every request with the envelope ``{"meta": {...}, "resources": [...], "errors": [...]}``
(:meth:`fleetsim.falcon.api.FalconApi.reply` builds it); an error is an :class:`ApiError` carrying the
HTTP status and Falcon's message, answered in the same envelope with ``errors: [{code, message}]``.
Query parameters arrive as FalconPy sends them: lists as repeated keys (``ids=a&ids=b``, Swagger's
``collectionFormat: multi``), bodies as JSON.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request

from fleetsim.falcon import fql

DEFAULT_LIMIT = 100


class ApiError(Exception):
    """An error answer: HTTP status and Falcon's error message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class Token:
    """A bearer token this emulator issued: which client, which CIDs it sees (None: every CID)."""

    client_id: str
    cids: frozenset[str] | None
    expires_at: float


def digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def fraction(*parts: str) -> float:
    return int(digest(*parts)[:12], 16) / 16**12


def iso(ts: float | dt.datetime) -> str:
    """A timestamp as Falcon writes it: ``2025-05-24T09:58:00Z``."""
    moment = ts if isinstance(ts, dt.datetime) else dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def short_cid(cid: str) -> str:
    """A CID compared as Falcon compares it: case-insensitive, without the ``-XX`` checksum suffix."""
    return cid.strip().lower().split("-", 1)[0]


# -- parameters -------------------------------------------------------------------------------------
def int_arg(request: Request, name: str, *, default: int, low: int, high: int | None) -> int:
    """An integer query parameter within the documented bounds (400 naming them otherwise)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"invalid {name} {raw!r}: not an integer") from None
    if value < low or (high is not None and value > high):
        bounds = f"{low}-{high}" if high is not None else f">= {low}"
        raise ApiError(400, f"invalid {name} {value}: must be {bounds}")
    return value


def bool_arg(request: Request, name: str, *, default: bool) -> bool:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() not in ("true", "false"):
        raise ApiError(400, f"invalid {name} {raw!r}: must be true or false")
    return raw.lower() == "true"


def ids_arg(request: Request, name: str = "ids") -> list[str]:
    """Ids from the query, as repeated keys or comma-separated (FalconPy sends either)."""
    return [i for raw in request.args.getlist(name) for i in raw.split(",") if i]


def json_body(request: Request) -> Any:
    try:
        return json.loads(request.get_data(as_text=True) or "null")
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not JSON: {exc}") from None


def body_object(request: Request) -> dict[str, Any]:
    body = json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def body_ids(body: dict[str, Any], key: str = "ids") -> list[str]:
    ids = body.get(key)
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise ApiError(400, f'request body must carry "{key}": a non-empty list of ids')
    return ids


def action_parameters(body: dict[str, Any]) -> dict[str, str]:
    """``action_parameters: [{"name": ..., "value": ...}]`` as a dict (400 when malformed)."""
    raw = body.get("action_parameters", [])
    if not isinstance(raw, list):
        raise ApiError(400, "action_parameters must be a list of {name, value}")
    params: dict[str, str] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ApiError(400, "action_parameters must be a list of {name, value}")
        value = item.get("value")
        if not isinstance(value, str):
            raise ApiError(400, f"action parameter {item['name']!r}: value must be a string")
        params[item["name"]] = value
    return params


def filtered(
    records: Iterable[dict[str, Any]],
    request: Request,
    known: Callable[[str], bool],
    *,
    sorts: Iterable[str] | None = None,
    sort_key: Callable[[dict[str, Any], str], Any] | None = None,
) -> list[dict[str, Any]]:
    """The records the request's FQL ``filter`` matches, in its ``sort`` order (400 on a bad filter).

    ``sorts`` lists the sort values an endpoint's definition enumerates (``name.asc``, ...); others are
    refused. ``sort_key`` reads a sort field a record does not show (a policy's precedence).
    """
    try:
        expr = fql.parse(request.args.get("filter", ""), known)
        rows = [r for r in records if fql.matches(r, expr)]
        sort = request.args.get("sort", "")
        if sort:
            allowed = set(sorts) if sorts is not None else None
            if allowed is not None and sort.replace("|", ".") not in allowed:
                raise fql.FqlError(f"Invalid sort {sort!r}: one of {', '.join(sorted(allowed))}")
            field, descending = fql.sort_key(sort, known if allowed is None else lambda _: True)
            if sort_key is not None:
                rows.sort(key=lambda r: sort_key(r, field), reverse=descending)
            else:
                rows.sort(key=lambda r: fql.text(fql.lookup(r, field)), reverse=descending)
    except fql.FqlError as exc:
        raise ApiError(400, str(exc)) from None
    return rows


def page(rows: list[Any], request: Request, *, high: int, low: int = 1) -> tuple[list[Any], dict[str, Any]]:
    """One ``offset``/``limit`` page of ``rows`` and its ``meta.pagination``."""
    limit = int_arg(request, "limit", default=DEFAULT_LIMIT, low=low, high=high)
    offset = int_arg(request, "offset", default=0, low=0, high=None)
    return rows[offset : offset + limit], {"offset": offset, "limit": limit, "total": len(rows)}
