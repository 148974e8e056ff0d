"""The evidence store: a tenant's S3 evidence bucket, written once per key and never overwritten.

Layout under ``cycles/<cycle_date>/``::

    plans/<plan_hash>/plan.json, install-list.yaml      the frozen plan (one per distinct plan)
    runs/<run>/inventory.try-<n>.json, preflight.try-<n>.json      what the run saw and decided
    runs/<run>/<env>/backups, backup-status, commands, invocations, stage (.try-<n>.json each)
    runs/<run>/events/<task>.try-<n>.json                append-only event log, one object per attempt
    runs/<run>/pack/report.pdf, evidence.json, hosts.csv, manifest.json

Objects are written with ``If-None-Match: *`` so a retry can never replace what an earlier attempt
wrote; writing identical bytes again is accepted (idempotent), different bytes are an error. Records a
task may write again on a retry carry the attempt number, and readers take the latest.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from patchcycle.hooks.s3 import EvidenceBucketHook


class EvidenceConflict(RuntimeError):
    """An attempt to replace evidence that already exists with different content."""


def attempt_key(key: str, attempt: int, step: int | None = None) -> str:
    """``<stem>.try-<attempt>.json``, or ``<stem>.try-<attempt>.step-<n>.json`` for a task that records
    several steps in one attempt (rounds of a deferred loop)."""
    suffix = "" if step is None else f".step-{step:04d}"
    return f"{key.removesuffix('.json')}.try-{attempt}{suffix}.json"


def _attempt_number(key: str) -> tuple[int, int]:
    tail = key.rsplit(".try-", 1)[1].removesuffix(".json")
    attempt, _, step = tail.partition(".step-")
    return int(attempt), int(step) if step else -1


def safe_run_segment(run_id: str) -> str:
    """A run id as a key segment (run ids contain ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


class CyclePaths:
    """Keys of one cycle run's evidence."""

    def __init__(self, cycle_date: str, run_id: str) -> None:
        self.cycle = f"cycles/{cycle_date}"
        self.run = f"{self.cycle}/runs/{safe_run_segment(run_id)}"

    def plan(self, plan_hash: str) -> str:
        """Key of the frozen plan with this hash."""
        return f"{self.cycle}/plans/{plan_hash}/plan.json"

    def install_list(self, plan_hash: str, variant: str = "full") -> str:
        """Key of the plan's install list; a variant other than ``full`` is in the name
        (``install-list.<variant>.yaml``, ``_`` written ``-``)."""
        suffix = "" if variant == "full" else f".{variant.replace('_', '-')}"
        return f"{self.cycle}/plans/{plan_hash}/install-list{suffix}.yaml"

    def run_file(self, name: str) -> str:
        """Key of ``name`` directly under the run."""
        return f"{self.run}/{name}"

    def stage_file(self, environment: str, name: str) -> str:
        """Key of ``name`` under the run's folder for one environment (stage)."""
        return f"{self.run}/{environment}/{name}"

    def events(self, task_id: str, try_number: int) -> str:
        """Key of one task attempt's event log."""
        return f"{self.run}/events/{task_id}.try-{try_number}.json"

    @property
    def events_prefix(self) -> str:
        """Prefix of every event log of the run."""
        return f"{self.run}/events/"

    def pack(self, name: str) -> str:
        """Key of a file of the run's evidence pack."""
        return f"{self.run}/pack/{name}"


class EvidenceStore:
    """Write-once JSON and bytes in one tenant's evidence bucket."""

    def __init__(self, hook: EvidenceBucketHook, bucket: str, retention_days: int | None = None) -> None:
        self.hook = hook
        self.bucket = bucket
        self.retention_days = retention_days

    def url(self, key: str) -> str:
        """The ``s3://`` URL of a key in this bucket."""
        return f"s3://{self.bucket}/{key}"

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Write ``data`` under ``key`` once (retained for ``retention_days`` when set); returns its URL. The
        same bytes already there are accepted; different ones raise :class:`EvidenceConflict`."""
        from botocore.exceptions import ClientError

        retain_until = None
        if self.retention_days:
            retain_until = dt.datetime.now(dt.UTC) + dt.timedelta(days=self.retention_days)
        try:
            self.hook.put_once(self.bucket, key, data, content_type, retain_until)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                raise
            existing = self.get_bytes(key)
            if existing != data:
                raise EvidenceConflict(f"{self.url(key)} already exists with different content") from exc
        return self.url(key)

    def put_json(self, key: str, obj: Any) -> str:
        """Write ``obj`` once as JSON (sorted keys, indent 1, other types as ``str``); returns its URL."""
        data = (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode()
        return self.put_bytes(key, data, "application/json")

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; botocore's ``ClientError`` when there is none."""
        return self.hook.get(self.bucket, key)

    def get_json(self, key: str) -> Any:
        """The object, parsed as JSON."""
        return json.loads(self.get_bytes(key))

    def get_json_or_none(self, key: str) -> Any:
        """The object parsed as JSON, or None when the key does not exist."""
        return json.loads(data) if (data := self.hook.get_or_none(self.bucket, key)) is not None else None

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""
        return self.hook.keys(self.bucket, prefix)

    # -- records: one object per task attempt; readers take the latest ---------------------------
    def put_record(self, key: str, obj: Any, attempt: int, step: int | None = None) -> str:
        """Write ``<key>`` as ``<stem>.try-<attempt>.json``: a retried or cleared task adds, not replaces."""
        return self.put_json(attempt_key(key, attempt, step), obj)

    def get_record(self, key: str) -> Any:
        """The latest attempt's record, or ``None`` if no attempt wrote one."""
        attempts = self.keys(f"{key.removesuffix('.json')}.try-")
        if not attempts:
            return None
        return self.get_json(max(attempts, key=_attempt_number))
