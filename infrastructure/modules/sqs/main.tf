# Records the function rejects as invalid (undecodable or failing validation).
# The function sends each one here with its error, so a bad record never blocks
# its shard and is still kept for inspection.
resource "aws_sqs_queue" "invalid_records" {
  name                              = var.invalid_records_queue_name
  message_retention_seconds         = var.message_retention_seconds
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
}

# On-failure destination of the event source mapping. Lambda sends a message with
# the shard id and the sequence number range of each batch it gave up on (after
# the retries or the maximum record age); the records themselves stay in the
# stream until its retention period ends.
resource "aws_sqs_queue" "failed_batches" {
  name                              = var.failed_batches_queue_name
  message_retention_seconds         = var.message_retention_seconds
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
}
