variable "function_name" {
  description = "Name of the Lambda function; also names its role and log group."
  type        = string
}

variable "image_repository_url" {
  description = "URL of the ECR repository that holds the function's image."
  type        = string
}

variable "image_digest" {
  description = "Digest (sha256:...) of the image to run; null keeps the digest the function runs now, which is required when the function does not exist yet."
  type        = string
  default     = null

  validation {
    condition     = var.image_digest == null || can(regex("^sha256:[0-9a-f]{64}$", var.image_digest))
    error_message = "image_digest must look like sha256:<64 hex digits>; a tag is not accepted."
  }
}

variable "architecture" {
  description = "Instruction set the image is built for: x86_64 or arm64."
  type        = string

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "memory_size_mb" {
  description = "Memory of the function in MB (128 to 10240); CPU share grows with it."
  type        = number

  validation {
    condition     = var.memory_size_mb >= 128 && var.memory_size_mb <= 10240
    error_message = "memory_size_mb must be between 128 and 10240."
  }
}

variable "timeout_seconds" {
  description = "Maximum run time of one invocation in seconds (1 to 900). It has to cover a cold start, which loads the model."
  type        = number

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 900
    error_message = "timeout_seconds must be between 1 and 900."
  }
}

variable "reserved_concurrent_executions" {
  description = "Concurrent executions reserved for the function; at least input shards x parallelization_factor."
  type        = number

  validation {
    condition     = var.reserved_concurrent_executions >= 1
    error_message = "reserved_concurrent_executions must be at least 1."
  }
}

variable "kms_key_arn" {
  description = "ARN of the customer managed KMS key of the environment: it encrypts the function's environment and logs, and the role may use it for the encrypted streams, queues and bucket."
  type        = string
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the function's logs; one of the values CloudWatch Logs accepts."
  type        = number
}

variable "log_level" {
  description = "Level of the function's logs (LOG_LEVEL)."
  type        = string

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.log_level)
    error_message = "log_level must be one of DEBUG, INFO, WARNING, ERROR or CRITICAL."
  }
}

variable "powertools_service_name" {
  description = "Service name Powertools puts on every log line and metric (POWERTOOLS_SERVICE_NAME)."
  type        = string
}

variable "powertools_metrics_namespace" {
  description = "CloudWatch namespace of the function's metrics (POWERTOOLS_METRICS_NAMESPACE)."
  type        = string
}

variable "input_stream_arn" {
  description = "ARN of the stream the function reads ride events from."
  type        = string
}

variable "input_shard_count" {
  description = "Shards of the input stream, to check the reserved concurrency against."
  type        = number
}

variable "output_stream_name" {
  description = "Name of the stream the function writes predictions to (PREDICTIONS_STREAM_NAME)."
  type        = string
}

variable "output_stream_arn" {
  description = "ARN of the stream the function writes predictions to."
  type        = string
}

variable "model_bucket_name" {
  description = "Bucket of the MLflow artifact store (MODEL_BUCKET)."
  type        = string
}

variable "model_bucket_arn" {
  description = "ARN of the model bucket."
  type        = string
}

variable "model_prefix" {
  description = "Key prefix in the model bucket the function may read: the MLflow experiment id (MLFLOW_EXPERIMENT_ID)."
  type        = string
}

variable "model_run_id" {
  description = "MLflow run id of the model (RUN_ID); empty keeps the value the function has now, or leaves it unset on a new function."
  type        = string
  default     = ""
}

variable "model_location" {
  description = "Model location (MODEL_LOCATION); empty keeps the value the function has now, or leaves it unset on a new function."
  type        = string
  default     = ""
}

variable "mlflow_tracking_uri" {
  description = "MLflow tracking server (MLFLOW_TRACKING_URI), needed only for runs:/ and models:/ locations; empty to leave it unset."
  type        = string
}

variable "invalid_records_queue_url" {
  description = "URL of the queue for invalid input records (DEAD_LETTER_QUEUE_URL)."
  type        = string
}

variable "queue_arns" {
  description = "ARNs of the queues the function's role may send to: the invalid-records queue and the on-failure destination."
  type        = list(string)
}

variable "on_failure_queue_arn" {
  description = "ARN of the queue that receives a notice for each batch the event source mapping gives up on."
  type        = string
}

variable "starting_position" {
  description = "Where the event source mapping starts reading a shard it has no checkpoint for: LATEST or TRIM_HORIZON."
  type        = string

  validation {
    condition     = contains(["LATEST", "TRIM_HORIZON"], var.starting_position)
    error_message = "starting_position must be LATEST or TRIM_HORIZON."
  }
}

variable "batch_size" {
  description = "Maximum records per invocation (1 to 10000)."
  type        = number

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size must be between 1 and 10000."
  }
}

variable "maximum_batching_window_in_seconds" {
  description = "Seconds the mapping may wait to fill a batch before it invokes the function (0 to 300)."
  type        = number

  validation {
    condition     = var.maximum_batching_window_in_seconds >= 0 && var.maximum_batching_window_in_seconds <= 300
    error_message = "maximum_batching_window_in_seconds must be between 0 and 300."
  }
}

variable "parallelization_factor" {
  description = "Concurrent batches per shard (1 to 10); records with the same partition key stay in order."
  type        = number

  validation {
    condition     = var.parallelization_factor >= 1 && var.parallelization_factor <= 10
    error_message = "parallelization_factor must be between 1 and 10."
  }
}

variable "bisect_batch_on_function_error" {
  description = "Whether a failing batch is split in two and each half retried, which isolates a record that makes the whole invocation fail."
  type        = bool
}

variable "maximum_retry_attempts" {
  description = "Retries of a failing batch before it goes to the on-failure destination (-1 for until the record expires, or 0 to 10000)."
  type        = number

  validation {
    condition     = var.maximum_retry_attempts >= -1 && var.maximum_retry_attempts <= 10000
    error_message = "maximum_retry_attempts must be between -1 and 10000."
  }
}

variable "maximum_record_age_in_seconds" {
  description = "Age after which a record is no longer retried but sent to the on-failure destination (-1 for the stream's retention, or 60 to 604800)."
  type        = number

  validation {
    condition     = var.maximum_record_age_in_seconds == -1 || (var.maximum_record_age_in_seconds >= 60 && var.maximum_record_age_in_seconds <= 604800)
    error_message = "maximum_record_age_in_seconds must be -1 or between 60 and 604800."
  }
}
