# Production: more shards and retries, a week of stream retention for replays.
# The S3 backend for this environment is in backend/prod.s3.tfbackend
# (state key stream-model-duration/prod/terraform.tfstate).
aws_region  = "eu-west-1"
environment = "prod"

input_shard_count      = 2
output_shard_count     = 2
stream_retention_hours = 168

mlflow_experiment_id = "1"

lambda_memory_size_mb                 = 2048
lambda_timeout_seconds                = 120
lambda_reserved_concurrent_executions = 10
log_level                             = "INFO"
log_retention_days                    = 731

starting_position                  = "TRIM_HORIZON"
batch_size                         = 500
maximum_batching_window_in_seconds = 2
parallelization_factor             = 2
maximum_retry_attempts             = 5
maximum_record_age_in_seconds      = 21600
