"""Risk drives the plan, through Airflow against fleetsim: a dry run of the monthly cycle fast-tracks a KEV
fix and shows each open KEV item's SLA clock; the daily feed refresh sees a new KEV listing that affects
cu_alpha's Windows hosts and emits an asset event for cu_alpha only (cu_cedar, with a zero-day policy but no
Windows, gets none); the zero-day cycle then patches exactly the fixing patch through every stage, with
the emergency policy and its approver in its own pack, chained to the pack before it, and reports the
listing nobody has a fix for with its exposed host and the compensating control on record.

The asset event is checked in Airflow's metadata (the event, its extra, the run it queues); ``airflow dags
test`` runs a DAG as a manual run, so the zero-day run is started with the event's CVEs as its conf, as the
scheduler would start it from the event (the asset-triggered path of the plan task, reading
``triggering_asset_events``, is in tests/operators/test_zero_day.py).
"""

from __future__ import annotations

import gzip
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from pypdf import PdfReader

from devtools.local import fleetsim_get, run_cycle
from patchcycle.reports.manifest import manifest_sha256, verify_pack
from tests.conftest import REPO
from tests.e2e.conftest import CycleResult, changes, fleet_with

pytestmark = pytest.mark.e2e

NOV = "2026-11-22T02:00:00+00:00"
ZERO_DAY_AT = "2026-11-25T09:00:00+00:00"
PLATFORM = "patchcycle-portfolio"
ALPHA_BUCKET = "patchcycle-evidence-cu-alpha"
ZERO_DAY = {
    "emergency_soak_hours": 0,
    "emergency_change_window": "patch_outside_window",
    "approver": "J. Alvarez",
    "approver_role": "CISO",
    "approved_on": "2026-10-01",
}
REGISTER = {
    "tenant_id": "cu_alpha",
    "exceptions": [
        {
            "id": "EXC-2026-120",
            "hosts": ["t-prd-win-01"],
            "patches": ["KB5040000"],
            "justification": "Line-of-business app on this host is not yet certified on the newest update.",
            "compensating_control": "WAF virtual patching in block mode and RASP on the teller application.",
            "requested_by": "Alpha app owner",
            "approver": "J. Alvarez",
            "approver_role": "CISO",
            "approved_on": "2026-11-01",
            "expires_on": "2026-12-31",
            "risk_rating": "High",
        }
    ],
}


@pytest.fixture
def tenants(aws_only_tenants: Path, tmp_path: Path) -> Path:
    """The AWS-only tenants; cu_alpha fast-tracks KEV fixes and has a zero-day cycle, cu_cedar (no Windows)
    has one too."""
    folder = tmp_path / "tenants-zero-day"
    folder.mkdir()
    for path in aws_only_tenants.glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if data["id"] == "cu_alpha":
            data["risk"] = {"fast_track_kev": True, "zero_day": ZERO_DAY}
        if data["id"] == "cu_cedar":
            data["risk"] = {"zero_day": ZERO_DAY}
        (folder / path.name).write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def airflow(fleet: Any, *argv: str) -> None:
    from devtools.warm_airflow import warm_airflow

    log = fleet.workdir / f"cli-{'-'.join(argv)}.log"
    assert warm_airflow(fleet.env, REPO).run(list(argv), fleet.env, REPO, log) == 0, log.read_text()[-2000:]


def run_dag(fleet: Any, dag_id: str, logical_date: str, conf: dict[str, Any]) -> CycleResult:
    """One DAG run through ``airflow dags test`` with exactly ``conf``; the pack of its cycle date."""
    log_path = fleet.workdir / f"{dag_id}-{logical_date[:10]}.log"
    rc = run_cycle(fleet.env, dag_id, logical_date, conf, log_path)
    s3 = fleet.s3()
    keys = sorted(
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=ALPHA_BUCKET)
        for o in page.get("Contents", [])
    )
    pack = [k for k in keys if k.startswith(f"cycles/{logical_date[:10]}/") and "/pack/" in k]
    files = {k.rsplit("/", 1)[1]: s3.get_object(Bucket=ALPHA_BUCKET, Key=k)["Body"].read() for k in pack}
    truth = {h["name"]: h for h in fleetsim_get(fleet.url, "/fleetsim/ground-truth")["hosts"]}
    return CycleResult(rc, log_path.read_text(), keys, files, truth, fleet.task_states(dag_id))


