"""``terraform apply`` of one tenant root's AWS scope, through fleetsim's own endpoint, and its state file.

Each module of the root (include/terraform/tenants/_root/main.tf) becomes the API calls the AWS provider
makes for its resources, made as the Terraform role (so CloudTrail records the apply), and the state
resources Terraform would then hold: the module addresses, types and names the modules declare, the
provider's attribute names, the values sent and the ones AWS computed (ids, ARNs). The inputs each module
gets, its IAM roles, inline policies and policy documents, and its literal arguments are read from the
HCL (:mod:`.hcl`); which resources a module has, and how each becomes API calls, is written here and
held to the modules by tests/fleetsim/test_terraform_apply.py. Modules and resources left out, and why:

- ``azure_orchestrator``, ``gcp_orchestrator``: not AWS (fleetsim plays the AWS scope only).
- ``module.evidence_bucket[0].aws_s3_bucket_policy.evidence``: its ``DenyInsecureTransport`` statement
  denies every request with ``aws:SecureTransport`` false, and moto evaluates bucket policies while
  fleetsim serves plain HTTP on loopback, so it would refuse the evidence writes of every cycle. The
  state holds what was applied, so it is absent there too (a partial, ``-target`` apply).
- data sources: the provider-context ones are kept (``aws_partition``, ``aws_region`` and
  ``aws_caller_identity``, whose ``arn`` tells the drift report who applied: Terraform's principal, whose
  writes are never a drift's author); ``aws_iam_policy_document`` and ``aws_ssm_parameter`` are not.

The state is as Terraform holds it after the apply and a refresh (serial 2): computed attributes such as
a role's ``managed_policy_arns`` already show the attachments made later in the same apply.
Provider documents: https://registry.terraform.io/providers/hashicorp/aws/latest/docs (each resource's
"Attribute Reference"); the API calls are the service API references' (CreatePatchBaseline, ...).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetsim.aws.audit import identity_of
from fleetsim.aws.iam import ensure_aws_managed_policy
from fleetsim.terraform import documents, hcl
from fleetsim.terraform.actors import Actor
from fleetsim.terraform.root import TenantRoot
from fleetsim.terraform.state import StateResource, attribute_path, dumps, provider_address, state_file

SERIAL = 2  # the apply, then a refresh
PARTITION = "aws"
EVIDENCE_PROVIDER = "evidence"  # providers = { aws = aws.evidence } (tenants/_root/main.tf)
# Each instance's ``schema_version``: the provider's ``SchemaVersion`` of the type, which for the types
# written here is its default, 0 (aws_launch_template's resource, internal/service/ec2/ec2_launch_template.go,
# declares none); the drift engines do not read it.
SCHEMA_VERSION = 0


@dataclass
class ApplyContext:
    """Who applies, where: the Terraform role in the tenant's account and in the platform's account."""

    root: TenantRoot
    tenant: Actor  # provider "aws": the tenant's account and region
    platform: Actor  # provider "aws.evidence" and the state backend: the platform's account
    platform_account: str
    applied_at: dt.datetime

    @property
    def region(self) -> str:
        return self.root.region

    @property
    def account(self) -> str:
        return self.root.account_id

    def module(
        self,
        name: str,
        each: tuple[str, Any] | None = None,
        *,
        account: str | None = None,
        region: str | None = None,
    ) -> hcl.Scope:
        """``module "<name>"``'s scope: the inputs the root passes it, in the account and region of its
        provider (the tenant's, unless given)."""
        root = hcl.Scope(self.root.directory, self.root.variables, PARTITION, self.region, self.account)
        return hcl.Scope(
            hcl.module_source(root, name),
            hcl.module_inputs(root, name, each),
            PARTITION,
            region or self.region,
            account or self.account,
        )


@dataclass(frozen=True)
class AppliedRoot:
    """What one apply left: the state document, where it was written, and its resources by address."""

    tenant: str
    bucket: str
    key: str
    state: dict[str, Any]

    def instances(self) -> dict[str, dict[str, Any]]:
        """Every managed instance's attributes by its address (``module.x.type.name["key"]``)."""
        found: dict[str, dict[str, Any]] = {}
        for resource in self.state["resources"]:
            if resource["mode"] != "managed":
                continue
            base = f"{resource['type']}.{resource['name']}"
            if resource.get("module"):
                base = f"{resource['module']}.{base}"
            for instance in resource["instances"]:
                key = instance.get("index_key")
                suffix = "" if key is None else f"[{json.dumps(key)}]"
                found[base + suffix] = instance["attributes"]
        return found


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _resource(module: str, rtype: str, name: str, *, each: str | None = None, alias: str | None = None):
    return StateResource(module=module, type=rtype, name=name, provider=provider_address(alias), each=each)


def context_data(
    module: str, scope: hcl.Scope, actor: Actor, *, alias: str | None = None
) -> list[StateResource]:
    """The module's ``aws_partition``, ``aws_region`` and ``aws_caller_identity`` data sources as the
    provider reads them for ``actor`` in the scope's account and region (data source documents:
    partition, dns_suffix, reverse_dns_prefix; region, name, endpoint, description; account_id, arn,
    user_id)."""
    who = identity_of(actor.credentials.access_key_id).user_identity
    values = {
        "aws_partition": {
            "dns_suffix": "amazonaws.com",
            "id": PARTITION,
            "partition": PARTITION,
            "reverse_dns_prefix": "com.amazonaws",
        },
        "aws_region": {
            "description": "",
            "endpoint": f"ec2.{scope.region}.amazonaws.com",
            "id": scope.region,
            "name": scope.region,
            "region": scope.region,
        },
        "aws_caller_identity": {
            "account_id": scope.account_id,
            "arn": who["arn"],
            "id": scope.account_id,
            "user_id": who["principalId"],
        },
    }
    found = []
    for rtype, attributes in values.items():
        for name in sorted(scope.config["data"].get(rtype, {})):
            data = StateResource(
                module=module, type=rtype, name=name, provider=provider_address(alias), mode="data"
            )
            _add(data, attributes)
            found.append(data)
    return found


def _add(resource: StateResource, attributes: Mapping[str, Any], **kwargs: Any) -> None:
    resource.add(attributes, schema_version=SCHEMA_VERSION, **kwargs)


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


# -- module.orchestrator_iam_aws ------------------------------------------------------------------
def _role_attributes(
    role: Mapping[str, Any],
    trust: str,
    tags: Mapping[str, str],
    inline: Mapping[str, str],
    managed: list[str],
) -> dict[str, Any]:
    return {
        "arn": role["Arn"],
        "assume_role_policy": trust,
        "create_date": _iso(role["CreateDate"]),
        "description": "",
        "force_detach_policies": False,
        "id": role["RoleName"],
        "inline_policy": [{"name": n, "policy": p} for n, p in sorted(inline.items())],
        "managed_policy_arns": sorted(managed),
        "max_session_duration": int(role.get("MaxSessionDuration", 3600)),
        "name": role["RoleName"],
        "name_prefix": "",
        "path": role.get("Path", "/"),
        "permissions_boundary": "",
        "tags": dict(tags),
        "tags_all": dict(tags),
        "unique_id": role["RoleId"],
    }


def _role_with_policies(
    ctx: ApplyContext, module: str, scope: hcl.Scope, role: str, managed: list[str]
) -> list[StateResource]:
    """``aws_iam_role.<role>`` and every ``aws_iam_role_policy`` of the module on it, from the HCL."""
    iam = ctx.tenant.client("iam", ctx.region)
    name = hcl.attribute(scope, "aws_iam_role", role, "name")
    trust = hcl.attribute(scope, "aws_iam_role", role, "assume_role_policy")
    max_session = int(hcl.attribute(scope, "aws_iam_role", role, "max_session_duration", 3600))
    tags = hcl.attribute(scope, "aws_iam_role", role, "tags", {})
    created = iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=trust, MaxSessionDuration=max_session, Tags=_tag_list(tags)
    )["Role"]
    for policy_arn in managed:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    inline: dict[str, str] = {}
    policies: list[StateResource] = []
    for resource_name, block in sorted(hcl.resources(scope, "aws_iam_role_policy").items()):
        if block.get("role") != f"${{aws_iam_role.{role}.id}}":
            continue
        policy_name = hcl.attribute(scope, "aws_iam_role_policy", resource_name, "name")
        document = hcl.attribute(scope, "aws_iam_role_policy", resource_name, "policy")
        iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=document)
        inline[policy_name] = document
        state = _resource(module, "aws_iam_role_policy", resource_name)
        _add(
            state,
            {
                "id": f"{name}:{policy_name}",
                "name": policy_name,
                "name_prefix": "",
                "policy": document,
                "role": name,
            },
        )
        policies.append(state)
    role_state = _resource(module, "aws_iam_role", role)
    _add(role_state, _role_attributes(created, trust, tags, inline, managed))
    return [role_state, *policies]


