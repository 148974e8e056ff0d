"""The daily drift report of a tenant with 3 AWS accounts x 2 regions and 500 Terraform-managed resources,
against fleetsim: wall time of the report task and the API calls it makes, by call.

    .venv/bin/python benchmarks/bench_iac_drift.py [--resources 500] [--drifts-per-scope 2]

It starts fleetsim (no hosts), then, for each of the six scopes, creates the resources a tenant's
Terraform would manage there through boto3 (IAM roles with inline and attached managed policies, SSM
patch baselines with their patch groups, SSM documents, launch templates whose user data bootstraps the
SSM agent; the evidence bucket's five settings in the platform's account for the first scope; and a few
resources of a type the report does not know), and writes each scope's state (format version 4) to the
platform's state bucket. The state's attributes are the live objects read back once through the product's
own live reader (the benchmark measures cost, not the reader's shapes, which the tests hold to the
provider's). Then a person (an IAM user) makes console edits: per scope, an inline policy widened and a
baseline's compliance level lowered; in the first scope also a launch template version without the SSM
bootstrap made the default, and the evidence bucket's Object Lock retention shortened. Finally the
``report`` task of ``iac_drift__<tenant>`` runs in this process (``DriftReportOperator.execute``), its
evidence written to the evidence bucket in fleetsim, and the figures are printed as one JSON document:
wall time, fleetsim's count of every API call the run made (read from ``/fleetsim/calls`` before and
after), the drifts found against those injected, and who CloudTrail named.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "plugins"))

from devtools.local import aws_connection, fleetsim_get, running_fleetsim  # noqa: E402

TENANT = "cu_bench"
ACCOUNTS = ("210000000001", "210000000002", "210000000003")
REGIONS = ("us-east-1", "us-west-2")
PLATFORM_ACCOUNT = "123456789012"  # fleetsim's default account: the platform's (no role_arn)
EVIDENCE_BUCKET = "patchcycle-evidence-cu-bench"
STATE_BUCKET = "patchcycle-terraform-state"
PROVIDER = 'provider["registry.terraform.io/hashicorp/aws"]'
TAGS = [{"Key": "patchcycle:tenant", "Value": TENANT}]
TERRAFORM = "arn:aws:sts::{account}:assumed-role/patchcycle-terraform/terraform"  # who applied
BOOTSTRAP = "#!/bin/bash\nyum install -y amazon-ssm-agent\nsystemctl enable --now amazon-ssm-agent\n"
# Per scope, by type: 40 IAM, 26 SSM, 14 launch templates, 3 of a type the report does not know = 83;
# x 6 scopes = 498, + the evidence bucket's 5 settings in the first scope = 503, less the first scope's
# 3 of the unknown type = 500.
MIX = {
    "aws_iam_role": 16,
    "aws_iam_role_policy": 16,
    "aws_iam_policy": 8,
    "aws_ssm_patch_baseline": 10,
    "aws_ssm_patch_group": 10,
    "aws_ssm_document": 6,
    "aws_launch_template": 14,
    "aws_sns_topic": 3,
}


def credentials(url: str, account: str | None) -> dict[str, str]:
    """Keys for fleetsim's AWS in ``account`` (a role assumed into it), or the platform's own."""
    keys = {"aws_access_key_id": "fleetsim", "aws_secret_access_key": "fleetsim"}
    if account is None:
        return keys
    sts = boto3.client("sts", endpoint_url=url, region_name="us-east-1", **keys)
    c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/PatchcycleExecution", RoleSessionName="bench")
    return {
        "aws_access_key_id": c["Credentials"]["AccessKeyId"],
        "aws_secret_access_key": c["Credentials"]["SecretAccessKey"],
        "aws_session_token": c["Credentials"]["SessionToken"],
    }


def client(url: str, service: str, region: str, keys: dict[str, str]) -> Any:
    return boto3.client(service, endpoint_url=url, region_name=region, **keys)


def policy(actions: list[str]) -> str:
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    )


def state_resource(rtype: str, name: str, attributes: dict[str, Any], alias: str = "") -> dict[str, Any]:
    return {
        "mode": "managed",
        "type": rtype,
        "name": name,
        "provider": PROVIDER + (f".{alias}" if alias else ""),
        "instances": [{"schema_version": 0, "attributes": attributes, "sensitive_attributes": []}],
    }


def create_scope(url: str, account: str, region: str, index: int, first: bool) -> list[dict[str, Any]]:
    """Create the scope's resources; return their state resources with identity attributes only (the
    rest is filled from the live read)."""
    keys = credentials(url, account)
    iam, ssm, ec2 = (client(url, s, region, keys) for s in ("iam", "ssm", "ec2"))
    tag = region.replace("-", "")
    resources: list[dict[str, Any]] = []
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    arns = []
    for i in range(MIX["aws_iam_policy"]):
        arn = iam.create_policy(
            PolicyName=f"bench-{tag}-p{i}", PolicyDocument=policy(["s3:GetObject"]), Tags=TAGS
        )["Policy"]["Arn"]
        arns.append(arn)
        resources.append(state_resource("aws_iam_policy", f"p{i}", {"arn": arn, "id": arn}))
    for i in range(MIX["aws_iam_role"]):
        role = f"bench-{tag}-r{i}"
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust, Description=f"role {i}", Tags=TAGS)
        iam.attach_role_policy(RoleName=role, PolicyArn=arns[i % len(arns)])
        resources.append(state_resource("aws_iam_role", f"r{i}", {"name": role, "id": role}))
        iam.put_role_policy(RoleName=role, PolicyName="inline", PolicyDocument=policy(["ssm:SendCommand"]))
        resources.append(
            state_resource(
                "aws_iam_role_policy", f"r{i}", {"role": role, "name": "inline", "id": f"{role}:inline"}
            )
        )
    for i in range(MIX["aws_ssm_patch_baseline"]):
        name = f"bench-{tag}-al2-{i}"
        baseline_id = ssm.create_patch_baseline(
            Name=name,
            OperatingSystem="AMAZON_LINUX_2",
            Description="bench",
            ApprovalRules={
                "PatchRules": [
                    {
                        "PatchFilterGroup": {
                            "PatchFilters": [
                                {"Key": "CLASSIFICATION", "Values": ["Security"]},
                                {"Key": "SEVERITY", "Values": ["Critical", "Important"]},
                            ]
                        },
                        "ComplianceLevel": "HIGH",
                        "ApproveAfterDays": 7,
                    }
                ]
            },
            ApprovedPatchesComplianceLevel="HIGH",
        )["BaselineId"]
        ssm.register_patch_baseline_for_patch_group(BaselineId=baseline_id, PatchGroup=name)
        resources.append(state_resource("aws_ssm_patch_baseline", f"b{i}", {"id": baseline_id, "name": name}))
        resources.append(
            state_resource(
                "aws_ssm_patch_group",
                f"b{i}",
                {"baseline_id": baseline_id, "patch_group": name, "id": f"{name},{baseline_id}"},
            )
        )
    for i in range(MIX["aws_ssm_document"]):
        name = f"Bench-{tag}-Doc{i}"
        content = {"schemaVersion": "2.2", "description": "bench", "mainSteps": [
            {"action": "aws:runShellScript", "name": "run", "inputs": {"runCommand": ["true"]}}]}  # fmt: skip
        ssm.create_document(
            Name=name, Content=json.dumps(content), DocumentType="Command", DocumentFormat="JSON", Tags=TAGS
        )
        resources.append(state_resource("aws_ssm_document", f"d{i}", {"name": name, "id": name}))
    user_data = base64.b64encode(BOOTSTRAP.encode()).decode()
    for i in range(MIX["aws_launch_template"]):
        name = f"bench-{tag}-lt{i}"
        template = ec2.create_launch_template(
            LaunchTemplateName=name,
            LaunchTemplateData={
                "ImageId": "ami-0123456789abcdef0",
                "InstanceType": "t3.medium",
                "UserData": user_data,
                "IamInstanceProfile": {"Name": "bench-ssm-instance"},
                "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            },
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": TAGS}],
        )["LaunchTemplate"]
        resources.append(
            state_resource(
                "aws_launch_template", f"lt{i}", {"id": template["LaunchTemplateId"], "name": name}
            )
        )
    for i in range(0 if first else MIX["aws_sns_topic"]):
        arn = f"arn:aws:sns:{region}:{account}:bench-{i}"
        resources.append(
            state_resource("aws_sns_topic", f"t{i}", {"arn": arn, "id": arn, "name": f"bench-{i}"})
        )
    if first:
        resources += create_evidence_bucket(url)
    return resources


def create_evidence_bucket(url: str) -> list[dict[str, Any]]:
    s3 = client(url, "s3", "us-east-1", credentials(url, None))
    s3.create_bucket(Bucket=EVIDENCE_BUCKET, ObjectLockEnabledForBucket=True)
    s3.put_bucket_versioning(Bucket=EVIDENCE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(
        Bucket=EVIDENCE_BUCKET,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 2555}},
        },
    )
    s3.put_public_access_block(
        Bucket=EVIDENCE_BUCKET,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=EVIDENCE_BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
        },
    )
    s3.put_bucket_tagging(Bucket=EVIDENCE_BUCKET, Tagging={"TagSet": TAGS})
    ident = {"bucket": EVIDENCE_BUCKET, "id": EVIDENCE_BUCKET}
    return [
        state_resource(t, "evidence", dict(ident), alias="evidence")
        for t in (
            "aws_s3_bucket",
            "aws_s3_bucket_versioning",
            "aws_s3_bucket_object_lock_configuration",
            "aws_s3_bucket_public_access_block",
            "aws_s3_bucket_server_side_encryption_configuration",
        )
    ]


def write_state(url: str, account: str, region: str, resources: list[dict[str, Any]], tenant: Any) -> int:
    """Fill each resource's attributes from the live read and write the scope's state; return the count."""
    from patchcycle.domain.drift import read_state
    from patchcycle.hooks.aws_drift import Connection, LiveResourceReader

    document = {
        "version": 4,
        "terraform_version": "1.11.4",
        "serial": 1,
        "lineage": f"bench-{account}-{region}",
        "outputs": {},
        "resources": resources,
    }
    state = read_state(document)
    connections = {
        "": Connection(
            tenant.aws_connection_id(next(a for a in tenant.clouds.aws.accounts if a.account_id == account)),
            region,
        ),
        "evidence": Connection("patchcycle_evidence", "us-east-1"),
    }
    live = LiveResourceReader(connections).read(state.managed()).live
    for resource in resources:
        address = f"{resource['type']}.{resource['name']}"
        if live.get(address):
            resource["instances"][0]["attributes"].update(live[address])
    document["resources"].append(
        {
            "mode": "data",
            "type": "aws_caller_identity",
            "name": "current",
            "provider": PROVIDER,
            "instances": [{"schema_version": 0, "attributes": {"arn": TERRAFORM.format(account=account)}}],
        }
    )
    s3 = client(url, "s3", "us-east-1", credentials(url, None))
    key = f"tenants/{TENANT}/{account}/{region}/terraform.tfstate"
    s3.put_object(Bucket=STATE_BUCKET, Key=key, Body=json.dumps(document).encode())
    return sum(1 for r in resources if r["mode"] == "managed")


def person(url: str, account: str | None) -> dict[str, str]:
    """An IAM user of the account, the author of the console edits, and its keys."""
    iam = client(url, "iam", "us-east-1", credentials(url, account))
    iam.create_user(UserName="bench-sre")
    key = iam.create_access_key(UserName="bench-sre")["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


def console_edits(
    url: str, account: str, region: str, keys: dict[str, str], per_scope: int, first: bool
) -> set[tuple[str, str]]:
    """The person's edits in one scope; returns the (address, attribute) drifts they make."""
    tag = region.replace("-", "")
    iam, ssm, ec2 = (client(url, s, region, keys) for s in ("iam", "ssm", "ec2"))
    injected: set[tuple[str, str, str]] = set()
    scope = f"aws:{account}:{region}"
    for i in range(per_scope):
        if i % 2 == 0:
            iam.put_role_policy(
                RoleName=f"bench-{tag}-r{i}", PolicyName="inline", PolicyDocument=policy(["ssm:*"])
            )
            injected.add((scope, f"aws_iam_role_policy.r{i}", "policy"))
        else:
            baseline = ssm.describe_patch_baselines(
                Filters=[{"Key": "NAME_PREFIX", "Values": [f"bench-{tag}-al2-{i}"]}]
            )
            baseline_id = next(
                b["BaselineId"]
                for b in baseline["BaselineIdentities"]
                if b["BaselineName"] == f"bench-{tag}-al2-{i}"
            )
            ssm.update_patch_baseline(BaselineId=baseline_id, ApprovedPatchesComplianceLevel="LOW")
            injected.add((scope, f"aws_ssm_patch_baseline.b{i}", "approved_patches_compliance_level"))
    if first:
        template = ec2.describe_launch_templates(LaunchTemplateNames=[f"bench-{tag}-lt0"])["LaunchTemplates"][
            0
        ]
        version = ec2.create_launch_template_version(
            LaunchTemplateId=template["LaunchTemplateId"],
            LaunchTemplateData={"ImageId": "ami-0fedcba9876543210", "InstanceType": "t3.medium",
                                "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"}},
        )["LaunchTemplateVersion"]  # fmt: skip
        ec2.modify_launch_template(
            LaunchTemplateId=template["LaunchTemplateId"], DefaultVersion=str(version["VersionNumber"])
        )
        injected |= {
            (scope, "aws_launch_template.lt0", p)
            for p in ("image_id", "user_data", "iam_instance_profile", "latest_version", "default_version")
        }
    return injected


