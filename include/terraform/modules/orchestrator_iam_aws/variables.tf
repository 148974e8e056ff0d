variable "role_name" {
  description = "The execution role the tenant's AWS connection assumes in this account (role_arn)."
  type        = string
}

variable "trusted_principal_arn" {
  description = "The platform principal (the Airflow workers' role) allowed to assume the execution role."
  type        = string
}

variable "rds" {
  description = "The account's RDS DB instances are patched (rds: true in the tenant file): add the RDS actions."
  type        = bool
}

variable "tags" {
  description = "Compliance tags."
  type        = map(string)
}

variable "falcon" {
  description = "The Falcon install document and its SecureString parameter names the roll-out may write; null without Falcon."
  type = object({
    document_name = string
    parameter_names = object({
      cid                = string
      installation_token = string
    })
  })
  default = null
}

variable "falcon_installer_bucket" {
  description = "The bucket the Falcon roll-out stages sensor packages in; null: no such write is granted."
  type        = string
  default     = null
}
