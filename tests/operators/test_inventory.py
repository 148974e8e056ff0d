"""The inventory tasks' decisions without a cloud: each scope of a cloud read on its own (one that does not
answer is recorded failed and the others go on; an error that is not the cloud's fails the task), RDS read
only where an account declares it, Falcon's answer or its absence recorded, the merge's failed scopes,
and the pre-flight gate's record, halts and once-per-cycle mail. Normalizing the clouds' answers and the
gates themselves are the domain's (tests/domain/test_inventory*.py, test_preflight.py); the end-to-end
tests run these tasks against fleetsim.

The hooks are replaced by stand-ins answering per scope, the evidence bucket by the in-memory one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException
from botocore.exceptions import ClientError
from google.api_core.exceptions import GoogleAPIError

from patchcycle.config.exceptions import EXCEPTIONS_DIR_ENV
from patchcycle.config.loader import default_tenants_dir
from patchcycle.config.models import Tenant
from patchcycle.hooks import aws, azure_arc, falcon, gcp_compute, gcp_osconfig
from patchcycle.hooks.azure_arc import ArcError
from patchcycle.hooks.falcon import FalconApiError
from patchcycle.operators.inventory import (
    CloudInventoryOperator,
    FalconInventoryOperator,
    MergeInventoryOperator,
    PreflightOperator,
)
from patchcycle.reports.store import EvidenceStore
from tests.domain.evidence_packs import HostSpec, inventory_row

from .stand_ins import Mail, MemoryBucket, cycle_context, recorded_events, run_key, with_plan

ACCOUNT = "111111111111"
SUB, SUB_2 = "6f1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a10", "0b7d3c2a-1111-4c1e-9a52-0c3f6e7d8a20"
PROJECT, PROJECT_2 = "alpha-dr-standby", "alpha-dr-2"


def alpha(**changes: Any) -> Tenant:
    """cu_alpha with two scopes in each cloud (two AWS regions, Azure subscriptions, GCP projects) and
    ``changes`` to its top-level facts."""
    data = yaml.safe_load((default_tenants_dir() / "cu_alpha.yaml").read_text())
    clouds = data["clouds"]
    clouds["aws"]["accounts"][0]["regions"] = ["us-east-1", "us-west-2"]
    clouds["azure"]["subscriptions"].append({"subscription_id": SUB_2, "resource_groups": ["rg-alpha-edge"]})
    clouds["gcp"]["projects"].append({"project_id": PROJECT_2, "zones": ["us-east1-b"]})
    return Tenant.model_validate({**data, **changes})


class Fleet:
    """What each scope of the tenant answers, for the stand-ins of the hooks the inventory builds: SSM
    managed instances, EC2 tags and RDS instances per region, Falcon's devices. A scope (region,
    subscription, project, or ``falcon``) listed in ``down`` raises that error instead. ``asked`` lists
    each scope asked, with the hook that asked."""

    def __init__(self) -> None:
        self.instances: dict[str, list[dict[str, Any]]] = {}
        self.tags: dict[str, dict[str, dict[str, str]]] = {}
        self.databases: dict[str, list[dict[str, Any]]] = {}
        self.devices: list[dict[str, Any]] = []
        self.down: dict[str, BaseException] = {}
        self.asked: list[tuple[str, str]] = []

    def ask(self, hook: str, scope: str) -> None:
        self.asked.append((hook, scope))
        if scope in self.down:
            raise self.down[scope]


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch) -> Fleet:
    fleet = Fleet()

    class Ssm:
        def __init__(self, aws_conn_id: str, region_name: str) -> None:
            self.region = region_name

        def managed_instances(self) -> list[dict[str, Any]]:
            fleet.ask("SsmFleetHook", self.region)
            return fleet.instances.get(self.region, [])

        def patch_states(self, ids: list[str]) -> dict[str, dict[str, Any]]:
            return {i: {"MissingCount": 2, "InstalledCount": 400, "Operation": "Scan"} for i in ids}

    class Ec2:
        def __init__(self, aws_conn_id: str, region_name: str) -> None:
            self.region = region_name

        def instance_tags(self, keys: list[str]) -> dict[str, dict[str, str]]:
            return fleet.tags.get(self.region, {})

    class Rds:
        def __init__(self, aws_conn_id: str, region_name: str) -> None:
            self.region = region_name

        def db_instances(self) -> list[dict[str, Any]]:
            fleet.ask("RdsHook", self.region)
            return fleet.databases.get(self.region, [])

        def pending_os_updates(self) -> dict[str, dict[str, Any]]:
            return {}

    class Arc:
        def __init__(self, azure_conn_id: str, subscription_id: str) -> None:
            self.subscription = subscription_id

        def machines(self, resource_group: str) -> list[dict[str, Any]]:
            fleet.ask("ArcHook", self.subscription)
            return []

        def patch_assessments(self, resource_groups: list[str]) -> dict[str, dict[str, Any]]:
            return {}

    class Compute:
        def __init__(self, gcp_conn_id: str, project_id: str) -> None:
            self.project = project_id

        def instances(self, zone: str) -> list[dict[str, Any]]:
            fleet.ask("DiskSnapshotHook", self.project)
            return []

    class OsConfig:
        def __init__(self, gcp_conn_id: str, project_id: str) -> None:
            self.project = project_id

        def inventories(self, zone: str) -> list[dict[str, Any]]:
            return []

        def vulnerability_reports(self, zone: str) -> list[dict[str, Any]]:
            return []

    class Falcon:
        def __init__(self, falcon_conn_id: str) -> None:
            self.conn_id = falcon_conn_id

        def devices(self) -> list[dict[str, Any]]:
            fleet.ask("FalconHook", "falcon")
            return fleet.devices

    for module, name, stand_in in (
        (aws, "SsmFleetHook", Ssm),
        (aws, "Ec2BackupHook", Ec2),
        (aws, "RdsHook", Rds),
        (azure_arc, "ArcHook", Arc),
        (gcp_compute, "DiskSnapshotHook", Compute),
        (gcp_osconfig, "OsConfigHook", OsConfig),
        (falcon, "FalconHook", Falcon),
    ):
        monkeypatch.setattr(module, name, stand_in)
    return fleet


@pytest.fixture
def bucket() -> MemoryBucket:
    return MemoryBucket()


def task(cls: type, bucket: MemoryBucket, tenant: Tenant | None = None, **kwargs: Any) -> Any:
    op = cls(task_id=kwargs.pop("task_id", "inventory"), tenant_id="cu_alpha", **kwargs)
    op.__dict__.update(tenant=tenant or alpha(), store=EvidenceStore(bucket, "evidence"))
    return op


def record(bucket: MemoryBucket, name: str) -> Any:
    """The latest attempt's record ``name`` of the run."""
    return EvidenceStore(bucket, "evidence").get_record(run_key(name))


