"""fleetsim plays ``terraform apply`` of the demo tenants' roots and then the demo's console edits.

Held here, through the unmodified SDK against the demo scenario:
- each root's state file (format version 4) is in the platform's state bucket at the backend's key, and
  the drift domain's own reader takes it;
- every resource in it is one the modules declare (python-hcl2), at the address Terraform gives it
  (module count/for_each, resource for_each, aliased provider), and every declared resource of a type
  the drift report knows is in it;
- its values are the tenant's tfvars (names, tags, baselines, retention), and the documents Terraform
  would render (``terraform console`` where it is installed);
- it describes exactly what fleetsim created: the live objects, read as the drift report reads them
  (``patchcycle.domain.drift.live``) and compared by its engine, differ from the state only where the
  scenario's console edits changed them, each classified as the report must;
- CloudTrail names who made each edit, once the orchestrator's and Terraform's own writes are set aside.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleetsim_testkit import FAST_TIMINGS

from fleetsim.terraform import documents
from patchcycle.domain.drift import live as shape
from patchcycle.domain.drift.cloudtrail import attach_authors
from patchcycle.domain.drift.registry import REGISTRY
from patchcycle.domain.drift.state import compare_state, read_state
from tests.conftest import REPO
from tests.terraform.hcl import MODULES, TENANT_ROOTS, read_dir

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-terraform-apply")]

DEMO = REPO / "fleetsim" / "scenarios" / "demo.yaml"
PLATFORM = "123456789012"
STATE_BUCKET = "patchcycle-terraform-state"
_RAW = yaml.safe_load(DEMO.read_text())
SCENARIO = {**copy.deepcopy(_RAW), "timings": dict(FAST_TIMINGS)}
TENANTS = _RAW["terraform"]["tenants"]
ALPHA_TEMPLATE = 'module.launch_template["amazon_linux_2"].aws_launch_template.ssm_managed'
ALPHA_BASELINE = 'module.patch_baselines.aws_ssm_patch_baseline.family["amazon_linux_2"]'
EXECUTION_POLICY = "module.orchestrator_iam_aws.aws_iam_role_policy.execution"
OBJECT_LOCK = "module.evidence_bucket[0].aws_s3_bucket_object_lock_configuration.evidence"
# What the demo's console edits on cu_alpha leave (fleetsim/scenarios/demo.yaml, tenants[cu_alpha].drift):
# (address, attribute path, classification) as the drift report's state engine must find them.
CU_ALPHA_DRIFT = {
    (EXECUTION_POLICY, "policy", "drift"),
    (ALPHA_BASELINE, "approval_rule[0].approve_after_days", "owned_by_cycle"),
    (ALPHA_BASELINE, "approval_rule[0].approve_until_date", "owned_by_cycle"),
    (ALPHA_BASELINE, "approved_patches_compliance_level", "drift"),
    (ALPHA_TEMPLATE, "image_id", "drift"),
    (ALPHA_TEMPLATE, "user_data", "drift"),
    (ALPHA_TEMPLATE, "iam_instance_profile", "drift"),
    (ALPHA_TEMPLATE, "default_version", "drift"),
    (ALPHA_TEMPLATE, "latest_version", "drift"),
    (OBJECT_LOCK, "rule[0].default_retention[0].days", "drift"),
}
# Who made each of them (the demo's people), by address.
CU_ALPHA_AUTHORS = {
    EXECUTION_POLICY: "jane.doe@cu-alpha.example",
    ALPHA_BASELINE: "raj.patel@cu-alpha.example",
    ALPHA_TEMPLATE: "carol",
    OBJECT_LOCK: "sam.ops@platform.example",
}


def tfvars(tenant: str) -> dict[str, Any]:
    root = TENANT_ROOTS / tenant
    return {
        **json.loads((root / "terraform.tfvars.json").read_text()),
        **json.loads((root / "platform.auto.tfvars.json").read_text()),
    }


def backend_key(tenant: str) -> str:
    text = (TENANT_ROOTS / tenant / "backend.tf").read_text()
    return text.split('key          = "', 1)[1].split('"', 1)[0]


@pytest.fixture(scope="module")
def states(fleet) -> dict[str, dict[str, Any]]:
    """Each demo tenant's state file, read from the state bucket as the drift report reads it."""
    s3 = fleet.evidence_s3()
    return {
        t: json.loads(s3.get_object(Bucket=STATE_BUCKET, Key=backend_key(t))["Body"].read()) for t in TENANTS
    }


