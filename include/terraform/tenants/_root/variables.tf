# The root every tenant's example root links to (include/terraform/tenants/<tenant>/*.tf -> here, include/terraform/tenants/_root); each
# tenant directory adds only its backend block and its terraform.tfvars.json, which is exactly what
# `python -m patchcycle terraform-vars <tenant>` prints (tests/terraform holds both), plus
# platform.auto.tfvars.json with the platform's own facts, which no tenant file holds.

variable "tenant_id" {
  description = "The tenant id."
  type        = string
}

variable "as_of" {
  description = "The cycle date the baselines' seed values were computed for (YYYY-MM-DD)."
  type        = string
}

variable "aws_scope" {
  description = "The AWS account and region this root instance (this state) manages, and its Airflow connection."
  type = object({
    account_id          = string
    region              = string
    connection_id       = string
    execution_role_name = string
  })
}

variable "tenant_wide" {
  description = "This is the tenant's first AWS scope, which also holds the evidence bucket and the Azure and GCP identities."
  type        = bool
}

variable "compliance_tags" {
  description = "Tags on every tagged resource (the paper's local.compliance_tags)."
  type        = map(string)
}

variable "patch_group_tag_key" {
  description = "The patch group tag key (\"Patch Group\")."
  type        = string
}

variable "patch_baselines" {
  description = "The tenant's SSM patch baselines by OS family (modules/ssm_patch_baselines)."
  type = map(object({
    name                              = string
    operating_system                  = string
    patch_group                       = string
    description                       = string
    approved_patches_compliance_level = string
    approval_rule = object({
      patch_filters = list(object({
        key    = string
        values = list(string)
      }))
      approve_until_date  = string
      enable_non_security = bool
    })
    rejected_patches = list(string)
  }))
}

variable "launch_templates" {
  description = "One SSM-bootstrapped launch template per Amazon Linux family of the tenant."
  type = map(object({
    name            = string
    image_parameter = string
    patch_group     = string
  }))
}

variable "falcon" {
  description = "The Falcon install document and its SecureString parameter names; null without Falcon."
  type = object({
    document_name = string
    parameter_names = object({
      cid                = string
      installation_token = string
    })
  })
}

variable "falcon_rollout" {
  description = "Whether the tenant declares a Falcon roll-out: the Arc and GCP orchestrator roles then may install the sensor."
  type        = bool
  default     = false
}

variable "falcon_installer_bucket" {
  description = "The bucket the Falcon roll-out stages sensor packages in (falcon-sensor/...); null without a roll-out on AWS."
  type        = string
  default     = null
}

variable "evidence" {
  description = "The evidence bucket, its region and connection, its retention, and the accounts whose hosts read install lists."
  type = object({
    bucket             = string
    region             = string
    connection_id      = string
    retention_days     = number
    reader_account_ids = list(string)
  })
}

variable "rds" {
  description = "This account's RDS DB instances are patched."
  type        = bool
}

variable "azure" {
  description = "The tenant's Azure subscriptions and resource groups; null without Azure."
  type = object({
    subscriptions = list(object({
      subscription_id = string
      resource_groups = list(string)
      connection_id   = string
    }))
  })
}

variable "gcp" {
  description = "The tenant's Google Cloud projects and zones; null without Google Cloud."
  type = object({
    projects = list(object({
      project_id    = string
      zones         = list(string)
      connection_id = string
    }))
  })
}

# Not from the tenant file: the platform's own identities (platform.auto.tfvars.json).
variable "platform" {
  description = "The platform's principals: the Airflow workers' AWS role, and the Azure service principal's object id."
  type = object({
    orchestrator_principal_arn = string
    azure_principal_object_id  = string
  })
}
