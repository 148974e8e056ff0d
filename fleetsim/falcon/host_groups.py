"""Falcon host groups (FalconPy ``HostGroup``, ``_endpoint/_host_group.py``): the groups and their members.

Served paths, each answering what the endpoint definition names:

* ``GET /devices/queries/host-groups/v1`` (``queryHostGroups``: ids) and
  ``GET /devices/combined/host-groups/v1`` (``queryCombinedHostGroups``: groups); ``filter`` on the
  group's fields, ``sort`` one of the definition's enum (``name.asc`` ...), ``limit`` 1-5000, ``offset``;
* ``GET /devices/entities/host-groups/v1?ids=`` (``getHostGroups``), ``POST`` (``createHostGroups``,
  201, body ``{"resources": [{name, group_type, description, assignment_rule}]}``), ``PATCH``
  (``updateHostGroups``, ``{"resources": [{id, name, description, assignment_rule}]}``) and ``DELETE``
  (``deleteHostGroups``, answering the deleted ids);
* ``POST /devices/entities/host-group-actions/v1?action_name=add-hosts|remove-hosts``
  (``performGroupAction``, body ``{"ids": [group], "action_parameters": [{"name": "filter",
  "value": "(device_id:['a','b'])"}]}``, as FalconPy's ``perform_group_action`` documents it);
* ``GET /devices/queries/host-group-members/v1?id=`` (``queryGroupMembers``: AIDs) and
  ``GET /devices/combined/host-group-members/v1?id=`` (``queryCombinedGroupMembers``: device records);
  ``filter`` and ``sort`` on device fields, ``limit`` 1-5000.

A group is the ``HostGroupsHostGroupV1`` of CrowdStrike's API specification (``id``, ``name``,
``description``, ``group_type`` static|staticByID|dynamic, ``assignment_rule``, ``created_by``,
``created_timestamp``, ``modified_by``, ``modified_timestamp``). Membership: a ``static`` group holds
host names (so a reinstalled sensor's new AID stays a member, and so does its stale record), a
``staticByID`` group holds AIDs, and a ``dynamic`` group holds every device whose record its FQL
``assignment_rule`` matches (hosts cannot be added to or removed from it). A static group's
``assignment_rule`` reads back as ``device_id:[''],hostname:['a','b']`` (``staticByID``:
``device_id:['x'],hostname:['']``), and a rule in that form given at creation sets its first members.

Each customer (CID) starts with one dynamic group per environment its hosts run in, matching the
``FalconGroupingTags/<environment>`` tag every device carries. Groups live in the CID of the token that
created them: a tenant's own client, the MSSP parent acting for a ``member_cid``, or the parent's own
CID (where no tenant device is) when it names none.

Limits and refusals, each a 400 naming the value: a missing or unknown ``action_name``, a filter naming
more than 500 hosts in one action (PSFalcon's ``Invoke-FalconHostGroupAction`` adds and removes "in
batches of 500"; no other limit is published), members added to or removed from a dynamic group, a
duplicate group name in the CID, an unknown ``group_type``, a rule FQL cannot parse. Unknown group ids
are 404 with one error per id (``getHostGroups``, ``deleteHostGroups``, the action, the members queries).
``disable_hostname_check`` is accepted and has no effect here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from fleetsim.falcon import fql
from fleetsim.falcon.devices import device_field, rule_field
from fleetsim.falcon.wire import (
    ApiError,
    Token,
    action_parameters,
    body_ids,
    body_object,
    bool_arg,
    digest,
    filtered,
    ids_arg,
    iso,
    page,
)

if TYPE_CHECKING:
    from fleetsim.falcon.api import FalconApi
    from fleetsim.falcon.backend import Customer

GROUP_TYPES = ("static", "staticByID", "dynamic")
GROUP_FIELDS = (
    "id", "name", "description", "group_type", "assignment_rule", "created_by", "created_timestamp",
    "modified_by", "modified_timestamp",
)  # fmt: skip
GROUP_SORTS = tuple(
    f"{f}.{d}"
    for f in ("created_by", "created_timestamp", "group_type", "modified_by", "modified_timestamp", "name")
    for d in ("asc", "desc")
)
GROUP_ACTIONS = ("add-hosts", "remove-hosts")
GROUPS_MAX_LIMIT = 5000  # queryHostGroups / queryCombinedHostGroups limit 1-5000
MEMBERS_MAX_LIMIT = 5000  # queryGroupMembers / queryCombinedGroupMembers limit 1-5000
ACTION_MAX_HOSTS = 500  # PSFalcon batches add-hosts / remove-hosts by 500
_GROUP_FIELD = fql.field_checker(GROUP_FIELDS)
_STATIC_RULE_FIELD = fql.field_checker(("device_id", "hostname"))


@dataclass
class HostGroup:
    """One host group of a customer (CID)."""

    id: str
    cid: str
    name: str
    group_type: str
    description: str
    created_by: str
    created_at: float
    modified_by: str
    modified_at: float
    rule_text: str = ""
    rule: fql.Expr | None = None  # dynamic groups
    members: set[str] = field(default_factory=set)  # static: lower-case host names; staticByID: AIDs

    def contains(self, record: dict[str, Any]) -> bool:
        if self.group_type == "dynamic":
            return self.rule is not None and fql.matches(record, self.rule)
        if self.group_type == "static":
            return str(record.get("hostname", "")).lower() in self.members
        return record.get("device_id") in self.members

    def assignment_rule(self) -> str:
        if self.group_type == "dynamic":
            return self.rule_text
        listed = ",".join(f"'{m}'" for m in sorted(self.members)) or "''"
        if self.group_type == "static":
            return f"device_id:[''],hostname:[{listed}]"
        return f"device_id:[{listed}],hostname:['']"

    def body(self) -> dict[str, Any]:
        """The group as ``getHostGroups`` answers it (``HostGroupsHostGroupV1``)."""
        return {
            "id": self.id,
            "group_type": self.group_type,
            "name": self.name,
            "description": self.description,
            "assignment_rule": self.assignment_rule(),
            "created_by": self.created_by,
            "created_timestamp": iso(self.created_at),
            "modified_by": self.modified_by,
            "modified_timestamp": iso(self.modified_at),
        }


def _parse_rule(text: str) -> fql.Expr | None:
    try:
        return fql.parse(text, rule_field)
    except fql.FqlError as exc:
        raise ApiError(400, f"assignment_rule: {exc}") from None


def _static_members(text: str, group_type: str) -> set[str]:
    """The members a static group's ``assignment_rule`` (``device_id:[...],hostname:[...]``) names."""
    try:
        expr = fql.parse(text, _STATIC_RULE_FIELD)
    except fql.FqlError as exc:
        raise ApiError(
            400, f"assignment_rule of a {group_type} group must read device_id:[...],hostname:[...]: {exc}"
        ) from None
    wanted = "hostname" if group_type == "static" else "device_id"
    values: set[str] = set()
    for term in _terms(expr):
        if term.field == wanted:
            values.update(v.lower() if wanted == "hostname" else v for v in term.values if v)
    return values


