"""Encryption at rest and access settings of the streams, queues, buckets, images and key."""

from __future__ import annotations

from tests.infrastructure.terraform_config import TerraformDirectory, attribute, only_block


def test_kinesis_streams_encrypted_with_kms(module_config: dict[str, TerraformDirectory]):
    streams = module_config["kinesis"].resources("aws_kinesis_stream")

    actual = {
        name: {
            "encryption_type": attribute(stream, "encryption_type"),
            "kms_key_id": attribute(stream, "kms_key_id"),
            "retention_period": attribute(stream, "retention_period"),
        }
        for name, stream in streams.items()
    }

    expected_settings = {
        "encryption_type": "KMS",
        "kms_key_id": "${var.kms_key_arn}",
        "retention_period": "${var.retention_period_hours}",
    }
    assert actual == {"input": expected_settings, "output": expected_settings}


def test_sqs_queues_encrypted_with_kms(module_config: dict[str, TerraformDirectory]):
    queues = module_config["sqs"].resources("aws_sqs_queue")

    actual = {name: attribute(queue, "kms_master_key_id") for name, queue in queues.items()}

    assert actual == {
        "invalid_records": "${var.kms_key_arn}",
        "failed_batches": "${var.kms_key_arn}",
    }


def test_s3_buckets_encrypted(module_config: dict[str, TerraformDirectory]):
    # given
    configurations = module_config["s3"].resources(
        "aws_s3_bucket_server_side_encryption_configuration"
    )

    # when
    actual = {}
    for name, configuration in configurations.items():
        default = only_block(
            only_block(configuration, "rule"), "apply_server_side_encryption_by_default"
        )
        actual[name] = {
            "sse_algorithm": attribute(default, "sse_algorithm"),
            "kms_master_key_id": default.get("kms_master_key_id", [None])[0],
        }

    # then: the model bucket uses the key; server access logs can only be delivered to SSE-S3
    assert actual == {
        "models": {"sse_algorithm": "aws:kms", "kms_master_key_id": "${var.kms_key_arn}"},
        "access_logs": {"sse_algorithm": "AES256", "kms_master_key_id": None},
    }


def test_s3_buckets_versioned(module_config: dict[str, TerraformDirectory]):
    versioning = module_config["s3"].resources("aws_s3_bucket_versioning")

    actual = {
        name: attribute(only_block(entry, "versioning_configuration"), "status")
        for name, entry in versioning.items()
    }

    assert actual == {"models": "Enabled", "access_logs": "Enabled"}


def test_s3_buckets_block_public_access(module_config: dict[str, TerraformDirectory]):
    blocks_by_bucket = module_config["s3"].resources("aws_s3_bucket_public_access_block")
    settings = [
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ]

    actual = {
        name: {setting: attribute(entry, setting) for setting in settings}
        for name, entry in blocks_by_bucket.items()
    }

    all_blocked = dict.fromkeys(settings, True)
    assert actual == {"models": all_blocked, "access_logs": all_blocked}


def test_ecr_repository_settings(module_config: dict[str, TerraformDirectory]):
    repository = module_config["ecr"].resource("aws_ecr_repository", "this")
    encryption = only_block(repository, "encryption_configuration")

    actual = {
        "image_tag_mutability": attribute(repository, "image_tag_mutability"),
        "scan_on_push": attribute(
            only_block(repository, "image_scanning_configuration"), "scan_on_push"
        ),
        "encryption_type": attribute(encryption, "encryption_type"),
        "kms_key": attribute(encryption, "kms_key"),
    }

    assert actual == {
        "image_tag_mutability": "IMMUTABLE",
        "scan_on_push": True,
        "encryption_type": "KMS",
        "kms_key": "${var.kms_key_arn}",
    }


def test_ecr_lifecycle_policy_present(module_config: dict[str, TerraformDirectory]):
    policies = module_config["ecr"].resources("aws_ecr_lifecycle_policy")

    assert list(policies) == ["this"]
    assert attribute(policies["this"], "repository") == "${aws_ecr_repository.this.name}"


def test_kms_key_rotation_enabled(module_config: dict[str, TerraformDirectory]):
    key = module_config["kms"].resource("aws_kms_key", "this")

    assert attribute(key, "enable_key_rotation") is True


def test_lambda_environment_and_logs_encrypted(module_config: dict[str, TerraformDirectory]):
    lambda_module = module_config["lambda"]
    function = lambda_module.resource("aws_lambda_function", "this")
    log_group = lambda_module.resource("aws_cloudwatch_log_group", "this")

    assert attribute(function, "kms_key_arn") == "${var.kms_key_arn}"
    assert attribute(log_group, "kms_key_id") == "${var.kms_key_arn}"


def test_root_uses_one_key_for_every_module(root):
    modules = root.modules()
    key_users = ["kinesis", "s3", "ecr", "sqs", "lambda"]

    actual = {name: attribute(modules[name], "kms_key_arn") for name in key_users}

    assert actual == dict.fromkeys(key_users, "${module.kms.key_arn}")
