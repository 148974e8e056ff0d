"""fleetsim's RDS DB instances through the unmodified boto3 RDS client: inventory with tags and status,
the OS update as a pending ``system-update`` maintenance action (listed, filtered, paged, applied, failing),
DB snapshots that take time and can fail, paged snapshot listings, and the rollback by rename then
restore under the original name. Also the scenario's refusals for database groups.

Each test changes only hosts no other test here touches (see ``conftest.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from fleetsim_testkit import Fleet, group, patch, scenario_dict, wait_for

from fleetsim.scenario import ScenarioError, parse_scenario

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-rds")]

ACCOUNT, REGION = "210987654321", "eu-west-1"
DEFAULT_UPDATE = "New Operating System update is available"
MYSQL_UPDATE = "Operating system update: kernel and OpenSSL fixes"
STEP = 0.4  # every RDS lifecycle's length in this module

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "rd",
            "aws": {
                "account_id": ACCOUNT,
                "region": REGION,
                "groups": [group("web", 2)],
                "databases": [
                    {"prefix": "pg", "count": 25, "environment": "prod", "criticality": "high"},
                    {
                        "prefix": "my",
                        "count": 2,
                        "environment": "dev",
                        "engine": "mysql",
                        "engine_version": "8.0.39",
                        "instance_class": "db.t4g.medium",
                        "os_update": MYSQL_UPDATE,
                    },
                    {"prefix": "quiet", "count": 1, "environment": "dev", "os_update": None},
                ],
            },
            "faults": {
                "agent_offline": ["pg-25"],
                "install_fails": ["pg-24"],
                "backup_fails": ["pg-23"],
                "backup_slow_seconds": {"pg-22": 30},
                "open_problem": ["pg-21"],  # a Dynatrace fault naming a database: ignored
            },
        }
    ],
    catalog=[patch("ALAS2-RDS", "amazon_linux_2")],
)
SCENARIO["timings"].update(rds_snapshot_seconds=STEP, rds_os_update_seconds=STEP, rds_restore_seconds=STEP)
PG_COUNT, MY_COUNT = 25, 2


def arn(name: str) -> str:
    return f"arn:aws:rds:{REGION}:{ACCOUNT}:db:{name}"


def rds(fleet: Fleet) -> Any:
    return fleet.client("rds", ACCOUNT, REGION)


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = exc.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def status(fleet: Fleet, name: str) -> str:
    return rds(fleet).describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]["DBInstanceStatus"]


def pending(fleet: Fleet, **kwargs: Any) -> dict[str, list[dict[str, Any]]]:
    """Every pending maintenance action through the paginator, by resource ARN."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for page in rds(fleet).get_paginator("describe_pending_maintenance_actions").paginate(**kwargs):
        for resource in page["PendingMaintenanceActions"]:
            assert resource["ResourceIdentifier"] not in rows, "a resource listed twice across pages"
            rows[resource["ResourceIdentifier"]] = resource["PendingMaintenanceActionDetails"]
    return rows


def snapshot(fleet: Fleet, snapshot_id: str) -> dict[str, Any]:
    return rds(fleet).describe_db_snapshots(DBSnapshotIdentifier=snapshot_id)["DBSnapshots"][0]


def wait_snapshot(fleet: Fleet, snapshot_id: str) -> dict[str, Any]:
    return wait_for(lambda: snapshot(fleet, snapshot_id), lambda s: s["Status"] != "creating")


def actions(fleet: Fleet, name: str, action: str) -> list[dict[str, Any]]:
    return [a for a in fleet.truth("rd")[name]["actions"] if a["action"] == action]


def apply(fleet: Fleet, name: str, opt_in: str = "immediate", action: str = "system-update") -> dict:
    return rds(fleet).apply_pending_maintenance_action(
        ResourceIdentifier=arn(name), ApplyAction=action, OptInType=opt_in
    )["ResourcePendingMaintenanceActions"]


