"""Rollback operators without a cloud: the automatic rollback's opt-in and the GCE disk names, and each
rollback task's decisions (what it reads, what it asks each cloud, what it records, how it retries)."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred
from botocore.exceptions import ClientError

from patchcycle.config.loader import default_tenants_dir, load_tenant
from patchcycle.config.models import RollbackPolicy, Tenant
from patchcycle.hooks import aws, azure_arc, backup_attestation, gcp_compute, gcp_osconfig
from patchcycle.operators.rollback import (
    RestoreHostsOperator,
    RollbackFailedHostsOperator,
    SelectRollbackOperator,
    VerifyRollbackOperator,
    restored_disk_name,
)
from patchcycle.reports.store import EvidenceStore, safe_run_segment

from .stand_ins import INFO, RUN_ID, MemoryBucket, cycle_context, recorded_events, run_key


def test_automatic_rollback_skips_a_tenant_that_did_not_opt_in() -> None:
    op = RollbackFailedHostsOperator(task_id="rollback", tenant_id="cu_alpha", environment="prod")
    tenant = load_tenant(default_tenants_dir() / "cu_alpha.yaml")
    assert tenant.rollback is None
    op.__dict__["tenant"] = tenant
    with pytest.raises(AirflowSkipException, match="not opted in"):
        op.targets(op.cycle_context({"dag_run": None}), log=None)
    assert op.automatic and op.deferrable


def test_automatic_rollback_skips_a_stage_not_in_the_run() -> None:
    op = RollbackFailedHostsOperator(task_id="rollback", tenant_id="cu_alpha", environment="prod")
    tenant = load_tenant(default_tenants_dir() / "cu_alpha.yaml")
    op.__dict__["tenant"] = tenant.model_copy(update={"rollback": RollbackPolicy(automatic=True)})

    class Ti:
        @staticmethod
        def xcom_pull(task_ids: str) -> dict:
            return {"dry_run": False, "environments": ["nonprod"], "cycle_date": "2026-11-22"}

    with pytest.raises(AirflowSkipException, match="prod is not part of this run"):
        op.targets(op.cycle_context({"ti": Ti(), "dag_run": None}), log=None)


@pytest.mark.parametrize("instance", ["t-gce-stg-db-01", "A" * 63, "web_01.example"])
def test_restored_disk_names_are_valid_and_stable(instance: str) -> None:
    name = restored_disk_name(instance, "cu_alpha|2026-11-22|run")
    assert re.fullmatch(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?", name), name
    assert name == restored_disk_name(instance, "cu_alpha|2026-11-22|run")
    assert name != restored_disk_name(instance, "cu_alpha|2026-11-22|other-run")


# -- the rollback's tasks, driven through execute ----------------------------------------------------
# The three rollback tasks (and the automatic one) run here against a stand-in for every cloud hook they
# build and the in-memory evidence bucket; the records they leave are read back from the bucket. The
# selection and verdict rules are the domain's (tests/domain/test_rollback.py); the end-to-end tests run
# the same tasks against fleetsim (tests/e2e/test_rollback.py).

CYCLE = INFO["cycle_date"]
SOURCE_RUN = "scheduled__2026-11-22T02:00:00+00:00"  # the cycle's run whose backups are restored
ROLLBACK_RUN = "manual__2026-11-23T09:00:00+00:00"
SUB = "6f1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a10"
ARC_ID = (
    f"/subscriptions/{SUB}/resourceGroups/rg-alpha-core/providers/Microsoft.HybridCompute/machines/arc-01"
)
DB_ARN = "arn:aws:rds:us-east-1:111111111111:db:ledger"
KERNEL = "5.15.0-119-generic"
OK = {"verdict": "succeeded"}  # the restore check's answer for a finished restore
REASON = "CHG-4711: the payment service fails after the patch"


def host(host_id: str, name: str, cloud: str, account: str, region: str, env: str, **more: Any) -> dict:
    return {
        "host_id": host_id,
        "name": name,
        "cloud": cloud,
        "account": account,
        "region": region,
        "environment": env,
        "kernel": None,
        **more,
    }


INVENTORY = [
    host("i-0a1", "web-01", "aws", "111111111111", "us-east-1", "prod"),
    host("i-0b2", "web-02", "aws", "111111111111", "us-east-1", "prod"),
    host(ARC_ID, "arc-01", "azure", SUB, "eastus", "prod", kernel=KERNEL, resource_group="rg-alpha-core"),
    host("4711", "gce-01", "gcp", "alpha-dr-standby", "us-central1-a", "staging", kernel=KERNEL),
    host(DB_ARN, "ledger", "aws", "111111111111", "us-east-1", "prod"),
]
BACKUPS = {
    "prod": {
        "i-0a1": {"kind": "ami", "backup_id": "ami-1", "state": "available", "ready": True},
        "i-0b2": {"kind": "ami", "backup_id": "ami-2", "state": "failed", "ready": False},
        ARC_ID: {"kind": "attestation", "backup_id": "bk-1", "state": "succeeded", "ready": True},
        DB_ARN: {"kind": "db_snapshot", "backup_id": "pc-ledger-1", "state": "available", "ready": True},
    },
    "staging": {"4711": {"kind": "disk_snapshot", "backup_id": "pc-1", "state": "READY", "ready": True}},
}
LEDGER = {
    "DBInstanceIdentifier": "ledger",
    "DBInstanceArn": DB_ARN,
    "DBInstanceClass": "db.t3.medium",
    "DBInstanceStatus": "available",
    "TagList": [{"Key": "Environment", "Value": "prod"}],
}


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "Call")


class Clouds:
    """Stands in for every hook the rollback builds (EC2, RDS, SSM, the backup system, GCE, OS Config,
    Arc): one object answers them all. It records each hook built (with its connection) and each call
    (method, arguments), raises the fault a test sets for a method, and answers reads from what the test
    set: SSM pings, Arc machines, GCE instances' status and kernels, RDS instances."""

    def __init__(self) -> None:
        self.hooks: list[tuple[str, dict[str, Any]]] = []
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.faults: dict[str, Exception] = {}
        self.pings: dict[str, str] = {}
        self.arc: dict[str, dict[str, Any]] = {}
        self.gce_status: dict[str, str] = {}
        self.gce_kernels: dict[str, str] = {}
        self.databases: dict[str, dict[str, Any]] = {}

    def hook(self, name: str) -> Any:
        def build(*args: Any, **kwargs: Any) -> Clouds:
            self.hooks.append((name, {**dict(enumerate(args)), **kwargs}))
            return self

        return build

    def called(self, method: str) -> list[tuple[Any, ...]]:
        return [args for m, args in self.calls if m == method]

    def _call(self, method: str, *args: Any) -> None:
        self.calls.append((method, args))
        if method in self.faults:
            raise self.faults[method]

    # EC2, SSM, RDS
    def replace_root_volume(self, instance_id: str, image_id: str, client_token: str, tags: dict) -> dict:
        self._call("replace_root_volume", instance_id, image_id, client_token, tags)
        return {"ReplaceRootVolumeTaskId": f"replacevol-{instance_id}"}

    def managed_instances(self) -> list[dict[str, Any]]:
        self._call("managed_instances")
        return [{"InstanceId": i, "PingStatus": s} for i, s in self.pings.items()]

    def db_instances_named(self, identifiers: list[str]) -> dict[str, dict[str, Any]]:
        self._call("db_instances_named", tuple(identifiers))
        return {i: self.databases[i] for i in identifiers if i in self.databases}

    def rename_db_instance(self, db_instance_id: str, new_id: str) -> dict[str, Any]:
        self._call("rename_db_instance", db_instance_id, new_id)
        self.databases[new_id] = {**self.databases.pop(db_instance_id), "DBInstanceIdentifier": new_id}
        return self.databases[new_id]

    def restore_from_snapshot(self, name: str, snapshot: str, like: dict, tags: dict) -> dict[str, Any]:
        self._call("restore_from_snapshot", name, snapshot, like, tags)
        if name in self.databases:
            raise client_error("DBInstanceAlreadyExists")
        self.databases[name] = {**like, "DBInstanceIdentifier": name, "DBInstanceStatus": "creating"}
        return self.databases[name]

    def db_instances(self) -> list[dict[str, Any]]:
        self._call("db_instances")
        return list(self.databases.values())

    # the backup system (Arc's backups)
    def request_restore(self, machine_id: str, backup_id: str, request_id: str, reason: str) -> dict:
        self._call("request_restore", machine_id, backup_id, request_id, reason)
        return {"restoreId": f"rs-{backup_id}", "status": "queued"}

    # GCE, OS Config
    def instance(self, zone: str, name: str) -> dict[str, Any]:
        self._call("instance", zone, name)
        return {
            "status": self.gce_status.get(name, "TERMINATED"),
            "disks": [{"boot": True, "deviceName": "boot"}],
        }

    def stop_instance(self, zone: str, instance: str, request_key: str) -> str:
        self._call("stop_instance", zone, instance, request_key)
        return "op-stop"

    def create_disk_from_snapshot(self, zone: str, disk: str, snapshot: str, labels: dict, key: str) -> str:
        self._call("create_disk_from_snapshot", zone, disk, snapshot, labels, key)
        return "op-disk"

    def detach_boot_disk(self, zone: str, instance: str, device_name: str, request_key: str) -> str:
        self._call("detach_boot_disk", zone, instance, device_name, request_key)
        return "op-detach"

    def attach_boot_disk(self, zone: str, instance: str, disk: str, device_name: str, key: str) -> str:
        self._call("attach_boot_disk", zone, instance, disk, device_name, key)
        return "op-attach"

    def start_instance(self, zone: str, instance: str, request_key: str) -> str:
        self._call("start_instance", zone, instance, request_key)
        return "op-start"

    def inventories(self, zone: str) -> list[dict[str, Any]]:
        self._call("inventories", zone)
        return [
            {"name": f"projects/p/locations/{zone}/instances/{i}/inventory", "osInfo": {"kernelRelease": k}}
            for i, k in self.gce_kernels.items()
        ]

    # Arc
    def machine(self, resource_group: str, name: str) -> dict[str, Any]:
        self._call("machine", resource_group, name)
        return {"properties": self.arc.get(name, {"status": "Disconnected"})}


