"""A scenario's console edits: changes a person makes to Terraform-managed resources after the apply.

Each edit is the API calls the console makes for it, by the named person, at the time the scenario says,
through fleetsim's endpoint (so CloudTrail records who made it). The resource is found by its address in
the state the apply wrote, as a person finds it by name. API references:

- IAM PutRolePolicy ("Adds or updates an inline policy document that is embedded in the specified IAM
  role"), https://docs.aws.amazon.com/IAM/latest/APIReference/API_PutRolePolicy.html
- SSM UpdatePatchBaseline ("Fields not specified in the request are left unchanged"; the rules are one
  field, given whole), https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_UpdatePatchBaseline.html
- EC2 CreateLaunchTemplateVersion and ModifyLaunchTemplate (DefaultVersion),
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateLaunchTemplateVersion.html,
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyLaunchTemplate.html
- S3 PutObjectLockConfiguration ("The specified settings are applied by default to every new object
  placed in the specified bucket"),
  https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObjectLockConfiguration.html
"""

from __future__ import annotations

import json
from typing import Any

from fleetsim.scenario import (
    BaselineApproveAfterDaysEdit,
    BaselineComplianceLevelEdit,
    ConsoleEdit,
    LaunchTemplateVersionEdit,
    ObjectLockRetentionEdit,
    RoleInlinePolicyEdit,
)
from fleetsim.terraform.actors import Actor
from fleetsim.terraform.apply import AppliedRoot
from fleetsim.terraform.root import TenantRoot


class ConsoleEditError(ValueError):
    """A console edit that names something the tenant's Terraform did not create."""


def _state(applied: AppliedRoot, address: str) -> dict[str, Any]:
    found = applied.instances().get(address)
    if found is None:
        raise ConsoleEditError(f"{applied.tenant}: the apply created no {address}")
    return found


def in_platform_account(edit: ConsoleEdit) -> bool:
    """Whether the edit's resource lives in the platform's account (the evidence bucket) rather than in
    the tenant's."""
    return isinstance(edit, ObjectLockRetentionEdit)


def region_of(edit: ConsoleEdit, root: TenantRoot) -> str:
    """The region the edit's calls go to."""
    return str(root.variables["evidence"]["region"]) if in_platform_account(edit) else root.region


def make(edit: ConsoleEdit, applied: AppliedRoot, root: TenantRoot, person: Actor) -> None:
    """Make ``edit`` as ``person`` on what ``applied`` created."""
    region = region_of(edit, root)
    if isinstance(edit, RoleInlinePolicyEdit):
        policy = _state(applied, "module.orchestrator_iam_aws.aws_iam_role_policy.execution")
        iam = person.client("iam", region)
        current = iam.get_role_policy(RoleName=policy["role"], PolicyName=policy["name"])["PolicyDocument"]
        document = json.loads(current) if isinstance(current, str) else dict(current)
        actions: str | list[str] = edit.actions[0] if len(edit.actions) == 1 else list(edit.actions)
        document["Statement"] = [
            *document.get("Statement", []),
            {"Sid": edit.sid, "Effect": "Allow", "Action": actions, "Resource": "*"},
        ]
        iam.put_role_policy(
            RoleName=policy["role"], PolicyName=policy["name"], PolicyDocument=json.dumps(document)
        )
    elif isinstance(edit, BaselineApproveAfterDaysEdit | BaselineComplianceLevelEdit):
        address = f'module.patch_baselines.aws_ssm_patch_baseline.family["{edit.os_family}"]'
        baseline_id = _state(applied, address)["id"]
        ssm = person.client("ssm", region)
        if isinstance(edit, BaselineComplianceLevelEdit):
            ssm.update_patch_baseline(BaselineId=baseline_id, ApprovedPatchesComplianceLevel=edit.level)
            return
        rules = ssm.get_patch_baseline(BaselineId=baseline_id)["ApprovalRules"]
        for rule in rules["PatchRules"]:  # PatchRule: one of ApproveAfterDays or ApproveUntilDate
            rule.pop("ApproveUntilDate", None)
            rule["ApproveAfterDays"] = edit.days
        ssm.update_patch_baseline(BaselineId=baseline_id, ApprovalRules=rules)
    elif isinstance(edit, LaunchTemplateVersionEdit):
        address = f'module.launch_template["{edit.template}"].aws_launch_template.ssm_managed'
        template = _state(applied, address)
        ec2 = person.client("ec2", region)
        metadata = template["metadata_options"][0]
        version = ec2.create_launch_template_version(
            LaunchTemplateId=template["id"],
            VersionDescription="AMI refresh",
            LaunchTemplateData={
                "ImageId": edit.image_id,
                "InstanceType": template["instance_type"],
                "MetadataOptions": {
                    "HttpEndpoint": metadata["http_endpoint"],
                    "HttpTokens": metadata["http_tokens"],
                    "HttpPutResponseHopLimit": metadata["http_put_response_hop_limit"],
                    "InstanceMetadataTags": metadata["instance_metadata_tags"],
                },
            },
        )["LaunchTemplateVersion"]
        ec2.modify_launch_template(
            LaunchTemplateId=template["id"], DefaultVersion=str(version["VersionNumber"])
        )
    elif isinstance(edit, ObjectLockRetentionEdit):
        lock = _state(applied, "module.evidence_bucket[0].aws_s3_bucket_object_lock_configuration.evidence")
        mode = lock["rule"][0]["default_retention"][0]["mode"]
        person.client("s3", region).put_object_lock_configuration(
            Bucket=lock["bucket"],
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": mode, "Days": edit.days}},
            },
        )
    else:  # pragma: no cover - the scenario model admits no other edit
        raise ConsoleEditError(f"unknown console edit {edit!r}")
