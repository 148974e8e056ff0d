"""RDS DB instances as hosts: normalized rows, the frozen plan's OS updates, the gate and the outcome.

Pure policy over the shapes boto3's RDS client returns; nothing here touches a cloud.
"""

from __future__ import annotations

import datetime as dt

import pytest

from patchcycle.domain import outcomes
from patchcycle.domain.inventory import INVENTORY_COLUMNS, is_rds, normalize_rds_instances
from patchcycle.domain.plan import build_cycle_plan, planned_rds_updates, rds_update_id
from patchcycle.domain.preflight import evaluate_host, evaluate_preflight

ACCOUNT, REGION = "111111111111", "us-east-1"
UPDATE = "New Operating System update is available"
NEWER = "Operating system update 2026.12 is available"


def arn(name: str) -> str:
    return f"arn:aws:rds:{REGION}:{ACCOUNT}:db:{name}"


def db(name: str, status: str = "available", **tags: str) -> dict:
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    return {
        "DBInstanceIdentifier": name,
        "DBInstanceArn": arn(name),
        "DBInstanceStatus": status,
        "Engine": "postgres",
        "EngineVersion": "16.4",
        "TagList": tag_list,
    }


def pending(description: str = UPDATE, **extra: str) -> dict:
    return {"Action": "system-update", "Description": description, **extra}


def test_tagged_instances_become_rows_with_every_column_and_their_pending_update(tenant):
    rows = normalize_rds_instances(
        tenant,
        ACCOUNT,
        REGION,
        [
            db("core-db-01", Environment="prod", Criticality="critical"),
            db("core-db-02", status="stopped", Environment="staging"),
            db("scratch-db", Owner="someone"),  # no environment tag: not one of the tenant's databases
        ],
        {arn("core-db-01"): pending()},
        planned_updates=[UPDATE],
    )
    assert [r["name"] for r in rows] == ["core-db-01", "core-db-02"]
    first, second = rows
    assert list(first) == list(INVENTORY_COLUMNS)
    assert first["host_id"] == arn("core-db-01") and first["cloud"] == "aws" and is_rds(first)
    assert first["environment"] == "prod" and first["criticality"] == "critical"
    assert first["os_family"] == "rds" and first["platform"] == "RDS postgres 16.4"
    assert first["agent_online"] is True and first["agent_status"] == "available"
    assert first["missing_count"] == 1 and first["missing_unrated"] == 1
    assert first["missing_patch_ids"] == [rds_update_id(UPDATE)]
    assert second["agent_online"] is False and second["agent_status"] == "stopped"
    assert second["missing_count"] == 0 and second["missing_patch_ids"] == []


def test_an_update_the_plan_did_not_freeze_is_missing_but_not_a_plan_patch(tenant):
    (row,) = normalize_rds_instances(
        tenant,
        ACCOUNT,
        REGION,
        [db("core-db-01", Environment="prod")],
        {arn("core-db-01"): pending(NEWER)},
        [UPDATE],
    )
    assert row["missing_count"] == 1 and row["missing_patch_ids"] == []


def test_the_plan_freezes_the_offered_updates_and_a_plan_without_rds_hashes_as_before(tenant):
    date = dt.date(2026, 11, 22)
    without = build_cycle_plan(tenant, date, [])
    empty = build_cycle_plan(tenant, date, [], rds_os_updates=["", "  "])
    assert "rds_os_updates" not in without.to_dict()
    assert empty.hash == without.hash  # plans frozen before RDS was supported verify unchanged
    with_rds = build_cycle_plan(tenant, date, [], rds_os_updates=[NEWER, UPDATE, f" {UPDATE} "])
    assert with_rds.to_dict()["rds_os_updates"] == sorted([NEWER, UPDATE])
    assert with_rds.hash != without.hash
    assert (
        planned_rds_updates(with_rds)
        == planned_rds_updates(with_rds.to_dict())
        == tuple(sorted([NEWER, UPDATE]))
    )
    assert any(rds_update_id(UPDATE) in line for line in with_rds.summary_lines())


