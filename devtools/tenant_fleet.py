"""Many tenants for fleetsim and Airflow at once: N copies of the AWS-only Alpha, each its own bank.

Each tenant ``cu_tNN`` has its own AWS account, evidence bucket and a small fleet (two non-prod, one
staging and two prod hosts); the tenants named as failing get two failing non-prod installs, which is
over non-prod's error budget, so their cycle fails at its first stage. Used by the twelve-tenant test
on the process stack and by ``benchmarks/bench_twelve_tenants.py``.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
ALPHA_TENANT = REPO / "tests" / "e2e" / "tenants" / "aws_only" / "cu_alpha.yaml"
ALPHA_SCENARIO = REPO / "tests" / "e2e" / "scenarios" / "alpha_small.yaml"


def write_aws_only_tenants(folder: Path) -> Path:
    """The demo tenants with cu_alpha as the AWS-only tenant of the end-to-end scenarios, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in (REPO / "include" / "tenants").glob("*.yaml"):
        shutil.copyfile(path, folder / path.name)
    shutil.copyfile(ALPHA_TENANT, folder / "cu_alpha.yaml")
    return folder


def tenant_id(number: int) -> str:
    return f"cu_t{number:02d}"


def account_id(number: int) -> str:
    return f"3000000000{number:02d}"


def bucket(number: int) -> str:
    return f"patchcycle-evidence-cu-t{number:02d}"


def write_tenants(folder: Path, count: int) -> Path:
    """``count`` tenant files (``cu_t01.yaml`` ...) in ``folder``; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    alpha = yaml.safe_load(ALPHA_TENANT.read_text())
    for number in range(1, count + 1):
        tenant = copy.deepcopy(alpha)
        tenant["id"] = tenant_id(number)
        tenant["display_name"] = f"Tenant {number:02d} Credit Union"
        tenant["incident_runbook_url"] = f"https://runbooks.example.com/patchcycle/{tenant_id(number)}"
        tenant["clouds"]["aws"]["accounts"][0]["account_id"] = account_id(number)
        tenant["evidence"]["bucket"] = bucket(number)
        tenant["incidents"] = {}
        (folder / f"{tenant_id(number)}.yaml").write_text(yaml.safe_dump(tenant, sort_keys=False))
    return folder


def scenario(
    count: int, failing: Iterable[int] = (), *, extra_tenants: Iterable[dict] = ()
) -> dict[str, Any]:
    """A fleetsim scenario with ``count`` small tenant fleets (and ``extra_tenants`` as they are)."""
    base = yaml.safe_load(ALPHA_SCENARIO.read_text())
    failing = set(failing)
    tenants = [copy.deepcopy(t) for t in extra_tenants]
    buckets = set(base["evidence"]["buckets"])
    sizes = {"nonprod": 2, "staging": 1, "prod": 2}
    for number in range(1, count + 1):
        prefix = f"t{number:02d}"
        groups = []
        for env, size in sizes.items():
            groups.append(
                {
                    "prefix": f"{prefix}-{env}-app",
                    "count": size,
                    "environment": env,
                    "os_family": "amazon_linux_2",
                    "kernel": "5.10.220-209.869.amzn2.x86_64",
                    "criticality": "high" if env == "prod" else "medium",
                    "installed_until": "2026-08-31",
                }
            )
        faults = (
            {"install_fails": [f"{prefix}-nonprod-app-01", f"{prefix}-nonprod-app-02"]}
            if number in failing
            else {}
        )
        tenants.append(
            {
                "id": tenant_id(number),
                "aws": {"account_id": account_id(number), "region": "us-east-1", "groups": groups},
                "faults": faults,
            }
        )
        buckets.add(bucket(number))
    data = {**base, "tenants": tenants}
    data["evidence"] = {**base["evidence"], "buckets": sorted(buckets)}
    return data


def write_scenario(path: Path, count: int, failing: Iterable[int] = (), **kwargs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(scenario(count, failing, **kwargs), sort_keys=False))
    return path