def ssm_host(instance_id: str, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """An SSM managed instance and its EC2 tags."""
    info = {
        "InstanceId": instance_id,
        "PlatformName": "Amazon Linux",
        "PlatformVersion": "2",
        "PingStatus": "Online",
    }
    return info, {"Name": name, "Environment": "nonprod"}


def cloud_task(bucket: MemoryBucket, cloud: str, tenant: Tenant | None = None) -> tuple[Any, dict[str, Any]]:
    """The inventory task of ``cloud`` and its context (the run's plan stored where the plan task puts it)."""
    info = with_plan(EvidenceStore(bucket, "evidence"), {"approved": {}})
    op = task(CloudInventoryOperator, bucket, tenant, task_id=f"inventory_{cloud}", cloud=cloud)
    return op, cycle_context(info)


# -- one cloud's scopes ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cloud", "scope", "error", "failed", "answered"),
    [
        ("aws", "us-east-1", ClientError({"Error": {"Code": "Throttling"}}, "DescribeInstanceInformation"),
         f"aws:{ACCOUNT}:us-east-1", f"aws:{ACCOUNT}:us-west-2"),
        ("azure", SUB, ArcError("listing machines: 503"), f"azure:{SUB}", f"azure:{SUB_2}"),
        ("gcp", PROJECT, GoogleAPIError("quota exceeded"), f"gcp:{PROJECT}", f"gcp:{PROJECT_2}"),
    ],
)  # fmt: skip
def test_a_scope_whose_cloud_does_not_answer_is_recorded_failed_and_the_other_scopes_go_on(
    bucket, fleet, cloud, scope, error, failed, answered
) -> None:
    fleet.down[scope] = error
    op, context = cloud_task(bucket, cloud)
    assert op.execute(context) == {"hosts": 0, "failed_scopes": 1}

    scopes = {s["scope"]: s for s in record(bucket, f"inventory/{cloud}.json")["scopes"]}
    assert set(scopes) == {failed, answered}
    assert scopes[answered]["status"] == "ok"
    assert scopes[failed]["status"] == "failed"
    assert scopes[failed]["error"] == f"{type(error).__name__}: {error}"
    (event,) = [e for e in recorded_events(bucket) if e["action"] == "inventory.scope_failed"]
    assert (event["target"], event["result"]) == (failed, "failed")


