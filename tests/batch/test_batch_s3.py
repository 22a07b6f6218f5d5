"""The batch job's command line against S3 on a real moto server, as the course's test runs it.

The input is written to ``s3://nyc-duration/in/`` through s3fs and pandas storage options,
``python batch.py 2023 1`` runs in a subprocess with ``S3_ENDPOINT_URL``, and the output is
read back from ``s3://nyc-duration/out/`` and compared with predictions computed here from
the same model object.
"""

from __future__ import annotations

import uuid

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from pandas.testing import assert_frame_equal
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline

import batch
from batch import InputNotFoundError, OutputLocationError
from local_stack.aws import create_bucket
from tests.batch.conftest import (
    BUCKET,
    PickledModel,
    job_environment,
    run_batch_cli,
)

pytestmark = pytest.mark.integration

INPUT_PATTERN = "s3://nyc-duration/in/{year:04d}-{month:02d}.parquet"
OUTPUT_PATTERN = "s3://nyc-duration/out/{year:04d}-{month:02d}.parquet"
OUTPUT_FILE = "s3://nyc-duration/out/2023-01.parquet"


def s3_variables(moto_endpoint: str, **variables: str) -> dict[str, str]:
    return {
        "INPUT_FILE_PATTERN": INPUT_PATTERN,
        "OUTPUT_FILE_PATTERN": OUTPUT_PATTERN,
        "S3_ENDPOINT_URL": moto_endpoint,
        **variables,
    }


def object_keys(s3_client, prefix: str) -> list[str]:
    listing = s3_client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


@pytest.mark.parametrize("chunk_args", [[], ["--chunk-rows", "1"]], ids=["whole", "chunked"])
@pytest.mark.usefixtures("january_input")
def test_cli_model_file_s3_month(
    moto_endpoint, s3_options, location_model: PickledModel, chunk_args
):
    # given the course's model.bin, passed as MODEL_FILE
    env = job_environment(**s3_variables(moto_endpoint, MODEL_FILE=str(location_model.path)))

    # when
    completed = run_batch_cli("2023", "1", *chunk_args, env=env)

    # then
    assert completed.returncode == 0, completed.stderr
    actual = pd.read_parquet(OUTPUT_FILE, storage_options=s3_options)
    predictions = location_model.predict(
        [
            {"PULocationID": "-1", "DOLocationID": "-1"},
            {"PULocationID": "1", "DOLocationID": "1"},
        ]
    )
    expected = pd.DataFrame(
        {
            "ride_id": ["2023/01_0", "2023/01_1"],
            "predicted_duration": predictions,
            "model_version": [location_model.version] * 2,
        }
    )
    assert_frame_equal(actual, expected)
    assert "predictions written: 2" in completed.stderr


@pytest.mark.usefixtures("january_input")
def test_cli_mlflow_run_s3_month(moto_endpoint, s3_client, s3_options, tmp_path, monkeypatch):
    # given a PU_DO model logged to MLflow, with its artifacts in moto S3
    model_bucket = "mlflow-models"
    create_bucket(s3_client, model_bucket)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", moto_endpoint)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    # As `mlflow server --default-artifact-root s3://mlflow-models` would, the store puts the
    # experiment at s3://mlflow-models/<experiment_id>.
    experiment_id = SqlAlchemyStore(tracking_uri, f"s3://{model_bucket}").create_experiment(
        f"batch-{uuid.uuid4().hex}"
    )
    records = [{"PU_DO": "-1_-1"}, {"PU_DO": "1_1"}, {"PU_DO": "3_4"}]
    pipeline = make_pipeline(DictVectorizer(), LinearRegression()).fit(records, [9.0, 8.0, 30.0])
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(pd.DataFrame({"PU_DO": ["1_1"]}), np.array([8.0])),
        )
    env = job_environment(
        **s3_variables(
            moto_endpoint,
            RUN_ID=run.info.run_id,
            MODEL_BUCKET=model_bucket,
            MLFLOW_EXPERIMENT_ID=experiment_id,
            MLFLOW_S3_ENDPOINT_URL=moto_endpoint,
        )
    )

    # when
    completed = run_batch_cli("2023", "1", env=env)

    # then PU_DO is built from the string zone ids, "-1" for a missing zone
    assert completed.returncode == 0, completed.stderr
    actual = pd.read_parquet(OUTPUT_FILE, storage_options=s3_options)
    expected = pd.DataFrame(
        {
            "ride_id": ["2023/01_0", "2023/01_1"],
            "predicted_duration": pipeline.predict([{"PU_DO": "-1_-1"}, {"PU_DO": "1_1"}]),
            "model_version": [run.info.run_id] * 2,
        }
    )
    assert_frame_equal(actual, expected)
    assert "model features: PU_DO (categorical)" in completed.stderr


