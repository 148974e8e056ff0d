# The SSM Command document that installs, registers and verifies the CrowdStrike Falcon sensor (the
# paper's 3.3: "The Terraform module wraps the CrowdStrike installation script in an SSM document").
#
# Secrets: the CID and the installation token stay in Parameter Store as SecureString parameters;
# only their names are in this document, in Terraform and in its state. The host reads them when the
# command runs, with its own instance profile (AmazonSSMManagedInstanceCore grants ssm:GetParameter),
# because Run Command documents do not resolve SecureString references in {{ssm:...}} parameters.
# Parameters are passed to the scripts as environment variables (interpolationType ENV_VAR), never
# pasted into the script text ("Data elements and parameters",
# https://docs.aws.amazon.com/systems-manager/latest/userguide/documents-syntax-data-elements-parameters.html;
# hosts need an SSM agent recent enough for ENV_VAR interpolation, which that page names). Linux hosts
# need the AWS CLI (Amazon Linux ships it); Windows hosts use the AWS Tools for PowerShell of AWS's AMIs.
#
# Terraform AWS provider, aws_ssm_document:
# https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/ssm_document

locals {
  parameter_name_pattern = "^/[A-Za-z0-9_./-]{1,1010}$"
  content = {
    schemaVersion = "2.2"
    description   = "Install the CrowdStrike Falcon sensor, register it with the tenant's CID, verify it runs."
    parameters = {
      InstallerUrl = {
        type              = "String"
        description       = "s3:// or https:// URL of the sensor package for the host's OS (rpm, deb or exe)."
        allowedPattern    = "^(s3|https)://[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]+$"
        interpolationType = "ENV_VAR"
      }
      InstallerSha256 = {
        type              = "String"
        description       = "SHA-256 of the package; the install stops when it differs."
        allowedPattern    = "^[0-9a-f]{64}$"
        interpolationType = "ENV_VAR"
      }
      CidParameterName = {
        type              = "String"
        description       = "SecureString parameter holding the CID."
        default           = var.cid_parameter_name
        allowedPattern    = local.parameter_name_pattern
        interpolationType = "ENV_VAR"
      }
      TokenParameterName = {
        type              = "String"
        description       = "SecureString parameter holding the installation token."
        default           = var.installation_token_parameter_name
        allowedPattern    = local.parameter_name_pattern
        interpolationType = "ENV_VAR"
      }
    }
    mainSteps = [
      {
        action       = "aws:runShellScript"
        name         = "installFalconLinux"
        precondition = { StringEquals = ["platformType", "Linux"] }
        inputs       = { runCommand = split("\n", file("${path.module}/scripts/install-linux.sh")), timeoutSeconds = 1200 }
      },
      {
        action       = "aws:runPowerShellScript"
        name         = "installFalconWindows"
        precondition = { StringEquals = ["platformType", "Windows"] }
        inputs       = { runCommand = split("\n", file("${path.module}/scripts/install-windows.ps1")), timeoutSeconds = 1200 }
      },
    ]
  }
}

resource "aws_ssm_document" "falcon_install" {
  name            = var.document_name
  document_type   = "Command"
  document_format = "JSON"
  content         = jsonencode(local.content)
  tags            = var.tags
}
