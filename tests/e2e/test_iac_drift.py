"""The daily drift report through Airflow against fleetsim: real boto3 over HTTP, a real ``airflow dags
test`` of ``iac_drift__cu_alpha``.

fleetsim plays ``terraform apply`` of cu_alpha's example root two weeks before it starts (the resources in
its emulated AWS, the state file in the platform's state bucket, CloudTrail recording the apply as the
Terraform role), then the issue's console edits, each by a named person (``scenarios/alpha_drift.yaml``).
The report must find exactly the drifts those edits make (the approve-after-days edit is the cycle's field:
shown, never drift), name who made each, call out the launch template version without the SSM bootstrap,
chain its pack, map its controls and mail the SREs once without a value in the mail.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devtools.local import run_cycle
from patchcycle.reports.manifest import verify_pack
from tests.e2e.conftest import ALPHA_BUCKET, fleet_with

pytestmark = pytest.mark.e2e

DAG_ID = "iac_drift__cu_alpha"
SCOPE = "aws:111111111111:us-east-1"
POLICY = "module.orchestrator_iam_aws.aws_iam_role_policy.execution"
BASELINE = 'module.patch_baselines.aws_ssm_patch_baseline.family["amazon_linux_2"]'
TEMPLATE = 'module.launch_template["amazon_linux_2"].aws_launch_template.ssm_managed'
LOCK = "module.evidence_bucket[0].aws_s3_bucket_object_lock_configuration.evidence"
# Who made each drift, as CloudTrail names them: an IAM user by name, an Identity Center user by session.
AUTHORS = {
    POLICY: "jane.doe@cu-alpha.example",
    BASELINE: "raj.patel@cu-alpha.example",
    TEMPLATE: "carol",
    LOCK: "sam.ops@platform.example",
}


def drift_pack(fleet: Any) -> tuple[list[str], dict[str, bytes]]:
    s3 = fleet.s3()
    keys = sorted(
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=ALPHA_BUCKET, Prefix="drift/")
        for o in page.get("Contents", [])
    )
    pack = [k for k in keys if "/pack/" in k]
    files = {k.rsplit("/", 1)[1]: s3.get_object(Bucket=ALPHA_BUCKET, Key=k)["Body"].read() for k in pack}
    return keys, files


def test_the_drift_report_finds_exactly_the_console_edits_and_names_who_made_each(
    airflow_home, aws_only_tenants, tmp_path: Path
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    with fleet_with(
        airflow_home, tmp_path, scenario="alpha_drift.yaml", tenants_from=aws_only_tenants
    ) as fleet:
        rc = run_cycle(fleet.env, DAG_ID, f"{today}T05:00:00+00:00", {}, tmp_path / "drift.log")
        log = (tmp_path / "drift.log").read_text()
        keys, files = drift_pack(fleet)
        mail = [m for m in fleet.mail() if "drift report" in m.get("subject", "")]
        # An auditor checks the drift chain in the bucket as the cycles' (Object Lock, one version each).
        verified = subprocess.run(
            [sys.executable, "-m", "patchcycle", "verify-evidence", "cu_alpha", "--chain", "drift"]
            + ["--endpoint-url", fleet.url],
            capture_output=True,
            text=True,
            timeout=120,
            env=fleet.env,
        )
    assert rc == 0, log[-4000:]
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "1 pack(s)" in verified.stdout and "intact" in verified.stdout
    document = json.loads(files["drift.json"])
    report = document["report"]
    assert report["complete"] is True and report["engine"] == "state_compare"
    assert report["scopes"] == [SCOPE]

    drifts = report["drifts"]
    assert {d["address"] for d in drifts} == set(AUTHORS), [(d["address"], d["path"]) for d in drifts]
    paths = {(d["address"], d["path"]) for d in drifts if d["address"] != TEMPLATE}
    assert paths == {
        (POLICY, "policy"),
        (BASELINE, "approved_patches_compliance_level"),
        (LOCK, "rule[0].default_retention[0].days"),
    }
    # The AMI refresh: a new version with another image, no user data and no instance profile, made the
    # default (the provider reads the latest version; both version numbers moved).
    template_paths = {d["path"] for d in drifts if d["address"] == TEMPLATE}
    assert template_paths == {
        "image_id",
        "user_data",
        "iam_instance_profile",
        "latest_version",
        "default_version",
    }
    for d in drifts:
        assert d["scope"] == SCOPE
        assert d["changed_by"] is not None, d
        assert d["changed_by"]["username"] == AUTHORS[d["address"]], (d["address"], d["changed_by"])
    # The lowered level is shown declared against live; the retention likewise.
    level = next(d for d in drifts if d["address"] == BASELINE)
    assert (level["declared"], level["live"]) == ("HIGH", "LOW")
    lock = next(d for d in drifts if d["address"] == LOCK)
    assert lock["live"] == 30 and lock["declared"] > 30

    # Approve-after-days is the cycle's: shown, never drift, and nobody is blamed for it.
    owned = {(d["address"], d["path"]) for d in report["owned_by_cycle"]}
    assert (BASELINE, "approval_rule[0].approve_after_days") in owned
    assert all(d["changed_by"] is None for d in report["owned_by_cycle"])

    (finding,) = document["launch_findings"]
    assert finding["address"] == TEMPLATE and finding["notice"] == "reported before the next cycle"
    assert any("SSM agent" in p for p in finding["problems"])
    assert any("instance profile" in p for p in finding["problems"])

    manifest = json.loads(files.pop("manifest.json"))
    assert verify_pack(manifest, files) == []
    controls = {(c["framework"], c["control_id"]): c["status"] for c in document["controls"]}
    assert controls[("soc2", "CC8.1")] == "evidenced"

    (sent,) = mail
    body = sent.get("html") or sent.get("body") or json.dumps(sent)
    for who in AUTHORS.values():
        assert who in body
    for value in ("ssm:*", '"LOW"', "ami-0a1b2c3d4e5f60789"):
        assert value not in body, value
    assert any(k.endswith("/alerts/sre.json") for k in keys)


def test_the_cycles_preflight_records_the_open_drift_on_its_baselines_in_the_evidence(
    airflow_home, aws_only_tenants, tmp_path: Path
) -> None:
    """A drift report of the day before the November cycle, then the cycle: its pre-flight reads that
    report and records the lowered compliance level of the Amazon Linux 2 baseline, and the evidence
    pack's event log carries it. The cycle is not held for it (recorded, never a gate)."""
    with fleet_with(
        airflow_home, tmp_path, scenario="alpha_drift.yaml", tenants_from=aws_only_tenants
    ) as fleet:
        rc = run_cycle(
            fleet.env, DAG_ID, "2026-11-21T05:00:00+00:00", {"as_of": "2026-11-21"}, tmp_path / "drift.log"
        )
        assert rc == 0, (tmp_path / "drift.log").read_text()[-4000:]
        cycle = fleet.run("patch_cycle__cu_alpha", "2026-11-22T02:00:00+00:00", {"environments": ["nonprod"]})
    assert cycle.returncode == 0, cycle.log[-4000:]
    preflight = [k for k in cycle.keys if "/preflight.try-" in k]
    assert preflight
    (event,) = [e for e in cycle.evidence["events"] if e["action"] == "preflight.drift_read"]
    assert event["result"] == "open drift" and event["details"]["report_date"] == "2026-11-21"
    recorded = {(d["address"], d["attribute"], d["changed_by"]) for d in event["details"]["drifts"]}
    assert recorded == {(BASELINE, "approved_patches_compliance_level", "raj.patel@cu-alpha.example")}
    assert {h["final_state"] for h in cycle.evidence["hosts"]} == {"patched"}
