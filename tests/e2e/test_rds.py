"""RDS DB instances through a whole cycle, against fleetsim's RDS (the unmodified boto3 RDS client).

cu_alpha's account opts in to RDS: each stage takes a DB snapshot of its databases (a hard gate), then
applies the OS update the plan froze (the pending ``system-update`` maintenance action), waits for RDS
to finish and verifies it. A database whose snapshot fails is held and untouched; a stopped one is held
by the gate; a database RDS failed to update fails its stage and stops prod; the rollback DAG restores
a database from the cycle's snapshot under its own name.
"""

from __future__ import annotations

from typing import Any

import pytest

from devtools.local import fleetsim_get, run_cycle
from tests.e2e.conftest import fleet_with

pytestmark = pytest.mark.e2e

DAG_ID = "patch_cycle__cu_alpha"
ROLLBACK_DAG = "patchcycle_rollback__cu_alpha"
NOV = "2026-11-22"
UPDATE = "New Operating System update is available"
BASE_FAULTS: dict[str, Any] = {
    "install_fails": ["t-dev-app-02"],
    "agent_offline": ["t-prd-web-03", "t-prd-db-02"],
    "backup_fails": ["t-prd-web-04", "t-stg-db-02"],
}


def with_rds(alpha: dict[str, Any]) -> None:
    alpha["clouds"]["aws"]["accounts"][0]["rds"] = True


def actions(truth: dict[str, Any], name: str) -> list[str]:
    return [a["action"] for a in truth[name]["actions"]]


def test_databases_are_snapshotted_then_get_the_frozen_os_update_in_every_stage(
    airflow_home, aws_only_tenants, tmp_path
) -> None:
    with fleet_with(
        airflow_home, tmp_path, scenario="alpha_rds.yaml", tenants_from=aws_only_tenants, edit_alpha=with_rds
    ) as fleet:
        result = fleet.run(DAG_ID, NOV)
        calls = fleetsim_get(fleet.url, "/fleetsim/calls")["calls"]
    assert result.returncode == 0, result.log[-4000:]
    states = result.task_states
    for task in ("nonprod.patch_rds", "staging.patch_rds", "prod.patch_rds"):
        assert states[task] == "success", task
    assert states["prod.canary.patch_rds"] == "skipped"  # the canary is the least critical: an EC2 host
    assert result.evidence["plan"]["rds_os_updates"] == [UPDATE]
    truth = result.truth
    for name in ("t-dev-db-01", "t-stg-db-01", "t-prd-db-01"):
        assert truth[name]["kind"] == "db_instance"
        assert truth[name]["missing"] == [] and UPDATE in truth[name]["installed"], name
        # One snapshot, taken before the update, and one update.
        done = actions(truth, name)
        assert done.count("rds.create_db_snapshot") == 1, done
        assert done.index("rds.create_db_snapshot") < done.index("rds.os_update"), done
        record = result.host(name)
        assert record["final_state"] == "patched", record
        assert record["backup_kind"] == "db_snapshot" and record["backup_id"].startswith("pc-")
        snapshot = next(a for a in truth[name]["actions"] if a["action"] == "rds.create_db_snapshot")
        assert snapshot["snapshot_id"] == record["backup_id"]
    # The failed snapshot holds its database: never updated, and the evidence says why.
    assert truth["t-stg-db-02"]["missing"] == [UPDATE]
    assert "rds.os_update" not in actions(truth, "t-stg-db-02")
    held = result.host("t-stg-db-02")
    assert (
        held["final_state"] == "held" and "db snapshot" in held["reason"] and "not patched" in held["reason"]
    )
    # The stopped database is held by the gate before anything is done to it.
    stopped = result.host("t-prd-db-02")
    assert stopped["final_state"] == "held" and stopped["reason"] == "RDS DB instance stopped"
    assert truth["t-prd-db-02"]["actions"] == []
    # RDS instances never go through SSM: the EC2 hosts are still patched by Run Command.
    assert result.host("t-prd-web-01")["final_state"] == "patched"
    assert calls.get("aws.rds.ApplyPendingMaintenanceAction") == 3
    assert calls.get("aws.rds.CreateDBSnapshot") == 4


def test_a_database_rds_fails_to_update_fails_staging_and_rolls_back_from_its_snapshot(
    airflow_home, aws_only_tenants, tmp_path
) -> None:
    faults = {**BASE_FAULTS, "install_fails": ["t-dev-app-02", "t-stg-db-01"]}
    with fleet_with(
        airflow_home,
        tmp_path,
        scenario="alpha_rds.yaml",
        tenants_from=aws_only_tenants,
        faults=faults,
        edit_alpha=with_rds,
    ) as fleet:
        before = {h["name"]: h for h in fleetsim_get(fleet.url, "/fleetsim/ground-truth")["hosts"]}
        result = fleet.run(DAG_ID, NOV)
        assert result.returncode != 0
        states = result.task_states
        assert states["staging.patch_rds"] == "success"
        assert states["staging.verify"] == "failed"
        assert states["prod.patch_rds"] in ("upstream_failed", "skipped")
        failed = result.host("t-stg-db-01")
        assert failed["final_state"] == "failed" and "still pending" in failed["reason"]
        staging = next(s for s in result.evidence["stages"] if s["environment"] == "staging")
        assert staging["status"] == "failed"
        # Prod's database was never touched.
        assert "rds.os_update" not in actions(result.truth, "t-prd-db-01")
        assert not [a for a in actions(result.truth, "t-prd-db-01") if a.startswith("rds.")]

        # Roll the nonprod database (updated) back from the cycle's snapshot, through the rollback DAG.
        conf = {"cycle": NOV, "hosts": ["t-dev-db-01"], "reason": "app errors after the OS update"}
        log_path = fleet.workdir / "rollback.log"
        rc = run_cycle(fleet.env, ROLLBACK_DAG, "2026-11-23T10:00:00+00:00", conf, log_path)
        assert rc == 0, log_path.read_text()[-4000:]
        assert fleet.task_states(ROLLBACK_DAG) == {
            "select": "success",
            "restore": "success",
            "verify": "success",
        }
        now = {h["name"]: h for h in fleetsim_get(fleet.url, "/fleetsim/ground-truth")["hosts"]}
    db = now["t-dev-db-01"]
    assert db["host_id"] == before["t-dev-db-01"]["host_id"]  # the same name, so the same ARN and endpoint
    assert db["missing"] == before["t-dev-db-01"]["missing"] == [UPDATE]
    assert db["installed"] == before["t-dev-db-01"]["installed"]
    restore = db["actions"][-1]
    assert restore["action"] == "rds.restore_db_instance_from_db_snapshot"
    assert restore["snapshot_id"] == result.host("t-dev-db-01")["backup_id"]
