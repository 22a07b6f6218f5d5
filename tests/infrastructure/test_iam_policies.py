"""The function's IAM policy grants each action on named ARNs only."""

from __future__ import annotations

import pytest

from tests.infrastructure.terraform_config import TerraformDirectory, attribute, blocks

# Service prefixes whose actions must never apply to "*": they all support resource ARNs.
SCOPED_SERVICES = ("kinesis:", "sqs:", "s3:", "kms:", "logs:")


@pytest.fixture(scope="module")
def statements(module_config: dict[str, TerraformDirectory]) -> dict[str, dict]:
    """The statements of the function's permission policy, by sid."""
    document = module_config["lambda"].data("aws_iam_policy_document", "permissions")
    return {attribute(statement, "sid"): statement for statement in blocks(document, "statement")}


def grants(statement: dict) -> dict:
    return {
        "effect": attribute(statement, "effect"),
        "actions": attribute(statement, "actions"),
        "resources": attribute(statement, "resources"),
    }


def test_lambda_policy_statements(statements):
    actual = {sid: grants(statement) for sid, statement in statements.items()}

    assert actual == {
        "ReadInputStream": {
            "effect": "Allow",
            "actions": [
                "kinesis:DescribeStream",
                "kinesis:DescribeStreamSummary",
                "kinesis:GetRecords",
                "kinesis:GetShardIterator",
                "kinesis:ListShards",
            ],
            "resources": ["${var.input_stream_arn}"],
        },
        "WritePredictions": {
            "effect": "Allow",
            "actions": ["kinesis:PutRecords"],
            "resources": ["${var.output_stream_arn}"],
        },
        "ReadModelObjects": {
            "effect": "Allow",
            "actions": ["s3:GetObject"],
            "resources": ["${var.model_bucket_arn}/${var.model_prefix}/*"],
        },
        "ListModelPrefix": {
            "effect": "Allow",
            "actions": ["s3:ListBucket"],
            "resources": ["${var.model_bucket_arn}"],
        },
        "SendToQueues": {
            "effect": "Allow",
            "actions": ["sqs:SendMessage"],
            "resources": "${var.queue_arns}",
        },
        "UseEncryptionKey": {
            "effect": "Allow",
            "actions": ["kms:Decrypt", "kms:GenerateDataKey"],
            "resources": ["${var.kms_key_arn}"],
        },
        "WriteLogs": {
            "effect": "Allow",
            "actions": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "resources": ["${aws_cloudwatch_log_group.this.arn}:*"],
        },
        "WriteTraces": {
            "effect": "Allow",
            "actions": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
            "resources": ["*"],
        },
    }


def test_lambda_policy_no_wildcard_resource_for_scoped_services(statements):
    # given: every (action, resource) pair of a service that supports resource ARNs
    scoped_pairs = [
        (action, resource)
        for statement in statements.values()
        for action in attribute(statement, "actions")
        if action.startswith(SCOPED_SERVICES)
        for resource in _as_list(attribute(statement, "resources"))
    ]

    # then: none of them applies to "*"
    wildcard_pairs = [(action, resource) for action, resource in scoped_pairs if resource == "*"]
    assert wildcard_pairs == []
    assert len(scoped_pairs) > 0


def test_lambda_policy_no_wildcard_actions(statements):
    actions = [
        action for statement in statements.values() for action in attribute(statement, "actions")
    ]

    assert [action for action in actions if "*" in action] == []


def test_lambda_policy_list_bucket_limited_to_model_prefix(statements):
    condition = blocks(statements["ListModelPrefix"], "condition")

    actual = [
        {
            "test": attribute(entry, "test"),
            "variable": attribute(entry, "variable"),
            "values": attribute(entry, "values"),
        }
        for entry in condition
    ]

    assert actual == [
        {"test": "StringLike", "variable": "s3:prefix", "values": ["${var.model_prefix}/*"]}
    ]


def test_root_passes_resource_arns_to_lambda_policy(root):
    """The ARNs in the policy are the ones of this environment's streams, queues, bucket and key."""
    lambda_call = root.modules()["lambda"]
    names = [
        "input_stream_arn",
        "output_stream_arn",
        "model_bucket_arn",
        "model_prefix",
        "queue_arns",
        "kms_key_arn",
    ]

    actual = {name: attribute(lambda_call, name) for name in names}

    assert actual == {
        "input_stream_arn": "${module.kinesis.input_stream_arn}",
        "output_stream_arn": "${module.kinesis.output_stream_arn}",
        "model_bucket_arn": "${module.s3.model_bucket_arn}",
        "model_prefix": "${var.mlflow_experiment_id}",
        "queue_arns": [
            "${module.sqs.invalid_records_queue_arn}",
            "${module.sqs.failed_batches_queue_arn}",
        ],
        "kms_key_arn": "${module.kms.key_arn}",
    }


def test_lambda_role_trusts_only_lambda_service(module_config):
    document = module_config["lambda"].data("aws_iam_policy_document", "assume_role")
    (statement,) = blocks(document, "statement")
    (principals,) = blocks(statement, "principals")

    actual = {
        "actions": attribute(statement, "actions"),
        "type": attribute(principals, "type"),
        "identifiers": attribute(principals, "identifiers"),
    }

    assert actual == {
        "actions": ["sts:AssumeRole"],
        "type": "Service",
        "identifiers": ["lambda.amazonaws.com"],
    }


def _as_list(resources: list[str] | str) -> list[str]:
    """A list attribute set from a variable is one interpolation string, not a list."""
    return resources if isinstance(resources, list) else [resources]
