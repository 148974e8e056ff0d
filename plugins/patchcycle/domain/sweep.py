"""Runs that ended without an evidence pack, and what their interrupted stages can still say.

A cycle run writes its pack in its ``evidence`` task, which runs however the stages went. It cannot run
when the run as a whole is stopped: "Mark run as failed" (or success) in the UI or the REST API sets the
run's state and every unfinished task with it, and no DAG callback runs for a state set by hand
(``airflow/api_fastapi/core_api/services/public/dag_run.py::patch_dag_run_state`` fires listeners only).
The evidence sweep finds such runs in the tenant's evidence store by the record the plan task writes
first (``runs/<run>/run.try-<n>.json``) and writes their pack from what they recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from patchcycle.domain import outcomes as o
from patchcycle.domain.canary import CANARY

_RUN_KEY = re.compile(r"^cycles/(?P<cycle>[^/]+)/runs/(?P<run>[^/]+)/(?P<rest>.+)$")
_RUN_RECORD = re.compile(r"^run\.try-(?P<attempt>\d+)\.json$")
_PACK = re.compile(r"^pack(-try\d+)?/")


@dataclass(frozen=True)
class RunFolder:
    """One run's folder in the evidence store: where its run record is, and whether it has a pack."""

    cycle_date: str
    segment: str
    run_record_key: str | None
    has_pack: bool


def run_folders(keys: Iterable[str]) -> list[RunFolder]:
    """Every run folder under ``cycles/`` among ``keys`` (an evidence store's listing), by cycle and run."""
    records: dict[tuple[str, str], tuple[int, str] | None] = {}
    packs: set[tuple[str, str]] = set()
    for key in keys:
        match = _RUN_KEY.match(key)
        if match is None:
            continue
        folder = (match["cycle"], match["run"])
        records.setdefault(folder, None)
        rest = match["rest"]
        if _PACK.match(rest):
            packs.add(folder)
        elif record := _RUN_RECORD.match(rest):
            attempt = int(record["attempt"])
            latest = records[folder]
            if latest is None or attempt > latest[0]:
                records[folder] = (attempt, key)
    return [
        RunFolder(cycle, run, record[1] if record else None, (cycle, run) in packs)
        for (cycle, run), record in sorted(records.items())
    ]


def runs_without_pack(keys: Iterable[str]) -> list[RunFolder]:
    """The runs that recorded their start (a run record) and have no evidence pack: each is a run still
    going, or one that ended without its evidence task (the sweep asks Airflow which)."""
    return [f for f in run_folders(keys) if f.run_record_key and not f.has_pack]


def interrupted_stage(
    environment: str,
    rows: list[Mapping[str, Any]],
    backups: Mapping[str, Mapping[str, Any]],
    reason: str,
    canary: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of a stage the run stopped in before verifying it: a failed stage whose hosts are
    judged as conservatively as the records allow.

    ``rows`` are the stage's eligible hosts, ``backups`` its backup status. A host whose backup was
    ready may have been patched (the patch step sends only to those) and was never verified: it is
    ``not_assessed``, and its backup is named so a rollback can use it. A host without a ready backup was
    never sent a patch: ``held``, as verify would have judged it. Canary hosts a finished canary verify
    judged keep that verdict (``canary`` is the canary's stage record, when there is one).
    """
    judged = {
        host_id: dict(entry)
        for host_id, entry in ((canary or {}).get("hosts") or {}).items()
        if entry.get("batch") == CANARY
    }
    hosts: dict[str, dict[str, Any]] = {}
    for row in rows:
        host_id = str(row["host_id"])
        if host_id in judged:
            hosts[host_id] = judged[host_id]
            continue
        backup = backups.get(host_id) or {}
        entry: dict[str, Any] = {
            "backup_id": backup.get("backup_id"),
            "backup_kind": backup.get("kind"),
            "backup_state": backup.get("state"),
            "install_variant": row.get("install_variant", "full"),
        }
        if backup.get("ready"):
            entry.update(
                final_state=o.NOT_ASSESSED,
                reason=f"{reason}: the host may have been patched and was not verified; "
                f"its backup {backup.get('backup_id')} is kept for a rollback",
            )
        else:
            entry.update(final_state=o.HELD, reason=backup.get("reason") or "no completed backup")
        hosts[host_id] = entry
    stage: dict[str, Any] = {
        "environment": environment,
        "status": "failed",
        "reason": f"{reason}; the stage was not verified",
        "started_at": None,
        "finished_at": None,
        "command_ids": [],
        "hosts": hosts,
        "interrupted": True,
    }
    for kept in ("approval", "windows", "canary"):
        if canary and canary.get(kept) is not None:
            stage[kept] = canary[kept]
    return stage
