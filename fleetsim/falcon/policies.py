"""Falcon prevention and sensor-update policies, their host groups, precedence and ``applied`` state.

Served paths (FalconPy ``PreventionPolicy``, ``_endpoint/_prevention_policies.py``; ``SensorUpdatePolicy``,
``_endpoint/_sensor_update_policies.py``), each a 400 on bad input naming the value:

* prevention: ``GET /policy/queries/prevention/v1`` (ids), ``GET /policy/combined/prevention/v1``,
  ``GET|POST|PATCH|DELETE /policy/entities/prevention/v1``, ``POST /policy/entities/prevention-actions/v1``,
  ``POST /policy/entities/prevention-precedence/v1``,
  ``GET /policy/(queries|combined)/prevention-members/v1``;
* sensor update: ``GET /policy/queries/sensor-update/v1`` (ids), ``GET /policy/combined/sensor-update/v2``,
  ``GET|POST|PATCH /policy/entities/sensor-update/v2``, ``DELETE /policy/entities/sensor-update/v1``,
  ``POST /policy/entities/sensor-update-actions/v1``, ``POST /policy/entities/sensor-update-precedence/v1``,
  ``GET /policy/(queries|combined)/sensor-update-members/v1``.

Queries take ``filter`` (the policy's fields), ``sort`` from the definitions' enum (``precedence.asc``,
``name.asc`` ...), ``limit`` 1-5000 and ``offset``. Policies are ``PreventionPolicyV1`` and
``SensorUpdatePolicyV2`` of CrowdStrike's API specification: ``id``, ``cid``, ``name``, ``description``,
``platform_name``, ``enabled``, ``groups`` (host group objects), the times and authors, and
``prevention_settings`` (``[{name: category, settings: [{id, name, type, description, value}]}]``) or
``settings`` (``{build, stage, sensor_version, uninstall_protection, scheduler, variants, ...}``).
Creates take ``{"resources": [{name, platform_name, description, settings[, clone_id]}]}`` with
prevention ``settings`` as ``[{"id": ..., "value": ...}]`` (an ``mlslider`` value is ``{"detection",
"prevention"}``, each DISABLED|CAUTIOUS|MODERATE|AGGRESSIVE|EXTRA_AGGRESSIVE, prevention never above
detection; a ``toggle`` value is ``{"enabled": bool}``) and sensor-update ``settings`` as an object whose
``build`` is one ``queryCombinedSensorUpdateBuilds`` lists for the platform (or "" for no updates).

The rules, with their sources:

* "New policies are created disabled" (CrowdStrike's falcon-mcp policies module documentation); an
  enabled policy cannot be deleted ("an enabled policy returns an HTTP 400", same page) and neither can
  the ``platform_default`` policy, which every customer has per platform and kind, which always applies
  and takes no host groups.
* Precedence: "The first ID specified will have the highest precedence and the last ID specified will
  have the lowest. You must specify all non-Default Policies for a platform when updating precedence"
  (``setPreventionPoliciesPrecedence`` in the endpoint definitions); ``platform_default`` comes last. A
  new policy is placed last above ``platform_default`` (no published rule found: the conservative
  reading, it overrides no existing policy).
* Which policy a device gets: "If a policy is enabled it will be used during the course of policy
  evaluation" (the ``enabled`` field's description in the specification). Among the enabled policies of
  the device's platform that hold one of the device's host groups, the one of highest precedence (lowest
  number) applies, else ``platform_default``. CrowdStrike's console documents precedence as what
  decides between several policies; no public page states the tie-break in these words, so this is the
  conservative reading.
* ``applied``: a device's record (``device_policies.prevention`` and ``device_policies.sensor_update``)
  names the policy that applies and its ``settings_hash``; a new assignment (another policy, or the same
  policy with new settings) is ``applied: false`` with its ``assigned_date`` until the sensor picks it up
  ``timings.falcon_policy_apply_seconds`` later (then ``applied: true`` and ``applied_date``); never for
  a host in ``faults.policy_never_applied`` or for a stale record (its sensor is gone).

``add-rule-group`` and ``remove-rule-group`` are refused (fleetsim has no IOA rule groups), as are the
v1 sensor-update entities (FalconPy's ``get_policies``/``create_policies``; use the v2 ones).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from fleetsim.falcon import fql
from fleetsim.falcon.devices import device_field
from fleetsim.falcon.wire import (
    ApiError,
    Token,
    action_parameters,
    body_ids,
    body_object,
    digest,
    filtered,
    ids_arg,
    iso,
    page,
)

if TYPE_CHECKING:
    from fleetsim.falcon.api import FalconApi
    from fleetsim.falcon.backend import Customer
    from fleetsim.falcon.host_groups import HostGroupStore

PREVENTION = "prevention"
SENSOR_UPDATE = "sensor-update"
KINDS = (PREVENTION, SENSOR_UPDATE)
# The key of each kind in a device record's device_policies.
RECORD_KEY = {PREVENTION: "prevention", SENSOR_UPDATE: "sensor_update"}
PLATFORMS = ("Windows", "Mac", "Linux")
DEFAULT_NAME = "platform_default"
POLICIES_MAX_LIMIT = 5000
MEMBERS_MAX_LIMIT = 5000
POLICY_ACTIONS = (
    "add-host-group",
    "add-rule-group",
    "disable",
    "enable",
    "remove-host-group",
    "remove-rule-group",
)
POLICY_FIELDS = (
    "id", "cid", "name", "description", "platform_name", "enabled", "created_by", "created_timestamp",
    "modified_by", "modified_timestamp",
)  # fmt: skip
POLICY_SORTS = tuple(
    f"{f}.{d}"
    for f in (
        "created_by", "created_timestamp", "enabled", "modified_by", "modified_timestamp", "name",
        "platform_name", "precedence",
    )
    for d in ("asc", "desc")
)  # fmt: skip
_POLICY_FIELD = fql.field_checker(POLICY_FIELDS)

ML_LEVELS = ("DISABLED", "CAUTIOUS", "MODERATE", "AGGRESSIVE", "EXTRA_AGGRESSIVE")
UNINSTALL_PROTECTION = ("ENABLED", "DISABLED", "MAINTENANCE_MODE")
SENSOR_UPDATE_SETTINGS = (
    "build",
    "scheduler",
    "show_early_adopter_builds",
    "uninstall_protection",
    "variants",
)

# Prevention settings per platform, by category: ids, names and types as CrowdStrike's Caracara SDK
# templates them (caracara/modules/prevention_policies/template.py); Windows and Mac are subsets.
SETTINGS: dict[str, tuple[str, str]] = {
    "CloudAntiMalware": ("Cloud Anti-malware", "mlslider"),
    "AdwarePUP": ("Adware & PUP", "mlslider"),
    "OnSensorMLSlider": ("Sensor Anti-malware", "mlslider"),
    "OnSensorMLAdwarePUPSlider": ("Adware & PUP", "mlslider"),
    "EndUserNotifications": ("Notify End Users", "toggle"),
    "UnknownDetectionRelatedExecutables": ("Unknown Detection-Related Executables", "toggle"),
    "UnknownExecutables": ("Unknown Executables", "toggle"),
    "SensorTamperingProtection": ("Sensor Tampering Protection", "toggle"),
    "ScriptBasedExecutionMonitoring": ("Script-Based Execution Monitoring", "toggle"),
    "FilesystemVisibility": ("Filesystem Visibility", "toggle"),
    "NetworkVisibility": ("Network Visibility", "toggle"),
    "DetectOnWrite": ("Detect on Write", "toggle"),
    "QuarantineOnWrite": ("Quarantine on Write", "toggle"),
    "NextGenAV": ("Quarantine", "toggle"),
    "CustomBlacklisting": ("Custom Blocking", "toggle"),
    "PreventSuspiciousProcesses": ("Suspicious Processes", "toggle"),
    "SuspiciousRegistryOperations": ("Suspicious Registry Operations", "toggle"),
    "MaliciousPowershell": ("Suspicious Scripts and Commands", "toggle"),
    "IntelPrevention": ("Intelligence-Sourced Threats", "toggle"),
    "SuspiciousKernelDrivers": ("Suspicious Kernel Drivers", "toggle"),
}
CATEGORIES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "Linux": (
        ("User-Mode Capabilities", ("UnknownDetectionRelatedExecutables", "UnknownExecutables")),
        (
            "Enhanced Visibility",
            ("ScriptBasedExecutionMonitoring", "FilesystemVisibility", "NetworkVisibility"),
        ),
        ("Cloud Machine Learning", ("CloudAntiMalware",)),
        ("Sensor Machine Learning", ("OnSensorMLSlider",)),
        ("Execution Blocking", ("CustomBlacklisting", "PreventSuspiciousProcesses")),
    ),
    "Mac": (
        (
            "User-Mode Capabilities",
            ("EndUserNotifications", "UnknownDetectionRelatedExecutables", "UnknownExecutables"),
        ),
        ("Cloud Machine Learning", ("CloudAntiMalware", "AdwarePUP")),
        ("Sensor Machine Learning", ("OnSensorMLSlider", "OnSensorMLAdwarePUPSlider")),
        ("Quarantine", ("NextGenAV",)),
        ("Execution Blocking", ("CustomBlacklisting", "PreventSuspiciousProcesses", "IntelPrevention")),
    ),
    "Windows": (
        (
            "User-Mode Capabilities",
            (
                "EndUserNotifications", "UnknownDetectionRelatedExecutables", "UnknownExecutables",
                "SensorTamperingProtection",
            ),
        ),
        ("Cloud Machine Learning", ("CloudAntiMalware", "AdwarePUP")),
        ("Sensor Machine Learning", ("OnSensorMLSlider",)),
        ("On Write", ("DetectOnWrite", "QuarantineOnWrite")),
        ("Quarantine", ("NextGenAV",)),
        (
            "Execution Blocking",
            (
                "CustomBlacklisting", "PreventSuspiciousProcesses", "SuspiciousRegistryOperations",
                "MaliciousPowershell", "IntelPrevention", "SuspiciousKernelDrivers",
            ),
        ),
    ),
}  # fmt: skip
# The machine-learning sliders whose prevention level decides whether an ML detection is prevented, and
# the toggle that blocks what behavioural indicators of attack flag.
ML_PREVENTION_SLIDERS = ("CloudAntiMalware", "OnSensorMLSlider")
IOA_PREVENTION_TOGGLE = "PreventSuspiciousProcesses"


def _setting_ids(platform: str) -> list[str]:
    return [sid for _, ids in CATEGORIES[platform] for sid in ids]


def blank_prevention(platform: str) -> dict[str, Any]:
    """Every setting off: a new policy's settings (Caracara's blank template)."""
    return {
        sid: {"detection": "DISABLED", "prevention": "DISABLED"}
        if SETTINGS[sid][1] == "mlslider"
        else {"enabled": False}
        for sid in _setting_ids(platform)
    }


def detect_only_prevention(platform: str) -> dict[str, Any]:
    """``platform_default``'s settings here: machine learning detects (MODERATE) and prevents nothing."""
    settings = blank_prevention(platform)
    for sid, (_, kind) in SETTINGS.items():
        if sid in settings and kind == "mlslider":
            settings[sid] = {"detection": "MODERATE", "prevention": "DISABLED"}
    return settings


