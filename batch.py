"""Batch scoring: predict the duration of every trip of one TLC month and write the predictions.

Usage: ``python batch.py 2023 1`` (year, month). The job reads the file that
``INPUT_FILE_PATTERN`` names for the month, by default TLC's yellow trip file. It keeps the
trips of 1 to 60 minutes and writes one row per kept trip to the file that
``OUTPUT_FILE_PATTERN`` names, by default ``output/yellow_tripdata_YYYY-MM.parquet``.
The output columns are ``ride_id`` (``"2023/01_<row>"``, where ``<row>`` is the trip's row
position in the input file), ``predicted_duration`` (minutes) and ``model_version``.
Both patterns must contain the ``{year}`` and ``{month}`` fields, usually written
``{year:04d}`` and ``{month:02d}``. With ``S3_ENDPOINT_URL`` set, ``s3://`` paths are read
and written through that S3-compatible endpoint (LocalStack, moto, MinIO).

The model is the first of:

1. ``MODEL_FILE``: a pickled ``(DictVectorizer, estimator)`` pair, as the course's
   ``model.bin``, from a local path or ``s3://``. Its version is the file name and the first
   12 hex digits of the file's SHA-256, for example ``model.bin@sha256:3f2a9c1d8e7b``;
2. ``MODEL_LOCATION``, or ``RUN_ID`` with ``MODEL_BUCKET`` and ``MLFLOW_EXPERIMENT_ID``: an
   MLflow model, found and loaded by ``model_loading`` exactly as the streaming service does.
   Its version is the run id. The model store's endpoint is ``MLFLOW_S3_ENDPOINT_URL``
   (or ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``), as for the streaming service;
3. none of these variables: ``model.bin`` in the current directory, as in the course.

The job builds the features that the model was trained on:

- for a ``(DictVectorizer, estimator)`` pair, the vectorizer's ``feature_names_``. A one-hot
  name such as ``PULocationID=130`` marks ``PULocationID`` as a categorical column, and a
  plain name such as ``trip_distance`` marks a numeric column;
- for an MLflow model, the input names of its logged signature
  (``LoadedModel.feature_names``). When the model is a pipeline that starts with a
  DictVectorizer, the vectorizer tells which of them are categorical, as above. Otherwise
  ``PU_DO`` and the location IDs are categorical and every other name is numeric. A model
  without a signature gets its vectorizer's columns, or else the streaming service's
  features, ``PU_DO`` and ``trip_distance``.

``PU_DO`` is built from ``PULocationID`` and ``DOLocationID`` as the streaming service
builds it (``"130_205"``). Categorical columns become strings with
``fillna(-1).astype(int).astype(str)``, as in the course, so a missing zone is ``"-1"``.
Numeric columns are passed as floats, and a trip without a value fails the run, naming
its row, as the streaming service rejects a ride without a distance. The input file must
contain every column these features need, and the pickup and dropoff times of a yellow
(``tpep_*``) or green (``lpep_*``) file. Otherwise the job names the missing columns
before reading any row.

A file of more than ``BATCH_CHUNK_ROWS`` rows (``--chunk-rows``) is read, predicted and
written in chunks of that many rows. Memory then depends on the chunk size and on the
compressed size of one Parquet row group, not on the number of rows in the month.
The output is written to a temporary file and moved into place (local) or uploaded
(``s3://``) only after every chunk succeeded, so a failed run leaves no output file.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import pickle
import shutil
import string
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from model_loading import ModelLoadError, load_model, model_source_from_environ
from settings import ConfigurationError

logger = logging.getLogger("batch")

DEFAULT_INPUT_FILE_PATTERN = (
    "https://d37ci6vzurychx.cloudfront.net/trip-data/yellow_tripdata_{year:04d}-{month:02d}.parquet"
)
DEFAULT_OUTPUT_FILE_PATTERN = "output/yellow_tripdata_{year:04d}-{month:02d}.parquet"
DEFAULT_MODEL_FILE = "model.bin"
# Peak resident memory of a run, measured on a 3.1-million-row green TLC file with a
# DictVectorizer + LinearRegression model on PU_DO and trip_distance: 0.35 GB with
# 50,000-row chunks, 0.70 GB with 500,000-row chunks and 2.0 GB for the whole file at once.
DEFAULT_CHUNK_ROWS = 500_000

# TLC trip records start in January 2009; ride ids write the year with four digits.
MIN_YEAR = 2009
MAX_YEAR = 9999

MIN_DURATION_MINUTES = 1
MAX_DURATION_MINUTES = 60

LOCATION_COLUMNS = ("PULocationID", "DOLocationID")
PU_DO = "PU_DO"
# The features the streaming service sends to the model (ride_events.RideEvent.features).
STREAMING_FEATURES = (PU_DO, "trip_distance")
# Yellow files name the trip times tpep_*, green files lpep_*.
DATETIME_PREFIXES = {"yellow": "tpep", "green": "lpep"}

OUTPUT_COLUMNS = ["ride_id", "predicted_duration", "model_version"]


class BatchJobError(RuntimeError):
    """The job cannot run or finish; the message names the value at fault and the fix."""


class InvalidPeriodError(BatchJobError, ValueError):
    """The year or month is outside the range TLC publishes."""


class InputNotFoundError(BatchJobError):
    """The input file, or its bucket, does not exist."""


class MissingColumnsError(BatchJobError, ValueError):
    """The input lacks columns that the duration or the model's features need."""

    def __init__(self, message: str, missing: Sequence[str]) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


