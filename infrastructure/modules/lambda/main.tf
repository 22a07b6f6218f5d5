data "aws_caller_identity" "current" {}

locals {
  base_environment = {
    PREDICTIONS_STREAM_NAME      = var.output_stream_name
    MODEL_BUCKET                 = var.model_bucket_name
    MLFLOW_EXPERIMENT_ID         = var.model_prefix
    DEAD_LETTER_QUEUE_URL        = var.invalid_records_queue_url
    TEST_RUN                     = "False"
    POWERTOOLS_SERVICE_NAME      = var.powertools_service_name
    POWERTOOLS_METRICS_NAMESPACE = var.powertools_metrics_namespace
    LOG_LEVEL                    = var.log_level
  }

  optional_settings = {
    RUN_ID              = local.model_run_id
    MODEL_LOCATION      = local.model_location
    MLFLOW_TRACKING_URI = var.mlflow_tracking_uri
  }

  # Optional settings reach the environment only when they are not empty, so the
  # function never sees a variable set to an empty string.
  environment = merge(
    local.base_environment,
    { for name, value in local.optional_settings : name => value if value != "" },
  )
}

# Created here, before the function, so Terraform owns its retention and key
# instead of Lambda creating it on the first invocation.
resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:A dead-letter queue on the function covers asynchronous invocations only; Kinesis invokes it synchronously, and failed batches go to the event source mapping's on-failure destination.
  #checkov:skip=CKV_AWS_117:The function reaches only public AWS endpoints (Kinesis, S3, SQS), with IAM and TLS; a VPC would add NAT or endpoint cost and no control.
  #checkov:skip=CKV_AWS_272:Lambda code signing applies to .zip packages only; this image is pinned by its sha256 digest instead.
  function_name = var.function_name
  role          = aws_iam_role.this.arn
  package_type  = "Image"
  # A digest, not a tag, so that each deployment names exactly the image it runs.
  image_uri     = "${var.image_repository_url}@${local.image_digest}"
  architectures = [var.architecture]

  memory_size                    = var.memory_size_mb
  timeout                        = var.timeout_seconds
  reserved_concurrent_executions = var.reserved_concurrent_executions
  kms_key_arn                    = var.kms_key_arn

  image_config {
    command = ["lambda_function.lambda_handler"]
  }

  environment {
    variables = local.environment
  }

  tracing_config {
    mode = "Active"
  }

  lifecycle {
    precondition {
      condition     = local.image_digest != null
      error_message = "The function ${var.function_name} does not exist yet (or runs an image deployed by tag), so set lambda_image_digest: push an image with scripts/publish.sh and pass its digest, for example TF_VAR_lambda_image_digest=sha256:..."
    }
  }

  depends_on = [
    aws_cloudwatch_log_group.this,
    aws_iam_role_policy.this,
  ]
}

resource "aws_lambda_event_source_mapping" "kinesis" {
  event_source_arn  = var.input_stream_arn
  function_name     = aws_lambda_function.this.arn
  starting_position = var.starting_position

  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds
  parallelization_factor             = var.parallelization_factor

  # The handler returns the sequence numbers of the records it could not deliver,
  # so a retry starts at the first failed record instead of the whole batch.
  function_response_types = ["ReportBatchItemFailures"]

  bisect_batch_on_function_error = var.bisect_batch_on_function_error
  maximum_retry_attempts         = var.maximum_retry_attempts
  maximum_record_age_in_seconds  = var.maximum_record_age_in_seconds

  destination_config {
    on_failure {
      destination_arn = var.on_failure_queue_arn
    }
  }

  lifecycle {
    precondition {
      condition     = var.reserved_concurrent_executions >= var.input_shard_count * var.parallelization_factor
      error_message = "reserved_concurrent_executions (${var.reserved_concurrent_executions}) is below input shards x parallelization_factor (${var.input_shard_count * var.parallelization_factor}); the stream would be throttled. Raise the reservation or lower the factor."
    }
  }

  depends_on = [aws_iam_role_policy.this]
}