def prevents(settings: dict[str, Any] | None, kind: str) -> bool:
    """Whether prevention settings in force on a sensor block a detection of ``kind``: for
    ``machine_learning`` a slider's prevention level above DISABLED, for ``behavioral`` the
    Suspicious Processes toggle."""
    if not settings:
        return False
    if kind == "machine_learning":
        return any(
            (settings.get(sid) or {}).get("prevention", "DISABLED") != "DISABLED"
            for sid in ML_PREVENTION_SLIDERS
        )
    return bool((settings.get(IOA_PREVENTION_TOGGLE) or {}).get("enabled"))


def default_sensor_update() -> dict[str, Any]:
    return {
        "build": "",
        "show_early_adopter_builds": False,
        "uninstall_protection": "ENABLED",
        "variants": [],
        "scheduler": {"enabled": False, "timezone": "Etc/UTC", "schedules": []},
    }


@dataclass
class Policy:
    """One prevention or sensor-update policy of a customer."""

    kind: str
    id: str
    cid: str
    name: str
    description: str
    platform_name: str
    enabled: bool
    settings: dict[str, Any]
    created_by: str
    created_at: float
    modified_by: str
    modified_at: float
    groups: list[str] = field(default_factory=list)

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_NAME

    def settings_hash(self) -> str:
        return digest(self.kind, json.dumps(self.settings, sort_keys=True))[:8]