def orchestrator_iam_aws(ctx: ApplyContext) -> list[StateResource]:
    """``module.orchestrator_iam_aws``: the execution role and its inline policies."""
    module = "module.orchestrator_iam_aws"
    scope = ctx.module("orchestrator_iam_aws")
    return context_data(module, scope, ctx.tenant) + _role_with_policies(ctx, module, scope, "execution", [])


# -- module.patch_baselines (modules/ssm_patch_baselines) ------------------------------------------
def patch_baselines(ctx: ApplyContext) -> list[StateResource]:
    """``module.patch_baselines``: one baseline and its patch group per OS family (for_each)."""
    module = "module.patch_baselines"
    ssm = ctx.tenant.client("ssm", ctx.region)
    inputs = ctx.module("patch_baselines").variables
    tags = dict(inputs["tags"])
    baselines = _resource(module, "aws_ssm_patch_baseline", "family", each="map")
    groups = _resource(module, "aws_ssm_patch_group", "family", each="map")
    for family, spec in sorted(inputs["baselines"].items()):
        rule_spec = spec["approval_rule"]
        until = rule_spec.get("approve_until_date")
        non_security = bool(rule_spec.get("enable_non_security") or False)
        filters = [{"Key": f["key"], "Values": list(f["values"])} for f in rule_spec["patch_filters"]]
        # The provider sends the rule's EnableNonSecurity and ComplianceLevel (default UNSPECIFIED) always,
        # and ApproveUntilDate only when set (PatchRule: neither date "for Debian Server or Ubuntu Server").
        rule: dict[str, Any] = {
            "PatchFilterGroup": {"PatchFilters": filters},
            "ComplianceLevel": "UNSPECIFIED",
            "EnableNonSecurity": non_security,
        }
        if until:
            rule["ApproveUntilDate"] = until
        request: dict[str, Any] = {
            "Name": spec["name"],
            "OperatingSystem": spec["operating_system"],
            "Description": spec["description"],
            "ApprovedPatchesComplianceLevel": spec["approved_patches_compliance_level"],
            "ApprovalRules": {"PatchRules": [rule]},
            "Tags": _tag_list(tags),
        }
        if spec["rejected_patches"]:
            request["RejectedPatches"] = list(spec["rejected_patches"])
        baseline_id = ssm.create_patch_baseline(**request)["BaselineId"]
        ssm.register_patch_baseline_for_patch_group(BaselineId=baseline_id, PatchGroup=spec["patch_group"])
        _add(
            baselines,
            {
                "approval_rule": [
                    {
                        "approve_after_days": 0,
                        "approve_until_date": until or "",
                        "compliance_level": "UNSPECIFIED",
                        "enable_non_security": non_security,
                        "patch_filter": [{"key": f["Key"], "values": f["Values"]} for f in filters],
                    }
                ],
                "approved_patches": [],
                "approved_patches_compliance_level": spec["approved_patches_compliance_level"],
                "approved_patches_enable_non_security": False,
                "arn": f"arn:aws:ssm:{ctx.region}:{ctx.account}:patchbaseline/{baseline_id}",
                "description": spec["description"],
                "global_filter": [],
                "id": baseline_id,
                "name": spec["name"],
                "operating_system": spec["operating_system"],
                "rejected_patches": sorted(spec["rejected_patches"]),
                "rejected_patches_action": "ALLOW_AS_DEPENDENCY",
                "source": [],
                "tags": tags,
                "tags_all": tags,
            },
            index_key=family,
        )
        _add(
            groups,
            {
                "baseline_id": baseline_id,
                "id": f"{spec['patch_group']},{baseline_id}",
                "patch_group": spec["patch_group"],
            },
            index_key=family,
        )
    return [baselines, groups]


