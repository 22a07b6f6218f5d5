"""The batch job on local files: output, features, chunks, logs and every error it names."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow.models import infer_signature
from pandas.testing import assert_frame_equal
from sklearn.pipeline import make_pipeline

import batch
from batch import (
    InputNotFoundError,
    InvalidPeriodError,
    MissingColumnsError,
    MissingFeatureValuesError,
    ModelFeatures,
    main,
)
from ride_events import RideEvent
from settings import ConfigurationError
from tests.batch.conftest import (
    REPO_ROOT,
    PickledModel,
    dt,
    job_environment,
    pickle_model,
    run_batch_cli,
)

INPUT_PATTERN = "in/{year:04d}-{month:02d}.parquet"
OUTPUT_PATTERN = "out/{year:04d}-{month:02d}.parquet"
KEPT_COURSE_RIDES = [
    {"PULocationID": "-1", "DOLocationID": "-1"},
    {"PULocationID": "1", "DOLocationID": "1"},
]


def write_month(folder: Path, frame: pd.DataFrame, year: int = 2023, month: int = 1) -> Path:
    path = folder / "in" / f"{year:04d}-{month:02d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, engine="pyarrow", compression=None, index=False)
    return path


def local_variables(folder: Path, model: PickledModel) -> dict[str, str]:
    return {
        "INPUT_FILE_PATTERN": str(folder / INPUT_PATTERN),
        "OUTPUT_FILE_PATTERN": str(folder / OUTPUT_PATTERN),
        "MODEL_FILE": str(model.path),
    }


def expected_output(ride_ids: list[str], predictions: list[float], version: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ride_id": ride_ids,
            "predicted_duration": predictions,
            "model_version": [version] * len(ride_ids),
        }
    )


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_main_writes_course_predictions(tmp_path, trips, location_model, job_env):
    # given the course's trips as January 2023 and the course's model
    write_month(tmp_path, trips)
    job_env(**local_variables(tmp_path, location_model))

    # when
    summary = main(2023, 1)

    # then the two kept trips are predicted from their string zone ids
    actual = pd.read_parquet(tmp_path / "out" / "2023-01.parquet")
    predictions = location_model.predict(KEPT_COURSE_RIDES)
    expected = expected_output(["2023/01_0", "2023/01_1"], predictions, location_model.version)
    assert_frame_equal(actual, expected)
    assert (summary.rows_read, summary.rows_predicted, summary.chunks) == (4, 2, 1)


@pytest.mark.parametrize("chunk_rows", [1, 2, 3])
def test_main_chunked_equals_whole_file(tmp_path, trips, location_model, job_env, chunk_rows):
    # given the output of the whole-file path
    write_month(tmp_path, trips)
    job_env(**local_variables(tmp_path, location_model))
    whole = main(2023, 1)
    whole_path = tmp_path / "whole.parquet"
    Path(whole.output_path).rename(whole_path)

    # when the same month is scored in chunks
    chunked = main(2023, 1, chunk_rows=chunk_rows)

    # then
    assert chunked.chunks == -(-len(trips) // chunk_rows)
    assert_frame_equal(pd.read_parquet(chunked.output_path), pd.read_parquet(whole_path))
    assert pq.read_schema(chunked.output_path) == pq.read_schema(whole_path)


def test_main_chunk_rows_from_environment(tmp_path, trips, location_model, job_env):
    # given
    write_month(tmp_path, trips)
    job_env(**local_variables(tmp_path, location_model), BATCH_CHUNK_ROWS="3")

    # when
    summary = main(2023, 1)

    # then
    assert summary.chunks == 2


def test_main_chunked_tlc_month(tmp_path, tlc_mirror, job_env):
    # given a PU_DO + trip_distance model fit on 20,000 green trips of January 2022
    january = batch.prepare_data(
        pd.read_parquet(tlc_mirror / "green_tripdata_2022-01.parquet").head(20_000),
        ["PULocationID", "DOLocationID"],
    )
    features = ModelFeatures(("PU_DO", "trip_distance"), frozenset({"trip_distance"}))
    model = pickle_model(
        tmp_path / "model.bin", features.build_records(january), january["duration"].tolist()
    )
    job_env(
        INPUT_FILE_PATTERN=str(tlc_mirror / "green_tripdata_{year:04d}-{month:02d}.parquet"),
        OUTPUT_FILE_PATTERN=str(tmp_path / "out" / "{year:04d}-{month:02d}.parquet"),
        MODEL_FILE=str(model.path),
    )
    whole = main(2022, 3)
    whole_frame = pd.read_parquet(whole.output_path)

    # when March (78,537 rows) is scored in chunks of 10,000 rows
    chunked = main(2022, 3, chunk_rows=10_000)

    # then
    assert (chunked.chunks, chunked.rows_read, chunked.rows_predicted) == (8, 78_537, 74_507)
    assert_frame_equal(pd.read_parquet(chunked.output_path), whole_frame)


def test_main_pu_do_matches_streaming(tmp_path, pu_do_model, job_env):
    # given trips with a distance, for a model of the streaming service's features
    trips = pd.DataFrame(
        {
            "PULocationID": [130, 1],
            "DOLocationID": [205, 1],
            "trip_distance": [3.66, 2.0],
            "tpep_pickup_datetime": [dt(5, 0), dt(6, 0)],
            "tpep_dropoff_datetime": [dt(5, 20), dt(6, 10)],
        }
    )
    write_month(tmp_path, trips)
    job_env(**local_variables(tmp_path, pu_do_model))

    # when
    main(2023, 1)

    # then the predictions are those of the streaming service's features for the same rides
    actual = pd.read_parquet(tmp_path / "out" / "2023-01.parquet")
    rides = [RideEvent(0, 130, 205, 3.66), RideEvent(1, 1, 1, 2.0)]
    predictions = pu_do_model.predict([ride.features() for ride in rides])
    expected = expected_output(["2023/01_0", "2023/01_1"], predictions, pu_do_model.version)
    assert_frame_equal(actual, expected)


def test_main_logs_counts_and_predictions(tmp_path, trips, location_model, job_env, caplog):
    # given
    write_month(tmp_path, trips)
    job_env(**local_variables(tmp_path, location_model))
    caplog.set_level(logging.INFO, logger="batch")

    # when
    main(2023, 1)

    # then
    predictions = location_model.predict(KEPT_COURSE_RIDES)
    messages = caplog.messages
    assert f"input file: {tmp_path}/in/2023-01.parquet" in messages
    assert f"output file: {tmp_path}/out/2023-01.parquet" in messages
    assert f"model version: {location_model.version}" in messages
    assert "rows read: 4" in messages
    assert "rows after the duration filter (1 to 60 minutes): 2" in messages
    assert "predictions written: 2" in messages
    assert f"predicted duration mean: {np.mean(predictions):.3f} minutes" in messages
    assert f"predicted duration sum: {np.sum(predictions):.1f} minutes" in messages


def test_model_features_from_vectorizer(pu_do_model):
    # given a vectorizer fit on PU_DO strings and trip_distance numbers
    # when
    features = ModelFeatures.from_vectorizer(pu_do_model.vectorizer)

    # then
    assert features == ModelFeatures(("PU_DO", "trip_distance"), frozenset({"trip_distance"}))


def test_model_features_columns_of_pu_do():
    # given
    features = ModelFeatures(("PU_DO", "trip_distance"), frozenset({"trip_distance"}))

    # when
    columns = (features.categorical_columns, features.numerical_columns)

    # then
    assert columns == (["PULocationID", "DOLocationID"], ["trip_distance"])


def test_load_scoring_model_mlflow_signature(tmp_path, pu_do_model, job_env):
    # given an MLflow sklearn pipeline whose signature names PU_DO and trip_distance
    pipeline = make_pipeline(pu_do_model.vectorizer, pu_do_model.estimator)
    example = pd.DataFrame({"PU_DO": ["1_1"], "trip_distance": [1.0]})
    mlflow.sklearn.save_model(
        pipeline, tmp_path / "mlflow_model", signature=infer_signature(example, np.array([1.0]))
    )
    job_env(MODEL_LOCATION=str(tmp_path / "mlflow_model"), RUN_ID="run-7")

    # when
    model = batch.load_scoring_model()

    # then
    assert model.features == ModelFeatures(("PU_DO", "trip_distance"), frozenset({"trip_distance"}))
    assert model.version == "run-7"


def test_main_missing_input_writes_nothing(tmp_path, location_model, job_env):
    # given no input file for the month
    job_env(**local_variables(tmp_path, location_model))

    # when
    with pytest.raises(InputNotFoundError) as raised:
        main(2023, 1)

    # then
    assert str(raised.value) == (
        f"Input file not found: {tmp_path}/in/2023-01.parquet; check INPUT_FILE_PATTERN, the "
        "year and month, and that the bucket exists"
    )
    assert files_under(tmp_path) == ["model.bin"]


def test_main_missing_model_column(tmp_path, trips, pu_do_model, job_env):
    # given trips without trip_distance, for a model that needs it
    write_month(tmp_path, trips)
    job_env(**local_variables(tmp_path, pu_do_model))

    # when
    with pytest.raises(MissingColumnsError) as raised:
        main(2023, 1)

    # then
    assert str(raised.value) == (
        f"Input file {tmp_path}/in/2023-01.parquet lacks columns: trip_distance (needed by "
        "the model)"
    )
    assert files_under(tmp_path) == ["in/2023-01.parquet", "pu_do.bin"]


def test_main_input_without_times_names_them(tmp_path, trips, location_model, job_env):
    # given a file with the zones but no trip times
    write_month(tmp_path, trips[["PULocationID", "DOLocationID"]])
    job_env(**local_variables(tmp_path, location_model))

    # when
    with pytest.raises(MissingColumnsError) as raised:
        main(2023, 1)

    # then
    assert raised.value.missing == (
        "tpep_pickup_datetime",
        "tpep_dropoff_datetime",
        "lpep_pickup_datetime",
        "lpep_dropoff_datetime",
    )


def test_main_failed_chunk_leaves_no_output(tmp_path, pu_do_model, job_env):
    # given a file whose last chunk has a trip without a distance, and an earlier output
    trips = pd.DataFrame(
        {
            "PULocationID": [1, 1, 3, 3],
            "DOLocationID": [1, 1, 4, 4],
            "trip_distance": [1.0, 2.0, 3.0, None],
            "tpep_pickup_datetime": [dt(1, 0)] * 4,
            "tpep_dropoff_datetime": [dt(1, 10)] * 4,
        }
    )
    write_month(tmp_path, trips)
    earlier_output = tmp_path / "out" / "2023-01.parquet"
    earlier_output.parent.mkdir()
    earlier_output.write_bytes(b"earlier run")
    job_env(**local_variables(tmp_path, pu_do_model))

    # when the job fails in its second chunk
    with pytest.raises(MissingFeatureValuesError) as raised:
        main(2023, 1, chunk_rows=2)

    # then the earlier output is untouched and no temporary file is left
    assert str(raised.value) == (
        "Numeric feature trip_distance is missing in 1 trips to predict (first rows: 3); the "
        "model needs a number for every trip, so fill or drop those rows in the input file"
    )
    assert earlier_output.read_bytes() == b"earlier run"
    assert files_under(tmp_path / "out") == ["2023-01.parquet"]


@pytest.mark.parametrize(
    ("variable", "pattern", "field"),
    [
        ("INPUT_FILE_PATTERN", "in/{month:02d}.parquet", "year"),
        ("INPUT_FILE_PATTERN", "in/{year:04d}.parquet", "month"),
        ("OUTPUT_FILE_PATTERN", "out/{month:02d}.parquet", "year"),
        ("OUTPUT_FILE_PATTERN", "out/predictions.parquet", "year"),
        ("OUTPUT_FILE_PATTERN", "out/{year}.parquet", "month"),
    ],
)
def test_main_pattern_without_field(
    tmp_path, trips, location_model, job_env, variable, pattern, field
):
    # given
    write_month(tmp_path, trips)
    job_env(**{**local_variables(tmp_path, location_model), variable: pattern})

    # when
    with pytest.raises(ConfigurationError) as raised:
        main(2023, 1)

    # then
    assert str(raised.value) == (
        f"{variable}={pattern!r} has no {{{field}}} field; add one, for example "
        "'...{year:04d}-{month:02d}.parquet', so that each month has its own file"
    )
    assert not (tmp_path / "out").exists()


def test_main_pattern_with_unknown_field_names_it(tmp_path, location_model, job_env):
    # given
    pattern = "in/{year}-{month}-{day}.parquet"
    job_env(**{**local_variables(tmp_path, location_model), "INPUT_FILE_PATTERN": pattern})

    # when
    with pytest.raises(ConfigurationError) as raised:
        main(2023, 1)

    # then
    assert str(raised.value) == (
        f"INPUT_FILE_PATTERN={pattern!r} has unknown fields ['day']; only {{year}} and "
        "{month} are filled in"
    )


@pytest.mark.parametrize(
    ("year", "month", "message"),
    [
        (2023, 13, "Invalid month 13: expected 1 to 12 (usage: YEAR MONTH)"),
        (2023, 0, "Invalid month 0: expected 1 to 12 (usage: YEAR MONTH)"),
        (
            23,
            1,
            "Invalid year 23: expected a four-digit year from 2009, the first year of TLC "
            "trip records (usage: YEAR MONTH)",
        ),
        (
            10_000,
            1,
            "Invalid year 10000: expected a four-digit year from 2009, the first year of TLC "
            "trip records (usage: YEAR MONTH)",
        ),
    ],
)
def test_main_invalid_period(tmp_path, location_model, job_env, year, month, message):
    # given
    job_env(**local_variables(tmp_path, location_model))

    # when
    with pytest.raises(InvalidPeriodError) as raised:
        main(year, month)

    # then
    assert str(raised.value) == message


def test_main_invalid_chunk_rows_names_variable(tmp_path, location_model, job_env):
    # given
    job_env(**local_variables(tmp_path, location_model), BATCH_CHUNK_ROWS="1e6")

    # when
    with pytest.raises(ConfigurationError) as raised:
        main(2023, 1)

    # then
    assert str(raised.value) == "BATCH_CHUNK_ROWS='1e6' is not a positive whole number of rows"


def test_main_model_file_and_run_id_rejected(tmp_path, trips, location_model, job_env):
    # given
    write_month(tmp_path, trips)
    job_env(**local_variables(tmp_path, location_model), RUN_ID="abc")

    # when
    with pytest.raises(ConfigurationError) as raised:
        main(2023, 1)

    # then
    assert str(raised.value) == (
        "MODEL_FILE and RUN_ID are both set; set MODEL_FILE for a pickled (DictVectorizer, "
        "model) pair, or the MLflow variables, not both"
    )


def test_main_model_file_not_a_pair(tmp_path, trips, job_env):
    # given a model file that contains something other than a (vectorizer, model) pair
    write_month(tmp_path, trips)
    model_path = tmp_path / "model.bin"
    model_path.write_bytes(pickle.dumps({"not": "a model"}))
    job_env(
        INPUT_FILE_PATTERN=str(tmp_path / INPUT_PATTERN),
        OUTPUT_FILE_PATTERN=str(tmp_path / OUTPUT_PATTERN),
        MODEL_FILE=str(model_path),
    )

    # when
    with pytest.raises(batch.ModelLoadError) as raised:
        main(2023, 1)

    # then
    assert str(raised.value) == (
        f"MODEL_FILE {model_path} contains a dict, expected a pickled (DictVectorizer, model) "
        "pair as written by pickle.dump((dv, model), file)"
    )


def test_cli_month_13_exits_with_message(tmp_path, location_model):
    # given
    env = job_environment(**local_variables(tmp_path, location_model))

    # when
    completed = run_batch_cli("2023", "13", env=env)

    # then
    assert completed.returncode == 1
    assert "ERROR batch: Invalid month 13: expected 1 to 12" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_cli_default_model_bin(tmp_path, trips, location_model):
    # given the course's layout: model.bin and no MODEL_FILE, run from that folder
    write_month(tmp_path, trips)
    env = job_environment(
        INPUT_FILE_PATTERN=str(tmp_path / INPUT_PATTERN),
        OUTPUT_FILE_PATTERN=OUTPUT_PATTERN,
    )

    # when
    completed = run_batch_cli("2023", "1", env=env, cwd=tmp_path)

    # then
    assert completed.returncode == 0, completed.stderr
    assert f"model version: {location_model.version}" in completed.stderr
    assert len(pd.read_parquet(tmp_path / "out" / "2023-01.parquet")) == 2


def test_batch_import_has_no_side_effects(tmp_path):
    # given an empty working directory
    # when
    completed = subprocess.run(
        [sys.executable, "-c", "import batch"],
        cwd=tmp_path,
        env=job_environment(PYTHONPATH=str(REPO_ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # then
    assert (completed.returncode, completed.stdout, completed.stderr) == (0, "", "")
    assert files_under(tmp_path) == []
