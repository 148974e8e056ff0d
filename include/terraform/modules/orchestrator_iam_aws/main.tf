# Least privilege for the orchestrator in a tenant's AWS account: exactly the API actions the hooks in
# plugins/patchcycle/hooks/ call through boto3, nothing more. tests/terraform/test_orchestrator_iam.py
# reads the hooks' calls (AST) and holds these lists equal to them; a new call in a hook fails that
# test until its action is added here.
#
# Three principals, three places:
# - the execution role (this account; the aws_<tenant> connection's role_arn): SSM, EC2, RDS, and the
#   drift report's and the SAML certificate watch's read-only calls in inline policies of their own
#   (drift_reader, saml_reader);
# - the evidence writer (the platform's role, patchcycle_evidence): S3 and KMS, granted by the evidence
#   bucket's own policies (modules/evidence_bucket); the drift report's state and bucket-settings reads
#   through the same role, in the policy document output here (drift_platform_reader);
# - the Identity Center reader (the management account, patchcycle_identity): the policy document
#   output here, attached by the organization's owner.
# Where an action takes resource-level permissions, the ARNs are this account and region's (Service
# Authorization Reference, "Actions, resources, and condition keys" for Systems Manager, Amazon EC2,
# Amazon RDS: https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html).

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  p      = data.aws_partition.current.partition
  region = data.aws_region.current.region
  acct   = data.aws_caller_identity.current.account_id
  # The platform's state bucket (every tenant root's backend "s3" bucket).
  state_bucket = "patchcycle-terraform-state"
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = [var.trusted_principal_arn]
    }
  }
}

