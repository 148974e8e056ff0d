"""The daily drift run's tasks without a cloud: what the report task reads per scope (the state or the day's
plans), what it asks CloudTrail and whom it leaves out, the pack it writes (chained, with the trend and the
controls), what happens when a scope or CloudTrail cannot be read, the SREs' mail once a day without a
value in it, and the cycle's pre-flight recording the open drift on what it relies on.

The state bucket, the live reader and CloudTrail are stand-ins answering from the drift fixtures
(``tests/domain/fixtures/drift``: cu_alpha's state, its live view and the CloudTrail events naming who),
the evidence bucket is the in-memory one. The reads themselves are tested in tests/hooks/test_aws_drift.py.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException
from botocore.exceptions import ClientError

from patchcycle.config.loader import default_tenants_dir
from patchcycle.config.models import Tenant
from patchcycle.domain.drift.launch import GroupFinding, LaunchVersion
from patchcycle.hooks import aws_drift
from patchcycle.operators import drift as drift_operators
from patchcycle.operators.drift import DriftNoticeOperator, DriftReportOperator
from patchcycle.reports.manifest import sha256_hex, verify_pack
from patchcycle.reports.store import EvidenceStore
from tests.domain.test_drift import AL2, AUTHORS, INJECTED_DRIFTS, OWNED_BY_CYCLE, UNKNOWN_TYPES

from .stand_ins import Mail, MemoryBucket

FIXTURES = Path(__file__).parents[1] / "domain" / "fixtures" / "drift"
ACCOUNT = "111111111111"
DAY = dt.date(2026, 12, 4)
RUN_AT = dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.UTC)
FIXTURE_ORCHESTRATOR = "arn:aws:iam::111111111111:role/patchcycle-orchestrator-cu_alpha"
STATE = "patchcycle-terraform-state"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def alpha(regions: list[str] | None = None) -> Tenant:
    data = yaml.safe_load((default_tenants_dir() / "cu_alpha.yaml").read_text())
    if regions:
        data["clouds"]["aws"]["accounts"][0]["regions"] = regions
    return Tenant.model_validate(data)


class StateBucket:
    """The state bucket: objects by key; a key in ``refuse`` fails as S3 would."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.refuse: dict[str, ClientError] = {}
        self.read_keys: list[str] = []

    def read(self, bucket: str, key: str) -> tuple[bytes, dict[str, Any]] | None:
        assert bucket == STATE
        self.read_keys.append(key)
        if key in self.refuse:
            raise self.refuse[key]
        data = self.objects.get(key)
        return None if data is None else (data, {"bucket": bucket, "key": key, "version_id": "v1"})

    def put_state(self, region: str = "us-east-1", evidence_alias: bool = False) -> None:
        key = f"tenants/cu_alpha/{ACCOUNT}/{region}/terraform.tfstate"
        document = fixture("state_v4.json")
        for resource in document["resources"]:
            if evidence_alias and resource["type"].startswith("aws_s3_bucket"):
                resource["provider"] += ".evidence"  # as the roots declare the evidence bucket
        self.objects[key] = json.dumps(document).encode()


class Cloud:
    """The live reader and CloudTrail as stand-ins: the fixture's live view for every scope, the fixture's
    events for the lookups; ``trail_down`` makes every lookup fail."""

    def __init__(self) -> None:
        self.readers: list[dict[str, Any]] = []
        self.lookups: list[tuple[str, str]] = []
        self.trails: list[tuple[str, str, str, str]] = []  # (connection, region, lookup attribute, value)
        self.trail_down: ClientError | None = None
        self.live = fixture("live_view.json")["objects"]
        self.events = fixture("cloudtrail_lookup_events.json")["Events"]
        self.groups: list[GroupFinding] = []  # what read_groups finds in each scope
        self.group_reads: list[tuple[str, str]] = []  # (scope, tenant)


