"""Rollback policy without Airflow: which backup restores which host, refusals that name the host, and
the record each rollback leaves."""

from __future__ import annotations

import datetime as dt

import pytest

from patchcycle.domain.rollback import (
    ROLLBACK_FAILED,
    ROLLED_BACK,
    RollbackRefused,
    RollbackTarget,
    failed_hosts,
    judge_host,
    rollback_record,
    select_rollback,
)

CYCLE = "2026-11-22"
ARC_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/arc-01"
INVENTORY = [
    {"host_id": "i-0a", "name": "web-01", "cloud": "aws", "account": "111", "region": "us-east-1",
     "environment": "prod", "kernel": None},
    {"host_id": ARC_ID, "name": "arc-01", "cloud": "azure", "account": "s", "region": "eastus",
     "environment": "prod", "kernel": "5.15.0-119-generic", "resource_group": "rg"},
    {"host_id": "4711", "name": "gce-01", "cloud": "gcp", "account": "proj", "region": "us-central1-a",
     "environment": "staging", "kernel": "5.15.0-119-generic"},
    {"host_id": "i-0b", "name": "held-01", "cloud": "aws", "account": "111", "region": "us-east-1",
     "environment": "prod", "kernel": None},
    {"host_id": "i-0c", "name": "bad-01", "cloud": "aws", "account": "111", "region": "us-east-1",
     "environment": "prod", "kernel": None},
    {"host_id": "i-0d", "name": "twin", "cloud": "aws", "account": "111", "region": "us-east-1",
     "environment": "prod", "kernel": None},
    {"host_id": "i-0e", "name": "twin", "cloud": "aws", "account": "111", "region": "us-east-1",
     "environment": "prod", "kernel": None},
]  # fmt: skip
BACKUPS = {
    "prod": {
        "i-0a": {"kind": "ami", "backup_id": "ami-1", "state": "available", "ready": True},
        ARC_ID: {"kind": "attestation", "backup_id": "bk-1", "state": "succeeded", "ready": True},
        "i-0c": {"kind": "ami", "backup_id": "ami-3", "state": "failed", "ready": False},
    },
    "staging": {"4711": {"kind": "disk_snapshot", "backup_id": "pc-1", "state": "READY", "ready": True}},
}


def select(*names: str) -> list[RollbackTarget]:
    return select_rollback(names, INVENTORY, BACKUPS, tenant_id="cu_alpha", cycle_date=CYCLE)


def test_each_host_gets_the_backup_its_stage_took() -> None:
    targets = {t.name: t for t in select("web-01", "arc-01", "4711")}
    assert set(targets) == {"web-01", "arc-01", "gce-01"}
    assert (targets["web-01"].backup_kind, targets["web-01"].backup_id) == ("ami", "ami-1")
    assert (targets["arc-01"].backup_kind, targets["arc-01"].backup_id) == ("attestation", "bk-1")
    gce = targets["gce-01"]
    assert (gce.backup_id, gce.environment, gce.region, gce.account) == (
        "pc-1",
        "staging",
        "us-central1-a",
        "proj",
    )
    assert gce.expected_kernel == "5.15.0-119-generic" and targets["web-01"].expected_kernel is None
    assert RollbackTarget.from_dict(gce.to_dict()) == gce


def test_hosts_by_id_any_case_and_duplicates_count_once() -> None:
    targets = select("i-0a", "web-01", ARC_ID.upper())
    assert [t.host_id for t in targets] == ["i-0a", ARC_ID]


def test_a_host_without_a_backup_is_refused_by_name_and_nothing_is_selected() -> None:
    with pytest.raises(RollbackRefused) as err:
        select("web-01", "held-01")
    (reason,) = err.value.reasons
    assert reason.startswith("host held-01 (i-0b) has no backup from cycle 2026-11-22")
    assert "nothing was restored" in str(err.value)


