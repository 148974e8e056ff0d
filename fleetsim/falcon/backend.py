"""The Falcon cloud's state per customer (CID): host groups, policies and their assignments, exclusions,
alerts; and the device view every service reads.

As moto keeps a backend per account and region, fleetsim keeps a :class:`Customer` per CID, created the
first time anything reads or writes it (with what every Falcon customer starts with: a
``platform_default`` prevention and sensor-update policy per platform, and one dynamic host group per
environment its hosts run in). :meth:`FalconBackend.devices` builds every registered device's record
from the fleet, adds its ``groups`` and, for each policy kind, the policy that applies
(:meth:`~fleetsim.falcon.policies.PolicyStore.effective`), recording a new :class:`Assignment` whenever
that policy or its settings changed; services call :meth:`FalconBackend.changed` after each write so
assignments carry the time of the change that caused them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from fleetsim.falcon.devices import device_record
from fleetsim.falcon.exclusions import ExclusionStore
from fleetsim.falcon.host_groups import HostGroupStore
from fleetsim.falcon.policies import (
    KINDS,
    PREVENTION,
    RECORD_KEY,
    SENSOR_UPDATE,
    Assignment,
    Policy,
    PolicyStore,
)
from fleetsim.falcon.wire import ApiError, Token, short_cid
from fleetsim.fleet import FalconSensor, FleetState, SimHost
from fleetsim.seed import falcon_cid

SEEDED_ASSIGNMENT_AGE = 90 * 86400  # seeded devices got their policies this long before fleetsim started
SEEDED_OBJECTS_AGE = 400 * 86400  # and their customer's default groups and policies this long before


@dataclass
class Device:
    """One device record and what it is read from."""

    host: SimHost
    sensor: FalconSensor
    cid: str  # the short CID the record belongs to
    stale: bool
    record: dict[str, Any]


class Customer:
    """One Falcon customer (CID): everything its API clients create and read besides devices."""

    def __init__(self, cid: str, seeded_at: float, environments: set[str]) -> None:
        self.cid = cid
        self.groups = HostGroupStore(cid, seeded_at, environments)
        self.policies = {kind: PolicyStore(kind, cid, seeded_at) for kind in KINDS}
        self.assignments: dict[tuple[str, str], Assignment] = {}  # (device id, kind)
        self.exclusions = ExclusionStore(cid)
        self.alerts: dict[str, dict[str, Any]] = {}  # by composite id

    def forget_group(self, group_id: str) -> None:
        """Delete a host group, and detach it from the policies and exclusions that name it."""
        self.groups.groups.pop(group_id, None)
        for store in self.policies.values():
            store.forget_group(group_id)
        self.exclusions.forget_group(group_id)

    def snapshot(self) -> dict[str, Any]:
        """What the control plane shows of the customer (``GET /fleetsim/falcon``)."""
        return {
            "host_groups": [
                {
                    "id": g.id,
                    "name": g.name,
                    "group_type": g.group_type,
                    "assignment_rule": g.assignment_rule(),
                }
                for g in self.groups.groups.values()
            ],
            "policies": [
                {
                    "kind": p.kind,
                    "id": p.id,
                    "name": p.name,
                    "platform_name": p.platform_name,
                    "enabled": p.enabled,
                    "precedence": store.precedence(p),
                    "groups": list(p.groups),
                    "settings_hash": p.settings_hash(),
                }
                for store in self.policies.values()
                for p in store.policies.values()
            ],
            "exclusions": [
                {"kind": e.kind, "id": e.id, "value": e.value, "name": e.name, "groups": list(e.groups)}
                for store in self.exclusions.exclusions.values()
                for e in store.values()
            ],
            "exclusion_history": list(self.exclusions.history),
            "alerts": len(self.alerts),
        }


class FalconBackend:
    """Every customer's state, created lazily, and the device view over the fleet."""

    def __init__(self, state: FleetState, started: float, parent_client: str) -> None:
        self.state = state
        self.started = started
        scenario = state.scenario
        self.tenant_cids = {t.id: short_cid(falcon_cid(t.id)) for t in scenario.tenants}
        # The MSSP parent's own CID: where it writes when it names no member_cid. No device is in it.
        self.parent_cid = short_cid(falcon_cid(f"mssp-parent:{parent_client}"))
        self.environments: dict[str, set[str]] = {}
        for tenant in scenario.tenants:
            envs = self.environments.setdefault(self.tenant_cids[tenant.id], set())
            for fleet in (tenant.aws, tenant.azure, tenant.gcp):
                envs.update(g.environment for g in (fleet.groups if fleet else []))
        self.never_applied = {
            (t.id, name) for t in scenario.tenants for name in t.faults.policy_never_applied
        }
        with state.lock:
            # The kernel each stale record was last seen on: the one the host ran when seeded.
            self.stale_kernels = {
                h.falcon.stale_device_id: h.kernel
                for h in state.hosts.values()
                if h.falcon is not None and h.falcon.stale_device_id
            }
        self.customers: dict[str, Customer] = {}

    def reset(self) -> None:
        self.customers.clear()

    # -- customers ----------------------------------------------------------------------------------
    def customer(self, cid: str) -> Customer:
        key = short_cid(cid)
        if key not in self.customers:
            seeded = self.started - SEEDED_OBJECTS_AGE
            self.customers[key] = Customer(key, seeded, self.environments.get(key, set()))
        return self.customers[key]

    def visible_cids(self, token: Token) -> set[str]:
        """The CIDs a token sees: its own, or (the MSSP parent naming no member_cid) every tenant's and
        the parent's own. A CID no client of the scenario holds (a sensor registered elsewhere) never."""
        if token.cids is not None:
            return set(token.cids)
        return {*self.tenant_cids.values(), self.parent_cid}

    def customers_for(self, token: Token) -> list[Customer]:
        return [self.customer(cid) for cid in sorted(self.visible_cids(token))]

    def write_customer(self, token: Token) -> Customer:
        """The customer a token's writes go to: its one CID, or the MSSP parent's own."""
        if token.cids is None:
            return self.customer(self.parent_cid)
        if len(token.cids) != 1:
            raise ApiError(400, "this token acts for several CIDs: name one with member_cid")
        return self.customer(next(iter(token.cids)))

    # -- devices ------------------------------------------------------------------------------------
    def devices(self, now: float, cids: set[str] | None = None) -> list[Device]:
        """Every registered device record (stale ones too) of the CIDs (default: all), with groups and
        policies, by device id."""
        out: list[Device] = []
        with self.state.lock:
            for host in self.state.hosts.values():
                sensor = host.falcon
                if sensor is None or not sensor.registered(now):
                    continue
                if cids is not None and short_cid(sensor.cid) not in cids:
                    continue
                customer = self.customer(sensor.cid)
                for stale in (False, True) if sensor.stale_device_id else (False,):
                    record = device_record(
                        host,
                        sensor,
                        now=now,
                        started=self.started,
                        stale=stale,
                        stale_kernel=self.stale_kernels.get(sensor.stale_device_id or ""),
                    )
                    self._derive(customer, host, sensor, record, now, stale=stale)
                    out.append(Device(host, sensor, customer.cid, stale, record))
        out.sort(key=lambda d: d.record["device_id"])
        return out

    def changed(self, now: float, token: Token) -> None:
        """Re-derive the devices of the CIDs a write could touch, so new assignments date from it."""
        self.devices(now, self.visible_cids(token))

    def _derive(
        self,
        customer: Customer,
        host: SimHost,
        sensor: FalconSensor,
        record: dict[str, Any],
        now: float,
        *,
        stale: bool,
    ) -> None:
        groups = customer.groups.member_of(record)
        record["groups"] = groups
        entries: dict[str, Any] = {}
        for kind in KINDS:
            policy = customer.policies[kind].effective(record["platform_name"], groups)
            if policy is None:
                continue
            assignment = self._assign(
                customer, host, sensor, record["device_id"], kind, policy, now, stale=stale
            )
            entries[RECORD_KEY[kind]] = assignment.record(kind, now)
        record["device_policies"] = entries
        record["policies"] = [entries[RECORD_KEY[PREVENTION]]] if RECORD_KEY[PREVENTION] in entries else []

    def _assign(
        self,
        customer: Customer,
        host: SimHost,
        sensor: FalconSensor,
        device_id: str,
        kind: str,
        policy: Policy,
        now: float,
        *,
        stale: bool,
    ) -> Assignment:
        """The device's assignment for a policy kind, a new one when the policy or its settings changed.

        A device's first assignment dates from its registration (seeded devices: long before fleetsim
        started, already applied); a later one from now. It applies after the apply delay, never on a
        host in ``faults.policy_never_applied``, and never on a stale record (no sensor answers for it).
        """
        key = (device_id, kind)
        current = customer.assignments.get(key)
        settings_hash = policy.settings_hash()
        if current is not None and current.policy_id == policy.id and current.settings_hash == settings_hash:
            return current
        delay = self.state.timings.falcon_policy_apply_seconds
        seeded = sensor.registered_at is None
        if current is None:
            assigned = self.started - SEEDED_ASSIGNMENT_AGE if seeded else (sensor.registered_at or now)
            applies: float | None = assigned if seeded else assigned + delay
        else:
            assigned, applies = now, now + delay
            if stale:
                applies = None
        if (host.tenant, host.name) in self.never_applied:
            applies = None
        assignment = Assignment(
            policy_id=policy.id,
            settings_hash=settings_hash,
            assigned_at=assigned,
            applies_at=applies,
            settings=copy.deepcopy(policy.settings),
            previous=current.in_force(now) if current is not None else None,
            uninstall_protection=policy.settings.get("uninstall_protection")
            if kind == SENSOR_UPDATE
            else None,
        )
        customer.assignments[key] = assignment
        return assignment
