variable "repository_name" {
  description = "Name of the ECR repository for the function's image."
  type        = string
}

variable "kms_key_arn" {
  description = "ARN of the customer managed KMS key that encrypts the images."
  type        = string
}

variable "lambda_function_name" {
  description = "Name of the function allowed to pull images from the repository."
  type        = string
}

variable "keep_image_count" {
  description = "Number of most recent images ECR keeps; older ones expire, so this bounds how far back a rollback can go."
  type        = number

  validation {
    condition     = var.keep_image_count >= 2
    error_message = "keep_image_count must be at least 2, so the previous image stays available for a rollback."
  }
}

variable "untagged_image_expiration_days" {
  description = "Days after which an untagged image expires."
  type        = number

  validation {
    condition     = var.untagged_image_expiration_days >= 1
    error_message = "untagged_image_expiration_days must be at least 1."
  }
}