def test_an_error_that_is_not_the_clouds_fails_the_task_instead_of_a_scope(bucket, fleet) -> None:
    fleet.down["us-west-2"] = KeyError("InstanceId")
    op, context = cloud_task(bucket, "aws")
    with pytest.raises(KeyError):
        op.execute(context)
    assert record(bucket, "inventory/aws.json") is None, "no inventory that silently lacks a region"


def test_each_answering_scope_contributes_its_hosts_and_its_counts(bucket, fleet) -> None:
    web, web_tags = ssm_host("i-0a1", "web-01")
    fleet.instances = {"us-east-1": [web]}
    # An instance tagged for the cycle that SSM does not know: inventoried so pre-flight can hold it.
    fleet.tags = {"us-east-1": {"i-0a1": web_tags, "i-0ff": {"Name": "lost-01", "Environment": "nonprod"}}}
    op, context = cloud_task(bucket, "aws")
    assert op.execute(context) == {"hosts": 2, "failed_scopes": 0}

    inventory = record(bucket, "inventory/aws.json")
    assert [(r["host_id"], r["name"], r["agent_status"]) for r in inventory["rows"]] == [
        ("i-0a1", "web-01", "Online"),
        ("i-0ff", "lost-01", "NotRegistered"),
    ]
    assert [(s["scope"], s["hosts"], s["managed_instances"]) for s in inventory["scopes"]] == [
        (f"aws:{ACCOUNT}:us-east-1", 2, 1),
        (f"aws:{ACCOUNT}:us-west-2", 0, 0),
    ]
    collected = [e["target"] for e in recorded_events(bucket) if e["action"] == "inventory.collected"]
    assert collected == [f"aws:{ACCOUNT}:us-east-1", f"aws:{ACCOUNT}:us-west-2"]


@pytest.mark.parametrize("rds", [True, False])
def test_an_accounts_databases_are_inventoried_only_when_it_declares_rds(bucket, fleet, rds) -> None:
    fleet.databases = {
        "us-east-1": [
            {
                "DBInstanceIdentifier": "ledger",
                "DBInstanceArn": f"arn:aws:rds:us-east-1:{ACCOUNT}:db:ledger",
                "DBInstanceStatus": "available",
                "TagList": [{"Key": "Environment", "Value": "prod"}],
            }
        ]
    }
    accounts = [{"account_id": ACCOUNT, "regions": ["us-east-1"], "rds": rds}]
    op, context = cloud_task(bucket, "aws", alpha(clouds={"aws": {"accounts": accounts}}))
    op.execute(context)

    (scope,) = record(bucket, "inventory/aws.json")["scopes"]
    rows = record(bucket, "inventory/aws.json")["rows"]
    if rds:
        assert [r["name"] for r in rows] == ["ledger"] and scope["db_instances"] == 1
    else:
        assert rows == [] and "db_instances" not in scope
        assert ("RdsHook", "us-east-1") not in fleet.asked