class FakeClient:
    def __init__(self) -> None:
        self.meta = type(
            "Meta",
            (),
            {
                "service_model": type("Model", (), {"service_name": "cloudtrail"})(),
                "events": type("Events", (), {"register": lambda *a, **k: None})(),
            },
        )()


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Cloud:
    found = Cloud()

    class Reader:
        def __init__(self, connections: dict[str, Any]) -> None:
            found.readers.append(connections)
            self.counter = aws_drift.CallCounter()
            self.counter.calls["iam.GetRole"] = 1

        def read(self, instances: Any) -> aws_drift.LiveRead:
            declared = next(i for i in instances if i.address == "aws_launch_template.fleet").attributes
            return aws_drift.LiveRead(
                live=dict(found.live),
                launch_versions={
                    "aws_launch_template.fleet": [
                        LaunchVersion("latest", 4, found.live["aws_launch_template.fleet"]),
                        LaunchVersion("default", 3, declared),
                    ]
                },
            )

        def read_groups(self, scope: str, tenant_id: str, instances: Any) -> list[GroupFinding]:
            found.group_reads.append((scope, tenant_id))
            return [dataclasses.replace(g, scope=scope) for g in found.groups]

    class Trail:
        def __init__(self, aws_conn_id: str, region_name: str) -> None:
            self.conn = FakeClient()
            self.conn_id, self.region = aws_conn_id, region_name
            self.throttled = 0

        def lookup_events(self, name: str, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
            found.lookups.append(("ResourceName", name))
            found.trails.append((self.conn_id, self.region, "ResourceName", name))
            if found.trail_down:
                raise found.trail_down
            assert end - start == dt.timedelta(days=90)
            return [e for e in found.events if name in {r["ResourceName"] for r in e.get("Resources") or []}]

        def lookup_events_named(
            self, name: str, start: dt.datetime, end: dt.datetime
        ) -> list[dict[str, Any]]:
            found.lookups.append(("EventName", name))
            return [e for e in found.events if e["EventName"] == name]

    monkeypatch.setattr(aws_drift, "LiveResourceReader", Reader)
    monkeypatch.setattr(aws_drift, "CloudTrailHook", Trail)
    monkeypatch.setattr(drift_operators, "utcnow", lambda: RUN_AT)
    # The fixture's orchestrator role is not the deployment's PatchcycleExecution: name it as the
    # deployment's own exclusion.
    monkeypatch.setenv("AIRFLOW__PATCHCYCLE__DRIFT_EXCLUDED_PRINCIPALS", FIXTURE_ORCHESTRATOR)
    return found


@pytest.fixture
def mail(monkeypatch: pytest.MonkeyPatch) -> type[Mail]:
    from airflow.providers.smtp.hooks import smtp

    Mail.sent = []
    monkeypatch.setattr(smtp, "SmtpHook", Mail)
    return Mail


@pytest.fixture
def bucket() -> MemoryBucket:
    return MemoryBucket()


@pytest.fixture
def state() -> StateBucket:
    found = StateBucket()
    found.put_state()
    return found


class Ti:
    def __init__(self, attempt: int, xcom: Any = None) -> None:
        self.try_number = attempt
        self.xcom = xcom

    def xcom_pull(self, task_ids: str) -> Any:
        assert task_ids == "report"
        return self.xcom


class Run:
    triggering_user_name = None
    run_type = "scheduled"

    def __init__(self, day: dt.date) -> None:
        self.run_after = dt.datetime.combine(day, dt.time(5), tzinfo=dt.UTC)


def context(day: dt.date = DAY, attempt: int = 1, xcom: Any = None, **params: Any) -> dict[str, Any]:
    return {
        "ti": Ti(attempt, xcom),
        "run_id": f"scheduled__{day.isoformat()}T05:00:00+00:00",
        "dag_run": Run(day),
        "logical_date": dt.datetime.combine(day, dt.time(5), tzinfo=dt.UTC),
        "params": params,
    }


def operator(cls: type, bucket: MemoryBucket, state: StateBucket, tenant: Tenant | None = None) -> Any:
    op = cls(task_id="report" if cls is DriftReportOperator else "notify", tenant_id="cu_alpha")
    op.__dict__.update(tenant=tenant or alpha(), store=EvidenceStore(bucket, "evidence"), state_hook=state)
    return op


def report(bucket: MemoryBucket, state: StateBucket, day: dt.date = DAY, **kwargs: Any) -> dict[str, Any]:
    tenant = kwargs.pop("tenant", None)
    return operator(DriftReportOperator, bucket, state, tenant).execute(context(day, **kwargs))


def notify(
    bucket: MemoryBucket, state: StateBucket, result: dict[str, Any], tenant: Tenant | None = None
) -> Any:
    return operator(DriftNoticeOperator, bucket, state, tenant).execute(context(DAY, xcom=result))


def pack(bucket: MemoryBucket, result: dict[str, Any]) -> dict[str, bytes]:
    prefix = result["pack_url"].removeprefix("s3://evidence/") + "/"
    return {k.removeprefix(prefix): v for k, v in bucket.objects.items() if k.startswith(prefix)}


def document(bucket: MemoryBucket, result: dict[str, Any]) -> dict[str, Any]:
    return json.loads(pack(bucket, result)["drift.json"])


# -- the report ------------------------------------------------------------------------------------------
def test_the_report_finds_exactly_the_injected_drifts_and_names_who_made_each(bucket, state, cloud) -> None:
    result = report(bucket, state)
    assert result["day"] == "2026-12-04" and result["engine"] == "state_compare" and result["complete"]
    found = document(bucket, result)["report"]
    assert {(d["address"], d["path"]) for d in found["drifts"]} == INJECTED_DRIFTS
    assert {(d["address"], d["path"]) for d in found["owned_by_cycle"]} == OWNED_BY_CYCLE
    assert {u["address"] for u in found["unchecked"]} == UNKNOWN_TYPES
    named = {
        (d["address"], d["path"]): (d["changed_by"]["username"], d["changed_by"]["event_name"])
        for d in found["drifts"]
        if d["changed_by"]
    }
    assert named == AUTHORS
    assert result["open_drift"] == len(INJECTED_DRIFTS)


def test_terraform_and_the_orchestrator_are_left_out_and_lookups_fall_back_to_event_names(
    bucket, state, cloud
) -> None:
    result = report(bucket, state)
    (scope,) = document(bucket, result)["scopes"]
    excluded = set(scope["excluded_principals"])
    # Terraform's own principal, from the state's data.aws_caller_identity, session and role.
    assert {
        "arn:aws:sts::111111111111:assumed-role/patchcycle-terraform/terraform",
        "arn:aws:iam::111111111111:role/patchcycle-terraform",
        "arn:aws:iam::111111111111:role/PatchcycleExecution",
        FIXTURE_ORCHESTRATOR,
    } <= excluded
    by_name = {v for k, v in cloud.lookups if k == "ResourceName"}
    assert {"patchcycle-evidence-cu-alpha", "lt-0abc0000000000001", "pb-0a1b2c3d4e5f60001"} <= by_name
    # Bob's UpdatePatchBaseline names no resource in its event: found by the type's write events.
    assert ("EventName", "UpdatePatchBaseline") in cloud.lookups
    assert scope["cloudtrail"]["lookups"] == len(cloud.lookups)


def test_the_evidence_buckets_authors_are_looked_up_in_the_platforms_cloudtrail(bucket, state, cloud) -> None:
    state.put_state(evidence_alias=True)
    found = document(bucket, report(bucket, state))["report"]["drifts"]
    by_trail = {(conn, value) for conn, _, key, value in cloud.trails if key == "ResourceName"}
    assert ("patchcycle_evidence", "patchcycle-evidence-cu-alpha") in by_trail
    assert ("aws_cu_alpha", "patchcycle-evidence-cu-alpha") not in by_trail
    assert ("aws_cu_alpha", "lt-0abc0000000000001") in by_trail
    lock = next(d for d in found if d["address"] == "aws_s3_bucket_object_lock_configuration.evidence")
    assert lock["changed_by"]["username"] == "dave" and lock["scope"] == f"aws:{ACCOUNT}:us-east-1"


def test_iam_authors_are_looked_up_where_cloudtrail_records_iam_whatever_the_scopes_region(
    bucket, state, cloud
) -> None:
    state.objects.clear()
    state.put_state("us-west-2")
    report(bucket, state, tenant=alpha(["us-west-2"]))
    regions = {value: region for _, region, key, value in cloud.trails if key == "ResourceName"}
    assert regions["patchcycle-orchestrator-cu_alpha"] == "us-east-1"  # the role of the widened policy
    assert regions["lt-0abc0000000000001"] == "us-west-2"


def test_the_state_is_read_from_the_scopes_key_and_the_evidence_bucket_through_its_own_connection(
    bucket, state, cloud
) -> None:
    report(bucket, state)
    assert state.read_keys == [
        f"plans/cu_alpha/{ACCOUNT}/us-east-1/2026-12-04.json",  # auto: the day's plan first
        f"tenants/cu_alpha/{ACCOUNT}/us-east-1/terraform.tfstate",
    ]
    (connections,) = cloud.readers
    assert connections[""] == aws_drift.Connection("aws_cu_alpha", "us-east-1")
    assert connections["evidence"] == aws_drift.Connection("patchcycle_evidence", "us-east-1")


def test_the_pack_is_json_a_csv_summary_and_a_manifest_that_verifies(bucket, state, cloud) -> None:
    result = report(bucket, state)
    files = pack(bucket, result)
    assert list(files) == ["drift.json", "summary.csv", "manifest.json"]
    manifest = json.loads(files.pop("manifest.json"))
    assert verify_pack(manifest, files) == []
    assert manifest["previous_manifest_sha256"] is None and manifest["cycle_date"] == "2026-12-04"
    rows = list(csv.DictReader(io.StringIO(files["summary.csv"].decode())))
    lock = next(r for r in rows if r["address"] == "aws_s3_bucket_object_lock_configuration.evidence")
    assert (lock["declared"], lock["live"], lock["changed_by"]) == ("2555", "30", "dave")
    assert lock["classification"] == "drift" and "terraform apply" in lock["remediate"]
    assert {r["classification"] for r in rows} == {"drift", "owned_by_cycle", "unchecked"}


def test_the_pack_maps_the_drift_controls_and_calls_out_the_unbootstrapped_launch_template(
    bucket, state, cloud
) -> None:
    doc = document(bucket, report(bucket, state))
    controls = {(c["framework"], c["control_id"]): c["status"] for c in doc["controls"]}
    assert controls[("soc2", "CC8.1")] == "evidenced"
    assert controls[("sox", "ITGC-CM-06")] == "evidenced"
    assert controls[("pci_dss", "6.5.1")] == "evidenced"
    assert controls[("references", "CIS-v8-4.1")] == "evidenced"
    assert not any(c == "CC6.1" for _, c in controls)  # a cycle's controls are not judged here
    (finding,) = doc["launch_findings"]
    assert finding["address"] == "aws_launch_template.fleet" and finding["versions"] == ["latest (4)"]
    assert finding["notice"] == "reported before the next cycle"


def test_the_tenants_auto_scaling_groups_without_the_bootstrap_reach_the_pack_and_the_mail(
    bucket, state, cloud, mail
) -> None:
    cloud.groups = [
        GroupFinding(
            "s",
            "web-asg",
            "launch template patchcycle-cu_alpha-fleet (aws_launch_template.fleet) version 2",
            ("its user data neither installs nor starts the SSM agent (amazon-ssm-agent)",),
        ),
        GroupFinding(
            "s",
            "legacy-asg",
            "launch configuration old-lc",
            ("not checked: launch configuration old-lc could not be read",),
            checked=False,
        ),
    ]
    result = report(bucket, state)
    assert result["group_findings"] == 2
    assert cloud.group_reads == [(f"aws:{ACCOUNT}:us-east-1", "cu_alpha")]
    found = document(bucket, result)["group_findings"]
    assert [(g["group"], g["checked"], g["notice"]) for g in found] == [
        ("web-asg", True, "reported before the next cycle"),
        ("legacy-asg", False, "reported before the next cycle"),
    ]
    assert found[0]["scope"] == f"aws:{ACCOUNT}:us-east-1"
    notify(bucket, state, result)
    (sent,) = mail.sent
    assert "2 Auto Scaling group(s)" in sent["subject"]
    assert "Auto Scaling group web-asg" in sent["body"] and "version 2" in sent["body"]
    assert "legacy-asg" in sent["body"] and "not counted as clean" in sent["body"]


def test_a_scope_that_cannot_be_read_halts_alone_and_the_report_says_it_is_incomplete(
    bucket, state, cloud, mail
) -> None:
    tenant = alpha(["us-east-1", "us-west-2", "eu-west-1"])
    state.refuse[f"tenants/cu_alpha/{ACCOUNT}/us-west-2/terraform.tfstate"] = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "denied"}}, "GetObject"
    )  # eu-west-1 has no state at all
    result = report(bucket, state, tenant=tenant)
    assert result["complete"] is False
    assert result["failed_scopes"] == [f"aws:{ACCOUNT}:us-west-2", f"aws:{ACCOUNT}:eu-west-1"]
    found = document(bucket, result)["report"]
    errors = {e["scope"]: e["message"] for e in found["errors"]}
    assert "AccessDenied" in errors[f"aws:{ACCOUNT}:us-west-2"]
    assert (
        "no Terraform state at s3://patchcycle-terraform-state/tenants/" in errors[f"aws:{ACCOUNT}:eu-west-1"]
    )
    assert {(d["address"], d["path"]) for d in found["drifts"]} == INJECTED_DRIFTS  # us-east-1's
    with pytest.raises(AirflowFailException, match="incomplete"):
        notify(bucket, state, result, tenant)
    (sent,) = mail.sent
    assert "INCOMPLETE" in sent["subject"] and "us-west-2" in sent["body"]


