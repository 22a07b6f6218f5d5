terraform {
  # 1.10 brings S3-native state locking (use_lockfile in the backend files).
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Partial configuration: backend/<env>.s3.tfbackend gives the bucket, the
  # per-environment state key and the region (make tf_plan ENV=stg passes it).
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project     = var.project_id
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}

data "aws_caller_identity" "current" {}

locals {
  # Stream, queue and function names carry the environment as a prefix
  # (stg_ride_events); bucket and repository names allow no underscore and
  # put it in the middle instead.
  name_prefix         = "${var.environment}_"
  function_name       = "${local.name_prefix}${var.lambda_function_name}"
  input_stream_name   = "${local.name_prefix}${var.input_stream_name}"
  output_stream_name  = "${local.name_prefix}${var.output_stream_name}"
  lambda_log_group    = "/aws/lambda/${local.function_name}"
  ecr_repository_name = "${var.project_id}-${var.environment}"
  # The account id makes the bucket name globally unique without a manual choice.
  model_bucket_name = "${var.project_id}-${var.environment}-models-${data.aws_caller_identity.current.account_id}"
}

module "kms" {
  source = "./modules/kms"

  alias_name              = "${var.project_id}-${var.environment}"
  description             = "Encrypts the ${var.environment} streams, queues, model bucket, images and function logs of ${var.project_id}."
  deletion_window_in_days = var.kms_deletion_window_days
  log_group_names         = [local.lambda_log_group]
}

module "kinesis" {
  source = "./modules/kinesis"

  input_stream_name      = local.input_stream_name
  output_stream_name     = local.output_stream_name
  input_shard_count      = var.input_shard_count
  output_shard_count     = var.output_shard_count
  retention_period_hours = var.stream_retention_hours
  kms_key_arn            = module.kms.key_arn
}

module "s3" {
  source = "./modules/s3"

  model_bucket_name                  = local.model_bucket_name
  kms_key_arn                        = module.kms.key_arn
  noncurrent_version_expiration_days = var.model_noncurrent_version_expiration_days
  access_log_expiration_days         = var.access_log_expiration_days
}

module "ecr" {
  source = "./modules/ecr"

  repository_name                = local.ecr_repository_name
  kms_key_arn                    = module.kms.key_arn
  lambda_function_name           = local.function_name
  keep_image_count               = var.ecr_keep_image_count
  untagged_image_expiration_days = var.ecr_untagged_image_expiration_days
}

module "sqs" {
  source = "./modules/sqs"

  invalid_records_queue_name = "${local.input_stream_name}_invalid_records"
  failed_batches_queue_name  = "${local.function_name}_failed_batches"
  message_retention_seconds  = var.queue_message_retention_seconds
  kms_key_arn                = module.kms.key_arn
}

module "lambda" {
  source = "./modules/lambda"

  function_name                  = local.function_name
  image_repository_url           = module.ecr.repository_url
  image_digest                   = var.lambda_image_digest
  architecture                   = var.lambda_architecture
  memory_size_mb                 = var.lambda_memory_size_mb
  timeout_seconds                = var.lambda_timeout_seconds
  reserved_concurrent_executions = var.lambda_reserved_concurrent_executions
  kms_key_arn                    = module.kms.key_arn
  log_retention_days             = var.log_retention_days
  log_level                      = var.log_level
  powertools_service_name        = var.project_id
  powertools_metrics_namespace   = var.metrics_namespace

  input_stream_arn   = module.kinesis.input_stream_arn
  input_shard_count  = var.input_shard_count
  output_stream_name = module.kinesis.output_stream_name
  output_stream_arn  = module.kinesis.output_stream_arn

  model_bucket_name   = module.s3.model_bucket_name
  model_bucket_arn    = module.s3.model_bucket_arn
  model_prefix        = var.mlflow_experiment_id
  model_run_id        = var.model_run_id
  model_location      = var.model_location
  mlflow_tracking_uri = var.mlflow_tracking_uri

  invalid_records_queue_url = module.sqs.invalid_records_queue_url
  queue_arns = [
    module.sqs.invalid_records_queue_arn,
    module.sqs.failed_batches_queue_arn,
  ]
  on_failure_queue_arn = module.sqs.failed_batches_queue_arn

  starting_position                  = var.starting_position
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds
  parallelization_factor             = var.parallelization_factor
  bisect_batch_on_function_error     = var.bisect_batch_on_function_error
  maximum_retry_attempts             = var.maximum_retry_attempts
  maximum_record_age_in_seconds      = var.maximum_record_age_in_seconds
}
