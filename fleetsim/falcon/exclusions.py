"""Falcon machine-learning and IOA exclusions (FalconPy ``MLExclusions`` and ``IOAExclusions``).

Served paths (``_endpoint/_ml_exclusions.py``, ``_endpoint/_ioa_exclusions.py``):

* ``GET /policy/queries/ml-exclusions/v1`` (``queryMLExclusionsV1``: ids; ``filter`` on applied_globally,
  created_by, created_on, last_modified, modified_by, value; ``sort`` from the definition's enum;
  ``limit`` 1-500) and ``GET|POST|PATCH|DELETE /policy/entities/ml-exclusions/v1`` (get by ``ids``;
  create ``{"value", "groups", "excluded_from", "comment"}``; update the same with ``id``; delete by
  ``ids`` with a ``comment`` saying why);
* ``GET /policy/queries/ioa-exclusions/v1`` (``queryIOAExclusionsV1``, also ``name`` and the pattern
  fields) and ``GET|POST|PATCH|DELETE /policy/entities/ioa-exclusions/v1`` (create
  ``{"name", "pattern_id", "pattern_name", "ifn_regex", "cl_regex", "groups", "description", "comment"}``).

Records are the specification's ``ExclusionsExclusionV1`` (``id``, ``value``, ``regexp_value``,
``value_hash``, ``excluded_from``, ``groups`` as host group objects, ``applied_globally``,
``is_descendant_process``, ``created_by``, ``created_on``, ``modified_by``, ``last_modified``) and
``IoaExclusionsIoaExclusionRespV1`` (``name``, ``description``, ``pattern_id``, ``pattern_name``,
``ifn_regex``, ``cl_regex``, ``detection_json``, the same group and audit fields). Neither carries the
``comment``: it is kept, with each create, update and delete and who made it, in the exclusion's history,
which fleetsim's control plane serves (``GET /fleetsim/falcon``).

``groups`` is required (FalconPy's ``create_exclusions`` fills in ``["all"]``, its issue 1233): ``all``
applies the exclusion everywhere (``applied_globally``), host group ids limit it to their devices.
The specification lists no 404 for these operations: an unknown id is a 400 naming it (200 with an
error per unknown id when others were found). Created exclusions answer 201.

What an exclusion does here: from its ``created_on`` on, a machine-learning detection whose file path
an ML exclusion's ``value`` glob matches (``**`` spans directories, ``*`` stays within one) is not
raised when the exclusion is ``excluded_from`` ``blocking`` (the default; ``extraction`` alone only
stops uploads), and a behavioural detection whose pattern id, image file name (``ifn_regex``) and
command line (``cl_regex``) an IOA exclusion matches in full is not raised, in both cases on the
devices of the exclusion's groups.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from fleetsim.falcon import fql
from fleetsim.falcon.wire import ApiError, Token, body_object, digest, filtered, ids_arg, iso, page

if TYPE_CHECKING:
    from fleetsim.falcon.api import FalconApi
    from fleetsim.falcon.backend import Customer

ML, IOA = "ml", "ioa"
EXCLUSIONS_MAX_LIMIT = 500  # queryMLExclusionsV1 / queryIOAExclusionsV1 limit 1-500
EXCLUDED_FROM = ("blocking", "extraction")
ML_FIELDS = ("id", "value", "applied_globally", "created_by", "created_on", "last_modified", "modified_by")
IOA_FIELDS = (
    "id", "name", "description", "pattern_id", "pattern_name", "applied_globally", "created_by",
    "created_on", "last_modified", "modified_by",
)  # fmt: skip
ML_SORTS = tuple(
    f"{f}.{d}"
    for f in ("applied_globally", "created_by", "created_on", "last_modified", "modified_by", "value")
    for d in ("asc", "desc")
)
IOA_SORTS = tuple(
    f"{f}.{d}"
    for f in (
        "applied_globally", "created_by", "created_on", "last_modified", "modified_by", "name",
        "pattern_id", "pattern_name",
    )
    for d in ("asc", "desc")
)  # fmt: skip


def glob_regex(value: str) -> str:
    """An ML exclusion's path glob as a regular expression (what ``regexp_value`` reports)."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("**", i):
            out.append(".*")
            i += 2
        elif value[i] == "*":
            out.append(r"[^/\\]*")
            i += 1
        else:
            out.append(re.escape(value[i]))
            i += 1
    return "^" + "".join(out) + "$"