@pytest.fixture
def clouds(monkeypatch: pytest.MonkeyPatch) -> Clouds:
    clouds = Clouds()
    for module, name in (
        (aws, "Ec2BackupHook"),
        (aws, "RdsHook"),
        (aws, "SsmFleetHook"),
        (backup_attestation, "BackupAttestationHook"),
        (gcp_compute, "DiskSnapshotHook"),
        (gcp_osconfig, "OsConfigHook"),
        (azure_arc, "ArcHook"),
    ):
        monkeypatch.setattr(module, name, clouds.hook(name))
    return clouds


@pytest.fixture
def bucket() -> MemoryBucket:
    return MemoryBucket()


def alpha(automatic: bool = False) -> Tenant:
    tenant = load_tenant(default_tenants_dir() / "cu_alpha.yaml")
    if automatic:
        tenant = tenant.model_copy(update={"rollback": RollbackPolicy(automatic=True)})
    return tenant


def task(cls: type, bucket: MemoryBucket, tenant: Tenant | None = None, **kwargs: Any) -> Any:
    """One of the rollback's tasks of cu_alpha, with the in-memory bucket as its evidence store."""
    op = cls(task_id=kwargs.pop("task_id", cls.__name__), tenant_id="cu_alpha", **kwargs)
    op.__dict__.update(tenant=tenant or alpha(), store=EvidenceStore(bucket, "evidence"))
    return op


