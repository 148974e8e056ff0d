"""Tests for exception registers: the shipped ones load, and bad ones say which file, field and value."""

import datetime as dt
import pickle
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from patchcycle.config.exceptions import (
    MAX_ACCEPTANCE_DAYS,
    ExceptionRegister,
    ExceptionRegisterError,
    RiskAcceptance,
    RiskRating,
    default_exceptions_dir,
    load_exception_register,
    load_exception_registers,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "include" / "exceptions"


def acceptance(**changes: Any) -> dict[str, Any]:
    """A valid acceptance as YAML would hold it, with ``changes`` applied (None removes a key)."""
    data: dict[str, Any] = {
        "id": "EXC-2026-001",
        "hosts": ["gen-prd-app-01"],
        "patches": ["RHSA-2026:9077"],
        "justification": "Vendor application certified only on the current glibc.",
        "compensating_control": "Host isolated in a segmented VLAN.",
        "requested_by": "App owner",
        "approver": "C. Iso",
        "approver_role": "CISO",
        "approved_on": dt.date(2026, 10, 15),
        "expires_on": dt.date(2027, 1, 31),
        "risk_rating": "High",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def write_register(directory: Path, entries: list[Any], tenant_id: str = "cu_gen", **top: Any) -> Path:
    path = directory / f"{tenant_id}.yaml"
    path.write_text(yaml.safe_dump({"tenant_id": tenant_id, "exceptions": entries, **top}, sort_keys=False))
    return path


def load_error(path: Path) -> ExceptionRegisterError:
    with pytest.raises(ExceptionRegisterError) as caught:
        load_exception_register(path)
    return caught.value


def problem_at(error: ExceptionRegisterError, location: str) -> str:
    messages = [message for where, message in error.problems if where == location]
    assert messages, f"no problem at {location!r} in {error.problems}"
    return messages[0]


# --- shipped registers ----------------------------------------------------------------------------


def test_shipped_registers_load() -> None:
    assert default_exceptions_dir() == SHIPPED
    registers = load_exception_registers()
    assert list(registers) == ["cu_alpha", "cu_birch", "cu_cedar"]
    assert registers["cu_birch"].exceptions == []


def test_shipped_cedar_register() -> None:
    cedar = load_exception_register(SHIPPED / "cu_cedar.yaml")
    legacy = cedar.get("EXC-2026-014")
    assert legacy is not None
    assert legacy.hosts == ["cedar-prd-legacy-01", "cedar-prd-legacy-02"]
    assert legacy.patches == ["CESA-2026:0412"]
    assert legacy.approver_role == "CISO"
    assert (legacy.approved_on, legacy.expires_on) == (dt.date(2026, 10, 15), dt.date(2027, 1, 31))
    assert "VLAN" in legacy.compensating_control and "EDR" in legacy.compensating_control
    assert any(a.expires_on < dt.date(2026, 11, 22) for a in cedar.exceptions)


def test_shipped_alpha_register() -> None:
    alpha = load_exception_register(SHIPPED / "cu_alpha.yaml")
    [db] = alpha.exceptions
    assert db.hosts == ["alpha-prd-db-02"] and db.all_patches
    assert 0 <= (db.expires_on - dt.date(2026, 11, 22)).days <= 30


def test_missing_tenant_files_are_empty_registers(tmp_path: Path) -> None:
    write_register(tmp_path, [acceptance()], tenant_id="cu_gen")
    registers = load_exception_registers(tmp_path, tenant_ids=["cu_zed", "cu_gen"])
    assert list(registers) == ["cu_gen", "cu_zed"]
    assert registers["cu_zed"] == ExceptionRegister.empty("cu_zed")
    assert len(registers["cu_gen"].exceptions) == 1


def test_scopes_that_load(tmp_path: Path) -> None:
    entries = [
        acceptance(id="EXC-2026-001", patches=None),  # every patch on the hosts
        acceptance(id="EXC-2026-002"),  # hosts and patches together: those patches on those hosts
        acceptance(id="EXC-2026-003", hosts=None),  # those patches on every host
    ]
    register = load_exception_register(write_register(tmp_path, entries))
    assert [(a.host_scoped, a.all_patches) for a in register.exceptions] == [
        (True, True),
        (True, False),
        (False, False),
    ]
    assert register.exceptions[2].scope_text == "RHSA-2026:9077 on every host"
    assert register.exceptions[0].risk_rating is RiskRating.High


def test_models_are_frozen() -> None:
    model = RiskAcceptance.model_validate(acceptance())
    with pytest.raises(pydantic.ValidationError):
        model.approver = "someone else"  # type: ignore[misc]


def test_exactly_365_days_is_allowed(tmp_path: Path) -> None:
    approved = dt.date(2026, 1, 1)
    entry = acceptance(approved_on=approved, expires_on=approved + dt.timedelta(days=MAX_ACCEPTANCE_DAYS))
    load_exception_register(write_register(tmp_path, [entry]))


# --- bad registers ----------------------------------------------------------------------------------


def test_missing_approver_names_the_field(tmp_path: Path) -> None:
    path = write_register(tmp_path, [acceptance(approver=None)])
    error = load_error(path)
    assert str(error).startswith(f"{path}: invalid exception register:\n")
    assert "  - exceptions.0.approver: required field is missing" in str(error)


def test_blank_approver(tmp_path: Path) -> None:
    error = load_error(write_register(tmp_path, [acceptance(approver="  ")]))
    assert "(got '  ')" in problem_at(error, "exceptions.0.approver")


def test_self_approval(tmp_path: Path) -> None:
    error = load_error(write_register(tmp_path, [acceptance(requested_by="C. Iso")]))
    assert "must not be the requester" in problem_at(error, "exceptions.0.approver")


@pytest.mark.parametrize("expires_on", [dt.date(2026, 10, 14), dt.date(2026, 10, 15)])
def test_expiry_not_after_approval(tmp_path: Path, expires_on: dt.date) -> None:
    error = load_error(write_register(tmp_path, [acceptance(expires_on=expires_on)]))
    message = problem_at(error, "exceptions.0.expires_on")
    assert message == f"expires_on must be after approved_on (2026-10-15) (got '{expires_on.isoformat()}')"


def test_acceptance_longer_than_365_days(tmp_path: Path) -> None:
    entry = acceptance(approved_on=dt.date(2026, 1, 1), expires_on=dt.date(2027, 1, 2))
    message = problem_at(load_error(write_register(tmp_path, [entry])), "exceptions.0.expires_on")
    assert "at most 365 days" in message and "2027-01-01" in message and "(got '2027-01-02')" in message


def test_no_scope(tmp_path: Path) -> None:
    error = load_error(write_register(tmp_path, [acceptance(hosts=None, patches=None)]))
    assert "no scope" in problem_at(error, "exceptions.0")


@pytest.mark.parametrize("field", ["hosts", "patches"])
def test_empty_scope_list_is_not_all(tmp_path: Path, field: str) -> None:
    error = load_error(write_register(tmp_path, [acceptance(**{field: []})]))
    assert "at least 1 item" in problem_at(error, f"exceptions.0.{field}")


def test_repeated_host(tmp_path: Path) -> None:
    error = load_error(write_register(tmp_path, [acceptance(hosts=["a-01", "a-01"])]))
    assert "repeated: 'a-01'" in problem_at(error, "exceptions.0.hosts")


def test_duplicate_ids(tmp_path: Path) -> None:
    error = load_error(write_register(tmp_path, [acceptance(), acceptance(patches=None)]))
    assert problem_at(error, "exceptions") == "exception ids must be unique; repeated: 'EXC-2026-001'"


def test_unknown_key(tmp_path: Path) -> None:
    error = load_error(write_register(tmp_path, [acceptance(approvd_by="x")], owner="sre"))
    assert problem_at(error, "exceptions.0.approvd_by") == "unknown field (not allowed)"
    assert problem_at(error, "owner") == "unknown field (not allowed)"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("justification", "too short", "at least 20 characters"),
        ("compensating_control", "EDR", "at least 10 characters"),
        ("risk_rating", "Severe", "'Critical', 'High', 'Medium' or 'Low'"),
        ("id", "EXC-14", "should match pattern"),
        ("approved_on", dt.datetime(2026, 10, 15, 9, 0), "not a date and time"),
        ("approved_on", 20261015, "calendar date"),
    ],
)
def test_bad_field_values(tmp_path: Path, field: str, value: Any, expected: str) -> None:
    error = load_error(write_register(tmp_path, [acceptance(**{field: value})]))
    assert expected in problem_at(error, f"exceptions.0.{field}")


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "cu_gen.yaml"
    path.write_text("tenant_id: cu_gen\nexceptions:\n  - id: EXC-2026-001\n    hosts: [a-01, a-02\n")
    error = load_error(path)
    assert str(error).startswith(f"{path}: invalid exception register:\n  - YAML syntax error at line ")
    assert "flow sequence started at line 4" in str(error)


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    path = tmp_path / "cu_gen.yaml"
    path.write_text("tenant_id: cu_gen\ntenant_id: cu_gen\nexceptions: []\n")
    assert "line 2, column 1: found duplicate key 'tenant_id'" in str(load_error(path))


