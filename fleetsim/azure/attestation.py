"""The tenants' backup system, asked by Patchcycle to attest a recent good backup of Arc machines.

Arc-enabled servers have no snapshot API in Azure, so the bank's backup tool backs them up and, through
this small REST API (fleetsim's own design), attests that a backup finished recently enough to restore
from if the patch goes wrong.

``POST /backup-system/v1/attestations:query`` with ``Authorization: Bearer <API token>`` (any non-empty
token; 401 ``unauthenticated`` otherwise) and the JSON body::

    {"machines": ["<Arc machine id>", ...],     # 1..1000 ids (MAX_MACHINES; 400 above)
     "notBefore": "2026-11-20T00:00:00Z"}       # ISO 8601 with an offset: older backups do not count

answers 200 with one attestation per asked machine, in the order asked::

    {"attestations": [{"machine": "<id as asked>",
                       "status": "succeeded" | "failed" | "running" | "none",
                       "backupId": "bk-…" | null, "startedAt": iso | null, "completedAt": iso | null,
                       "message": "…"}],
     "generatedAt": iso}

Machine ids are matched case-insensitively (ARM ids are). Every machine is backed up daily; the latest
daily backup finished one hour before fleetsim started, then every 24 h after. ``succeeded``: that
backup finished at or after ``notBefore``; ``none``: it finished before ``notBefore`` (the message names
when), or the machine is unknown to the backup system; ``failed``: the machine is in the scenario's
``backup_fails`` (its latest backup failed); ``running``: the machine is in ``backup_slow_seconds`` and
that many seconds have not passed since the first query that named it (then it is ``succeeded``,
completed at that moment). Errors are ``{"error": {"code", "message"}}`` (400 ``invalid_argument``,
401, 404, 405). Calls counted: ``backup.attestations.query`` and ``backup.unauthenticated``.

Restores (the same token)::

    POST /backup-system/v1/restores  {"machine": id, "backupId": "bk-…", "requestId": "…", "reason": "…"}
    GET  /backup-system/v1/restores/{restoreId}

The POST answers 202 with the restore ``{"restoreId", "machine", "backupId", "status", "requestedAt",
"startedAt", "completedAt", "message"}`` (200 with the first restore when its ``requestId`` was seen
before); status goes ``queued`` -> ``running`` (the machine is restored and rebooted) -> ``succeeded``.
Refused: 404 ``backup_not_found`` for a backup the system never attested for that machine (only
``succeeded`` backups can be restored), 409 ``restore_in_progress`` while another restore of the machine
runs, 400 ``invalid_argument``. What a backup holds is the machine as it was when the backup finished
(the daily backup before fleetsim started: as seeded; a later one: as it was when first attested).
A restore that succeeds puts the host back to that state (:meth:`fleetsim.fleet.FleetState.restore`,
ground-truth action ``backup.restore``). Calls counted: ``backup.restores.create``, ``backup.restores.get``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from fleetsim.fleet import BackupState, FleetState, SimHost

MAX_MACHINES = 1000  # machine ids per query
PREFIX = "/backup-system/"
QUERY_PATH = "/backup-system/v1/attestations:query"
BACKUP_EVERY_SECONDS = 24 * 3600
BACKUP_RUN_SECONDS = 20 * 60  # how long one backup job runs
LATEST_BACKUP_AGE_SECONDS = 3600  # the latest daily backup finished this long before fleetsim started
RESTORES_PATH = "/backup-system/v1/restores"
RESTORE_TERMINAL = frozenset({"succeeded", "failed"})


@dataclass
class Restore:
    """One restore of a machine from one of its backups, queued -> running -> succeeded."""

    restore_id: str
    machine: str  # as asked
    host: SimHost
    backup_id: str
    backup: BackupState
    reason: str
    requested_at: float
    started_at: float
    ends_at: float
    applied: bool = False

    def status_at(self, now: float) -> str:
        if now >= self.ends_at:
            return "succeeded"
        return "running" if now >= self.started_at else "queued"

    def to_json(self, now: float) -> dict[str, Any]:
        status = self.status_at(now)
        return {
            "restoreId": self.restore_id,
            "machine": self.machine,
            "backupId": self.backup_id,
            "status": status,
            "reason": self.reason,
            "requestedAt": _iso(self.requested_at),
            "startedAt": _iso(self.started_at) if status != "queued" else None,
            "completedAt": _iso(self.ends_at) if status in RESTORE_TERMINAL else None,
            "message": {
                "queued": "the restore is queued",
                "running": "restoring the machine's volumes; it reboots when done",
                "succeeded": "restored from the backup and rebooted",
            }[status],
        }


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status, mimetype="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json({"error": {"code": code, "message": message}}, status)


def backup_id(host: SimHost, completed: float) -> str:
    digest = hashlib.sha256(f"{host.host_id.lower()}|{completed:.0f}".encode()).hexdigest()
    return f"bk-{digest[:16]}"


class AttestationApi:
    """The backup system's attestation endpoint over the fleet's hosts."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self.anchor = state.clock() - LATEST_BACKUP_AGE_SECONDS
        self._first_query: dict[str, float] = {}  # lower-case machine id -> first query naming it
        # What each attested backup holds, by backup id. The latest daily backup finished before fleetsim
        # started, so it holds every machine as seeded.
        self.started = state.clock()
        self._seeded = {h.host_id.lower(): state.backup_state(h) for h in state.hosts.values()}
        self.backups: dict[str, tuple[SimHost, BackupState]] = {}
        self.restores: dict[str, Restore] = {}
        self._by_request: dict[str, str] = {}  # requestId -> restoreId
        state.on_advance(self._apply_due)

    def handles(self, path: str) -> bool:
        return path.startswith(PREFIX)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._dispatch(Request(environ))(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        if request.path == RESTORES_PATH or request.path.startswith(RESTORES_PATH + "/"):
            return self._restores(request)
        if request.path != QUERY_PATH:
            return _error(404, "not_found", f"no route {request.path}; the backup system serves {QUERY_PATH}")
        if request.method != "POST":
            return _error(405, "method_not_allowed", f"{request.method} {QUERY_PATH}: use POST")
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth.removeprefix("Bearer ").strip():
            with self.state.lock:
                self.state.calls["backup.unauthenticated"] += 1
            return _error(401, "unauthenticated", "an 'Authorization: Bearer <API token>' header is required")
        with self.state.lock:
            self.state.calls["backup.attestations.query"] += 1
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError as exc:
            return _error(400, "invalid_argument", f"the body is not JSON: {exc}")
        if not isinstance(body, dict):
            return _error(400, "invalid_argument", "the body must be a JSON object")
        machines = body.get("machines")
        if (
            not isinstance(machines, list)
            or not machines
            or not all(isinstance(m, str) and m for m in machines)
        ):
            return _error(400, "invalid_argument", "machines must be a non-empty list of machine ids")
        if len(machines) > MAX_MACHINES:
            return _error(
                400, "invalid_argument", f"at most {MAX_MACHINES} machines per query, got {len(machines)}"
            )
        raw = body.get("notBefore")
        try:
            not_before = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            not_before = None
        if not_before is None or not_before.tzinfo is None:
            return _error(
                400, "invalid_argument", f"notBefore must be an ISO 8601 time with offset, got {raw!r}"
            )
        with self.state.lock:
            now = self.state.clock()
            hosts = {h.host_id.lower(): h for h in self.state.hosts.values()}
            rows = [self._attest(m, hosts.get(m.lower()), not_before.timestamp(), now) for m in machines]
        return _json({"attestations": rows, "generatedAt": _iso(now)})

    def _attest(self, machine: str, host: SimHost | None, not_before: float, now: float) -> dict[str, Any]:
        row: dict[str, Any] = {
            "machine": machine,
            "status": "none",
            "backupId": None,
            "startedAt": None,
            "completedAt": None,
        }
        if host is None:
            return row | {"message": "the machine is not protected by the backup system"}
        slot = math.floor((now - self.anchor) / BACKUP_EVERY_SECONDS)
        completed = self.anchor + slot * BACKUP_EVERY_SECONDS
        if host.backup_seconds is not None:
            first = self._first_query.setdefault(host.host_id.lower(), now)
            completed = first + host.backup_seconds
            if now < completed:
                return row | {
                    "status": "running",
                    "backupId": backup_id(host, completed),
                    "startedAt": _iso(first),
                    "message": "a backup job is running",
                }
        attempt = row | {
            "backupId": backup_id(host, completed),
            "startedAt": _iso(completed - BACKUP_RUN_SECONDS),
            "completedAt": _iso(completed),
        }
        if completed < not_before:
            return row | {"message": f"no backup finished since notBefore; the latest at {_iso(completed)}"}
        if host.backup_fails:
            return attempt | {
                "status": "failed",
                "message": "the backup job failed: snapshot of volume / failed",
            }
        self._remember(host, attempt["backupId"], completed)
        return attempt | {"status": "succeeded", "message": "backup completed and verified"}

    # -- restores -----------------------------------------------------------------------------------
    def _remember(self, host: SimHost, backup: str, completed: float) -> None:
        """Keep what a good backup holds: the seeded machine if it finished before fleetsim started,
        else the machine as it is when the backup is first attested."""
        if backup in self.backups:
            return
        held = self._seeded.get(host.host_id.lower()) if completed <= self.started else None
        held = held or self.state.backup_state(host)
        self.backups[backup] = (host, dataclasses.replace(held, taken_at=completed))

    def _restores(self, request: Request) -> Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth.removeprefix("Bearer ").strip():
            with self.state.lock:
                self.state.calls["backup.unauthenticated"] += 1
            return _error(401, "unauthenticated", "an 'Authorization: Bearer <API token>' header is required")
        tail = request.path.removeprefix(RESTORES_PATH).strip("/")
        if tail and request.method == "GET":
            with self.state.lock:
                self.state.calls["backup.restores.get"] += 1
                now = self.state.advance()
                restore = self.restores.get(tail)
                if restore is None:
                    return _error(404, "not_found", f"no restore {tail!r}")
                return _json(restore.to_json(now))
        if tail or request.method != "POST":
            return _error(405, "method_not_allowed", f"{request.method} {request.path}")
        with self.state.lock:
            self.state.calls["backup.restores.create"] += 1
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError as exc:
            return _error(400, "invalid_argument", f"the body is not JSON: {exc}")
        if not isinstance(body, dict):
            return _error(400, "invalid_argument", "the body must be a JSON object")
        machine, backup = body.get("machine"), body.get("backupId")
        request_id, reason = body.get("requestId"), body.get("reason") or ""
        for name, value in (("machine", machine), ("backupId", backup), ("requestId", request_id)):
            if not isinstance(value, str) or not value:
                return _error(400, "invalid_argument", f"{name} must be a non-empty string")
        with self.state.lock:
            now = self.state.advance()
            if request_id in self._by_request:
                return _json(self.restores[self._by_request[request_id]].to_json(now))
            held = self.backups.get(backup)
            if held is None or held[0].host_id.lower() != machine.lower():
                return _error(
                    404,
                    "backup_not_found",
                    f"backup {backup!r} of machine {machine!r} is not a good backup this system attested",
                )
            host, state = held
            for other in self.restores.values():
                if other.host is host and other.status_at(now) not in RESTORE_TERMINAL:
                    return _error(
                        409, "restore_in_progress", f"restore {other.restore_id} of {machine!r} is running"
                    )
            timings = self.state.timings
            started = now + timings.command_pending_seconds
            restore = Restore(
                restore_id="rs-" + hashlib.sha256(f"{request_id}|{now}".encode()).hexdigest()[:16],
                machine=machine,
                host=host,
                backup_id=backup,
                backup=state,
                reason=str(reason)[:500],
                requested_at=now,
                started_at=started,
                ends_at=started + timings.ami_pending_seconds + timings.invocation_seconds[1],
            )
            self.restores[restore.restore_id] = restore
            self._by_request[request_id] = restore.restore_id
            host.actions.append(
                {
                    "at": _iso(now),
                    "action": "backup.restore_requested",
                    "restore_id": restore.restore_id,
                    "backup_id": backup,
                }
            )
            return _json(restore.to_json(now), 202)

    def _apply_due(self, now: float) -> None:
        for restore in self.restores.values():
            if not restore.applied and now >= restore.ends_at:
                restore.applied = True
                self.state.restore(
                    restore.host,
                    restore.backup,
                    action="backup.restore",
                    restore_id=restore.restore_id,
                    backup_id=restore.backup_id,
                )
