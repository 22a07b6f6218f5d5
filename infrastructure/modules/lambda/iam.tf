data "aws_iam_policy_document" "assume_role" {
  statement {
    sid     = "LambdaAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.function_name}_role"
  assume_role_policy = data.aws_iam_policy_document.assume_role.json
}

# Every statement names the ARN it applies to. The only "*" resource is X-Ray's,
# whose actions support no resource-level permissions.
data "aws_iam_policy_document" "permissions" {
  # The event source mapping polls the input stream with the function's role.
  statement {
    sid    = "ReadInputStream"
    effect = "Allow"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [var.input_stream_arn]
  }

  statement {
    sid       = "WritePredictions"
    effect    = "Allow"
    actions   = ["kinesis:PutRecords"]
    resources = [var.output_stream_arn]
  }

  statement {
    sid       = "ReadModelObjects"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${var.model_bucket_arn}/${var.model_prefix}/*"]
  }

  # The model loader lists the objects of a model folder before it downloads
  # them. The condition confines the listing to the model prefix.
  statement {
    sid       = "ListModelPrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.model_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.model_prefix}/*"]
    }
  }

  # The function sends invalid records to one queue; the event source mapping
  # sends failed-batch notices to the other with the same role.
  statement {
    sid       = "SendToQueues"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = var.queue_arns
  }

  # Kinesis reads and S3 downloads need Decrypt, Kinesis writes and SQS sends
  # need GenerateDataKey, and Lambda decrypts the environment with the same key.
  statement {
    sid    = "UseEncryptionKey"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [var.kms_key_arn]
  }

  statement {
    sid    = "WriteLogs"
    effect = "Allow"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  statement {
    sid    = "WriteTraces"
    effect = "Allow"
    actions = [
      "xray:PutTraceSegments",
      "xray:PutTelemetryRecords",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "${var.function_name}_permissions"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.permissions.json
}
