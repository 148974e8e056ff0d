"""fleetsim's SSM, EC2 and RDS add-on answers against AWS's machine-readable contract.

The contract is botocore's service model (ssm-2014-11-06, ec2-2016-11-15, rds-2014-10-31), the same JSON
AWS publishes the API references from. Each response the SDK parses is walked against its operation's
output shape: a member the shape lacks, a wrong type, a missing required member, a value outside an
enum, or a string or list outside its length limits fails the test. Each test's docstring names the
vendor document whose behaviour it drives.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from botocore.model import Shape
from fleetsim_testkit import OLD, group, patch, running, scenario_dict, wait_command

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-conformance")]

ACCOUNT = "111111111111"
BUCKET = "pc-evidence-conformance"
DOC = "AWS-RunPatchBaseline"

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "alpha",
            "aws": {
                "account_id": ACCOUNT,
                "region": "us-east-1",
                "groups": [
                    group("al2", 2),
                    group("win", 1, "windows_2019"),
                    group("ubu", 1, "ubuntu_22_04"),
                    group("rhel", 1, "rhel_9"),
                ],
                "databases": [{"prefix": "pg", "count": 1, "environment": "prod"}],
            },
            "faults": {"install_fails": ["al2-02"]},
        }
    ],
    catalog=[
        patch("ALAS2-A", "amazon_linux_2", title="openssl-1.0.2k-24.amzn2.0.14", cves=["CVE-2024-53104"]),
        patch("ALAS2-L", "amazon_linux_2", severity="Low", title="curl-8.3.0-1.amzn2.0.9"),
        patch(
            "KB5046615", "windows_2019", classification="SecurityUpdates", title="2026-11 Cumulative Update"
        ),
        patch("USN-7141-1", "ubuntu_22_04", severity="Important", title="openssl 3.0.2-0ubuntu1.19"),
        patch("RHSA-2026:9077", "rhel_9", title="glibc-2.34-125.el9_5.1"),
    ],
    evidence={"buckets": [BUCKET]},
)

# Where the contract and a documented behaviour disagree, the documented exception, narrowly:
# InstancePatchState.PatchGroup is required with a minimum length of 1, but a node outside every patch
# group has no group name to report; fleetsim reports "" (user guide "Patch groups": such a node uses
# the default baseline). Nothing else is exempt.
EXEMPT = {("InstancePatchState", "PatchGroup", "")}


def violations(shape: Shape, value: Any, path: str = "$") -> Iterator[str]:
    """Every way ``value`` (as botocore parsed it) breaks ``shape``."""
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            yield f"{path}: {shape.name} expects a structure, got {type(value).__name__}"
            return
        for name in value:
            if name not in shape.members:
                yield f"{path}.{name}: not a member of {shape.name}"
        for name in shape.required_members:
            if name not in value:
                yield f"{path}.{name}: required member of {shape.name} missing"
        for name, member in shape.members.items():
            if name in value:
                if isinstance(value[name], str) and (shape.name, name, value[name]) in EXEMPT:
                    continue
                yield from violations(member, value[name], f"{path}.{name}")
    elif kind == "list":
        if not isinstance(value, list):
            yield f"{path}: {shape.name} expects a list, got {type(value).__name__}"
            return
        if "min" in meta and len(value) < meta["min"] or "max" in meta and len(value) > meta["max"]:
            yield f"{path}: {len(value)} items outside {shape.name} [{meta.get('min')}, {meta.get('max')}]"
        for i, item in enumerate(value):
            yield from violations(shape.member, item, f"{path}[{i}]")
    elif kind == "map":
        if not isinstance(value, dict):
            yield f"{path}: {shape.name} expects a map"
            return
        for k, v in value.items():
            yield from violations(shape.key, k, f"{path}<key>")
            yield from violations(shape.value, v, f"{path}[{k!r}]")
    elif kind == "string":
        if not isinstance(value, str):
            yield f"{path}: {shape.name} expects a string, got {type(value).__name__}"
            return
        if shape.enum and value not in shape.enum:
            yield f"{path}: {value!r} not in {shape.name} enum {shape.enum}"
        if "min" in meta and len(value) < meta["min"] or "max" in meta and len(value) > meta["max"]:
            yield f"{path}: length {len(value)} outside {shape.name} [{meta.get('min')}, {meta.get('max')}]"
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            yield f"{path}: {shape.name} expects an integer, got {value!r}"
        elif "min" in meta and value < meta["min"] or "max" in meta and value > meta["max"]:
            yield f"{path}: {value} outside {shape.name} [{meta.get('min')}, {meta.get('max')}]"
    elif kind == "boolean":
        if not isinstance(value, bool):
            yield f"{path}: {shape.name} expects a boolean, got {value!r}"
    elif kind in ("double", "float"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            yield f"{path}: {shape.name} expects a number, got {value!r}"
    elif kind == "timestamp":
        if not isinstance(value, dt.datetime):
            yield f"{path}: {shape.name} expects a timestamp, got {value!r}"


class Recorder:
    """Keeps every parsed response of the clients it is attached to ('after-call' event hook)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def attach(self, client: Any) -> Any:
        client.meta.events.register("after-call.*.*", self._record)
        return client

    def _record(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if http_response.status_code < 300:
            self.calls.append((model, {k: v for k, v in parsed.items() if k != "ResponseMetadata"}))

    def assert_conforms(self) -> set[str]:
        problems = [
            f"{model.name}: {v}"
            for model, parsed in self.calls
            if model.output_shape is not None
            for v in violations(model.output_shape, parsed)
        ]
        assert not problems, "\n".join(problems)
        return {model.name for model, _ in self.calls}


@pytest.fixture(scope="module")
def fleet():
    with running(SCENARIO) as f:
        yield f


def _clients(fleet, recorder: Recorder) -> tuple[Any, Any, Any]:
    import boto3

    creds = fleet.credentials(ACCOUNT)
    make = lambda service: recorder.attach(  # noqa: E731 - three alike clients
        boto3.client(service, endpoint_url=fleet.url, region_name="us-east-1", **creds)
    )
    return make("ssm"), make("ec2"), make("rds")


def test_describe_available_patches_conforms_and_answers_only_documented_products(fleet):
    """API reference, DescribeAvailablePatches
    (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DescribeAvailablePatches.html):
    "Currently, DescribeAvailablePatches supports only the Amazon Linux 1, Amazon Linux 2, and Windows
    Server operating systems"; Linux rows carry Name, Epoch, Version, Release, Arch, Severity."""
    recorder = Recorder()
    ssm, _, _ = _clients(fleet, recorder)
    al2 = ssm.describe_available_patches(Filters=[{"Key": "PRODUCT", "Values": ["AmazonLinux2"]}])["Patches"]
    assert {p["Name"] for p in al2} == {"openssl", "curl"}
    openssl = next(p for p in al2 if p["Name"] == "openssl")
    assert (openssl["Epoch"], openssl["Version"], openssl["Release"], openssl["Arch"]) == (
        0,
        "1.0.2k",
        "24.amzn2.0.14",
        "x86_64",
    )
    assert openssl["CVEIds"] == ["CVE-2024-53104"] and openssl["ReleaseDate"].date().isoformat() == OLD
    win = ssm.describe_available_patches(Filters=[{"Key": "PRODUCT", "Values": ["WindowsServer2019"]}])
    assert [p["KbNumber"] for p in win["Patches"]] == ["KB5046615"]
    for product in ("Ubuntu22.04", "RedhatEnterpriseLinux9.2", "AmazonLinux2023", "CentOS7.9"):
        answer = ssm.describe_available_patches(Filters=[{"Key": "PRODUCT", "Values": [product]}])
        assert answer["Patches"] == [], product
    assert {p["Product"] for p in ssm.describe_available_patches()["Patches"]} == {
        "AmazonLinux2",
        "WindowsServer2019",
    }
    with pytest.raises(ssm.exceptions.ClientError):  # "the following command fails": no PRODUCT
        ssm.describe_available_patches(Filters=[{"Key": "CVE_ID", "Values": ["CVE-2024-53104"]}])
    recorder.assert_conforms()


def test_patching_responses_conform(fleet):
    """AWS-RunPatchBaseline Scan and Install (user guide, "SSM Command document for patching:
    AWS-RunPatchBaseline") read back through DescribeInstancePatchStates, DescribeInstancePatches,
    ListCommands, ListCommandInvocations, GetCommandInvocation and DescribeInstanceInformation, each
    against its API reference output shape."""
    recorder = Recorder()
    ssm, ec2, _ = _clients(fleet, recorder)
    truth = fleet.truth("alpha")
    hosts = [truth[n]["host_id"] for n in ("al2-01", "al2-02", "win-01", "ubu-01", "rhel-01")]
    ssm.describe_instance_information()
    body = yaml.safe_dump({"patches": [{"id": "openssl.x86_64"}]}).encode()
    fleet.evidence_s3().put_object(Bucket=BUCKET, Key="o.yaml", Body=body)
    for params in (
        {"Operation": ["Scan"]},
        {
            "Operation": ["Install"],
            "RebootOption": ["NoReboot"],
            "InstallOverrideList": [f"s3://{BUCKET}/o.yaml"],
        },
        {"Operation": ["Install"]},
    ):
        command_id = ssm.send_command(
            DocumentName=DOC, InstanceIds=hosts, Parameters=params, MaxErrors="100%"
        )["Command"]["CommandId"]
        wait_command(ssm, command_id)
        ssm.list_command_invocations(CommandId=command_id, Details=True)
        ssm.get_command_invocation(CommandId=command_id, InstanceId=hosts[0])
    states = ssm.describe_instance_patch_states(InstanceIds=hosts)["InstancePatchStates"]
    assert {s["Operation"] for s in states} == {"Install"}
    for host_id in hosts:
        ssm.describe_instance_patches(InstanceId=host_id)
    ec2.describe_instances(InstanceIds=hosts)
    names = recorder.assert_conforms()
    assert {"DescribeInstancePatchStates", "DescribeInstancePatches", "SendCommand"} <= names


def test_patch_baseline_responses_conform_and_ubuntu_refuses_approval_dates(fleet):
    """API reference PatchRule (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PatchRule.html):
    ApproveAfterDays and ApproveUntilDate are "Not supported for Debian Server or Ubuntu Server", and
    elsewhere a rule must have one of them; UpdatePatchBaseline / GetPatchBaseline outputs per their
    API references; RegisterPatchBaselineForPatchGroup, "one patch baseline for each operating system"
    (user guide, "Patch groups")."""
    recorder = Recorder()
    ssm, _, _ = _clients(fleet, recorder)
    rule = {"PatchFilterGroup": {"PatchFilters": [{"Key": "CLASSIFICATION", "Values": ["Security"]}]}}
    # Ubuntu's rules filter on PRODUCT and PRIORITY only (DescribePatchProperties for UBUNTU).
    ubuntu_rule = {"PatchFilterGroup": {"PatchFilters": [{"Key": "PRODUCT", "Values": ["*"]}]}}
    with pytest.raises(ssm.exceptions.ClientError) as exc:
        ssm.create_patch_baseline(
            Name="ubuntu-dated",
            OperatingSystem="UBUNTU",
            ApprovalRules={"PatchRules": [{**ubuntu_rule, "ApproveAfterDays": 7}]},
        )
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert "ApproveAfterDays" in exc.value.response["Error"]["Message"]
    with pytest.raises(ssm.exceptions.ClientError):
        ssm.create_patch_baseline(
            Name="al2-undated", OperatingSystem="AMAZON_LINUX_2", ApprovalRules={"PatchRules": [rule]}
        )
    ubuntu = ssm.create_patch_baseline(
        Name="ubuntu-ok", OperatingSystem="UBUNTU", ApprovalRules={"PatchRules": [ubuntu_rule]}
    )
    al2 = ssm.create_patch_baseline(
        Name="al2-frozen",
        OperatingSystem="AMAZON_LINUX_2",
        ApprovalRules={
            "PatchRules": [{**rule, "ApproveUntilDate": "2020-01-01", "ComplianceLevel": "CRITICAL"}]
        },
    )["BaselineId"]
    ssm.register_patch_baseline_for_patch_group(BaselineId=al2, PatchGroup="conformance")
    ssm.register_patch_baseline_for_patch_group(BaselineId=ubuntu["BaselineId"], PatchGroup="conformance")
    other = ssm.create_patch_baseline(
        Name="al2-other",
        OperatingSystem="AMAZON_LINUX_2",
        ApprovalRules={"PatchRules": [{**rule, "ApproveAfterDays": 0}]},
    )["BaselineId"]
    with pytest.raises(ssm.exceptions.ClientError) as exc:
        ssm.register_patch_baseline_for_patch_group(BaselineId=other, PatchGroup="conformance")
    assert exc.value.response["Error"]["Code"] == "AlreadyExistsException"
    updated = ssm.update_patch_baseline(
        BaselineId=al2,
        ApprovalRules={"PatchRules": [{**rule, "ApproveAfterDays": 0, "ComplianceLevel": "CRITICAL"}]},
    )
    assert updated["ApprovalRules"]["PatchRules"][0]["ApproveAfterDays"] == 0
    assert ssm.get_patch_baseline(BaselineId=al2)["PatchGroups"] == ["conformance"]
    recorder.assert_conforms()


def test_patch_group_baseline_decides_the_counts(fleet):
    """User guide, "Patch groups" (tag key `Patch Group` or `PatchGroup`) and AWS-RunPatchBaseline,
    "InstallOverrideList": counts are measured against the baseline the node's patch group uses, its
    BaselineId and PatchGroup reported, and the rule's ComplianceLevel CRITICAL drives
    CriticalNonCompliantCount (API reference, InstancePatchState)."""
    recorder = Recorder()
    ssm, ec2, _ = _clients(fleet, recorder)
    rule = {"PatchFilterGroup": {"PatchFilters": [{"Key": "CLASSIFICATION", "Values": ["Security"]}]}}
    strict = ssm.create_patch_baseline(
        Name="al2-all-security",
        OperatingSystem="AMAZON_LINUX_2",
        ApprovalRules={"PatchRules": [{**rule, "ApproveAfterDays": 0, "ComplianceLevel": "CRITICAL"}]},
    )["BaselineId"]
    ssm.register_patch_baseline_for_patch_group(BaselineId=strict, PatchGroup="strict")
    host_id = fleet.truth("alpha")["al2-01"]["host_id"]
    ec2.create_tags(Resources=[host_id], Tags=[{"Key": "PatchGroup", "Value": "strict"}])
    # Another test installed openssl; curl (Low) is approved only by the strict baseline.
    wait_command(
        ssm,
        ssm.send_command(DocumentName=DOC, InstanceIds=[host_id], Parameters={"Operation": ["Scan"]})[
            "Command"
        ]["CommandId"],
    )
    (state,) = ssm.describe_instance_patch_states(InstanceIds=[host_id])["InstancePatchStates"]
    assert (state["BaselineId"], state["PatchGroup"]) == (strict, "strict")
    assert state["MissingCount"] == 1 and state["CriticalNonCompliantCount"] == 1
    recorder.assert_conforms()