class MissingFeatureValuesError(BatchJobError, ValueError):
    """A numeric feature has missing values, for which the model cannot predict."""


class OutputLocationError(BatchJobError):
    """The output cannot be written where ``OUTPUT_FILE_PATTERN`` points."""


@dataclass(frozen=True)
class ModelFeatures:
    """The feature names a model was trained on, and which of them are numeric."""

    names: tuple[str, ...]
    numerical: frozenset[str]

    @classmethod
    def from_names(cls, names: Sequence[str]) -> ModelFeatures:
        """Classify names without a vectorizer: PU_DO and location IDs are categorical."""
        # NOTE: only these names are taken as categorical, so an MLflow model without a
        # leading DictVectorizer that was trained on another categorical column gets numbers.
        categorical = {PU_DO, *LOCATION_COLUMNS}
        return cls(tuple(names), frozenset(name for name in names if name not in categorical))

    @classmethod
    def from_vectorizer(cls, vectorizer: Any) -> ModelFeatures:
        """Read a fitted DictVectorizer's ``feature_names_``: ``name=value`` is one-hot."""
        names: dict[str, bool] = {}
        for feature_name in vectorizer.feature_names_:
            column, separator, _ = feature_name.partition(vectorizer.separator)
            is_numeric = not separator
            names[column] = names.get(column, True) and is_numeric
        return cls(tuple(names), frozenset(name for name, numeric in names.items() if numeric))

    @property
    def categorical_columns(self) -> list[str]:
        """Input columns prepared as strings, including the location IDs that PU_DO joins."""
        columns: list[str] = []
        for name in self.names:
            if name in self.numerical:
                continue
            columns.extend(LOCATION_COLUMNS if name == PU_DO else [name])
        return list(dict.fromkeys(columns))

    @property
    def numerical_columns(self) -> list[str]:
        return [name for name in self.names if name in self.numerical]

    def describe(self) -> str:
        """List the features with their kind, for the log."""
        return ", ".join(
            f"{name} ({'numeric' if name in self.numerical else 'categorical'})"
            for name in self.names
        )

    def build_records(self, df: pd.DataFrame) -> list[dict[str, Any]]:
        """Build one feature dict per row of a frame that ``prepare_data`` returned."""
        columns: dict[str, pd.Series] = {}
        for name in self.names:
            if name in self.numerical:
                columns[name] = df[name].astype("float64")
                _check_no_missing_values(columns[name], name)
            elif name == PU_DO:
                columns[name] = df["PULocationID"] + "_" + df["DOLocationID"]
            else:
                columns[name] = df[name]
        return pd.DataFrame(columns, index=df.index).to_dict(orient="records")