def store_of(bucket: MemoryBucket) -> EvidenceStore:
    return EvidenceStore(bucket, "evidence")


def finished_run(bucket: MemoryBucket, run_id: str, finished_at: str | None, backups: dict = BACKUPS) -> None:
    """A run of the cycle as its tasks left it: the inventory, each stage's backup status, and (when it
    finished) the evidence pack."""
    store = store_of(bucket)
    store.put_record(run_key("inventory.json", run_id=run_id), INVENTORY, attempt=1)
    for env, status in backups.items():
        store.put_record(run_key(f"{env}/backup-status.json", run_id=run_id), status, attempt=1)
    if finished_at is not None:
        store.put_json(run_key("pack/evidence.json", run_id=run_id), {"cycle": {"finished_at": finished_at}})


def manual(hosts: list[str], *, attempt: int = 1, run_id: str = ROLLBACK_RUN, **more: Any) -> dict[str, Any]:
    """The rollback DAG's context: no plan task; the cycle, hosts and reason are the run's params."""
    params = {"cycle": CYCLE, "hosts": hosts, "reason": REASON, **more}
    return cycle_context(None, attempt=attempt, run_id=run_id, params=params)


def rollback_record(bucket: MemoryBucket, name: str, run_id: str = ROLLBACK_RUN) -> Any:
    """The latest attempt's record ``name`` of the manual rollback run (``None`` if none was written)."""
    return store_of(bucket).get_record(run_key(f"rollback/{name}", run_id=run_id))


def select(bucket: MemoryBucket, hosts: list[str], **kwargs: Any) -> Any:
    finished_run(bucket, SOURCE_RUN, "2026-11-22T06:00:00+00:00")
    return task(SelectRollbackOperator, bucket).execute(manual(hosts, **kwargs))


def start_restores(bucket: MemoryBucket, hosts: list[str]) -> tuple[RestoreHostsOperator, dict[str, Any]]:
    """Select ``hosts`` and start their restores; the restore task and its wait's payload."""
    select(bucket, hosts)
    op = task(RestoreHostsOperator, bucket)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(manual(hosts))
    return op, deferred.value.trigger.serialize()[1]["payload"]