def test_cloudtrail_that_cannot_be_read_leaves_drifts_without_an_author_not_unreported(
    bucket, state, cloud
) -> None:
    cloud.trail_down = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "LookupEvents"
    )
    result = report(bucket, state)
    found = document(bucket, result)["report"]
    assert {(d["address"], d["path"]) for d in found["drifts"]} == INJECTED_DRIFTS
    assert all(d["changed_by"] is None for d in found["drifts"])
    assert any("CloudTrail could not be read" in n for n in found["notes"])
    assert result["complete"] is True


def test_the_days_plans_are_read_instead_of_the_state_when_every_scope_has_one(bucket, state, cloud) -> None:
    state.objects[f"plans/cu_alpha/{ACCOUNT}/us-east-1/2026-12-04.json"] = (
        FIXTURES / "refresh_only_plan.json"
    ).read_bytes()
    result = report(bucket, state)
    assert result["engine"] == "plan_json"
    assert cloud.readers == []  # no live read: Terraform refreshed it
    doc = document(bucket, result)
    assert {(d["address"], d["path"]) for d in doc["report"]["drifts"]} == INJECTED_DRIFTS
    assert [f["address"] for f in doc["launch_findings"]] == ["aws_launch_template.fleet"]
    # A run told to read the state does so even with the plans there.
    assert report(bucket, state, day=DAY + dt.timedelta(days=1), engine="state")["engine"] == "state_compare"


