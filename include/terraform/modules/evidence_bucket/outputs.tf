output "bucket_arn" {
  description = "The evidence bucket's ARN."
  value       = aws_s3_bucket.evidence.arn
}

output "kms_key_arn" {
  description = "The CMK that encrypts the evidence."
  value       = aws_kms_key.evidence.arn
}