def restored(bucket: MemoryBucket, verdicts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Select the hosts of ``verdicts`` (host id -> the restore check's answer), start their restores,
    and complete the wait with those answers; the restore task's result."""
    names = {r["host_id"]: r["name"] for r in INVENTORY}
    hosts = [names[h] for h in verdicts]
    op, _ = start_restores(bucket, hosts)
    return op.execute_complete(manual(hosts), {"status": "done", "hosts": verdicts})


# -- select ------------------------------------------------------------------------------------------
def test_the_selection_takes_each_hosts_backup_from_the_cycles_latest_finished_run(bucket) -> None:
    older = {
        **BACKUPS,
        "prod": {**BACKUPS["prod"], "i-0a1": {**BACKUPS["prod"]["i-0a1"], "backup_id": "ami-old"}},
    }
    unfinished = {
        **BACKUPS,
        "prod": {**BACKUPS["prod"], "i-0a1": {**BACKUPS["prod"]["i-0a1"], "backup_id": "ami-x"}},
    }
    finished_run(bucket, "scheduled__2026-11-22T01:00:00+00:00", "2026-11-22T04:00:00+00:00", older)
    finished_run(bucket, SOURCE_RUN, "2026-11-22T06:00:00+00:00")
    finished_run(bucket, "manual__2026-11-22T07:00:00+00:00", None, unfinished)  # never wrote a pack
    result = task(SelectRollbackOperator, bucket).execute(manual(["web-01", "arc-01"]))

    assert result["hosts"] == 2 and result["source_run"] == safe_run_segment(SOURCE_RUN)
    selection = rollback_record(bucket, "selection.json")
    assert {t["host_id"]: t["backup_id"] for t in selection["targets"]} == {"i-0a1": "ami-1", ARC_ID: "bk-1"}
    assert (selection["reason"], selection["requested"]) == (REASON, ["web-01", "arc-01"])
    selected = [e for e in recorded_events(bucket) if e["action"] == "rollback.selected"]
    assert sorted(e["target"] for e in selected) == sorted(["i-0a1", ARC_ID])


def test_a_request_naming_a_host_without_a_completed_backup_is_refused_whole(bucket, clouds) -> None:
    with pytest.raises(AirflowFailException, match=r"web-02 \(i-0b2\).*ami-2\) is failed"):
        select(bucket, ["web-01", "web-02"])
    assert rollback_record(bucket, "selection.json") is None, "nothing is selected, not even web-01"
    (refused,) = [e for e in recorded_events(bucket) if e["action"] == "rollback.refused"]
    assert refused["result"] == "refused" and "web-02" in refused["details"]["reasons"][0]
    assert clouds.calls == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reason": "  "}, "a rollback needs a reason"),
        ({"conf": {"cycle": CYCLE, "hosts": ["web-01"], "reason": "x", "dry_run": True}}, "'dry_run'"),
    ],
)
def test_a_request_without_a_reason_or_with_a_key_the_dag_does_not_take_restores_nothing(
    bucket, changes, message
) -> None:
    finished_run(bucket, SOURCE_RUN, "2026-11-22T06:00:00+00:00")
    context = manual(["web-01"], reason=changes.get("reason", REASON))
    context["dag_run"] = SimpleNamespace(conf=changes.get("conf"), triggering_user_name=None)
    with pytest.raises(AirflowFailException, match=message):
        task(SelectRollbackOperator, bucket).execute(context)
    assert rollback_record(bucket, "selection.json") is None


def test_a_cycle_without_a_finished_run_has_no_backups_to_roll_back_from(bucket) -> None:
    finished_run(bucket, SOURCE_RUN, None)
    with pytest.raises(AirflowFailException, match="cycle 2026-11-22 of tenant cu_alpha has no finished run"):
        task(SelectRollbackOperator, bucket).execute(manual(["web-01"]))
    assert rollback_record(bucket, "selection.json") is None


# -- restore -----------------------------------------------------------------------------------------
def test_each_hosts_restore_starts_through_its_own_clouds_api_and_is_recorded_before_the_wait(
    bucket, clouds
) -> None:
    _, payload = start_restores(bucket, ["web-01", "arc-01", "gce-01"])

    ((instance, image, _, tags),) = clouds.called("replace_root_volume")
    assert (instance, image, tags["patchcycle:tenant"]) == ("i-0a1", "ami-1", "cu_alpha")
    ((machine, backup, _, reason),) = clouds.called("request_restore")
    assert (machine, backup, reason) == (ARC_ID, "bk-1", REASON)
    ((zone, name, _),) = clouds.called("stop_instance")
    ((_, disk, snapshot, _, _),) = clouds.called("create_disk_from_snapshot")
    assert (zone, name, snapshot) == ("us-central1-a", "gce-01", "pc-1") and disk.startswith("gce-01-rb-")
    built = {name: kwargs for name, kwargs in clouds.hooks}
    assert built["Ec2BackupHook"] == {"aws_conn_id": "aws_cu_alpha", "region_name": "us-east-1"}
    assert built["DiskSnapshotHook"] == {"gcp_conn_id": "gcp_cu_alpha", "project_id": "alpha-dr-standby"}
    assert built["BackupAttestationHook"] == {0: "backup_cu_alpha"}

    state = store_of(bucket).get_record(run_key("rollback/restores.json", run_id=ROLLBACK_RUN))
    assert {h: (s["state"], s["restore_id"]) for h, s in state["hosts"].items()} == {
        "i-0a1": ("pending", "replacevol-i-0a1"),
        ARC_ID: ("pending", "rs-bk-1"),
        "4711": ("pending", "op-disk"),
    }
    assert state["hosts"]["4711"]["device_name"] == "boot"
    assert sorted(payload["hosts"]) == sorted(state["hosts"])
    started = [e["target"] for e in recorded_events(bucket) if e["action"] == "rollback.restore_started"]
    assert sorted(started) == sorted(state["hosts"])