def _terms(expr: fql.Expr | None) -> Iterable[fql.Term]:
    if expr is None:
        return
    if isinstance(expr, fql.Term):
        yield expr
        return
    for child in expr.children:
        yield from _terms(child)


class HostGroupStore:
    """A customer's host groups, by id."""

    def __init__(self, cid: str, seeded_at: float, environments: Iterable[str]) -> None:
        self.cid = cid
        self.groups: dict[str, HostGroup] = {}
        for env in sorted(set(environments)):
            rule_text = f"tags:'FalconGroupingTags/{env}'"
            group = HostGroup(
                id=digest("group", cid, env)[:32],
                cid=cid,
                name=f"tag-{env}",
                group_type="dynamic",
                description=f"Hosts tagged FalconGroupingTags/{env}",
                created_by="falcon-admin@fleetsim.example",
                created_at=seeded_at,
                modified_by="falcon-admin@fleetsim.example",
                modified_at=seeded_at,
                rule_text=rule_text,
                rule=_parse_rule(rule_text),
            )
            self.groups[group.id] = group

    def member_of(self, record: dict[str, Any]) -> list[str]:
        """The ids of the groups a device record is in."""
        return sorted(g.id for g in self.groups.values() if g.contains(record))

    def by_name(self, name: str) -> HostGroup | None:
        return next((g for g in self.groups.values() if g.name.lower() == name.lower()), None)

    def create(self, item: dict[str, Any], by: str, now: float) -> HostGroup:
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "name: a host group needs a name")
        if self.by_name(name) is not None:
            raise ApiError(400, f"name: a host group named {name!r} already exists")
        group_type = item.get("group_type")
        if group_type not in GROUP_TYPES:
            raise ApiError(400, f"group_type {group_type!r}: one of {', '.join(GROUP_TYPES)}")
        description = item.get("description") or ""
        if not isinstance(description, str):
            raise ApiError(400, "description must be a string")
        rule_text = item.get("assignment_rule") or ""
        if not isinstance(rule_text, str):
            raise ApiError(400, "assignment_rule must be a string")
        group = HostGroup(
            id=digest("group", self.cid, name, str(now), str(len(self.groups)))[:32],
            cid=self.cid,
            name=name,
            group_type=group_type,
            description=description,
            created_by=by,
            created_at=now,
            modified_by=by,
            modified_at=now,
        )
        self._set_rule(group, rule_text)
        self.groups[group.id] = group
        return group

    @staticmethod
    def _set_rule(group: HostGroup, rule_text: str) -> None:
        if group.group_type == "dynamic":
            group.rule_text, group.rule = rule_text, _parse_rule(rule_text)
        elif rule_text:
            group.members = _static_members(rule_text, group.group_type)

    def update(self, group: HostGroup, item: dict[str, Any], by: str, now: float) -> None:
        name = item.get("name")
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise ApiError(400, "name must be a non-empty string")
            other = self.by_name(name)
            if other is not None and other.id != group.id:
                raise ApiError(400, f"name: a host group named {name!r} already exists")
            group.name = name
        if item.get("description") is not None:
            group.description = str(item["description"])
        if item.get("assignment_rule") is not None:
            self._set_rule(group, str(item["assignment_rule"]))
        group.modified_by, group.modified_at = by, now