@dataclass
class Assignment:
    """A policy assigned to a device, as its record reports it: applied once the sensor picked it up.

    ``settings`` is what the assignment puts in force once applied; ``previous`` what was in force
    before (what the sensor enforces until then).
    """

    policy_id: str
    settings_hash: str
    assigned_at: float
    applies_at: float | None  # None: never (faults.policy_never_applied, a stale record)
    settings: dict[str, Any]
    previous: dict[str, Any] | None
    uninstall_protection: str | None = None

    def applied(self, now: float) -> bool:
        return self.applies_at is not None and self.applies_at <= now

    def in_force(self, now: float) -> dict[str, Any] | None:
        return self.settings if self.applied(now) else self.previous

    def record(self, kind: str, now: float) -> dict[str, Any]:
        """The device record's ``device_policies`` entry (``applied_date`` only once applied)."""
        entry: dict[str, Any] = {
            "policy_type": kind,
            "policy_id": self.policy_id,
            "applied": self.applied(now),
            "settings_hash": self.settings_hash,
            "assigned_date": iso(self.assigned_at),
        }
        if self.applies_at is not None and self.applied(now):
            entry["applied_date"] = iso(self.applies_at)
        if kind == PREVENTION:
            entry["rule_groups"] = []
        elif self.uninstall_protection:
            entry["uninstall_protection"] = self.uninstall_protection
        return entry