# -- Falcon ------------------------------------------------------------------------------------------
def test_falcons_devices_are_recorded_for_the_merge(bucket, fleet) -> None:
    fleet.devices = [{"device_id": "d-1", "hostname": "web-01"}]
    result = task(FalconInventoryOperator, bucket).execute(cycle_context())
    assert result == {"devices": 1, "status": "ok"}
    assert record(bucket, "inventory/falcon.json") == {
        "devices": fleet.devices,
        "status": "ok",
        "error": None,
    }


def test_falcon_that_does_not_answer_is_recorded_failed_without_failing_the_task(bucket, fleet) -> None:
    fleet.down["falcon"] = FalconApiError("GET /devices/queries/devices/v1: 503")
    result = task(FalconInventoryOperator, bucket).execute(cycle_context())

    assert result == {"devices": 0, "status": "failed"}
    assert record(bucket, "inventory/falcon.json") == {
        "devices": [],
        "status": "failed",
        "error": "FalconApiError: GET /devices/queries/devices/v1: 503",
    }
    (event,) = recorded_events(bucket)
    assert (event["action"], event["target"]) == ("inventory.scope_failed", "falcon:falcon_cu_alpha")


# -- merge -------------------------------------------------------------------------------------------
def row(host_id: str, name: str, cloud: str, account: str) -> dict[str, Any]:
    return {"host_id": host_id, "name": name, "cloud": cloud, "account": account, "private_ip": None}


def cloud_record(bucket: MemoryBucket, cloud: str, rows: list[dict[str, Any]], attempt: int = 1) -> None:
    """What the inventory task of ``cloud`` recorded: its rows and its one answering scope."""
    scopes = [{"cloud": cloud, "scope": f"{cloud}:scope", "status": "ok", "hosts": len(rows)}]
    EvidenceStore(bucket, "evidence").put_record(
        run_key(f"inventory/{cloud}.json"), {"rows": rows, "scopes": scopes}, attempt=attempt
    )


def falcon_record(bucket: MemoryBucket, **changes: Any) -> None:
    falcon = {"devices": [], "status": "ok", "error": None, **changes}
    EvidenceStore(bucket, "evidence").put_record(run_key("inventory/falcon.json"), falcon, attempt=1)


def merge(bucket: MemoryBucket) -> Any:
    return task(MergeInventoryOperator, bucket, task_id="inventory").execute(cycle_context())


def test_a_cloud_whose_inventory_task_left_no_record_is_a_failed_scope_and_the_others_hosts_go_on(
    bucket,
) -> None:
    cloud_record(bucket, "aws", [row("i-0a1", "web-01", "aws", ACCOUNT)])
    cloud_record(bucket, "gcp", [row("4711", "gce-01", "gcp", PROJECT)])
    device = {
        "device_id": "d-1",
        "hostname": "web-01",
        "instance_id": "i-0a1",
        "service_provider": "AWS_EC2_V2",
        "service_provider_account_id": ACCOUNT,
        "agent_version": "7.14.16703.0",
    }
    falcon_record(bucket, devices=[device])
    assert merge(bucket) == {"hosts": 2, "failed_scopes": 1}

    rows = {r["host_id"]: r for r in record(bucket, "inventory.json")}
    assert set(rows) == {"i-0a1", "4711"}
    assert (rows["i-0a1"]["falcon_device_id"], rows["4711"]["falcon_device_id"]) == ("d-1", None)
    failed = [s for s in record(bucket, "scopes.json") if s["status"] == "failed"]
    assert failed == [
        {"cloud": "azure", "scope": "azure:*", "status": "failed", "error": "inventory task failed"}
    ]
    (merged,) = [e for e in recorded_events(bucket) if e["action"] == "inventory.merged"]
    assert (merged["result"], merged["details"]["failed_scopes"]) == ("partial", ["azure:*"])


