"""Seed what is not AWS: Azure Arc machines, GCP instances, and a Falcon sensor on every host.

AWS hosts are created in moto by :mod:`fleetsim.aws.seed` first; this module adds the other clouds'
hosts to the same fleet registry and gives every host its Falcon device record, so one scenario
describes one consistent fleet whatever cloud each host lives in.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from fleetsim.fleet import FalconSensor, FleetState, SimHost
from fleetsim.scenario import FleetGroup, Scenario, TenantFleet, group_host_names


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("|".join(parts).encode()).digest()


def private_ip(tenant: str, name: str) -> str:
    d = _digest("ip", tenant, name)
    return f"10.{d[0]}.{d[1]}.{max(d[2], 4)}"


def gce_instance_id(project: str, name: str) -> str:
    """A stable 19-digit Compute Engine instance id."""
    return str(10**18 + int.from_bytes(_digest("gce", project, name)[:8], "big") % (9 * 10**18))


def arc_machine_id(subscription: str, resource_group: str, name: str) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.HybridCompute/machines/{name}"
    )


def falcon_cid(tenant: str) -> str:
    return _digest("cid", tenant)[:16].hex()


def falcon_aid(tenant: str, name: str, generation: str = "") -> str:
    return _digest("aid", tenant, name, generation)[:16].hex()


def _new_host(
    state: FleetState,
    tenant: TenantFleet,
    group: FleetGroup,
    name: str,
    *,
    cloud: str,
    account: str,
    region: str,
    host_id: str,
    agent_status: str,
    resource_group: str | None = None,
) -> SimHost:
    family = state.catalog_by_family.get(group.os_family, [])
    faults = tenant.faults
    return SimHost(
        tenant=tenant.id,
        cloud=cloud,
        account=account,
        region=region,
        host_id=host_id,
        name=name,
        environment=group.environment,
        os_family=group.os_family,
        criticality=group.criticality,
        kernel=group.kernel,
        agent_status=agent_status,
        missing={p.id for p in family if p.released > group.installed_until},
        installed={p.id for p in family if p.released <= group.installed_until},
        install_fails=name in faults.install_fails,
        install_leaves_missing=name in faults.install_leaves_missing,
        hangs_on_reboot=name in faults.hung_reboot,
        backup_fails=name in faults.backup_fails,
        backup_seconds=faults.backup_slow_seconds.get(name),
        resource_group=resource_group,
    )


def seed_azure_and_gcp(state: FleetState, scenario: Scenario) -> None:
    """Arc machines (status Connected/Disconnected) and GCE instances (OS Config agent active or not)."""
    for tenant in scenario.tenants:
        offline = set(tenant.faults.agent_offline)
        if az := tenant.azure:
            for group in az.groups:
                for name in group_host_names(group):
                    host = _new_host(
                        state,
                        tenant,
                        group,
                        name,
                        cloud="azure",
                        account=az.subscription_id,
                        region=az.location,
                        host_id=arc_machine_id(az.subscription_id, az.resource_group, name),
                        agent_status="Disconnected" if name in offline else "Connected",
                        resource_group=az.resource_group,
                    )
                    state.add_host(host)
        if gcp := tenant.gcp:
            for group in gcp.groups:
                for name in group_host_names(group):
                    host = _new_host(
                        state,
                        tenant,
                        group,
                        name,
                        cloud="gcp",
                        account=gcp.project_id,
                        region=group.zone or "",
                        host_id=gce_instance_id(gcp.project_id, name),
                        agent_status="NO_AGENT_DETECTED" if name in offline else "ACTIVE",
                    )
                    state.add_host(host)


def seed_falcon(state: FleetState, scenario: Scenario) -> None:
    """A Falcon device record for every host whose group runs a sensor."""
    groups: dict[tuple[str, str], FleetGroup] = {}
    for tenant in scenario.tenants:
        for fleet in (tenant.aws, tenant.azure, tenant.gcp):
            for group in fleet.groups if fleet else []:
                for name in group_host_names(group):
                    groups[(tenant.id, name)] = group
    faults = {t.id: t.faults for t in scenario.tenants}
    for host in state.hosts.values():
        if host.kind != "instance":  # RDS DB instances run no sensor (and have no private IP of ours)
            continue
        host.private_ip = private_ip(host.tenant, host.name)
        group = groups[(host.tenant, host.name)]
        version = group.falcon_sensor
        if version is None:
            continue
        if version == "default":
            version = scenario.falcon.default_sensor_version
        f = faults[host.tenant]
        host.falcon = FalconSensor(
            device_id=falcon_aid(host.tenant, host.name),
            cid=falcon_cid(host.tenant),
            version=version if version.count(".") == 3 else f"{version}.0",
            rfm=host.name in f.falcon_rfm,
            stale_device_id=falcon_aid(host.tenant, host.name, "stale")
            if host.name in f.falcon_duplicate
            else None,
        )


def seeded_at() -> str:
    return dt.datetime.now(dt.UTC).isoformat()
