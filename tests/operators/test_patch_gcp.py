"""The GCP patch task's job starts without a cloud: one job per project, variant and exclusive lists,
the intent on record before each ExecutePatchJob (which takes no request id), and a retry that keeps
the jobs it knows and finds the one whose start it did not record. The grouping and names are the
domain's (tests/domain/test_gcp_jobs.py); the end-to-end tests run the task against fleetsim.

OS Config is replaced by a recording stand-in for ``OsConfigHook`` and the evidence bucket by the
in-memory one of stand_ins."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from patchcycle.config.loader import default_tenants_dir, load_tenant
from patchcycle.hooks import gcp_osconfig
from patchcycle.operators.context import CycleContext
from patchcycle.operators.patch import PatchGcpOperator
from patchcycle.reports.store import EvidenceStore
from patchcycle.triggers import checks

from .stand_ins import CONTEXT, MemoryBucket, attempt

PLAN = {
    "approved": {
        "rhel_8": [{"id": "R8-1", "package": "openssl", "version": "1.1.1k-12.el8"}],
        "rhel_9": [{"id": "R9-1", "package": "curl", "version": "7.76.1-29.el9"}],
    }
}


class OsConfig:
    """Stands in for OsConfigHook: records each ExecutePatchJob; lists the jobs it was told exist."""

    started: list[dict[str, Any]] = []
    existing: list[dict[str, Any]] = []
    store: MemoryBucket | None = None
    records_at_start: list[int] = []

    def __init__(self, gcp_conn_id: str, project_id: str) -> None:
        self.project = project_id

    def execute_patch_job(self, **kwargs: Any) -> dict[str, Any]:
        OsConfig.records_at_start.append(len(OsConfig.store.objects) if OsConfig.store else 0)
        OsConfig.started.append(kwargs)
        return {"name": f"projects/{self.project}/patchJobs/job-{len(OsConfig.started)}"}

    def patch_jobs(self, display_name: str | None = None) -> list[dict[str, Any]]:
        return [j for j in OsConfig.existing if display_name in (None, j["displayName"])]


def instance(name: str, family: str) -> dict[str, Any]:
    return {
        "host_id": f"gce-{name}",
        "name": name,
        "cloud": "gcp",
        "account": "alpha-prod",
        "region": "us-central1-a",
        "os_family": family,
        "install_variant": "full",
    }


@pytest.fixture
def task(monkeypatch) -> tuple[PatchGcpOperator, MemoryBucket]:
    bucket = MemoryBucket()
    OsConfig.started, OsConfig.existing, OsConfig.store, OsConfig.records_at_start = [], [], bucket, []
    monkeypatch.setattr(gcp_osconfig, "OsConfigHook", OsConfig)
    monkeypatch.setattr(checks, "osconfig_jobs", lambda payload: {"done": False})
    tenant = load_tenant(default_tenants_dir() / "cu_alpha.yaml")
    op = PatchGcpOperator(task_id="nonprod.patch_gcp", tenant_id=tenant.id, environment="nonprod")
    op.__dict__.update(tenant=tenant, store=EvidenceStore(bucket, "evidence"))
    hosts = [instance("web-8", "rhel_8"), instance("web-9", "rhel_9"), instance("app-9", "rhel_9")]
    monkeypatch.setattr(op, "ready_hosts", lambda cycle: hosts)
    monkeypatch.setattr(CycleContext, "plan", PLAN)
    monkeypatch.setattr(CycleContext, "gcp_conn_id", lambda self, project: "gcp_cu_alpha")
    return op, bucket


def test_families_with_different_lists_get_a_job_each_and_the_intent_is_recorded_first(task) -> None:
    op, bucket = task
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(CONTEXT)
    assert [j["display_name"] for j in OsConfig.started] == [
        "pc-2026-11-22-nonprod-full-1",
        "pc-2026-11-22-nonprod-full-2",
    ]
    # Ordered by their lists: RHEL 9's curl job, then RHEL 8's openssl job.
    assert [j["yum_packages"] for j in OsConfig.started] == [["curl"], ["openssl"]]
    assert [sorted(i[1] for i in j["instances"]) for j in OsConfig.started] == [["app-9", "web-9"], ["web-8"]]
    assert OsConfig.started[0]["description"].startswith(
        "patchcycle cu_alpha 2026-11-22 nonprod plan ffffffffffff full run "
    )
    assert all(j["rollout_mode"] == "ZONE_BY_ZONE" for j in OsConfig.started)
    # Each job's intent was on record before ExecutePatchJob was called.
    assert OsConfig.records_at_start[0] >= 1 and OsConfig.records_at_start[1] > OsConfig.records_at_start[0]
    payload = deferred.value.trigger.serialize()[1]["payload"]
    assert [j["name"] for j in payload["jobs"]] == [
        "projects/alpha-prod/patchJobs/job-1",
        "projects/alpha-prod/patchJobs/job-2",
    ]


def test_a_retry_keeps_known_jobs_and_finds_the_one_whose_start_was_not_recorded(task) -> None:
    op, bucket = task
    key = op.record_key(op.cycle_context(CONTEXT), "jobs.json")
    first = {
        "name": "projects/alpha-prod/patchJobs/job-a",
        "display_name": "pc-2026-11-22-nonprod-full-1",
        "conn_id": "gcp_cu_alpha",
        "project": "alpha-prod",
        "variant": "full",
        "hosts": ["gce-app-9", "gce-web-9"],
    }
    intent_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    second = {
        **first,
        "name": None,
        "display_name": "pc-2026-11-22-nonprod-full-2",
        "hosts": ["gce-web-8"],
        "intent_at": intent_at.isoformat(),
    }
    op.store.put_record(key, [first, second], attempt=1, step=1)
    with pytest.raises(TaskDeferred):
        attempt(op, 2)
    # Nothing listed: the intent's job was never created, so it is started now; the known job is kept.
    assert [j["display_name"] for j in OsConfig.started] == ["pc-2026-11-22-nonprod-full-2"]
    description = OsConfig.started[0]["description"]

    # Again, as if that start's answer had been lost: the listing shows the job (and one of another run
    # with the same display name); it is found by its description and creation time, nothing is started.
    OsConfig.started.clear()
    name = second["display_name"]
    OsConfig.existing = [
        {
            "name": "projects/alpha-prod/patchJobs/other-run",
            "displayName": name,
            "description": description.replace(" run ", " run x"),
            "createTime": intent_at.isoformat(),
        },
        {
            "name": "projects/alpha-prod/patchJobs/job-b",
            "displayName": name,
            "description": description,
            "createTime": (intent_at + dt.timedelta(seconds=2)).isoformat(),
        },
    ]
    op.store.put_record(key, [first, second], attempt=3, step=1)
    with pytest.raises(TaskDeferred) as deferred:
        attempt(op, 4)
    assert OsConfig.started == []
    assert [j["name"] for j in deferred.value.trigger.serialize()[1]["payload"]["jobs"]] == [
        "projects/alpha-prod/patchJobs/job-a",
        "projects/alpha-prod/patchJobs/job-b",
    ]
    events = [e for k, data in bucket.objects.items() if "/events/" in k for e in json.loads(data)]
    assert [e["details"]["job"] for e in events if e["action"] == "patch.reconciled"] == [
        "projects/alpha-prod/patchJobs/job-b"
    ]
