"""The SAML certificate watch across 12 tenants x 3 AWS accounts, through Airflow against fleetsim: wall
time and API calls, against the physical minimum.

    .venv/bin/python benchmarks/bench_saml_watch.py [--tenants 12] [--accounts 3] [--providers 2]

Each tenant (``devtools/tenant_fleet.py``'s AWS-only copies of Alpha) declares ``--accounts`` AWS
accounts; each account holds ``--providers`` IAM SAML providers made through IAM's own API before the
clock starts (plus fleetsim's default one in the tenant's first account), and each tenant's first
account one certificate 20 days from expiry, so every tenant pages once and mails one runbook on the
first day. ``saml_certificates`` then runs twice with ``airflow dags test`` (day 1: pages and mails;
day 2: the steady state, nothing new), the fleetsim call counters reset before each. The physical
minimum of IAM calls is one ListSAMLProviders per account (it is not paginated) and one
GetSAMLProvider per provider (no batch form); STS AssumeRole is one per account connection. Prints one
JSON document.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "plugins"))

from devtools.local import airflow_env, fleetsim_get, migrate_db, run_cycle, running_fleetsim  # noqa: E402
from devtools.tenant_fleet import account_id, tenant_id, write_scenario, write_tenants  # noqa: E402
from fleetsim.saml import CertificateSeed, make_certificate, metadata_document  # noqa: E402

DAG_ID = "saml_certificates"


def extra_account(number: int, index: int) -> str:
    """The tenant's ``index``-th AWS account (index 0 is its fleet's)."""
    return account_id(number) if index == 0 else f"31{number:02d}{index:02d}00000000"[:12]


def declare_accounts(folder: Path, tenants: int, accounts: int) -> None:
    for number in range(1, tenants + 1):
        path = folder / f"{tenant_id(number)}.yaml"
        data = yaml.safe_load(path.read_text())
        # One connection per account (a role in each): one connection for several accounts reaches one
        # of them only, and the watch refuses what it lists in the others (WrongAccount).
        data["clouds"]["aws"]["accounts"] = [
            {
                "account_id": extra_account(number, i),
                "regions": ["us-east-1"],
                "connection_id": f"aws_{tenant_id(number)}_{i}",
            }
            for i in range(accounts)
        ]
        path.write_text(yaml.safe_dump(data, sort_keys=False))


def iam(url: str, account: str) -> Any:
    import boto3

    sts = boto3.client(
        "sts", endpoint_url=url, region_name="us-east-1", aws_access_key_id="b", aws_secret_access_key="b"
    )
    c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/bench", RoleSessionName="bench")["Credentials"]
    return boto3.client(
        "iam",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=c["AccessKeyId"],
        aws_secret_access_key=c["SecretAccessKey"],
        aws_session_token=c["SessionToken"],
    )


def create_providers(url: str, tenants: int, accounts: int, providers: int) -> int:
    """The providers of every account (one near expiry per tenant); returns how many there are in all."""
    now = dt.datetime.now(dt.UTC)
    made = 0
    for number in range(1, tenants + 1):
        for index in range(accounts):
            account = extra_account(number, index)
            client = iam(url, account)
            for p in range(providers):
                days = 20 if (index, p) == (0, 0) else 400 + 30 * p
                cert = make_certificate(CertificateSeed(days_left=days), f"{account}-{p}", now)
                document = metadata_document(f"https://idp.t{number:02d}.example/{p}", [cert])
                client.create_saml_provider(Name=f"idp-{p}", SAMLMetadataDocument=document)
                made += 1
    return made + tenants  # fleetsim's default provider in each tenant's first account


def reset_calls(url: str) -> None:
    request = urllib.request.Request(f"{url}/fleetsim/calls/reset", data=b"", method="POST")
    urllib.request.urlopen(request, timeout=30).close()  # noqa: S310 - loopback


def task_seconds(home: Path) -> dict[str, float]:
    """Each task's duration in the latest run of the DAG, from the run's metadata DB."""
    with sqlite3.connect(home / "airflow.db") as conn:
        rows = conn.execute(
            "SELECT ti.task_id, ti.duration FROM task_instance ti JOIN dag_run dr ON ti.dag_id = dr.dag_id "
            "AND ti.run_id = dr.run_id WHERE ti.dag_id = ? "
            "AND dr.id = (SELECT MAX(id) FROM dag_run WHERE dag_id = ?)",
            (DAG_ID, DAG_ID),
        ).fetchall()
    return {task: round(float(seconds or 0), 3) for task, seconds in rows}


def run_day(env: dict[str, str], url: str, home: Path, day: str, log: Path) -> dict[str, Any]:
    reset_calls(url)
    started = time.perf_counter()
    rc = run_cycle(env, DAG_ID, f"{day}T06:30:00+00:00", {}, log)
    wall = time.perf_counter() - started
    calls = Counter(fleetsim_get(url, "/fleetsim/calls")["calls"])
    tasks = task_seconds(home)
    return {
        "returncode": rc,
        "wall_seconds": round(wall, 2),
        "task_seconds_total": round(sum(tasks.values()), 2),
        "task_seconds_max": max(tasks.values(), default=0.0),
        "calls": dict(sorted(calls.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=12)
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--providers", type=int, default=2, help="IAM SAML providers made in each account")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-saml-") as tmp:
        work = Path(tmp)
        tenants_dir = write_tenants(work / "tenants", args.tenants)
        declare_accounts(tenants_dir, args.tenants, args.accounts)
        scenario = write_scenario(work / "scenario.yaml", args.tenants)
        home = work / "airflow"
        with running_fleetsim(scenario, work / "fleetsim") as url:
            providers = create_providers(url, args.tenants, args.accounts, args.providers)
            env = airflow_env(home, url, poll_seconds=0.5, tenants_dir=tenants_dir)
            migrate_db(env)
            day1 = run_day(env, url, home, "2026-12-01", work / "day1.log")
            day2 = run_day(env, url, home, "2026-12-02", work / "day2.log")
            pages = [
                i for i in fleetsim_get(url, "/fleetsim/pagerduty")["incidents"] if "/saml/" in i["dedup_key"]
            ]
            mails = [m for m in fleetsim_get(url, "/fleetsim/mail")["messages"] if "SAML" in m["subject"]]
            if day1["returncode"] or day2["returncode"]:
                print((work / "day1.log").read_text()[-3000:], file=sys.stderr)
    accounts = args.tenants * args.accounts + 1  # and the platform's
    iam_minimum = {"ListSAMLProviders": accounts, "GetSAMLProvider": providers}
    result = {
        "tenants": args.tenants,
        "accounts": args.tenants * args.accounts,
        "providers": providers,
        "iam_minimum_per_day": iam_minimum,
        "day1": day1,
        "day2": day2,
        "incidents_opened": len(pages),
        "incidents_triggered_events": sum(i["trigger_count"] for i in pages),
        "mails": len(mails),
    }
    print(json.dumps(result, indent=1))
    return 0 if not (day1["returncode"] or day2["returncode"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
