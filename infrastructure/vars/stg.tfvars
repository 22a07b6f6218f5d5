# Staging: small and cheap, reads new events only. The S3 backend for this
# environment is in backend/stg.s3.tfbackend (state key stream-model-duration/stg/terraform.tfstate).
aws_region  = "eu-west-1"
environment = "stg"

input_shard_count      = 1
output_shard_count     = 1
stream_retention_hours = 24

mlflow_experiment_id = "1"

lambda_memory_size_mb                 = 1024
lambda_timeout_seconds                = 120
lambda_reserved_concurrent_executions = 2
log_level                             = "DEBUG"
log_retention_days                    = 365

starting_position                  = "LATEST"
batch_size                         = 100
maximum_batching_window_in_seconds = 1
parallelization_factor             = 1
maximum_retry_attempts             = 2
maximum_record_age_in_seconds      = 3600
