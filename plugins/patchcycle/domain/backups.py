"""Which earlier backup of a host a stage may reuse, and what a new one is called.

A stage's backups are found again by name or tag when its task runs again (a retry, a cleared task, a
re-run of the cycle), so a host is never backed up twice. A backup that failed is not a backup: it is
never reused, and the next attempt takes a new one under the next free name (names must be unique in
the account or project). Pure and free of Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# States in which a backup can never be restored from, by the vendor's own vocabulary.
# EC2 Image.State (API reference, Image): pending | available | invalid | deregistered | transient |
# failed | error | disabled. RDS DBSnapshot.Status: the RDS user guide lists creating, available,
# failed (among others). Compute Engine Snapshot.status: CREATING, DELETING, FAILED, READY, UPLOADING.
FAILED_STATES: Mapping[str, frozenset[str]] = {
    "ami": frozenset({"failed", "error", "invalid", "deregistered", "disabled"}),
    "db_snapshot": frozenset({"failed", "deleting", "incompatible-restore"}),
    "disk_snapshot": frozenset({"FAILED", "DELETING"}),
}

MAX_ATTEMPTS = 10
"""Backups tried per host, stage and cycle before the stage gives up on that host."""


def usable(kind: str, state: str | None) -> bool:
    """Whether a backup in ``state`` can still become (or is) one a host is restored from."""
    return state not in FAILED_STATES[kind]


def attempt_names(base: str, attempts: int = MAX_ATTEMPTS) -> list[str]:
    """The names a host's backups of one stage take, in order: ``base``, ``base-r2``, ``base-r3``..."""
    return [base] + [f"{base}-r{n}" for n in range(2, attempts + 1)]


def choose_backup(kind: str, base: str, existing: Mapping[str, str | None]) -> tuple[str, bool, list[str]]:
    """``(name, create, failed)`` for a host whose earlier backups are ``existing`` (name -> state).

    The newest usable backup among the attempt names is reused (``create`` False); if every one of
    them failed, the next free attempt name is taken (``create`` True). ``failed`` lists the failed
    ones, for the record. Raises ``ValueError`` when :data:`MAX_ATTEMPTS` backups have all failed.
    """
    names = attempt_names(base)
    failed = [name for name in names if name in existing and not usable(kind, existing[name])]
    for name in reversed(names):
        if name in existing and usable(kind, existing[name]):
            return name, False, failed
    for name in names:
        if name not in existing:
            return name, True, failed
    raise ValueError(f"{len(names)} backups named {base}* have all failed; not trying again")


def states_by_name(records: Iterable[Any], name_key: str, state_key: str) -> dict[str, str | None]:
    """``{name: state}`` from a cloud's list of backups (dicts)."""
    return {record[name_key]: record.get(state_key) for record in records if record.get(name_key)}
