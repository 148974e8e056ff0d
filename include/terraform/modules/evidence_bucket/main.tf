# The tenant's evidence bucket: write-once evidence packs kept for the tenant's retention.
#
# - Object Lock in COMPLIANCE mode with the tenant's retention as the default: "In compliance mode, a
#   protected object version can't be overwritten or deleted by any user, including the root user".
#   Object Lock works only with versioning: "Before you lock any objects, you must enable S3 Versioning
#   and Object Lock", and once on, "you can't disable Object Lock or suspend versioning"
#   (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-configure.html,
#   https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html).
#   The cycle also sets each object's own retain-until date (hooks/s3.put_once); the default covers any
#   object written without one.
# - SSE-KMS with a customer managed key that rotates yearly
#   (https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html) and an S3 Bucket Key
#   (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-key.html).
# - Block Public Access on all four settings, object ownership enforced (no ACLs), and a bucket policy
#   that denies any request not sent over TLS (aws:SecureTransport,
#   https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html).
# Terraform AWS provider: aws_s3_bucket (object_lock_enabled), aws_s3_bucket_versioning,
# aws_s3_bucket_object_lock_configuration, aws_s3_bucket_server_side_encryption_configuration,
# aws_s3_bucket_public_access_block, aws_s3_bucket_policy, aws_kms_key (enable_key_rotation),
# https://registry.terraform.io/providers/hashicorp/aws/latest/docs.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

locals {
  bucket_arn   = "arn:${data.aws_partition.current.partition}:s3:::${var.bucket}"
  reader_roots = [for account in var.reader_account_ids : "arn:${data.aws_partition.current.partition}:iam::${account}:root"]
}

data "aws_iam_policy_document" "key" {
  # A key policy is attached to one key: its Resource "*" means "this KMS key" ("In a key policy, the
  # value of the Resource element is "*", which means "this KMS key"",
  # https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html), and kms:* for the
  # account root is the default key policy that lets IAM policies grant use of the key (key-policy-default).
  #checkov:skip=CKV_AWS_109:Key policy: Resource "*" is this key only; kms:* for the account root is AWS's default key policy statement.
  #checkov:skip=CKV_AWS_111:Key policy: Resource "*" is this key only; kms:* for the account root is AWS's default key policy statement.
  #checkov:skip=CKV_AWS_356:Key policy: Resource "*" is this key only (a key policy cannot name another resource).
  # The key's own account administers it (the default key policy's first statement, "Allows access to
  # the AWS account and enables IAM policies", https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html).
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  # The orchestrator writes (PutObject with SSE-KMS needs kms:GenerateDataKey) and reads (kms:Decrypt)
  # through S3 only (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html).
  statement {
    sid       = "OrchestratorThroughS3"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [var.writer_principal_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = [local.bucket_arn]
    }
  }
  # The tenant's hosts decrypt the install lists they read (their own IAM policy narrows it further).
  statement {
    sid       = "TenantHostsReadInstallLists"
    actions   = ["kms:Decrypt"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = local.reader_roots
    }
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = [local.bucket_arn]
    }
  }
}

resource "aws_kms_key" "evidence" {
  description             = "Evidence of ${var.bucket} (SSE-KMS)"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "evidence" {
  name          = "alias/${var.bucket}"
  target_key_id = aws_kms_key.evidence.key_id
}

resource "aws_s3_bucket" "evidence" {
  #checkov:skip=CKV_AWS_18:Server access logs need a log bucket outside this tenant's scope (a bucket with Object Lock cannot even receive them); the platform's per-region log bucket or CloudTrail S3 data events record access, not a per-tenant module.
  #checkov:skip=CKV_AWS_144:One copy in the tenant's evidence region, locked in COMPLIANCE mode, is what the retention needs; replicating regulated evidence to a second region is the tenant's data-residency decision, not a default.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events: each cycle's writer records what it wrote, and the packs' manifest chain (python -m patchcycle verify-evidence) detects any change.
  bucket              = var.bucket
  object_lock_enabled = true
  tags                = var.tags
}

resource "aws_s3_bucket_versioning" "evidence" {
  bucket = aws_s3_bucket.evidence.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_object_lock_configuration" "evidence" {
  bucket = aws_s3_bucket.evidence.id
  rule {
    default_retention {
      mode = "COMPLIANCE"
      days = var.retention_days
    }
  }
  # Versioning first: Object Lock requires it (see above).
  depends_on = [aws_s3_bucket_versioning.evidence]
}

resource "aws_s3_bucket_server_side_encryption_configuration" "evidence" {
  bucket = aws_s3_bucket.evidence.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.evidence.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "evidence" {
  bucket                  = aws_s3_bucket.evidence.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "evidence" {
  bucket = aws_s3_bucket.evidence.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# Only uploads left incomplete are cleaned up; no version of evidence expires here (retention is the
# tenant's policy, enforced by Object Lock).
resource "aws_s3_bucket_lifecycle_configuration" "evidence" {
  bucket = aws_s3_bucket.evidence.id
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  depends_on = [aws_s3_bucket_versioning.evidence]
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.bucket_arn, "${local.bucket_arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
  # Exactly what hooks/s3.EvidenceBucketHook calls (tests/terraform/test_orchestrator_iam.py holds it):
  # PutObject (with IfNoneMatch, SSE-KMS and an Object Lock retain-until date, which needs
  # s3:PutObjectRetention), GetObject (also what its pre-signed links do), ListObjectsV2 (s3:ListBucket).
  statement {
    sid       = "OrchestratorObjects"
    actions   = ["s3:PutObject", "s3:PutObjectRetention", "s3:GetObject"]
    resources = ["${local.bucket_arn}/*"]
    principals {
      type        = "AWS"
      identifiers = [var.writer_principal_arn]
    }
  }
  statement {
    sid       = "OrchestratorList"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
    principals {
      type        = "AWS"
      identifiers = [var.writer_principal_arn]
    }
  }
  statement {
    sid       = "TenantHostsReadInstallLists"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn}/cycles/*/plans/*"]
    principals {
      type        = "AWS"
      identifiers = local.reader_roots
    }
  }
}

resource "aws_s3_bucket_policy" "evidence" {
  bucket = aws_s3_bucket.evidence.id
  policy = data.aws_iam_policy_document.bucket.json
  # Block Public Access first, so the policy never lands on an unguarded bucket.
  depends_on = [aws_s3_bucket_public_access_block.evidence]
}