@pytest.mark.usefixtures("january_input")
def test_cli_missing_bucket_writes_nothing(moto_endpoint, s3_client, location_model):
    # given an input pattern in a bucket that does not exist
    env = job_environment(
        **s3_variables(
            moto_endpoint,
            MODEL_FILE=str(location_model.path),
            INPUT_FILE_PATTERN="s3://no-such-bucket/in/{year:04d}-{month:02d}.parquet",
        )
    )

    # when
    completed = run_batch_cli("2023", "1", env=env)

    # then
    assert completed.returncode == 1
    assert (
        "ERROR batch: Input file not found: s3://no-such-bucket/in/2023-01.parquet "
        f"(S3 endpoint {moto_endpoint})"
    ) in completed.stderr
    assert object_keys(s3_client, "out/") == []


@pytest.mark.usefixtures("january_input")
def test_main_missing_s3_input_names_path(moto_endpoint, location_model, job_env):
    # given no input for February
    job_env(**s3_variables(moto_endpoint, MODEL_FILE=str(location_model.path)))

    # when
    with pytest.raises(InputNotFoundError) as raised:
        batch.main(2023, 2)

    # then
    assert str(raised.value) == (
        f"Input file not found: s3://nyc-duration/in/2023-02.parquet (S3 endpoint "
        f"{moto_endpoint}); check INPUT_FILE_PATTERN, the year and month, and that the "
        "bucket exists"
    )


@pytest.mark.usefixtures("january_input")
def test_main_missing_output_bucket(moto_endpoint, location_model, job_env):
    # given an output pattern in a bucket that does not exist
    job_env(
        **s3_variables(
            moto_endpoint,
            MODEL_FILE=str(location_model.path),
            OUTPUT_FILE_PATTERN="s3://no-such-output/{year:04d}-{month:02d}.parquet",
        )
    )

    # when
    with pytest.raises(OutputLocationError) as raised:
        batch.main(2023, 1)

    # then
    assert str(raised.value) == (
        "Output bucket 'no-such-output' not found for s3://no-such-output/2023-01.parquet "
        f"(S3 endpoint {moto_endpoint}); create it or change OUTPUT_FILE_PATTERN"
    )


def test_main_failed_chunk_no_s3_object(
    moto_endpoint, s3_client, s3_options, pu_do_model, trips, job_env
):
    # given a month whose last trip has no distance, for a model that needs one
    create_bucket(s3_client, BUCKET)
    s3_client.delete_object(Bucket=BUCKET, Key="out/2023-03.parquet")
    trips.assign(
        trip_distance=[1.0, 2.0, 3.0, None],
        tpep_dropoff_datetime=trips["tpep_pickup_datetime"] + pd.Timedelta(minutes=5),
    ).to_parquet("s3://nyc-duration/in/2023-03.parquet", index=False, storage_options=s3_options)
    job_env(**s3_variables(moto_endpoint, MODEL_FILE=str(pu_do_model.path)))

    # when the job fails in its second chunk
    with pytest.raises(batch.MissingFeatureValuesError):
        batch.main(2023, 3, chunk_rows=2)

    # then
    assert object_keys(s3_client, "out/2023-03") == []
