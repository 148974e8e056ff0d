"""One normalized host table across clouds.

Each cloud's agent registry and tags are mapped to the same columns, so the gates, the stages and the
evidence never care where a host lives. Rows are plain dicts (JSON-ready); :func:`inventory_frame`
gives the pandas view.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from patchcycle.config.models import Tenant
from patchcycle.domain.platforms import os_family_from_ssm

# The documented schema of the inventory table: column -> meaning.
INVENTORY_COLUMNS: dict[str, str] = {
    "cloud": "aws | azure | gcp",
    "account": "AWS account id, Azure subscription id or GCP project id",
    "region": "cloud region (or zone for GCP)",
    "host_id": "the cloud's id of the host (EC2 instance id, Arc resource id, GCE instance id)",
    "name": "host name (Name tag, machine name)",
    "environment": "nonprod | staging | prod, from the environment tag; empty when the tag matches none",
    "environment_tag": "the raw value of the host's environment tag",
    "os_family": "our OS family (e.g. amazon_linux_2); empty when we do not patch this platform",
    "platform": "the platform name and version the agent reports",
    "kernel": "running kernel release, where the cloud reports it",
    "agent_kind": "ssm | arc | osconfig",
    "agent_status": "the agent's own status word (SSM PingStatus: Online, ConnectionLost, Inactive)",
    "agent_online": "True when the agent can take commands now",
    "criticality": "low | medium | high | critical, from the criticality tag (default medium)",
    "missing_count": "patches the last scan found missing",
    "failed_count": "patches the last operation failed to install",
    "installed_count": "patches installed",
    "last_patch_operation": "Scan | Install, the last patch operation the cloud recorded",
    "last_patch_time": "when that operation ended (ISO-8601)",
}

CRITICALITIES = ("low", "medium", "high", "critical")


def environment_for_tag(tenant: Tenant, tag_value: str | None) -> str | None:
    """Our environment name for a host's environment tag value, if the tenant patches it."""
    if not tag_value:
        return None
    wanted = tag_value.strip().lower()
    for env in tenant.environments:
        if wanted in {v.lower() for v in env.matches_tag_values}:
            return env.name.value
    return None


def _iso(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def normalize_ssm_hosts(
    tenant: Tenant,
    account: str,
    region: str,
    instances: Iterable[Mapping[str, Any]],
    tags: Mapping[str, Mapping[str, str]],
    patch_states: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Rows for SSM managed instances (``describe_instance_information``), their EC2 tags and patch state."""
    keys = tenant.host_tags
    rows = []
    for info in instances:
        host_id = info["InstanceId"]
        host_tags = tags.get(host_id, {})
        state = patch_states.get(host_id, {})
        family = os_family_from_ssm(info.get("PlatformName", ""), info.get("PlatformVersion", ""))
        criticality = host_tags.get(keys.criticality, "medium").strip().lower()
        env_tag = host_tags.get(keys.environment)
        rows.append(
            {
                "cloud": "aws",
                "account": account,
                "region": region,
                "host_id": host_id,
                "name": host_tags.get(keys.name) or info.get("ComputerName") or host_id,
                "environment": environment_for_tag(tenant, env_tag),
                "environment_tag": env_tag,
                "os_family": family.value if family else None,
                "platform": f"{info.get('PlatformName', '')} {info.get('PlatformVersion', '')}".strip(),
                "kernel": None,
                "agent_kind": "ssm",
                "agent_status": info.get("PingStatus", "Unknown"),
                "agent_online": info.get("PingStatus") == "Online",
                "criticality": criticality if criticality in CRITICALITIES else "medium",
                "missing_count": int(state.get("MissingCount", 0)),
                "failed_count": int(state.get("FailedCount", 0)),
                "installed_count": int(state.get("InstalledCount", 0)),
                "last_patch_operation": state.get("Operation"),
                "last_patch_time": _iso(state.get("OperationEndTime")),
            }
        )
    return rows


def inventory_frame(rows: Iterable[Mapping[str, Any]]):
    """The inventory as a pandas DataFrame with the documented columns in order."""
    import pandas as pd

    return pd.DataFrame(list(rows), columns=list(INVENTORY_COLUMNS))


def unregistered_ec2_hosts(
    tenant: Tenant,
    account: str,
    region: str,
    tags: Mapping[str, Mapping[str, str]],
    managed_ids: set[str],
) -> list[dict[str, Any]]:
    """Rows for EC2 instances that carry an environment tag but are not SSM managed instances.

    These are the hosts a cycle would silently skip (an AMI refresh that lost the agent bootstrap);
    they are inventoried so the pre-flight gate holds them with a reason and someone is told.
    """
    keys = tenant.host_tags
    rows = []
    for host_id, host_tags in sorted(tags.items()):
        if host_id in managed_ids or keys.environment not in host_tags:
            continue
        criticality = host_tags.get(keys.criticality, "medium").strip().lower()
        env_tag = host_tags.get(keys.environment)
        rows.append(
            {
                "cloud": "aws",
                "account": account,
                "region": region,
                "host_id": host_id,
                "name": host_tags.get(keys.name) or host_id,
                "environment": environment_for_tag(tenant, env_tag),
                "environment_tag": env_tag,
                "os_family": None,
                "platform": "unknown (no SSM registration)",
                "kernel": None,
                "agent_kind": "ssm",
                "agent_status": "NotRegistered",
                "agent_online": False,
                "criticality": criticality if criticality in CRITICALITIES else "medium",
                "missing_count": 0,
                "failed_count": 0,
                "installed_count": 0,
                "last_patch_operation": None,
                "last_patch_time": None,
            }
        )
    return rows
