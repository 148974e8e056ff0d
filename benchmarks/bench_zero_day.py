"""Time from a KEV feed refresh that lists a new CVE to the zero-day cycle's plan being frozen, through
Airflow against fleetsim (zero soak).

    .venv/bin/python benchmarks/bench_zero_day.py

cu_alpha (the AWS-only e2e tenant: 11 hosts, Amazon Linux 2 and Windows) declares a zero-day cycle with a
zero emergency soak. The platform bucket holds yesterday's refresh (the committed feed snapshots). The
clock starts when CISA lists a new Windows CVE (``POST /fleetsim/kev``; fleetsim's catalog has the
Windows update that fixes it). Then ``patchcycle_feeds`` runs (``airflow dags test``): it fetches KEV and
EPSS from fleetsim, stores them and adds the KEV asset event for cu_alpha; ``zero_day__cu_alpha`` runs
with the event's CVEs (what the scheduler starts from the event; with ``dags test`` the harness starts it
at once, so the scheduler's own asset polling, a few seconds, is not in the figure). The times are read
from the evidence: the asset event's timestamp and the plan.frozen event. Prints one JSON document.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
import sqlite3
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "plugins"))

from devtools.local import airflow_env, fleetsim_s3, migrate_db, run_cycle, running_fleetsim  # noqa: E402

E2E = REPO / "tests" / "e2e"
ZERO_DAY = {
    "emergency_soak_hours": 0,
    "emergency_change_window": "patch_outside_window",
    "approver": "J. Alvarez",
    "approver_role": "CISO",
    "approved_on": "2026-10-01",
}
LISTING = {
    "cveID": "CVE-2026-21001",
    "vendorProject": "Microsoft",
    "product": "Windows",
    "vulnerabilityName": "Microsoft Windows made-up privilege escalation (benchmark data)",
    "dateAdded": "2026-11-24",
    "dueDate": "2026-12-15",
}


def tenants(folder: Path) -> Path:
    folder.mkdir()
    for path in (REPO / "include" / "tenants").glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    alpha = yaml.safe_load((E2E / "tenants" / "aws_only" / "cu_alpha.yaml").read_text())
    alpha["risk"] = {"zero_day": ZERO_DAY}
    (folder / "cu_alpha.yaml").write_text(yaml.safe_dump(alpha, sort_keys=False))
    return folder


def scenario(path: Path) -> Path:
    data = yaml.safe_load((E2E / "scenarios" / "alpha_zero_day.yaml").read_text())
    data["feeds"] = {"kev_added": []}  # the listing comes during the benchmark
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def seed_previous_refresh(url: str) -> None:
    feeds = REPO / "include" / "feeds"
    s3 = fleetsim_s3(url)
    prefix = "feeds/2026-11-23/scheduled__2026-11-23T01:00:00+00:00"
    s3.put_object(
        Bucket="patchcycle-portfolio",
        Key=f"{prefix}/known_exploited_vulnerabilities.json",
        Body=(feeds / "kev-subset.json").read_bytes(),
    )
    epss = gzip.compress((feeds / "epss-sample.csv").read_bytes(), mtime=0)
    s3.put_object(Bucket="patchcycle-portfolio", Key=f"{prefix}/epss_scores.csv.gz", Body=epss)


def post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback
        pass


def kev_event(home: Path) -> tuple[dict[str, Any], dt.datetime]:
    with sqlite3.connect(home / "airflow.db") as db:
        extra, at = db.execute(
            "SELECT e.extra, e.timestamp FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.name = 'patchcycle_new_kev__cu_alpha' ORDER BY e.id DESC LIMIT 1"
        ).fetchone()
    when = dt.datetime.fromisoformat(str(at).replace(" ", "T"))
    return (json.loads(extra) if isinstance(extra, str) else dict(extra)), when.replace(
        tzinfo=when.tzinfo or dt.UTC
    )


def plan_frozen_at(url: str) -> tuple[dt.datetime, int]:
    s3 = fleetsim_s3(url)
    bucket = "patchcycle-evidence-cu-alpha"
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="cycles/2026-11-25/")
        for o in page.get("Contents", [])
        if "/events/plan" in o["Key"]
    ]
    for key in keys:
        for event in json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()):
            if event["action"] == "plan.frozen":
                return dt.datetime.fromisoformat(event["at"]), event["details"]["approved_patches"]
    raise RuntimeError("no plan.frozen event")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-zero-day-") as tmp:
        work = Path(tmp)
        folder = tenants(work / "tenants")
        home = work / "airflow"
        with running_fleetsim(scenario(work / "scenario.yaml"), work / "fleetsim") as url:
            env = airflow_env(home, url, poll_seconds=0.5, tenants_dir=folder)
            migrate_db(env)
            seed_previous_refresh(url)
            # Warm Airflow and write the DAGs to the metadata database before the clock starts.
            run_cycle(env, "patchcycle_feeds", "2026-11-24T01:00:00+00:00", {}, work / "warm.log")
            started = dt.datetime.now(dt.UTC)
            clock = time.monotonic()
            post(f"{url}/fleetsim/kev", LISTING)
            rc = run_cycle(env, "patchcycle_feeds", "2026-11-25T01:00:00+00:00", {}, work / "feeds.log")
            refresh_s = time.monotonic() - clock
            extra, event_at = kev_event(home)
            conf = {"cve_ids": extra["cve_ids"], "justification": "KEV asset event (benchmark)"}
            rc2 = run_cycle(env, "zero_day__cu_alpha", "2026-11-25T09:00:00+00:00", conf, work / "zero.log")
            cycle_s = time.monotonic() - clock
            frozen_at, approved = plan_frozen_at(url)
    result = {
        "benchmark": "zero_day",
        "tenant": "cu_alpha (AWS only: 10 Amazon Linux 2 hosts, 1 Windows host; zero soak)",
        "new_kev_cve": LISTING["cveID"],
        "refresh_exit_code": rc,
        "zero_day_exit_code": rc2,
        "seconds_listing_to_refresh_done": round(refresh_s, 1),
        "seconds_listing_to_asset_event": round((event_at - started).total_seconds(), 1),
        "seconds_listing_to_plan_frozen": round((frozen_at - started).total_seconds(), 1),
        "seconds_asset_event_to_plan_frozen": round((frozen_at - event_at).total_seconds(), 1),
        "seconds_listing_to_zero_day_cycle_done": round(cycle_s, 1),
        "zero_day_plan_patches": approved,
        "asset_event_cves": extra["cve_ids"],
    }
    print(json.dumps(result, indent=1))
    return 0 if rc == 0 and rc2 == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
