"""``make demo``: real patch cycles of every demo tenant, through Airflow, against fleetsim.

Starts fleetsim, prepares a local Airflow (SQLite under var/, connections pointing at fleetsim), runs
each tenant's daily drift report for the day before the cycle (fleetsim applied the tenants' Terraform
and made the scenario's console edits; the reports go to var/demo/drift/) and the daily SAML
certificate watch for that day (fleetsim's identity providers hold certificates close to expiry), then
each tenant's cycle with ``airflow dags test`` for the cycle date (its pre-flight records the drift
report's open drift), copies each evidence pack out of the evidence bucket into out/, prints a summary
per tenant, and stops fleetsim.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path

from devtools.local import (
    REPO,
    airflow_env,
    fleetsim_get,
    fleetsim_s3,
    migrate_db,
    run_cycle,
    running_fleetsim,
)

sys.path.insert(0, str(REPO / "plugins"))
from patchcycle.config.loader import load_tenants  # noqa: E402
from patchcycle.domain.schedule import most_recent_cycle_date  # noqa: E402

DEMO_SOAK_REASON = "local demo against fleetsim: no soak"
# The demo runs now, not in each tenant's prod change window; the evidence records it as an emergency change.
DEMO_WINDOW_REASON = "local demo against fleetsim: prod patched outside its change window"


def download_pack(url: str, tenant, out_dir: Path) -> tuple[dict, list[Path]]:
    """Copy the run's evidence pack from the tenant's bucket into ``out_dir/<tenant>/<cycle>/``, and its
    distribution addendum beside that folder (``<cycle>.distribution.json``: it is not one of the pack's
    files, which the manifest lists); return the evidence summary and the files."""
    s3 = fleetsim_s3(url, tenant.evidence.region)
    keys = [
        obj["Key"]
        # The cycles' packs only: the daily drift reports (drift/) are a chain of their own.
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=tenant.evidence.bucket, Prefix="cycles/"
        )
        for obj in page.get("Contents", [])
        if "/pack/" in obj["Key"] or "/distribution/" in obj["Key"]
    ]
    files = []
    for key in sorted(keys):
        cycle = key.split("/runs/", 1)[0].removeprefix("cycles/")
        if "/distribution/" in key:
            target = out_dir / tenant.id / f"{cycle}.distribution.json"
        else:
            target = out_dir / tenant.id / cycle / key.rsplit("/", 1)[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=tenant.evidence.bucket, Key=key)["Body"].read())
        files.append(target)
    evidence_file = next((f for f in files if f.name == "evidence.json"), None)
    evidence = json.loads(evidence_file.read_text()) if evidence_file else {}
    return evidence, files


def download_portfolio(url: str, out_dir: Path) -> list[Path]:
    """Copy the latest portfolio report (JSON, CSV, PDF) from the platform bucket."""
    s3 = fleetsim_s3(url)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="patchcycle-portfolio").get("Contents", []))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for key in keys[-3:]:
        target = out_dir / key.rsplit("/", 1)[1]
        target.write_bytes(s3.get_object(Bucket="patchcycle-portfolio", Key=key)["Body"].read())
        files.append(target)
    return files


HISTORY = Path(__file__).with_name("demo_history.yaml")


def seed_history(url: str, tenants) -> None:
    """Put each tenant's first-seen ledger, as its earlier runs left it, in its evidence bucket."""
    import yaml

    from patchcycle.domain.plan import LEDGER_PREFIX

    history = yaml.safe_load(HISTORY.read_text()) or {}
    for tenant in tenants:
        entries = history.get(tenant.id)
        if not entries:
            continue
        s3 = fleetsim_s3(url, tenant.evidence.region)
        body = json.dumps({k: str(v) for k, v in entries.items()}, indent=1).encode()
        s3.put_object(Bucket=tenant.evidence.bucket, Key=f"{LEDGER_PREFIX}earlier-runs.json", Body=body)
        print(f"  {tenant.id}: {len(entries)} update(s) first seen by earlier runs ({HISTORY.name})")


def summary_line(tenant_id: str, evidence: dict, rc: int, seconds: float) -> str:
    if not evidence:
        return f"{tenant_id}: no evidence written (airflow exit code {rc})"
    s = evidence["summary"]
    return (
        f"{tenant_id}: {evidence['cycle']['outcome'].upper()} in {seconds:.0f}s | hosts {s['hosts_total']}, "
        f"in scope {s['in_scope']}, patched {s['patched']}, failed {s['failed']}, "
        f"non-compliant {s.get('non_compliant', 0)}, not assessed {s.get('not_assessed', 0)}, "
        f"held {s['held']}, excepted {s['excepted']}, not run {s['not_run']} | "
        f"compliance {s['compliance_before']:.0%} -> {s['compliance_after']:.0%}"
    )


