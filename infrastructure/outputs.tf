output "environment" {
  description = "Environment these resources belong to."
  value       = var.environment
}

output "aws_region" {
  description = "Region of the environment."
  value       = var.aws_region
}

output "input_stream_name" {
  description = "Stream to put ride events on."
  value       = module.kinesis.input_stream_name
}

output "output_stream_name" {
  description = "Stream the predictions arrive on."
  value       = module.kinesis.output_stream_name
}

output "model_bucket_name" {
  description = "Bucket to use as the MLflow artifact root (s3://<bucket>); the function reads only the <mlflow_experiment_id>/ prefix."
  value       = module.s3.model_bucket_name
}

output "ecr_repository_url" {
  description = "Repository scripts/publish.sh pushes the image to."
  value       = module.ecr.repository_url
}

output "ecr_repository_name" {
  description = "Name of the image repository."
  value       = module.ecr.repository_name
}

output "lambda_function_name" {
  description = "Function scripts/deploy.sh updates."
  value       = module.lambda.function_name
}

output "lambda_log_group_name" {
  description = "CloudWatch log group of the function."
  value       = module.lambda.log_group_name
}

output "invalid_records_queue_url" {
  description = "Queue that keeps the input records the function rejected as invalid."
  value       = module.sqs.invalid_records_queue_url
}

output "failed_batches_queue_url" {
  description = "Queue that receives a notice for each batch the event source mapping gave up on."
  value       = module.sqs.failed_batches_queue_url
}

output "kms_key_arn" {
  description = "Key that encrypts the environment; MLflow clients that upload models need kms:GenerateDataKey on it."
  value       = module.kms.key_arn
}

output "mlflow_experiment_id" {
  description = "MLflow experiment whose artifact prefix the function may read."
  value       = var.mlflow_experiment_id
}
