"""lambda_function reads the environment once per container and fails early on bad settings.

Each case imports lambda_function in a fresh interpreter, as a new Lambda container would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow.sklearn
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline

from settings import ConfigurationError, Settings
from tests.service.factories import encode, kinesis_event, ride_event

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_HANDLER = (
    "import json, sys, lambda_function; "
    "print(json.dumps(lambda_function.lambda_handler(json.load(sys.stdin), None)))"
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lambda") / "model"
    features = [{"PU_DO": "130_205", "trip_distance": 3.66}, {"PU_DO": "1_2", "trip_distance": 1.0}]
    pipeline = make_pipeline(DictVectorizer(), LinearRegression()).fit(features, [18.0, 6.0])
    mlflow.sklearn.save_model(pipeline, path, pip_requirements=["scikit-learn"])
    mlmodel = path / "MLmodel"
    mlmodel.write_text(mlmodel.read_text() + "run_id: lambda-test-run\n")
    return path


def run_lambda(env: dict[str, str], event: dict | None = None) -> subprocess.CompletedProcess:
    clean_env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in ("MODEL_LOCATION", "RUN_ID", "MODEL_BUCKET", "TEST_RUN", "PREDICTIONS_STREAM_NAME")
    }
    return subprocess.run(
        [sys.executable, "-c", RUN_HANDLER],
        input=json.dumps(event or {"Records": []}),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**clean_env, **env},
        timeout=120,
        check=False,
    )


def test_lambda_handler_predicts_in_test_run(model_dir):
    event = kinesis_event(encode(ride_event(ride_id=256)))

    result = run_lambda({"MODEL_LOCATION": str(model_dir), "TEST_RUN": "True"}, event)

    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout.strip().splitlines()[-1])
    assert response["batchItemFailures"] == []
    assert response["predictions"][0]["version"] == "lambda-test-run"
    assert response["predictions"][0]["prediction"]["ride_id"] == 256
    assert response["predictions"][0]["prediction"]["ride_duration"] == pytest.approx(18.0)


def test_lambda_startup_invalid_test_run(model_dir):
    result = run_lambda({"MODEL_LOCATION": str(model_dir), "TEST_RUN": "maybe"})

    assert result.returncode != 0
    assert (
        "settings.ConfigurationError: TEST_RUN='maybe' is not a boolean: use True or False "
        "(also accepted: true/false, 1/0, yes/no)"
    ) in result.stderr


def test_lambda_startup_missing_model(tmp_path):
    result = run_lambda({"MODEL_LOCATION": str(tmp_path / "nowhere"), "TEST_RUN": "True"})

    assert result.returncode != 0
    assert "model_loading.ModelLoadError: No MLflow model at" in result.stderr
    assert "nowhere" in result.stderr


def test_settings_defaults():
    assert Settings.from_environ({}) == Settings(
        predictions_stream_name="ride_predictions",
        run_id=None,
        test_run=False,
        kinesis_endpoint_url=None,
        dead_letter_queue_url=None,
        sqs_endpoint_url=None,
    )


def test_settings_endpoint_fallback():
    settings = Settings.from_environ({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"})

    assert settings.kinesis_endpoint_url == "http://127.0.0.1:4566"
    assert settings.sqs_endpoint_url == "http://127.0.0.1:4566"


def test_settings_kinesis_endpoint_wins():
    settings = Settings.from_environ(
        {"AWS_ENDPOINT_URL": "http://a:1", "KINESIS_ENDPOINT_URL": "http://k:2"}
    )

    assert settings.kinesis_endpoint_url == "http://k:2"


@pytest.mark.parametrize(
    ("raw", "expected"), [("True", True), ("false", False), ("1", True), ("", False)]
)
def test_settings_test_run_values(raw, expected):
    assert Settings.from_environ({"TEST_RUN": raw}).test_run is expected


def test_settings_empty_stream_name():
    with pytest.raises(ConfigurationError, match="PREDICTIONS_STREAM_NAME is empty"):
        Settings.from_environ({"PREDICTIONS_STREAM_NAME": "  "})