def instances(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i.address: dict(i.attributes or {}) for i in read_state(state).managed()}


def test_each_root_has_a_format_4_state_at_its_backend_key(fleet, states):
    """S3 backend: the state at ``key`` in ``bucket``; version 4 (read by the drift domain's reader)."""
    listed = {o["Key"] for o in fleet.evidence_s3().list_objects_v2(Bucket=STATE_BUCKET)["Contents"]}
    assert listed == {backend_key(t) for t in TENANTS}
    for tenant, state in states.items():
        assert backend_key(tenant) == f"tenants/{tenant}/{tfvars(tenant)['aws_scope']['account_id']}/" + (
            f"{tfvars(tenant)['aws_scope']['region']}/terraform.tfstate"
        )
        parsed = read_state(state)
        assert (state["version"], parsed.serial) == (4, 2)
        assert parsed.terraform_version and parsed.terraform_version.startswith("1.11.")
        assert len(parsed.lineage) == 36
        assert {r["provider"] for r in state["resources"]} == {
            'provider["registry.terraform.io/hashicorp/aws"]',
            'provider["registry.terraform.io/hashicorp/aws"].evidence',
        }
        for resource in state["resources"]:
            for instance in resource["instances"]:
                assert {"schema_version", "attributes", "sensitive_attributes"} <= set(instance)
                assert "id" in instance["attributes"]


# -- the addresses are the modules' --------------------------------------------------------------


def _module_call(address: str) -> tuple[str, str | int | None]:
    """``module.launch_template["amazon_linux_2"]`` -> ("launch_template", "amazon_linux_2")."""
    name, _, key = address.removeprefix("module.").partition("[")
    return name, (json.loads(key.rstrip("]")) if key else None)


def test_every_state_resource_is_declared_by_the_modules_at_its_terraform_address(states):
    root = read_dir(TENANT_ROOTS / "_root")
    for tenant, state in states.items():
        variables = tfvars(tenant)
        for resource in state["resources"]:
            name, key = _module_call(resource["module"])
            call = root["module"][name]
            module = read_dir((TENANT_ROOTS / "_root" / call["source"]).resolve())
            kind = "resource" if resource["mode"] == "managed" else "data"
            declared = module[kind][resource["type"]][resource["name"]]
            if "for_each" in call:  # for_each = var.launch_templates
                assert key in variables[call["for_each"].removeprefix("${var.").rstrip("}")]
            elif "count" in call:
                assert key == 0
            else:
                assert key is None
            alias = call.get("providers", {}).get("aws", "").removeprefix("${aws.").rstrip("}")
            expected = 'provider["registry.terraform.io/hashicorp/aws"]' + (f".{alias}" if alias else "")
            assert resource["provider"] == expected, resource
            keys = [i.get("index_key") for i in resource["instances"]]
            if "for_each" in declared:  # for_each = var.baselines (module.patch_baselines)
                assert resource["each"] == "map"
                assert sorted(keys) == sorted(variables["patch_baselines"])
            else:
                assert "each" not in resource and keys == [None]


def test_every_declared_resource_of_a_type_the_report_knows_is_in_the_state(states):
    """What the modules declare for the AWS scope, with the root's count and for_each, minus the bucket
    policy fleetsim leaves out (fleetsim/terraform/apply.py says why)."""
    root = read_dir(TENANT_ROOTS / "_root")
    for tenant, state in states.items():
        variables = tfvars(tenant)
        expected: set[tuple[str, str, str]] = set()
        calls = {
            "patch_baselines": ["module.patch_baselines"],
            "falcon_install_document": ["module.falcon_install_document[0]"] if variables["falcon"] else [],
            "launch_template": [
                f"module.launch_template[{json.dumps(k)}]" for k in variables["launch_templates"]
            ],
            "orchestrator_iam_aws": ["module.orchestrator_iam_aws"],
            "evidence_bucket": ["module.evidence_bucket[0]"] if variables["tenant_wide"] else [],
        }
        assert set(calls) == {
            n for n in root["module"] if not n.endswith(("azure_orchestrator", "gcp_orchestrator"))
        }
        for name, addresses in calls.items():
            module = read_dir((TENANT_ROOTS / "_root" / root["module"][name]["source"]).resolve())
            for address in addresses:
                for rtype, by_name in module["resource"].items():
                    if rtype in REGISTRY:
                        expected |= {(address, rtype, n) for n in by_name}
        written = {
            (r["module"], r["type"], r["name"])
            for r in state["resources"]
            if r["type"] in REGISTRY and r["mode"] == "managed"
        }
        assert written == expected, tenant
        assert "aws_s3_bucket_policy" not in {r["type"] for r in state["resources"]}