# -- inventory ----------------------------------------------------------------------------------------
def test_db_instances_are_listed_with_tags_and_status_and_nowhere_else(fleet: Fleet) -> None:
    client = rds(fleet)
    dbs = {
        db["DBInstanceIdentifier"]: db
        for page in client.get_paginator("describe_db_instances").paginate(PaginationConfig={"PageSize": 20})
        for db in page["DBInstances"]
    }
    assert {f"pg-{i:02d}" for i in range(1, PG_COUNT + 1)} | {"my-01", "my-02", "quiet-01"} <= set(dbs)
    pg = dbs["pg-02"]
    assert pg["DBInstanceArn"] == arn("pg-02") and pg["DBInstanceStatus"] == "available"
    assert (pg["Engine"], pg["EngineVersion"], pg["DBInstanceClass"]) == ("postgres", "16.4", "db.m6g.large")
    assert {t["Key"]: t["Value"] for t in pg["TagList"]} == {
        "Name": "pg-02",
        "Environment": "prod",
        "Criticality": "high",
        "Tenant": "rd",
    }
    my = dbs["my-02"]
    assert (my["Engine"], my["EngineVersion"], my["DBInstanceClass"]) == ("mysql", "8.0.39", "db.t4g.medium")
    assert dbs["pg-25"]["DBInstanceStatus"] == "stopped"  # agent_offline

    truth = fleet.truth("rd")
    db = truth["pg-02"]
    assert (db["kind"], db["cloud"], db["os_family"], db["host_id"]) == (
        "db_instance",
        "aws",
        "rds",
        arn("pg-02"),
    )
    assert (db["agent_status"], db["kernel"], db["falcon"]) == ("available", None, None)
    assert db["missing"] == [DEFAULT_UPDATE] and db["installed"] == []
    assert truth["my-01"]["missing"] == [MYSQL_UPDATE] and truth["quiet-01"]["missing"] == []
    assert truth["pg-25"]["agent_status"] == "stopped"
    assert truth["web-01"]["kind"] == "instance"

    # Not a managed instance (SSM), nor an EC2 instance, nor a Dynatrace host.
    ssm = fleet.client("ssm", ACCOUNT, REGION)
    managed = ssm.describe_instance_information()["InstanceInformationList"]
    assert sorted(i["InstanceId"] for i in managed) == sorted(fleet.ids("rd", "web-01", "web-02"))
    with pytest.raises(ClientError) as exc:
        ssm.send_command(InstanceIds=[arn("pg-02")], DocumentName="AWS-RunPatchBaseline")
    assert error(exc)[0] == "InvalidInstanceId"
    ec2 = fleet.client("ec2", ACCOUNT, REGION)
    reservations = ec2.describe_instances()["Reservations"]
    assert sum(len(r["Instances"]) for r in reservations) == 2
    problems = requests.get(
        f"{fleet.url}/api/v2/problems",
        params={"entitySelector": 'type("HOST"),tag("host:pg-21")'},
        headers={"Authorization": "Api-Token dt0c01.FLEETSIM.TOKEN"},
        timeout=10,
    )
    assert problems.status_code == 200 and problems.json()["problems"] == []


# -- pending maintenance actions ----------------------------------------------------------------------
def test_pending_os_updates_are_listed_filtered_and_paged(fleet: Fleet) -> None:
    client = rds(fleet)
    first = client.describe_pending_maintenance_actions(MaxRecords=20)
    assert len(first["PendingMaintenanceActions"]) == 20 and first["Marker"]
    everything = pending(fleet, PaginationConfig={"PageSize": 20})
    untouched = {arn(f"pg-{i:02d}") for i in range(8, 21)} | {arn("my-01"), arn("my-02"), arn("pg-25")}
    assert untouched <= set(everything)
    assert arn("quiet-01") not in everything  # no OS update pending
    assert len(everything) > 20

    (detail,) = everything[arn("pg-10")]
    assert detail["Action"] == "system-update" and detail["Description"] == DEFAULT_UPDATE
    assert "OptInStatus" not in detail and "CurrentApplyDate" not in detail
    last_scan = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert last_scan + dt.timedelta(days=7) < detail["AutoAppliedAfterDate"] < detail["ForcedApplyDate"]
    assert everything[arn("my-02")][0]["Description"] == MYSQL_UPDATE

    by_id = pending(
        fleet, Filters=[{"Name": "db-instance-id", "Values": ["pg-10", arn("my-01"), "quiet-01"]}]
    )
    assert set(by_id) == {arn("pg-10"), arn("my-01")}
    assert set(pending(fleet, ResourceIdentifier=arn("pg-11"))) == {arn("pg-11")}
    assert pending(fleet, ResourceIdentifier=arn("quiet-01")) == {}
    assert pending(fleet, Filters=[{"Name": "db-cluster-id", "Values": ["pg-10"]}]) == {}

    for bad in (
        {"MaxRecords": 19},
        {"MaxRecords": 101},
        {"Filters": [{"Name": "engine", "Values": ["postgres"]}]},
    ):
        with pytest.raises(ClientError) as exc:
            client.describe_pending_maintenance_actions(**bad)
        assert error(exc)[0] == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:
        client.describe_pending_maintenance_actions(ResourceIdentifier=arn("nope-01"))
    assert error(exc)[:2] == ("ResourceNotFoundFault", 404)