def seed_previous_refresh(fleet: Any) -> None:
    """An earlier day's refresh in the platform bucket: the committed snapshots (so today's refresh finds
    the 2026-11-24 listings new, and nothing else)."""
    feeds = REPO / "include" / "feeds"
    s3 = fleet.s3()
    prefix = "feeds/2026-11-23/scheduled__2026-11-23T01:00:00+00:00"
    s3.put_object(
        Bucket=PLATFORM,
        Key=f"{prefix}/known_exploited_vulnerabilities.json",
        Body=(feeds / "kev-subset.json").read_bytes(),
    )
    epss = gzip.compress((feeds / "epss-sample.csv").read_bytes(), mtime=0)
    s3.put_object(Bucket=PLATFORM, Key=f"{prefix}/epss_scores.csv.gz", Body=epss)


def kev_events(fleet: Any) -> dict[str, list[dict[str, Any]]]:
    """Every event on a tenant's KEV asset, by asset name (what the Assets view shows)."""
    with sqlite3.connect(Path(fleet.env["AIRFLOW_HOME"]) / "airflow.db") as db:
        rows = db.execute(
            "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.name LIKE 'patchcycle_new_kev__%' ORDER BY e.id"
        ).fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for name, extra in rows:
        out.setdefault(name, []).append(json.loads(extra) if isinstance(extra, str) else dict(extra or {}))
    return out


def queued_by_assets(fleet: Any) -> set[str]:
    with sqlite3.connect(Path(fleet.env["AIRFLOW_HOME"]) / "airflow.db") as db:
        return {row[0] for row in db.execute("SELECT target_dag_id FROM asset_dag_run_queue").fetchall()}


