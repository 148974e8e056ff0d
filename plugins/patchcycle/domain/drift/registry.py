"""The resource types the drift report understands, and for each: what is compared, what the cycle owns,
which CloudTrail events write it.

A type that is not here is listed as unchecked by both engines, never as clean: the report does not know
which of its fields, if any, the cycle writes, nor how a live view of it would be read.

Attribute names are the AWS provider's (its resource documentation). The provider-free engine compares
exactly the ``compared`` attributes, so the hooks that build a live view must give those attributes in
the state's shape (``tags_all`` is compared rather than ``tags`` because the live API returns every tag,
the provider's ``default_tags`` included, which is what the state's ``tags_all`` holds). The plan
engine takes what Terraform reports for a type, minus its ``derived`` attributes (values the provider
computes from another one, which would report one change twice).

Cycle-owned fields (docs/design/iac-drift.md, "Who owns an SSM patch baseline"): the monthly plan task
writes an SSM baseline's ``ApproveUntilDate``/``ApproveAfterDays`` and its description; Terraform
ignores them (``lifecycle.ignore_changes``), so a difference there is the cycle's, never drift.

Write events: the CloudTrail ``eventName`` of each API call that changes what Terraform declares for the
type (the call's name in the service's API reference, which is what CloudTrail records). An event is
matched to a resource by the request parameters that name it (``event_match``, alternatives, each a set
of ``(request parameter, attribute)`` pairs that must all agree). Tag-only calls on EC2 (``CreateTags``)
are left out: their request names resources in a list that the domain does not parse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from patchcycle.domain.drift.values import Kind, Path, path_matches

Match = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class AttributeRule:
    """One compared attribute of a type, and how two of its values are judged equal."""

    name: str
    kind: Kind = "value"


@dataclass(frozen=True)
class TypeRule:
    """What the drift report knows of one resource type."""

    type: str
    compared: tuple[AttributeRule, ...]
    identity: tuple[str, ...]
    write_events: frozenset[str]
    event_match: tuple[Match, ...]
    cycle_owned: tuple[str, ...] = ()
    derived: tuple[str, ...] = ()

    def kind_of(self, attribute: str) -> Kind:
        """How values of ``attribute`` compare (``value`` for one this rule does not list)."""
        for rule in self.compared:
            if rule.name == attribute:
                return rule.kind
        return "value"

    def owned_by_cycle(self, path: Path) -> bool:
        """Whether the cycle writes the field at ``path`` (a difference there is not drift)."""
        return any(path_matches(path, pattern) for pattern in self.cycle_owned)


def _rules(*names: str | tuple[str, Kind]) -> tuple[AttributeRule, ...]:
    return tuple(AttributeRule(n) if isinstance(n, str) else AttributeRule(n[0], n[1]) for n in names)


_S3_BUCKET: tuple[Match, ...] = ((("bucketName", "bucket"),),)
_SSM_TAGS = frozenset({"AddTagsToResource", "RemoveTagsFromResource"})

REGISTRY: Mapping[str, TypeRule] = {
    rule.type: rule
    for rule in (
        TypeRule(
            "aws_iam_role",
            _rules(
                "name",
                "path",
                ("assume_role_policy", "iam_policy"),
                "description",
                "max_session_duration",
                "permissions_boundary",
                ("managed_policy_arns", "set"),
                "tags_all",
            ),
            identity=("name", "arn"),
            write_events=frozenset(
                {
                    "UpdateRole",
                    "UpdateRoleDescription",
                    "UpdateAssumeRolePolicy",
                    "PutRolePermissionsBoundary",
                    "DeleteRolePermissionsBoundary",
                    "AttachRolePolicy",
                    "DetachRolePolicy",
                    "TagRole",
                    "UntagRole",
                    "DeleteRole",
                }
            ),
            event_match=((("roleName", "name"),),),
        ),
        TypeRule(
            "aws_iam_role_policy",
            _rules("name", "role", ("policy", "iam_policy")),
            identity=("role", "name"),
            write_events=frozenset({"PutRolePolicy", "DeleteRolePolicy"}),
            event_match=((("roleName", "role"), ("policyName", "name")),),
        ),
        TypeRule(
            "aws_iam_policy",
            _rules("name", "path", "description", ("policy", "iam_policy"), "tags_all"),
            identity=("arn", "name"),
            write_events=frozenset(
                {
                    "CreatePolicyVersion",
                    "SetDefaultPolicyVersion",
                    "DeletePolicyVersion",
                    "TagPolicy",
                    "UntagPolicy",
                    "DeletePolicy",
                }
            ),
            event_match=((("policyArn", "arn"),),),
            derived=("attachment_count", "policy_id"),
        ),
        TypeRule(
            "aws_ssm_patch_baseline",
            _rules(
                "name",
                "operating_system",
                "description",
                "approval_rule",
                "approved_patches",
                "approved_patches_compliance_level",
                "approved_patches_enable_non_security",
                "rejected_patches",
                "rejected_patches_action",
                "global_filter",
                "source",
                "tags_all",
            ),
            identity=("id", "name"),
            write_events=frozenset({"UpdatePatchBaseline", "DeletePatchBaseline"} | _SSM_TAGS),
            event_match=((("baselineId", "id"),), (("resourceId", "id"),)),
            cycle_owned=(
                "approval_rule[*].approve_until_date",
                "approval_rule[*].approve_after_days",
                "description",
                # A tenant with a risk policy: the plan lists the cycle's fast-tracked (or zero-day) fixes
                # in ApprovedPatches before its Scan, and empties the list the next cycle.
                "approved_patches",
                "approved_patches_enable_non_security",
            ),
        ),
        TypeRule(
            "aws_ssm_patch_group",
            _rules("baseline_id", "patch_group"),
            identity=("patch_group", "baseline_id"),
            write_events=frozenset(
                {"RegisterPatchBaselineForPatchGroup", "DeregisterPatchBaselineForPatchGroup"}
            ),
            event_match=((("patchGroup", "patch_group"),),),
        ),
        TypeRule(
            "aws_ssm_document",
            _rules(
                "name",
                ("content", "document"),
                "document_format",
                "document_type",
                "target_type",
                "default_version",
                "latest_version",
                "permissions",
                "tags_all",
            ),
            identity=("name",),
            write_events=frozenset(
                {
                    "UpdateDocument",
                    "UpdateDocumentDefaultVersion",
                    "ModifyDocumentPermission",
                    "DeleteDocument",
                }
                | _SSM_TAGS
            ),
            event_match=((("name", "name"),), (("resourceId", "name"),)),
            derived=("hash", "document_version", "created_date", "status"),
        ),
        TypeRule(
            "aws_launch_template",
            _rules(
                "name",
                "image_id",
                "instance_type",
                ("user_data", "base64"),
                "iam_instance_profile",
                "metadata_options",
                ("vpc_security_group_ids", "set"),
                "default_version",
                "latest_version",
                "tags_all",
            ),
            identity=("id", "name"),
            write_events=frozenset(
                {
                    "CreateLaunchTemplateVersion",
                    "ModifyLaunchTemplate",
                    "DeleteLaunchTemplateVersions",
                    "DeleteLaunchTemplate",
                }
            ),
            event_match=((("LaunchTemplateId", "id"),), (("LaunchTemplateName", "name"),)),
        ),
        TypeRule(
            "aws_s3_bucket",
            _rules("bucket", "object_lock_enabled", "tags_all"),
            identity=("bucket",),
            write_events=frozenset({"PutBucketTagging", "DeleteBucketTagging", "DeleteBucket"}),
            event_match=_S3_BUCKET,
        ),
        TypeRule(
            "aws_s3_bucket_versioning",
            _rules("bucket", "versioning_configuration"),
            identity=("bucket",),
            write_events=frozenset({"PutBucketVersioning"}),
            event_match=_S3_BUCKET,
        ),
        TypeRule(
            "aws_s3_bucket_object_lock_configuration",
            _rules("bucket", "object_lock_enabled", "rule"),
            identity=("bucket",),
            write_events=frozenset({"PutObjectLockConfiguration"}),
            event_match=_S3_BUCKET,
        ),
        TypeRule(
            "aws_s3_bucket_public_access_block",
            _rules(
                "bucket",
                "block_public_acls",
                "block_public_policy",
                "ignore_public_acls",
                "restrict_public_buckets",
            ),
            identity=("bucket",),
            write_events=frozenset({"PutBucketPublicAccessBlock", "DeleteBucketPublicAccessBlock"}),
            event_match=_S3_BUCKET,
        ),
        TypeRule(
            "aws_s3_bucket_server_side_encryption_configuration",
            _rules("bucket", ("rule", "set")),
            identity=("bucket",),
            write_events=frozenset({"PutBucketEncryption", "DeleteBucketEncryption"}),
            event_match=_S3_BUCKET,
        ),
    )
}
"""Every resource type the drift report understands, by Terraform type name."""


def rule_for(resource_type: str) -> TypeRule | None:
    """The rule of ``resource_type``, or None for a type neither engine understands."""
    return REGISTRY.get(resource_type)