def test_applying_the_os_update_upgrades_then_installs_it(fleet: Fleet) -> None:
    answer = apply(fleet, "pg-01")
    assert answer["ResourceIdentifier"] == arn("pg-01")
    (detail,) = answer["PendingMaintenanceActionDetails"]
    assert detail["OptInStatus"] == "immediate" and detail["Description"] == DEFAULT_UPDATE
    assert abs(detail["CurrentApplyDate"].timestamp() - time.time()) < 5
    assert status(fleet, "pg-01") == "upgrading"
    # While it upgrades the action is still listed, opted in; a second opt-in is refused.
    assert pending(fleet, ResourceIdentifier=arn("pg-01"))[arn("pg-01")][0]["OptInStatus"] == "immediate"
    with pytest.raises(ClientError) as exc:
        apply(fleet, "pg-01")
    assert error(exc)[0] == "InvalidDBInstanceState"
    with pytest.raises(ClientError) as exc:
        rds(fleet).create_db_snapshot(DBInstanceIdentifier="pg-01", DBSnapshotIdentifier="pg-01-mid-update")
    assert error(exc)[0] == "InvalidDBInstanceState"

    wait_for(lambda: status(fleet, "pg-01"), lambda s: s == "available")
    assert pending(fleet, ResourceIdentifier=arn("pg-01")) == {}
    truth = fleet.truth("rd")["pg-01"]
    assert truth["missing"] == [] and truth["installed"] == [DEFAULT_UPDATE] and truth["failed"] == []
    (update,) = actions(fleet, "pg-01", "rds.os_update")
    assert update["result"] == "installed" and update["description"] == DEFAULT_UPDATE
    with pytest.raises(ClientError) as exc:  # nothing left to apply
        apply(fleet, "pg-01")
    assert error(exc)[0] == "InvalidParameterValue"