def tenant_model() -> Any:
    from patchcycle.config.models import Tenant

    data = yaml.safe_load((REPO / "include" / "tenants" / "cu_alpha.yaml").read_text())
    for key in ("health", "incidents", "falcon"):
        data.pop(key, None)
    data["id"], data["display_name"] = TENANT, "Bench Credit Union"
    data["clouds"] = {
        "aws": {
            "accounts": [
                {"account_id": a, "regions": list(REGIONS), "connection_id": f"aws_bench_{n}"}
                for n, a in enumerate(ACCOUNTS, 1)
            ]
        }
    }
    data["baselines"] = [b for b in data["baselines"] if b["os_family"] == "amazon_linux_2"]
    data["evidence"] = {"bucket": EVIDENCE_BUCKET, "region": "us-east-1"}
    return Tenant.model_validate(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drifts-per-scope", type=int, default=2)
    args = parser.parse_args()
    scenario = {
        "patch_catalog": [],
        "tenants": [{"id": TENANT, "aws": {"account_id": ACCOUNTS[0], "region": REGIONS[0]}}],
    }
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_fleetsim(write(Path(tmp) / "s.yaml", scenario), Path(tmp) / "fs") as url,
    ):
        os.environ["AIRFLOW_CONN_PATCHCYCLE_EVIDENCE"] = aws_connection(url, "us-east-1")
        for n, account in enumerate(ACCOUNTS, 1):
            os.environ[f"AIRFLOW_CONN_AWS_BENCH_{n}"] = aws_connection(url, "us-east-1", account)
        tenant = tenant_model()
        platform = client(url, "s3", "us-east-1", credentials(url, None))
        platform.create_bucket(Bucket=STATE_BUCKET)
        started = time.monotonic()
        managed = 0
        scopes = [(a, r) for a in ACCOUNTS for r in REGIONS]
        for index, (account, region) in enumerate(scopes):
            resources = create_scope(url, account, region, index, first=index == 0)
            managed += write_state(url, account, region, resources, tenant)
        setup = time.monotonic() - started
        injected: set[tuple[str, str, str]] = set()
        people = {a: person(url, a) for a in ACCOUNTS}
        platform_person = person(url, None)
        for index, (account, region) in enumerate(scopes):
            injected |= console_edits(
                url, account, region, people[account], args.drifts_per_scope, index == 0
            )
        s3 = client(url, "s3", "us-east-1", platform_person)
        s3.put_object_lock_configuration(
            Bucket=EVIDENCE_BUCKET,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 30}},
            },
        )
        injected.add(
            (
                f"aws:{ACCOUNTS[0]}:{REGIONS[0]}",
                "aws_s3_bucket_object_lock_configuration.evidence",
                "rule[0].default_retention[0].days",
            )
        )
        print(json.dumps(run_report(url, tenant, managed, injected, setup), indent=1))


