"""checkov on include/terraform: no failed check, and every skipped check carries its reason inline
(``#checkov:skip=CKV_...:reason`` in the HCL). checkov runs from its own venv (.venv-tools/checkov,
made by scripts/bootstrap.sh; pyproject.toml says why it is not in .venv), offline (--skip-download:
no guideline links, no platform policies)."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter

import pytest

from tests.conftest import REPO
from tests.terraform.hcl import TERRAFORM

CHECKOV = REPO / ".venv-tools" / "checkov" / "bin" / "checkov"


@pytest.fixture(scope="module")
def checkov_report() -> dict:
    assert CHECKOV.exists(), (
        f"{CHECKOV} is missing: run scripts/bootstrap.sh (make install) to install checkov"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_"))}
    result = subprocess.run(
        [str(CHECKOV), "-d", str(TERRAFORM), "--framework", "terraform", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        env={**env, "LOG_LEVEL": "WARNING"},
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.mark.timeout(360)
def test_checkov_finds_no_failed_check_and_every_skip_gives_its_reason(checkov_report: dict) -> None:
    summary, results = checkov_report["summary"], checkov_report["results"]
    failed = [f"{r['check_id']} {r['resource']} ({r['file_path']})" for r in results.get("failed_checks", [])]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0
    for skipped in results.get("skipped_checks", []):
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 5, (
            f"{skipped['check_id']} on {skipped['resource']} is skipped without a reason"
        )
    skips = Counter(r["check_id"] for r in results.get("skipped_checks", []))
    print(
        f"checkov {summary['checkov_version']}: passed {summary['passed']}, failed {summary['failed']}, "
        f"skipped {summary['skipped']} {dict(sorted(skips.items()))}, resources {summary['resource_count']}"
    )
    # The skips are the documented ones only (include/terraform/modules/evidence_bucket/main.tf).
    assert set(skips) <= {
        "CKV_AWS_18",
        "CKV_AWS_109",
        "CKV_AWS_111",
        "CKV_AWS_144",
        "CKV_AWS_356",
        "CKV2_AWS_62",
    }
