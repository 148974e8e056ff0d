"""Fixtures for the evidence-pack renderers: a realistic, deterministic evidence document."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import pytest

ENVIRONMENTS = ("nonprod", "staging", "prod")
FAILED_HOST_NAME = "alpha-prod-db-07"
FAILED_HOST_REASON = "patch install exit code 1: yum transaction check error"
HELD_HOST_NAME = "alpha-prod-core-02"
HELD_HOST_REASON = "change freeze: quarter-end ledger close"

_OS = {
    "aws": [("amazon_linux_2", "Amazon Linux 2"), ("rhel_9", "Red Hat Enterprise Linux 9.4")],
    "azure": [
        ("windows_server_2022", "Windows Server 2022 Datacenter"),
        ("ubuntu_22_04", "Ubuntu 22.04 LTS"),
    ],
    "gcp": [("ubuntu_22_04", "Ubuntu 22.04 LTS"), ("rhel_9", "Red Hat Enterprise Linux 9.4")],
}
_REGIONS = {"aws": ["us-east-1", "us-west-2"], "azure": ["eastus2", "centralus"], "gcp": ["us-central1"]}
_ROLES = ["web", "app", "db", "batch", "core", "mq", "api"]
_FAILURE_REASONS = [
    "ssm agent ConnectionLost",
    "patch install exit code 1: yum transaction check error",
    "reboot did not complete within 900s",
    "backup snapshot failed: quota exceeded",
]
_HELD_REASONS = ["change freeze: quarter-end ledger close", "owner requested hold (CHG0042137)"]
_STATES = (
    ["patched"] * 70
    + ["failed"] * 5
    + ["held"] * 6
    + ["non_compliant"] * 3
    + ["excepted"] * 3
    + ["not_run"] * 3
    + ["out_of_scope"] * 10
)


def _host_id(rng: random.Random, cloud: str, name: str, account: str, env: str) -> str:
    if cloud == "aws":
        return "i-0" + "".join(rng.choice("0123456789abcdef") for _ in range(16))
    if cloud == "azure":
        return (
            f"/subscriptions/{account}/resourceGroups/rg-alpha-{env}/providers/"
            f"Microsoft.Compute/virtualMachines/{name}"
        )
    return str(rng.randrange(10**18, 10**19))


def _account(rng: random.Random, cloud: str) -> str:
    if cloud == "aws":
        return rng.choice(["111111111111", "022222222222"])
    if cloud == "azure":
        return "5f1c0a7e-2b8d-4c1e-9a3f-0d6b7e8c9a10"
    return "alpha-fcu-prod-1234"


def _default_reason(rng: random.Random, state: str) -> str | None:
    if state == "failed":
        return rng.choice(_FAILURE_REASONS)
    if state == "held":
        return rng.choice(_HELD_REASONS)
    return {
        "not_run": "stage prod not run: nonprod gate failed",
        "excepted": "risk exception RX-2026-014 until 2026-12-31",
        "out_of_scope": "tag patchcycle:scope=none",
    }.get(state)


def _make_host(
    rng: random.Random,
    index: int,
    state: str | None = None,
    *,
    name: str | None = None,
    environment: str | None = None,
    reason: str | None = None,
) -> dict:
    cloud = rng.choice(["aws", "aws", "azure", "gcp"])
    env = environment or rng.choice(["nonprod", "nonprod", "staging", "prod", "prod", "prod"])
    os_family, platform = rng.choice(_OS[cloud])
    name = name or f"alpha-{env}-{rng.choice(_ROLES)}-{index:05d}"
    account = _account(rng, cloud)
    state = state or rng.choice(_STATES)
    missing_before = rng.randint(0, 9) if state != "out_of_scope" else 0
    patched = state == "patched"
    ran = state in ("patched", "failed", "non_compliant")
    if reason is None:
        reason = _default_reason(rng, state)
    host = {
        "host_id": _host_id(rng, cloud, name, account, env),
        "name": name,
        "cloud": cloud,
        "account": account,
        "region": rng.choice(_REGIONS[cloud]),
        "environment": env,
        "os_family": os_family,
        "platform": platform,
        "criticality": rng.choice(["low", "medium", "high", "critical"]),
        "agent_status": "ConnectionLost" if reason == "ssm agent ConnectionLost" else "Online",
        "final_state": state,
        "reason": reason,
        "backup_id": (f"ami-0{rng.randrange(16**16):016x}" if cloud == "aws" else f"snap-{index:06d}")
        if ran
        else None,
        "command_id": f"{rng.randrange(16**8):08x}-4c1e-4a3f-9d6b-{index:012d}" if ran else None,
        "missing_before": missing_before,
        "missing_after": 0 if patched else missing_before,
        "failed_after": rng.randint(1, 3) if state == "failed" else 0,
        "installed_after": rng.randint(20, 400) + (missing_before if patched else 0),
    }
    return host


def _rollup(hosts: list[dict]) -> dict:
    in_scope = [h for h in hosts if h["final_state"] != "out_of_scope"]

    def ratio(key: str) -> float:
        if not in_scope:
            return 0.0
        return round(sum(1 for h in in_scope if h[key] == 0) / len(in_scope), 4)

    return {
        "in_scope": len(in_scope),
        "patched": sum(h["final_state"] == "patched" for h in hosts),
        "failed": sum(h["final_state"] == "failed" for h in hosts),
        "held": sum(h["final_state"] == "held" for h in hosts),
        "not_run": sum(h["final_state"] == "not_run" for h in hosts),
        "compliance_before": ratio("missing_before"),
        "compliance_after": ratio("missing_after"),
    }


def _approved_patches(rng: random.Random, per_family: int) -> dict[str, list[dict]]:
    approved: dict[str, list[dict]] = {}
    prefixes = {
        "amazon_linux_2": "ALAS2-2026-",
        "rhel_9": "RHSA-2026:",
        "ubuntu_22_04": "USN-7",
        "windows_server_2022": "KB50",
    }
    for family, prefix in prefixes.items():
        patches = []
        for i in range(per_family):
            cves = [f"CVE-2026-{rng.randint(1000, 49999)}" for _ in range(rng.randint(0, 6))]
            patches.append(
                {
                    "id": f"{prefix}{2100 + i}",
                    "title": f"Important: kernel and openssl security update {i}",
                    "severity": rng.choice(["Critical", "Important", "Moderate", "Low"]),
                    "classification": "Security",
                    "cves": cves,
                    "released": f"2026-11-{rng.randint(1, 20):02d}",
                }
            )
        approved[family] = patches
    return approved


def make_evidence(
    n_hosts: int = 40, *, seed: int = 7, outcome: str = "failed", patches_per_family: int = 8
) -> dict:
    """Build a realistic, internally consistent evidence document (schema 1.0) with ``n_hosts`` hosts.

    The first two hosts (when ``n_hosts >= 2``) are a failed and a held prod host with known
    names and reasons (FAILED_HOST_NAME/REASON, HELD_HOST_NAME/REASON).
    """
    rng = random.Random(seed)
    hosts: list[dict] = []
    if n_hosts >= 2:
        hosts.append(
            _make_host(rng, 0, "failed", name=FAILED_HOST_NAME, environment="prod", reason=FAILED_HOST_REASON)
        )
        hosts.append(
            _make_host(rng, 1, "held", name=HELD_HOST_NAME, environment="prod", reason=HELD_HOST_REASON)
        )
    hosts += [_make_host(rng, i) for i in range(len(hosts), n_hosts)]

    total = _rollup(hosts)
    summary: dict[str, Any] = {
        "hosts_total": len(hosts),
        "in_scope": total["in_scope"],
        "patched": total["patched"],
        "failed": total["failed"],
        "held": total["held"],
        "excepted": sum(h["final_state"] == "excepted" for h in hosts),
        "not_run": total["not_run"],
        "out_of_scope": sum(h["final_state"] == "out_of_scope" for h in hosts),
        "compliance_before": total["compliance_before"],
        "compliance_after": total["compliance_after"],
        "by_environment": {
            env: _rollup([h for h in hosts if h["environment"] == env])
            for env in ENVIRONMENTS
            if any(h["environment"] == env for h in hosts)
        },
        "by_cloud": {
            cloud: _rollup([h for h in hosts if h["cloud"] == cloud])
            for cloud in sorted({h["cloud"] for h in hosts})
        },
    }
    stages = []
    status_for = {
        "nonprod": "succeeded",
        "staging": "succeeded",
        "prod": "failed" if outcome == "failed" else "succeeded",
    }
    for offset, env in enumerate(ENVIRONMENTS):
        env_hosts = [h for h in hosts if h["environment"] == env and h["final_state"] != "out_of_scope"]
        failed = sum(h["final_state"] == "failed" for h in env_hosts)
        stages.append(
            {
                "environment": env,
                "status": status_for[env],
                "started_at": f"2026-11-22T0{2 + offset}:05:00+00:00",
                "finished_at": f"2026-11-22T0{2 + offset}:55:00+00:00",
                "hosts_targeted": len(env_hosts),
                "hosts_succeeded": len(env_hosts) - failed,
                "hosts_failed": failed,
                "backups": sum(h["backup_id"] is not None for h in env_hosts),
                "command_ids": sorted({h["command_id"] for h in env_hosts if h["command_id"]})[:5],
                "reason": f"{failed} hosts failed (threshold 0) & rollback <not> required"
                if failed
                else None,
            }
        )
    plan_hash = "".join(rng.choice("0123456789abcdef") for _ in range(64))
    events = []
    for host in hosts[:50]:
        if host["backup_id"]:
            events.append(
                {
                    "at": "2026-11-22T02:10:00+00:00",
                    "actor": "airflow:patch_cycle__cu_alpha",
                    "action": "backup.created",
                    "target": host["host_id"],
                    "result": "ok",
                    "details": {"backup_id": host["backup_id"]},
                }
            )
    return {
        "schema_version": "1.0",
        "tenant": {
            "id": "cu_alpha",
            "display_name": "Alpha Federal Credit Union",
            "frameworks": ["soc2", "pci_dss"],
        },
        "cycle": {
            "cycle_date": "2026-11-22",
            "run_id": "manual__2026-11-22T02:00:00+00:00",
            "plan_hash": plan_hash,
            "dry_run": False,
            "started_at": "2026-11-22T02:00:00+00:00",
            "finished_at": "2026-11-22T05:01:00+00:00",
            "outcome": outcome,
            "generated_by": "patchcycle 0.1.0",
        },
        "summary": summary,
        "stages": stages,
        "hosts": hosts,
        "plan": {
            "hash": plan_hash,
            "cycle_date": "2026-11-22",
            "approved": _approved_patches(rng, patches_per_family),
        },
        "events": events,
    }


def empty_evidence() -> dict:
    """An evidence document with no hosts, stages, patches or events and all-zero counts."""
    evidence = make_evidence(0, outcome="planned", patches_per_family=0)
    evidence["plan"]["approved"] = {}
    evidence["summary"]["by_environment"] = {}
    evidence["summary"]["by_cloud"] = {}
    evidence["stages"] = []
    return evidence


@pytest.fixture
def evidence() -> dict:
    """A 40-host cycle whose prod stage failed."""
    return make_evidence()


@pytest.fixture
def evidence_factory() -> Callable[..., dict]:
    """``make_evidence`` as a fixture, returning fresh deep copies."""

    def factory(*args: Any, **kwargs: Any) -> dict:
        return copy.deepcopy(make_evidence(*args, **kwargs))

    return factory