def test_stem_must_equal_tenant_id(tmp_path: Path) -> None:
    path = write_register(tmp_path, [], tenant_id="cu_gen")
    moved = path.rename(tmp_path / "cu_other.yaml")
    message = problem_at(load_error(moved), "tenant_id")
    assert "'cu_gen' does not match the file name 'cu_other.yaml'" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "file is empty"),
        ("- a\n", "top level must be a mapping, got a list"),
        ("tenant_id: cu_gen\n", ""),
    ],
)
def test_ill_formed_files(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "cu_gen.yaml"
    path.write_text(text)
    error = load_error(path)
    if expected:
        assert expected in str(error)
    else:
        assert problem_at(error, "exceptions") == "required field is missing"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "file not found" in str(load_error(tmp_path / "cu_gen.yaml"))
    with pytest.raises(ExceptionRegisterError, match="exceptions directory does not exist"):
        load_exception_registers(tmp_path / "nowhere")


def test_broken_file_is_never_swallowed(tmp_path: Path) -> None:
    write_register(tmp_path, [], tenant_id="cu_good")
    write_register(tmp_path, [acceptance(approver=None)], tenant_id="cu_bad")
    with pytest.raises(ExceptionRegisterError, match=r"exceptions\.0\.approver: required field is missing"):
        load_exception_registers(tmp_path)


def test_two_files_for_one_tenant(tmp_path: Path) -> None:
    write_register(tmp_path, [], tenant_id="cu_gen")
    (tmp_path / "cu_gen.yml").write_text("tenant_id: cu_gen\nexceptions: []\n")
    with pytest.raises(ExceptionRegisterError, match="already has a register in cu_gen.yaml"):
        load_exception_registers(tmp_path)


def test_error_pickles(tmp_path: Path) -> None:
    error = load_error(write_register(tmp_path, [acceptance(approver=None)]))
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.problems == error.problems
