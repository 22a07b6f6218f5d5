# Both streams are provisioned, so the shard count (and with it the function's
# concurrency) is a known number the event source mapping can be sized against.
resource "aws_kinesis_stream" "input" {
  name             = var.input_stream_name
  shard_count      = var.input_shard_count
  retention_period = var.retention_period_hours
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_arn

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }

  tags = {
    Role = "ride events in"
  }
}

resource "aws_kinesis_stream" "output" {
  name             = var.output_stream_name
  shard_count      = var.output_shard_count
  retention_period = var.retention_period_hours
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_arn

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }

  tags = {
    Role = "ride predictions out"
  }
}