def test_a_kev_listing_starts_the_zero_day_cycle_of_the_affected_tenant_only(
    airflow_home: Path, tenants: Path, tmp_path: Path
) -> None:
    with fleet_with(airflow_home, tmp_path, scenario="alpha_zero_day.yaml", tenants_from=tenants) as fleet:
        register = tmp_path / "register"
        register.mkdir()
        (register / "cu_alpha.yaml").write_text(yaml.safe_dump(REGISTER, sort_keys=False))
        fleet.env["PATCHCYCLE_EXCEPTIONS_DIR"] = str(register)
        seed_previous_refresh(fleet)

        # 1. The monthly dry run: the KEV fix released after the cutoff is fast-tracked, with its reason;
        # the dry run's output shows each open KEV item's SLA clock.
        dry = run_dag(fleet, "patch_cycle__cu_alpha", NOV, {"dry_run": True})
        assert dry.returncode == 0, dry.log[-3000:]
        approved = {p["id"]: p for p in dry.evidence["plan"]["approved"]["amazon_linux_2"]}
        assert approved["ALAS2-2026-2710"]["fast_track"]["cve"] == "CVE-2023-0386"
        assert approved["ALAS2-2026-2710"]["fast_track"]["kev_date_added"] == "2025-06-17"
        assert "KB5049999" not in {p["id"] for p in dry.evidence["plan"]["approved"]["windows_2019"]}
        assert dry.evidence["plan"]["risk"]["feeds"]["kev_catalog_version"] == "2025.08.25"
        assert "fast-tracked: KEV CVE-2023-0386 (listed 2025-06-17" in dry.log
        assert "KEV SLA clocks (" in dry.log
        (frozen,) = [e for e in dry.evidence["events"] if e["action"] == "plan.frozen"]
        assert {c["patch_id"] for c in frozen["details"]["kev_clocks"]} >= {"ALAS2-2026-2710", "KB5046615"}
        assert all(changes(t) == [] for t in dry.truth.values())

        # 2. The daily refresh sees two new KEV listings naming Microsoft Windows: cu_alpha patches
        # windows_2019, cu_cedar no Windows; only cu_alpha's zero-day cycle is queued.
        airflow(fleet, "dags", "reserialize")
        airflow(fleet, "dags", "unpause", "zero_day__cu_alpha")
        airflow(fleet, "dags", "unpause", "zero_day__cu_cedar")
        refresh = run_dag(fleet, "patchcycle_feeds", "2026-11-25T01:00:00+00:00", {})
        assert refresh.returncode == 0, refresh.log[-3000:]
        events = kev_events(fleet)
        assert set(events) == {"patchcycle_new_kev__cu_alpha"}
        (extra,) = events["patchcycle_new_kev__cu_alpha"]
        assert extra["cve_ids"] == ["CVE-2026-21001", "CVE-2026-21002"]
        assert extra["affected_os_families"] == ["windows_2019"]
        assert queued_by_assets(fleet) == {"zero_day__cu_alpha"}

        # 3. The zero-day cycle, started with the event's CVEs.
        why = f"KEV asset event: CISA catalog {extra['kev_catalog_version']} lists {extra['cve_ids']}"
        result = run_dag(
            fleet, "zero_day__cu_alpha", ZERO_DAY_AT, {"cve_ids": extra["cve_ids"], "justification": why}
        )
        # 4. A zero-day cycle for the listing nobody has a fix for: nothing to patch, nothing touched, and
        # the run says so instead of failing as an empty inventory would.
        before = {n: len(changes(t)) for n, t in result.truth.items()}
        unfixed = run_dag(
            fleet,
            "zero_day__cu_alpha",
            "2026-11-26T09:00:00+00:00",
            {"cve_ids": ["CVE-2026-21002"], "justification": "Exploited in the wild; no vendor fix yet"},
        )
    assert result.returncode == 0, result.log[-3000:]
    evidence = result.evidence
    cycle = evidence["cycle"]
    assert cycle["kind"] == "zero_day" and cycle["cycle_date"] == "2026-11-25"
    assert cycle["zero_day"]["cve_ids"] == ["CVE-2026-21001", "CVE-2026-21002"]
    assert cycle["zero_day"]["policy"]["approver"] == "J. Alvarez"
    assert (
        cycle["soak_hours_override"] == 0 and "approved by J. Alvarez (CISO)" in cycle["soak_override_reason"]
    )
    assert "zero-day emergency change" in cycle["window_override_reason"]

    # Its plan holds only the fixing patch, with the reason; the listing without a fix is said so.
    plan = evidence["plan"]
    assert {f: [p["id"] for p in ps] for f, ps in plan["approved"].items() if ps} == {
        "windows_2019": ["KB5049999"]
    }
    assert plan["approved"]["windows_2019"][0]["fast_track"]["basis"] == "zero_day"
    assert plan["risk"]["zero_day"]["without_fix"] == ["CVE-2026-21002"]

    # Exactly the fixing patch was installed, after its backup, and nothing else on any host.
    for name, truth in result.truth.items():
        for install in (a for a in truth["actions"] if a["action"] == "ssm.install"):
            assert set(install.get("installed") or []) <= {"KB5049999"}, name
    win = result.truth["t-prd-win-01"]
    assert "KB5049999" in win["installed"]
    (image,) = [a for a in win["actions"] if a["action"] == "ec2.create_image"]
    (install,) = [a for a in win["actions"] if a["action"] == "ssm.install"]
    assert image["ready_at"] <= install["at"]
    assert next(h for h in evidence["hosts"] if h["name"] == "t-prd-win-01")["final_state"] == "patched"
    assert [s["environment"] for s in evidence["stages"]] == ["nonprod", "staging", "prod"]
    assert "ALAS2-2026-2710" in result.truth["t-prd-web-01"]["missing"]  # the monthly's fast-track, not ours

    # No fix for CVE-2026-21002: the exposed Windows host and the compensating control on record.
    (no_fix,) = evidence["risk"]["zero_day"]["without_fix"]
    assert no_fix["cve"] == "CVE-2026-21002"
    (host,) = no_fix["exposed_hosts"]
    assert host["name"] == "t-prd-win-01"
    assert [c["id"] for c in host["compensating_controls"]] == ["EXC-2026-120"]
    text = " ".join(
        " ".join(p.extract_text() for p in PdfReader(io.BytesIO(result.files["report.pdf"])).pages).split()
    )
    assert "No fix yet for CVE-2026-21002" in text and "EXC-2026-120" in text
    assert "Zero-day cycle for CVE-2026-21001, CVE-2026-21002" in text

    # A pack of its own, chained to the dry run's before it.
    manifest = json.loads(result.files["manifest.json"])
    assert verify_pack(manifest, {f["name"]: result.files[f["name"]] for f in manifest["files"]}) == []
    assert manifest["previous_manifest_sha256"] == manifest_sha256(json.loads(dry.files["manifest.json"]))
    assert result.task_states["wait_for_monthly"] == "success"

    assert unfixed.returncode == 0, unfixed.log[-3000:]
    # Only the plan's Scan (read-only) reached the hosts.
    assert {n: len(changes(t)) for n, t in unfixed.truth.items() if n in before} == before
    assert not any(unfixed.evidence["plan"]["approved"].values())
    (item,) = unfixed.evidence["risk"]["zero_day"]["without_fix"]
    assert [(h["name"], [c["id"] for c in h["compensating_controls"]]) for h in item["exposed_hosts"]] == [
        ("t-prd-win-01", ["EXC-2026-120"])
    ]
    assert (
        "no fix for CVE-2026-21002" in unfixed.log.lower() or "NO FIX YET for CVE-2026-21002" in unfixed.log
    )