def test_a_run_told_to_read_plans_fails_a_scope_without_one(bucket, state, cloud) -> None:
    result = report(bucket, state, engine="plan")
    assert result["engine"] == "plan_json" and result["complete"] is False
    (error,) = document(bucket, result)["report"]["errors"]
    assert "no plan JSON at s3://patchcycle-terraform-state/plans/cu_alpha/" in error["message"]


def test_packs_chain_day_to_day_a_retry_writes_beside_and_the_trend_counts_open_drift(
    bucket, state, cloud
) -> None:
    first = report(bucket, state, day=DAY - dt.timedelta(days=1))
    retry = report(bucket, state, day=DAY - dt.timedelta(days=1), attempt=2)
    assert retry["pack_url"].endswith("/pack-try2") and first["pack_url"].endswith("/pack")
    second = report(bucket, state)
    assert second["previous_manifest_sha256"] in {first["manifest_sha256"], retry["manifest_sha256"]}
    manifest = bucket.objects[second["pack_url"].removeprefix("s3://evidence/") + "/manifest.json"]
    assert json.loads(manifest)["previous_manifest_sha256"] == second["previous_manifest_sha256"]
    trend = document(bucket, second)["trend"]
    assert [(p["date"], p["open_drift"]) for p in trend] == [
        ("2026-12-03", len(INJECTED_DRIFTS)),
        ("2026-12-04", len(INJECTED_DRIFTS)),
    ]
    assert sha256_hex(manifest) == second["manifest_sha256"]