class PolicyStore:
    """A customer's policies of one kind, by id, with each platform's precedence order."""

    def __init__(self, kind: str, cid: str, seeded_at: float) -> None:
        self.kind = kind
        self.cid = cid
        self.policies: dict[str, Policy] = {}
        self.order: dict[str, list[str]] = {p: [] for p in PLATFORMS}  # non-default, highest first
        for platform in PLATFORMS:
            settings = detect_only_prevention(platform) if kind == PREVENTION else default_sensor_update()
            policy = Policy(
                kind=kind,
                id=digest("policy", kind, cid, platform)[:32],
                cid=cid,
                name=DEFAULT_NAME,
                description="Platform default policy",
                platform_name=platform,
                enabled=True,
                settings=settings,
                created_by="CS",
                created_at=seeded_at,
                modified_by="CS",
                modified_at=seeded_at,
            )
            self.policies[policy.id] = policy

    def default(self, platform: str) -> Policy | None:
        return next((p for p in self.policies.values() if p.is_default and p.platform_name == platform), None)

    def precedence(self, policy: Policy) -> int:
        order = self.order[policy.platform_name]
        return len(order) + 1 if policy.is_default else order.index(policy.id) + 1

    def effective(self, platform: str, groups: list[str]) -> Policy | None:
        """The policy that applies to a device of ``platform`` in ``groups``."""
        if platform not in self.order:
            return None
        for policy_id in self.order[platform]:
            policy = self.policies[policy_id]
            if policy.enabled and set(policy.groups) & set(groups):
                return policy
        return self.default(platform)

    def by_name(self, name: str) -> Policy | None:
        return next((p for p in self.policies.values() if p.name.lower() == name.lower()), None)

    def forget_group(self, group_id: str) -> None:
        for policy in self.policies.values():
            if group_id in policy.groups:
                policy.groups.remove(group_id)


def _canonical_platform(value: Any) -> str:
    if isinstance(value, str):
        for platform in PLATFORMS:
            if platform.lower() == value.lower():
                return platform
    raise ApiError(400, f"platform_name {value!r}: one of {', '.join(PLATFORMS)}")


