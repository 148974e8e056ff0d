"""The tenant's backup system, asked for proof that each Arc machine has a recent good backup.

Azure has no snapshot API for Arc-enabled servers, so the bank's backup tool backs them up and attests
the latest backup through ``POST {base}/backup-system/v1/attestations:query`` (``{"machines": [ids],
"notBefore": iso}`` → ``{"attestations": [{"machine", "status": succeeded|failed|running|none,
"backupId", "startedAt", "completedAt", "message"}]}``; at most :data:`ATTESTATION_BATCH` machines per
query). Configured only by an Airflow connection (conn_type ``http``): ``host`` = the backup system's base
URL (``https://backup.bank.example`` or fleetsim's ``http://127.0.0.1:PORT``; a bare host name gets
``schema`` or https, and ``port``), ``password`` = the API token sent as ``Authorization: Bearer``.

The same system restores a machine from one of those backups (a rollback): ``POST {base}/backup-system/
v1/restores`` (``{"machine", "backupId", "requestId", "reason"}`` → 202, the restore) and ``GET
{base}/backup-system/v1/restores/{restoreId}`` (status queued | running | succeeded | failed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import requests
from airflow.sdk.bases.hook import BaseHook

ATTESTATION_BATCH = 1000  # machine ids per query (the API's maximum)
QUERY_PATH = "/backup-system/v1/attestations:query"
RESTORES_PATH = "/backup-system/v1/restores"
TIMEOUT_SECONDS = (5, 30)  # (connect, read)


class BackupAttestationError(RuntimeError):
    """The backup system refused or failed a query; the message names the machines and the answer."""


class BackupAttestationHook(BaseHook):
    """Attestations of recent good backups, by machine id."""

    conn_name_attr = "backup_conn_id"
    default_conn_name = "backup_default"
    conn_type = "http"
    hook_name = "Backup attestation (Patchcycle)"

    def __init__(self, backup_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.backup_conn_id = backup_conn_id

    @cached_property
    def _endpoint(self) -> tuple[str, str]:
        """(query URL, API token) from the connection."""
        conn = self.get_connection(self.backup_conn_id)
        host = (conn.host or "").rstrip("/")
        if not host:
            raise ValueError(f"connection {self.backup_conn_id!r}: host (the backup system's URL) is empty")
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")
        if not conn.password:
            raise ValueError(f"connection {self.backup_conn_id!r}: password (the API token) is empty")
        return host + QUERY_PATH, conn.password

    @cached_property
    def _session(self) -> requests.Session:
        return requests.Session()

    def attestations(self, machine_ids: Sequence[str], not_before: dt.datetime) -> dict[str, dict[str, Any]]:
        """The latest backup of each machine that finished at or after ``not_before``, by machine id (as
        given). Each value is the API's attestation: status ``succeeded`` (restorable), ``failed``,
        ``running`` (not finished yet) or ``none`` (no backup since ``not_before``), plus backupId,
        startedAt, completedAt and message."""
        if not_before.tzinfo is None:
            raise ValueError(f"not_before must be timezone-aware, got {not_before!r}")
        url, token = self._endpoint
        ids = list(dict.fromkeys(machine_ids))
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), ATTESTATION_BATCH):
            batch = ids[start : start + ATTESTATION_BATCH]
            what = (
                f"attesting backups of {len(batch)} machines ({batch[0]} ...) since {not_before.isoformat()}"
            )
            try:
                response = self._session.post(
                    url,
                    json={"machines": batch, "notBefore": not_before.isoformat()},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=TIMEOUT_SECONDS,
                )
            except requests.RequestException as exc:
                raise BackupAttestationError(f"backup system {url}: {what}: {exc}") from exc
            if response.status_code != 200:
                raise BackupAttestationError(
                    f"backup system {url}: {what}: HTTP {response.status_code}: {response.text[:300]}"
                )
            rows = response.json().get("attestations") or []
            for row in rows:
                out[row["machine"]] = row
            if missing := [m for m in batch if m not in out]:
                raise BackupAttestationError(f"backup system {url}: {what}: no attestation for {missing[:5]}")
        return out

    # -- restores: ``POST {base}/backup-system/v1/restores`` and ``GET .../restores/{id}`` -------------
    def _restore_call(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        query_url, token = self._endpoint
        url = query_url.removesuffix(QUERY_PATH) + path
        try:
            response = self._session.request(
                method, url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_SECONDS, **kwargs
            )
        except requests.RequestException as exc:
            raise BackupAttestationError(f"backup system {url}: {what}: {exc}") from exc
        if response.status_code not in (200, 202):
            raise BackupAttestationError(
                f"backup system {url}: {what}: HTTP {response.status_code}: {response.text[:300]}"
            )
        return response.json()

    def request_restore(
        self, machine_id: str, backup_id: str, request_id: str, reason: str
    ) -> dict[str, Any]:
        """Ask the backup system to restore a machine from one of its attested backups (the machine
        reboots onto it); returns the restore at once (``queued``). The same ``request_id`` returns the
        first restore instead of starting a second."""
        return self._restore_call(
            "POST",
            RESTORES_PATH,
            f"restoring {machine_id} from backup {backup_id}",
            json={"machine": machine_id, "backupId": backup_id, "requestId": request_id, "reason": reason},
        )

    def restore_status(self, restore_id: str) -> dict[str, Any]:
        """A restore: ``status`` queued | running | succeeded | failed, ``completedAt``, ``message``."""
        return self._restore_call("GET", f"{RESTORES_PATH}/{restore_id}", f"reading restore {restore_id}")
