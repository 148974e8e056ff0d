"""Live AWS objects in the state's shape: what the provider-free engine compares with the state.

Each function takes what the AWS API returns (boto3's parsed responses, read by the hooks in
``patchcycle.hooks.aws_drift``) and gives the live object's attributes as the AWS provider writes them
into the state, for the registry's ``compared`` attributes of its type (:mod:`.registry`). Pure.

The shapes follow the provider's reads (hashicorp/terraform-provider-aws, ``internal/service/...``): a
nested block is a list of one object (``metadata_options = [{...}]``), an absent string is ``""``, an
absent list ``[]``, tags are a map. API fields, by call (each service's API reference):

- IAM ``GetRole`` (``Role``: ``RoleName``, ``Path``, ``AssumeRolePolicyDocument``, ``Description``,
  ``MaxSessionDuration``, ``PermissionsBoundary.PermissionsBoundaryArn``, ``Tags``),
  ``ListAttachedRolePolicies`` (``AttachedPolicies[].PolicyArn``), ``GetRolePolicy``
  (``PolicyDocument``), ``GetPolicy`` (``Policy``: ``PolicyName``, ``Path``, ``Description``,
  ``DefaultVersionId``, ``Tags``), ``GetPolicyVersion`` (``PolicyVersion.Document``). IAM returns policy
  documents "URL-encoded compliant with RFC 3986"; boto3 decodes them into objects, another client may
  not, so both are read.
- SSM ``GetPatchBaseline`` (``ApprovalRules.PatchRules[]``: ``PatchFilterGroup.PatchFilters``,
  ``ComplianceLevel``, ``ApproveAfterDays``, ``ApproveUntilDate``, ``EnableNonSecurity``;
  ``GlobalFilters.PatchFilters``, ``ApprovedPatches``, ``ApprovedPatchesComplianceLevel``,
  ``ApprovedPatchesEnableNonSecurity``, ``RejectedPatches``, ``RejectedPatchesAction``, ``Sources``),
  ``ListTagsForResource`` (``TagList``), ``DescribePatchGroups`` (``Mappings[]``: ``PatchGroup``,
  ``BaselineIdentity.BaselineId``), ``DescribeDocument`` (``Document``: ``DocumentFormat``,
  ``DocumentType``, ``TargetType``, ``DefaultVersion``, ``LatestVersion``, ``Tags``), ``GetDocument``
  (``Content``), ``DescribeDocumentPermission`` (``AccountIds``).
- EC2 ``DescribeLaunchTemplates`` (``LaunchTemplateName``, ``DefaultVersionNumber``,
  ``LatestVersionNumber``, ``Tags``) and ``DescribeLaunchTemplateVersions`` (``LaunchTemplateData``:
  ``ImageId``, ``InstanceType``, ``UserData`` (base64), ``IamInstanceProfile``, ``MetadataOptions``,
  ``SecurityGroupIds``). The provider reads the template's latest version (``resourceLaunchTemplateRead``
  reads ``LatestVersionNumber``), so the live view is the latest version's data.
- S3 ``GetBucketTagging`` (``TagSet``), ``GetBucketVersioning`` (``Status``, ``MFADelete``),
  ``GetObjectLockConfiguration`` (``ObjectLockConfiguration``: ``ObjectLockEnabled``,
  ``Rule.DefaultRetention``: ``Mode``, ``Days``, ``Years``), ``GetPublicAccessBlock``
  (``PublicAccessBlockConfiguration``), ``GetBucketEncryption``
  (``ServerSideEncryptionConfiguration.Rules[]``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

Attributes = dict[str, Any]


def tags_map(tags: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    """AWS's ``[{"Key": k, "Value": v}]`` as the state's ``tags_all`` map."""
    return {str(t["Key"]): str(t.get("Value", "")) for t in tags or () if "Key" in t}


def policy_text(document: Any) -> str:
    """An IAM policy document as JSON text: an object (boto3 decodes IAM documents), or a string that is
    JSON or URL-encoded JSON (IAM's wire form)."""
    if document is None:
        return ""
    if isinstance(document, Mapping | list):
        return json.dumps(document, sort_keys=True, separators=(",", ":"))
    text = str(document)
    return unquote(text) if text.lstrip().startswith("%") else text


# -- IAM ---------------------------------------------------------------------------------------------


def iam_role(role: Mapping[str, Any], attached_policy_arns: Sequence[str]) -> Attributes:
    """``aws_iam_role`` from GetRole's ``Role`` and the ARNs ListAttachedRolePolicies gives."""
    boundary = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn") or ""
    return {
        "name": role.get("RoleName", ""),
        "path": role.get("Path", ""),
        "assume_role_policy": policy_text(role.get("AssumeRolePolicyDocument")),
        "description": role.get("Description", ""),
        "max_session_duration": role.get("MaxSessionDuration"),
        "permissions_boundary": boundary,
        "managed_policy_arns": sorted(attached_policy_arns),
        "tags_all": tags_map(role.get("Tags")),
    }


def iam_role_policy(role_name: str, policy_name: str, document: Any) -> Attributes:
    """``aws_iam_role_policy`` from GetRolePolicy's ``PolicyDocument``."""
    return {"name": policy_name, "role": role_name, "policy": policy_text(document)}


def iam_policy(policy: Mapping[str, Any], document: Any) -> Attributes:
    """``aws_iam_policy`` from GetPolicy's ``Policy`` and its default version's document
    (GetPolicyVersion)."""
    return {
        "name": policy.get("PolicyName", ""),
        "path": policy.get("Path", ""),
        "description": policy.get("Description", ""),
        "policy": policy_text(document),
        "tags_all": tags_map(policy.get("Tags")),
    }


# -- SSM ---------------------------------------------------------------------------------------------


def _filters(group: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [
        {"key": f.get("Key", ""), "values": list(f.get("Values") or [])}
        for f in (group or {}).get("PatchFilters") or ()
    ]


# A rule or baseline written without a compliance level (the cycle's UpdatePatchBaseline sends none) has
# none: PatchRule.ComplianceLevel and ApprovedPatchesComplianceLevel are optional in the API reference,
# and UNSPECIFIED is the documented value meaning "no level" and the AWS provider's default, which the
# state holds. No AWS page says whether GetPatchBaseline omits the field or returns UNSPECIFIED, so both
# are read as UNSPECIFIED: an absent level is never drift against a declared UNSPECIFIED.
NO_COMPLIANCE_LEVEL = "UNSPECIFIED"


def _rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "approve_after_days": int(rule.get("ApproveAfterDays") or 0),
        "approve_until_date": rule.get("ApproveUntilDate") or "",
        "compliance_level": rule.get("ComplianceLevel") or NO_COMPLIANCE_LEVEL,
        "enable_non_security": bool(rule.get("EnableNonSecurity", False)),
        "patch_filter": _filters(rule.get("PatchFilterGroup")),
    }


def ssm_patch_baseline(baseline: Mapping[str, Any], tags: Iterable[Mapping[str, Any]] | None) -> Attributes:
    """``aws_ssm_patch_baseline`` from GetPatchBaseline and the baseline's ListTagsForResource."""
    return {
        "name": baseline.get("Name", ""),
        "operating_system": baseline.get("OperatingSystem", ""),
        "description": baseline.get("Description", ""),
        "approval_rule": [_rule(r) for r in (baseline.get("ApprovalRules") or {}).get("PatchRules") or ()],
        "approved_patches": list(baseline.get("ApprovedPatches") or []),
        "approved_patches_compliance_level": (
            baseline.get("ApprovedPatchesComplianceLevel") or NO_COMPLIANCE_LEVEL
        ),
        "approved_patches_enable_non_security": bool(baseline.get("ApprovedPatchesEnableNonSecurity", False)),
        "rejected_patches": list(baseline.get("RejectedPatches") or []),
        "rejected_patches_action": baseline.get("RejectedPatchesAction") or "",
        "global_filter": _filters(baseline.get("GlobalFilters")),
        "source": [
            {
                "name": s.get("Name", ""),
                "products": list(s.get("Products") or []),
                "configuration": s.get("Configuration", ""),
            }
            for s in baseline.get("Sources") or ()
        ],
        "tags_all": tags_map(tags),
    }


def ssm_patch_group(
    patch_group: str, declared_baseline_id: str, mappings: Iterable[Mapping[str, Any]]
) -> Attributes | None:
    """``aws_ssm_patch_group`` from DescribePatchGroups' ``Mappings``: the declared registration when it
    exists; else the one baseline the group is registered with now (a difference in ``baseline_id``);
    else None (gone: not registered, or registered with several baselines, none the declared one)."""
    baselines = [
        str((m.get("BaselineIdentity") or {}).get("BaselineId"))
        for m in mappings
        if m.get("PatchGroup") == patch_group
    ]
    if declared_baseline_id in baselines:
        return {"baseline_id": declared_baseline_id, "patch_group": patch_group}
    if len(baselines) == 1:
        return {"baseline_id": baselines[0], "patch_group": patch_group}
    return None


def ssm_document(
    description: Mapping[str, Any], content: str | None, shared_with: Sequence[str]
) -> Attributes:
    """``aws_ssm_document`` from DescribeDocument's ``Document``, GetDocument's ``Content`` (of its
    latest version, in its own format) and DescribeDocumentPermission's ``AccountIds``; ``permissions``
    is null when the document is shared with nobody, as the provider leaves it."""
    permissions = {"type": "Share", "account_ids": ",".join(sorted(shared_with))} if shared_with else None
    return {
        "name": description.get("Name", ""),
        "content": content or "",
        "document_format": description.get("DocumentFormat", ""),
        "document_type": description.get("DocumentType", ""),
        "target_type": description.get("TargetType") or "",
        "default_version": description.get("DefaultVersion", ""),
        "latest_version": description.get("LatestVersion", ""),
        "permissions": permissions,
        "tags_all": tags_map(description.get("Tags")),
    }


# -- EC2 ---------------------------------------------------------------------------------------------


def launch_template_data(data: Mapping[str, Any]) -> Attributes:
    """A launch template version's ``LaunchTemplateData`` in the state's shape (what a version launches)."""
    profile = data.get("IamInstanceProfile")
    metadata = data.get("MetadataOptions")
    return {
        "image_id": data.get("ImageId", ""),
        "instance_type": data.get("InstanceType", ""),
        "user_data": data.get("UserData", ""),
        "iam_instance_profile": (
            [{"arn": profile.get("Arn", ""), "name": profile.get("Name", "")}] if profile else []
        ),
        "metadata_options": (
            [
                {
                    "http_endpoint": metadata.get("HttpEndpoint", ""),
                    "http_protocol_ipv6": metadata.get("HttpProtocolIpv6", ""),
                    "http_put_response_hop_limit": int(metadata.get("HttpPutResponseHopLimit") or 0),
                    "http_tokens": metadata.get("HttpTokens", ""),
                    "instance_metadata_tags": metadata.get("InstanceMetadataTags", ""),
                }
            ]
            if metadata
            else []
        ),
        "vpc_security_group_ids": sorted(data.get("SecurityGroupIds") or []),
    }


def launch_template(template: Mapping[str, Any], latest: Mapping[str, Any]) -> Attributes:
    """``aws_launch_template`` from DescribeLaunchTemplates and its latest version
    (DescribeLaunchTemplateVersions), as the provider reads it."""
    return {
        "name": template.get("LaunchTemplateName", ""),
        **launch_template_data(latest.get("LaunchTemplateData") or {}),
        "default_version": template.get("DefaultVersionNumber"),
        "latest_version": template.get("LatestVersionNumber"),
        "tags_all": tags_map(template.get("Tags")),
    }


# -- S3 ----------------------------------------------------------------------------------------------


def s3_bucket(
    bucket: str, tags: Iterable[Mapping[str, Any]] | None, lock: Mapping[str, Any] | None
) -> Attributes:
    """``aws_s3_bucket`` from GetBucketTagging's ``TagSet`` and GetObjectLockConfiguration (None: the
    bucket has no Object Lock configuration)."""
    enabled = (lock or {}).get("ObjectLockEnabled") == "Enabled"
    return {"bucket": bucket, "object_lock_enabled": enabled, "tags_all": tags_map(tags)}


def s3_bucket_versioning(bucket: str, versioning: Mapping[str, Any]) -> Attributes | None:
    """``aws_s3_bucket_versioning`` from GetBucketVersioning; None when versioning was never enabled
    (no ``Status``: the provider then finds no versioning resource)."""
    status = versioning.get("Status")
    if not status:
        return None
    return {
        "bucket": bucket,
        "versioning_configuration": [{"mfa_delete": versioning.get("MFADelete", ""), "status": status}],
    }


def s3_object_lock_configuration(bucket: str, lock: Mapping[str, Any] | None) -> Attributes | None:
    """``aws_s3_bucket_object_lock_configuration`` from GetObjectLockConfiguration's
    ``ObjectLockConfiguration`` (None: there is none)."""
    if lock is None:
        return None
    retention = (lock.get("Rule") or {}).get("DefaultRetention")
    rule = []
    if retention:
        rule = [
            {
                "default_retention": [
                    {
                        "days": int(retention.get("Days") or 0),
                        "mode": retention.get("Mode", ""),
                        "years": int(retention.get("Years") or 0),
                    }
                ]
            }
        ]
    return {"bucket": bucket, "object_lock_enabled": lock.get("ObjectLockEnabled", ""), "rule": rule}


def s3_public_access_block(bucket: str, block: Mapping[str, Any] | None) -> Attributes | None:
    """``aws_s3_bucket_public_access_block`` from GetPublicAccessBlock (None: the bucket has none)."""
    if block is None:
        return None
    return {
        "bucket": bucket,
        "block_public_acls": bool(block.get("BlockPublicAcls", False)),
        "block_public_policy": bool(block.get("BlockPublicPolicy", False)),
        "ignore_public_acls": bool(block.get("IgnorePublicAcls", False)),
        "restrict_public_buckets": bool(block.get("RestrictPublicBuckets", False)),
    }


def s3_encryption(bucket: str, configuration: Mapping[str, Any] | None) -> Attributes | None:
    """``aws_s3_bucket_server_side_encryption_configuration`` from GetBucketEncryption (None: none)."""
    if configuration is None:
        return None
    rules = []
    for rule in configuration.get("Rules") or ():
        default = rule.get("ApplyServerSideEncryptionByDefault")
        rules.append(
            {
                "apply_server_side_encryption_by_default": (
                    [
                        {
                            "kms_master_key_id": default.get("KMSMasterKeyID", ""),
                            "sse_algorithm": default.get("SSEAlgorithm", ""),
                        }
                    ]
                    if default
                    else []
                ),
                "bucket_key_enabled": bool(rule.get("BucketKeyEnabled", False)),
            }
        )
    return {"bucket": bucket, "rule": rules}