def test_a_backfilled_day_read_from_the_state_is_marked_late(bucket, state, cloud) -> None:
    result = report(bucket, state, day=dt.date(2026, 11, 20))
    notes = document(bucket, result)["report"]["notes"]
    assert any("report for 2026-11-20 read on 2026-12-04" in n for n in notes)
    assert result["day"] == "2026-11-20"


# -- the mail ---------------------------------------------------------------------------------------------
def test_the_sres_get_one_mail_a_day_naming_who_and_never_a_value(bucket, state, cloud, mail) -> None:
    result = report(bucket, state)
    assert notify(bucket, state, result)["mailed"] is True
    assert notify(bucket, state, result)["mailed"] is False  # a retry, or a second run of the day
    (sent,) = mail.sent
    assert sent["to"] == ["alpha-sre@example.com"]
    assert sent["subject"] == (
        "[Patchcycle] Alpha Federal Credit Union: drift report 2026-12-04: 6 open drift(s) on 5 resource(s) "
        "(1 launch template version(s) without the SSM bootstrap)"
    )
    body = sent["body"]
    for who in ("alice", "carol", "dave", "bob@alpha.example.com"):
        assert who in body
    assert "reported before the next cycle" in body and "aws_launch_template.fleet" in body
    # Neither side of any value: the widened policy, the new user data, the retention, the levels.
    for value in ("ssm:*", "nginx", "2555", "LOW", "HIGH", "IyEvYmluL2Jhc2g"):
        assert value not in body, value
    assert bucket.objects.get("drift/2026-12-04/alerts/sre.json") is not None


