"""The drift run's AWS reads: the live reader turns every state resource of a supported type into the
state's shape through the hooks (stand-ins answering what AWS answers, from
``tests/domain/fixtures/drift/api_responses.json``), and the hooks themselves make the calls AWS documents
(botocore's Stubber checks each request against the service model): "not found" is None, other errors
raise, pages are followed, CloudTrail is paced at two requests a second and backs off when throttled."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from devtools.local import aws_connection
from patchcycle.domain.drift import compare_state, read_state
from patchcycle.domain.drift.launch import launch_findings
from patchcycle.domain.drift.state import StateInstance
from patchcycle.hooks import aws_drift
from patchcycle.hooks.aws_drift import (
    CallCounter,
    CloudTrailHook,
    Connection,
    IamReadHook,
    LiveResourceReader,
    SsmConfigHook,
)
from tests.domain.test_drift import CHECKED, INJECTED_DRIFTS, OWNED_BY_CYCLE, UNKNOWN_TYPES

FIXTURES = Path(__file__).parents[1] / "domain" / "fixtures" / "drift"
API = json.loads((FIXTURES / "api_responses.json").read_text())
SCOPE = Connection("aws_cu_alpha", "us-east-1")
EVIDENCE = Connection("patchcycle_evidence", "us-east-1")
FALCON_DOC = "Patchcycle-FalconSensorInstall"


def state(**changes: Any) -> Any:
    document = json.loads((FIXTURES / "state_v4.json").read_text())
    for resource in document["resources"]:
        if resource["type"].startswith("aws_s3_bucket"):
            # As the tenant roots declare it: the evidence bucket through the provider aliased evidence.
            resource["provider"] = 'provider["registry.terraform.io/hashicorp/aws"].evidence'
        resource.update(changes.get(resource["type"], {}))
    return read_state(document)


class FakeClient:
    """What CallCounter needs of a client."""

    def __init__(self, service: str) -> None:
        self.meta = type(
            "Meta",
            (),
            {
                "service_model": type("Model", (), {"service_name": service})(),
                "events": type("Events", (), {"register": lambda *a, **k: None})(),
            },
        )()


class Answers:
    """Stand-ins for the drift hooks answering from the fixture, recording each (hook, connection, call)."""

    def __init__(self) -> None:
        self.api = json.loads(json.dumps(API))
        self.asked: list[tuple[str, Connection, str]] = []

    def hooks(self) -> dict[str, type]:
        answers = self

        class Base:
            service = ""

            def __init__(self, aws_conn_id: str, region_name: str) -> None:
                self.connection = Connection(aws_conn_id, region_name)
                self.conn = FakeClient(self.service)

            def ask(self, call: str) -> None:
                answers.asked.append((type(self).__name__, self.connection, call))

        class Iam(Base):
            service = "iam"

            def role(self, name: str) -> Any:
                self.ask(f"role:{name}")
                return answers.api["iam"]["roles"].get(name)

            def attached_policy_arns(self, name: str) -> Any:
                return answers.api["iam"]["attached"].get(name)

            def role_policy(self, role: str, name: str) -> Any:
                return answers.api["iam"]["role_policies"].get(f"{role}/{name}")

            def policy(self, arn: str) -> Any:
                return answers.api["iam"]["policies"].get(arn)

            def policy_document(self, arn: str, version: str) -> Any:
                return answers.api["iam"]["policy_versions"].get(f"{arn}@{version}")

        class Ssm(Base):
            service = "ssm"

            def patch_baseline(self, baseline_id: str) -> Any:
                self.ask(f"baseline:{baseline_id}")
                return answers.api["ssm"]["baselines"].get(baseline_id)

            def tags(self, kind: str, resource_id: str) -> Any:
                return answers.api["ssm"]["tags"].get(f"{kind}/{resource_id}")

            def patch_groups(self) -> Any:
                self.ask("patch_groups")
                return answers.api["ssm"]["patch_groups"]

            def document(self, name: str) -> Any:
                return answers.api["ssm"]["documents"].get(name)

            def document_content(self, name: str, version: str, document_format: str) -> Any:
                assert (version, document_format) == ("1", "JSON")
                return answers.api["ssm"]["contents"].get(name)

            def document_shared_with(self, name: str) -> Any:
                return answers.api["ssm"]["shared"].get(name)

        class Ec2(Base):
            service = "ec2"

            def launch_template(self, template_id: str) -> Any:
                return answers.api["ec2"]["templates"].get(template_id)

            def versions(self, template_id: str, versions: list[str]) -> Any:
                assert versions == ["$Latest", "$Default"]
                return answers.api["ec2"]["versions"].get(template_id, [])

        class S3(Base):
            service = "s3"

            def bucket(self, name: str) -> Any:
                if name not in answers.api["s3"]["buckets"]:
                    raise aws_drift.BucketGone(name)
                return answers.api["s3"]["buckets"][name]

            def tags(self, name: str) -> Any:
                return self.bucket(name)["tags"]

            def versioning(self, name: str) -> Any:
                return self.bucket(name)["versioning"]

            def object_lock(self, name: str) -> Any:
                self.ask(f"object_lock:{name}")
                return self.bucket(name)["object_lock"]

            def public_access_block(self, name: str) -> Any:
                return self.bucket(name)["public_access_block"]

            def encryption(self, name: str) -> Any:
                return self.bucket(name)["encryption"]

        return {
            "IamReadHook": Iam,
            "SsmConfigHook": Ssm,
            "LaunchTemplateHook": Ec2,
            "BucketSettingsHook": S3,
        }


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Answers:
    found = Answers()
    for name, stand_in in found.hooks().items():
        monkeypatch.setattr(aws_drift, name, stand_in)
    return found


def reader() -> LiveResourceReader:
    return LiveResourceReader({"": SCOPE, "evidence": EVIDENCE})


# -- the live reader -----------------------------------------------------------------------------------
def test_the_live_view_read_through_the_hooks_finds_exactly_the_injected_drifts(answers) -> None:
    tf = state()
    live = reader().read(tf.managed())
    result = compare_state(tf, live.live, scope="aws:111111111111:us-east-1")
    found = {(d.address, d.path) for d in result.differences if d.classification == "drift"}
    assert found == INJECTED_DRIFTS
    owned = {(d.address, d.path) for d in result.differences if d.classification == "owned_by_cycle"}
    assert owned == OWNED_BY_CYCLE
    assert set(result.checked) == CHECKED
    assert {u.address for u in result.unchecked} == UNKNOWN_TYPES
    assert live.unread == {}


def test_what_is_gone_live_is_none_and_each_deleted_object_is_drift(answers) -> None:
    del answers.api["iam"]["role_policies"]["patchcycle-orchestrator-cu_alpha/patchcycle-ssm"]
    del answers.api["ec2"]["templates"]["lt-0abc0000000000001"]
    answers.api["s3"]["buckets"].clear()  # the whole bucket: every setting of it goes with it
    live = reader().read(state().managed())
    gone = {address for address, attributes in live.live.items() if attributes is None}
    assert gone == {
        "aws_iam_role_policy.orchestrator_ssm",
        "aws_launch_template.fleet",
        "aws_s3_bucket.evidence",
        "aws_s3_bucket_object_lock_configuration.evidence",
        "aws_s3_bucket_public_access_block.evidence",
        "aws_s3_bucket_server_side_encryption_configuration.evidence",
        "aws_s3_bucket_versioning.evidence",
    }


def test_each_resource_is_read_through_its_provider_configurations_connection(answers) -> None:
    reader().read(state().managed())
    by_hook = {(hook, connection) for hook, connection, _ in answers.asked}
    assert ("S3", EVIDENCE) in by_hook and ("S3", SCOPE) not in by_hook
    assert {c for h, c in by_hook if h != "S3"} == {SCOPE}


def test_a_provider_configuration_without_a_connection_leaves_its_resources_unread(answers) -> None:
    live = LiveResourceReader({"": SCOPE}).read(state().managed())
    assert set(live.unread) == {a for a in CHECKED if "aws_s3_bucket" in a}
    assert all("aws.evidence" in why for why in live.unread.values())
    tf = state()
    result = compare_state(tf, live.live, scope="s")
    assert {u.address for u in result.unchecked} == UNKNOWN_TYPES | set(live.unread)


def test_reads_several_resources_share_are_made_once(answers) -> None:
    reader().read(state().managed())
    calls = [call for _, _, call in answers.asked]
    # Each baseline is read once, for itself and for its patch group (GetPatchBaseline's PatchGroups);
    # nothing moved, so no DescribePatchGroups listing at all.
    assert calls.count("baseline:pb-0a1b2c3d4e5f60001") == calls.count("baseline:pb-0a1b2c3d4e5f60002") == 1
    assert calls.count("patch_groups") == 0
    assert calls.count("object_lock:patchcycle-evidence-cu-alpha") == 1  # the bucket and its lock


def test_a_patch_group_moved_to_another_baseline_shows_the_baseline_it_has_now(answers) -> None:
    answers.api["ssm"]["patch_groups"][0]["BaselineIdentity"]["BaselineId"] = "pb-0ffffffffffffffff"
    answers.api["ssm"]["baselines"]["pb-0a1b2c3d4e5f60001"]["PatchGroups"] = []
    tf = state()
    result = compare_state(tf, reader().read(tf.managed()).live, scope="s")
    assert [call for _, _, call in answers.asked].count("patch_groups") == 1  # listed once, when needed
    (moved,) = [d for d in result.differences if d.type == "aws_ssm_patch_group"]
    assert (moved.path, moved.declared, moved.live) == (
        "baseline_id",
        "pb-0a1b2c3d4e5f60001",
        "pb-0ffffffffffffffff",
    )


def test_the_latest_and_default_launch_template_versions_are_read_and_only_the_latest_lacks_the_bootstrap(
    answers,
) -> None:
    tf = state()
    live = reader().read(tf.managed())
    versions = live.launch_versions["aws_launch_template.fleet"]
    assert [(v.label, v.number) for v in versions] == [("latest", 4), ("default", 3)]
    declared = next(i.attributes for i in tf.managed() if i.address == "aws_launch_template.fleet")
    (finding,) = launch_findings("aws:1:r", "aws_launch_template.fleet", "fleet", declared, versions)
    assert finding.versions == ("latest (4)",)
    assert finding.problems == ("its user data neither installs nor starts the SSM agent (amazon-ssm-agent)",)
    # A default version that loses its instance profile too is its own finding.
    answers.api["ec2"]["versions"]["lt-0abc0000000000001"][1]["LaunchTemplateData"].pop("IamInstanceProfile")
    versions = reader().read(tf.managed()).launch_versions["aws_launch_template.fleet"]
    found = launch_findings("aws:1:r", "aws_launch_template.fleet", "fleet", declared, versions)
    assert [f.versions for f in found] == [("latest (4)",), ("default (3)",)]
    assert found[1].problems == ("it has no instance profile, so the agent cannot register",)


def test_a_state_resource_without_its_identity_is_left_unread(answers) -> None:
    tf = state()
    broken = [
        i
        if i.address != "aws_iam_role.orchestrator"
        else type(i)(**{**i.__dict__, "attributes": {"path": "/"}})
        for i in tf.managed()
    ]
    live = reader().read(broken)
    assert "has none of name, id" in live.unread["aws_iam_role.orchestrator"]


# -- the hooks against botocore's models ----------------------------------------------------------------
@pytest.fixture
def connection(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DRIFT", aws_connection("http://127.0.0.1:9", "us-east-1"))
    return "aws_drift"


def stubbed(hook: Any) -> Stubber:
    stubber = Stubber(hook.conn)
    stubber.activate()
    return stubber


def test_a_baseline_that_does_not_exist_is_none_and_other_errors_raise(connection) -> None:
    hook = SsmConfigHook(aws_conn_id=connection, region_name="us-east-1")
    stub = stubbed(hook)
    stub.add_client_error(
        "get_patch_baseline", "DoesNotExistException", expected_params={"BaselineId": "pb-0a1b2c3d4e5f60001"}
    )
    stub.add_client_error("get_patch_baseline", "AccessDeniedException")
    assert hook.patch_baseline("pb-0a1b2c3d4e5f60001") is None
    with pytest.raises(ClientError, match="AccessDenied"):
        hook.patch_baseline("pb-0a1b2c3d4e5f60001")
    stub.assert_no_pending_responses()


def test_patch_groups_are_listed_at_the_api_maximum_page_across_pages(connection) -> None:
    hook = SsmConfigHook(aws_conn_id=connection, region_name="us-east-1")
    counter = CallCounter()
    counter.attach(hook.conn)
    stub = stubbed(hook)
    mapping = API["ssm"]["patch_groups"]
    stub.add_response(
        "describe_patch_groups", {"Mappings": mapping[:1], "NextToken": "t"}, {"MaxResults": 100}
    )
    stub.add_response(
        "describe_patch_groups", {"Mappings": mapping[1:]}, {"MaxResults": 100, "NextToken": "t"}
    )
    assert [m["PatchGroup"] for m in hook.patch_groups()] == [m["PatchGroup"] for m in mapping]
    assert counter.calls == {"ssm.DescribePatchGroups": 2}


def test_iam_documents_arrive_decoded_and_a_missing_inline_policy_is_none(connection) -> None:
    hook = IamReadHook(aws_conn_id=connection, region_name="us-east-1")
    stub = stubbed(hook)
    stub.add_response(
        "get_role_policy",
        {"RoleName": "r", "PolicyName": "p", "PolicyDocument": "%7B%22Version%22%3A%222012-10-17%22%7D"},
        {"RoleName": "r", "PolicyName": "p"},
    )
    stub.add_client_error("get_role_policy", "NoSuchEntity", http_status_code=404)
    assert hook.role_policy("r", "p") == {"Version": "2012-10-17"}  # botocore URL-decodes IAM documents
    assert hook.role_policy("r", "p") is None


class Clock:
    """A clock the hook's pacing reads and sleeps on, without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.requests: list[float] = []
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(CloudTrailHook, "clock", staticmethod(fake.time))
    monkeypatch.setattr(CloudTrailHook, "sleep", staticmethod(fake.sleep))
    monkeypatch.setattr(CloudTrailHook, "_last_request", {})
    return fake