class HostGroupResponses:
    """The host group endpoints, answered from the customers' :class:`HostGroupStore`."""

    def __init__(self, api: FalconApi) -> None:
        self.api = api

    def routes(self) -> dict[tuple[str, str], tuple[str, Callable[[Request, Token], Response]]]:
        return {
            ("GET", "/devices/queries/host-groups/v1"): ("queryHostGroups", self.query_groups),
            ("GET", "/devices/combined/host-groups/v1"): ("queryCombinedHostGroups", self.combined_groups),
            ("GET", "/devices/entities/host-groups/v1"): ("getHostGroups", self.get_groups),
            ("POST", "/devices/entities/host-groups/v1"): ("createHostGroups", self.create_groups),
            ("PATCH", "/devices/entities/host-groups/v1"): ("updateHostGroups", self.update_groups),
            ("DELETE", "/devices/entities/host-groups/v1"): ("deleteHostGroups", self.delete_groups),
            ("POST", "/devices/entities/host-group-actions/v1"): ("performGroupAction", self.group_action),
            ("GET", "/devices/queries/host-group-members/v1"): ("queryGroupMembers", self.query_members),
            ("GET", "/devices/combined/host-group-members/v1"): (
                "queryCombinedGroupMembers",
                self.combined_members,
            ),
        }

    # -- helpers ------------------------------------------------------------------------------------
    def _visible(self, token: Token) -> list[HostGroup]:
        groups = [g for c in self.api.backend.customers_for(token) for g in c.groups.groups.values()]
        return sorted(groups, key=lambda g: g.id)

    def find(self, token: Token, group_id: str) -> tuple[Customer, HostGroup] | None:
        """The group with that id in a CID the token sees, with its customer."""
        for customer in self.api.backend.customers_for(token):
            group = customer.groups.groups.get(group_id)
            if group is not None:
                return customer, group
        return None

    def _rows(self, request: Request, token: Token) -> list[dict[str, Any]]:
        bodies = [g.body() for g in self._visible(token)]
        return filtered(bodies, request, _GROUP_FIELD, sorts=GROUP_SORTS)

    # -- groups -------------------------------------------------------------------------------------
    def query_groups(self, request: Request, token: Token) -> Response:
        rows, pagination = page(self._rows(request, token), request, high=GROUPS_MAX_LIMIT)
        return self.api.reply([r["id"] for r in rows], pagination=pagination)

    def combined_groups(self, request: Request, token: Token) -> Response:
        rows, pagination = page(self._rows(request, token), request, high=GROUPS_MAX_LIMIT)
        return self.api.reply(rows, pagination=pagination)

    def get_groups(self, request: Request, token: Token) -> Response:
        ids = ids_arg(request)
        if not ids:
            raise ApiError(400, "ids: at least one host group id is required")
        found, errors = [], []
        for group_id in ids:
            hit = self.find(token, group_id)
            if hit is None:
                errors.append({"code": 404, "message": f"host group {group_id!r} not found", "id": group_id})
            else:
                found.append(hit[1].body())
        return self.api.reply(found, status=200 if found else 404, errors=errors)

    def create_groups(self, request: Request, token: Token) -> Response:
        items = body_object(request).get("resources")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise ApiError(400, 'request body must be {"resources": [{"name", "group_type", ...}]}')
        customer = self.api.backend.write_customer(token)
        now = self.api.state.clock()
        created = [customer.groups.create(item, self.api.author(token), now) for item in items]
        self.api.backend.changed(now, token)
        return self.api.reply([g.body() for g in created], status=201)

    def update_groups(self, request: Request, token: Token) -> Response:
        items = body_object(request).get("resources")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise ApiError(400, 'request body must be {"resources": [{"id", ...}]}')
        now = self.api.state.clock()
        updated, errors = [], []
        for item in items:
            group_id = item.get("id")
            hit = self.find(token, group_id) if isinstance(group_id, str) else None
            if hit is None:
                errors.append({"code": 404, "message": f"host group {group_id!r} not found", "id": group_id})
                continue
            customer, group = hit
            customer.groups.update(group, item, self.api.author(token), now)
            updated.append(group.body())
        self.api.backend.changed(now, token)
        return self.api.reply(updated, status=200 if updated else 404, errors=errors)

    def delete_groups(self, request: Request, token: Token) -> Response:
        ids = ids_arg(request)
        if not ids:
            raise ApiError(400, "ids: at least one host group id is required")
        deleted, errors = [], []
        for group_id in ids:
            hit = self.find(token, group_id)
            if hit is None:
                errors.append({"code": 404, "message": f"host group {group_id!r} not found", "id": group_id})
                continue
            hit[0].forget_group(group_id)
            deleted.append(group_id)
        self.api.backend.changed(self.api.state.clock(), token)
        return self.api.reply(deleted, status=200 if deleted else 404, errors=errors)

    def group_action(self, request: Request, token: Token) -> Response:
        action = request.args.get("action_name", "")
        if action not in GROUP_ACTIONS:
            raise ApiError(400, f"action_name {action!r}: one of {', '.join(GROUP_ACTIONS)}")
        bool_arg(request, "disable_hostname_check", default=False)
        body = body_object(request)
        group_ids = body_ids(body)
        text = action_parameters(body).get("filter")
        if not text:
            raise ApiError(400, 'action_parameters must name a "filter" selecting the hosts')
        try:
            expr = fql.parse(text, device_field)
        except fql.FqlError as exc:
            raise ApiError(400, str(exc)) from None
        named = sum(len(t.values) for t in _terms(expr))
        if named > ACTION_MAX_HOSTS:
            raise ApiError(400, f"filter names {named} hosts: at most {ACTION_MAX_HOSTS} per request")
        hits, errors = [], []
        for group_id in group_ids:
            hit = self.find(token, group_id)
            if hit is None:
                errors.append({"code": 404, "message": f"host group {group_id!r} not found", "id": group_id})
            elif hit[1].group_type == "dynamic":
                raise ApiError(
                    400, f"host group {group_id!r} is dynamic: its assignment rule picks its hosts"
                )
            else:
                hits.append(hit[1])
        if not hits:
            return self.api.reply([], status=404, errors=errors)
        records = self.api.devices(token)
        now = self.api.state.clock()
        for group in hits:
            chosen = [r for r in records if r["cid"] == group.cid and fql.matches(r, expr)]
            if group.group_type == "static":
                values = {str(r["hostname"]).lower() for r in chosen}
            else:
                values = {r["device_id"] for r in chosen}
            if action == "add-hosts":
                group.members |= values
            else:
                group.members -= values
            group.modified_by, group.modified_at = self.api.author(token), now
        self.api.backend.changed(now, token)
        return self.api.reply([g.body() for g in hits], errors=errors)

    # -- members ------------------------------------------------------------------------------------
    def _members(self, request: Request, token: Token) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        group_id = request.args.get("id", "")
        if not group_id:
            raise ApiError(400, "id: the host group whose members to list is required")
        if self.find(token, group_id) is None:
            raise ApiError(404, f"host group {group_id!r} not found")
        records = [r for r in self.api.devices(token) if group_id in r["groups"]]
        return page(filtered(records, request, device_field), request, high=MEMBERS_MAX_LIMIT)

    def query_members(self, request: Request, token: Token) -> Response:
        rows, pagination = self._members(request, token)
        return self.api.reply([r["device_id"] for r in rows], pagination=pagination)

    def combined_members(self, request: Request, token: Token) -> Response:
        rows, pagination = self._members(request, token)
        return self.api.reply(rows, pagination=pagination)