def test_a_retried_restore_asks_each_cloud_with_the_same_idempotency_token(bucket, clouds) -> None:
    op, _ = start_restores(bucket, ["web-01", "arc-01", "gce-01"])
    with pytest.raises(TaskDeferred):
        op.execute(manual(["web-01", "arc-01", "gce-01"], attempt=2))

    ec2 = [token for _, _, token, _ in clouds.called("replace_root_volume")]
    arc = [token for _, _, token, _ in clouds.called("request_restore")]
    gce = [token for _, _, token in clouds.called("stop_instance")]
    disks = [disk for _, disk, _, _, _ in clouds.called("create_disk_from_snapshot")]
    assert len(ec2) == len(arc) == len(gce) == len(disks) == 2
    assert ec2[0] == ec2[1] and arc[0] == arc[1] and gce[0] == gce[1] and disks[0] == disks[1]
    assert len({ec2[0], arc[0], gce[0]}) == 3, "one token per host"
    keys = [k for k in bucket.objects if "/rollback/restores." in k]
    assert [k.rsplit("/", 1)[1] for k in sorted(keys)] == [
        "restores.try-1.step-0000.json",
        "restores.try-2.step-0000.json",
    ]


def test_another_rollback_run_of_the_same_host_is_a_new_restore(bucket, clouds) -> None:
    start_restores(bucket, ["web-01"])
    again = "manual__2026-11-24T09:00:00+00:00"
    task(SelectRollbackOperator, bucket).execute(manual(["web-01"], run_id=again))
    with pytest.raises(TaskDeferred):
        task(RestoreHostsOperator, bucket).execute(manual(["web-01"], run_id=again))
    first, second = (token for _, _, token, _ in clouds.called("replace_root_volume"))
    assert first != second


def test_a_host_whose_restore_cannot_start_is_failed_and_the_other_hosts_go_on(bucket, clouds) -> None:
    clouds.faults["replace_root_volume"] = client_error("IncorrectInstanceState")
    _, payload = start_restores(bucket, ["web-01", "arc-01"])

    assert list(payload["hosts"]) == [ARC_ID], "only the started restore is waited on"
    state = store_of(bucket).get_record(run_key("rollback/restores.json", run_id=ROLLBACK_RUN))
    web = state["hosts"]["i-0a1"]
    assert web["state"] == "failed" and web["reason"].startswith("restore could not start")
    assert "IncorrectInstanceState" in web["reason"]
    assert state["hosts"][ARC_ID]["state"] == "pending"
    (failed,) = [e for e in recorded_events(bucket) if e["action"] == "rollback.restore_failed"]
    assert (failed["target"], failed["result"]) == ("i-0a1", "failed")


def test_without_a_selection_the_restore_fails_before_asking_any_cloud(bucket, clouds) -> None:
    with pytest.raises(RuntimeError, match="no attempt has written this record"):
        task(RestoreHostsOperator, bucket).execute(manual(["web-01"]))
    assert clouds.calls == []


def test_a_selection_of_no_host_skips_the_restore(bucket, clouds) -> None:
    key = run_key("rollback/selection.json", run_id=ROLLBACK_RUN)
    store_of(bucket).put_record(key, {"source_run": SOURCE_RUN, "targets": []}, attempt=1)
    with pytest.raises(AirflowSkipException, match="no host to roll back"):
        task(RestoreHostsOperator, bucket).execute(manual(["web-01"]))
    assert clouds.calls == []


def test_a_gce_instance_is_walked_through_its_steps_as_each_one_finishes(bucket, clouds) -> None:
    op, _ = start_restores(bucket, ["gce-01"])
    context = manual(["gce-01"])
    ((_, disk, _, _, _),) = clouds.called("create_disk_from_snapshot")
    ((_, _, token),) = clouds.called("stop_instance")
    step_done = {"status": "wake", "hosts": {"4711": {"verdict": "step_done"}}}
    operations = []
    for _ in range(3):
        with pytest.raises(TaskDeferred) as deferred:
            op.execute_complete(context, step_done)
        operations += deferred.value.trigger.serialize()[1]["payload"]["hosts"]["4711"]["ops"]

    assert operations == ["op-detach", "op-attach", "op-start"]
    assert clouds.called("detach_boot_disk") == [("us-central1-a", "gce-01", "boot", token)]
    assert clouds.called("attach_boot_disk") == [("us-central1-a", "gce-01", disk, "boot", token)]
    assert clouds.called("start_instance") == [("us-central1-a", "gce-01", token)]
    assert op.execute_complete(context, {"status": "done", "hosts": {"4711": OK}}) == {
        "restored": 1,
        "failed": 0,
    }
    keys = sorted(k.rsplit("/", 1)[1] for k in bucket.objects if "/rollback/restores." in k)
    assert keys == [f"restores.try-1.step-{n:04d}.json" for n in range(5)], "one record per round"
    final = store_of(bucket).get_record(run_key("rollback/restores.json", run_id=ROLLBACK_RUN))
    assert (final["hosts"]["4711"]["state"], final["hosts"]["4711"]["step"]) == ("succeeded", "start")
    steps = [e["details"]["step"] for e in recorded_events(bucket) if e["action"] == "rollback.step"]
    assert steps == ["detach", "attach", "start"]


