"""The per-host verify merge: backup gate, cloud answer, reboot watch and kernel hold folded into one
final state per host, and a canary batch and its stage made into one record."""

from __future__ import annotations

from typing import Any

from patchcycle.config.models import RateControl
from patchcycle.domain import outcomes, verification
from patchcycle.domain.canary import CANARY, MAIN

READY = {"ready": True, "backup_id": "snap-1", "kind": "ebs-snapshot", "state": "completed"}


def row(host_id: str, **extra: Any) -> dict[str, Any]:
    return {"host_id": host_id, "name": f"name-{host_id}", "os_family": "amazon_linux_2023", **extra}


def merge(rows: list[dict[str, Any]], **kwargs: Any) -> verification.StageHosts:
    options: dict[str, Any] = {
        "backups": {r["host_id"]: READY for r in rows},
        "checked": {},
        "window_closed": None,
        "held_kernels": {},
        "batch": None,
    }
    options.update(kwargs)
    return verification.merge_hosts(rows, **options)


def test_a_host_without_a_completed_backup_is_held_and_outside_the_budget() -> None:
    merged = merge(
        [row("i-1")],
        backups={"i-1": {"ready": False, "reason": "snapshot failed: quota", "state": "error"}},
    )
    assert merged.hosts["i-1"]["final_state"] == outcomes.HELD
    assert merged.hosts["i-1"]["reason"] == "snapshot failed: quota"
    assert merged.hosts["i-1"]["backup_state"] == "error"
    assert merged.budget_states == {}
    assert [f.host_id for f in merged.findings] == ["i-1"]


def test_a_backup_missing_from_the_record_is_held_with_a_reason() -> None:
    merged = merge([row("i-1")], backups={})
    assert (merged.hosts["i-1"]["final_state"], merged.hosts["i-1"]["reason"]) == (
        outcomes.HELD,
        verification.NO_BACKUP,
    )


def test_the_cloud_answer_decides_a_ready_host_and_its_details_are_kept() -> None:
    checked = {"i-1": {"final": outcomes.PATCHED, "reason": None, "command_id": "c-1", "installed": 3}}
    merged = merge([row("i-1")], checked=checked)
    entry = merged.hosts["i-1"]
    assert entry["final_state"] == outcomes.PATCHED
    assert entry["command_id"] == "c-1" and entry["installed"] == 3
    assert entry["backup_id"] == "snap-1"
    assert merged.budget_states == {"i-1": outcomes.PATCHED}
    assert merged.findings == [] and merged.patched == 1
    assert checked["i-1"]["final"] == outcomes.PATCHED, "the caller's result is not consumed"


def test_no_answer_is_not_run_and_counts_in_the_budget() -> None:
    merged = merge([row("i-1")])
    assert merged.hosts["i-1"]["final_state"] == outcomes.NOT_RUN
    assert merged.hosts["i-1"]["reason"] == verification.NO_RESULT
    assert merged.budget_states == {"i-1": outcomes.NOT_RUN}


def test_a_closed_window_names_why_hosts_were_not_run_but_not_why_others_failed() -> None:
    closed = "the change window closed at 06:00 UTC before the install"
    checked = {"i-2": {"final": outcomes.FAILED, "reason": "exit 1"}}
    merged = merge([row("i-1"), row("i-2")], checked=checked, window_closed=closed)
    assert merged.hosts["i-1"]["reason"] == closed
    assert merged.hosts["i-2"]["reason"] == "exit 1"


def test_a_patched_host_whose_kernel_update_was_held_is_non_compliant_with_the_hold_named() -> None:
    checked = {"i-1": {"final": outcomes.PATCHED, "reason": None}, "i-2": {"final": outcomes.PATCHED}}
    rows = [row("i-1", install_variant="no_kernel"), row("i-2", install_variant="no_kernel")]
    merged = merge(
        rows,
        checked={k: {"reason": None, **v} for k, v in checked.items()},
        held_kernels={"i-1": "Falcon sensor 7.10 does not support kernel 6.1.100"},
    )
    assert merged.hosts["i-1"]["final_state"] == outcomes.NON_COMPLIANT
    assert (
        merged.hosts["i-1"]["reason"]
        == "kernel update held: Falcon sensor 7.10 does not support kernel 6.1.100"
    )
    assert merged.hosts["i-2"]["reason"] == "kernel update held: sensor gate"
    # The install did all it was sent: the budget judges the install, not the hold.
    assert merged.budget_states == {"i-1": outcomes.PATCHED, "i-2": outcomes.PATCHED}


def test_canary_hosts_are_marked_as_such() -> None:
    merged = merge([row("i-1")], checked={"i-1": {"final": outcomes.PATCHED, "reason": None}}, batch=CANARY)
    assert merged.hosts["i-1"]["batch"] == CANARY
    assert "batch" not in merge([row("i-1")], batch=MAIN).hosts["i-1"]


def test_kernel_reasons_are_read_only_for_eligible_hosts_with_a_held_variant() -> None:
    preflight = {
        "decisions": [
            {"host_id": "i-1", "verdict": "eligible", "variant": "no_kernel", "reason": "sensor"},
            {"host_id": "i-2", "verdict": "eligible", "variant": "full"},
            {"host_id": "i-3", "verdict": "held", "variant": "no_kernel", "reason": "x"},
            {"host_id": "i-4", "verdict": "eligible", "variant": "no_kernel"},
        ]
    }
    assert verification.held_kernel_reasons(preflight) == {"i-1": "sensor", "i-4": ""}


