"""Device records as the Hosts API returns them, read from the fleet.

A record (``PostDeviceDetailsV2``, FalconPy's ``_endpoint/_hosts.py``) is built from the host as it is now
and its sensor: identity (``device_id`` = the AID, ``cid``, ``hostname``, the cloud identity EC2 and
GCE sensors read from instance metadata), OS and kernel, ``agent_version``,
``reduced_functionality_mode`` ("yes"/"no", a string) and times. What Falcon derives for the device
(``groups``, ``device_policies``, ``policies``) is added by :mod:`fleetsim.falcon.backend` from the
customer's host groups and policies.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fleetsim.falcon import fql
from fleetsim.falcon.wire import digest, fraction, iso
from fleetsim.fleet import FalconSensor, SimHost
from fleetsim.platforms import Platform

STALE_RECORD_AGE = dt.timedelta(days=20)  # when a stale record's sensor was last heard from

DEVICE_FIELDS = frozenset(
    {
        "device_id", "cid", "hostname", "platform_name", "platform_id", "os_version", "os_product_name",
        "major_version", "minor_version", "kernel_version", "agent_version", "status", "last_seen",
        "first_seen", "modified_timestamp", "reduced_functionality_mode", "product_type",
        "product_type_desc", "local_ip", "external_ip", "mac_address", "tags", "groups",
        "machine_domain", "system_manufacturer", "system_product_name", "instance_id",
        "service_provider", "service_provider_account_id", "zone_group", "config_id_platform",
        "agent_load_flags", "provision_status", "serial_number", "connection_ip",
    }
)  # fmt: skip
DEVICE_NESTED = ("device_policies", "policies")
device_field = fql.field_checker(DEVICE_FIELDS, DEVICE_NESTED)
# What a dynamic host group's assignment rule may name: what the sensor reports, not what Falcon derives
# from the groups themselves (a rule on ``groups`` or policies would be circular).
rule_field = fql.field_checker(DEVICE_FIELDS - {"groups"})


def older_version(version: str) -> str:
    """The sensor version a stale record reports: an older release than the live sensor."""
    parts = [int(p) if p.isdigit() else 0 for p in version.split(".")] + [0, 0, 0, 0]
    major, minor, build = parts[0], parts[1], parts[2]
    return f"{major}.{max(minor - 1, 0)}.{max(build - 100, 0)}.0"


_OS_SHORT = {
    "Red Hat Enterprise Linux": "RHEL",
    "Red Hat Enterprise Linux Server": "RHEL",
    "CentOS Linux": "CentOS",
}


def _os_version(platform: Platform) -> str:
    if platform.platform_type == "Windows":
        return platform.platform_name.removeprefix("Microsoft ").removesuffix(" Datacenter")
    short = _OS_SHORT.get(platform.platform_name, platform.platform_name)
    return f"{short} {'.'.join(platform.platform_version.split('.')[:2])}"


def _cloud_fields(host: SimHost) -> dict[str, Any]:
    """What the sensor reads from the instance metadata: only EC2 and GCE hosts have it."""
    if host.cloud == "aws":
        return {
            "instance_id": host.host_id,
            "service_provider": "AWS_EC2_V2",
            "service_provider_account_id": host.account,
            "zone_group": f"{host.region}a",
            "system_manufacturer": "Amazon EC2",
            "system_product_name": "m5.large",
        }
    if host.cloud == "gcp":
        return {
            "instance_id": host.host_id,
            "service_provider": "GCP",
            "service_provider_account_id": host.account,
            "zone_group": host.region,
            "system_manufacturer": "Google",
            "system_product_name": "Google Compute Engine",
        }
    return {"system_manufacturer": "VMware, Inc.", "system_product_name": "VMware7,1"}


def device_record(
    host: SimHost, sensor: FalconSensor, *, now: float, started: float, stale: bool, stale_kernel: str | None
) -> dict[str, Any]:
    """One device record as ``PostDeviceDetailsV2`` returns it, read from the host as it is now.

    Without ``groups`` and the policies, which the backend adds. A sensor installed while fleetsim runs
    was first seen when it registered; a seeded one a year before fleetsim started (twenty days before,
    when a reinstall left a stale record behind).
    """
    platform = host.platform
    linux = platform.platform_type == "Linux"
    device_id = sensor.stale_device_id if stale and sensor.stale_device_id else sensor.device_id
    if stale:
        kernel = (stale_kernel if linux else platform.platform_version) or ""
        seen = started - STALE_RECORD_AGE.total_seconds() - 3600 * fraction("seen", device_id)
        first = started - 400 * 86400
        version, rfm = older_version(sensor.version), "no"
    else:
        kernel = (host.kernel if linux else platform.platform_version) or ""
        reinstalled = sensor.stale_device_id is not None
        if sensor.registered_at is not None:
            first = sensor.registered_at
        elif reinstalled:
            first = started - (STALE_RECORD_AGE.total_seconds() - 3600)
        else:
            first = started - 365 * 86400
        seen = max(first, now - 240 * fraction("seen", device_id))
        version, rfm = sensor.version, "yes" if sensor.rfm else "no"
    kernel_parts = kernel.replace("-", ".").split(".")
    mac = digest("mac", host.tenant, host.name)
    return {
        "device_id": device_id,
        "cid": sensor.cid,
        "hostname": host.name,
        "platform_id": "3" if linux else "0",
        "platform_name": platform.platform_type,
        "os_version": _os_version(platform),
        "os_product_name": platform.platform_name.removeprefix("Microsoft "),
        "major_version": kernel_parts[0] if kernel_parts and kernel_parts[0] else "",
        "minor_version": kernel_parts[1] if len(kernel_parts) > 1 else "",
        "kernel_version": kernel,
        "agent_version": version,
        "agent_load_flags": "0",
        "config_id_platform": "8" if linux else "3",
        "status": "normal",
        "provision_status": "Provisioned",
        "first_seen": iso(first),
        "last_seen": iso(seen),
        "modified_timestamp": iso(seen),
        "reduced_functionality_mode": rfm,
        "product_type": "3",
        "product_type_desc": "Server",
        "local_ip": host.private_ip,
        "connection_ip": host.private_ip,
        "external_ip": "",
        "mac_address": "-".join(mac[i : i + 2] for i in range(0, 12, 2)),
        "machine_domain": "",
        "serial_number": digest("serial", host.tenant, host.name)[:20].upper(),
        "tags": [f"FalconGroupingTags/{host.environment}"],
        **_cloud_fields(host),
    }