def test_the_merge_takes_each_clouds_latest_attempt(bucket) -> None:
    for cloud in ("azure", "gcp"):
        cloud_record(bucket, cloud, [])
    cloud_record(bucket, "aws", [row("i-old", "web-01", "aws", ACCOUNT)], attempt=1)
    cloud_record(bucket, "aws", [row("i-new", "web-01", "aws", ACCOUNT)], attempt=2)
    falcon_record(bucket)
    merge(bucket)
    assert [r["host_id"] for r in record(bucket, "inventory.json")] == ["i-new"]
    assert record(bucket, "scopes.json") == [
        {"cloud": c, "scope": f"{c}:scope", "status": "ok", "hosts": n}
        for c, n in (("aws", 1), ("azure", 0), ("gcp", 0))
    ]


@pytest.mark.parametrize(
    ("falcon", "error"),
    [
        ({"status": "failed", "error": "FalconApiError: 503"}, "FalconApiError: 503"),
        (None, "inventory task failed"),
    ],
)
def test_without_falcons_answer_its_scope_fails_and_no_host_is_matched_to_a_sensor(
    bucket, falcon, error
) -> None:
    for cloud in ("azure", "gcp"):
        cloud_record(bucket, cloud, [])
    cloud_record(bucket, "aws", [row("i-0a1", "web-01", "aws", ACCOUNT)])
    if falcon is not None:
        falcon_record(bucket, **falcon)
    assert merge(bucket) == {"hosts": 1, "failed_scopes": 1}
    assert [s for s in record(bucket, "scopes.json") if s["status"] == "failed"] == [
        {"cloud": "falcon", "scope": "falcon", "status": "failed", "error": error}
    ]
    (host,) = record(bucket, "inventory.json")
    assert (host["falcon_device_id"], host["falcon_match"]) == (None, "none")


# -- pre-flight --------------------------------------------------------------------------------------
KERNEL_PATCH = {
    "id": "ALAS2-KERNEL-1",
    "released": "2026-11-01",
    "kernel_release": "5.10.230-223.885.amzn2.x86_64",
    "kernel_update": True,
}
PLAN = {"approved": {"amazon_linux_2": [{"id": "ALAS2-2026-2644", "released": "2026-10-01"}]}}


@pytest.fixture
def mail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> type[Mail]:
    from airflow.providers.smtp.hooks import smtp

    Mail.sent = []
    monkeypatch.setattr(smtp, "SmtpHook", Mail)
    monkeypatch.setenv(EXCEPTIONS_DIR_ENV, str(tmp_path))  # no register: no accepted risk
    return Mail


def inventory(bucket: MemoryBucket, *hosts: HostSpec, **changes: Any) -> list[dict[str, Any]]:
    """The merged inventory of ``hosts``: SSM hosts online unless ``held`` (then their agent is lost)."""
    rows = []
    for spec in hosts:
        r = {**inventory_row(spec), **changes}
        if spec.state == "held":
            r.update(agent_status="ConnectionLost", agent_online=False)
        rows.append(r)
    EvidenceStore(bucket, "evidence").put_record(run_key("inventory.json"), rows, attempt=1)
    return rows


def preflight(bucket: MemoryBucket, tenant: Tenant | None = None, plan: dict = PLAN, attempt: int = 1) -> Any:
    """Attempt ``attempt`` of the pre-flight task of a run planned as ``plan`` (cu_alpha without Falcon
    unless ``tenant`` says otherwise)."""
    info = with_plan(EvidenceStore(bucket, "evidence"), plan)
    op = task(PreflightOperator, bucket, tenant or alpha(falcon=None), task_id="preflight")
    return op.execute(cycle_context(info, attempt=attempt))


FOUR = [HostSpec(f"alpha-dev-{n:02d}", "nonprod") for n in range(1, 5)]


