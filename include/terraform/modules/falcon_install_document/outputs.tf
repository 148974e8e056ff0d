output "document_name" {
  description = "The document's name (SendCommand DocumentName)."
  value       = aws_ssm_document.falcon_install.name
}

output "document_arn" {
  description = "The document's ARN."
  value       = aws_ssm_document.falcon_install.arn
}
