"""Azure Resource Graph: the query shapes fleetsim answers (KQL cannot be emulated: anything else is
refused with the list of shapes) and the opaque ``$skipToken`` bound to a query and scope.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from fleetsim.azure.arm.exceptions import ArmError, BadRequest
from fleetsim.azure.arm.models import (
    GRAPH_TABLE,
    GRAPH_TABLES,
    INSTALL_PATCHES_TYPE,
    INSTALL_TABLE,
    INSTALL_TYPE,
    PATCHES_TYPE,
    SUMMARY_TYPE,
)

_GRAPH_SHAPES = (
    f"{GRAPH_TABLE} | where type =~ '{SUMMARY_TYPE}' [| where resourceGroup in~ ('rg', ...)] "
    f"[| order by id asc], or the same with type '{PATCHES_TYPE}', or table {INSTALL_TABLE} with type "
    f"'{INSTALL_TYPE}' or '{INSTALL_PATCHES_TYPE}'"
)


def parse_graph_query(query: str) -> tuple[str, set[str] | None]:
    """(row type, lower-case resource groups or None) of a recognised query shape; 400 otherwise."""

    def refuse(why: str) -> ArmError:
        return BadRequest(
            f"fleetsim cannot run this Resource Graph query ({why}); it answers only: {_GRAPH_SHAPES}",
            [{"code": "UnsupportedQuery", "message": why}],
        )

    clauses = [c.strip() for c in query.split("|")]
    table = clauses[0].lower()
    if table not in GRAPH_TABLES:
        raise refuse(f"table {clauses[0]!r} is not one of {sorted(GRAPH_TABLES)}")
    row_type: str | None = None
    groups: set[str] | None = None
    for clause in clauses[1:]:
        if m := re.fullmatch(r"where\s+type\s*(=~|==)\s*(['\"])([^'\"]+)\2", clause, re.I):
            value = m.group(3) if m.group(1) == "==" else m.group(3).lower()
            if value not in GRAPH_TABLES[table] or row_type is not None:
                raise refuse(f"type filter {clause!r}")
            row_type = value
        elif m := re.fullmatch(r"where\s+resourceGroup\s+in~\s*\((.*)\)", clause, re.I | re.S):
            items = [i.strip() for i in m.group(1).split(",")]
            names = [re.fullmatch(r"(['\"])([^'\"]+)\1", i) for i in items]
            if groups is not None or not all(names):
                raise refuse(f"resource group filter {clause!r}")
            groups = {n.group(2).lower() for n in names if n}
        elif re.fullmatch(r"order\s+by\s+id(\s+asc)?", clause, re.I):
            continue
        else:
            raise refuse(f"clause {clause!r}")
    if row_type is None:
        raise refuse("no type filter")
    return row_type, groups


def decode_skip_token(token: Any, scope: str) -> int:
    if not token:
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        if decoded["s"] != scope or int(decoded["o"]) < 0:
            raise ValueError("token of another query")
        return int(decoded["o"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequest(f"The $skipToken {token!r} is not valid for this query") from exc
