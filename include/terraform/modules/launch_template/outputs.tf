output "launch_template_id" {
  description = "The launch template's id."
  value       = aws_launch_template.ssm_managed.id
}

output "instance_role_name" {
  description = "The instance role (AmazonSSMManagedInstanceCore attached)."
  value       = aws_iam_role.instance.name
}
