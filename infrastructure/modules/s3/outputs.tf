output "model_bucket_name" {
  description = "Name of the model bucket."
  value       = aws_s3_bucket.models.id
}

output "model_bucket_arn" {
  description = "ARN of the model bucket."
  value       = aws_s3_bucket.models.arn
}

output "access_log_bucket_name" {
  description = "Name of the bucket that receives the model bucket's server access logs."
  value       = aws_s3_bucket.access_logs.id
}