def run_drift_reports(url: str, env: dict[str, str], tenants, day: dt.date, work: Path) -> list[str]:
    """Each tenant's ``iac_drift__<tenant>`` for ``day``; its pack's drift.json and summary.csv copied to
    var/demo/drift/<tenant>/ (not out/: out/ holds the cycles' packs, which verify-evidence checks as one
    chain); one summary line per tenant."""
    from patchcycle.dag_factory import iac_drift_dag_id

    s3 = fleetsim_s3(url)
    lines = []
    for tenant in tenants:
        if tenant.clouds.aws is None:
            continue
        dag_id = iac_drift_dag_id(tenant)
        print(f"  running {dag_id} for {day} (log: var/demo/{dag_id}.log) ...", flush=True)
        rc = run_cycle(
            env,
            dag_id,
            f"{day.isoformat()}T05:00:00+00:00",
            {"as_of": day.isoformat()},
            work / f"{dag_id}.log",
        )
        bucket = tenant.evidence.bucket
        keys = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"drift/{day}/")
            for o in page.get("Contents", [])
            if "/pack" in o["Key"] and o["Key"].endswith(("drift.json", "summary.csv"))
        ]
        folder = work / "drift" / tenant.id
        folder.mkdir(parents=True, exist_ok=True)
        report: dict = {}
        for key in keys:
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            (folder / key.rsplit("/", 1)[1]).write_bytes(data)
            if key.endswith("drift.json"):
                report = json.loads(data)
        drifts = (report.get("report") or {}).get("drifts") or []
        who = sorted({(d.get("changed_by") or {}).get("username") or "unknown" for d in drifts})
        lines.append(
            f"  {dag_id}: rc={rc}, {len(drifts)} open drift(s)"
            + (f" by {', '.join(who)}" if who else "")
            + f", {len(report.get('launch_findings') or [])} launch template finding(s) -> "
            + f"{folder.relative_to(REPO)}/"
        )
    return lines


def run_saml_watch(url: str, env: dict[str, str], tenants, day: dt.date, work: Path) -> list[str]:
    """The daily ``saml_certificates`` watch for ``day``: one line per tenant with its nearest expiry and
    the certificates it alerts on (their renewal runbooks are mailed to the tenant's SREs)."""
    log = work / "saml_certificates.log"
    print(f"  running saml_certificates for {day} (log: {log.relative_to(REPO)}) ...", flush=True)
    rc = run_cycle(env, "saml_certificates", f"{day.isoformat()}T06:30:00+00:00", {}, log)
    s3 = fleetsim_s3(url)
    lines = [f"  saml_certificates: rc={rc}"]
    for tenant in tenants:
        bucket = tenant.evidence.bucket
        keys = sorted(
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"saml/{day}/")
            for o in page.get("Contents", [])
            if "/watch.try-" in o["Key"] and o["Key"].endswith(".json")
        )
        if not keys:
            lines.append(f"    {tenant.id}: no record")
            continue
        record = json.loads(s3.get_object(Bucket=bucket, Key=keys[-1])["Body"].read())
        nearest = record.get("nearest_expiry") or {}
        alerts = len((record.get("incidents") or {}).get("open") or {})
        lines.append(
            f"    {tenant.id}: {len(record.get('certificates') or [])} certificate(s), nearest expiry "
            f"{nearest.get('days_left', '-')} day(s) ({nearest.get('subject') or '-'}), "
            f"{alerts} open alert(s)"
        )
    return lines


