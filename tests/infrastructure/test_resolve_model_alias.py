"""scripts/resolve_model_alias.py against a real MLflow registry (SQLite) and moto S3."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.sklearn
import pytest
from mlflow.tracking import MlflowClient
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline

from local_stack.aws import client as aws_client
from local_stack.aws import create_bucket

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "resolve_model_alias.py"
FEATURES = [
    {"PU_DO": "130_205", "trip_distance": 3.66},
    {"PU_DO": "74_75", "trip_distance": 1.1},
    {"PU_DO": "41_42", "trip_distance": 0.9},
]
DURATIONS = [18.0, 6.0, 5.0]


@pytest.fixture(scope="module")
def bucket(moto_server) -> str:
    name = f"models-{uuid.uuid4().hex[:8]}"
    create_bucket(aws_client("s3", moto_server.endpoint_url), name)
    return name


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory, moto_server) -> str:
    """A SQLite tracking store shared by this module's tests, which register distinct model
    names; artifacts go to moto S3 through MLFLOW_S3_ENDPOINT_URL."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_S3_ENDPOINT_URL", moto_server.endpoint_url)
        mlflow.set_tracking_uri(uri)
        yield uri
        mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def experiment_id(tracking_uri, bucket) -> str:
    """An experiment with the artifact root s3://<bucket>/<experiment id>, as a server lays it out.

    A new SQLite store numbers experiments from 1 (0 is the default experiment), so the id
    is known before the experiment exists.
    """
    expected_id = "1"
    created_id = MlflowClient(tracking_uri).create_experiment(
        "ride-duration", artifact_location=f"s3://{bucket}/{expected_id}"
    )
    assert created_id == expected_id, "the SQLite store numbered the first experiment differently"
    return created_id


@pytest.fixture
def model_name() -> str:
    """A registered model name no other test of the shared store uses."""
    return f"ride-duration-{uuid.uuid4().hex[:8]}"


def load_script_module():
    spec = importlib.util.spec_from_file_location("resolve_model_alias", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is created.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


resolve_model_alias = load_script_module()


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def resolve(*arguments: str, capsys: pytest.CaptureFixture[str]) -> Result:
    """Run the script's main() in this process, which spares an MLflow import per test."""
    returncode = resolve_model_alias.main(list(arguments))
    captured = capsys.readouterr()
    return Result(returncode, captured.out, captured.err)


def test_resolve_model_alias_mlflow3_logged_model(
    tracking_uri, bucket, experiment_id, model_name, tmp_path
):
    # given: an MLflow 3 logged model, registered and aliased
    pipeline = make_pipeline(DictVectorizer(), LinearRegression()).fit(FEATURES, DURATIONS)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        model_info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            registered_model_name=model_name,
            pip_requirements=["scikit-learn"],
        )
    MlflowClient(tracking_uri).set_registered_model_alias(
        model_name, "production", model_info.registered_model_version
    )
    github_output = tmp_path / "github_output"
    environment = {**os.environ, "GITHUB_OUTPUT": str(github_output)}

    # when: run as a program, as the CD workflow does
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--model-name",
            model_name,
            "--alias",
            "production",
            "--model-bucket",
            bucket,
            "--experiment-id",
            experiment_id,
            "--github-output",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )

    # then: the location is the logged model's artifact folder in the experiment's prefix
    model_location = f"s3://{bucket}/{experiment_id}/models/{model_info.model_id}/artifacts"
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"RUN_ID={run.info.run_id}\nMODEL_LOCATION={model_location}\nMODEL_VERSION=1\n"
    )
    assert github_output.read_text() == (
        f"run_id={run.info.run_id}\nmodel_location={model_location}\nmodel_version=1\n"
    )


@pytest.mark.parametrize("source_kind", ["artifact_uri", "runs_uri"])
def test_resolve_model_alias_run_artifact_source(
    tracking_uri, bucket, experiment_id, model_name, source_kind, capsys
):
    # given: a version registered from the run's artifact folder (the MLflow 2 layout)
    client = MlflowClient(tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        pass
    artifact_uri = f"s3://{bucket}/{experiment_id}/{run.info.run_id}/artifacts/model"
    source = artifact_uri if source_kind == "artifact_uri" else f"runs:/{run.info.run_id}/model"
    client.create_registered_model(model_name)
    version = client.create_model_version(model_name, source=source, run_id=run.info.run_id)
    client.set_registered_model_alias(model_name, "production", version.version)

    # when
    result = resolve(
        "--model-name",
        model_name,
        "--alias",
        "production",
        "--model-bucket",
        bucket,
        "--experiment-id",
        experiment_id,
        capsys=capsys,
    )

    # then
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout
        == f"RUN_ID={run.info.run_id}\nMODEL_LOCATION={artifact_uri}\nMODEL_VERSION=1\n"
    )


def test_resolve_model_alias_rejects_location_outside_prefix(
    tracking_uri, bucket, experiment_id, model_name, capsys
):
    # given: a version whose artifacts live in another experiment's prefix
    client = MlflowClient(tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        pass
    source = f"s3://{bucket}/{experiment_id}/{run.info.run_id}/artifacts/model"
    client.create_registered_model(model_name)
    version = client.create_model_version(model_name, source=source, run_id=run.info.run_id)
    client.set_registered_model_alias(model_name, "production", version.version)

    # when: the function may read only experiment 999
    result = resolve(
        "--model-name",
        model_name,
        "--alias",
        "production",
        "--model-bucket",
        bucket,
        "--experiment-id",
        "999",
        capsys=capsys,
    )

    # then
    assert result.returncode == 1
    assert result.stdout == ""
    assert (
        f"stores its artifacts at {source}, outside s3://{bucket}/999/, the only prefix the "
        "function's role may read"
    ) in result.stderr


def test_resolve_model_alias_reports_unknown_alias(
    tracking_uri, bucket, experiment_id, model_name, capsys
):
    MlflowClient(tracking_uri).create_registered_model(model_name)

    result = resolve(
        "--model-name",
        model_name,
        "--alias",
        "staging",
        "--model-bucket",
        bucket,
        "--experiment-id",
        experiment_id,
        capsys=capsys,
    )

    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot resolve models:/{model_name}@staging: ")
    assert f"(tracking server {tracking_uri})" in result.stderr


def test_resolve_model_alias_requires_tracking_uri(model_name, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    result = resolve(
        "--model-name",
        model_name,
        "--alias",
        "production",
        "--model-bucket",
        "models",
        "--experiment-id",
        "1",
        capsys=capsys,
    )

    assert result.returncode == 2
    assert (
        result.stderr == "MLFLOW_TRACKING_URI is not set: point it at the MLflow tracking server\n"
    )