def test_preflight_records_each_hosts_verdict_and_passes_at_the_threshold(bucket, mail) -> None:
    held = HostSpec("alpha-dev-04", "nonprod", state="held")
    inventory(bucket, *FOUR[:3], held)  # one of four held: 25 %, the tenant's threshold
    assert preflight(bucket) == {"eligible": 3, "held": 1, "halted": False}

    decisions = {
        d["host_id"]: (d["verdict"], d["reason"]) for d in record(bucket, "preflight.json")["decisions"]
    }
    assert decisions[held.host_id] == ("held", "ssm agent ConnectionLost")
    assert [decisions[h.host_id][0] for h in FOUR[:3]] == ["eligible"] * 3
    events = {e["action"]: e for e in recorded_events(bucket)}
    assert (events["preflight.held"]["target"], events["preflight.held"]["details"]["name"]) == (
        held.host_id,
        "alpha-dev-04",
    )
    assert events["preflight.evaluated"]["result"] == "passed"


def test_preflight_halts_the_scope_when_more_than_the_threshold_is_held(bucket, mail) -> None:
    inventory(bucket, *FOUR[:2], *(HostSpec(f"alpha-dev-{n}", "nonprod", state="held") for n in (8, 9)))
    with pytest.raises(AirflowFailException, match=r"50% of in-scope hosts held \(threshold 25%\)"):
        preflight(bucket)
    assert record(bucket, "preflight.json")["halted"] is True, "the decisions are on record all the same"
    (evaluated,) = [e for e in recorded_events(bucket) if e["action"] == "preflight.evaluated"]
    assert evaluated["result"] == "halted"


def test_a_scope_with_no_host_in_it_halts_and_says_what_to_check(bucket, mail) -> None:
    inventory(bucket, HostSpec("alpha-prd-01", "prod"), HostSpec("alpha-prd-02", "prod"))  # run: nonprod
    with pytest.raises(AirflowFailException, match="no host in scope among 2 inventoried .2 out of scope."):
        preflight(bucket)


def test_the_sres_are_mailed_the_held_hosts_once_per_cycle_not_on_a_retry(bucket, mail) -> None:
    inventory(bucket, *FOUR[:3], HostSpec("alpha-dev-04", "nonprod", state="held"))
    preflight(bucket)
    preflight(bucket, attempt=2)

    (sent,) = mail.sent
    assert sent["to"] == ["alpha-sre@example.com"] and "alpha-dev-04" in sent["body"]
    assert [e["details"]["held"] for e in recorded_events(bucket) if e["action"] == "preflight.alerted"] == [
        1
    ]
    assert bucket.objects.get("cycles/2026-11-22/alerts/preflight-held.json") is not None


def test_no_mail_goes_out_when_no_host_is_held(bucket, mail) -> None:
    inventory(bucket, *FOUR)
    preflight(bucket)
    assert mail.sent == []


def test_a_host_an_active_risk_acceptance_covers_is_excepted_not_patched(bucket, mail, tmp_path) -> None:
    register = {
        "tenant_id": "cu_alpha",
        "exceptions": [
            {
                "id": "EXC-2026-021",
                "hosts": ["alpha-dev-04"],
                "justification": "decommissioned on 2026-12-12",
                "compensating_control": "removed from the load balancer",
                "requested_by": "DBA lead",
                "approver": "J. Alvarez",
                "approver_role": "CISO",
                "approved_on": "2026-09-30",
                "expires_on": "2026-12-15",
                "risk_rating": "Medium",
                "ticket": "CHG-1",
            }
        ],
    }
    (tmp_path / "cu_alpha.yaml").write_text(yaml.safe_dump(register))
    inventory(bucket, *FOUR)
    assert preflight(bucket) == {"eligible": 3, "held": 0, "halted": False}

    decisions = {d["host_id"]: d for d in record(bucket, "preflight.json")["decisions"]}
    assert decisions[FOUR[3].host_id]["verdict"] == "excepted"
    assert decisions[FOUR[3].host_id]["reason"].startswith("risk acceptance EXC-2026-021 until 2026-12-15")
    (applied,) = [e for e in recorded_events(bucket) if e["action"] == "exceptions.applied"]
    assert applied["target"] == FOUR[3].host_id


