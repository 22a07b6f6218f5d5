"""Tests for train: the pipeline, MLflow logging to a real SQLite store, and S3 layouts on moto."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import mlflow
import mlflow.sklearn
import pytest
from mlflow.tracking import MlflowClient
from moto.server import ThreadedMotoServer
from threadpoolctl import threadpool_limits

import tlc_data
import train

# A few thousand real rows per month keep a training run to a few seconds.
SLICE_ROWS = 3000

RIDES = [
    {"PU_DO": "130_205", "trip_distance": 3.66},
    # A pair the slice never saw: DictVectorizer ignores it and distance alone counts.
    {"PU_DO": "999_999", "trip_distance": 1.0},
]


@pytest.fixture(scope="module")
def empty_tracking_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file with MLflow's schema and no data.

    Creating the schema runs MLflow's database migrations, which take seconds, so each test
    copies this file instead of migrating a new one.
    """
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_tracking(
    empty_tracking_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh SQLite tracking URI; MLflow's global tracking URI is reset after the test."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = tmp_path / "mlflow.db"
    shutil.copyfile(empty_tracking_db, path)
    yield f"sqlite:///{path}"
    mlflow.set_tracking_uri(None)


@pytest.fixture(autouse=True)
def single_thread_numerics() -> Iterator[None]:
    """Run OpenMP and BLAS on one thread: on a busy 2-core machine their spinning threads
    made one small fit take 1 s or 15 s from run to run."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server on a free port of 127.0.0.1, with MLFLOW_S3_ENDPOINT_URL pointing at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    try:
        yield endpoint
    finally:
        server.stop()


def test_build_pipeline_predicts_feature_dicts(tlc_mirror: Path):
    # given
    features, durations = train.load_month(
        "green", "2022-01", mirror=tlc_mirror, max_rows=SLICE_ROWS
    )
    pipeline = train.build_pipeline().fit(features, durations)

    # when
    predictions = pipeline.predict(RIDES)

    # then
    assert predictions.shape == (2,)
    assert all(1.0 <= value <= 60.0 for value in predictions)


def test_load_month_slice_matches_tlc_data(tlc_mirror: Path):
    # given
    trips = tlc_data.read_trips(tlc_mirror / "green_tripdata_2022-02.parquet").head(5)

    # when
    features, durations = train.load_month("green", "2022-02", mirror=tlc_mirror, max_rows=5)

    # then
    assert features == tlc_data.ride_features(trips)
    assert durations.tolist() == trips["duration"].tolist()


def test_model_pip_requirements_pins():
    # when
    requirements = train.model_pip_requirements()

    # then
    assert [line.split("==")[0] for line in requirements] == list(train.MODEL_REQUIREMENTS)
    assert all("==" in line for line in requirements)


def test_train_and_log_local_store(tlc_mirror: Path, mlflow_tracking: str, tmp_path: Path):
    # given
    artifact_root = tmp_path / "artifacts"

    # when
    result = train.train_and_log(
        "2022-01",
        "2022-02",
        tracking_uri=mlflow_tracking,
        experiment_name="ride-duration-test",
        artifact_root=str(artifact_root),
        register_name="ride-duration",
        alias="production",
        mirror=tlc_mirror,
        max_rows=SLICE_ROWS,
    )

    # then: the run records the recipe and the validation metrics
    client = MlflowClient(mlflow_tracking)
    run = client.get_run(result.run_id)
    assert run.info.experiment_id == result.experiment_id
    assert (
        run.info.artifact_uri == f"{artifact_root}/{result.experiment_id}/{result.run_id}/artifacts"
    )
    assert run.data.metrics["rmse"] == result.rmse
    assert run.data.metrics["mae"] == result.mae
    assert math.isfinite(result.rmse)
    assert run.data.params["train_month"] == "2022-01"
    assert run.data.params["train_rows"] == str(SLICE_ROWS)
    assert run.data.params["svd_components"] == str(train.SVD_COMPONENTS)

    # and: the logged model, its MLflow 2 layout copy and the alias load and agree
    from_logged_model = mlflow.sklearn.load_model(result.model_uri).predict(RIDES)
    from_run_artifacts = mlflow.sklearn.load_model(result.run_artifact_model_uri).predict(RIDES)
    from_alias = mlflow.sklearn.load_model("models:/ride-duration@production").predict(RIDES)
    assert from_logged_model.shape == (2,)
    assert from_run_artifacts.tolist() == from_logged_model.tolist()
    assert from_alias.tolist() == from_logged_model.tolist()
    assert result.model_version == "1"

    # and: the model pins its requirements instead of inferring them
    model_dir = Path(
        mlflow.artifacts.download_artifacts(result.model_uri, dst_path=str(tmp_path / "download"))
    )
    assert (model_dir / "requirements.txt").read_text().split() == train.model_pip_requirements()


def test_main_writes_output_json(
    tlc_mirror: Path, mlflow_tracking: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # given
    monkeypatch.setenv("TLC_MIRROR", str(tlc_mirror))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    output = tmp_path / "out" / "result.json"

    # when
    exit_code = train.main(
        [
            "--train-month", "2022-01",
            "--val-month", "2022-02",
            "--artifact-root", str(tmp_path / "artifacts"),
            "--max-rows", str(SLICE_ROWS),
            "--output-json", str(output),
        ]
    )  # fmt: skip

    # then
    written = json.loads(output.read_text())
    run = MlflowClient(mlflow_tracking).get_run(written["run_id"])
    assert exit_code == 0
    assert sorted(written) == [
        "experiment_id",
        "mae",
        "model_uri",
        "model_version",
        "rmse",
        "run_artifact_model_uri",
        "run_id",
    ]
    assert written["experiment_id"] == run.info.experiment_id
    assert written["rmse"] == run.data.metrics["rmse"]
    assert written["model_uri"].startswith("models:/m-")


def test_parse_args_alias_needs_register_name(capsys: pytest.CaptureFixture[str]):
    # when
    with pytest.raises(SystemExit) as error:
        train.parse_args(
            ["--train-month", "2022-01", "--val-month", "2022-02", "--alias", "production"]
        )

    # then
    assert error.value.code == 2
    assert "--alias needs --register-name" in capsys.readouterr().err


def test_ensure_experiment_other_location(mlflow_tracking: str, tmp_path: Path):
    # given: an experiment created earlier under another artifact root
    first_id = train.ensure_experiment(mlflow_tracking, "ride-duration", str(tmp_path / "first"))

    # when
    with pytest.raises(ValueError) as error:
        train.ensure_experiment(mlflow_tracking, "ride-duration", str(tmp_path / "second"))

    # then
    first_location = f"{tmp_path / 'first'}/{first_id}"
    second_location = f"{tmp_path / 'second'}/{first_id}"
    assert f"stores artifacts at {first_location}, not at {second_location}" in str(error.value)


def test_ensure_experiment_existing_same_root(mlflow_tracking: str, tmp_path: Path):
    # given
    first_id = train.ensure_experiment(mlflow_tracking, "ride-duration", str(tmp_path / "root"))

    # when
    second_id = train.ensure_experiment(mlflow_tracking, "ride-duration", str(tmp_path / "root"))

    # then
    assert second_id == first_id


@pytest.mark.integration
def test_train_and_log_s3_layouts(tlc_mirror: Path, mlflow_tracking: str, s3_endpoint: str):
    # given
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="eu-west-1")
    s3.create_bucket(
        Bucket="mlflow-models", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )

    # when
    result = train.train_and_log(
        "2022-01",
        "2022-02",
        tracking_uri=mlflow_tracking,
        artifact_root="s3://mlflow-models",
        mirror=tlc_mirror,
        max_rows=SLICE_ROWS,
    )

    # then: the MLflow 2 run-artifact layout that deployed services read
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket="mlflow-models")["Contents"]}
    model_id = result.model_uri.removeprefix("models:/")
    run_model_prefix = f"{result.experiment_id}/{result.run_id}/artifacts/model"
    logged_model_prefix = f"{result.experiment_id}/models/{model_id}/artifacts"
    model_files = {"MLmodel", "model.pkl", "requirements.txt", "python_env.yaml", "conda.yaml"}
    assert {f"{run_model_prefix}/{name}" for name in model_files} <= keys
    # and: the MLflow 3 logged-model layout
    assert {f"{logged_model_prefix}/{name}" for name in model_files} <= keys
    assert result.run_artifact_model_uri == f"s3://mlflow-models/{run_model_prefix}"

    # and: a service given only the bucket, experiment id and run id loads the model
    predictions = mlflow.sklearn.load_model(f"s3://mlflow-models/{run_model_prefix}").predict(RIDES)
    assert predictions.shape == (2,)
