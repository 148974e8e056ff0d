variable "baselines" {
  description = <<-EOT
    The tenant's SSM patch baselines by OS family, exactly as `python -m patchcycle terraform-vars`
    exports them from the tenant file (patchcycle.domain.catalog.baseline_request as of `as_of`).
  EOT
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
      # null for Ubuntu: PatchRule, ApproveUntilDate "Not supported for Debian Server or Ubuntu Server".
      approve_until_date = optional(string)
      # null for Windows: the cycle's rule leaves EnableNonSecurity out there.
      enable_non_security = optional(bool)
    })
    rejected_patches = list(string)
  }))

  validation {
    condition = alltrue([
      for b in values(var.baselines) : contains(
        ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNSPECIFIED"], b.approved_patches_compliance_level
      )
    ])
    error_message = "approved_patches_compliance_level must be one of CreatePatchBaseline's values."
  }
}

variable "tags" {
  description = "Compliance tags every baseline carries."
  type        = map(string)
}