def test_a_failing_os_update_stays_pending_until_the_fault_is_cleared(fleet: Fleet) -> None:
    apply(fleet, "pg-24")
    assert status(fleet, "pg-24") == "upgrading"
    wait_for(lambda: status(fleet, "pg-24"), lambda s: s == "available")
    (detail,) = pending(fleet, ResourceIdentifier=arn("pg-24"))[arn("pg-24")]
    assert detail["Description"] == DEFAULT_UPDATE and "OptInStatus" not in detail
    truth = fleet.truth("rd")["pg-24"]
    assert truth["failed"] == [DEFAULT_UPDATE] and truth["installed"] == []
    assert [a["result"] for a in actions(fleet, "pg-24", "rds.os_update")] == ["failed"]

    request = urllib.request.Request(
        f"{fleet.url}/fleetsim/faults/clear", data=json.dumps({"hosts": ["pg-24"]}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        assert json.load(response) == {"cleared": ["pg-24"]}
    apply(fleet, "pg-24")
    wait_for(lambda: status(fleet, "pg-24"), lambda s: s == "available")
    truth = fleet.truth("rd")["pg-24"]
    assert truth["installed"] == [DEFAULT_UPDATE] and truth["failed"] == [] and truth["missing"] == []
    assert pending(fleet, ResourceIdentifier=arn("pg-24")) == {}


def test_apply_refusals_and_opt_ins_that_apply_nothing(fleet: Fleet) -> None:
    with pytest.raises(ClientError) as exc:
        apply(fleet, "nope-01")
    assert error(exc)[:2] == ("ResourceNotFoundFault", 404)
    with pytest.raises(ClientError) as exc:
        apply(fleet, "pg-02", action="db-upgrade")
    code, http, message = error(exc)
    assert (code, http) == ("InvalidParameterValue", 400) and "db-upgrade" in message
    with pytest.raises(ClientError) as exc:
        apply(fleet, "quiet-01")
    assert error(exc)[0] == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:
        apply(fleet, "pg-02", opt_in="whenever")
    assert error(exc)[0] == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:
        apply(fleet, "pg-25")  # stopped
    assert error(exc)[0] == "InvalidDBInstanceState"

    (detail,) = apply(fleet, "pg-03", opt_in="next-maintenance")["PendingMaintenanceActionDetails"]
    assert detail["OptInStatus"] == "next-maintenance"
    assert 0 < detail["CurrentApplyDate"].timestamp() - time.time() <= 7 * 86400
    assert (
        pending(fleet, ResourceIdentifier=arn("pg-03"))[arn("pg-03")][0]["OptInStatus"] == "next-maintenance"
    )
    (detail,) = apply(fleet, "pg-03", opt_in="undo-opt-in")["PendingMaintenanceActionDetails"]
    assert detail["OptInStatus"] == "undo-opt-in" and "CurrentApplyDate" not in detail
    assert status(fleet, "pg-03") == "available"
    truth = fleet.truth("rd")["pg-03"]
    assert truth["missing"] == [DEFAULT_UPDATE] and not actions(fleet, "pg-03", "rds.os_update")


# -- DB snapshots -------------------------------------------------------------------------------------
def test_db_snapshots_take_time_and_can_fail(fleet: Fleet) -> None:
    client = rds(fleet)
    created = client.create_db_snapshot(
        DBInstanceIdentifier="pg-05", DBSnapshotIdentifier="pc-pg-05", Tags=[{"Key": "Cycle", "Value": "c-1"}]
    )["DBSnapshot"]
    assert created["Status"] == "creating" and created["PercentProgress"] < 100
    assert created["DBInstanceIdentifier"] == "pg-05" and created["SnapshotType"] == "manual"
    done = wait_snapshot(fleet, "pc-pg-05")
    assert done["Status"] == "available" and done["PercentProgress"] == 100
    (taken,) = actions(fleet, "pg-05", "rds.create_db_snapshot")
    assert (taken["snapshot_id"], taken["result"]) == ("pc-pg-05", "available") and taken["ready_at"]

    # Read from CreateDBSnapshot's own answer: a later Describe may come after the 0.4 s on a busy machine.
    failing = client.create_db_snapshot(DBInstanceIdentifier="pg-23", DBSnapshotIdentifier="pc-pg-23")
    assert failing["DBSnapshot"]["Status"] == "creating"
    assert wait_snapshot(fleet, "pc-pg-23")["Status"] == "failed"
    assert actions(fleet, "pg-23", "rds.create_db_snapshot")[0]["result"] == "failed"

    client.create_db_snapshot(DBInstanceIdentifier="pg-22", DBSnapshotIdentifier="pc-pg-22")
    time.sleep(STEP * 2)
    slow = snapshot(fleet, "pc-pg-22")
    assert slow["Status"] == "creating" and 0 <= slow["PercentProgress"] < 10

    with pytest.raises(ClientError) as exc:
        client.create_db_snapshot(DBInstanceIdentifier="pg-05", DBSnapshotIdentifier="pc-pg-05")
    assert error(exc)[0] == "DBSnapshotAlreadyExists"
    # Neither a snapshot still being created nor a failed one can be restored.
    for snapshot_id in ("pc-pg-22", "pc-pg-23"):
        with pytest.raises(ClientError) as exc:
            client.restore_db_instance_from_db_snapshot(
                DBInstanceIdentifier=f"{snapshot_id}-copy", DBSnapshotIdentifier=snapshot_id
            )
        assert error(exc)[0] == "InvalidDBSnapshotState"


def test_snapshots_are_paged_and_their_tags_readable(fleet: Fleet) -> None:
    client = rds(fleet)
    ids = [f"pc-pg-06-{i:02d}" for i in range(22)]
    for i, snapshot_id in enumerate(ids):
        client.create_db_snapshot(
            DBInstanceIdentifier="pg-06",
            DBSnapshotIdentifier=snapshot_id,
            Tags=[{"Key": "Cycle", "Value": "c-7"}, {"Key": "Index", "Value": str(i)}],
        )
    first = client.describe_db_snapshots(DBInstanceIdentifier="pg-06", SnapshotType="manual", MaxRecords=20)
    assert len(first["DBSnapshots"]) == 20 and first["Marker"]
    pages = list(
        client.get_paginator("describe_db_snapshots").paginate(
            DBInstanceIdentifier="pg-06", SnapshotType="manual", PaginationConfig={"PageSize": 20}
        )
    )
    assert [len(p["DBSnapshots"]) for p in pages] == [20, 2]
    seen = [s for p in pages for s in p["DBSnapshots"]]
    assert sorted(s["DBSnapshotIdentifier"] for s in seen) == ids
    tagged = {
        s["DBSnapshotIdentifier"]
        for s in seen
        if {"Key": "Cycle", "Value": "c-7"} in s["TagList"] and s["DBInstanceIdentifier"] == "pg-06"
    }
    assert tagged == set(ids)
    tags = client.list_tags_for_resource(ResourceName=seen[0]["DBSnapshotArn"])["TagList"]
    assert {t["Key"] for t in tags} == {"Cycle", "Index"}
    # By name (as the backup gate reads them), and automated snapshots apart from manual ones.
    named = client.describe_db_snapshots(Filters=[{"Name": "db-snapshot-id", "Values": ids[:3] + ["none"]}])
    assert sorted(s["DBSnapshotIdentifier"] for s in named["DBSnapshots"]) == ids[:3]
    automated = client.describe_db_snapshots(DBInstanceIdentifier="pg-06", SnapshotType="automated")
    assert [s["SnapshotType"] for s in automated["DBSnapshots"]] == ["automated"]
    with pytest.raises(ClientError) as exc:
        client.describe_db_snapshots(MaxRecords=5)
    assert error(exc)[0] == "InvalidParameterValue"


# -- rollback -----------------------------------------------------------------------------------------
def test_rename_then_restore_brings_the_instance_back_as_it_was(fleet: Fleet) -> None:
    client = rds(fleet)
    client.create_db_snapshot(DBInstanceIdentifier="pg-07", DBSnapshotIdentifier="pc-pg-07")
    assert wait_snapshot(fleet, "pc-pg-07")["Status"] == "available"
    apply(fleet, "pg-07")
    wait_for(lambda: fleet.truth("rd")["pg-07"]["installed"], lambda i: i == [DEFAULT_UPDATE])
    before = client.describe_db_instances(DBInstanceIdentifier="pg-07")["DBInstances"][0]

    renamed = client.modify_db_instance(
        DBInstanceIdentifier="pg-07", NewDBInstanceIdentifier="pg-07-aside", ApplyImmediately=True
    )["DBInstance"]
    assert renamed["DBInstanceIdentifier"] == "pg-07-aside"
    names = {db["DBInstanceIdentifier"] for db in client.describe_db_instances()["DBInstances"]}
    assert "pg-07" not in names and "pg-07-aside" in names
    with pytest.raises(ClientError) as exc:
        apply(fleet, "pg-07")
    assert error(exc)[0] == "ResourceNotFoundFault"

    tags = [{"Key": t["Key"], "Value": t["Value"]} for t in before["TagList"]]
    restored = client.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier="pg-07",
        DBSnapshotIdentifier="pc-pg-07",
        DBInstanceClass=before["DBInstanceClass"],
        VpcSecurityGroupIds=[g["VpcSecurityGroupId"] for g in before["VpcSecurityGroups"]],
        Tags=tags,
    )["DBInstance"]
    assert restored["DBInstanceArn"] == arn("pg-07") and restored["DBInstanceStatus"] == "creating"
    with pytest.raises(ClientError) as exc:
        client.restore_db_instance_from_db_snapshot(
            DBInstanceIdentifier="pg-07", DBSnapshotIdentifier="pc-pg-07"
        )
    assert error(exc)[0] == "DBInstanceAlreadyExists"

    wait_for(lambda: status(fleet, "pg-07"), lambda s: s == "available")
    back = client.describe_db_instances(DBInstanceIdentifier="pg-07")["DBInstances"][0]
    assert back["DBInstanceArn"] == arn("pg-07")
    assert sorted(back["TagList"], key=lambda t: t["Key"]) == sorted(tags, key=lambda t: t["Key"])
    truth = fleet.truth("rd")["pg-07"]
    assert (
        truth["missing"] == [DEFAULT_UPDATE]
        and truth["installed"] == []
        and truth["agent_status"] == "available"
    )
    (restore,) = actions(fleet, "pg-07", "rds.restore_db_instance_from_db_snapshot")
    assert restore["result"] == "restored" and restore["snapshot_id"] == "pc-pg-07"
    assert restore["renamed_to"] == "pg-07-aside"
    # The OS update is pending again on the restored instance.
    assert pending(fleet, ResourceIdentifier=arn("pg-07"))[arn("pg-07")][0]["Description"] == DEFAULT_UPDATE


def test_the_automated_snapshot_holds_the_instance_as_seeded(fleet: Fleet) -> None:
    client = rds(fleet)
    (automated,) = client.describe_db_snapshots(DBInstanceIdentifier="pg-08", SnapshotType="automated")[
        "DBSnapshots"
    ]
    assert automated["Status"] == "available" and automated["DBSnapshotIdentifier"].startswith("rds:pg-08-")
    apply(fleet, "pg-08")
    wait_for(lambda: fleet.truth("rd")["pg-08"]["installed"], lambda i: i == [DEFAULT_UPDATE])
    client.modify_db_instance(
        DBInstanceIdentifier="pg-08", NewDBInstanceIdentifier="pg-08-aside", ApplyImmediately=True
    )
    assert arn("pg-08") not in pending(fleet)
    client.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier="pg-08", DBSnapshotIdentifier=automated["DBSnapshotIdentifier"]
    )
    assert arn("pg-08") not in pending(fleet)  # not there until restored
    wait_for(lambda: status(fleet, "pg-08"), lambda s: s == "available")
    truth = fleet.truth("rd")["pg-08"]
    assert truth["missing"] == [DEFAULT_UPDATE] and truth["installed"] == []
    (restore,) = actions(fleet, "pg-08", "rds.restore_db_instance_from_db_snapshot")
    assert restore["snapshot_id"] == automated["DBSnapshotIdentifier"]
    assert restore["renamed_to"] == "pg-08-aside"
    # The restored instance got its own automated snapshot, even within the seeding's minute.
    automated_now = client.describe_db_snapshots(DBInstanceIdentifier="pg-08", SnapshotType="automated")
    assert len(automated_now["DBSnapshots"]) == 2


