output "execution_role_arn" {
  description = "The role_arn of the tenant's AWS connection for this account."
  value       = aws_iam_role.execution.arn
}

output "identity_reader_policy_json" {
  description = "The policy the access review's Identity Center role needs in the management account."
  value       = data.aws_iam_policy_document.identity_reader.json
}

output "drift_platform_reader_policy_json" {
  description = "The policy the platform's role needs for the drift report: state, plans, evidence bucket settings."
  value       = data.aws_iam_policy_document.drift_platform_reader.json
}