def test_a_gce_step_the_cloud_refuses_fails_that_host(bucket, clouds) -> None:
    op, _ = start_restores(bucket, ["gce-01"])
    clouds.faults["detach_boot_disk"] = RuntimeError("409 resourceInUseByAnotherResource")
    result = op.execute_complete(
        manual(["gce-01"]), {"status": "wake", "hosts": {"4711": {"verdict": "step_done"}}}
    )
    assert result == {"restored": 0, "failed": 1}
    state = store_of(bucket).get_record(run_key("rollback/restores.json", run_id=ROLLBACK_RUN))
    assert state["hosts"]["4711"]["state"] == "failed"
    assert (
        state["hosts"]["4711"]["reason"]
        == "GCE step after prepare failed: 409 resourceInUseByAnotherResource"
    )


def test_a_restore_reported_failed_keeps_the_clouds_reason_and_a_timeout_fails_the_rest(
    bucket, clouds
) -> None:
    op, _ = start_restores(bucket, ["web-01", "arc-01"])
    failed = {"verdict": "failed", "detail": "root volume task replacevol-i-0a1 failed"}
    event = {"status": "timeout", "hosts": {"i-0a1": failed, ARC_ID: {"verdict": "pending"}}}
    assert op.execute_complete(manual(["web-01", "arc-01"]), event) == {"restored": 0, "failed": 2}

    state = store_of(bucket).get_record(run_key("rollback/restores.json", run_id=ROLLBACK_RUN))
    assert state["hosts"]["i-0a1"]["reason"] == "root volume task replacevol-i-0a1 failed"
    assert state["hosts"][ARC_ID]["state"] == "timed_out"
    assert state["hosts"][ARC_ID]["reason"] == "restore still restore when the wait ended"
    actions = {e["target"]: e["action"] for e in recorded_events(bucket) if e["result"] == "failed"}
    assert actions == {"i-0a1": "rollback.restore_failed", ARC_ID: "rollback.restore_timed_out"}


def test_an_event_the_wait_never_sends_fails_the_restore(bucket, clouds) -> None:
    op, _ = start_restores(bucket, ["web-01"])
    with pytest.raises(AirflowFailException, match="unexpected trigger event"):
        op.execute_complete(manual(["web-01"]), {"status": "error", "message": "boom"})


# -- RDS ---------------------------------------------------------------------------------------------
def test_a_database_is_renamed_aside_and_its_snapshot_restored_under_its_own_name(bucket, clouds) -> None:
    clouds.databases = {"ledger": dict(LEDGER)}
    _, payload = start_restores(bucket, ["ledger"])

    ((old, aside),) = clouds.called("rename_db_instance")
    assert old == "ledger" and aside.startswith("ledger-pre-rollback-")
    ((name, snapshot, like, tags),) = clouds.called("restore_from_snapshot")
    assert (name, snapshot, like["DBInstanceClass"], tags) == (
        "ledger",
        "pc-ledger-1",
        "db.t3.medium",
        {"Environment": "prod"},
    )
    state = store_of(bucket).get_record(run_key("rollback/restores.json", run_id=ROLLBACK_RUN))
    db = state["hosts"][DB_ARN]
    assert (db["state"], db["kind"], db["renamed_to"], db["ops"]) == (
        "pending",
        "db_snapshot",
        aside,
        ["ledger"],
    )
    assert list(payload["hosts"]) == [DB_ARN]


def test_a_retry_after_the_rename_restores_without_renaming_twice(bucket, clouds) -> None:
    clouds.databases = {"ledger": dict(LEDGER)}
    clouds.faults["restore_from_snapshot"] = client_error("Throttling")
    select(bucket, ["ledger"])
    op = task(RestoreHostsOperator, bucket)
    # Renamed, then the restore call failed: nothing to wait on, the host failed.
    assert op.execute(manual(["ledger"])) == {"restored": 0, "failed": 1}
    del clouds.faults["restore_from_snapshot"]
    with pytest.raises(TaskDeferred):
        op.execute(manual(["ledger"], attempt=2))
    # A third attempt after the restore did start (its answer lost): the name is taken by the restore.
    with pytest.raises(TaskDeferred):
        op.execute(manual(["ledger"], attempt=3))

    assert len(clouds.called("rename_db_instance")) == 1
    assert len(clouds.called("restore_from_snapshot")) == 3
    state = store_of(bucket).get_record(run_key("rollback/restores.json", run_id=ROLLBACK_RUN))
    assert state["hosts"][DB_ARN]["state"] == "pending"