resource "aws_iam_role" "execution" {
  name                 = var.role_name
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "execution" {
  # hooks/aws.SsmFleetHook: these actions take no resource ARN ("*" only, Service Authorization
  # Reference for Systems Manager), CreatePatchBaseline included (a new baseline has no ARN yet).
  statement {
    sid = "SsmNoResourceLevel"
    actions = [
      "ssm:CreatePatchBaseline",
      "ssm:DescribeAvailablePatches",
      "ssm:DescribeInstanceInformation",
      "ssm:DescribePatchBaselines",
      "ssm:GetPatchBaselineForPatchGroup",
      "ssm:ListCommandInvocations",
      "ssm:ListCommands",
    ]
    resources = ["*"]
  }
  # Patch state of this account's instances.
  statement {
    sid     = "SsmInstancePatchState"
    actions = ["ssm:DescribeInstancePatchStates", "ssm:DescribeInstancePatches"]
    resources = [
      "arn:${local.p}:ec2:${local.region}:${local.acct}:instance/*",
      "arn:${local.p}:ssm:${local.region}:${local.acct}:managed-instance/*",
    ]
  }
  # The tenant's baselines and their patch groups (plan task: update, register, move a group).
  statement {
    sid = "SsmPatchBaselines"
    actions = [
      "ssm:DeregisterPatchBaselineForPatchGroup",
      "ssm:GetPatchBaseline",
      "ssm:RegisterPatchBaselineForPatchGroup",
      "ssm:UpdatePatchBaseline",
    ]
    resources = ["arn:${local.p}:ssm:${local.region}:${local.acct}:patchbaseline/*"]
  }
  # The Falcon roll-out (operators/falcon_rollout.InstallSensorsAwsOperator): Run Command of the tenant's
  # Falcon install document on this account's instances, and the two SecureString parameters it reads on
  # the host (the roll-out writes the CID and installation token there; nothing else is writable).
  dynamic "statement" {
    for_each = var.falcon == null ? [] : [var.falcon]
    content {
      sid     = "FalconInstallDocument"
      actions = ["ssm:SendCommand"]
      resources = [
        "arn:${local.p}:ssm:${local.region}:${local.acct}:document/${statement.value.document_name}",
        "arn:${local.p}:ec2:${local.region}:${local.acct}:instance/*",
      ]
    }
  }
  # Staging a sensor package for the document's InstallerUrl: only under falcon-sensor/ of that bucket.
  dynamic "statement" {
    for_each = var.falcon_installer_bucket == null ? [] : [var.falcon_installer_bucket]
    content {
      sid       = "FalconInstallerStaging"
      actions   = ["s3:PutObject"]
      resources = ["arn:${local.p}:s3:::${statement.value}/falcon-sensor/*"]
    }
  }
  dynamic "statement" {
    for_each = var.falcon == null ? [] : [var.falcon]
    content {
      sid     = "FalconInstallSecrets"
      actions = ["ssm:PutParameter"]
      # Parameter names are absolute paths ("/patchcycle/<tenant>/falcon/cid"): the ARN is parameter<name>.
      resources = [
        for name in values(statement.value.parameter_names) :
        "arn:${local.p}:ssm:${local.region}:${local.acct}:parameter${name}"
      ]
    }
  }
  # Run Command: only AWS-RunPatchBaseline (hooks/aws.PATCH_DOCUMENT), only on this account's instances.
  statement {
    sid     = "SsmRunPatchBaseline"
    actions = ["ssm:SendCommand"]
    resources = [
      "arn:${local.p}:ssm:${local.region}::document/AWS-RunPatchBaseline",
      "arn:${local.p}:ec2:${local.region}:${local.acct}:instance/*",
    ]
  }
  # hooks/aws.Ec2BackupHook: reads.
  statement {
    sid       = "Ec2Read"
    actions   = ["ec2:DescribeImages", "ec2:DescribeReplaceRootVolumeTasks", "ec2:DescribeTags"]
    resources = ["*"]
  }
  # AMI backups (CreateImage tags the image and its snapshots through TagSpecifications, which also
  # needs ec2:CreateTags), the Patch Group tag on instances, root volume replacement from an AMI.
  statement {
    sid     = "Ec2BackupAndRestore"
    actions = ["ec2:CreateImage", "ec2:CreateReplaceRootVolumeTask", "ec2:CreateTags"]
    resources = [
      "arn:${local.p}:ec2:${local.region}:${local.acct}:instance/*",
      "arn:${local.p}:ec2:${local.region}:${local.acct}:volume/*",
      "arn:${local.p}:ec2:${local.region}:${local.acct}:replace-root-volume-task/*",
      "arn:${local.p}:ec2:${local.region}::image/*",
      "arn:${local.p}:ec2:${local.region}::snapshot/*",
    ]
  }
  # hooks/aws.RdsHook, only where the account opts in (rds: true).
  dynamic "statement" {
    for_each = var.rds ? [1] : []
    content {
      sid       = "RdsRead"
      actions   = ["rds:DescribeDBInstances", "rds:DescribeDBSnapshots", "rds:DescribePendingMaintenanceActions"]
      resources = ["arn:${local.p}:rds:${local.region}:${local.acct}:*"]
    }
  }
  dynamic "statement" {
    for_each = var.rds ? [1] : []
    content {
      # CreateDBSnapshot and RestoreDBInstanceFromDBSnapshot are called with Tags, which also needs
      # rds:AddTagsToResource (Amazon RDS, "Tagging Amazon RDS resources").
      sid = "RdsPatchSnapshotRestore"
      actions = [
        "rds:AddTagsToResource",
        "rds:ApplyPendingMaintenanceAction",
        "rds:CreateDBSnapshot",
        "rds:ModifyDBInstance",
        "rds:RestoreDBInstanceFromDBSnapshot",
      ]
      resources = ["arn:${local.p}:rds:${local.region}:${local.acct}:*"]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "patchcycle-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# hooks/aws_drift, the daily drift report's reads in this account (read only, its own inline policy so
# the patching grants above stay as they were): IAM roles and policies, SSM baselines, patch groups and
# documents, launch templates, Auto Scaling groups and launch configurations, and CloudTrail's event
# history for who changed them.
data "aws_iam_policy_document" "drift_reader" {
  # IamReadHook. IAM is global: role and policy ARNs carry no region.
  statement {
    sid       = "DriftIamRoles"
    actions   = ["iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies"]
    resources = ["arn:${local.p}:iam::${local.acct}:role/*"]
  }
  statement {
    sid       = "DriftIamPolicies"
    actions   = ["iam:GetPolicy", "iam:GetPolicyVersion"]
    resources = ["arn:${local.p}:iam::${local.acct}:policy/*"]
  }
  # SsmConfigHook: baselines and documents by ARN; their tags.
  statement {
    sid = "DriftSsmResources"
    actions = [
      "ssm:DescribeDocument",
      "ssm:DescribeDocumentPermission",
      "ssm:GetDocument",
      "ssm:GetPatchBaseline",
      "ssm:ListTagsForResource",
    ]
    resources = [
      "arn:${local.p}:ssm:${local.region}:${local.acct}:patchbaseline/*",
      "arn:${local.p}:ssm:${local.region}:${local.acct}:document/*",
    ]
  }
  # DescribePatchGroups, the launch template reads (LaunchTemplateHook), the Auto Scaling reads
  # (AutoScalingHook) and CloudTrail's LookupEvents (CloudTrailHook) take no resource ARN ("*" only,
  # Service Authorization Reference for Systems Manager, Amazon EC2, Amazon EC2 Auto Scaling and AWS
  # CloudTrail).
  statement {
    sid = "DriftNoResourceLevel"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeLaunchConfigurations",
      "cloudtrail:LookupEvents",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:DescribeLaunchTemplates",
      "ssm:DescribePatchGroups",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "drift_reader" {
  name   = "patchcycle-drift-read"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.drift_reader.json
}

# hooks/aws_iam_saml.IamSamlHook, the daily SAML certificate watch's reads in this account: the IAM SAML
# providers and their metadata documents. ListSAMLProviders takes no resource ARN; GetSAMLProvider takes
# the provider's (Service Authorization Reference for AWS Identity and Access Management, resource type
# saml-provider).
data "aws_iam_policy_document" "saml_reader" {
  statement {
    sid       = "SamlProvidersList"
    actions   = ["iam:ListSAMLProviders"]
    resources = ["*"]
  }
  statement {
    sid       = "SamlProviderRead"
    actions   = ["iam:GetSAMLProvider"]
    resources = ["arn:${local.p}:iam::${local.acct}:saml-provider/*"]
  }
}

resource "aws_iam_role_policy" "saml_reader" {
  name   = "patchcycle-saml-read"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.saml_reader.json
}

# The drift report's reads through the platform's connection (patchcycle_evidence), in the platform's
# account: the tenant scopes' Terraform state and pipeline plans (hooks/terraform_state), and the
# evidence buckets' settings (hooks/aws_drift.BucketSettingsHook), whose names are the tenants' own.
# Output, not attached here: the platform's owner attaches it to the platform's role, as the evidence
# writer's grants are the bucket's.
data "aws_iam_policy_document" "drift_platform_reader" {
  statement {
    sid     = "TerraformStateRead"
    actions = ["s3:GetObject"]
    resources = [
      "arn:${local.p}:s3:::${local.state_bucket}/tenants/*",
      "arn:${local.p}:s3:::${local.state_bucket}/plans/*",
    ]
  }
  statement {
    sid = "EvidenceBucketSettingsRead"
    actions = [
      "s3:GetBucketObjectLockConfiguration",
      "s3:GetBucketPublicAccessBlock",
      "s3:GetBucketTagging",
      "s3:GetBucketVersioning",
      "s3:GetEncryptionConfiguration",
    ]
    resources = ["arn:${local.p}:s3:::*"]
  }
}

# hooks/aws.IdentityCenterHook, in the organization's management account (IAM Identity Center's
# actions carry the "sso" prefix; the identity store's "identitystore"). Output, not attached here.
data "aws_iam_policy_document" "identity_reader" {
  statement {
    sid       = "IdentityCenterInstances"
    actions   = ["sso:ListInstances"]
    resources = ["*"]
  }
  statement {
    sid = "IdentityCenterAssignments"
    actions = [
      "sso:DescribePermissionSet",
      "sso:ListAccountAssignments",
      "sso:ListManagedPoliciesInPermissionSet",
      "sso:ListPermissionSetsProvisionedToAccount",
    ]
    resources = [
      "arn:${local.p}:sso:::instance/*",
      "arn:${local.p}:sso:::permissionSet/*/*",
      "arn:${local.p}:sso:::account/*",
    ]
  }
  statement {
    sid     = "IdentityStoreRead"
    actions = ["identitystore:ListGroupMemberships", "identitystore:ListGroups", "identitystore:ListUsers"]
    resources = [
      "arn:${local.p}:identitystore::*:identitystore/*",
      "arn:${local.p}:identitystore:::user/*",
      "arn:${local.p}:identitystore:::group/*",
      "arn:${local.p}:identitystore:::membership/*",
    ]
  }
}
