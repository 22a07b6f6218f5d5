output "input_stream_name" {
  description = "Name of the input stream."
  value       = aws_kinesis_stream.input.name
}

output "input_stream_arn" {
  description = "ARN of the input stream."
  value       = aws_kinesis_stream.input.arn
}

output "output_stream_name" {
  description = "Name of the output stream."
  value       = aws_kinesis_stream.output.name
}

output "output_stream_arn" {
  description = "ARN of the output stream."
  value       = aws_kinesis_stream.output.arn
}
