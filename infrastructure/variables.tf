# Variables without a default differ between environments: vars/stg.tfvars and
# vars/prod.tfvars set each of them. The rest share a default that either file
# may override.

# --- Environment ---

variable "aws_region" {
  description = "AWS region of every resource of the environment, for example eu-west-1."
  type        = string
}

variable "environment" {
  description = "Environment name: stg or prod. It prefixes every resource name."
  type        = string

  validation {
    condition     = contains(["stg", "prod"], var.environment)
    error_message = "environment must be stg or prod."
  }
}

variable "project_id" {
  description = "Project name used in resource names and tags; also the Powertools service name."
  type        = string
  default     = "stream-model-duration"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.project_id))
    error_message = "project_id must be 3 to 31 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "kms_deletion_window_days" {
  description = "Days KMS waits before it deletes the environment's key after a destroy (7 to 30)."
  type        = number
  default     = 30
}

# --- Kinesis ---

variable "input_stream_name" {
  description = "Name of the input stream without the environment prefix."
  type        = string
  default     = "ride_events"
}

variable "output_stream_name" {
  description = "Name of the output stream without the environment prefix."
  type        = string
  default     = "ride_predictions"
}

variable "input_shard_count" {
  description = "Shards of the input stream."
  type        = number
}

variable "output_shard_count" {
  description = "Shards of the output stream."
  type        = number
}

variable "stream_retention_hours" {
  description = "Hours a record stays readable on both streams (24 to 8760); also the time left to replay a failed batch."
  type        = number
}

# --- Model bucket and MLflow ---

variable "mlflow_experiment_id" {
  description = "MLflow experiment whose artifacts the function may read: the key prefix s3://<model bucket>/<id>/ (MLFLOW_EXPERIMENT_ID)."
  type        = string

  validation {
    condition     = can(regex("^[0-9A-Za-z_-]+$", var.mlflow_experiment_id))
    error_message = "mlflow_experiment_id must be a plain id such as 1, without slashes."
  }
}

variable "model_run_id" {
  description = "MLflow run id to set as RUN_ID. Empty keeps the value the function has now; scripts/deploy.sh normally sets it from the registry alias."
  type        = string
  default     = ""
}

variable "model_location" {
  description = "Model location to set as MODEL_LOCATION (s3://..., runs:/..., models:/name@alias). Empty keeps the value the function has now."
  type        = string
  default     = ""
}

variable "mlflow_tracking_uri" {
  description = "MLflow tracking server for runs:/ and models:/ locations (MLFLOW_TRACKING_URI); empty leaves it unset."
  type        = string
  default     = ""
}

variable "model_noncurrent_version_expiration_days" {
  description = "Days an overwritten or deleted object version in the model bucket is kept."
  type        = number
  default     = 90
}

variable "access_log_expiration_days" {
  description = "Days the model bucket's server access logs are kept."
  type        = number
  default     = 365
}

# --- Image repository ---

variable "ecr_keep_image_count" {
  description = "Number of most recent images kept in the repository; the oldest deployment a rollback can return to."
  type        = number
  default     = 30
}

variable "ecr_untagged_image_expiration_days" {
  description = "Days after which an untagged image expires."
  type        = number
  default     = 7
}

# --- Lambda function ---

variable "lambda_function_name" {
  description = "Name of the function without the environment prefix."
  type        = string
  default     = "ride_duration_prediction"
}

variable "lambda_image_digest" {
  description = "Digest (sha256:...) of the image the function runs. Null keeps the digest deployed now; it must be set when the function does not exist yet."
  type        = string
  default     = null
}

variable "lambda_architecture" {
  description = "Instruction set the image is built for: x86_64 or arm64."
  type        = string
  default     = "x86_64"
}

variable "lambda_memory_size_mb" {
  description = "Memory of the function in MB; its CPU share grows with it."
  type        = number
}

variable "lambda_timeout_seconds" {
  description = "Maximum run time of one invocation in seconds, including a cold start that loads the model."
  type        = number
}

variable "lambda_reserved_concurrent_executions" {
  description = "Concurrent executions reserved for the function; at least input_shard_count x parallelization_factor."
  type        = number
}

variable "log_level" {
  description = "Level of the function's logs: DEBUG, INFO, WARNING, ERROR or CRITICAL."
  type        = string
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the function's logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts, such as 30, 90, 365 or 731."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the function's metrics."
  type        = string
  default     = "StreamModelDuration"
}

# --- Event source mapping ---

variable "starting_position" {
  description = "Where the mapping starts reading a shard it has no checkpoint for: LATEST or TRIM_HORIZON."
  type        = string
}

variable "batch_size" {
  description = "Maximum records per invocation (1 to 10000)."
  type        = number
}

variable "maximum_batching_window_in_seconds" {
  description = "Seconds the mapping may wait to fill a batch (0 to 300); trades latency for fewer invocations."
  type        = number
}

variable "parallelization_factor" {
  description = "Concurrent batches per shard (1 to 10)."
  type        = number
}

variable "bisect_batch_on_function_error" {
  description = "Whether a batch whose invocation fails is split in two and each half retried."
  type        = bool
  default     = true
}

variable "maximum_retry_attempts" {
  description = "Retries of a failing batch before a notice goes to the failed-batches queue (0 to 10000, or -1 for until the record expires)."
  type        = number
}

variable "maximum_record_age_in_seconds" {
  description = "Age in seconds after which a record is no longer retried (60 to 604800, or -1 for the stream's retention)."
  type        = number
}

# --- Queues ---

variable "queue_message_retention_seconds" {
  description = "Seconds SQS keeps a message on the invalid-records and failed-batches queues (60 to 1209600)."
  type        = number
  default     = 1209600
}
