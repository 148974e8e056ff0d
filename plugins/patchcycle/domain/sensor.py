"""The endpoint sensor (CrowdStrike Falcon) seen from the fleet: which device record is which host, and
whether a host may be patched without leaving it blind.

Falcon knows hosts by its own device id (AID). A host is matched to its device record by the cloud's
identity, never by hostname alone: hostnames repeat across tenants and accounts, get reused after a
rebuild, and a host renamed in the cloud keeps its old name in Falcon. Cloud instances (EC2, GCE) are
matched on the instance id and account/project Falcon records from the instance metadata; servers
without cloud metadata (Azure Arc machines, which run anywhere) on hostname **and** private IP
together. A reinstalled sensor leaves a stale second record; the most recently seen one wins.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from patchcycle.domain.falcon import sensor_supports_kernel

# How a host was matched to its Falcon record (the ``falcon_match`` column).
MATCH_INSTANCE = "instance_id"
MATCH_HOSTNAME_IP = "hostname_and_ip"
MATCH_NONE = "none"
MATCH_CONFLICT = "conflict"  # a device with the host's name exists but its identity is another host's

# Falcon's service_provider for the clouds it records instance metadata from.
_PROVIDERS = {"aws": {"AWS_EC2", "AWS_EC2_V2"}, "gcp": {"GCP"}}

FALCON_COLUMNS: dict[str, str] = {
    "falcon_device_id": "Falcon device id (AID) of the host's sensor; empty when no record matched",
    "falcon_sensor_version": "sensor version the record reports (e.g. 7.14.16703.0)",
    "falcon_rfm": "True when the sensor runs in reduced-functionality mode (blind to the kernel)",
    "falcon_last_seen": "when Falcon last heard from the sensor (ISO-8601)",
    "falcon_match": "how the record was matched: instance_id | hostname_and_ip | none | conflict",
    "falcon_records": "how many device records matched (more than one: a stale record from a reinstall)",
}


def _seen(device: Mapping[str, Any]) -> str:
    return str(device.get("last_seen") or "")


def attach_falcon(
    rows: Iterable[Mapping[str, Any]], devices: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The inventory rows with the Falcon columns filled from the matching device records."""
    by_instance: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    by_name_ip: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    by_name: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for device in devices:
        name = str(device.get("hostname") or "").lower()
        by_name[name].append(device)
        if device.get("instance_id"):
            for cloud, providers in _PROVIDERS.items():
                if device.get("service_provider") in providers:
                    key = (cloud, str(device.get("service_provider_account_id")), str(device["instance_id"]))
                    by_instance[key].append(device)
        if device.get("local_ip"):
            by_name_ip[(name, str(device["local_ip"]))].append(device)
    out = []
    for row in rows:
        matched: list[Mapping[str, Any]] = []
        how = MATCH_NONE
        if row.get("cloud") in _PROVIDERS:
            matched = by_instance.get((row["cloud"], str(row["account"]), str(row["host_id"])), [])
            how = MATCH_INSTANCE if matched else MATCH_NONE
        if not matched and row.get("private_ip"):
            matched = by_name_ip.get((str(row.get("name") or "").lower(), str(row["private_ip"])), [])
            how = MATCH_HOSTNAME_IP if matched else MATCH_NONE
        if not matched and by_name.get(str(row.get("name") or "").lower()):
            how = MATCH_CONFLICT
        best = max(matched, key=_seen) if matched else None
        out.append(
            {
                **row,
                "falcon_device_id": best.get("device_id") if best else None,
                "falcon_sensor_version": best.get("agent_version") if best else None,
                "falcon_rfm": (str(best.get("reduced_functionality_mode", "")).lower() == "yes")
                if best
                else None,
                "falcon_last_seen": best.get("last_seen") if best else None,
                "falcon_match": how,
                "falcon_records": len(matched),
            }
        )
    return out


@dataclass(frozen=True)
class SensorVerdict:
    """What the sensor gates decide for one host: patch in full, patch without the kernel, or hold."""

    action: str  # patch | no_kernel | hold
    reason: str | None = None


PATCH = SensorVerdict("patch")


def sensor_gate(host: Mapping[str, Any]) -> SensorVerdict:
    """A host needs a matched sensor that is not in reduced-functionality mode."""
    match = host.get("falcon_match")
    if match == MATCH_CONFLICT:
        return SensorVerdict(
            "hold",
            f"a Falcon device named {host.get('name')!r} exists but its cloud identity is another host's; "
            "not matched on hostname alone",
        )
    if not host.get("falcon_device_id"):
        return SensorVerdict("hold", "no Falcon sensor record for this host")
    if host.get("falcon_rfm"):
        return SensorVerdict(
            "hold", f"Falcon sensor {host.get('falcon_sensor_version')} is in reduced-functionality mode"
        )
    return PATCH


def kernel_gate(
    host: Mapping[str, Any],
    target: str | None,
    support: Mapping[str, Mapping[str, Any]],
    policy: str,
) -> SensorVerdict:
    """Whether the plan may move a Linux host to the ``target`` kernel without blinding its sensor.

    ``support`` is Falcon's kernel support table for the plan's kernels (release -> record); a release
    missing from it is unknown to Falcon, which is as unsafe as an unsupported one. ``policy`` is the
    tenant's ``preflight.kernel_gate``: ``hold_kernel_update`` patches the host without the kernel,
    ``hold_host`` holds the whole host.
    """
    if target is None or host.get("kernel") == target:
        return PATCH
    version = host.get("falcon_sensor_version")
    if not version:
        return PATCH  # no sensor to protect; the sensor gate decides about such hosts
    record = support.get(target)
    if record is None:
        problem = f"kernel {target} is unknown to Falcon's support table"
    elif sensor_supports_kernel(record, version):
        return PATCH
    else:
        problem = f"Falcon sensor {version} does not support kernel {target}"
    if policy == "hold_host":
        return SensorVerdict("hold", f"{problem}; host held (tenant policy hold_host)")
    return SensorVerdict("no_kernel", f"{problem}; kernel update held, other patches installed")