@dataclass
class Exclusion:
    """An ML (``value``) or IOA (``pattern_id``, ``ifn_regex``, ``cl_regex``) exclusion of a customer."""

    kind: str
    id: str
    cid: str
    groups: list[str]  # host group ids; empty when applied globally
    applied_globally: bool
    created_by: str
    created_on: float
    modified_by: str
    last_modified: float
    value: str = ""
    excluded_from: list[str] = field(default_factory=lambda: ["blocking"])
    is_descendant_process: bool = False
    name: str = ""
    description: str = ""
    pattern_id: str = ""
    pattern_name: str = ""
    ifn_regex: str = ""
    cl_regex: str = ""
    detection_json: str = ""

    def applies_to(self, groups: list[str]) -> bool:
        return self.applied_globally or bool(set(self.groups) & set(groups))

    def silences(self, kind: str, pattern_id: int, filepath: str, cmdline: str, windows: bool) -> bool:
        flags = re.IGNORECASE if windows else 0
        if self.kind == ML:
            if kind != "machine_learning" or "blocking" not in self.excluded_from:
                return False
            path, pattern = filepath, self.value
            if windows:  # either separator, any case
                path, pattern = path.replace("\\", "/"), pattern.replace("\\", "/")
            return re.match(glob_regex(pattern), path, flags) is not None
        if kind != "behavioral" or self.pattern_id != str(pattern_id):
            return False
        return bool(
            re.fullmatch(self.ifn_regex, filepath, flags) and re.fullmatch(self.cl_regex, cmdline, flags)
        )

    def body(self, customer: Customer) -> dict[str, Any]:
        groups = customer.groups.groups
        out: dict[str, Any] = {
            "id": self.id,
            "groups": [groups[g].body() for g in self.groups if g in groups],
            "applied_globally": self.applied_globally,
            "created_by": self.created_by,
            "created_on": iso(self.created_on),
            "modified_by": self.modified_by,
            "last_modified": iso(self.last_modified),
        }
        if self.kind == ML:
            out.update(
                value=self.value,
                regexp_value=glob_regex(self.value),
                value_hash=digest("value", self.value)[:32],
                excluded_from=list(self.excluded_from),
                is_descendant_process=self.is_descendant_process,
            )
        else:
            out.update(
                name=self.name,
                description=self.description,
                pattern_id=self.pattern_id,
                pattern_name=self.pattern_name,
                ifn_regex=self.ifn_regex,
                cl_regex=self.cl_regex,
                detection_json=self.detection_json,
            )
        return out


class ExclusionStore:
    """A customer's exclusions of both kinds, and the history of every change with its comment."""

    def __init__(self, cid: str) -> None:
        self.cid = cid
        self.exclusions: dict[str, dict[str, Exclusion]] = {ML: {}, IOA: {}}
        self.history: list[dict[str, Any]] = []

    def silencing(
        self,
        kind: str,
        pattern_id: int,
        filepath: str,
        cmdline: str,
        groups: list[str],
        at: float,
        windows: bool,
    ) -> Exclusion | None:
        """The exclusion in force at ``at`` on a device in ``groups`` that silences the detection."""
        for store in self.exclusions.values():
            for exclusion in store.values():
                if (
                    exclusion.created_on <= at
                    and exclusion.applies_to(groups)
                    and exclusion.silences(kind, pattern_id, filepath, cmdline, windows)
                ):
                    return exclusion
        return None

    def forget_group(self, group_id: str) -> None:
        for store in self.exclusions.values():
            for exclusion in store.values():
                if group_id in exclusion.groups:
                    exclusion.groups.remove(group_id)


