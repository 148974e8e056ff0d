"""The Azure patch task's rounds without a cloud: what it records before and after each installPatches,
when it defers, what a retry does with an install whose answer was lost, and what a refused request
leaves behind. The round's decisions are the domain's (tested in tests/domain/test_arc_installs.py);
these tests hold the operator to reading, recording and waiting around them.

ARM is replaced by a recording stand-in for ``ArcHook`` and the evidence bucket by an in-memory one:
the end-to-end tests run the same task against fleetsim through the real SDKs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from patchcycle.config.loader import default_tenants_dir, load_tenant
from patchcycle.config.models import RateControl
from patchcycle.hooks import azure_arc
from patchcycle.operators.context import CycleContext
from patchcycle.operators.patch import PatchAzureOperator
from patchcycle.reports.store import EvidenceStore

from .stand_ins import CONTEXT, MemoryBucket, attempt

PATCH = {"id": "openssl-1:3.0.7-27.el9.x86_64", "package": "openssl", "version": "3.0.7-27.el9"}
PLAN = {"approved": {"rhel_9": [PATCH]}}


class Arm:
    """Stands in for ArcHook: records each installPatches, and what the store held when it was sent."""

    sent: list[tuple[str, dict[str, Any]]] = []
    refuse: set[str] = set()
    store: MemoryBucket | None = None
    records_at_send: list[int] = []

    def __init__(self, azure_conn_id: str, subscription_id: str) -> None:
        self.subscription = subscription_id

    def start_install(self, resource_group: str, name: str, parameters: dict[str, Any]) -> str:
        Arm.records_at_send.append(len(Arm.store.objects) if Arm.store else 0)
        if name in Arm.refuse:
            error = azure_arc.ArcError(f"installPatches on {name}: 409 Conflict")
            error.status_code = 409
            raise error
        Arm.sent.append((name, parameters))
        return f"https://management.azure.com/op/{name}"


def machine(n: int) -> dict[str, Any]:
    return {
        "host_id": f"/subscriptions/sub/resourcegroups/rg/providers/microsoft.hybridcompute/machines/m{n}",
        "name": f"m{n}",
        "cloud": "azure",
        "account": "00000000-0000-0000-0000-00000000a1a1",
        "resource_group": "rg",
        "os_family": "rhel_9",
        "install_variant": "full",
    }


@pytest.fixture
def task(monkeypatch) -> tuple[PatchAzureOperator, MemoryBucket]:
    bucket = MemoryBucket()
    Arm.sent, Arm.refuse, Arm.store, Arm.records_at_send = [], set(), bucket, []
    monkeypatch.setattr(azure_arc, "ArcHook", Arm)
    tenant = load_tenant(default_tenants_dir() / "cu_alpha.yaml")
    nonprod = tenant.environment("nonprod").model_copy(
        update={"rate_control": RateControl(max_concurrency="2", max_errors="0")}
    )
    tenant = tenant.model_copy(
        update={"environments": [nonprod if e.name == nonprod.name else e for e in tenant.environments]}
    )
    op = PatchAzureOperator(task_id="nonprod.patch_azure", tenant_id=tenant.id, environment="nonprod")
    op.__dict__.update(tenant=tenant, store=EvidenceStore(bucket, "evidence"))
    monkeypatch.setattr(op, "ready_hosts", lambda cycle: [machine(n) for n in range(1, 6)])
    monkeypatch.setattr(CycleContext, "plan", PLAN)
    monkeypatch.setattr(CycleContext, "azure_conn_id", lambda self, subscription: "azure_cu_alpha")
    return op, bucket


def latest(bucket: MemoryBucket, name: str) -> dict[str, Any]:
    """The record ``name`` (e.g. ``azure-installs``) as last written (the most writes)."""
    keys = [k for k in bucket.objects if f"/{name}." in k]
    return max((json.loads(bucket.objects[k]) for k in keys), key=lambda r: r.get("writes", 0))


def test_the_first_round_starts_the_slots_and_defers_until_half_of_them_finish(task) -> None:
    op, bucket = task
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(CONTEXT)
    assert [name for name, _ in Arm.sent] == ["m1", "m2"], "MaxConcurrency 2, in name order"
    body = Arm.sent[0][1]
    assert body["linuxParameters"] == {"packageNameMasksToInclude": ["openssl_3.0.7-27.el9"]}
    payload = deferred.value.trigger.serialize()[1]["payload"]
    assert sorted(payload["operations"]) == [machine(1)["host_id"], machine(2)["host_id"]]
    assert payload["queued"] == 3 and payload["wake_after"] == 1
    operations = latest(bucket, "azure-installs")["operations"]
    assert [operations[machine(n)["host_id"]]["location"].rsplit("/", 1)[-1] for n in (1, 2)] == ["m1", "m2"]
    # The intent of each install is on record before its request is sent.
    assert Arm.records_at_send[0] >= 1 and Arm.records_at_send[1] > Arm.records_at_send[0]


def test_a_failure_over_max_errors_stops_new_installs_and_names_the_machines_not_sent(task) -> None:
    op, bucket = task
    with pytest.raises(TaskDeferred):
        op.execute(CONTEXT)
    failed = {machine(1)["host_id"]: {"status": "Failed", "failedPatchCount": 1}}
    with pytest.raises(TaskDeferred) as deferred:
        op.execute_complete(CONTEXT, {"status": "wake", "results": failed})
    assert [name for name, _ in Arm.sent] == ["m1", "m2"], "nothing more is started"
    payload = deferred.value.trigger.serialize()[1]["payload"]
    assert list(payload["operations"]) == [machine(2)["host_id"]] and payload["queued"] == 0
    done = {machine(2)["host_id"]: {"status": "Succeeded", "failedPatchCount": 0}}
    assert op.execute_complete(CONTEXT, {"status": "done", "results": done}) == {"machines": 5}
    results = latest(bucket, "azure-results")
    assert [h for h, r in results.items() if r.get("not_sent")] == [machine(n)["host_id"] for n in (3, 4, 5)]
    events = [e for key, data in bucket.objects.items() if "/events/" in key for e in json.loads(data)]
    stopped = [e for e in events if e["action"] == "patch.budget_exhausted"]
    assert len(stopped) == 1 and stopped[0]["details"]["not_sent"] == 3


def test_a_retry_does_not_send_again_an_install_whose_answer_was_lost(task) -> None:
    op, bucket = task
    lost = {machine(1)["host_id"]: {"intent_at": "2026-11-22T02:10:00+00:00", "variant": "full"}}
    op.store.put_record(
        op.record_key(op.cycle_context(CONTEXT), "installs.json"),
        {"operations": lost, "results": {}, "round": 1, "not_sent": [], "writes": 1},
        attempt=1,
        step=1,
    )
    with pytest.raises(TaskDeferred):
        attempt(op, 2)
    assert "m1" not in [name for name, _ in Arm.sent]
    state = latest(bucket, "azure-installs")
    assert state["operations"][machine(1)["host_id"]]["answer_lost"] is True
    assert state["results"][machine(1)["host_id"]] is None


def test_a_refused_install_is_forgotten_so_a_retry_may_ask_again(task) -> None:
    op, bucket = task
    Arm.refuse = {"m2"}
    with pytest.raises(azure_arc.ArcError):
        op.execute(CONTEXT)
    state = latest(bucket, "azure-installs")
    assert machine(1)["host_id"] in state["operations"]
    assert machine(2)["host_id"] not in state["operations"], "ARM refused it: nothing started"
