"""Which hosts a register of risk acceptances excepts on a date, and what the exception report says."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from patchcycle.config.exceptions import ExceptionRegister, RiskAcceptance, load_exception_register
from patchcycle.domain import outcomes as o
from patchcycle.domain.exceptions import (
    ExceptionStatus,
    HostMatch,
    PartialCoverage,
    active_exceptions,
    apply_exceptions,
    exception_for,
    exception_reason,
    exception_status,
    expired_exceptions,
    not_yet_valid_exceptions,
)

REPO = Path(__file__).resolve().parents[2]
CYCLE_DAY = dt.date(2026, 11, 22)
KERNEL, BIND = "CESA-2026:0412", "CESA-2026:0433"


def acceptance(exception_id: str = "EXC-2026-014", **changes: Any) -> RiskAcceptance:
    data: dict[str, Any] = {
        "id": exception_id,
        "hosts": ["cedar-prd-legacy-01", "cedar-prd-legacy-02"],
        "patches": [KERNEL],
        "justification": "Vendor app certified only on the current kernel.",
        "compensating_control": "Segmented VLAN, EDR in prevention mode.",
        "requested_by": "App owner",
        "approver": "R. Okafor",
        "approver_role": "CISO",
        "approved_on": dt.date(2026, 10, 15),
        "expires_on": dt.date(2027, 1, 31),
        "risk_rating": "High",
    }
    data.update(changes)
    return RiskAcceptance.model_validate(data)


def register(*acceptances: RiskAcceptance) -> ExceptionRegister:
    return ExceptionRegister(tenant_id="cu_cedar", exceptions=list(acceptances))


def record(name: str, state: str = o.FAILED, host_id: str | None = None, reason: str | None = "x") -> dict:
    return {"host_id": host_id or f"i-{name}", "name": name, "final_state": state, "reason": reason}


LEGACY_1 = {"host_id": "i-0a1", "name": "cedar-prd-legacy-01"}


# --- status on a date -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "status"),
    [
        (dt.date(2026, 10, 14), ExceptionStatus.not_yet_valid),
        (dt.date(2026, 10, 15), ExceptionStatus.active),  # approved_on: in force that day
        (dt.date(2027, 1, 31), ExceptionStatus.active),  # expires_on: still in force through that day
        (dt.date(2027, 2, 1), ExceptionStatus.expired),
    ],
)
def test_status_boundaries(day: dt.date, status: ExceptionStatus) -> None:
    assert exception_status(acceptance(), day) is status


def test_lists_by_status_are_sorted() -> None:
    reg = register(
        acceptance("EXC-2026-020"),
        acceptance("EXC-2026-003", approved_on=dt.date(2026, 3, 1), expires_on=dt.date(2026, 8, 31)),
        acceptance("EXC-2026-010"),
        acceptance("EXC-2026-030", approved_on=dt.date(2026, 12, 1), expires_on=dt.date(2027, 3, 1)),
    )
    assert [a.id for a in active_exceptions(reg, CYCLE_DAY)] == ["EXC-2026-010", "EXC-2026-020"]
    assert [a.id for a in expired_exceptions(reg, CYCLE_DAY)] == ["EXC-2026-003"]
    assert [a.id for a in not_yet_valid_exceptions(reg, CYCLE_DAY)] == ["EXC-2026-030"]


def test_clock_must_be_a_date() -> None:
    with pytest.raises(TypeError, match="calendar date"):
        exception_status(acceptance(), dt.datetime(2026, 11, 22, 12, 0))


# --- exception_for ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", [LEGACY_1, {"host_id": "i-0a1", "name": None}, {"host_id": "cedar-prd-legacy-01", "name": None}]
)
def test_host_matched_by_name_or_id(host: dict) -> None:
    by_id = acceptance("EXC-2026-015", hosts=["i-0a1"])
    found = exception_for(host, {KERNEL}, register(acceptance(), by_id), CYCLE_DAY)
    assert found is not None
    assert found.id == ("EXC-2026-014" if "cedar-prd-legacy-01" in host.values() else "EXC-2026-015")


def test_other_host_not_covered() -> None:
    assert (
        exception_for({"host_id": "i-9", "name": "cedar-prd-app-01"}, None, register(acceptance()), CYCLE_DAY)
        is None
    )


def test_patch_scoped_acceptance_must_cover_every_missing_patch() -> None:
    reg = register(acceptance())
    assert exception_for(LEGACY_1, {KERNEL}, reg, CYCLE_DAY) is not None
    assert exception_for(LEGACY_1, {KERNEL, BIND}, reg, CYCLE_DAY) is None  # BIND had no sign-off
    assert exception_for(LEGACY_1, {BIND}, reg, CYCLE_DAY) is None
    assert exception_for(LEGACY_1, set(), reg, CYCLE_DAY) is None  # nothing it defers is missing
    assert exception_for(LEGACY_1, None, reg, CYCLE_DAY) is not None  # unknown: the named hosts count


def test_patches_only_acceptance_needs_known_missing_patches() -> None:
    everywhere = register(acceptance(hosts=None))
    any_host = {"host_id": "i-7", "name": "cedar-prd-app-03"}
    assert exception_for(any_host, {KERNEL}, everywhere, CYCLE_DAY) is not None
    assert exception_for(any_host, None, everywhere, CYCLE_DAY) is None


def test_all_patches_acceptance_covers_whatever_is_missing() -> None:
    reg = register(acceptance(patches=None))
    for missing in ({KERNEL, BIND}, set(), None):
        assert exception_for(LEGACY_1, missing, reg, CYCLE_DAY) is not None


def test_only_active_acceptances_count() -> None:
    lapsed = acceptance(approved_on=dt.date(2026, 3, 1), expires_on=dt.date(2026, 8, 31))
    future = acceptance(approved_on=dt.date(2026, 12, 1), expires_on=dt.date(2027, 3, 1))
    assert exception_for(LEGACY_1, {KERNEL}, register(lapsed), CYCLE_DAY) is None
    assert exception_for(LEGACY_1, {KERNEL}, register(future), CYCLE_DAY) is None


def test_lowest_id_wins() -> None:
    reg = register(acceptance("EXC-2026-020", patches=None), acceptance("EXC-2026-014"))
    assert exception_for(LEGACY_1, {KERNEL}, reg, CYCLE_DAY).id == "EXC-2026-014"  # type: ignore[union-attr]


# --- apply_exceptions -------------------------------------------------------------------------------


def test_failed_host_becomes_excepted_with_reason() -> None:
    records = [record("cedar-prd-legacy-01", o.FAILED, reason="patch install failed")]
    out, report = apply_exceptions(
        records, {"i-cedar-prd-legacy-01": {KERNEL}}, register(acceptance()), CYCLE_DAY
    )
    assert out[0]["final_state"] == o.EXCEPTED
    assert out[0]["reason"] == "risk acceptance EXC-2026-014 until 2027-01-31 approved by R. Okafor"
    assert out[0]["reason"] == exception_reason(acceptance())
    assert report.applied == {"i-cedar-prd-legacy-01": "EXC-2026-014"}
    [application] = report.applications
    assert (application.previous_state, application.previous_reason) == (o.FAILED, "patch install failed")
    assert records[0]["final_state"] == o.FAILED  # the input is not changed


@pytest.mark.parametrize("state", [o.HELD, o.NON_COMPLIANT, o.NOT_RUN])
def test_other_unpatched_states_become_excepted(state: str) -> None:
    out, _ = apply_exceptions([record("cedar-prd-legacy-02", state)], None, register(acceptance()), CYCLE_DAY)
    assert out[0]["final_state"] == o.EXCEPTED


@pytest.mark.parametrize("state", [o.PATCHED, o.OUT_OF_SCOPE])
def test_patched_and_out_of_scope_hosts_are_untouched(state: str) -> None:
    records = [record("cedar-prd-legacy-01", state, reason=None)]
    out, report = apply_exceptions(records, None, register(acceptance(patches=None)), CYCLE_DAY)
    assert out == records
    assert report.applied == {}
    assert [a.id for a in report.unused] == ["EXC-2026-014"]


def test_expired_acceptance_is_not_applied_but_flagged() -> None:
    lapsed = acceptance("EXC-2026-005", approved_on=dt.date(2026, 3, 2), expires_on=dt.date(2026, 8, 31))
    records = [record("cedar-prd-legacy-01", o.HELD, reason="agent offline")]
    out, report = apply_exceptions(records, None, register(lapsed), CYCLE_DAY)
    assert out == records
    assert [a.id for a in report.expired] == ["EXC-2026-005"]
    assert report.lapsed == (HostMatch("i-cedar-prd-legacy-01", "cedar-prd-legacy-01", "EXC-2026-005"),)
    assert report.active == () and report.unused == ()


def test_partial_patch_coverage_is_not_excepted_and_is_reported() -> None:
    records = [record("cedar-prd-legacy-01")]
    missing = {"i-cedar-prd-legacy-01": {BIND, KERNEL}}
    out, report = apply_exceptions(records, missing, register(acceptance()), CYCLE_DAY)
    assert out[0]["final_state"] == o.FAILED
    assert report.partial == (
        PartialCoverage("i-cedar-prd-legacy-01", "cedar-prd-legacy-01", "EXC-2026-014", (BIND,)),
    )
    assert [a.id for a in report.unused] == ["EXC-2026-014"]


def test_host_absent_from_missing_map_counts_as_unknown() -> None:
    out, _ = apply_exceptions([record("cedar-prd-legacy-01")], {}, register(acceptance()), CYCLE_DAY)
    assert out[0]["final_state"] == o.EXCEPTED


def test_unused_and_expiring_soon() -> None:
    soon = acceptance(
        "EXC-2026-021", hosts=["alpha-prd-db-02"], patches=None, expires_on=dt.date(2026, 12, 15)
    )
    today = acceptance(
        "EXC-2026-022", hosts=["gone-01"], approved_on=dt.date(2026, 11, 1), expires_on=CYCLE_DAY
    )
    later = acceptance("EXC-2026-014")
    records = [record("alpha-prd-db-02", o.NON_COMPLIANT), record("cedar-prd-legacy-01", o.PATCHED)]
    _, report = apply_exceptions(records, None, register(later, today, soon), CYCLE_DAY)
    assert report.applied == {"i-alpha-prd-db-02": "EXC-2026-021"}
    assert [a.id for a in report.unused] == ["EXC-2026-014", "EXC-2026-022"]
    assert [a.id for a in report.expiring_soon] == ["EXC-2026-022", "EXC-2026-021"]  # by expiry
    assert report.to_dict()["expiring_soon"] == [
        {"id": "EXC-2026-022", "expires_on": "2026-11-22", "days_left": 0},
        {"id": "EXC-2026-021", "expires_on": "2026-12-15", "days_left": 23},
    ]


def test_results_are_deterministic_and_keep_record_order() -> None:
    reg = register(acceptance(patches=None))
    records = [record("cedar-prd-legacy-02"), record("cedar-prd-app-01"), record("cedar-prd-legacy-01")]
    first = apply_exceptions(copy.deepcopy(records), None, reg, CYCLE_DAY)
    second = apply_exceptions(list(reversed(copy.deepcopy(records))), None, reg, CYCLE_DAY)
    assert [r["name"] for r in first[0]] == [r["name"] for r in records]
    assert [a.name for a in first[1].applications] == ["cedar-prd-legacy-01", "cedar-prd-legacy-02"]
    assert first[1].to_dict() == second[1].to_dict()


def test_unknown_final_state_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown final_state 'compliant'"):
        apply_exceptions([record("a-01", "compliant")], None, register(), CYCLE_DAY)


def test_shipped_cedar_register_on_the_demo_cycle() -> None:
    cedar = load_exception_register(REPO / "include" / "exceptions" / "cu_cedar.yaml")
    records = [
        record("cedar-prd-legacy-01", o.FAILED),
        record("cedar-prd-legacy-02", o.NON_COMPLIANT),
        record("cedar-stg-app-01", o.HELD, reason="agent offline"),
        record("cedar-prd-app-01", o.PATCHED, reason=None),
    ]
    missing = {"i-cedar-prd-legacy-01": {KERNEL}, "i-cedar-prd-legacy-02": {KERNEL}}
    out, report = apply_exceptions(records, missing, cedar, CYCLE_DAY)
    assert [r["final_state"] for r in out] == [o.EXCEPTED, o.EXCEPTED, o.HELD, o.PATCHED]
    assert [a.id for a in report.expired] == ["EXC-2026-005"]
    assert [m.name for m in report.lapsed] == ["cedar-stg-app-01"]
    assert report.unused == () and report.expiring_soon == ()
