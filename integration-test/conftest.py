"""Fixtures of the integration tests, which run against whatever ``INVOKE_URL`` names.

With ``INVOKE_URL`` set (``run.sh`` sets it for the container image and LocalStack), the
tests use the endpoint, stream and model that the environment names. Without it they start
the Docker-free stack (moto and the local invocation endpoint) and use that.
"""

# pytest passes fixtures as arguments named like the fixture functions.
# pylint: disable=redefined-outer-name

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from docker_free_stack import docker_free_stack, environment
from integration_helpers import EVENT_PATH, IntegrationSettings

from local_stack.aws import LOCAL_CREDENTIALS, client

# The output contract: the model name every prediction event carries.
MODEL_NAME = "ride_duration_prediction_model"


@pytest.fixture(scope="session")
def integration_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IntegrationSettings]:
    """The endpoint under test, from the environment or from a Docker-free stack started here."""
    if os.environ.get("INVOKE_URL"):
        yield IntegrationSettings.from_environ(os.environ)
        return

    with docker_free_stack(tmp_path_factory.mktemp("docker-free-stack")) as environ:
        yield IntegrationSettings.from_environ(environ)


@pytest.fixture(scope="session")
def kinesis_event() -> dict[str, Any]:
    """The Lambda Kinesis event of ``event.json``: one ride in one record."""
    return json.loads(EVENT_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def ride_event(kinesis_event: dict[str, Any]) -> dict[str, Any]:
    """The ride event carried by the first record, decoded."""
    data = kinesis_event["Records"][0]["kinesis"]["data"]
    return json.loads(base64.b64decode(data))


@pytest.fixture(scope="session")
def expected_prediction_event(
    integration_settings: IntegrationSettings, ride_event: dict[str, Any]
) -> dict[str, Any]:
    """The prediction event the service should publish, computed here from the same model.

    The test loads the artifact with MLflow and builds the features itself, so the expected
    value shares neither the service's model loading nor its feature code.
    """
    model = _load_model(integration_settings)
    ride = ride_event["ride"]
    features = {
        "PU_DO": f"{ride['PULocationID']}_{ride['DOLocationID']}",
        "trip_distance": float(ride["trip_distance"]),
    }
    duration = float(model.predict([features])[0])
    return {
        "model": MODEL_NAME,
        "version": integration_settings.run_id,
        "prediction": {"ride_duration": duration, "ride_id": ride_event["ride_id"]},
    }


@pytest.fixture
def kinesis_client(integration_settings: IntegrationSettings) -> Any:
    return client("kinesis", integration_settings.kinesis_endpoint_url)


def _load_model(settings: IntegrationSettings) -> Any:
    # Imported here: MLflow takes seconds to import.
    import mlflow.sklearn  # pylint: disable=import-outside-toplevel

    variables = dict(LOCAL_CREDENTIALS)
    if settings.s3_endpoint_url:
        variables["MLFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    with environment(variables):
        return mlflow.sklearn.load_model(settings.model_uri)