# -- module.falcon_install_document[0] -------------------------------------------------------------
def falcon_install_document(ctx: ApplyContext) -> list[StateResource]:
    """``module.falcon_install_document[0]`` (count: only when the tenant runs Falcon)."""
    falcon = ctx.root.variables.get("falcon")
    if not falcon:
        return []
    ssm = ctx.tenant.client("ssm", ctx.region)
    scope = ctx.module("falcon_install_document")
    inputs = scope.variables
    tags = dict(inputs["tags"])
    content = documents.falcon_content(
        scope.module_dir, inputs["cid_parameter_name"], inputs["installation_token_parameter_name"]
    )
    created = ssm.create_document(
        Name=hcl.attribute(scope, "aws_ssm_document", "falcon_install", "name"),
        Content=content,
        DocumentType=hcl.attribute(scope, "aws_ssm_document", "falcon_install", "document_type"),
        DocumentFormat=hcl.attribute(scope, "aws_ssm_document", "falcon_install", "document_format"),
        Tags=_tag_list(tags),
    )["DocumentDescription"]
    document = _resource("module.falcon_install_document[0]", "aws_ssm_document", "falcon_install")
    _add(
        document,
        {
            "arn": f"arn:aws:ssm:{ctx.region}:{ctx.account}:document/{created['Name']}",
            "attachments_source": [],
            "content": content,
            "created_date": _iso(created["CreatedDate"]),
            "default_version": str(created["DefaultVersion"]),
            "description": created.get("Description", ""),
            "document_format": created["DocumentFormat"],
            "document_type": created["DocumentType"],
            "document_version": str(created["DocumentVersion"]),
            "hash": created["Hash"],
            "hash_type": created["HashType"],
            "id": created["Name"],
            "latest_version": str(created["LatestVersion"]),
            "name": created["Name"],
            "owner": created.get("Owner", ctx.account),
            "permissions": None,
            "schema_version": created.get("SchemaVersion", "2.2"),
            "status": created["Status"],
            "tags": tags,
            "tags_all": tags,
            "target_type": "",
            "version_name": "",
        },
    )
    return [document]


