"""Fixtures of the batch job tests: the course's trip frame, pickled models and the job's CLI."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression

from local_stack.aws import create_bucket

REPO_ROOT = Path(__file__).resolve().parents[2]

# Variables the job reads; tests start from an environment without them.
JOB_VARIABLES = (
    "INPUT_FILE_PATTERN",
    "OUTPUT_FILE_PATTERN",
    "S3_ENDPOINT_URL",
    "MODEL_FILE",
    "MODEL_LOCATION",
    "RUN_ID",
    "MODEL_BUCKET",
    "MLFLOW_EXPERIMENT_ID",
    "BATCH_CHUNK_ROWS",
)

# The course's integration test bucket and January 2023 input.
BUCKET = "nyc-duration"
INPUT_FILE = "s3://nyc-duration/in/2023-01.parquet"

TRIP_COLUMNS = ["PULocationID", "DOLocationID", "tpep_pickup_datetime", "tpep_dropoff_datetime"]


def dt(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2023, 1, 1, hour, minute, second)


def course_trips() -> pd.DataFrame:
    """Four yellow trips: 9 and 8 minutes (kept), 0.98 and 60.02 minutes (dropped)."""
    data = [
        (None, None, dt(1, 1), dt(1, 10)),
        (1, 1, dt(1, 2), dt(1, 10)),
        (1, None, dt(1, 2, 0), dt(1, 2, 59)),
        (3, 4, dt(1, 2, 0), dt(2, 2, 1)),
    ]
    return pd.DataFrame(data, columns=TRIP_COLUMNS)


@pytest.fixture
def trips() -> pd.DataFrame:
    return course_trips()


@pytest.fixture
def s3_options(moto_endpoint: str) -> dict[str, Any]:
    """pandas storage options for the moto server, as the course's test writes them."""
    return {"client_kwargs": {"endpoint_url": moto_endpoint}}


@pytest.fixture
def january_input(s3_client: Any, moto_endpoint: str) -> str:
    """Write the course's trips as January 2023 to s3://nyc-duration/in/, with no output yet."""
    create_bucket(s3_client, BUCKET)
    s3_client.delete_object(Bucket=BUCKET, Key="out/2023-01.parquet")
    course_trips().to_parquet(
        INPUT_FILE,
        engine="pyarrow",
        compression=None,
        index=False,
        storage_options={"client_kwargs": {"endpoint_url": moto_endpoint}},
    )
    return INPUT_FILE


@dataclass(frozen=True)
class PickledModel:
    """A (DictVectorizer, LinearRegression) pair pickled as the course's model.bin."""

    path: Path
    vectorizer: DictVectorizer
    estimator: LinearRegression

    @property
    def version(self) -> str:
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        return f"{self.path.name}@sha256:{digest[:12]}"

    def predict(self, records: list[dict[str, Any]]) -> list[float]:
        return list(self.estimator.predict(self.vectorizer.transform(records)))


def pickle_model(path: Path, records: list[dict[str, Any]], durations: list[float]) -> PickledModel:
    """Fit the pair on the records and pickle it to path, as the course does."""
    vectorizer = DictVectorizer()
    estimator = LinearRegression().fit(vectorizer.fit_transform(records), durations)
    with path.open("wb") as model_file:
        pickle.dump((vectorizer, estimator), model_file)
    return PickledModel(path, vectorizer, estimator)


@pytest.fixture
def location_model(tmp_path: Path) -> PickledModel:
    """The course's model: PULocationID and DOLocationID as categorical strings."""
    records = [
        {"PULocationID": "-1", "DOLocationID": "-1"},
        {"PULocationID": "1", "DOLocationID": "1"},
        {"PULocationID": "1", "DOLocationID": "4"},
        {"PULocationID": "3", "DOLocationID": "4"},
    ]
    return pickle_model(tmp_path / "model.bin", records, [9.0, 8.0, 20.0, 30.0])


@pytest.fixture
def pu_do_model(tmp_path: Path) -> PickledModel:
    """The streaming service's features: PU_DO and trip_distance."""
    records = [
        {"PU_DO": "1_1", "trip_distance": 1.0},
        {"PU_DO": "1_1", "trip_distance": 2.5},
        {"PU_DO": "130_205", "trip_distance": 3.66},
        {"PU_DO": "3_4", "trip_distance": 7.0},
    ]
    return pickle_model(tmp_path / "pu_do.bin", records, [6.0, 9.0, 14.0, 25.0])


@pytest.fixture
def job_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Clear the job's variables from this process; return a function that sets some.

    ``batch.main`` reads its settings from ``os.environ``, as the command line does.
    """
    for name in JOB_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_variables(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return set_variables


def job_environment(**variables: str) -> dict[str, str]:
    """Return this process's environment without the job's variables, plus ``variables``."""
    environ = {name: value for name, value in os.environ.items() if name not in JOB_VARIABLES}
    environ.update(variables)
    return environ


def run_batch_cli(
    *args: str, env: dict[str, str], cwd: Path = REPO_ROOT
) -> subprocess.CompletedProcess[str]:
    """Run ``python batch.py ARGS`` as a user would, and capture its output."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "batch.py"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