def _check_no_missing_values(values: pd.Series, name: str) -> None:
    missing = values.index[values.isna()]
    if len(missing) == 0:
        return

    first_rows = ", ".join(str(row) for row in missing[:3])
    raise MissingFeatureValuesError(
        f"Numeric feature {name} is missing in {len(missing)} trips to predict (first rows: "
        f"{first_rows}); the model needs a number for every trip, so fill or drop those "
        "rows in the input file"
    )


@dataclass(frozen=True)
class ScoringModel:
    """A model ready for the job: its prediction function, features, version and location."""

    predict: Callable[[list[dict[str, Any]]], Any]
    features: ModelFeatures
    version: str
    location: str


@dataclass(frozen=True)
class BatchSummary:
    """Counts and totals of one run."""

    input_path: str
    output_path: str
    rows_read: int
    rows_predicted: int
    prediction_sum: float
    chunks: int

    @property
    def prediction_mean(self) -> float:
        return self.prediction_sum / self.rows_predicted if self.rows_predicted else math.nan


# --- Paths and file systems ---


def check_period(year: int, month: int) -> None:
    """Raise :class:`InvalidPeriodError` unless the month is 1 to 12 and the year 2009 to 9999."""
    if not 1 <= month <= 12:
        raise InvalidPeriodError(f"Invalid month {month}: expected 1 to 12 (usage: YEAR MONTH)")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise InvalidPeriodError(
            f"Invalid year {year}: expected a four-digit year from {MIN_YEAR}, the first year "
            "of TLC trip records (usage: YEAR MONTH)"
        )


def get_input_path(year: int, month: int) -> str:
    """Fill ``INPUT_FILE_PATTERN`` (by default TLC's yellow trip file) for the month."""
    pattern = os.environ.get("INPUT_FILE_PATTERN") or DEFAULT_INPUT_FILE_PATTERN
    return format_path_pattern("INPUT_FILE_PATTERN", pattern, year, month)


def get_output_path(year: int, month: int) -> str:
    """Fill ``OUTPUT_FILE_PATTERN`` (by default a file under ``output/``) for the month."""
    pattern = os.environ.get("OUTPUT_FILE_PATTERN") or DEFAULT_OUTPUT_FILE_PATTERN
    return format_path_pattern("OUTPUT_FILE_PATTERN", pattern, year, month)


def format_path_pattern(variable: str, pattern: str, year: int, month: int) -> str:
    """Fill a path pattern; raise ConfigurationError naming the variable when it is unusable.

    A pattern without ``{year}`` or ``{month}`` is rejected, because every month would then
    read or overwrite the same file.
    """
    try:
        fields = {
            field for _, field, _, _ in string.Formatter().parse(pattern) if field is not None
        }
    except ValueError as error:
        raise ConfigurationError(
            f"{variable}={pattern!r} is not a valid pattern: {error}"
        ) from None

    for required in ("year", "month"):
        if required not in fields:
            raise ConfigurationError(
                f"{variable}={pattern!r} has no {{{required}}} field; add one, for example "
                "'...{year:04d}-{month:02d}.parquet', so that each month has its own file"
            )
    unknown = sorted(fields - {"year", "month"})
    if unknown:
        raise ConfigurationError(
            f"{variable}={pattern!r} has unknown fields {unknown}; only {{year}} and {{month}} "
            "are filled in"
        )
    try:
        return pattern.format(year=year, month=month)
    except ValueError as error:
        raise ConfigurationError(f"{variable}={pattern!r} cannot be filled: {error}") from None


def storage_options(path: str) -> dict[str, Any] | None:
    """Return the fsspec/pandas storage options for ``path``: the S3 endpoint, if any.

    Every read and write of the job goes through this function. Only ``s3://`` paths get
    options, because pandas sends the storage options of an ``https://`` URL as headers.
    """
    endpoint_url = os.environ.get("S3_ENDPOINT_URL", "").strip()
    if not endpoint_url or not path.startswith(("s3://", "s3a://")):
        return None
    return {"client_kwargs": {"endpoint_url": endpoint_url}}


