output "key_arn" {
  description = "ARN of the customer managed key."
  value       = aws_kms_key.this.arn
}

output "alias_name" {
  description = "Full alias of the key (alias/...)."
  value       = aws_kms_alias.this.name
}
