variable "model_bucket_name" {
  description = "Globally unique name of the model bucket; the access log bucket gets the same name plus -access-logs."
  type        = string

  validation {
    # 63 characters minus the "-access-logs" suffix of the log bucket.
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,49}[a-z0-9]$", var.model_bucket_name))
    error_message = "model_bucket_name must be 3 to 51 lowercase letters, digits, dots or hyphens, starting and ending with a letter or digit."
  }
}

variable "kms_key_arn" {
  description = "ARN of the customer managed KMS key that encrypts the model bucket."
  type        = string
}

variable "noncurrent_version_expiration_days" {
  description = "Days an overwritten or deleted model object version is kept before S3 deletes it."
  type        = number

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "access_log_expiration_days" {
  description = "Days a server access log object is kept."
  type        = number

  validation {
    condition     = var.access_log_expiration_days >= 1
    error_message = "access_log_expiration_days must be at least 1."
  }
}
