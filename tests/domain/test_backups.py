"""Reusing a stage's backups on a retry, and replacing the ones that failed."""

from __future__ import annotations

import pytest

from patchcycle.domain.backups import MAX_ATTEMPTS, attempt_names, choose_backup, usable


def test_the_first_backup_takes_the_base_name() -> None:
    assert choose_backup("ami", "pc-x", {}) == ("pc-x", True, [])


def test_a_backup_in_progress_or_ready_is_reused() -> None:
    assert choose_backup("ami", "pc-x", {"pc-x": "pending"}) == ("pc-x", False, [])
    assert choose_backup("disk_snapshot", "pc-x", {"pc-x": "READY"}) == ("pc-x", False, [])
    assert choose_backup("db_snapshot", "pc-x", {"pc-x": "creating"}) == ("pc-x", False, [])


@pytest.mark.parametrize(
    ("kind", "state"), [("ami", "failed"), ("db_snapshot", "failed"), ("disk_snapshot", "FAILED")]
)
def test_a_failed_backup_is_replaced_under_the_next_name(kind: str, state: str) -> None:
    assert choose_backup(kind, "pc-x", {"pc-x": state}) == ("pc-x-r2", True, ["pc-x"])


def test_the_newest_usable_backup_wins_and_failures_are_listed() -> None:
    existing = {"pc-x": "failed", "pc-x-r2": "available", "pc-x-r3": "failed"}
    assert choose_backup("ami", "pc-x", existing) == ("pc-x-r2", False, ["pc-x", "pc-x-r3"])
    existing = {"pc-x": "failed", "pc-x-r2": "failed"}
    assert choose_backup("ami", "pc-x", existing) == ("pc-x-r3", True, ["pc-x", "pc-x-r2"])


def test_other_hosts_backups_do_not_count() -> None:
    assert choose_backup("ami", "pc-x", {"pc-y": "failed", "pc-y-r2": "available"}) == ("pc-x", True, [])


def test_attempts_are_bounded() -> None:
    names = attempt_names("pc-x")
    assert len(names) == MAX_ATTEMPTS and names[1] == "pc-x-r2"
    with pytest.raises(ValueError, match="have all failed"):
        choose_backup("ami", "pc-x", dict.fromkeys(names, "failed"))


def test_unknown_states_are_usable_until_the_vendor_says_failed() -> None:
    assert usable("ami", "available") and usable("ami", None) and not usable("ami", "error")
