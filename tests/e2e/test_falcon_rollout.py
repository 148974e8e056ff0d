"""The Falcon sensor roll-out through Airflow against fleetsim: which hosts need a sensor, across AWS, Azure
Arc and GCP, and the run's pack (its needs, hosts.csv, the endpoint-protection controls, its own chain)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devtools.local import fleetsim_get, fleetsim_s3, run_cycle
from patchcycle.reports.manifest import manifest_sha256, verify_pack
from tests.conftest import REPO
from tests.e2e.conftest import fleet_with

pytestmark = pytest.mark.e2e

DAG_ID = "falcon_rollout__cu_alpha"
BUCKET = "patchcycle-evidence-cu-alpha"
# nonprod: a static group the roll-out creates and fills; staging and prod: the dynamic groups the tenant's
# Falcon already has (fleetsim seeds one per environment, by the FalconGroupingTags sensor tag).
ROLLOUT = {
    "host_groups": {"nonprod": "cu-alpha-nonprod", "staging": "tag-staging", "prod": "tag-prod"},
    "sensor_version": {"max_versions_behind": 0},
    "install": {
        "aws": {"installer_bucket": "patchcycle-falcon-installers-cu-alpha"},
        # No wait between a zone's VMs (minWaitDuration): the e2e has one VM to install per zone.
        "gcp": {"min_wait_seconds": 0},
    },
}
NEW_HOSTS = {"t-dev-new-01": "aws", "t-arc-dev-new-01": "azure", "t-gce-dev-new-01": "gcp"}


def with_rollout(alpha: dict[str, Any]) -> None:
    alpha["falcon"] = {**alpha.get("falcon", {}), "rollout": ROLLOUT}


def falcon_groups(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """The host groups of fleetsim's Falcon control-plane snapshot, whatever CID holds them."""
    customers = snapshot.get("customers") or snapshot
    found = []
    for customer in customers.values() if isinstance(customers, dict) else customers:
        found.extend(customer.get("host_groups") or customer.get("groups") or [])
    return found


def pack(url: str, day: str) -> dict[str, bytes]:
    s3 = fleetsim_s3(url)
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=f"falcon-rollout/{day}/"
        )
        for o in page.get("Contents", [])
        if "/pack/" in o["Key"]
    ]
    return {k.rsplit("/", 1)[1]: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}


