output "baseline_ids" {
  description = "BaselineId by OS family."
  value       = { for family, baseline in aws_ssm_patch_baseline.family : family => baseline.id }
}

output "patch_groups" {
  description = "Patch group by OS family."
  value       = { for family, group in aws_ssm_patch_group.family : family => group.patch_group }
}