# -- module.launch_template["<family>"] -------------------------------------------------------------
def launch_template(ctx: ApplyContext, key: str, spec: Mapping[str, Any]) -> list[StateResource]:
    """``module.launch_template["<key>"]``: instance role with the SSM core attachment and the
    install-list policy, instance profile, and the SSM-bootstrapped launch template."""
    module = f"module.launch_template[{json.dumps(key)}]"
    scope = ctx.module("launch_template", (key, spec))
    inputs = scope.variables
    iam = ctx.tenant.client("iam", ctx.region)
    ssm = ctx.tenant.client("ssm", ctx.region)
    ec2 = ctx.tenant.client("ec2", ctx.region)
    name = inputs["name"]
    tags = dict(inputs["tags"])
    core_policy = hcl.attribute(scope, "aws_iam_role_policy_attachment", "ssm_core", "policy_arn")
    ensure_aws_managed_policy(ctx.account, core_policy.rsplit("/", 1)[-1])
    role_and_policies = _role_with_policies(ctx, module, scope, "instance", [core_policy])
    profile_name = hcl.attribute(scope, "aws_iam_instance_profile", "instance", "name")
    profile = iam.create_instance_profile(InstanceProfileName=profile_name, Tags=_tag_list(tags))[
        "InstanceProfile"
    ]
    iam.add_role_to_instance_profile(InstanceProfileName=profile_name, RoleName=name)
    # data.aws_ssm_parameter.image: the public parameter holding the current AMI id.
    image_id = ssm.get_parameter(Name=inputs["image_parameter"])["Parameter"]["Value"]
    user_data = documents.user_data(scope.module_dir, ctx.region)
    instance_tags = {**tags, inputs["patch_group_tag_key"]: inputs["patch_group"]}
    instance_type = hcl.attribute(scope, "aws_launch_template", "ssm_managed", "instance_type")
    metadata = {
        "HttpEndpoint": "enabled",
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 1,
        "InstanceMetadataTags": "enabled",
    }
    template = ec2.create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={
            "ImageId": image_id,
            "InstanceType": instance_type,
            "EbsOptimized": True,
            "UserData": user_data,
            "IamInstanceProfile": {"Arn": profile["Arn"]},
            "MetadataOptions": metadata,
            "Monitoring": {"Enabled": True},
            "BlockDeviceMappings": [
                {
                    "DeviceName": "/dev/xvda",
                    "Ebs": {
                        "Encrypted": True,
                        "VolumeType": "gp3",
                        "VolumeSize": 30,
                        "DeleteOnTermination": True,
                    },
                }
            ],
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": _tag_list(instance_tags)},
                {"ResourceType": "volume", "Tags": _tag_list(tags)},
            ],
        },
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": _tag_list(tags)}],
    )["LaunchTemplate"]

    attachment = _resource(module, "aws_iam_role_policy_attachment", "ssm_core")
    _add(
        attachment,
        {
            "id": f"{name}-{ctx.applied_at.strftime('%Y%m%d%H%M%S')}00000000000001",
            "policy_arn": core_policy,
            "role": name,
        },
    )
    profile_state = _resource(module, "aws_iam_instance_profile", "instance")
    _add(
        profile_state,
        {
            "arn": profile["Arn"],
            "create_date": _iso(profile["CreateDate"]),
            "id": profile_name,
            "name": profile_name,
            "name_prefix": "",
            "path": "/",
            "role": name,
            "tags": tags,
            "tags_all": tags,
            "unique_id": profile["InstanceProfileId"],
        },
    )
    template_state = _resource(module, "aws_launch_template", "ssm_managed")
    _add(
        template_state,
        {
            "arn": f"arn:aws:ec2:{ctx.region}:{ctx.account}:launch-template/{template['LaunchTemplateId']}",
            "block_device_mappings": [
                {
                    "device_name": "/dev/xvda",
                    "ebs": [
                        {
                            "delete_on_termination": "true",
                            "encrypted": "true",
                            "iops": 0,
                            "kms_key_id": "",
                            "snapshot_id": "",
                            "throughput": 0,
                            "volume_size": 30,
                            "volume_type": "gp3",
                        }
                    ],
                    "no_device": "",
                    "virtual_name": "",
                }
            ],
            "default_version": int(template["DefaultVersionNumber"]),
            "description": "",
            "ebs_optimized": "true",
            "iam_instance_profile": [{"arn": profile["Arn"], "name": ""}],
            "id": template["LaunchTemplateId"],
            "image_id": image_id,
            "instance_type": instance_type,
            "latest_version": int(template["LatestVersionNumber"]),
            "metadata_options": [
                {
                    "http_endpoint": "enabled",
                    "http_protocol_ipv6": "",
                    "http_put_response_hop_limit": 1,
                    "http_tokens": "required",
                    "instance_metadata_tags": "enabled",
                }
            ],
            "monitoring": [{"enabled": True}],
            "name": name,
            "name_prefix": "",
            "tag_specifications": [
                {"resource_type": "instance", "tags": instance_tags},
                {"resource_type": "volume", "tags": tags},
            ],
            "tags": tags,
            "tags_all": tags,
            "update_default_version": True,
            "user_data": user_data,
            "vpc_security_group_ids": [],
        },
    )
    return [
        *context_data(module, scope, ctx.tenant),
        *role_and_policies,
        attachment,
        profile_state,
        template_state,
    ]


