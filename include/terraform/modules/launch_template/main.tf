# An EC2 launch template whose instances register with Systems Manager: the paper's 6.1 fix (an AMI
# refresh without the agent bootstrap and instance profile left 11 hosts out of a cycle).
#
# - Instance profile with AmazonSSMManagedInstanceCore, the managed policy "that enables an instance
#   to use Systems Manager service core functionality"
#   (https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-instance-permissions.html).
# - User data that installs the agent if the image lacks it, starts it and verifies it with ssm-cli
#   (https://docs.aws.amazon.com/systems-manager/latest/userguide/manually-install-ssm-agent-linux.html,
#   https://docs.aws.amazon.com/systems-manager/latest/userguide/troubleshooting-managed-nodes-using-ssm-cli.html).
# - IMDSv2 only (http_tokens = "required",
#   https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-IMDS-new-instances.html).
# - Encrypted EBS root volume.
# Terraform AWS provider, aws_launch_template:
# https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/launch_template

data "aws_partition" "current" {}
data "aws_region" "current" {}

data "aws_ssm_parameter" "image" {
  name = var.image_parameter
}

data "aws_iam_policy_document" "ec2_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name               = var.name
  assume_role_policy = data.aws_iam_policy_document.ec2_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "ssm_core" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

# AWS-RunPatchBaseline reads the cycle's InstallOverrideList from S3 with the instance's own
# credentials (About the AWS-RunPatchBaseline SSM document, "Parameter name: InstallOverrideList").
# The bucket is SSE-KMS with an S3 Bucket Key, so S3 asks KMS with the bucket ARN as the encryption
# context (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html,
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-key.html).
data "aws_iam_policy_document" "install_lists" {
  statement {
    sid       = "ReadInstallLists"
    actions   = ["s3:GetObject"]
    resources = ["arn:${data.aws_partition.current.partition}:s3:::${var.install_list_bucket}/cycles/*/plans/*"]
  }
  statement {
    sid       = "DecryptInstallLists"
    actions   = ["kms:Decrypt"]
    resources = ["arn:${data.aws_partition.current.partition}:kms:*:*:key/*"]
    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["s3.*.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = ["arn:${data.aws_partition.current.partition}:s3:::${var.install_list_bucket}"]
    }
  }
}

resource "aws_iam_role_policy" "install_lists" {
  name   = "read-install-lists"
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.install_lists.json
}

resource "aws_iam_instance_profile" "instance" {
  name = var.name
  role = aws_iam_role.instance.name
  tags = var.tags
}

resource "aws_launch_template" "ssm_managed" {
  name                   = var.name
  image_id               = data.aws_ssm_parameter.image.insecure_value
  instance_type          = var.instance_type
  update_default_version = true
  ebs_optimized          = true
  user_data              = base64encode(templatefile("${path.module}/user_data.sh.tftpl", { region = data.aws_region.current.region }))

  iam_instance_profile {
    arn = aws_iam_instance_profile.instance.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "enabled"
  }

  monitoring {
    enabled = true
  }

  # Amazon Linux images boot from /dev/xvda.
  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      encrypted             = true
      volume_type           = "gp3"
      volume_size           = 30
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { (var.patch_group_tag_key) = var.patch_group })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = var.tags
  }

  tags = var.tags
}