def open_filesystem(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the file system of ``path``, set up with :func:`storage_options`, and its path."""
    return url_to_fs(path, **(storage_options(path) or {}))


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _where(path: str) -> str:
    """Name the S3 endpoint in messages about an s3:// path."""
    if not path.startswith(("s3://", "s3a://")):
        return path
    options = storage_options(path)
    endpoint = options["client_kwargs"]["endpoint_url"] if options else "AWS default"
    return f"{path} (S3 endpoint {endpoint})"


# --- Reading and preparing ---


def inspect_input(path: str) -> pq.FileMetaData:
    """Read the Parquet footer of the input; raise :class:`InputNotFoundError` when missing."""
    filesystem, fs_path = open_filesystem(path)
    try:
        with filesystem.open(fs_path, "rb") as handle:
            return pq.ParquetFile(handle).metadata
    except FileNotFoundError:
        raise InputNotFoundError(
            f"Input file not found: {_where(path)}; check INPUT_FILE_PATTERN, the year and "
            "month, and that the bucket exists"
        ) from None
    except PermissionError as error:
        raise BatchJobError(
            f"Input file cannot be read: {_where(path)}: {error}; check the access rights and "
            "that the file exists, because S3 returns 403 Forbidden for a missing key to a "
            "caller that may not list the bucket"
        ) from None
    except OSError as error:
        raise BatchJobError(f"Input file cannot be read: {_where(path)}: {error}") from None


def datetime_columns(columns: Sequence[str]) -> tuple[str, str] | None:
    """Return the pickup and dropoff columns of a yellow or green file, or None."""
    for prefix in DATETIME_PREFIXES.values():
        pickup, dropoff = f"{prefix}_pickup_datetime", f"{prefix}_dropoff_datetime"
        if pickup in columns and dropoff in columns:
            return pickup, dropoff
    return None


def check_columns(
    columns: Sequence[str],
    categorical: Sequence[str],
    numerical: Sequence[str] = (),
    source: str = "The input",
) -> list[str]:
    """Return the columns to read, or raise :class:`MissingColumnsError` naming each one.

    The job needs the pickup and dropoff times of a yellow or a green file, and the
    categorical and numeric columns of the model's features.
    """
    times = datetime_columns(columns)
    missing = [name for name in [*categorical, *numerical] if name not in columns]
    if times is not None and not missing:
        return [*times, *dict.fromkeys([*categorical, *numerical])]

    problems = []
    if missing:
        problems.append(f"{', '.join(missing)} (needed by the model)")
    if times is None:
        missing_times = _missing_datetime_columns(columns)
        missing.extend(missing_times)
        if len(missing_times) == 1:
            problems.append(f"{missing_times[0]} (a trip time)")
        else:
            problems.append(
                "the trip times: tpep_pickup_datetime and tpep_dropoff_datetime (yellow) "
                "or lpep_pickup_datetime and lpep_dropoff_datetime (green)"
            )
    raise MissingColumnsError(f"{source} lacks columns: {'; '.join(problems)}", missing)


def _missing_datetime_columns(columns: Sequence[str]) -> list[str]:
    """Name the one missing time of a file that has the other, or every time column."""
    missing_by_prefix = [
        [
            name
            for name in (f"{prefix}_pickup_datetime", f"{prefix}_dropoff_datetime")
            if name not in columns
        ]
        for prefix in DATETIME_PREFIXES.values()
    ]
    for missing in missing_by_prefix:
        if len(missing) == 1:
            return missing
    return [name for missing in missing_by_prefix for name in missing]


def read_data(
    filename: str, categorical: Sequence[str], numerical: Sequence[str] = ()
) -> pd.DataFrame:
    """Read the trip times and the given columns of a Parquet file, with no transformation.

    The frame's index is the row position in the file, which the ride ids are built from.
    Raises :class:`InputNotFoundError` and :class:`MissingColumnsError`.
    """
    metadata = inspect_input(filename)
    columns = check_columns(
        metadata.schema.to_arrow_schema().names, categorical, numerical, f"Input file {filename}"
    )
    df = pd.read_parquet(
        filename, columns=columns, engine="pyarrow", storage_options=storage_options(filename)
    )
    return df.reset_index(drop=True)


def read_chunks(
    filename: str, categorical: Sequence[str], numerical: Sequence[str], chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """Yield the file as frames of at most ``chunk_rows`` rows, indexed by row position."""
    filesystem, fs_path = open_filesystem(filename)
    with filesystem.open(fs_path, "rb") as handle:
        parquet_file = pq.ParquetFile(handle)
        columns = check_columns(
            parquet_file.schema_arrow.names, categorical, numerical, f"Input file {filename}"
        )
        offset = 0
        for batch in parquet_file.iter_batches(batch_size=chunk_rows, columns=columns):
            chunk = batch.to_pandas()
            chunk.index = pd.RangeIndex(offset, offset + len(chunk))
            offset += len(chunk)
            yield chunk


def prepare_data(df: pd.DataFrame, categorical: Sequence[str]) -> pd.DataFrame:
    """Add ``duration`` in minutes, keep trips of 1 to 60 minutes, make categoricals strings.

    The pickup and dropoff columns are ``tpep_*`` (yellow) or ``lpep_*`` (green). Both
    duration bounds are inclusive. Categorical columns become
    ``fillna(-1).astype(int).astype(str)``, so a missing zone is ``"-1"``. The index is kept,
    so the ride ids still name the rows of the input file. The input frame is not changed.
    """
    times = datetime_columns(list(df.columns))
    check_columns(list(df.columns), categorical, source="The frame")
    pickup, dropoff = times  # check_columns raised when times is None

    df = df.assign(duration=(df[dropoff] - df[pickup]).dt.total_seconds() / 60)
    df = df[(df.duration >= MIN_DURATION_MINUTES) & (df.duration <= MAX_DURATION_MINUTES)].copy()
    categorical = list(categorical)
    df[categorical] = df[categorical].fillna(-1).astype(int).astype(str)
    return df


# --- Model ---


def load_scoring_model(download_root: Path | None = None) -> ScoringModel:
    """Load the model that ``MODEL_FILE``, ``MODEL_LOCATION`` or ``RUN_ID`` names.

    Raises ConfigurationError when the variables conflict or name nothing, and
    ModelLoadError when the model cannot be read.
    """
    model_file = os.environ.get("MODEL_FILE", "").strip()
    mlflow_variables = [
        name for name in ("MODEL_LOCATION", "RUN_ID") if os.environ.get(name, "").strip()
    ]

    if model_file and mlflow_variables:
        raise ConfigurationError(
            f"MODEL_FILE and {' and '.join(mlflow_variables)} are both set; set MODEL_FILE for a "
            "pickled (DictVectorizer, model) pair, or the MLflow variables, not both"
        )
    if mlflow_variables:
        return _load_mlflow_model(download_root)
    if model_file:
        return load_model_file(model_file)
    if Path(DEFAULT_MODEL_FILE).is_file():
        return load_model_file(DEFAULT_MODEL_FILE)
    raise ConfigurationError(
        f"No model configured, and no {DEFAULT_MODEL_FILE} in {Path.cwd()}: set MODEL_FILE to "
        "a pickled (DictVectorizer, model) pair, or MODEL_LOCATION (or RUN_ID with MODEL_BUCKET) "
        "to an MLflow model"
    )


def load_model_file(path: str) -> ScoringModel:
    """Unpickle a ``(DictVectorizer, estimator)`` pair; only load files you trust."""
    filesystem, fs_path = open_filesystem(path)
    try:
        with filesystem.open(fs_path, "rb") as model_file:
            content = model_file.read()
    except FileNotFoundError:
        raise ModelLoadError(
            f"MODEL_FILE not found: {_where(path)}; set MODEL_FILE to the path of a pickled "
            "(DictVectorizer, model) pair"
        ) from None

    try:
        loaded = pickle.loads(content)
    except Exception as error:  # pylint: disable=broad-exception-caught
        # Unpickling raises whatever the pickled classes raise, for example an
        # AttributeError when the scikit-learn version differs from the one that saved it.
        raise ModelLoadError(
            f"Cannot unpickle MODEL_FILE {path}: {type(error).__name__}: {error}"
        ) from None

    if not (
        isinstance(loaded, tuple | list)
        and len(loaded) == 2
        and hasattr(loaded[0], "transform")
        and hasattr(loaded[1], "predict")
    ):
        raise ModelLoadError(
            f"MODEL_FILE {path} contains a {type(loaded).__name__}, expected a pickled "
            "(DictVectorizer, model) pair as written by pickle.dump((dv, model), file)"
        )

    vectorizer, estimator = loaded
    if hasattr(vectorizer, "feature_names_"):
        features = ModelFeatures.from_vectorizer(vectorizer)
    else:
        # NOTE: a transformer other than a fitted DictVectorizer lists no features, so the
        # course's convention applies: the two location IDs, as categorical strings.
        features = ModelFeatures.from_names(LOCATION_COLUMNS)

    digest = hashlib.sha256(content).hexdigest()
    return ScoringModel(
        predict=lambda records: estimator.predict(vectorizer.transform(records)),
        features=features,
        version=f"{Path(fs_path).name}@sha256:{digest[:12]}",
        location=path,
    )


def _load_mlflow_model(download_root: Path | None) -> ScoringModel:
    loaded = load_model(model_source_from_environ(os.environ), download_root)
    vectorizer = _leading_vectorizer(loaded.model)

    if loaded.feature_names:
        features = ModelFeatures.from_names(loaded.feature_names)
    elif vectorizer is not None:
        features = ModelFeatures.from_vectorizer(vectorizer)
    else:
        logger.warning(
            "model has no signature: using the streaming service's features %s",
            ", ".join(STREAMING_FEATURES),
        )
        features = ModelFeatures.from_names(STREAMING_FEATURES)

    if vectorizer is not None:
        # The vectorizer records which features it one-hot encoded; the signature only
        # names them.
        trained = ModelFeatures.from_vectorizer(vectorizer)
        numerical = frozenset(
            name
            for name in features.names
            if name in trained.numerical
            or (name not in trained.names and name in features.numerical)
        )
        features = ModelFeatures(features.names, numerical)

    return ScoringModel(
        predict=loaded.model.predict,
        features=features,
        version=loaded.version,
        location=loaded.location,
    )


def _leading_vectorizer(model: Any) -> Any:
    """Return the fitted DictVectorizer that starts a scikit-learn pipeline, or None."""
    steps = getattr(model, "steps", None)
    if not steps:
        return None
    first_step = steps[0][1]
    return first_step if hasattr(first_step, "feature_names_") else None


# --- Scoring and writing ---


def predict_frame(df: pd.DataFrame, model: ScoringModel, ride_id_prefix: str) -> pd.DataFrame:
    """Predict the prepared trips and return the output columns, one row per trip."""
    if len(df) == 0:
        predictions = np.empty(0, dtype="float64")
    else:
        # A pyfunc model may return a one-column frame; ravel makes it one value per trip.
        predictions = np.asarray(
            model.predict(model.features.build_records(df)), dtype="float64"
        ).ravel()

    # Explicit dtypes give every chunk the same Parquet schema, also a chunk without rows.
    return pd.DataFrame(
        {
            "ride_id": pd.Series(ride_id_prefix + df.index.astype(str), dtype="str"),
            "predicted_duration": pd.Series(predictions, dtype="float64"),
            "model_version": pd.Series([model.version] * len(df), dtype="str"),
        },
        columns=OUTPUT_COLUMNS,
    )


def save_data(filename: str, df: pd.DataFrame) -> None:
    """Write ``df`` as Parquet to ``filename``; the file appears only when writing succeeded."""
    with staged_output(filename) as staging_path:
        df.to_parquet(staging_path, engine="pyarrow", index=False)


@contextmanager
def staged_output(path: str) -> Iterator[str]:
    """Yield a local temporary path to write; publish it at ``path`` when the block succeeds.

    A local output is moved into place with ``os.replace`` (atomic within one file
    system); an ``s3://`` output is uploaded to its final key only then. The temporary
    file is removed when the block raises.
    """
    if is_local(path):
        target = Path(path.removeprefix("file://"))
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, staging_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
        os.close(descriptor)
        try:
            yield staging_name
            os.replace(staging_name, target)
        finally:
            Path(staging_name).unlink(missing_ok=True)
        return

    filesystem, fs_path = open_filesystem(path)
    staging_dir = tempfile.mkdtemp(prefix="batch-output-")
    try:
        staging_name = os.path.join(staging_dir, "predictions.parquet")
        yield staging_name
        try:
            filesystem.put_file(staging_name, fs_path)
        except OSError as error:
            raise OutputLocationError(
                f"Cannot upload the output to {_where(path)}: {error}"
            ) from None
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)


def check_output_location(output_path: str, input_path: str) -> None:
    """Fail before reading any trip when the output cannot be written where it points."""
    if output_path == input_path:
        raise OutputLocationError(
            f"OUTPUT_FILE_PATTERN and INPUT_FILE_PATTERN name the same file {output_path}; "
            "the job would overwrite its input"
        )
    if is_local(output_path):
        return

    filesystem, fs_path = open_filesystem(output_path)
    bucket = fs_path.split("/", 1)[0]
    try:
        bucket_exists = filesystem.exists(bucket)
    except OSError as error:
        raise OutputLocationError(
            f"Cannot check the output bucket of {_where(output_path)}: {error}"
        ) from None
    if not bucket_exists:
        raise OutputLocationError(
            f"Output bucket {bucket!r} not found for {_where(output_path)}; create it or change "
            "OUTPUT_FILE_PATTERN"
        )


# --- The job ---


def chunk_rows_from_environ() -> int:
    """Read ``BATCH_CHUNK_ROWS``, the rows read and predicted at once (default 500,000)."""
    raw = os.environ.get("BATCH_CHUNK_ROWS", "").strip()
    if not raw:
        return DEFAULT_CHUNK_ROWS
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"BATCH_CHUNK_ROWS={raw!r} is not a positive whole number of rows")
    return int(raw)