def _prevention_settings(platform: str, items: Any, current: dict[str, Any]) -> dict[str, Any]:
    """``current`` with the ``[{"id", "value"}]`` changes applied; 400 naming the first bad one."""
    if not isinstance(items, list):
        raise ApiError(400, 'settings must be a list of {"id": ..., "value": ...}')
    settings = dict(current)
    allowed = set(_setting_ids(platform))
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ApiError(400, 'settings must be a list of {"id": ..., "value": ...}')
        sid, value = item["id"], item.get("value")
        if sid not in allowed:
            raise ApiError(400, f"setting {sid!r} is not a {platform} prevention setting")
        if SETTINGS[sid][1] == "mlslider":
            if not isinstance(value, dict) or set(value) - {"detection", "prevention"}:
                raise ApiError(400, f'setting {sid!r}: value must be {{"detection": ..., "prevention": ...}}')
            merged = {**settings[sid], **value}
            for key in ("detection", "prevention"):
                if merged[key] not in ML_LEVELS:
                    raise ApiError(
                        400, f"setting {sid!r}: {key} {merged[key]!r}: one of {', '.join(ML_LEVELS)}"
                    )
            if ML_LEVELS.index(merged["prevention"]) > ML_LEVELS.index(merged["detection"]):
                raise ApiError(400, f"setting {sid!r}: prevention cannot be more aggressive than detection")
            settings[sid] = merged
        else:
            if not isinstance(value, dict) or not isinstance(value.get("enabled"), bool):
                raise ApiError(400, f'setting {sid!r}: value must be {{"enabled": true|false}}')
            settings[sid] = {"enabled": value["enabled"]}
    return settings