# -- scenario -----------------------------------------------------------------------------------------
def _with_databases(*databases: dict[str, Any], **faults: Any) -> dict[str, Any]:
    return scenario_dict(
        [
            {
                "id": "v",
                "aws": {"account_id": ACCOUNT, "region": REGION, "databases": list(databases)},
                "faults": faults,
            }
        ],
        [patch("ALAS2-1", "amazon_linux_2")],
    )


def test_a_fleet_of_databases_only_is_a_valid_scenario() -> None:
    scenario = parse_scenario(_with_databases({"prefix": "orders-db", "count": 2, "environment": "prod"}))
    (database,) = scenario.tenants[0].aws.databases  # type: ignore[union-attr]
    assert scenario.tenants[0].aws.groups == []  # type: ignore[union-attr]
    assert (database.engine, database.os_update) == ("postgres", "default")
    assert scenario.rds_os_update == DEFAULT_UPDATE


@pytest.mark.parametrize("prefix", ["Orders", "9db", "db--x", "db-", "db_x", "x" * 61])
def test_a_bad_database_prefix_is_a_scenario_error(prefix: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(
            _with_databases({"prefix": prefix, "count": 1, "environment": "prod"}), source="db.yaml"
        )
    assert "tenants.0.aws.databases.0" in str(exc.value) and "prefix" in str(exc.value)


def test_database_faults_and_names_are_checked() -> None:
    with pytest.raises(ScenarioError, match=r"faults\.install_fails: unknown hosts \['db-03'\]"):
        parse_scenario(
            _with_databases({"prefix": "db", "count": 2, "environment": "prod"}, install_fails=["db-03"])
        )
    raw = _with_databases({"prefix": "web", "count": 1, "environment": "prod"})
    raw["tenants"][0]["aws"]["groups"] = [group("web", 1)]
    with pytest.raises(ScenarioError, match=r"host names repeat across groups: \['web-01'\]"):
        parse_scenario(raw)
    with pytest.raises(ScenarioError, match="aws.databases"):
        parse_scenario(scenario_dict([], [patch("X-1", "rds")]))
    with pytest.raises(ScenarioError, match=r"databases\.0\.count"):
        parse_scenario(_with_databases({"prefix": "db", "count": 2001, "environment": "prod"}))