def main(year: int, month: int, *, chunk_rows: int | None = None) -> BatchSummary:
    """Predict the durations of one month's trips and write them; return what was done.

    Raises BatchJobError, ConfigurationError or ModelLoadError, each naming the value at
    fault. A run that raises leaves no output file.
    """
    check_period(year, month)
    input_path = get_input_path(year, month)
    output_path = get_output_path(year, month)
    if chunk_rows is None:
        chunk_rows = chunk_rows_from_environ()
    elif chunk_rows < 1:
        raise ConfigurationError(f"chunk_rows must be a positive number of rows, got {chunk_rows}")
    logger.info("input file: %s", input_path)
    logger.info("output file: %s", output_path)

    with tempfile.TemporaryDirectory(prefix="batch-model-") as download_root:
        model_started = time.perf_counter()
        model = load_scoring_model(download_root=Path(download_root))
        logger.info(
            "model: %s (loaded in %.1f s)", model.location, time.perf_counter() - model_started
        )
        logger.info("model version: %s", model.version)
        logger.info("model features: %s", model.features.describe())

        input_metadata = inspect_input(input_path)
        check_columns(
            input_metadata.schema.to_arrow_schema().names,
            model.features.categorical_columns,
            model.features.numerical_columns,
            f"Input file {input_path}",
        )
        check_output_location(output_path, input_path)

        scoring_started = time.perf_counter()
        ride_id_prefix = f"{year:04d}/{month:02d}_"
        if input_metadata.num_rows <= chunk_rows:
            summary = _score_whole_file(input_path, output_path, model, ride_id_prefix)
        else:
            summary = _score_in_chunks(input_path, output_path, model, ride_id_prefix, chunk_rows)

    elapsed = time.perf_counter() - scoring_started
    logger.info("rows read: %d", summary.rows_read)
    logger.info("rows after the duration filter (1 to 60 minutes): %d", summary.rows_predicted)
    logger.info("predictions written: %d", summary.rows_predicted)
    logger.info("predicted duration mean: %.3f minutes", summary.prediction_mean)
    logger.info("predicted duration sum: %.1f minutes", summary.prediction_sum)
    logger.info(
        "read, predicted and written in %.1f s (%.0f input rows per second)",
        elapsed,
        summary.rows_read / elapsed if elapsed > 0 else math.nan,
    )
    return summary