def test_the_caller_identity_in_the_state_names_terraforms_principal(states):
    """data.aws_caller_identity of each module that reads it: the Terraform role's session in the
    provider's account (the drift report excludes its writes)."""
    for tenant, state in states.items():
        account = tfvars(tenant)["aws_scope"]["account_id"]
        callers = {
            r["module"]: r["instances"][0]["attributes"]
            for r in state["resources"]
            if r["mode"] == "data" and r["type"] == "aws_caller_identity"
        }
        assert set(callers) == {"module.orchestrator_iam_aws", "module.evidence_bucket[0]"}
        for module, owner in (
            ("module.orchestrator_iam_aws", account),
            ("module.evidence_bucket[0]", PLATFORM),
        ):
            assert (
                callers[module]["arn"] == f"arn:aws:sts::{owner}:assumed-role/patchcycle-terraform/terraform"
            )
            assert callers[module]["account_id"] == owner
            assert callers[module]["user_id"].endswith(":terraform")


# -- the values are the tfvars' ------------------------------------------------------------------


def test_the_state_holds_the_tenants_tfvars(states):
    for tenant, state in states.items():
        variables = tfvars(tenant)
        found = instances(state)
        tags = variables["compliance_tags"]
        for address, attributes in found.items():
            if "tags_all" in attributes:
                assert attributes["tags_all"] == tags, address
        for family, spec in variables["patch_baselines"].items():
            baseline = found[f'module.patch_baselines.aws_ssm_patch_baseline.family["{family}"]']
            rule = spec["approval_rule"]
            assert (baseline["name"], baseline["operating_system"], baseline["description"]) == (
                spec["name"],
                spec["operating_system"],
                spec["description"],
            )
            assert baseline["approved_patches_compliance_level"] == spec["approved_patches_compliance_level"]
            assert baseline["rejected_patches"] == spec["rejected_patches"]
            assert baseline["approval_rule"] == [
                {
                    "approve_after_days": 0,
                    "approve_until_date": rule["approve_until_date"] or "",
                    "compliance_level": "UNSPECIFIED",
                    "enable_non_security": bool(rule["enable_non_security"]),
                    "patch_filter": rule["patch_filters"],
                }
            ]
            group = found[f'module.patch_baselines.aws_ssm_patch_group.family["{family}"]']
            assert (group["patch_group"], group["baseline_id"]) == (spec["patch_group"], baseline["id"])
        role = found["module.orchestrator_iam_aws.aws_iam_role.execution"]
        assert role["name"] == variables["aws_scope"]["execution_role_name"]
        trust = json.loads(role["assume_role_policy"])["Statement"]
        assert trust[0]["Principal"] == {"AWS": variables["platform"]["orchestrator_principal_arn"]}
        for key, spec in variables["launch_templates"].items():
            template = found[f"module.launch_template[{json.dumps(key)}].aws_launch_template.ssm_managed"]
            assert template["name"] == spec["name"]
            assert template["tag_specifications"][0]["tags"]["Patch Group"] == spec["patch_group"]
        if variables["falcon"]:
            document = found["module.falcon_install_document[0].aws_ssm_document.falcon_install"]
            assert document["name"] == variables["falcon"]["document_name"]
            parameters = json.loads(document["content"])["parameters"]
            assert parameters["CidParameterName"]["default"] == variables["falcon"]["parameter_names"]["cid"]
        bucket = variables["evidence"]["bucket"]
        assert found["module.evidence_bucket[0].aws_s3_bucket.evidence"]["bucket"] == bucket
        lock = json.loads(json.dumps(found[OBJECT_LOCK]["rule"]))
        assert lock == [
            {
                "default_retention": [
                    {"days": variables["evidence"]["retention_days"], "mode": "COMPLIANCE", "years": 0}
                ]
            }
        ]