class PolicyResponses:
    """One kind's policy endpoints, answered from the customers' :class:`PolicyStore`."""

    def __init__(self, api: FalconApi, kind: str) -> None:
        self.api = api
        self.kind = kind

    def routes(self) -> dict[tuple[str, str], tuple[str, Callable[[Request, Token], Response]]]:
        if self.kind == PREVENTION:
            return {
                ("GET", "/policy/queries/prevention/v1"): ("queryPreventionPolicies", self.query),
                ("GET", "/policy/combined/prevention/v1"): ("queryCombinedPreventionPolicies", self.combined),
                ("GET", "/policy/entities/prevention/v1"): ("getPreventionPolicies", self.get),
                ("POST", "/policy/entities/prevention/v1"): ("createPreventionPolicies", self.create),
                ("PATCH", "/policy/entities/prevention/v1"): ("updatePreventionPolicies", self.update),
                ("DELETE", "/policy/entities/prevention/v1"): ("deletePreventionPolicies", self.delete),
                ("POST", "/policy/entities/prevention-actions/v1"): (
                    "performPreventionPoliciesAction",
                    self.action,
                ),
                ("POST", "/policy/entities/prevention-precedence/v1"): (
                    "setPreventionPoliciesPrecedence",
                    self.set_precedence,
                ),
                ("GET", "/policy/queries/prevention-members/v1"): (
                    "queryPreventionPolicyMembers",
                    self.query_members,
                ),
                ("GET", "/policy/combined/prevention-members/v1"): (
                    "queryCombinedPreventionPolicyMembers",
                    self.combined_members,
                ),
            }
        return {
            ("GET", "/policy/queries/sensor-update/v1"): ("querySensorUpdatePolicies", self.query),
            ("GET", "/policy/combined/sensor-update/v2"): (
                "queryCombinedSensorUpdatePoliciesV2",
                self.combined,
            ),
            ("GET", "/policy/entities/sensor-update/v2"): ("getSensorUpdatePoliciesV2", self.get),
            ("POST", "/policy/entities/sensor-update/v2"): ("createSensorUpdatePoliciesV2", self.create),
            ("PATCH", "/policy/entities/sensor-update/v2"): ("updateSensorUpdatePoliciesV2", self.update),
            ("DELETE", "/policy/entities/sensor-update/v1"): ("deleteSensorUpdatePolicies", self.delete),
            ("POST", "/policy/entities/sensor-update-actions/v1"): (
                "performSensorUpdatePoliciesAction",
                self.action,
            ),
            ("POST", "/policy/entities/sensor-update-precedence/v1"): (
                "setSensorUpdatePoliciesPrecedence",
                self.set_precedence,
            ),
            ("GET", "/policy/queries/sensor-update-members/v1"): (
                "querySensorUpdatePolicyMembers",
                self.query_members,
            ),
            ("GET", "/policy/combined/sensor-update-members/v1"): (
                "queryCombinedSensorUpdatePolicyMembers",
                self.combined_members,
            ),
        }

    # -- rendering ----------------------------------------------------------------------------------
    def body(self, customer: Customer, policy: Policy) -> dict[str, Any]:
        """The policy as ``getPreventionPolicies`` / ``getSensorUpdatePoliciesV2`` answer it."""
        groups: HostGroupStore = customer.groups
        out: dict[str, Any] = {
            "id": policy.id,
            "cid": policy.cid,
            "name": policy.name,
            "description": policy.description,
            "platform_name": policy.platform_name,
            "enabled": policy.enabled,
            "groups": [groups.groups[g].body() for g in policy.groups if g in groups.groups],
            "created_by": policy.created_by,
            "created_timestamp": iso(policy.created_at),
            "modified_by": policy.modified_by,
            "modified_timestamp": iso(policy.modified_at),
        }
        if self.kind == PREVENTION:
            out["ioa_rule_groups"] = []
            out["prevention_settings"] = [
                {
                    "name": category,
                    "settings": [
                        {
                            "id": sid,
                            "name": SETTINGS[sid][0],
                            "type": SETTINGS[sid][1],
                            "description": "",
                            "value": policy.settings[sid],
                        }
                        for sid in ids
                    ],
                }
                for category, ids in CATEGORIES[policy.platform_name]
            ]
        else:
            build = policy.settings.get("build", "")
            row = next(
                (r for r in self.api.build_rows(policy.platform_name.lower()) if r["build"] == build), None
            )
            out["settings"] = {
                **policy.settings,
                "stage": "prod",
                "sensor_version": row["sensor_version"] if row else "",
            }
        return out

    def _visible(self, token: Token) -> list[tuple[Customer, Policy]]:
        pairs = [
            (c, p)
            for c in self.api.backend.customers_for(token)
            for p in c.policies[self.kind].policies.values()
        ]
        return sorted(pairs, key=lambda cp: cp[1].id)

    def _find(self, token: Token, policy_id: Any) -> tuple[Customer, Policy] | None:
        if not isinstance(policy_id, str):
            return None
        for customer in self.api.backend.customers_for(token):
            policy = customer.policies[self.kind].policies.get(policy_id)
            if policy is not None:
                return customer, policy
        return None

    def _not_found(self, policy_id: Any) -> dict[str, Any]:
        return {"code": 404, "message": f"{self.kind} policy {policy_id!r} not found", "id": policy_id}

    def _rows(self, request: Request, token: Token) -> list[dict[str, Any]]:
        precedence: dict[str, int] = {}
        bodies = []
        for customer, policy in self._visible(token):
            precedence[policy.id] = customer.policies[self.kind].precedence(policy)
            bodies.append(self.body(customer, policy))

        def sort_key(row: dict[str, Any], name: str) -> Any:
            if name == "precedence":
                return (row["platform_name"], precedence[row["id"]])
            return fql.text(fql.lookup(row, name))

        return filtered(bodies, request, _POLICY_FIELD, sorts=POLICY_SORTS, sort_key=sort_key)

    # -- policies -----------------------------------------------------------------------------------
    def query(self, request: Request, token: Token) -> Response:
        rows, pagination = page(self._rows(request, token), request, high=POLICIES_MAX_LIMIT)
        return self.api.reply([r["id"] for r in rows], pagination=pagination)

    def combined(self, request: Request, token: Token) -> Response:
        rows, pagination = page(self._rows(request, token), request, high=POLICIES_MAX_LIMIT)
        return self.api.reply(rows, pagination=pagination)

    def get(self, request: Request, token: Token) -> Response:
        ids = ids_arg(request)
        if not ids:
            raise ApiError(400, "ids: at least one policy id is required")
        found, errors = [], []
        for policy_id in ids:
            hit = self._find(token, policy_id)
            if hit is None:
                errors.append(self._not_found(policy_id))
            else:
                found.append(self.body(*hit))
        return self.api.reply(found, status=200 if found else 404, errors=errors)

    @staticmethod
    def _resources(request: Request) -> list[dict[str, Any]]:
        items = body_object(request).get("resources")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise ApiError(400, 'request body must be {"resources": [{...}]}')
        return items

    def _settings(self, platform: str, value: Any, current: dict[str, Any]) -> dict[str, Any]:
        if self.kind == PREVENTION:
            return _prevention_settings(platform, value, current)
        if not isinstance(value, dict):
            raise ApiError(400, "settings must be an object {build, uninstall_protection, ...}")
        if unknown := sorted(set(value) - set(SENSOR_UPDATE_SETTINGS)):
            raise ApiError(400, f"settings: unknown {', '.join(unknown)}")
        settings = {**current, **value}
        builds = {r["build"] for r in self.api.build_rows(platform.lower())}
        if not isinstance(settings["build"], str) or (settings["build"] and settings["build"] not in builds):
            raise ApiError(
                400,
                f"settings.build {settings['build']!r}: not a {platform} build of "
                "queryCombinedSensorUpdateBuilds",
            )
        if settings["uninstall_protection"] not in UNINSTALL_PROTECTION:
            raise ApiError(
                400,
                f"settings.uninstall_protection {settings['uninstall_protection']!r}: "
                f"one of {', '.join(UNINSTALL_PROTECTION)}",
            )
        if not isinstance(settings["scheduler"], dict) or not isinstance(settings["variants"], list):
            raise ApiError(400, "settings.scheduler must be an object and settings.variants a list")
        if not isinstance(settings["show_early_adopter_builds"], bool):
            raise ApiError(400, "settings.show_early_adopter_builds must be true or false")
        return settings

    def create(self, request: Request, token: Token) -> Response:
        customer = self.api.backend.write_customer(token)
        store = customer.policies[self.kind]
        now = self.api.state.clock()
        author = self.api.author(token)
        created = []
        for item in self._resources(request):
            name = item.get("name")
            if not isinstance(name, str) or not name.strip():
                raise ApiError(400, "name: a policy needs a name")
            if store.by_name(name) is not None:
                raise ApiError(400, f"name: a {self.kind} policy named {name!r} already exists")
            platform = _canonical_platform(item.get("platform_name"))
            clone = item.get("clone_id")
            if clone:
                source = store.policies.get(clone)
                if source is None or source.platform_name != platform:
                    raise ApiError(400, f"clone_id {clone!r}: no {platform} {self.kind} policy with that id")
                base = json.loads(json.dumps(source.settings))
            else:
                base = blank_prevention(platform) if self.kind == PREVENTION else default_sensor_update()
            settings = self._settings(platform, item["settings"], base) if "settings" in item else base
            policy = Policy(
                kind=self.kind,
                id=digest("policy", self.kind, customer.cid, name, str(now))[:32],
                cid=customer.cid,
                name=name,
                description=str(item.get("description") or ""),
                platform_name=platform,
                enabled=False,  # "New policies are created disabled"
                settings=settings,
                created_by=author,
                created_at=now,
                modified_by=author,
                modified_at=now,
            )
            store.policies[policy.id] = policy
            store.order[platform].append(policy.id)
            created.append(policy)
        return self.api.reply([self.body(customer, p) for p in created], status=201)

    def update(self, request: Request, token: Token) -> Response:
        now = self.api.state.clock()
        updated, errors = [], []
        for item in self._resources(request):
            hit = self._find(token, item.get("id"))
            if hit is None:
                errors.append(self._not_found(item.get("id")))
                continue
            customer, policy = hit
            name = item.get("name")
            if name is not None and not policy.is_default:
                other = customer.policies[self.kind].by_name(str(name))
                if not str(name).strip() or (other is not None and other.id != policy.id):
                    raise ApiError(400, f"name {name!r}: empty or already taken")
                policy.name = str(name)
            if item.get("description") is not None:
                policy.description = str(item["description"])
            if "settings" in item:
                policy.settings = self._settings(policy.platform_name, item["settings"], policy.settings)
            policy.modified_by, policy.modified_at = self.api.author(token), now
            updated.append(self.body(customer, policy))
        self.api.backend.changed(now, token)
        return self.api.reply(updated, status=200 if updated else 404, errors=errors)

    def delete(self, request: Request, token: Token) -> Response:
        ids = ids_arg(request)
        if not ids:
            raise ApiError(400, "ids: at least one policy id is required")
        hits, errors = [], []
        for policy_id in ids:
            hit = self._find(token, policy_id)
            if hit is None:
                errors.append(self._not_found(policy_id))
            elif hit[1].is_default:
                raise ApiError(400, f"policy {policy_id!r} is the platform default: it cannot be deleted")
            elif hit[1].enabled:
                raise ApiError(400, f"policy {policy_id!r} is enabled: disable it before deleting it")
            else:
                hits.append(hit)
        for customer, policy in hits:
            store = customer.policies[self.kind]
            del store.policies[policy.id]
            store.order[policy.platform_name].remove(policy.id)
        self.api.backend.changed(self.api.state.clock(), token)
        return self.api.reply([p.id for _, p in hits], status=200 if hits else 404, errors=errors)

    def action(self, request: Request, token: Token) -> Response:
        action = request.args.get("action_name", "")
        if action not in POLICY_ACTIONS:
            raise ApiError(400, f"action_name {action!r}: one of {', '.join(POLICY_ACTIONS)}")
        if action.endswith("rule-group"):
            raise ApiError(400, f"action_name {action!r}: fleetsim emulates no IOA rule groups")
        body = body_object(request)
        ids = body_ids(body)
        group_id = action_parameters(body).get("group_id", "")
        if action.endswith("host-group") and not group_id:
            raise ApiError(400, f'{action}: action_parameters must name the "group_id"')
        hits, errors = [], []
        for policy_id in ids:
            hit = self._find(token, policy_id)
            if hit is None:
                errors.append(self._not_found(policy_id))
                continue
            customer, policy = hit
            if policy.is_default:
                raise ApiError(400, f"{action}: policy {policy_id!r} is the platform default")
            if action.endswith("host-group") and group_id not in customer.groups.groups:
                raise ApiError(400, f"{action}: host group {group_id!r} not found in the policy's CID")
            hits.append(hit)
        now = self.api.state.clock()
        for _, policy in hits:
            if action in ("enable", "disable"):
                policy.enabled = action == "enable"
            elif action == "add-host-group" and group_id not in policy.groups:
                policy.groups.append(group_id)
            elif action == "remove-host-group" and group_id in policy.groups:
                policy.groups.remove(group_id)
            policy.modified_by, policy.modified_at = self.api.author(token), now
        self.api.backend.changed(now, token)
        return self.api.reply([self.body(c, p) for c, p in hits], status=200 if hits else 404, errors=errors)

    def set_precedence(self, request: Request, token: Token) -> Response:
        body = body_object(request)
        ids = body_ids(body)
        platform = _canonical_platform(body.get("platform_name"))
        customer = self.api.backend.write_customer(token)
        store = customer.policies[self.kind]
        current = store.order[platform]
        if len(set(ids)) != len(ids) or set(ids) != set(current):
            raise ApiError(
                400,
                f"ids must list every non-default {platform} {self.kind} policy once "
                f"(expected {len(current)}: {', '.join(current) or 'none'})",
            )
        store.order[platform] = list(ids)
        self.api.backend.changed(self.api.state.clock(), token)
        return self.api.reply([])

    # -- members ------------------------------------------------------------------------------------
    def _members(self, request: Request, token: Token) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        policy_id = request.args.get("id", "")
        if not policy_id:
            raise ApiError(400, "id: the policy whose members to list is required")
        if self._find(token, policy_id) is None:
            raise ApiError(404, f"{self.kind} policy {policy_id!r} not found")
        key = RECORD_KEY[self.kind]
        records = [r for r in self.api.devices(token) if r["device_policies"][key]["policy_id"] == policy_id]
        return page(filtered(records, request, device_field), request, high=MEMBERS_MAX_LIMIT)

    def query_members(self, request: Request, token: Token) -> Response:
        rows, pagination = self._members(request, token)
        return self.api.reply([r["device_id"] for r in rows], pagination=pagination)

    def combined_members(self, request: Request, token: Token) -> Response:
        rows, pagination = self._members(request, token)
        return self.api.reply(rows, pagination=pagination)
