variable "alias_name" {
  description = "Alias of the key, without the alias/ prefix."
  type        = string
}

variable "description" {
  description = "Description shown for the key in the KMS console."
  type        = string
}

variable "deletion_window_in_days" {
  description = "Days KMS waits before it deletes the key after a destroy (7 to 30)."
  type        = number

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "log_group_names" {
  description = "CloudWatch log group names allowed to encrypt their log events with the key."
  type        = list(string)
}
