"""Stand-ins the operator unit tests share: an in-memory evidence bucket and the slice of Airflow's task
context a cycle task reads (its plan facts through XCom, its attempt number, its run)."""

from __future__ import annotations

import datetime as dt
from typing import Any

RUN_ID = "manual__2026-11-22T02:00:00+00:00"
INFO = {"cycle_date": "2026-11-22", "plan_hash": "f" * 64, "dry_run": False, "environments": ["nonprod"]}


class MemoryBucket:
    """The four calls EvidenceStore makes, over a dict; a second write of a key fails as S3 would."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_once(self, bucket: str, key: str, data: bytes, content_type: str, retain_until: Any) -> None:
        assert key not in self.objects, f"{key} written twice"
        self.objects[key] = data

    def get(self, bucket: str, key: str) -> bytes:
        return self.objects[key]

    def get_or_none(self, bucket: str, key: str) -> bytes | None:
        return self.objects.get(key)

    def keys(self, bucket: str, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))


class Ti:
    try_number = 1

    @staticmethod
    def xcom_pull(task_ids: str) -> dict[str, Any]:
        return INFO


class Run:
    triggering_user_name = None
    run_after = dt.datetime(2026, 11, 22, 2, tzinfo=dt.UTC)


CONTEXT = {"ti": Ti(), "run_id": RUN_ID, "dag_run": Run()}


def attempt(task: Any, number: int) -> Any:
    """Execute ``task`` as its attempt ``number`` (a retry writes its records beside the earlier ones)."""
    Ti.try_number = number
    try:
        return task.execute(CONTEXT)
    finally:
        Ti.try_number = 1