def write(path: Path, scenario: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(scenario))
    return path


def run_report(
    url: str, tenant: Any, managed: int, injected: set[tuple[str, str, str]], setup: float
) -> dict[str, Any]:
    from patchcycle.operators.drift import DriftReportOperator

    class Ti:
        try_number = 1

    class Run:
        run_type = "manual"
        triggering_user_name = None
        run_after = dt.datetime.now(dt.UTC)

    op = DriftReportOperator(task_id="report", tenant_id=TENANT)
    op.__dict__["tenant"] = tenant
    before = Counter(fleetsim_get(url, "/fleetsim/calls")["calls"])
    started = time.monotonic()
    result = op.execute(
        {"ti": Ti(), "run_id": "manual__bench", "dag_run": Run(), "params": {"engine": "state"}}
    )
    wall = time.monotonic() - started
    calls = Counter(fleetsim_get(url, "/fleetsim/calls")["calls"]) - before
    s3 = client(url, "s3", "us-east-1", credentials(url, None))
    pack = result["pack_url"].removeprefix(f"s3://{EVIDENCE_BUCKET}/")
    document = json.loads(s3.get_object(Bucket=EVIDENCE_BUCKET, Key=f"{pack}/drift.json")["Body"].read())
    drifts = document["report"]["drifts"]
    found = {(d["scope"], d["address"], d["path"]) for d in drifts}
    scopes = document["scopes"]
    return {
        "scopes": len(document["report"]["scopes"]),
        "managed_resources": managed,
        "resources_checked": document["report"]["resources_checked"],
        "unchecked": len(document["report"]["unchecked"]),
        "setup_seconds": round(setup, 1),
        "report_wall_seconds": round(wall, 2),
        "api_calls_total": sum(calls.values()),
        # The run's own count of its live reads and CloudTrail lookups (CallCounter, per scope); the
        # total above adds the state and plan reads, the evidence writes and STS's AssumeRole per hook.
        "api_calls_live_reads_and_cloudtrail": sum(sum(x.get("api_calls", {}).values()) for x in scopes),
        "api_calls_by_action": dict(sorted(calls.items())),
        "per_scope": {
            s["scope"]: {"api_calls": sum(s.get("api_calls", {}).values()), "cloudtrail": s.get("cloudtrail")}
            for s in document["scopes"]
        },
        "drifts_injected": len(injected),
        "drifts_found": len(found),
        "found_exactly_the_injected": found == injected,
        "missed": sorted(map(list, injected - found)),
        "unexpected": sorted(map(list, found - injected)),
        "authors": sorted({(d["changed_by"] or {}).get("username") or "unknown" for d in drifts}),
        "without_author": sorted([d["scope"], d["address"], d["path"]] for d in drifts if not d["changed_by"]),  # noqa: E501
        "launch_findings": len(document["launch_findings"]),
        "complete": document["report"]["complete"],
        "notes": document["report"]["notes"][:5],
    }  # fmt: skip


if __name__ == "__main__":
    main()