# -- module.evidence_bucket[0] (provider aws.evidence: the platform's account) ---------------------
def evidence_bucket(ctx: ApplyContext) -> list[StateResource]:
    """``module.evidence_bucket[0]`` (count: the tenant's first scope only): the CMK and its alias, the
    bucket and its versioning, Object Lock default, SSE-KMS, public access block, ownership and
    lifecycle. A bucket fleetsim's evidence account already holds is taken over as it is."""
    if not ctx.root.variables.get("tenant_wide"):
        return []
    module = "module.evidence_bucket[0]"
    region = str(ctx.root.variables["evidence"]["region"])  # provider aws.evidence's region
    account = ctx.platform_account
    scope = ctx.module("evidence_bucket", account=account, region=region)
    inputs = scope.variables
    bucket, tags = inputs["bucket"], dict(inputs["tags"])
    kms = ctx.platform.client("kms", region)
    s3 = ctx.platform.client("s3", region)
    key_policy = hcl.attribute(scope, "aws_kms_key", "evidence", "policy")
    description = hcl.attribute(scope, "aws_kms_key", "evidence", "description")
    rotation_days = int(hcl.attribute(scope, "aws_kms_key", "evidence", "rotation_period_in_days", 365))
    alias_name = hcl.attribute(scope, "aws_kms_alias", "evidence", "name")
    key = kms.create_key(
        Description=description,
        Policy=key_policy,
        Tags=[{"TagKey": k, "TagValue": v} for k, v in sorted(tags.items())],
    )["KeyMetadata"]
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=rotation_days)
    kms.create_alias(AliasName=alias_name, TargetKeyId=key["KeyId"])
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True, **where)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": _tag_list(tags)})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    retention = int(inputs["retention_days"])
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": retention}},
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key["Arn"],
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_ownership_controls(
        Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "abort-incomplete-uploads",
                    "Status": "Enabled",
                    "Filter": {},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                }
            ]
        },
    )

    def resource(rtype: str) -> StateResource:
        return _resource(module, rtype, "evidence", alias=EVIDENCE_PROVIDER)

    key_state = resource("aws_kms_key")
    _add(
        key_state,
        {
            "arn": key["Arn"],
            "bypass_policy_lockout_safety_check": False,
            "custom_key_store_id": "",
            "customer_master_key_spec": "SYMMETRIC_DEFAULT",
            "deletion_window_in_days": int(
                hcl.attribute(scope, "aws_kms_key", "evidence", "deletion_window_in_days", 30)
            ),
            "description": description,
            "enable_key_rotation": True,
            "id": key["KeyId"],
            "is_enabled": True,
            "key_id": key["KeyId"],
            "key_usage": "ENCRYPT_DECRYPT",
            "multi_region": False,
            "policy": key_policy,
            "rotation_period_in_days": rotation_days,
            "tags": tags,
            "tags_all": tags,
            "xks_key_id": "",
        },
    )
    alias = resource("aws_kms_alias")
    _add(
        alias,
        {
            "arn": f"arn:aws:kms:{region}:{account}:{alias_name}",
            "id": alias_name,
            "name": alias_name,
            "name_prefix": "",
            "target_key_arn": key["Arn"],
            "target_key_id": key["KeyId"],
        },
    )
    bucket_state = resource("aws_s3_bucket")
    _add(
        bucket_state,
        {
            "arn": f"arn:aws:s3:::{bucket}",
            "bucket": bucket,
            "bucket_domain_name": f"{bucket}.s3.amazonaws.com",
            "bucket_prefix": "",
            "force_destroy": False,
            "id": bucket,
            "object_lock_enabled": True,
            "tags": tags,
            "tags_all": tags,
        },
    )
    versioning = resource("aws_s3_bucket_versioning")
    _add(
        versioning,
        {
            "bucket": bucket,
            "expected_bucket_owner": "",
            "id": bucket,
            "mfa": None,
            "versioning_configuration": [{"mfa_delete": "", "status": "Enabled"}],
        },
        sensitive=[attribute_path("mfa")],
    )
    lock = resource("aws_s3_bucket_object_lock_configuration")
    _add(
        lock,
        {
            "bucket": bucket,
            "expected_bucket_owner": "",
            "id": bucket,
            "object_lock_enabled": "Enabled",
            "rule": [{"default_retention": [{"days": retention, "mode": "COMPLIANCE", "years": 0}]}],
            "token": None,
        },
        sensitive=[attribute_path("token")],
    )
    encryption = resource("aws_s3_bucket_server_side_encryption_configuration")
    _add(
        encryption,
        {
            "bucket": bucket,
            "expected_bucket_owner": "",
            "id": bucket,
            "rule": [
                {
                    "apply_server_side_encryption_by_default": [
                        {"kms_master_key_id": key["Arn"], "sse_algorithm": "aws:kms"}
                    ],
                    "bucket_key_enabled": True,
                }
            ],
        },
    )
    public = resource("aws_s3_bucket_public_access_block")
    _add(
        public,
        {
            "block_public_acls": True,
            "block_public_policy": True,
            "bucket": bucket,
            "id": bucket,
            "ignore_public_acls": True,
            "restrict_public_buckets": True,
        },
    )
    ownership = resource("aws_s3_bucket_ownership_controls")
    _add(ownership, {"bucket": bucket, "id": bucket, "rule": [{"object_ownership": "BucketOwnerEnforced"}]})
    lifecycle = resource("aws_s3_bucket_lifecycle_configuration")
    _add(
        lifecycle,
        {
            "bucket": bucket,
            "expected_bucket_owner": "",
            "id": bucket,
            "rule": [
                {
                    "abort_incomplete_multipart_upload": [{"days_after_initiation": 7}],
                    "expiration": [],
                    "filter": [{}],
                    "id": "abort-incomplete-uploads",
                    "noncurrent_version_expiration": [],
                    "noncurrent_version_transition": [],
                    "prefix": "",
                    "status": "Enabled",
                    "transition": [],
                }
            ],
        },
    )
    return [
        *context_data(module, scope, ctx.platform, alias=EVIDENCE_PROVIDER),
        key_state,
        alias,
        bucket_state,
        versioning,
        lock,
        encryption,
        public,
        ownership,
        lifecycle,
    ]


