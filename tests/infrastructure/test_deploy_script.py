"""scripts/deploy.sh against a Lambda function on a moto server, with the real AWS CLI."""

from __future__ import annotations

import json
import uuid

import pytest

from local_stack.aws import client
from tests.infrastructure.script_runner import (
    MISSING_TOOLS,
    MISSING_TOOLS_REASON,
    run_script,
    script_environment,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(MISSING_TOOLS), reason=MISSING_TOOLS_REASON),
]

REPOSITORY_URL = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/stream-model-duration-stg"
OLD_IMAGE = f"{REPOSITORY_URL}@sha256:{'a' * 64}"
NEW_IMAGE = f"{REPOSITORY_URL}@sha256:{'b' * 64}"
TERRAFORM_ENVIRONMENT = {
    "PREDICTIONS_STREAM_NAME": "stg_ride_predictions",
    "LOG_LEVEL": "INFO",
    "RUN_ID": "old-run",
}


@pytest.fixture
def lambda_client(moto_endpoint):
    return client("lambda", moto_endpoint)


@pytest.fixture
def function_name(moto_endpoint, lambda_client) -> str:
    """An image function as Terraform leaves it: old image, environment without a model location."""
    name = f"stg_ride_duration_prediction_{uuid.uuid4().hex[:8]}"
    role = client("iam", moto_endpoint).create_role(
        RoleName=f"{name}_role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]
    lambda_client.create_function(
        FunctionName=name,
        Role=role["Arn"],
        PackageType="Image",
        Code={"ImageUri": OLD_IMAGE},
        Environment={"Variables": TERRAFORM_ENVIRONMENT},
    )
    return name


def deployed_state(lambda_client, function_name: str) -> dict:
    function = lambda_client.get_function(FunctionName=function_name)
    return {
        "image": function["Code"]["ImageUri"],
        "environment": function["Configuration"]["Environment"]["Variables"],
        "last_update_status": function["Configuration"]["LastUpdateStatus"],
    }


def test_deploy_script_updates_image_and_model(moto_endpoint, lambda_client, function_name):
    # when
    result = run_script(
        "deploy.sh",
        "--function",
        function_name,
        "--image",
        NEW_IMAGE,
        "--run-id",
        "new-run",
        "--model-location",
        "s3://models/1/models/m-1/artifacts",
        environment=script_environment(moto_endpoint),
    )

    # then: the new image runs, and the model variables joined the environment Terraform set
    assert result.returncode == 0, result.stderr
    assert deployed_state(lambda_client, function_name) == {
        "image": NEW_IMAGE,
        "environment": {
            **TERRAFORM_ENVIRONMENT,
            "RUN_ID": "new-run",
            "MODEL_LOCATION": "s3://models/1/models/m-1/artifacts",
        },
        "last_update_status": "Successful",
    }
    assert f"deploy: the image update of {function_name} is live" in result.stderr


def test_deploy_script_model_only_keeps_image(moto_endpoint, lambda_client, function_name):
    result = run_script(
        "deploy.sh",
        "--function",
        function_name,
        "--run-id",
        "rollback-run",
        environment=script_environment(moto_endpoint),
    )

    assert result.returncode == 0, result.stderr
    assert deployed_state(lambda_client, function_name) == {
        "image": OLD_IMAGE,
        "environment": {**TERRAFORM_ENVIRONMENT, "RUN_ID": "rollback-run"},
        "last_update_status": "Successful",
    }


def test_deploy_script_reads_arguments_from_environment(
    moto_endpoint, lambda_client, function_name
):
    environment = script_environment(
        moto_endpoint, LAMBDA_FUNCTION_NAME=function_name, IMAGE_URI=NEW_IMAGE
    )

    result = run_script("deploy.sh", environment=environment)

    assert result.returncode == 0, result.stderr
    assert deployed_state(lambda_client, function_name)["image"] == NEW_IMAGE


def test_deploy_script_rejects_image_tag(moto_endpoint, lambda_client, function_name):
    result = run_script(
        "deploy.sh",
        "--function",
        function_name,
        "--image",
        f"{REPOSITORY_URL}:3f2c1ab",
        environment=script_environment(moto_endpoint),
    )

    assert result.returncode == 1
    assert result.stderr.startswith(
        f"deploy: error: --image {REPOSITORY_URL}:3f2c1ab is not an image by digest"
    )
    assert deployed_state(lambda_client, function_name)["image"] == OLD_IMAGE


def test_deploy_script_requires_something_to_deploy(moto_endpoint, function_name):
    result = run_script(
        "deploy.sh", "--function", function_name, environment=script_environment(moto_endpoint)
    )

    assert result.returncode == 1
    assert result.stderr == (
        "deploy: error: nothing to deploy: pass --image, --run-id/--model-location, or both\n"
    )


def test_deploy_script_requires_function(moto_endpoint):
    result = run_script(
        "deploy.sh", "--image", NEW_IMAGE, environment=script_environment(moto_endpoint)
    )

    assert result.returncode == 1
    assert result.stderr == (
        "deploy: error: no function given: pass --function NAME or set LAMBDA_FUNCTION_NAME\n"
    )


def test_deploy_script_rejects_unknown_argument(moto_endpoint):
    result = run_script(
        "deploy.sh", "--imag", NEW_IMAGE, environment=script_environment(moto_endpoint)
    )

    assert result.returncode == 2
    assert result.stderr.startswith("deploy: error: unknown argument --imag\n")


def test_deploy_script_reports_missing_function(moto_endpoint):
    result = run_script(
        "deploy.sh",
        "--function",
        "stg_no_such_function",
        "--image",
        NEW_IMAGE,
        environment=script_environment(moto_endpoint),
    )

    assert result.returncode == 1
    assert result.stderr == (
        "deploy: error: function stg_no_such_function not found in eu-west-1: create it with "
        "make tf_apply ENV=<stg|prod> (terraform output lambda_function_name names it)\n"
    )
