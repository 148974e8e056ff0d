"""The portfolio's Falcon sensor coverage through Airflow against fleetsim: after a roll-out of cu_alpha
across AWS, Azure Arc and GCP, the portfolio DAG reads its latest roll-out pack and shows, for the tenant,
the hosts with a healthy sensor, the rest by what is wrong, the pack's day and outcome, and the mode."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pypdf import PdfReader

from devtools.local import fleetsim_s3, run_cycle
from tests.conftest import REPO
from tests.e2e.conftest import fleet_with
from tests.e2e.test_falcon_rollout import pack, with_rollout

pytestmark = pytest.mark.e2e

DAY = "2026-12-01"


def test_the_portfolio_shows_the_latest_rollouts_coverage(airflow_home: Path, tmp_path: Path) -> None:
    with fleet_with(
        airflow_home,
        tmp_path,
        scenario="alpha_falcon_rollout.yaml",
        tenants_from=REPO / "include" / "tenants",
        edit_alpha=with_rollout,
    ) as fleet:
        # The roll-out fails (hosts fail validation) after writing its pack: an incomplete one.
        run_cycle(
            fleet.env, "falcon_rollout__cu_alpha", f"{DAY}T06:00:00+00:00", {}, tmp_path / "rollout.log"
        )
        written = pack(fleet.url, DAY)
        assert "rollout.json" in written, (tmp_path / "rollout.log").read_text()[-3000:]
        doc = json.loads(written["rollout.json"])
        rc = run_cycle(fleet.env, "patchcycle_portfolio", f"{DAY}T08:00:00+00:00", {}, tmp_path / "p.log")
        assert rc == 0, (tmp_path / "p.log").read_text()[-3000:]
        s3 = fleetsim_s3(fleet.url)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="patchcycle-portfolio").get("Contents", [])]
        files = {
            k.rsplit("/", 1)[1]: s3.get_object(Bucket="patchcycle-portfolio", Key=k)["Body"].read()
            for k in keys
        }
    row = {r["tenant"]: r for r in json.loads(files["portfolio.json"])["tenants"]}["cu_alpha"]
    summary = doc["summary"]
    checks = {v["host_id"]: v for v in doc["validation"]["validations"]}
    # No cycle yet: the roll-out pack is the source, dated by its day, with its outcome.
    assert (row["sensor_source"], row["sensor_as_of"]) == ("falcon_rollout", DAY)
    assert (row["rollout_day"], row["rollout_outcome"]) == (DAY, doc["outcome"])
    # Every host that can carry a sensor; the healthy ones passed validation after the run.
    assert row["sensor_hosts"] == summary["hosts"] - summary.get("skip", 0)
    assert row["sensor_healthy"] == summary["validated"]
    assert row["sensor_failed_validation"] == summary["failed_validation"] > 0
    # A host that failed keeps what the run could not fix: no device record is no sensor; the sensor in
    # RFM and the one older than the policy (the scenario's t-gce-dev-db-02 and t-arc-prd-old-01) stay so.
    failed = {
        n["name"]: (n, checks[n["host_id"]]) for n in doc["needs"] if not checks[n["host_id"]]["passed"]
    }
    assert row["sensor_missing"] == sum(1 for _, check in failed.values() if not check["device_id"])
    assert failed["t-gce-dev-db-02"][0]["action"] == "rfm" and row["sensor_rfm"] == 1
    assert failed["t-arc-prd-old-01"][0]["action"] == "upgrade" and row["sensor_below_policy"] == 1
    assert row["sensor_coverage"] == round(summary["validated"] / row["sensor_hosts"], 4)
    assert row["sensor_coverage_by_cloud"].startswith("aws ") and "azure " in row["sensor_coverage_by_cloud"]
    # The tenant declares no prevention phases here: the roll-out does not manage the mode, which is unknown.
    assert doc["phases"] is None
    assert row["falcon_mode"] is None and "manages no prevention policy" in row["sensor_note"]
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(files["portfolio.pdf"])).pages)
    assert "Falcon sensor coverage and mode" in text and f"falcon_rollout ({DAY})" in " ".join(text.split())
    assert "sensor_healthy" in files["portfolio.csv"].decode().splitlines()[0]