# -- the root --------------------------------------------------------------------------------------
def lineage(root: TenantRoot) -> str:
    """The state's lineage: a UUID fixed per tenant scope, so every fleetsim start writes the same one."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fleetsim:{root.backend.bucket}/{root.backend.key}"))


def apply_root(ctx: ApplyContext, terraform_version: str) -> AppliedRoot:
    """Apply every AWS module of the root, then write its state file to the backend's bucket and key."""
    resources = orchestrator_iam_aws(ctx) + patch_baselines(ctx) + falcon_install_document(ctx)
    for key, spec in sorted(ctx.root.variables.get("launch_templates", {}).items()):
        resources += launch_template(ctx, key, spec)
    resources += evidence_bucket(ctx)
    baseline_ids = {
        i["index_key"]: i["attributes"]["id"]
        for r in resources
        if r.type == "aws_ssm_patch_baseline"
        for i in r.instances
    }
    document = state_file(
        resources,
        terraform_version=terraform_version,
        serial=SERIAL,
        lineage=lineage(ctx.root),
        outputs={
            "baseline_ids": {"value": baseline_ids, "type": ["map", "string"]},
            "baselines_seeded_as_of": {"value": ctx.root.variables["as_of"], "type": "string"},
        },
    )
    backend = ctx.root.backend
    # The S3 backend writes the state as JSON; with encrypt = true, server-side encrypted (SSE-S3).
    ctx.platform.client("s3", backend.region).put_object(
        Bucket=backend.bucket,
        Key=backend.key,
        Body=dumps(document).encode(),
        ContentType="application/json",
        ServerSideEncryption="AES256",
    )
    return AppliedRoot(ctx.root.tenant, backend.bucket, backend.key, document)
