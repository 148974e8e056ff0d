"""The Falcon sensor roll-out through Airflow against fleetsim: which hosts need a sensor, across AWS, Azure
Arc and GCP, and the run's pack (its needs, hosts.csv, the endpoint-protection controls, its own chain)."""

from __future__ import annotations

import csv
import io
import json
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
ROLLOUT = {
    "host_groups": {"nonprod": "cu-alpha-nonprod", "staging": "cu-alpha-staging", "prod": "cu-alpha-prod"},
    "sensor_version": {"max_versions_behind": 0},
}
NEW_HOSTS = {"t-dev-new-01": "aws", "t-arc-dev-new-01": "azure", "t-gce-dev-new-01": "gcp"}


def with_rollout(alpha: dict[str, Any]) -> None:
    alpha["falcon"] = {**alpha.get("falcon", {}), "rollout": ROLLOUT}


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
        assert rc == 0, (tmp_path / "day1.log").read_text()[-4000:]
        first = pack(fleet.url, "2026-12-01")
        again = run_cycle(fleet.env, DAG_ID, "2026-12-02T06:00:00+00:00", {}, tmp_path / "day2.log")
        assert again == 0, (tmp_path / "day2.log").read_text()[-4000:]
        second = pack(fleet.url, "2026-12-02")
        truth = {h["name"]: h for h in fleetsim_get(fleet.url, "/fleetsim/ground-truth")["hosts"]}

    doc = json.loads(first["rollout.json"])
    assert doc["kind"] == "falcon_rollout" and doc["outcome"] == "complete", doc["problems"]
    needs = {n["name"]: n for n in doc["needs"]}
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
    assert doc["summary"] == {"hosts": len(needs), "install": 3, "upgrade": 1, "rfm": 1, "ok": len(ok)}

    # hosts.csv: one row per host, as the JSON says.
    rows = list(csv.DictReader(io.StringIO(first["hosts.csv"].decode())))
    assert {r["name"]: r["action"] for r in rows} == {n: v["action"] for n, v in needs.items()}

    # Endpoint protection, judged on the run's own events.
    status = {(c["framework"], c["control_id"]): c["status"] for c in doc["controls"]}
    assert status[("soc2", "CC6.8")] == "evidenced"
    assert status[("pci_dss", "5.2.1")] == "evidenced"

    # A pack of its own, chained to the day before's.
    manifest = json.loads(first["manifest.json"])
    assert verify_pack(manifest, {f["name"]: first[f["name"]] for f in manifest["files"]}) == []
    assert manifest["previous_manifest_sha256"] is None
    later = json.loads(second["manifest.json"])
    assert later["previous_manifest_sha256"] == manifest_sha256(manifest)
    # Nothing was installed by a run that only finds: no host's sensor changed.
    for name in NEW_HOSTS:
        assert truth[name]["falcon"] is None, truth[name]
