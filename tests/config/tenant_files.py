"""Tenant files for configuration tests."""

from __future__ import annotations

import copy
from typing import Any


def own_resources(data: dict[str, Any], number: int) -> dict[str, Any]:
    """``data`` with accounts, subscriptions, projects, bucket and connections of tenant ``number`` alone."""
    data = copy.deepcopy(data)
    clouds = data["clouds"]
    for i, account in enumerate(clouds.get("aws", {}).get("accounts", [])):
        account["account_id"] = f"{number:06d}{i:06d}"
        account.pop("connection_id", None)
    for i, subscription in enumerate(clouds.get("azure", {}).get("subscriptions", [])):
        subscription["subscription_id"] = f"{number:08x}-0000-4000-8000-{i:012x}"
        subscription.pop("connection_id", None)
    for i, project in enumerate(clouds.get("gcp", {}).get("projects", [])):
        project["project_id"] = f"tenant-{number:02d}-project-{i}"
        project.pop("connection_id", None)
    for section in ("falcon", "health", "incidents"):
        if isinstance(data.get(section), dict):
            data[section].pop("connection_id", None)
    if "azure" in clouds:
        clouds["azure"].get("backup_attestation", {}).pop("connection_id", None)
    data["evidence"]["bucket"] = f"patchcycle-evidence-tenant-{number:02d}"
    return data