def test_every_refusal_is_named_at_once() -> None:
    with pytest.raises(RollbackRefused) as err:
        select("bad-01", "nope", "twin", "web-01")
    reasons = err.value.reasons
    assert len(reasons) == 3
    assert "host bad-01 (i-0c)" in reasons[0] and "ami ami-3) is failed" in reasons[0]
    assert reasons[1] == "host 'nope' is not a host of tenant cu_alpha in cycle 2026-11-22"
    assert "ambiguous" in reasons[2] and "i-0d, i-0e" in reasons[2]


def test_an_empty_request_is_refused() -> None:
    with pytest.raises(RollbackRefused, match="at least one host"):
        select()
    with pytest.raises(RollbackRefused, match="at least one host"):
        select(" ")


def test_failed_hosts_of_a_stage() -> None:
    stage = {
        "hosts": {
            "b": {"final_state": "failed"},
            "a": {"final_state": "failed"},
            "c": {"final_state": "patched"},
            "d": {"final_state": "held"},
        }
    }
    assert failed_hosts(stage) == ["a", "b"]
    assert failed_hosts(None) == []


GCE = RollbackTarget("4711", "gce-01", "gcp", "proj", "us-central1-a", "staging", "disk_snapshot", "pc-1",
                     "5.15.0-119-generic")  # fmt: skip
EC2 = RollbackTarget("i-0a", "web-01", "aws", "111", "us-east-1", "prod", "ami", "ami-1", None)


@pytest.mark.parametrize(
    ("target", "state", "online", "kernel", "result", "reason"),
    [
        (GCE, "succeeded", True, "5.15.0-119-generic", ROLLED_BACK, None),
        (EC2, "succeeded", True, None, ROLLED_BACK, None),  # EC2 does not report the kernel
        (GCE, "succeeded", True, "5.15.0-126-generic", ROLLBACK_FAILED, "runs kernel 5.15.0-126-generic"),
        (GCE, "succeeded", False, "5.15.0-119-generic", ROLLBACK_FAILED, "not back online"),
        (EC2, "failed", None, None, ROLLBACK_FAILED, "root volume task failed"),
        (EC2, "timed_out", None, None, ROLLBACK_FAILED, "restore timed_out"),
    ],
)
def test_judging_a_restored_host(target, state, online, kernel, result, reason) -> None:
    restore_reason = "root volume task failed" if state == "failed" else None
    judged = judge_host(
        target, restore_id="x", restore_state=state, restore_reason=restore_reason, online=online,
        kernel_after=kernel,
    )  # fmt: skip
    assert judged.result == result
    assert (judged.reason is None) if reason is None else (reason in judged.reason)


def test_the_record_says_who_when_which_backup_and_each_result() -> None:
    hosts = [
        judge_host(EC2, restore_id="replacevol-1", restore_state="succeeded", restore_reason=None,
                   online=True, kernel_after=None),
        judge_host(GCE, restore_id="op-1", restore_state="failed", restore_reason="disk failed",
                   online=None, kernel_after=None),
    ]  # fmt: skip
    at = dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC)
    record = rollback_record(
        tenant_id="cu_alpha", cycle_date=CYCLE, trigger="manual", requested_by="airflow (triggered by sre)",
        reason="app errors after patch", source_run="scheduled__2026-11-22", started_at=at,
        finished_at=at + dt.timedelta(minutes=5), hosts=hosts,
    )  # fmt: skip
    assert record["outcome"] == "failed"
    assert record["summary"] == {"hosts": 2, "rolled_back": 1, "failed": 1}
    assert (
        record["requested_by"] == "airflow (triggered by sre)"
        and record["reason"] == "app errors after patch"
    )
    assert record["hosts"][0]["backup_id"] == "ami-1" and record["hosts"][0]["result"] == ROLLED_BACK
    assert record["hosts"][1]["reason"] == "disk failed"
    assert record["started_at"] == "2026-11-23T09:00:00+00:00"