def test_the_policy_documents_are_the_modules_statements(states):
    """Every statement block of the modules' aws_iam_policy_document that reaches a role's inline policy,
    by Sid: its actions and resources as the module writes them (dynamic RDS statements when rds)."""
    for tenant, state in states.items():
        variables = tfvars(tenant)
        found = instances(state)
        account, region = variables["aws_scope"]["account_id"], variables["aws_scope"]["region"]
        module = read_dir(MODULES / "orchestrator_iam_aws")["data"]["aws_iam_policy_document"]
        for resource, document in (("execution", "execution"), ("drift_reader", "drift_reader")):
            written = json.loads(
                found[f"module.orchestrator_iam_aws.aws_iam_role_policy.{resource}"]["policy"]
            )
            blocks = list(module[document].get("statement", []))
            falcon = variables.get("falcon")
            bucket = variables.get("falcon_installer_bucket")
            for dynamic in module[document].get("dynamic", []):
                for_each = dynamic["statement"]["for_each"]
                if "falcon_installer_bucket" in for_each:
                    wanted = bucket
                elif "var.falcon" in for_each:
                    wanted = falcon
                else:
                    wanted = variables["rds"]
                if wanted:
                    blocks += dynamic["statement"]["content"]
            assert {s["Sid"] for s in written["Statement"]} == {b["sid"] for b in blocks}
            for block in blocks:
                (statement,) = [s for s in written["Statement"] if s["Sid"] == block["sid"]]
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                assert sorted(actions) == sorted(block["actions"])
                resources = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                listed = block["resources"]
                if isinstance(listed, str) and "parameter_names" in listed:
                    # [for name in values(statement.value.parameter_names) : "...:parameter${name}"]
                    template = "arn:${local.p}:ssm:${local.region}:${local.acct}:parameter"
                    listed = [template + name for _, name in sorted(falcon["parameter_names"].items())]
                substituted = [
                    r.replace("${local.p}", "aws")
                    .replace("${local.region}", region)
                    .replace("${local.acct}", account)
                    .replace("${statement.value.document_name}", (falcon or {}).get("document_name", ""))
                    .replace("${statement.value}", str(bucket))
                    for r in listed
                ]
                assert sorted(resources) == sorted(substituted)