def test_cloudtrail_lookups_follow_every_page_at_two_requests_a_second(connection, clock) -> None:
    hook = CloudTrailHook(aws_conn_id=connection, region_name="us-east-1")
    hook.conn.meta.events.register("before-call.*.*", lambda **_: clock.requests.append(clock.now))
    stub = stubbed(hook)
    start, end = dt.datetime(2026, 9, 5, tzinfo=dt.UTC), dt.datetime(2026, 12, 4, 6, tzinfo=dt.UTC)
    attribute = [{"AttributeKey": "ResourceName", "AttributeValue": "lt-0abc0000000000001"}]
    base = {"LookupAttributes": attribute, "StartTime": start, "EndTime": end, "MaxResults": 50}
    events = [{"EventId": f"e{i}", "EventName": "CreateLaunchTemplateVersion"} for i in range(3)]
    stub.add_response("lookup_events", {"Events": events[:2], "NextToken": "n1"}, base)
    stub.add_response("lookup_events", {"Events": events[2:]}, {**base, "NextToken": "n1"})
    stub.add_response("lookup_events", {"Events": []}, {**base, "LookupAttributes": [
        {"AttributeKey": "EventName", "AttributeValue": "UpdatePatchBaseline"}]})  # fmt: skip
    assert [e["EventId"] for e in hook.lookup_events("lt-0abc0000000000001", start, end)] == [
        "e0",
        "e1",
        "e2",
    ]
    assert hook.lookup_events_named("UpdatePatchBaseline", start, end) == []
    gaps = [b - a for a, b in zip(clock.requests, clock.requests[1:], strict=False)]
    assert len(clock.requests) == 3 and all(gap >= 0.5 for gap in gaps), gaps
    stub.assert_no_pending_responses()