def cycle_date_arg(value: str) -> dt.date:
    """``--cycle-date``: a calendar date written YYYY-MM-DD, else a usage error naming the value."""
    try:
        date = dt.date.fromisoformat(value)
    except ValueError:
        date = None
    if date is None or date.isoformat() != value:  # not 20261122 or 2026-W47-7 either
        raise argparse.ArgumentTypeError(f"{value!r} is not a date YYYY-MM-DD (e.g. 2026-11-22)")
    return date


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.demo",
        description=__doc__,
        epilog="exit codes: 0 every tenant wrote its evidence pack, 1 a pack is missing, 2 bad arguments",
    )
    parser.add_argument(
        "--cycle-date", type=cycle_date_arg, help="YYYY-MM-DD (default: the most recent fourth Sunday)"
    )
    parser.add_argument("--scenario", default=str(REPO / "fleetsim" / "scenarios" / "demo.yaml"))
    parser.add_argument("--out", default=str(REPO / "out"))
    parser.add_argument("--tenant", action="append", help="only these tenants (default: all)")
    args = parser.parse_args(argv)

    # Every argument is checked before anything starts (fleetsim, Airflow's DB, var/demo is cleared).
    if not Path(args.scenario).is_file():
        parser.error(f"--scenario {args.scenario!r}: no such file")
    known = load_tenants().tenants
    unknown = [t for t in dict.fromkeys(args.tenant or []) if t not in {k.id for k in known}]
    if unknown:
        parser.error(
            f"unknown tenant{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(k.id for k in known) or 'none'})"
        )
    cycle_date = args.cycle_date or most_recent_cycle_date(dt.datetime.now(dt.UTC))
    tenants = [t for t in known if not args.tenant or t.id in args.tenant]
    work = REPO / "var" / "demo"
    out = Path(args.out)
    shutil.rmtree(work, ignore_errors=True)
    started = time.monotonic()
    print(f"Patchcycle demo: cycle date {cycle_date}, tenants {', '.join(t.id for t in tenants)}")
    results = []
    with running_fleetsim(Path(args.scenario), work) as url:
        print(f"  fleetsim is up at {url}")
        env = airflow_env(work / "airflow", url)
        migrate_db(env)
        print("  Airflow metadata DB ready (SQLite under var/demo/airflow)")
        logical = f"{cycle_date.isoformat()}T02:00:00+00:00"
        conf = {
            "soak_hours_override": 0,
            "soak_override_reason": DEMO_SOAK_REASON,
            "window_override_reason": DEMO_WINDOW_REASON,
        }
        seed_history(url, tenants)
        drift_lines = run_drift_reports(url, env, tenants, cycle_date - dt.timedelta(days=1), work)
        saml_lines = run_saml_watch(url, env, tenants, cycle_date - dt.timedelta(days=1), work)
        for tenant in tenants:
            t0 = time.monotonic()
            log = work / f"{tenant.dag_id}.log"
            print(f"  running {tenant.dag_id} through Airflow (log: {log.relative_to(REPO)}) ...", flush=True)
            rc = run_cycle(env, tenant.dag_id, logical, conf, log)
            seconds = time.monotonic() - t0
            pack_out = out / tenant.id / cycle_date.isoformat()
            shutil.rmtree(pack_out, ignore_errors=True)
            evidence, files = download_pack(url, tenant, out)
            results.append((tenant, evidence, files, rc, seconds))
        print("  running patchcycle_portfolio (the cross-tenant roll-up) ...", flush=True)
        run_cycle(env, "patchcycle_portfolio", logical, {}, work / "patchcycle_portfolio.log")
        portfolio_files = download_portfolio(url, out / "portfolio")
        mail = fleetsim_get(url, "/fleetsim/mail")["messages"]
        truth = fleetsim_get(url, "/fleetsim/ground-truth")
        (work / "ground-truth.json").write_text(json.dumps(truth, indent=1))
    print("\nDrift reports (the day before the cycle):")
    for line in drift_lines:
        print(line)
    print("\nSAML certificate watch (the day before the cycle):")
    for line in saml_lines:
        print(line)
    print()
    for tenant, evidence, files, rc, seconds in results:
        print(summary_line(tenant.id, evidence, rc, seconds))
        for f in files:
            print(f"    {f.relative_to(REPO) if f.is_relative_to(REPO) else f}")
    print("\nPortfolio (all tenants):")
    for f in portfolio_files:
        print(f"    {f.relative_to(REPO) if f.is_relative_to(REPO) else f}")
    print(f"\nEvidence notices sent through fleetsim's mail relay: {len(mail)}")
    for message in mail:
        print(f"    to {', '.join(message['rcpt_tos'])}: {message['subject']}")
    print(
        f"\nCheck the packs as an auditor would:  .venv/bin/python -m patchcycle verify-evidence --dir {out}"
    )
    print(
        "\nfleetsim stopped. Ground truth: var/demo/ground-truth.json. "
        f"Total {time.monotonic() - started:.0f}s."
    )
    # Failed or partial cycles are expected in the demo scenario (it injects faults); a missing pack is not.
    return 0 if all(ev for _, ev, _, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
