# The tenant's SSM patch baselines (one per OS family, the paper's Table 1 shape) and their patch groups.
#
# Terraform declares each baseline's identity and shape; the monthly cycle owns the approval cutoff, the
# description and the approved list (docs/design/iac-drift.md, "Who owns an SSM patch baseline"): its
# plan task calls UpdatePatchBaseline with ApproveUntilDate = the cycle's cutoff and a description naming
# it (and, for tenants with a risk policy, ApprovedPatches), and writes the declared filters back unchanged (patchcycle.domain.catalog.baseline_request,
# operators/plan.prepare_aws_catalog). The values here seed a new baseline; the cycle's are kept.
#
# Vendor documents:
# - Terraform AWS provider, aws_ssm_patch_baseline and aws_ssm_patch_group:
#   https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/ssm_patch_baseline
#   https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/ssm_patch_group
# - CreatePatchBaseline (ApprovedPatchesComplianceLevel, RejectedPatches) and PatchRule
#   (ApproveUntilDate: "Any patches released on or before this date"; ApproveAfterDays/ApproveUntilDate
#   "Not supported for Debian Server or Ubuntu Server"; a rule needs one of them elsewhere):
#   https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_CreatePatchBaseline.html
#   https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PatchRule.html
# - PatchFilter keys per operating system (CLASSIFICATION, SEVERITY, MSRC_SEVERITY, PRODUCT):
#   https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PatchFilter.html

resource "aws_ssm_patch_baseline" "family" {
  for_each = var.baselines

  name             = each.value.name
  description      = each.value.description
  operating_system = each.value.operating_system
  # The severity SSM reports when an approved patch is missing on a host (CreatePatchBaseline,
  # ApprovedPatchesComplianceLevel). The rule's own ComplianceLevel is left at UNSPECIFIED: the
  # cycle replaces the rules whole with rules that carry none, so declaring one would be drift.
  approved_patches_compliance_level = each.value.approved_patches_compliance_level
  rejected_patches                  = each.value.rejected_patches

  approval_rule {
    dynamic "patch_filter" {
      for_each = each.value.approval_rule.patch_filters
      content {
        key    = patch_filter.value.key
        values = patch_filter.value.values
      }
    }
    approve_until_date  = each.value.approval_rule.approve_until_date
    enable_non_security = each.value.approval_rule.enable_non_security
  }

  tags = var.tags

  lifecycle {
    # Owned by the monthly cycle, not by Terraform: the plan task sets ApproveUntilDate to the cycle's
    # cutoff and the description to name it every month (a plan is reproducible only if its Scan ran
    # against the rules as of the cycle's date). ApproveAfterDays is the cycle's too: a person who sets
    # it in the console changes nothing the cycle reads, and the drift report classes these fields as
    # "owned by the cycle", never as drift. ApprovedPatches (and ApprovedPatchesEnableNonSecurity) too,
    # for tenants with a risk policy: the plan lists the cycle's fast-tracked or zero-day fixes there
    # before its Scan (SSM's Scan reports only what the baseline approves; a KEV fix released after the
    # cutoff is approved by that list) and empties it the next cycle
    # (patchcycle.domain.catalog.ssm_approved_list).
    ignore_changes = [
      approval_rule[0].approve_until_date,
      approval_rule[0].approve_after_days,
      description,
      approved_patches,
      approved_patches_enable_non_security,
    ]
  }
}

# "A patch group can be registered with only one patch baseline for each operating system type" and
# the instance tag key is the case-sensitive "Patch Group" (About patch groups,
# https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-patch-groups.html).
resource "aws_ssm_patch_group" "family" {
  for_each = var.baselines

  baseline_id = aws_ssm_patch_baseline.family[each.key].id
  patch_group = each.value.patch_group
}