@pytest.mark.skipif(shutil.which("terraform") is None, reason="the terraform binary is not on PATH")
def test_the_falcon_document_and_user_data_are_what_terraform_renders(tmp_path: Path, states):
    """Terraform itself (no provider needed: a configuration of locals and outputs) renders the Falcon
    module's ``jsonencode(local.content)`` and the launch template's user data; fleetsim's renderings
    are byte for byte the same."""
    falcon = MODULES / "falcon_install_document"
    source = (falcon / "main.tf").read_text()
    locals_block = source[source.index("locals {") : source.index('resource "aws_ssm_document"')]
    (tmp_path / "scripts").symlink_to(falcon / "scripts")
    template = MODULES / "launch_template" / "user_data.sh.tftpl"
    (tmp_path / "main.tf").write_text(
        'variable "cid_parameter_name" { default = "/p/cid" }\n'
        'variable "installation_token_parameter_name" { default = "/p/token" }\n'
        f"{locals_block}\n"
        'output "content" { value = jsonencode(local.content) }\n'
        'output "user_data" {\n'
        f'  value = base64encode(templatefile("{template}", {{ region = "us-west-2" }}))\n'
        "}\n"
    )
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "TF_CLI_CONFIG_FILE": "/dev/null", "HOME": str(tmp_path)}
    for command in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        subprocess.run(
            ["terraform", *command], cwd=tmp_path, env=env, capture_output=True, timeout=120, check=True
        )
    outputs = json.loads(
        subprocess.run(
            ["terraform", "output", "-json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout
    )
    assert outputs["content"]["value"] == documents.falcon_content(falcon, "/p/cid", "/p/token")
    assert outputs["user_data"]["value"] == documents.user_data(MODULES / "launch_template", "us-west-2")
    alpha = instances(states["cu_alpha"])["module.falcon_install_document[0].aws_ssm_document.falcon_install"]
    names = tfvars("cu_alpha")["falcon"]["parameter_names"]
    assert alpha["content"] == documents.falcon_content(falcon, names["cid"], names["installation_token"])


# -- the state is what is live ---------------------------------------------------------------------


class LiveView:
    """The live object of each state resource, read with the calls the drift report's hooks make and
    shaped by its pure ``live`` functions."""

    def __init__(self, fleet, tenant: str) -> None:
        variables = tfvars(tenant)
        account, region = variables["aws_scope"]["account_id"], variables["aws_scope"]["region"]
        self.iam = fleet.client("iam", account, region)
        self.ssm = fleet.client("ssm", account, region)
        self.ec2 = fleet.client("ec2", account, region)
        self.s3 = fleet.evidence_s3(variables["evidence"]["region"])

    def read(self, rtype: str, a: dict[str, Any]) -> dict[str, Any] | None:
        return getattr(self, rtype)(a)

    def aws_iam_role(self, a):
        role = self.iam.get_role(RoleName=a["name"])["Role"]
        attached = self.iam.list_attached_role_policies(RoleName=a["name"])["AttachedPolicies"]
        return shape.iam_role(role, [p["PolicyArn"] for p in attached])

    def aws_iam_role_policy(self, a):
        document = self.iam.get_role_policy(RoleName=a["role"], PolicyName=a["name"])["PolicyDocument"]
        return shape.iam_role_policy(a["role"], a["name"], document)

    def aws_ssm_patch_baseline(self, a):
        baseline = self.ssm.get_patch_baseline(BaselineId=a["id"])
        tags = self.ssm.list_tags_for_resource(ResourceType="PatchBaseline", ResourceId=a["id"])["TagList"]
        return shape.ssm_patch_baseline(baseline, tags)

    def aws_ssm_patch_group(self, a):
        baseline = self.ssm.get_patch_baseline(BaselineId=a["baseline_id"])
        assert a["patch_group"] in baseline["PatchGroups"]
        return {"baseline_id": a["baseline_id"], "patch_group": a["patch_group"]}

    def aws_ssm_document(self, a):
        described = self.ssm.describe_document(Name=a["name"])["Document"]
        content = self.ssm.get_document(
            Name=a["name"],
            DocumentVersion=described["LatestVersion"],
            DocumentFormat=described["DocumentFormat"],
        )["Content"]
        shared = self.ssm.describe_document_permission(Name=a["name"], PermissionType="Share")["AccountIds"]
        return shape.ssm_document(described, content, shared)

    def aws_launch_template(self, a):
        (template,) = self.ec2.describe_launch_templates(LaunchTemplateIds=[a["id"]])["LaunchTemplates"]
        (latest,) = self.ec2.describe_launch_template_versions(
            LaunchTemplateId=a["id"], Versions=[str(template["LatestVersionNumber"])]
        )["LaunchTemplateVersions"]
        return shape.launch_template(template, latest)

    def aws_s3_bucket(self, a):
        tags = self.s3.get_bucket_tagging(Bucket=a["bucket"])["TagSet"]
        lock = self.s3.get_object_lock_configuration(Bucket=a["bucket"])["ObjectLockConfiguration"]
        return shape.s3_bucket(a["bucket"], tags, lock)

    def aws_s3_bucket_versioning(self, a):
        return shape.s3_bucket_versioning(a["bucket"], self.s3.get_bucket_versioning(Bucket=a["bucket"]))

    def aws_s3_bucket_object_lock_configuration(self, a):
        lock = self.s3.get_object_lock_configuration(Bucket=a["bucket"])["ObjectLockConfiguration"]
        return shape.s3_object_lock_configuration(a["bucket"], lock)

    def aws_s3_bucket_public_access_block(self, a):
        block = self.s3.get_public_access_block(Bucket=a["bucket"])["PublicAccessBlockConfiguration"]
        return shape.s3_public_access_block(a["bucket"], block)

    def aws_s3_bucket_server_side_encryption_configuration(self, a):
        configuration = self.s3.get_bucket_encryption(Bucket=a["bucket"])["ServerSideEncryptionConfiguration"]
        return shape.s3_encryption(a["bucket"], configuration)


def compared(fleet, tenant: str, state: dict[str, Any]):
    parsed = read_state(state)
    view = LiveView(fleet, tenant)
    live = {
        i.address: view.read(i.type, dict(i.attributes or {})) for i in parsed.managed() if i.type in REGISTRY
    }
    return compare_state(parsed, live, scope=tenant)


def test_the_live_objects_are_the_state_but_for_the_demos_console_edits(fleet, states):
    """The drift report's state engine, given fleetsim's state and its live objects, finds exactly the
    demo's edits on cu_alpha (the approve-after-days edit as the cycle's) and nothing on the others;
    the types it does not know are unchecked, never clean."""
    for tenant, state in states.items():
        result = compared(fleet, tenant, state)
        found = {(d.address, d.path, d.classification) for d in result.differences}
        assert found == (CU_ALPHA_DRIFT if tenant == "cu_alpha" else set()), tenant
        supported = {i.address for i in read_state(state).managed() if i.type in REGISTRY}
        assert set(result.checked) == supported
        assert {u.type for u in result.unchecked} == {
            "aws_iam_instance_profile",
            "aws_iam_role_policy_attachment",
            "aws_kms_alias",
            "aws_kms_key",
            "aws_s3_bucket_lifecycle_configuration",
            "aws_s3_bucket_ownership_controls",
        }


# -- who made each change ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def paced(fleet) -> Iterator[Clock]:
    """fleetsim's clock moved a second before each lookup (within CloudTrail's two a second)."""
    state = fleet.server.state
    original, state.clock = state.clock, Clock()
    try:
        yield state.clock
    finally:
        state.clock = original


def events_for(fleet, clock: Clock, account: str, region: str, name: str) -> list[dict[str, Any]]:
    cloudtrail = fleet.client("cloudtrail", account, region)
    events, token = [], None
    while True:
        clock.now += 1.0
        page = cloudtrail.lookup_events(
            LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": name}],
            **({"NextToken": token} if token else {}),
        )
        events += page["Events"]
        token = page.get("NextToken")
        if not token:
            return events


def test_cloudtrail_names_who_made_each_edit_beside_the_apply_and_the_cycle(fleet, states, paced):
    """The drift domain's attribution (latest write event naming the resource, the orchestrator's and
    Terraform's principals excluded) names the demo's person for each edit, even after the cycle's own
    UpdatePatchBaseline (by the execution role, as the plan task makes it); the apply's events name
    Terraform's role."""
    variables = tfvars("cu_alpha")
    account, region = variables["aws_scope"]["account_id"], variables["aws_scope"]["region"]
    found = instances(states["cu_alpha"])
    baseline = found[ALPHA_BASELINE]
    fleet.client("ssm", account, region).update_patch_baseline(  # the cycle's plan task, next month
        BaselineId=baseline["id"],
        Name=baseline["name"],
        Description="patchcycle cu_alpha amazon_linux_2: approved on or before 2026-12-20",
        ApprovalRules={
            "PatchRules": [
                {
                    "PatchFilterGroup": {
                        "PatchFilters": [
                            {"Key": f["key"], "Values": f["values"]}
                            for f in baseline["approval_rule"][0]["patch_filter"]
                        ]
                    },
                    "ApproveUntilDate": "2026-12-20",
                    "EnableNonSecurity": True,
                }
            ]
        },
    )
    result = compared(fleet, "cu_alpha", states["cu_alpha"])
    trails = {
        EXECUTION_POLICY: (account, "us-east-1", found[EXECUTION_POLICY]["role"]),  # IAM: us-east-1
        ALPHA_BASELINE: (account, region, baseline["id"]),
        ALPHA_TEMPLATE: (account, region, found[ALPHA_TEMPLATE]["id"]),
        OBJECT_LOCK: (PLATFORM, variables["evidence"]["region"], found[OBJECT_LOCK]["bucket"]),
    }
    events = {a: events_for(fleet, paced, *where) for a, where in trails.items()}
    excluded = [
        f"arn:aws:iam::{account}:role/PatchcycleExecution",
        f"arn:aws:iam::{account}:role/patchcycle-terraform",
        f"arn:aws:iam::{PLATFORM}:role/patchcycle-terraform",
    ]
    authors = {}
    for address, trail in events.items():
        drifts = tuple(d for d in result.differences if d.address == address and d.classification == "drift")
        named = attach_authors(
            dataclasses.replace(result, differences=drifts), trail, exclude_principals=excluded
        )
        authors[address] = {d.changed_by.username for d in named.differences if d.changed_by}
    assert authors == {a: {who} for a, who in CU_ALPHA_AUTHORS.items()}
    by_terraform = {e["EventName"] for e in events[ALPHA_BASELINE] if e.get("Username") == "terraform"}
    assert by_terraform == {"RegisterPatchBaselineForPatchGroup"}  # CreatePatchBaseline names no id yet
    cycle = [
        e
        for e in events[ALPHA_BASELINE]
        if e.get("Username") == "fleetsim-tests" and e["ReadOnly"] == "false"
    ]
    assert [e["EventName"] for e in cycle] == ["UpdatePatchBaseline"]
    issuer = json.loads(cycle[0]["CloudTrailEvent"])["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"]
    assert issuer == f"arn:aws:iam::{account}:role/PatchcycleExecution"
    applied = [
        e
        for e in events_for(fleet, paced, account, region, found[ALPHA_TEMPLATE]["name"])
        if e.get("Username") == "terraform"
    ]
    assert {"CreateRole", "PutRolePolicy", "CreateInstanceProfile", "CreateLaunchTemplate"} <= {
        e["EventName"] for e in applied
    }
    days_ago = (paced.now - min(e["EventTime"].timestamp() for e in applied)) / 86400
    assert round(days_ago) == _RAW["terraform"]["applied_days_ago"]
    who = json.loads(applied[0]["CloudTrailEvent"])["userIdentity"]
    assert who["arn"] == f"arn:aws:sts::{account}:assumed-role/patchcycle-terraform/terraform"


# -- the scenario's terraform and drift sections ---------------------------------------------------


def _scenario(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(_RAW)
    for tenant in raw["tenants"]:
        tenant.pop("drift", None)
    raw.update(changes)
    return raw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"terraform": {"tenants": ["cu_nowhere"]}}, "terraform.tenants: 'cu_nowhere' is not a tenant"),
        (
            {"terraform": {"tenants": ["cu_birch"]}, "drift_on": "cu_alpha"},
            "drift: the tenant is not in terraform.tenants",
        ),
        ({"hours_ago": 400}, "is not after the apply"),
        ({"by": {"iam_user": "carol", "sso_user": "jane@example"}}, "exactly one of iam_user or sso_user"),
        ({"by": {"sso_user": "jane@example"}}, "works through a permission_set"),
    ],
    ids=["unknown-tenant", "drift-without-apply", "edit-before-apply", "two-identities", "sso-without-set"],
)
def test_a_scenario_refuses_drift_it_cannot_make(change: dict[str, Any], message: str):
    from fleetsim.scenario import ScenarioError, parse_scenario

    edit = {
        "change": "baseline_compliance_level",
        "os_family": "amazon_linux_2",
        "level": "LOW",
        "by": change.pop("by", {"iam_user": "carol"}),
        "hours_ago": change.pop("hours_ago", 3),
    }
    raw = _scenario(**{k: v for k, v in change.items() if k != "drift_on"})
    tenant = next(t for t in raw["tenants"] if t["id"] == change.get("drift_on", "cu_alpha"))
    tenant["drift"] = [edit]
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(raw)


def test_a_root_that_manages_another_account_than_the_scenarios_tenant_is_refused():
    """The apply reads the root's aws_scope; a scenario whose tenant runs elsewhere cannot be applied."""
    from fleetsim.scenario import parse_scenario
    from fleetsim.terraform.play import apply_terraform
    from fleetsim.terraform.root import RootError

    raw = _scenario(terraform={"tenants": ["cu_alpha"]})
    raw["tenants"][0]["aws"]["account_id"] = "999999999999"
    with pytest.raises(RootError, match="manages 111111111111/us-east-1"):
        apply_terraform(parse_scenario(raw), "http://127.0.0.1:9", dt.datetime.now(dt.UTC))
