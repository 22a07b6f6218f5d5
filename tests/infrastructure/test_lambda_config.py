"""The Lambda function and its Kinesis event source mapping, as written in the HCL."""

from __future__ import annotations

import re

import pytest

from tests.infrastructure.terraform_config import (
    ENVIRONMENTS,
    TerraformDirectory,
    all_terraform_directories,
    attribute,
    only_block,
)


@pytest.fixture(scope="module")
def lambda_module(module_config: dict[str, TerraformDirectory]) -> TerraformDirectory:
    return module_config["lambda"]


@pytest.fixture(scope="module")
def mapping(lambda_module: TerraformDirectory) -> dict:
    return lambda_module.resource("aws_lambda_event_source_mapping", "kinesis")


def test_event_source_mapping_reports_batch_item_failures(mapping):
    assert attribute(mapping, "function_response_types") == ["ReportBatchItemFailures"]


def test_event_source_mapping_failure_settings(mapping):
    # given: the settings that decide what happens to a failing batch
    names = [
        "bisect_batch_on_function_error",
        "maximum_retry_attempts",
        "maximum_record_age_in_seconds",
    ]

    # when
    actual = {name: mapping.get(name, [None])[0] for name in names}

    # then: each one is set, from the module variable of the same name
    assert actual == {name: f"${{var.{name}}}" for name in names}


def test_event_source_mapping_batching_settings(mapping):
    names = [
        "batch_size",
        "maximum_batching_window_in_seconds",
        "parallelization_factor",
        "starting_position",
    ]

    actual = {name: mapping.get(name, [None])[0] for name in names}

    assert actual == {name: f"${{var.{name}}}" for name in names}


def test_event_source_mapping_on_failure_destination(mapping, root):
    # given
    on_failure = only_block(only_block(mapping, "destination_config"), "on_failure")
    lambda_call = root.modules()["lambda"]

    # then: the mapping's destination is the module input, and the root wires in the SQS queue
    assert attribute(on_failure, "destination_arn") == "${var.on_failure_queue_arn}"
    assert (
        attribute(lambda_call, "on_failure_queue_arn") == "${module.sqs.failed_batches_queue_arn}"
    )


def test_event_source_mapping_reads_input_stream(mapping, root):
    lambda_call = root.modules()["lambda"]

    assert attribute(mapping, "event_source_arn") == "${var.input_stream_arn}"
    assert attribute(lambda_call, "input_stream_arn") == "${module.kinesis.input_stream_arn}"


def test_root_variables_bisect_on_by_default(root):
    bisect = root.variables()["bisect_batch_on_function_error"]

    assert attribute(bisect, "type") == "bool"
    assert attribute(bisect, "default") is True


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_tfvars_bound_retries_and_record_age(tfvars, environment):
    """-1 would retry a failing batch until the record expires, blocking its shard that long."""
    values = tfvars[environment]

    assert values["maximum_retry_attempts"] >= 0
    assert values["maximum_record_age_in_seconds"] >= 60
    assert values.get("bisect_batch_on_function_error", True) is True


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_tfvars_reserved_concurrency_covers_shards(tfvars, environment):
    values = tfvars[environment]

    needed = values["input_shard_count"] * values["parallelization_factor"]

    assert values["lambda_reserved_concurrent_executions"] >= needed


@pytest.mark.parametrize("directory", all_terraform_directories(), ids=lambda path: path.name)
def test_configuration_has_no_event_invoke_config(directory):
    """An event invoke config governs asynchronous invocations only, never a stream's batches."""
    resource_types = TerraformDirectory.load(directory).resource_types()

    assert "aws_lambda_function_event_invoke_config" not in resource_types


def test_lambda_function_image_by_digest(lambda_module):
    function = lambda_module.resource("aws_lambda_function", "this")

    assert attribute(function, "package_type") == "Image"
    assert attribute(function, "image_uri") == "${var.image_repository_url}@${local.image_digest}"


def test_lambda_image_digest_variable_rejects_tags(lambda_module):
    # given: the regular expression of the digest variable's validation
    validation = only_block(lambda_module.variables()["image_digest"], "validation")
    condition = attribute(validation, "condition")
    pattern = re.search(r'regex\("([^"]+)"', condition).group(1)

    # then: a digest passes, a tag or a short digest does not
    assert re.fullmatch(pattern, "sha256:" + "0123456789abcdef" * 4)
    assert not re.fullmatch(pattern, "3f2c1ab")
    assert not re.fullmatch(pattern, "sha256:abc")


def test_lambda_function_handler_and_limits(lambda_module):
    function = lambda_module.resource("aws_lambda_function", "this")

    actual = {
        "command": attribute(only_block(function, "image_config"), "command"),
        "memory_size": attribute(function, "memory_size"),
        "timeout": attribute(function, "timeout"),
        "reserved_concurrent_executions": attribute(function, "reserved_concurrent_executions"),
    }

    assert actual == {
        "command": ["lambda_function.lambda_handler"],
        "memory_size": "${var.memory_size_mb}",
        "timeout": "${var.timeout_seconds}",
        "reserved_concurrent_executions": "${var.reserved_concurrent_executions}",
    }


def test_lambda_function_environment_variables(lambda_module):
    # given
    local_values = lambda_module.locals()
    function = lambda_module.resource("aws_lambda_function", "this")

    # then: the function gets the fixed variables plus the non-empty optional ones
    assert attribute(only_block(function, "environment"), "variables") == "${local.environment}"
    assert attribute(local_values, "base_environment") == {
        "PREDICTIONS_STREAM_NAME": "${var.output_stream_name}",
        "MODEL_BUCKET": "${var.model_bucket_name}",
        "MLFLOW_EXPERIMENT_ID": "${var.model_prefix}",
        "DEAD_LETTER_QUEUE_URL": "${var.invalid_records_queue_url}",
        "TEST_RUN": "False",
        "POWERTOOLS_SERVICE_NAME": "${var.powertools_service_name}",
        "POWERTOOLS_METRICS_NAMESPACE": "${var.powertools_metrics_namespace}",
        "LOG_LEVEL": "${var.log_level}",
    }
    assert attribute(local_values, "optional_settings") == {
        "RUN_ID": "${local.model_run_id}",
        "MODEL_LOCATION": "${local.model_location}",
        "MLFLOW_TRACKING_URI": "${var.mlflow_tracking_uri}",
    }


def test_lambda_model_settings_keep_deployed_values(lambda_module):
    """An apply must not roll back the image or model that scripts/deploy.sh set."""
    # given: the expressions as python-hcl2 renders them, compared without spaces
    local_values = lambda_module.locals()

    # when
    actual = {
        name: attribute(local_values, name).replace(" ", "")
        for name in ["image_digest", "model_run_id", "model_location"]
    }

    # then: an explicit variable wins, else the value read from the deployed function
    assert actual == {
        "image_digest": "${var.image_digest!=null?var.image_digest:local.deployed_image_digest}",
        "model_run_id": (
            '${var.model_run_id!=""?var.model_run_id:lookup(local.deployed_variables,"RUN_ID","")}'
        ),
        "model_location": (
            '${var.model_location!=""?var.model_location'
            ':lookup(local.deployed_variables,"MODEL_LOCATION","")}'
        ),
    }