def test_falcon_is_asked_about_the_plans_target_kernels_and_a_sensor_without_support_skips_it(
    bucket, mail, monkeypatch
) -> None:
    target = KERNEL_PATCH["kernel_release"]
    asked: list[list[str]] = []

    class Falcon:
        def __init__(self, falcon_conn_id: str) -> None:
            pass

        def kernel_support(self, kernels: list[str]) -> dict[str, dict[str, Any]]:
            asked.append(kernels)
            return {target: {"base_package_supported_sensor_versions": ["7.14.16703"]}}

        def sensor_builds(self, platform: str) -> list[dict[str, Any]]:
            assert platform == "linux"
            return [
                {"platform": "linux", "sensor_version": version, "build": version.rsplit(".", 1)[1]}
                for version in ("7.10.1", "7.12.16500", "7.14.16703")
            ]

    monkeypatch.setattr(falcon, "FalconHook", Falcon)
    # The first two sensors support the plan's kernel, the other two are older.
    versions = ["7.14.16703.0", "7.14.16703.0", "7.10.1.0", "7.10.1.0"]
    rows = [
        {**inventory_row(h), "kernel": "5.10.220-209.869.amzn2.x86_64", "falcon_device_id": f"d-{n}",
         "falcon_match": "instance_id", "falcon_sensor_version": version}
        for n, (h, version) in enumerate(zip(FOUR, versions, strict=True))
    ]  # fmt: skip
    EvidenceStore(bucket, "evidence").put_record(run_key("inventory.json"), rows, attempt=1)
    plan = {"approved": {"amazon_linux_2": [*PLAN["approved"]["amazon_linux_2"], KERNEL_PATCH]}}
    assert preflight(bucket, alpha(), plan) == {"eligible": 4, "held": 0, "halted": False}

    assert asked == [[target]]
    variants = {d["host_id"]: d["variant"] for d in record(bucket, "preflight.json")["decisions"]}
    assert [variants[h.host_id] for h in FOUR] == ["full", "full", "no_kernel", "no_kernel"]
    held_back = [
        e["details"]["name"] for e in recorded_events(bucket) if e["action"] == "preflight.kernel_held"
    ]
    assert held_back == ["alpha-dev-03", "alpha-dev-04"]
    # Their sensor upgrades are handed to the roll-out: the oldest listed build that runs the kernel.
    upgrades = record(bucket, "preflight.json")["sensor_upgrades"]
    assert [(u["name"], u["kernel"], u["upgrade_to"]) for u in upgrades] == [
        ("alpha-dev-03", target, "7.14.16703"),
        ("alpha-dev-04", target, "7.14.16703"),
    ]
    handed = [e for e in recorded_events(bucket) if e["action"] == "falcon.sensor_upgrade_handed_off"]
    assert [e["details"]["upgrade_to"] for e in handed] == ["7.14.16703", "7.14.16703"]


