variable "input_stream_name" {
  description = "Name of the stream the ride events arrive on."
  type        = string
}

variable "output_stream_name" {
  description = "Name of the stream the function writes its predictions to."
  type        = string
}

variable "input_shard_count" {
  description = "Shards of the input stream. Each shard takes 1 MB/s or 1,000 records/s of writes."
  type        = number

  validation {
    condition     = var.input_shard_count >= 1
    error_message = "input_shard_count must be at least 1."
  }
}

variable "output_shard_count" {
  description = "Shards of the output stream. Each shard takes 1 MB/s or 1,000 records/s of writes."
  type        = number

  validation {
    condition     = var.output_shard_count >= 1
    error_message = "output_shard_count must be at least 1."
  }
}

variable "retention_period_hours" {
  description = "Hours a record stays readable on both streams (24 to 8760)."
  type        = number

  validation {
    condition     = var.retention_period_hours >= 24 && var.retention_period_hours <= 8760
    error_message = "retention_period_hours must be between 24 and 8760."
  }
}

variable "kms_key_arn" {
  description = "ARN of the customer managed KMS key that encrypts both streams."
  type        = string
}
