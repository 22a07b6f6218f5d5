variable "invalid_records_queue_name" {
  description = "Name of the queue for input records the function rejects as invalid."
  type        = string
}

variable "failed_batches_queue_name" {
  description = "Name of the queue that receives the event source mapping's failed-batch notices."
  type        = string
}

variable "message_retention_seconds" {
  description = "Seconds SQS keeps a message on both queues (60 to 1209600)."
  type        = number

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be between 60 and 1209600."
  }
}

variable "kms_key_arn" {
  description = "ARN of the customer managed KMS key that encrypts both queues."
  type        = string
}