def test_a_throttled_lookup_backs_off_and_is_sent_again_then_gives_up(connection, clock) -> None:
    hook = CloudTrailHook(aws_conn_id=connection, region_name="us-east-1")
    stub = stubbed(hook)
    start, end = dt.datetime(2026, 9, 5, tzinfo=dt.UTC), dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    stub.add_client_error("lookup_events", "ThrottlingException", http_status_code=400)
    stub.add_client_error("lookup_events", "ThrottlingException", http_status_code=400)
    stub.add_response("lookup_events", {"Events": [{"EventId": "e1"}]})
    assert hook.lookup_events("pb-1", start, end) == [{"EventId": "e1"}]
    assert hook.throttled == 2
    assert [s for s in clock.sleeps if s >= 1] == [1.0, 2.0]  # backoff, besides the pacing
    for _ in range(aws_drift.CLOUDTRAIL_THROTTLE_RETRIES + 1):
        stub.add_client_error("lookup_events", "ThrottlingException", http_status_code=400)
    with pytest.raises(ClientError, match="Throttling"):
        hook.lookup_events("pb-1", start, end)


# -- Auto Scaling groups, against moto's server over HTTP -------------------------------------------------
@pytest.fixture(scope="module")
def moto_url() -> Any:
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def test_the_tenants_auto_scaling_groups_are_judged_on_what_they_launch(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("AIRFLOW_CONN_AWS_ASG", aws_connection(moto_url, "us-east-1"))
    session = boto3.Session(aws_access_key_id="fleetsim", aws_secret_access_key="fleetsim")
    ec2 = session.client("ec2", region_name="us-east-1", endpoint_url=moto_url)
    autoscaling = session.client("autoscaling", region_name="us-east-1", endpoint_url=moto_url)
    profile = {"Name": "patchcycle-ssm-instance-cu_alpha"}
    bare = {
        "ImageId": "ami-12c6146b",
        "UserData": _b64("yum -y install nginx"),
        "IamInstanceProfile": profile,
    }
    booted = {**bare, "UserData": _b64("systemctl enable --now amazon-ssm-agent")}
    template = ec2.create_launch_template(LaunchTemplateName="asg-fleet", LaunchTemplateData=bare)
    template_id = template["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=template_id, LaunchTemplateData=booted)
    ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion="2")  # latest and default fine
    other = ec2.create_launch_template(LaunchTemplateName="someone-elses", LaunchTemplateData=bare)
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="asg-legacy", ImageId="ami-12c6146b", InstanceType="t3.micro", UserData="echo"
    )
    zones = {"MinSize": 0, "MaxSize": 1, "AvailabilityZones": ["us-east-1a"]}
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="asg-pinned",
        LaunchTemplate={"LaunchTemplateId": template_id, "Version": "1"},
        **zones,
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="asg-latest",
        LaunchTemplate={"LaunchTemplateName": "asg-fleet", "Version": "$Latest"},
        **zones,
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="asg-legacy",
        LaunchConfigurationName="asg-legacy",
        Tags=[{"Key": "patchcycle:tenant", "Value": "cu_alpha", "PropagateAtLaunch": True}],
        **zones,
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="asg-not-ours",
        LaunchTemplate={"LaunchTemplateId": other["LaunchTemplate"]["LaunchTemplateId"], "Version": "1"},
        **zones,
    )
    managed = StateInstance(
        "aws_launch_template.fleet",
        "managed",
        "aws_launch_template",
        "fleet",
        'provider["registry.terraform.io/hashicorp/aws"]',
        {"id": template_id, "name": "asg-fleet", "iam_instance_profile": [{"arn": "", **profile}]},
    )
    live = LiveResourceReader({"": Connection("aws_asg", "us-east-1")})
    found = {f.group: f for f in live.read_groups("aws:1:us-east-1", "cu_alpha", [managed])}
    assert set(found) == {"asg-pinned", "asg-legacy"}  # asg-latest is clean; asg-not-ours not ours
    pinned = found["asg-pinned"]
    assert (
        pinned.checked and pinned.source == "launch template asg-fleet (aws_launch_template.fleet) version 1"
    )
    assert pinned.problems == ("its user data neither installs nor starts the SSM agent (amazon-ssm-agent)",)
    legacy = found["asg-legacy"]
    assert legacy.source == "launch configuration asg-legacy" and len(legacy.problems) == 2
    assert live.counter.calls["autoscaling.DescribeAutoScalingGroups"] == 1
    assert live.counter.calls["autoscaling.DescribeLaunchConfigurations"] == 1


def test_auto_scaling_groups_are_listed_at_the_api_maximum_page_across_pages(connection) -> None:
    hook = aws_drift.AutoScalingHook(aws_conn_id=connection, region_name="us-east-1")
    stub = stubbed(hook)
    group = {
        "AutoScalingGroupName": "a",
        "MinSize": 0,
        "MaxSize": 1,
        "DesiredCapacity": 0,
        "DefaultCooldown": 300,
        "AvailabilityZones": ["us-east-1a"],
        "HealthCheckType": "EC2",
        "CreatedTime": dt.datetime(2026, 1, 1),
    }
    stub.add_response(
        "describe_auto_scaling_groups", {"AutoScalingGroups": [group], "NextToken": "t"}, {"MaxRecords": 100}
    )
    stub.add_response(
        "describe_auto_scaling_groups",
        {"AutoScalingGroups": [{**group, "AutoScalingGroupName": "b"}]},
        {"MaxRecords": 100, "NextToken": "t"},
    )
    assert [g["AutoScalingGroupName"] for g in hook.groups()] == ["a", "b"]
    stub.assert_no_pending_responses()