def test_a_new_rollback_run_restores_a_database_an_earlier_run_left_renamed_aside(bucket, clouds) -> None:
    """The first rollback run renamed the database aside and its restore call failed: a new run (its own
    aside name) finds the instance set aside by the name's stem and restores over it, renaming nothing."""
    clouds.databases = {"ledger": dict(LEDGER)}
    clouds.faults["restore_from_snapshot"] = client_error("Throttling")
    select(bucket, ["ledger"])
    assert task(RestoreHostsOperator, bucket).execute(manual(["ledger"])) == {"restored": 0, "failed": 1}
    ((_, first_aside),) = clouds.called("rename_db_instance")
    del clouds.faults["restore_from_snapshot"]

    later = "manual__2026-11-25T09:00:00+00:00"
    task(SelectRollbackOperator, bucket).execute(manual(["ledger"], run_id=later))
    with pytest.raises(TaskDeferred):
        task(RestoreHostsOperator, bucket).execute(manual(["ledger"], run_id=later))

    assert len(clouds.called("rename_db_instance")) == 1
    (_, (name, snapshot, like, _tags)) = clouds.called("restore_from_snapshot")
    assert (name, snapshot, like["DBInstanceIdentifier"]) == ("ledger", "pc-ledger-1", first_aside)
    state = store_of(bucket).get_record(run_key("rollback/restores.json", run_id=later))
    assert (state["hosts"][DB_ARN]["state"], state["hosts"][DB_ARN]["renamed_to"]) == ("pending", first_aside)


def test_a_database_missing_from_its_region_fails_its_restore(bucket, clouds) -> None:
    select(bucket, ["ledger"])
    result = task(RestoreHostsOperator, bucket).execute(manual(["ledger"]))
    assert result == {"restored": 0, "failed": 1}
    state = store_of(bucket).get_record(run_key("rollback/restores.json", run_id=ROLLBACK_RUN))
    assert (
        "DB instance ledger is not in us-east-1; nothing to restore over" in state["hosts"][DB_ARN]["reason"]
    )
    assert clouds.called("rename_db_instance") == [] and clouds.called("restore_from_snapshot") == []


# -- verify ------------------------------------------------------------------------------------------
def test_hosts_restored_and_back_on_the_backups_kernel_are_recorded_rolled_back(bucket, clouds) -> None:
    restored(bucket, {"i-0a1": OK, ARC_ID: OK, "4711": OK})
    clouds.pings = {"i-0a1": "Online"}
    clouds.arc = {"arc-01": {"status": "Connected", "osVersion": KERNEL}}
    clouds.gce_status, clouds.gce_kernels = {"gce-01": "RUNNING"}, {"4711": KERNEL}
    result = task(VerifyRollbackOperator, bucket).execute(manual(["web-01", "arc-01", "gce-01"]))

    assert result["rolled_back"] == 3
    record = rollback_record(bucket, "rollback.json")
    assert result["record_url"].endswith(run_key("rollback/rollback.try-1.json", run_id=ROLLBACK_RUN))
    assert (record["outcome"], record["trigger"], record["reason"]) == ("succeeded", "manual", REASON)
    assert record["source_run"] == safe_run_segment(SOURCE_RUN)
    hosts = {h["host_id"]: h for h in record["hosts"]}
    assert {h: (v["result"], v["backup_id"]) for h, v in hosts.items()} == {
        "i-0a1": ("rolled_back", "ami-1"),
        ARC_ID: ("rolled_back", "bk-1"),
        "4711": ("rolled_back", "pc-1"),
    }
    assert hosts[ARC_ID]["kernel_after"] == KERNEL and hosts["4711"]["kernel_after"] == KERNEL
    verified = [e for e in recorded_events(bucket) if e["action"] == "rollback.verified"]
    assert sorted(e["target"] for e in verified) == sorted(hosts)


def test_a_host_whose_restore_failed_is_named_in_the_rollback_record_and_fails_the_task(
    bucket, clouds
) -> None:
    failed = {"verdict": "failed", "detail": "root volume task replacevol-i-0a1 failed"}
    restored(bucket, {"i-0a1": failed, ARC_ID: OK})
    clouds.arc = {"arc-01": {"status": "Connected", "osVersion": KERNEL}}
    with pytest.raises(AirflowFailException, match="web-01: root volume task replacevol-i-0a1 failed"):
        task(VerifyRollbackOperator, bucket).execute(manual(["web-01", "arc-01"]))

    record = rollback_record(bucket, "rollback.json")
    assert record["outcome"] == "failed" and record["summary"] == {"hosts": 2, "rolled_back": 1, "failed": 1}
    hosts = {h["host_id"]: h for h in record["hosts"]}
    assert hosts["i-0a1"]["result"] == "rollback_failed"
    assert hosts["i-0a1"]["reason"] == "root volume task replacevol-i-0a1 failed"
    assert clouds.called("managed_instances") == [], "a host not restored is not read back"


def test_a_restored_host_offline_or_on_another_kernel_is_not_rolled_back(bucket, clouds) -> None:
    restored(bucket, {"i-0a1": OK, ARC_ID: OK, "4711": OK})
    clouds.pings = {"i-0a1": "ConnectionLost"}
    clouds.arc = {"arc-01": {"status": "Connected", "osVersion": "5.15.0-125-generic"}}
    clouds.gce_status = {"gce-01": "RUNNING"}  # but its agent reports no inventory
    with pytest.raises(AirflowFailException, match="rollback of 3 host"):
        task(VerifyRollbackOperator, bucket).execute(manual(["web-01", "arc-01", "gce-01"]))

    reasons = {h["host_id"]: h["reason"] for h in rollback_record(bucket, "rollback.json")["hosts"]}
    assert reasons == {
        "i-0a1": "restored, but the host is not back online",
        ARC_ID: f"restored, but it runs kernel 5.15.0-125-generic, not the backup's {KERNEL}",
        "4711": "restored, but the host is not back online",
    }