def test_update_ids_are_stable_and_distinct():
    assert rds_update_id(UPDATE) == rds_update_id(f"{UPDATE} ")
    assert rds_update_id(UPDATE) != rds_update_id(NEWER)
    assert rds_update_id(UPDATE).startswith("rds-os-")


def test_the_gate_needs_no_baseline_agent_or_sensor_only_an_available_instance(make_tenant):
    tenant = make_tenant(falcon={"required": True})
    rows = normalize_rds_instances(
        tenant,
        ACCOUNT,
        REGION,
        [
            db("a", Environment="prod"),
            db("b", status="stopped", Environment="prod"),
            db("c", Environment="qa"),
        ],
        {},
    )
    decisions = {d.host_id.rsplit(":", 1)[1]: d for d in evaluate_preflight(tenant, rows).decisions}
    assert decisions["a"].verdict == "eligible"
    assert (decisions["b"].verdict, decisions["b"].reason) == ("held", "RDS DB instance stopped")
    assert decisions["c"].verdict == "out_of_scope"
    # Not selected for this run: out of scope like any host.
    assert evaluate_host(tenant, rows[0], {"staging"}).verdict == "out_of_scope"


APPLIED = {"applied": True, "description": UPDATE}


@pytest.mark.parametrize(
    ("sent", "after", "final", "reason"),
    [
        (None, None, outcomes.NOT_RUN, "no OS update was applied"),
        ({"nothing_to_install": True}, None, outcomes.PATCHED, None),
        ({"not_frozen": NEWER}, None, outcomes.NON_COMPLIANT, "which the plan did not freeze"),
        (
            {"error": "InvalidDBInstanceState: busy"},
            None,
            outcomes.FAILED,
            "RDS refused the OS update: Invalid",
        ),
        (APPLIED, None, outcomes.FAILED, "no status from RDS"),
        (APPLIED, {"status": "upgrading", "pending": UPDATE}, outcomes.FAILED, "DB instance upgrading"),
        (APPLIED, {"status": "available", "pending": UPDATE}, outcomes.FAILED, "still pending"),
        (APPLIED, {"status": "available", "pending": None}, outcomes.PATCHED, None),
        # A newer update RDS offers after ours was applied does not undo ours.
        (APPLIED, {"status": "available", "pending": NEWER}, outcomes.PATCHED, None),
    ],
)
def test_classify_rds_instance(sent, after, final, reason):
    got_final, got_reason = outcomes.classify_rds_instance(sent, after)
    assert got_final == final
    if reason is None:
        assert got_reason is None
    else:
        assert reason in got_reason


def test_a_risk_acceptance_can_defer_an_rds_os_update_by_its_plan_id(tenant):
    from patchcycle.config.exceptions import ExceptionRegister
    from patchcycle.domain.plan import planned_patch_ids
    from patchcycle.domain.preflight import deferral_for

    plan = build_cycle_plan(tenant, dt.date(2026, 11, 22), [], rds_os_updates=[UPDATE]).to_dict()
    (row,) = normalize_rds_instances(
        tenant, ACCOUNT, REGION, [db("core-db-01", Environment="prod")], {}, [UPDATE]
    )
    assert planned_patch_ids(plan, row) == {rds_update_id(UPDATE)}
    ec2 = {"agent_kind": "ssm", "os_family": "amazon_linux_2"}
    assert planned_patch_ids(plan, ec2) == {p["id"] for p in plan["approved"]["amazon_linux_2"]}
    register = ExceptionRegister.model_validate(
        {
            "tenant_id": "cu_test",
            "exceptions": [
                {
                    "id": "EXC-2026-041",
                    "hosts": ["core-db-01"],
                    "patches": [rds_update_id(UPDATE)],
                    "justification": "quarter-end close: no database restarts until December",
                    "compensating_control": "database in a private subnet, IAM authentication only",
                    "requested_by": "DBA lead",
                    "approver": "Dana CISO",
                    "approver_role": "CISO",
                    "approved_on": "2026-11-01",
                    "expires_on": "2026-12-31",
                    "risk_rating": "Medium",
                }
            ],
        }
    )
    decision = deferral_for(row, planned_patch_ids(plan, row), register, dt.date(2026, 11, 22))
    assert decision is not None and decision.verdict == "excepted" and "EXC-2026-041" in decision.reason
