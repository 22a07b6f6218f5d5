output "invalid_records_queue_url" {
  description = "URL of the invalid-records queue (the function's DEAD_LETTER_QUEUE_URL)."
  value       = aws_sqs_queue.invalid_records.url
}

output "invalid_records_queue_arn" {
  description = "ARN of the invalid-records queue."
  value       = aws_sqs_queue.invalid_records.arn
}

output "failed_batches_queue_url" {
  description = "URL of the failed-batches queue."
  value       = aws_sqs_queue.failed_batches.url
}

output "failed_batches_queue_arn" {
  description = "ARN of the failed-batches queue (the event source mapping's on-failure destination)."
  value       = aws_sqs_queue.failed_batches.arn
}
