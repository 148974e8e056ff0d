"""Which runs ended without a pack, and how a stage the run stopped in is judged."""

from __future__ import annotations

from patchcycle.domain import outcomes as o
from patchcycle.domain.sweep import RunFolder, interrupted_stage, run_folders, runs_without_pack

KEYS = [
    "cycles/2026-11-22/plans/abc/plan.json",
    "cycles/2026-11-22/runs/manual__a/run.try-1.json",
    "cycles/2026-11-22/runs/manual__a/run.try-2.json",
    "cycles/2026-11-22/runs/manual__a/events/plan.try-1.json",
    "cycles/2026-11-22/runs/manual__b/run.try-1.json",
    "cycles/2026-11-22/runs/manual__b/pack/evidence.json",
    "cycles/2026-11-22/runs/manual__c/run.try-1.json",
    "cycles/2026-11-22/runs/manual__c/pack-try2/evidence.json",
    # Older runs recorded no run record: they cannot be named to Airflow and are not swept.
    "cycles/2026-10-25/runs/scheduled__d/events/plan.try-1.json",
    "ledger/first-seen/x.json",
]


def test_run_folders_find_each_runs_latest_record_and_its_pack() -> None:
    assert run_folders(KEYS) == [
        RunFolder("2026-10-25", "scheduled__d", None, False),
        RunFolder("2026-11-22", "manual__a", "cycles/2026-11-22/runs/manual__a/run.try-2.json", False),
        RunFolder("2026-11-22", "manual__b", "cycles/2026-11-22/runs/manual__b/run.try-1.json", True),
        RunFolder("2026-11-22", "manual__c", "cycles/2026-11-22/runs/manual__c/run.try-1.json", True),
    ]


def test_only_runs_with_a_record_and_no_pack_are_candidates() -> None:
    assert [f.segment for f in runs_without_pack(KEYS)] == ["manual__a"]
    assert runs_without_pack([]) == []


def test_a_stage_stopped_mid_way_claims_nothing_it_did_not_verify() -> None:
    rows = [
        {"host_id": "i-1", "install_variant": "full"},
        {"host_id": "i-2", "install_variant": "no_kernel"},
        {"host_id": "i-3"},
        {"host_id": "i-4"},
    ]
    backups = {
        "i-1": {"ready": True, "backup_id": "ami-1", "kind": "ami", "state": "available"},
        "i-2": {"ready": True, "backup_id": "ami-2", "kind": "ami", "state": "available"},
        "i-3": {"ready": False, "reason": "AMI failed"},
    }
    canary = {
        "hosts": {
            "i-1": {"final_state": o.PATCHED, "reason": None, "batch": "canary", "backup_id": "ami-1"},
            "i-2": {"final_state": o.NOT_RUN, "reason": "not started: the canary must pass"},
        },
        "approval": {"decision": "approved", "by": "alice"},
        "canary": {"status": "succeeded"},
    }
    stage = interrupted_stage("staging", rows, backups, "the run ended failed during this stage", canary)
    assert stage["status"] == "failed" and stage["interrupted"] is True
    assert stage["reason"] == "the run ended failed during this stage; the stage was not verified"
    hosts = stage["hosts"]
    # The canary's verified verdict stands; the rest are judged by their backups only.
    assert hosts["i-1"]["final_state"] == o.PATCHED
    assert hosts["i-2"]["final_state"] == o.NOT_ASSESSED
    assert "ami-2" in hosts["i-2"]["reason"] and hosts["i-2"]["backup_id"] == "ami-2"
    assert hosts["i-2"]["install_variant"] == "no_kernel"
    assert (hosts["i-3"]["final_state"], hosts["i-3"]["reason"]) == (o.HELD, "AMI failed")
    assert (hosts["i-4"]["final_state"], hosts["i-4"]["reason"]) == (o.HELD, "no completed backup")
    assert stage["approval"] == {"decision": "approved", "by": "alice"}
    assert stage["canary"] == {"status": "succeeded"}


def test_without_a_canary_every_backed_up_host_is_not_assessed() -> None:
    stage = interrupted_stage(
        "nonprod", [{"host_id": "i-1"}], {"i-1": {"ready": True, "backup_id": "snap-1"}}, "stopped"
    )
    assert stage["hosts"]["i-1"]["final_state"] == o.NOT_ASSESSED
    assert "approval" not in stage and "canary" not in stage