def test_falcon_is_not_asked_when_the_plan_moves_no_kernel(bucket, mail, monkeypatch) -> None:
    def no_call(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Falcon was asked")

    monkeypatch.setattr(falcon, "FalconHook", no_call)
    sensor = {
        "falcon_device_id": "d-1",
        "falcon_sensor_version": "7.14.16703.0",
        "falcon_match": "instance_id",
    }
    inventory(bucket, *FOUR, **sensor)
    assert preflight(bucket, alpha()) == {"eligible": 4, "held": 0, "halted": False}


def test_preflight_without_the_merged_inventory_fails_before_deciding(bucket, mail) -> None:
    with pytest.raises(RuntimeError, match="no attempt has written this record"):
        preflight(bucket)
    assert record(bucket, "preflight.json") is None


# -- KEV exposure in the pre-flight record (risk drives the plan) -----------------------------------------
KEV_PLAN = {
    "approved": {
        "amazon_linux_2": [
            # CVE-2023-0386 is in the committed KEV subset (listed 2025-06-17); the patch was fast-tracked.
            {
                "id": "ALAS2-2026-2644",
                "released": "2026-10-01",
                "cves": ["CVE-2023-0386", "CVE-2020-0001"],
                "fast_track": {"cve": "CVE-2023-0386", "basis": "kev"},
            }
        ]
    }
}


def test_hosts_exposed_to_kev_cves_of_the_plan_are_named_in_the_preflight_record(bucket, mail) -> None:
    held = HostSpec("alpha-dev-04", "nonprod", state="held")
    inventory(bucket, *FOUR[:3], held)
    preflight(bucket, plan=KEV_PLAN)
    exposure = record(bucket, "preflight.json")["kev_exposure"]
    assert [(h["name"], h["verdict"], h["cves"]) for h in exposure["hosts"]] == [
        *((h.name, "eligible", ["CVE-2023-0386"]) for h in FOUR[:3]),
        ("alpha-dev-04", "held", ["CVE-2023-0386"]),
    ]
    assert exposure["cves"]["CVE-2023-0386"] == {
        "date_added": "2025-06-17",
        "due_date": "2025-07-08",
        "hosts": 4,
        "fast_tracked": True,
    }
    assert exposure["feeds"]["source"].startswith("committed snapshots")
    (event,) = [e for e in recorded_events(bucket) if e["action"] == "preflight.kev_exposure"]
    assert event["details"]["names"] == ["alpha-dev-01", "alpha-dev-02", "alpha-dev-03", "alpha-dev-04"]


def test_a_zero_day_cve_without_a_fix_names_its_exposed_hosts_and_their_compensating_controls(
    bucket, mail, tmp_path, monkeypatch
) -> None:
    register = tmp_path / "registers"
    register.mkdir()
    (register / "cu_alpha.yaml").write_text(
        yaml.safe_dump(
            {
                "tenant_id": "cu_alpha",
                "exceptions": [
                    {
                        "id": "EXC-2026-099",
                        "hosts": ["alpha-dev-01"],
                        "patches": ["KB0000001"],
                        "justification": "Vendor has not shipped a fix for the exploited Windows flaw yet.",
                        "compensating_control": "WAF virtual patch rule 9100 in block mode; RASP on the app.",
                        "requested_by": "App owner",
                        "approver": "J. Alvarez",
                        "approver_role": "CISO",
                        "approved_on": "2026-11-01",
                        "expires_on": "2026-12-31",
                        "risk_rating": "High",
                    }
                ],
            }
        )
    )
    monkeypatch.setenv(EXCEPTIONS_DIR_ENV, str(register))
    # CVE-2025-33053 is a Microsoft Windows entry of the committed KEV subset: Windows hosts are exposed.
    windows = [HostSpec("alpha-dev-01", "nonprod"), HostSpec("alpha-dev-02", "nonprod")]
    inventory(bucket, *windows, os_family="windows_2019")
    plan = {
        "approved": {},
        "risk": {"zero_day": {"cves": ["CVE-2025-33053"], "without_fix": ["CVE-2025-33053"]}},
    }
    preflight(bucket, plan=plan)
    (item,) = record(bucket, "preflight.json")["kev_exposure"]["without_fix"]
    assert item["cve"] == "CVE-2025-33053" and item["kev"]["product"] == "Windows"
    controls = {h["name"]: [c["id"] for c in h["compensating_controls"]] for h in item["exposed_hosts"]}
    assert controls == {"alpha-dev-01": ["EXC-2026-099"], "alpha-dev-02": []}
    assert item["uncovered_hosts"] == ["alpha-dev-02"]
    (event,) = [e for e in recorded_events(bucket) if e["action"] == "zero_day.no_fix"]
    assert event["details"]["without_compensating_control"] == ["alpha-dev-02"]