# -- the cycle's pre-flight --------------------------------------------------------------------------------
def test_the_cycles_preflight_records_open_drift_on_what_it_relies_on(
    bucket, state, cloud, mail, monkeypatch, tmp_path
) -> None:
    from patchcycle.config.exceptions import EXCEPTIONS_DIR_ENV
    from patchcycle.operators.inventory import PreflightOperator
    from tests.domain.evidence_packs import HostSpec, inventory_row

    from .stand_ins import cycle_context, recorded_events, run_key, with_plan

    monkeypatch.setenv(EXCEPTIONS_DIR_ENV, str(tmp_path))
    store = EvidenceStore(bucket, "evidence")

    def preflight() -> dict[str, Any]:
        op = PreflightOperator(task_id="preflight", tenant_id="cu_alpha")
        op.__dict__.update(tenant=alpha().model_copy(update={"falcon": None}), store=store)
        info = with_plan(store, {"approved": {}})
        op.execute(cycle_context(info))
        return store.get_record(run_key("preflight.json"))

    store.put_record(
        run_key("inventory.json"), [inventory_row(HostSpec("alpha-dev-01", "nonprod"))], attempt=1
    )
    assert preflight()["drift"] == {
        "dependencies": ["aws_ssm_patch_baseline", "aws_ssm_patch_group", "aws_ssm_document"],
        "status": "no drift report",
    }
    # A drift report of the day before the cycle (2026-11-22), and one after it that the cycle cannot see.
    report(bucket, state, day=dt.date(2026, 11, 21))
    report(bucket, state, day=dt.date(2026, 11, 23))
    bucket.objects = {k: v for k, v in bucket.objects.items() if "preflight" not in k and "/events/" not in k}
    recorded = preflight()["drift"]
    assert recorded["status"] == "read" and recorded["report_date"] == "2026-11-21"
    assert recorded["report_age_days"] == 1
    assert [(d["address"], d["path"]) for d in recorded["drifts"]] == [
        (AL2, "approved_patches_compliance_level")
    ]
    (event,) = [e for e in recorded_events(bucket) if e["action"] == "preflight.drift_read"]
    assert event["result"] == "open drift"
    assert event["details"]["drifts"][0]["changed_by"] == "bob@alpha.example.com"
