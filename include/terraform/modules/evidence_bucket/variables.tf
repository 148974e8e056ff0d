variable "bucket" {
  description = "The tenant's evidence bucket (evidence.bucket in the tenant file)."
  type        = string
}

variable "retention_days" {
  description = "Object Lock COMPLIANCE default retention: the longest any of the tenant's frameworks demands."
  type        = number

  validation {
    condition     = var.retention_days >= 1 && floor(var.retention_days) == var.retention_days
    error_message = "retention_days must be a whole number of days, at least 1."
  }
}

variable "writer_principal_arn" {
  description = "The platform role the orchestrator's evidence connection uses (writes, reads, lists, signs links)."
  type        = string
}

variable "reader_account_ids" {
  description = "The tenant's AWS accounts, whose hosts read the cycle's install lists (InstallOverrideList)."
  type        = list(string)
}

variable "tags" {
  description = "Compliance tags."
  type        = map(string)
}