def test_a_rollout_finds_every_host_that_needs_a_sensor_in_every_cloud(
    airflow_home: Path, tmp_path: Path
) -> None:
    with fleet_with(
        airflow_home,
        tmp_path,
        scenario="alpha_falcon_rollout.yaml",
        tenants_from=REPO / "include" / "tenants",
        edit_alpha=with_rollout,
    ) as fleet:
        rc = run_cycle(fleet.env, DAG_ID, "2026-12-01T06:00:00+00:00", {}, tmp_path / "day1.log")
        first = pack(fleet.url, "2026-12-01")
        again = run_cycle(fleet.env, DAG_ID, "2026-12-02T06:00:00+00:00", {}, tmp_path / "day2.log")
        second = pack(fleet.url, "2026-12-02")
        truth = {h["name"]: h for h in fleetsim_get(fleet.url, "/fleetsim/ground-truth")["hosts"]}
        falcon = fleetsim_get(fleet.url, "/fleetsim/falcon")
        # An auditor checks the roll-out chain in the bucket as the cycles' (Object Lock, one version each).
        verified = subprocess.run(
            [sys.executable, "-m", "patchcycle", "verify-evidence", "cu_alpha", "--chain", "falcon-rollout"]
            + ["--endpoint-url", fleet.url],
            capture_output=True,
            text=True,
            timeout=120,
            env=fleet.env,
        )

    # Each new host gets its sensor through its cloud's own agent and validates: the Falcon install document
    # on AWS, CrowdStrike's machine extension on Arc, an OS policy assignment on GCP. The old Arc sensor
    # cannot be upgraded by the extension and the RFM sensor needs a reinstall falcon-installer does not
    # do: both are reported, with why, and each run fails after writing its pack.
    assert rc != 0 and again != 0
    doc = json.loads(first["rollout.json"])
    assert doc["kind"] == "falcon_rollout" and doc["outcome"] == "incomplete"
    for name in NEW_HOSTS:
        sensor = truth[name]["falcon"]
        assert sensor is not None and sensor["version"].startswith("7.14.16703"), truth[name]
    sent = [e for e in doc["events"] if e["action"] == "falcon.install_sent"]
    (aws,) = [e for e in sent if e["target"].startswith("aws:")]
    assert aws["details"]["document"] == "Patchcycle-FalconSensorInstall"
    assert aws["details"]["hosts"] == ["t-dev-new-01"]
    assert aws["details"]["installer"].startswith("s3://patchcycle-falcon-installers-cu-alpha/falcon-sensor/")
    needs = {n["name"]: n for n in doc["needs"]}
    installs = {needs_name(doc, host_id): i for host_id, i in doc["installs"].items()}
    assert {name: i["result"] for name, i in installs.items()} == {
        "t-dev-new-01": "sent_succeeded",
        "t-arc-dev-new-01": "sent_succeeded",
        "t-gce-dev-new-01": "sent_succeeded",
        "t-arc-prd-old-01": "not_sent",
        "t-gce-dev-db-02": "not_sent",
    }
    assert "does not upgrade" in installs["t-arc-prd-old-01"]["reason"], installs["t-arc-prd-old-01"]
    # Every host of every cloud, and only the tenant's.
    assert set(needs) == {name for name, h in truth.items() if h["tenant"] == "cu_alpha"}
    for name, cloud in NEW_HOSTS.items():
        assert (needs[name]["action"], needs[name]["cloud"]) == ("install", cloud), needs[name]
        assert needs[name]["target_version"].startswith("7.14.16703"), needs[name]
    old = needs["t-arc-prd-old-01"]
    assert old["action"] == "upgrade" and "7.10.16303" in old["reason"], old
    assert needs["t-gce-dev-db-02"]["action"] == "rfm", needs["t-gce-dev-db-02"]
    ok = [n for n in needs.values() if n["action"] == "ok"]
    assert len(ok) == len(needs) - 5 and all(n["sensor_version"].startswith("7.14.16703") for n in ok)
    assert {s["scope"]: s["status"] for s in doc["scopes"]} == {
        "aws:111111111111:us-east-1": "ok",
        "azure:6f1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a10": "ok",
        "gcp:alpha-dr-standby": "ok",
    }
    # Every host that can carry a sensor is validated through the Falcon API, each failure with its reason.
    checks = {v["name"]: v for v in doc["validation"]["validations"]}
    assert set(checks) == set(needs)
    failed = {name: v["reasons"] for name, v in checks.items() if not v["passed"]}
    assert set(failed) == {"t-arc-prd-old-01", "t-gce-dev-db-02"}, failed
    for name in NEW_HOSTS:
        assert checks[name]["passed"], checks[name]
    assert any("expected 7.14.16703 or newer" in r for r in failed["t-arc-prd-old-01"])
    assert any("reduced-functionality mode" in r for r in failed["t-gce-dev-db-02"])
    assert all(f"{name} failed validation" in " ".join(doc["problems"]) for name in failed)
    assert doc["summary"] == {
        "hosts": len(needs),
        "install": 3,
        "upgrade": 1,
        "rfm": 1,
        "ok": len(ok),
        "installed": 3,
        "upgraded": 0,
        "not_done": 2,
        "validated": len(ok) + 3,
        "failed_validation": 2,
    }
    timing = doc["timing"]
    assert timing["started_at"] < timing["validation_ended_at"] and timing["validation_outcome"] == "done"
    assert 0 < timing["seconds_to_last_validation"] < 600, timing
    # The nonprod group did not exist: the roll-out created it (static) and put nonprod's sensors in it,
    # which their device records then show (validated above: "in the tenant's host group").
    (group,) = [g for g in falcon_groups(falcon) if g["name"] == "cu-alpha-nonprod"]
    assert group["group_type"] == "static"
    initial, *later = [e for e in doc["events"] if e["action"] == "falcon.group_members_added"]
    nonprod_sensors = {
        n["device_id"] for n in needs.values() if n["environment"] == "nonprod" and n["device_id"]
    }
    assert len(nonprod_sensors) == 6 and nonprod_sensors <= set(initial["details"]["devices"])
    # The sensors the installs registered joined it too: with the first members when their records were
    # there by then, else once they appeared (the wait woke); each device added once either way.
    added = [device for event in (initial, *later) for device in event["details"]["devices"]]
    new_sensors = {checks[name]["device_id"] for name in NEW_HOSTS}
    assert sorted(added) == sorted(nonprod_sensors | new_sensors)
    assert all(checks[n["name"]]["passed"] for n in ok if n["environment"] == "nonprod")

    # hosts.csv: one row per host, as the JSON says.
    rows = list(csv.DictReader(io.StringIO(first["hosts.csv"].decode())))
    assert {r["name"]: r["action"] for r in rows} == {n: v["action"] for n, v in needs.items()}
    assert {r["name"] for r in rows if r["validated"] == "no"} == set(failed)

    # Endpoint protection, judged on the run's own events.
    status = {(c["framework"], c["control_id"]): c["status"] for c in doc["controls"]}
    assert status[("soc2", "CC6.8")] == "evidenced"  # assessed, validated and reported
    assert status[("pci_dss", "5.2.1")] == "evidenced"

    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "2 pack(s)" in verified.stdout and "intact" in verified.stdout
    # A pack of its own, chained to the day before's.
    manifest = json.loads(first["manifest.json"])
    assert verify_pack(manifest, {f["name"]: first[f["name"]] for f in manifest["files"]}) == []
    assert manifest["previous_manifest_sha256"] is None
    later = json.loads(second["manifest.json"])
    assert later["previous_manifest_sha256"] == manifest_sha256(manifest)
    # No secret in the evidence: the CID and install token went to Parameter Store, not into the pack.
    # Nor the Arc extension's API client secret (protected settings) or anything GCP's VMs read.
    assert b"fleetsim-install-token" not in first["rollout.json"]
    assert b"fleetsim-falcon-secret" not in first["rollout.json"]


def needs_name(doc: dict[str, Any], host_id: str) -> str:
    """The name of the host the roll-out's needs list under ``host_id``."""
    return next(n["name"] for n in doc["needs"] if n["host_id"] == host_id)