def test_verify_without_the_restores_record_fails_and_records_no_rollback(bucket, clouds) -> None:
    select(bucket, ["web-01"])
    with pytest.raises(RuntimeError, match="no attempt has written this record"):
        task(VerifyRollbackOperator, bucket).execute(manual(["web-01"]))
    assert rollback_record(bucket, "rollback.json") is None and clouds.calls == []


def test_a_restored_database_is_rolled_back_once_available_under_its_name(bucket, clouds) -> None:
    clouds.databases = {"ledger": dict(LEDGER)}
    restored(bucket, {DB_ARN: OK})
    clouds.databases["ledger"]["DBInstanceStatus"] = "available"
    task(VerifyRollbackOperator, bucket).execute(manual(["ledger"]))
    (db,) = rollback_record(bucket, "rollback.json")["hosts"]
    assert (db["result"], db["online"]) == ("rolled_back", True)


# -- automatic, in the cycle -------------------------------------------------------------------------
PROD = {**INFO, "environments": ["prod"]}


def failed_stage(bucket: MemoryBucket, hosts: dict[str, str]) -> None:
    """The cycle run's records an automatic rollback reads: the inventory, the prod stage's verified
    record (each host's final state) and its backup status."""
    store = store_of(bucket)
    store.put_record(run_key("inventory.json"), INVENTORY, attempt=1)
    stage = {"status": "failed", "hosts": {h: {"final_state": s} for h, s in hosts.items()}}
    store.put_record(run_key("prod/stage.json"), stage, attempt=1)
    store.put_record(run_key("prod/backup-status.json"), BACKUPS["prod"], attempt=1)


def automatic(bucket: MemoryBucket) -> RollbackFailedHostsOperator:
    return task(
        RollbackFailedHostsOperator,
        bucket,
        alpha(automatic=True),
        task_id="prod.rollback",
        environment="prod",
    )


def test_automatic_rollback_restores_only_the_stages_failed_hosts_and_records_under_the_stage(
    bucket, clouds
) -> None:
    failed_stage(bucket, {"i-0a1": "failed", ARC_ID: "patched"})
    op = automatic(bucket)
    with pytest.raises(TaskDeferred):
        op.execute(cycle_context(PROD))
    assert [args[:2] for args in clouds.called("replace_root_volume")] == [("i-0a1", "ami-1")]
    assert clouds.called("request_restore") == [], "the patched Arc machine is left alone"

    clouds.pings = {"i-0a1": "Online"}
    result = op.execute_complete(cycle_context(PROD), {"status": "done", "hosts": {"i-0a1": OK}})
    assert result["rolled_back"] == 1
    assert result["record_url"].endswith(run_key("prod/rollback/rollback.try-1.json"))
    record = store_of(bucket).get_record(run_key("prod/rollback/rollback.json"))
    assert (record["trigger"], record["source_run"]) == ("automatic", RUN_ID)
    assert record["reason"] == "automatic rollback of the failed hosts of stage prod"
    assert [h["host_id"] for h in record["hosts"]] == ["i-0a1"]


def test_automatic_rollback_of_a_stage_without_a_failed_host_is_skipped_before_any_cloud_call(
    bucket, clouds
) -> None:
    failed_stage(bucket, {"i-0a1": "patched", ARC_ID: "held"})
    with pytest.raises(AirflowSkipException, match="no failed host in stage prod"):
        automatic(bucket).execute(cycle_context(PROD))
    assert clouds.calls == []


def test_automatic_rollback_refuses_a_failed_host_without_a_completed_backup(bucket, clouds) -> None:
    failed_stage(bucket, {"i-0a1": "failed", "i-0b2": "failed"})
    with pytest.raises(AirflowFailException, match=r"web-02 \(i-0b2\)"):
        automatic(bucket).execute(cycle_context(PROD))
    assert clouds.calls == [], "one host refused: none is restored"


def test_an_automatic_rollback_that_leaves_a_host_offline_records_it_and_fails(bucket, clouds) -> None:
    failed_stage(bucket, {"i-0a1": "failed"})
    op = automatic(bucket)
    with pytest.raises(TaskDeferred):
        op.execute(cycle_context(PROD))
    clouds.pings = {"i-0a1": "ConnectionLost"}
    with pytest.raises(AirflowFailException, match="automatic rollback of stage prod: 1 host"):
        op.execute_complete(cycle_context(PROD), {"status": "done", "hosts": {"i-0a1": OK}})
    record = store_of(bucket).get_record(run_key("prod/rollback/rollback.json"))
    assert record["outcome"] == "failed"
    assert record["hosts"][0]["reason"] == "restored, but the host is not back online"