def test_reboots_fail_a_host_that_did_not_come_back_or_runs_another_kernel() -> None:
    checked: dict[str, dict[str, Any]] = {
        "i-1": {"final": outcomes.PATCHED, "reason": None},
        "i-2": {"final": outcomes.NON_COMPLIANT, "reason": "1 planned patch still missing"},
        "i-3": {"final": outcomes.PATCHED, "reason": None},
        "i-4": {"final": outcomes.FAILED, "reason": "exit 1"},
    }
    reboots = {
        "i-1": {"back": False, "agent": "ConnectionLost"},
        "i-2": {"back": True, "kernel": "6.1.90", "agent": "Online"},
        "i-3": {"back": True, "kernel": "6.1.100", "agent": "Online", "rfm": False},
        "i-4": {"back": False},
    }
    failed = verification.apply_reboots(
        checked,
        [row(h) for h in ("i-1", "i-2", "i-3", "i-4", "i-5")],
        reboots,
        expected_kernel=lambda r: "6.1.100",
        timeout_minutes=20,
    )
    assert [f.host_id for f in failed] == ["i-1", "i-2"]
    assert (
        checked["i-1"]["reason"]
        == "did not come back from its reboot within 20 minutes (agent ConnectionLost)"
    )
    assert checked["i-2"]["reason"] == "running kernel 6.1.90 after the reboot, expected 6.1.100"
    assert checked["i-3"]["final"] == outcomes.PATCHED
    assert checked["i-3"]["reboot"] == {
        "back": True,
        "agent": "Online",
        "kernel": "6.1.100",
        "expected_kernel": "6.1.100",
        "falcon_rfm": False,
    }
    assert checked["i-4"] == {
        "final": outcomes.FAILED,
        "reason": "exit 1",
        "reboot": checked["i-4"]["reboot"],
    }
    assert "i-5" not in checked


def test_a_canary_batch_is_judged_with_no_errors_allowed() -> None:
    rate = RateControl(max_concurrency="50%", max_errors="25%")
    assert verification.batch_rate(rate, CANARY).max_errors == "0"
    assert verification.batch_rate(rate, MAIN) is rate
    assert verification.batch_rate(rate, None) is rate


def canary_record(status: str = "succeeded", reason: str | None = None) -> dict[str, Any]:
    return {
        "environment": "prod",
        "status": status,
        "reason": reason,
        "started_at": "2026-11-22T02:00:00+00:00",
        "command_ids": ["c-canary"],
        "budget": {"targets": 1, "errors": 0, "allowed_errors": 0},
        "hosts": {"i-1": {"final_state": outcomes.PATCHED, "reason": None, "batch": CANARY}},
    }


def test_after_its_canary_the_rest_of_the_stage_is_not_started() -> None:
    stage = verification.canary_stage(canary_record(), [row("i-2", install_variant="full")])
    assert stage["hosts"]["i-2"] == {
        "final_state": outcomes.NOT_RUN,
        "reason": verification.CANARY_FIRST,
        "install_variant": "full",
    }
    assert stage["reason"] is None
    assert stage["canary"] == {
        "status": "succeeded",
        "reason": None,
        "hosts": ["i-1"],
        "budget": {"targets": 1, "errors": 0, "allowed_errors": 0},
    }


def test_a_failed_canary_names_itself_as_the_stage_reason() -> None:
    stage = verification.canary_stage(canary_record("failed", "1 of 1 hosts failed; max errors 0"), [])
    assert stage["reason"] == "canary failed: 1 of 1 hosts failed; max errors 0"


def test_the_main_batch_joins_the_canary_hosts_and_keeps_the_canary_start() -> None:
    canary = verification.canary_stage(canary_record(), [row("i-2")])
    main = {
        "environment": "prod",
        "status": "succeeded",
        "reason": None,
        "started_at": "2026-11-22T03:00:00+00:00",
        "command_ids": ["c-main"],
        "hosts": {"i-2": {"final_state": outcomes.PATCHED, "reason": None}},
    }
    health = {"healthy": True, "reasons": []}
    stage = verification.stage_with_canary(main, canary, health)
    assert set(stage["hosts"]) == {"i-1", "i-2"}
    assert stage["hosts"]["i-2"]["final_state"] == outcomes.PATCHED, "the main batch replaces not-started"
    assert stage["started_at"] == "2026-11-22T02:00:00+00:00"
    assert stage["command_ids"] == ["c-canary", "c-main"]
    assert stage["canary"]["health"] == health and stage["canary"]["hosts"] == ["i-1"]


def test_a_main_batch_without_a_canary_record_stands_alone() -> None:
    main = {"started_at": "t0", "command_ids": ["c"], "hosts": {"i-2": {"final_state": outcomes.PATCHED}}}
    stage = verification.stage_with_canary(main, None, None)
    assert stage["hosts"] == main["hosts"] and stage["started_at"] == "t0"
    assert stage["canary"] == {"health": None}
