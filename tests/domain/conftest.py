"""Factories for the domain (pure policy) tests: tenants, catalog patches, SSM rows, inventory rows, stages.

Everything is small, deterministic and built in memory; nothing here touches Airflow, a cloud or the network.
Factories are exposed as fixtures returning callables, so each test states only what it cares about.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from patchcycle.config.loader import load_tenant
from patchcycle.config.models import OsFamily, Severity, Tenant
from patchcycle.domain.inventory import INVENTORY_COLUMNS
from patchcycle.domain.plan import CatalogPatch

REPO = Path(__file__).resolve().parents[2]
TENANTS_DIR = REPO / "include" / "tenants"

# The base of a tenant built from the pydantic models (cu_alpha-like, AWS only, all three environments).
_TENANT_DATA: dict[str, Any] = {
    "id": "cu_test",
    "display_name": "Test Credit Union",
    "owner": "sre-platform",
    "contacts": {
        "sre": [{"name": "SRE", "email": "sre@example.com"}],
        "compliance": [{"name": "Compliance", "email": "compliance@example.com"}],
    },
    "frameworks": ["soc2", "pci_dss"],
    "clouds": {"aws": {"accounts": [{"account_id": "111111111111", "regions": ["us-east-1"]}]}},
    "environments": [
        {"name": "nonprod", "rate_control": {"max_concurrency": "50%", "max_errors": "25%"}},
        {"name": "staging", "rate_control": {"max_concurrency": "25%", "max_errors": "10%"}},
        {"name": "prod", "rate_control": {"max_concurrency": "10%", "max_errors": "1"}},
    ],
    "baselines": [
        {
            "os_family": "amazon_linux_2",
            "classifications": ["Security", "Bugfix"],
            "severities": ["Critical", "High"],
            "approve_after_days": 7,
        },
        {
            "os_family": "windows_2019",
            "classifications": ["SecurityUpdates", "CriticalUpdates"],
            "severities": ["Critical", "High"],
            "approve_after_days": 7,
        },
    ],
    "preflight": {"max_held_share": 0.25},
    "evidence": {"bucket": "patchcycle-evidence-cu-test"},
}


def tenant_data(**overrides: Any) -> dict[str, Any]:
    """A deep copy of the base tenant mapping with top-level fields replaced."""
    data = copy.deepcopy(_TENANT_DATA)
    data.update(copy.deepcopy(overrides))
    return data


@pytest.fixture(scope="session")
def alpha() -> Tenant:
    """The demo tenant cu_alpha, loaded from its tenant file exactly as the DAG factory loads it."""
    return load_tenant(TENANTS_DIR / "cu_alpha.yaml")


@pytest.fixture(scope="session")
def tenant() -> Tenant:
    """The base tenant built from the models."""
    return Tenant.model_validate(tenant_data())


@pytest.fixture
def make_tenant() -> Callable[..., Tenant]:
    """``make_tenant(**top_level_overrides)`` -> a validated Tenant."""

    def make(**overrides: Any) -> Tenant:
        return Tenant.model_validate(tenant_data(**overrides))

    return make


@pytest.fixture
def make_patch() -> Callable[..., CatalogPatch]:
    """``make_patch(**fields)`` -> a CatalogPatch the base amazon_linux_2 baseline approves on 2026-11-22."""

    def make(**overrides: Any) -> CatalogPatch:
        fields: dict[str, Any] = {
            "id": "ALAS2-2026-0001",
            "os_family": OsFamily.amazon_linux_2,
            "title": "openssl-1.0.2k-24.amzn2.0.14",
            "classification": "Security",
            "vendor_severity": "Important",
            "severity": Severity.High,
            "cves": ("CVE-2024-0001",),
            "released": dt.date(2026, 11, 1),
        }
        fields.update(overrides)
        return CatalogPatch(**fields)

    return make


@pytest.fixture
def host_row() -> Callable[..., dict[str, Any]]:
    """``host_row(host_id, **columns)`` -> one inventory row with every documented column.

    The default is an online, registered amazon_linux_2 host in nonprod with a recorded scan and
    two missing patches (not compliant before the cycle).
    """

    def make(host_id: str = "i-0000000000000001", **overrides: Any) -> dict[str, Any]:
        row: dict[str, Any] = {
            "cloud": "aws",
            "account": "111111111111",
            "region": "us-east-1",
            "host_id": host_id,
            "name": f"host-{host_id[-4:]}",
            "environment": "nonprod",
            "environment_tag": "nonprod",
            "os_family": "amazon_linux_2",
            "platform": "Amazon Linux 2",
            "kernel": None,
            "agent_kind": "ssm",
            "agent_status": "Online",
            "agent_online": True,
            "criticality": "medium",
            "missing_count": 2,
            "failed_count": 0,
            "installed_count": 400,
            "last_patch_operation": "Scan",
            "last_patch_time": "2026-11-01T03:00:00+00:00",
        }
        unknown = set(overrides) - set(INVENTORY_COLUMNS)
        assert not unknown, f"not inventory columns: {unknown}"
        row.update(overrides)
        return row

    return make


@pytest.fixture
def stage_host() -> Callable[..., dict[str, Any]]:
    """``stage_host(final_state, reason=None, **extra)`` -> a stage record's host entry (as verify writes)."""

    def make(final_state: str = "patched", reason: str | None = None, **extra: Any) -> dict[str, Any]:
        patched = final_state == "patched"
        entry: dict[str, Any] = {
            "backup_id": "ami-0123456789abcdef0",
            "backup_state": "available",
            "command_id": "cmd-0001",
            "invocation": "Success" if patched else "Failed",
            "patch_state": {
                "Operation": "Install",
                "MissingCount": 0 if patched else 2,
                "FailedCount": 0 if patched else 2,
                "InstalledCount": 402 if patched else 400,
            },
            "final_state": final_state,
            "reason": reason,
        }
        entry.update(extra)
        return entry

    return make


@pytest.fixture
def ssm_instance() -> Callable[..., dict[str, Any]]:
    """``ssm_instance(instance_id, **fields)`` -> one describe_instance_information entry."""

    def make(instance_id: str, **overrides: Any) -> dict[str, Any]:
        info: dict[str, Any] = {
            "InstanceId": instance_id,
            "PingStatus": "Online",
            "PlatformName": "Amazon Linux",
            "PlatformVersion": "2",
            "PlatformType": "Linux",
            "ComputerName": f"ip-10-0-0-{instance_id[-2:]}.ec2.internal",
        }
        info.update(overrides)
        return info

    return make
