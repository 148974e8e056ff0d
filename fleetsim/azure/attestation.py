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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from typing import Any

from werkzeug.wrappers import Request, Response

from fleetsim.fleet import FleetState, SimHost

MAX_MACHINES = 1000  # machine ids per query
PREFIX = "/backup-system/"
QUERY_PATH = "/backup-system/v1/attestations:query"
BACKUP_EVERY_SECONDS = 24 * 3600
BACKUP_RUN_SECONDS = 20 * 60  # how long one backup job runs
LATEST_BACKUP_AGE_SECONDS = 3600  # the latest daily backup finished this long before fleetsim started


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

    def handles(self, path: str) -> bool:
        return path.startswith(PREFIX)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._dispatch(Request(environ))(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
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
        return attempt | {"status": "succeeded", "message": "backup completed and verified"}
