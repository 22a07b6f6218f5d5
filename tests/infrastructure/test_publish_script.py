"""scripts/publish.sh against ECR on a moto server, with the real AWS CLI.

Pushing needs a Docker engine, which these tests do not assume: they cover every step
before the push, the reuse of an existing immutable tag, and the error for an unreachable
daemon (forced with a DOCKER_HOST that names no socket).
"""

from __future__ import annotations

import json
import shutil
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
needs_docker_client = pytest.mark.skipif(
    shutil.which("docker") is None, reason="publish.sh checks for the docker client first"
)

REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
LOCAL_IMAGE = "stream-model-duration:3f2c1ab"


@pytest.fixture
def ecr_client(moto_endpoint):
    return client("ecr", moto_endpoint)


@pytest.fixture
def repository_name(ecr_client) -> str:
    name = f"stream-model-duration-stg-{uuid.uuid4().hex[:8]}"
    ecr_client.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    return name


def put_manifest(ecr_client, repository_name: str, tag: str) -> str:
    """Store an image manifest under tag, as a push would, and return the digest ECR reports."""
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": f"sha256:{'c' * 64}",
                "size": 1,
            },
            "layers": [],
        }
    )
    ecr_client.put_image(repositoryName=repository_name, imageManifest=manifest, imageTag=tag)
    (image,) = ecr_client.describe_images(
        repositoryName=repository_name, imageIds=[{"imageTag": tag}]
    )["imageDetails"]
    return image["imageDigest"]


@needs_docker_client
def test_publish_script_reuses_existing_immutable_tag(moto_endpoint, ecr_client, repository_name):
    # given: the commit's image was pushed by an earlier run of the pipeline
    digest = put_manifest(ecr_client, repository_name, "3f2c1ab")

    # when
    result = run_script(
        "publish.sh", LOCAL_IMAGE, repository_name, environment=script_environment(moto_endpoint)
    )

    # then: no push; standard output names the stored image by digest
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{REGISTRY}/{repository_name}@{digest}\n"
    assert "tags are immutable, so the push is skipped" in result.stderr


@needs_docker_client
def test_publish_script_accepts_repository_url(moto_endpoint, ecr_client, repository_name):
    digest = put_manifest(ecr_client, repository_name, "3f2c1ab")

    result = run_script(
        "publish.sh",
        LOCAL_IMAGE,
        f"{REGISTRY}/{repository_name}",
        environment=script_environment(moto_endpoint),
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{REGISTRY}/{repository_name}@{digest}\n"


@needs_docker_client
def test_publish_script_reports_missing_repository(moto_endpoint):
    result = run_script(
        "publish.sh",
        LOCAL_IMAGE,
        "no-such-repository",
        environment=script_environment(moto_endpoint),
    )

    assert result.returncode == 1
    assert result.stderr == (
        "publish: error: ECR repository no-such-repository not found in eu-west-1: create it with "
        "make tf_apply ENV=<stg|prod> (see docs/deployment.md)\n"
    )


@needs_docker_client
def test_publish_script_reports_missing_credentials(moto_endpoint, tmp_path):
    environment = script_environment(
        moto_endpoint,
        AWS_ACCESS_KEY_ID=None,
        AWS_SECRET_ACCESS_KEY=None,
        AWS_SESSION_TOKEN=None,
        AWS_PROFILE=None,
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
    )

    result = run_script("publish.sh", LOCAL_IMAGE, "any-repository", environment=environment)

    assert result.returncode == 1
    assert result.stderr.startswith("publish: error: no usable AWS credentials")


@needs_docker_client
def test_publish_script_reports_unreachable_docker_daemon(moto_endpoint, repository_name, tmp_path):
    socket_path = tmp_path / "no-docker.sock"
    environment = script_environment(moto_endpoint, DOCKER_HOST=f"unix://{socket_path}")

    result = run_script("publish.sh", LOCAL_IMAGE, repository_name, environment=environment)

    assert result.returncode == 1
    assert result.stderr == (
        f"publish: error: cannot reach the Docker daemon at unix://{socket_path}: "
        "start Docker or point DOCKER_HOST at a running engine\n"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((), "publish: error: no image given"),
        ((LOCAL_IMAGE,), "publish: error: no repository given"),
        (
            ("stream-model-duration", "repository"),
            "publish: error: LOCAL_IMAGE_NAME=stream-model-duration has no tag",
        ),
        (
            ("localhost:5000/stream-model-duration", "repository"),
            "publish: error: LOCAL_IMAGE_NAME=localhost:5000/stream-model-duration has no tag",
        ),
        (
            ("stream-model-duration:latest", "repository"),
            "publish: error: tag 'latest' cannot be used",
        ),
    ],
)
def test_publish_script_rejects_invalid_arguments(moto_endpoint, arguments, message):
    environment = script_environment(moto_endpoint, LOCAL_IMAGE_NAME=None, ECR_REPOSITORY=None)

    result = run_script("publish.sh", *arguments, environment=environment)

    assert result.returncode == 1
    assert result.stderr.startswith(message)
