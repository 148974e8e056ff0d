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
    start_date = None
    run_after = dt.datetime(2026, 11, 22, 2, tzinfo=dt.UTC)


CONTEXT = {"ti": Ti(), "run_id": RUN_ID, "dag_run": Run()}


def attempt(task: Any, number: int) -> Any:
    """Execute ``task`` as its attempt ``number`` (a retry writes its records beside the earlier ones)."""
    Ti.try_number = number
    try:
        return task.execute(CONTEXT)
    finally:
        Ti.try_number = 1


class CycleTi:
    """A task instance with its own plan facts (the plan task's XCom; None when the plan left none) and
    attempt number, for tests that need other facts than :data:`INFO`."""

    def __init__(self, info: dict[str, Any] | None, try_number: int = 1) -> None:
        self.info = info
        self.try_number = try_number

    def xcom_pull(self, task_ids: str) -> dict[str, Any] | None:
        assert task_ids == "plan", task_ids
        return self.info


def cycle_context(
    info: dict[str, Any] | None = INFO,
    *,
    attempt: int = 1,
    run_id: str = RUN_ID,
    params: dict[str, Any] | None = None,
    **airflow: Any,
) -> dict[str, Any]:
    """Airflow's context for one attempt of a cycle task: the plan's facts, the run, the params (a manual
    rollback's ``cycle``, ``hosts`` and ``reason``), and any other entry (``outlet_events``...)."""
    return {
        "ti": CycleTi(info, attempt),
        "run_id": run_id,
        "dag_run": Run(),
        "params": params or {},
        **airflow,
    }


def run_key(name: str, *, cycle: str = INFO["cycle_date"], run_id: str = RUN_ID) -> str:
    """The key of a record ``name`` of one run of a cycle, as the evidence store lays it out."""
    from patchcycle.reports.store import CyclePaths

    return CyclePaths(cycle, run_id).run_file(name)


def with_plan(store: Any, plan: dict[str, Any], **facts: Any) -> dict[str, Any]:
    """The plan facts of a run whose frozen plan is ``plan``, stored where the plan task stores it."""
    from patchcycle.reports.store import CyclePaths

    key = CyclePaths(INFO["cycle_date"], RUN_ID).plan(INFO["plan_hash"])
    url = store.url(key) if store.get_json_or_none(key) == plan else store.put_json(key, plan)
    return {**INFO, "plan_url": url, **facts}


def recorded_events(bucket: MemoryBucket) -> list[dict[str, Any]]:
    """Every event the tasks appended to the evidence's event logs, oldest first."""
    import json

    events = [e for key, data in bucket.objects.items() if "/events/" in key for e in json.loads(data)]
    return sorted(events, key=lambda e: e["at"])


class Mail:
    """Stands in for Airflow's SMTP hook: keeps each mail sent (``Mail.sent``)."""

    sent: list[dict[str, Any]] = []

    def __init__(self, smtp_conn_id: str) -> None:
        pass

    def __enter__(self) -> Mail:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def send_email_smtp(self, *, to: list[str], subject: str, html_content: str) -> None:
        Mail.sent.append({"to": to, "subject": subject, "body": html_content})
