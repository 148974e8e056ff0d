"""``RdsHook`` against fleetsim's RDS through boto3: DB instances and their pending OS updates paged at
the API's maximum, DB snapshots found by name, the OS update applied, and the rename-then-restore a
rollback makes; each checked against fleetsim's ground truth and call counts."""

from __future__ import annotations

import pytest
from fleetsim_testkit import Fleet, scenario_dict, wait_for

from devtools.local import aws_connection
from patchcycle.hooks.aws import RDS_PAGE, RdsHook

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hooks-rds")]

ACCOUNT = "111111111111"
CONN = "aws_rdshook"
UPDATE = "New Operating System update is available"
MANY = RDS_PAGE + 20  # one more page than a single call returns

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "rdshook",
            "aws": {
                "account_id": ACCOUNT,
                "region": "us-east-1",
                "databases": [
                    {"prefix": "pg", "count": MANY, "environment": "nonprod"},
                    {"prefix": "current", "count": 1, "environment": "prod", "os_update": None},
                ],
            },
            # pg-003's snapshots stay creating for an hour: the in-progress state is seen however slow
            # the machine is (the others' 0.3 s can pass between two calls on a loaded machine).
            "faults": {"backup_fails": ["pg-002"], "backup_slow_seconds": {"pg-003": 3600}},
        }
    ],
    catalog=[],
    timings={"rds_snapshot_seconds": 0.3, "rds_os_update_seconds": 0.3, "rds_restore_seconds": 0.3},
)


@pytest.fixture
def hook(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> RdsHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", aws_connection(fleet.url, "us-east-1", ACCOUNT))
    return RdsHook(aws_conn_id=CONN, region_name="us-east-1")


def calls_of(fleet: Fleet, action: str) -> int:
    return fleet.calls().get(f"aws.rds.{action}", 0)


def test_instances_and_pending_updates_are_paged_at_the_maximum(fleet, hook) -> None:
    before = {a: calls_of(fleet, a) for a in ("DescribeDBInstances", "DescribePendingMaintenanceActions")}
    instances = hook.db_instances()
    updates = hook.pending_os_updates()
    assert len(instances) == MANY + 1
    assert {t["Key"] for t in instances[0]["TagList"]} >= {"Environment", "Criticality", "Name"}
    arns = {db["DBInstanceIdentifier"]: db["DBInstanceArn"] for db in instances}
    assert set(updates) == {arns[f"pg-{i:03d}"] for i in range(1, MANY + 1)}  # "current" has none
    assert {u["Description"] for u in updates.values()} == {UPDATE}
    pages = -(-(MANY + 1) // RDS_PAGE)
    assert calls_of(fleet, "DescribeDBInstances") - before["DescribeDBInstances"] == pages
    assert calls_of(fleet, "DescribePendingMaintenanceActions") - before[
        "DescribePendingMaintenanceActions"
    ] == -(-MANY // RDS_PAGE)


def test_snapshots_are_found_by_name_and_a_failed_one_says_so(fleet, hook) -> None:
    tags = {"patchcycle:cycle": "2026-11-22"}
    hook.create_db_snapshot("pg-001", "pc-hook-pg-001", tags)
    hook.create_db_snapshot("pg-002", "pc-hook-pg-002", tags)
    hook.create_db_snapshot("pg-003", "pc-hook-pg-003", tags)
    first = hook.snapshots_named(["pc-hook-pg-001", "pc-hook-pg-002", "pc-hook-pg-003", "pc-never-taken"])
    # The one never taken is simply absent.
    assert set(first) == {"pc-hook-pg-001", "pc-hook-pg-002", "pc-hook-pg-003"}
    assert first["pc-hook-pg-003"]["Status"] == "creating"
    done = wait_for(
        lambda: hook.snapshots_named(["pc-hook-pg-001", "pc-hook-pg-002"]),
        lambda s: all(v["Status"] != "creating" for v in s.values()),
    )
    assert done["pc-hook-pg-001"]["Status"] == "available"
    assert done["pc-hook-pg-002"]["Status"] == "failed"
    assert {t["Key"]: t["Value"] for t in done["pc-hook-pg-001"]["TagList"]} == tags


def test_the_os_update_is_applied_then_a_rename_and_restore_bring_the_instance_back(fleet, hook) -> None:
    arn = next(db["DBInstanceArn"] for db in hook.db_instances() if db["DBInstanceIdentifier"] == "pg-010")
    hook.create_db_snapshot("pg-010", "pc-hook-pg-010", {})
    wait_for(
        lambda: hook.snapshots_named(["pc-hook-pg-010"])["pc-hook-pg-010"]["Status"],
        lambda s: s == "available",
    )

    answer = hook.apply_os_update(arn)
    assert answer["PendingMaintenanceActionDetails"][0]["OptInStatus"] == "immediate"
    wait_for(lambda: arn in hook.pending_os_updates(), lambda pending: not pending)
    assert fleet.truth("rdshook")["pg-010"]["installed"] == [UPDATE]

    assert set(hook.db_instances_named(["pg-010", "pg-010-pre-rollback-x", "pg-011"])) == {"pg-010", "pg-011"}
    like = hook.db_instances_named(["pg-010"])["pg-010"]
    hook.rename_db_instance("pg-010", "pg-010-pre-rollback-x")
    restored = hook.restore_from_snapshot("pg-010", "pc-hook-pg-010", like, {"Environment": "nonprod"})
    assert restored["DBInstanceArn"] == arn  # the same name: the same ARN and endpoint
    status = wait_for(
        lambda: {db["DBInstanceIdentifier"]: db["DBInstanceStatus"] for db in hook.db_instances()},
        lambda s: s.get("pg-010") == "available",
    )
    assert "pg-010-pre-rollback-x" in status  # the patched instance is kept aside
    truth = fleet.truth("rdshook")["pg-010"]
    assert truth["missing"] == [UPDATE] and truth["installed"] == []
    assert truth["actions"][-1]["action"] == "rds.restore_db_instance_from_db_snapshot"