def _text(item: dict[str, Any], key: str, *, required: bool) -> str:
    value = item.get(key)
    if value is None or value == "":
        if required:
            raise ApiError(400, f"{key} is required")
        return ""
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be a string")
    return value


def _regex(item: dict[str, Any], key: str, *, required: bool) -> str:
    value = _text(item, key, required=required)
    try:
        re.compile(value)
    except re.error as exc:
        raise ApiError(400, f"{key} {value!r} is not a valid regular expression: {exc}") from None
    return value


class ExclusionResponses:
    """One kind's exclusion endpoints (``ml`` or ``ioa``), answered from the customers' stores."""

    def __init__(self, api: FalconApi, kind: str) -> None:
        self.api = api
        self.kind = kind
        self.label = "ML" if kind == ML else "IOA"
        self.known = fql.field_checker(ML_FIELDS if kind == ML else IOA_FIELDS)
        self.sorts = ML_SORTS if kind == ML else IOA_SORTS

    def routes(self) -> dict[tuple[str, str], tuple[str, Callable[[Request, Token], Response]]]:
        path = f"/policy/entities/{self.kind}-exclusions/v1"
        return {
            ("GET", f"/policy/queries/{self.kind}-exclusions/v1"): (
                f"query{self.label}ExclusionsV1",
                self.query,
            ),
            ("GET", path): (f"get{self.label}ExclusionsV1", self.get),
            ("POST", path): (f"create{self.label}ExclusionsV1", self.create),
            ("PATCH", path): (f"update{self.label}ExclusionsV1", self.update),
            ("DELETE", path): (f"delete{self.label}ExclusionsV1", self.delete),
        }

    def _find(self, token: Token, exclusion_id: Any) -> tuple[Customer, Exclusion] | None:
        if not isinstance(exclusion_id, str):
            return None
        for customer in self.api.backend.customers_for(token):
            exclusion = customer.exclusions.exclusions[self.kind].get(exclusion_id)
            if exclusion is not None:
                return customer, exclusion
        return None

    def _not_found(self, exclusion_id: Any) -> dict[str, Any]:
        return {
            "code": 400,
            "message": f"{self.label} exclusion {exclusion_id!r} not found",
            "id": exclusion_id,
        }

    def _groups(self, customer: Customer, raw: Any) -> tuple[list[str], bool]:
        if isinstance(raw, str):
            raw = raw.split(",")
        if not isinstance(raw, list) or not raw or not all(isinstance(g, str) and g for g in raw):
            raise ApiError(400, 'groups is required: host group ids, or ["all"]')
        if "all" in raw:
            return [], True
        unknown = [g for g in raw if g not in customer.groups.groups]
        if unknown:
            raise ApiError(400, f"groups: unknown host group ids {unknown}")
        return list(dict.fromkeys(raw)), False

    def _log(
        self, customer: Customer, action: str, exclusion: Exclusion, comment: str, by: str, at: float
    ) -> None:
        customer.exclusions.history.append(
            {
                "kind": self.kind,
                "action": action,
                "id": exclusion.id,
                "what": exclusion.value if self.kind == ML else exclusion.name,
                "comment": comment,
                "by": by,
                "at": iso(at),
            }
        )

    # -- endpoints ----------------------------------------------------------------------------------
    def query(self, request: Request, token: Token) -> Response:
        bodies = [
            e.body(c)
            for c in self.api.backend.customers_for(token)
            for e in sorted(c.exclusions.exclusions[self.kind].values(), key=lambda e: e.created_on)
        ]
        rows, pagination = page(
            filtered(bodies, request, self.known, sorts=self.sorts), request, high=EXCLUSIONS_MAX_LIMIT
        )
        return self.api.reply([r["id"] for r in rows], pagination=pagination)

    def get(self, request: Request, token: Token) -> Response:
        ids = ids_arg(request)
        if not ids:
            raise ApiError(400, "ids: at least one exclusion id is required")
        found, errors = [], []
        for exclusion_id in ids:
            hit = self._find(token, exclusion_id)
            if hit is None:
                errors.append(self._not_found(exclusion_id))
            else:
                found.append(hit[1].body(hit[0]))
        return self.api.reply(found, status=200 if found else 400, errors=errors)

    def _fill(
        self, exclusion: Exclusion, item: dict[str, Any], customer: Customer, *, creating: bool
    ) -> None:
        if self.kind == ML:
            if creating or "value" in item:
                exclusion.value = _text(item, "value", required=True)
            if "excluded_from" in item:
                raw = item["excluded_from"]
                raw = raw.split(",") if isinstance(raw, str) else raw
                if not isinstance(raw, list) or not raw or not set(raw) <= set(EXCLUDED_FROM):
                    raise ApiError(
                        400, f"excluded_from {item['excluded_from']!r}: values from {list(EXCLUDED_FROM)}"
                    )
                exclusion.excluded_from = list(dict.fromkeys(raw))
            if "is_descendant_process" in item:
                if not isinstance(item["is_descendant_process"], bool):
                    raise ApiError(400, "is_descendant_process must be true or false")
                exclusion.is_descendant_process = item["is_descendant_process"]
        else:
            for key in ("name", "pattern_id"):
                if creating or key in item:
                    value = item.get(key)
                    if isinstance(value, int) and not isinstance(value, bool):
                        item = {**item, key: str(value)}
                    setattr(exclusion, key, _text(item, key, required=True))
            for key in ("ifn_regex", "cl_regex"):
                if creating or key in item:
                    setattr(exclusion, key, _regex(item, key, required=True))
            for key in ("description", "pattern_name", "detection_json"):
                if key in item:
                    setattr(exclusion, key, _text(item, key, required=False))
        if creating or "groups" in item:
            exclusion.groups, exclusion.applied_globally = self._groups(customer, item.get("groups"))

    def create(self, request: Request, token: Token) -> Response:
        item = body_object(request)
        customer = self.api.backend.write_customer(token)
        now = self.api.state.clock()
        author = self.api.author(token)
        store = customer.exclusions.exclusions[self.kind]
        exclusion = Exclusion(
            kind=self.kind,
            id=digest("exclusion", self.kind, customer.cid, str(now), str(len(store)))[:32],
            cid=customer.cid,
            groups=[],
            applied_globally=False,
            created_by=author,
            created_on=now,
            modified_by=author,
            last_modified=now,
        )
        self._fill(exclusion, item, customer, creating=True)
        store[exclusion.id] = exclusion
        self._log(customer, "create", exclusion, _text(item, "comment", required=False), author, now)
        return self.api.reply([exclusion.body(customer)], status=201)

    def update(self, request: Request, token: Token) -> Response:
        item = body_object(request)
        hit = self._find(token, item.get("id"))
        if hit is None:
            raise ApiError(400, f"{self.label} exclusion {item.get('id')!r} not found")
        customer, exclusion = hit
        now = self.api.state.clock()
        self._fill(exclusion, item, customer, creating=False)
        exclusion.modified_by, exclusion.last_modified = self.api.author(token), now
        self._log(
            customer, "update", exclusion, _text(item, "comment", required=False), exclusion.modified_by, now
        )
        return self.api.reply([exclusion.body(customer)])

    def delete(self, request: Request, token: Token) -> Response:
        ids = ids_arg(request)
        if not ids:
            raise ApiError(400, "ids: at least one exclusion id is required")
        comment = request.args.get("comment", "")
        now = self.api.state.clock()
        deleted, errors = [], []
        for exclusion_id in ids:
            hit = self._find(token, exclusion_id)
            if hit is None:
                errors.append(self._not_found(exclusion_id))
                continue
            customer, exclusion = hit
            del customer.exclusions.exclusions[self.kind][exclusion_id]
            self._log(customer, "delete", exclusion, comment, self.api.author(token), now)
            deleted.append(exclusion_id)
        return self.api.reply(deleted, status=200 if deleted else 400, errors=errors)