def _score_whole_file(
    input_path: str, output_path: str, model: ScoringModel, ride_id_prefix: str
) -> BatchSummary:
    features = model.features
    df = read_data(input_path, features.categorical_columns, features.numerical_columns)
    prepared = prepare_data(df, features.categorical_columns)
    result = predict_frame(prepared, model, ride_id_prefix)
    save_data(output_path, result)
    return BatchSummary(
        input_path=input_path,
        output_path=output_path,
        rows_read=len(df),
        rows_predicted=len(result),
        prediction_sum=float(result["predicted_duration"].sum()),
        chunks=1,
    )


def _score_in_chunks(
    input_path: str, output_path: str, model: ScoringModel, ride_id_prefix: str, chunk_rows: int
) -> BatchSummary:
    features = model.features
    rows_read = rows_predicted = chunks = 0
    prediction_sum = 0.0
    logger.info("reading in chunks of up to %d rows", chunk_rows)

    with staged_output(output_path) as staging_path:
        writer: pq.ParquetWriter | None = None
        try:
            for chunk in read_chunks(
                input_path, features.categorical_columns, features.numerical_columns, chunk_rows
            ):
                prepared = prepare_data(chunk, features.categorical_columns)
                result = predict_frame(prepared, model, ride_id_prefix)
                table = pa.Table.from_pandas(result, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(staging_path, table.schema)
                writer.write_table(table)

                chunks += 1
                rows_read += len(chunk)
                rows_predicted += len(result)
                prediction_sum += float(result["predicted_duration"].sum())
                logger.debug(
                    "chunk %d: %d rows read, %d predicted", chunks, len(chunk), len(result)
                )
        finally:
            # This path runs only for files of more than chunk_rows rows, so a writer exists
            # unless reading the first chunk failed.
            if writer is not None:
                writer.close()

    logger.info("chunks: %d", chunks)
    return BatchSummary(
        input_path=input_path,
        output_path=output_path,
        rows_read=rows_read,
        rows_predicted=rows_predicted,
        prediction_sum=prediction_sum,
        chunks=chunks,
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Predict the ride duration of every trip of one TLC month.",
        epilog="Environment: INPUT_FILE_PATTERN, OUTPUT_FILE_PATTERN, S3_ENDPOINT_URL, "
        "MODEL_FILE or MODEL_LOCATION or RUN_ID (with MODEL_BUCKET, MLFLOW_EXPERIMENT_ID), "
        "BATCH_CHUNK_ROWS; the docstring at the top of batch.py describes each one.",
    )
    parser.add_argument("year", type=int, help="year of the trips, for example 2023")
    parser.add_argument("month", type=int, help="month of the trips, 1 to 12")
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=None,
        help="rows read and predicted at once; a file with more rows is processed in chunks "
        f"(default: BATCH_CHUNK_ROWS, or {DEFAULT_CHUNK_ROWS:,})",
    )
    return parser.parse_args(argv)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (1 when the job failed)."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        main(args.year, args.month, chunk_rows=args.chunk_rows)
    except (BatchJobError, ConfigurationError, ModelLoadError) as error:
        logger.error("%s", error)
        logger.error("no output written")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run())
