"""Train the ride-duration model on one TLC month, score it on the next, log it to MLflow.

Recipe: ``DictVectorizer`` on ``PU_DO`` and ``trip_distance``, then ``TruncatedSVD`` (100
components), then ``HistGradientBoostingRegressor``. The pipeline takes a list of feature
dicts as built by ``tlc_data.ride_features``, so
``pipeline.predict([{"PU_DO": "130_205", "trip_distance": 3.66}])`` works.

Why TruncatedSVD: ``HistGradientBoostingRegressor`` needs dense input, and the one-hot
``PU_DO`` block has about 7,000 columns for one green month. The one-hot columns are
orthogonal, so the leading SVD components approximately follow trip_distance and the most
frequent pickup-dropoff pairs, which gives the trees a small dense input. Every step is a
stock scikit-learn class, so loading the model needs scikit-learn and nothing from this
repository.

Measured on green 2022-01 (train) and 2022-02 (validation), durations of 1 to 60 minutes,
on a 2-core machine with little other load. "predict" is the median time of
``pipeline.predict`` on 1,000 feature dicts. Runs while other processes kept both cores
busy gave the same RMSE but fit and predict times three to seven times longer::

    recipe                                                   RMSE   MAE   fit    predict
    linear regression on the DictVectorizer output           6.90  4.57   0.2 s   1 ms
    random forest, 100 trees, max_depth 20, leaf 10          6.10  3.84  12 s    30 ms
    random forest, 50 trees, leaf 3, max_features 0.3        5.90  3.72  12 s    24 ms
    in-sample ridge on the one-hot pairs + distance, HGB     6.05  3.72   1 s    13 ms
    TruncatedSVD 20 + HGB (default settings)                 5.76  3.66   1 s     4 ms
    TruncatedSVD 50 + HGB (default settings)                 5.68  3.61   2 s     5 ms
    TruncatedSVD 200 + HGB (default settings)                5.60  3.56   6 s     8 ms
    TruncatedSVD 100 + HGB (300 iterations, 63 leaves)       5.58  3.54   3 s     6 ms
    out-of-fold pair target encoding + pair count + HGB      5.56  3.54   1 s     5 ms

The target-encoding variant is marginally better but needs a custom transformer class,
which the service would have to ship and import to unpickle the model, so the chosen recipe
is the TruncatedSVD 100 one. Reproduce the chosen row with::

    TLC_MIRROR=/path/to/tlc/files uv run --frozen python train.py \\
        --train-month 2022-01 --val-month 2022-02 --color green

Artifact layout: with ``--artifact-root s3://bucket`` and a database tracking URI
(``sqlite:///...``), the experiment is created at ``s3://bucket/<experiment_id>``, as an
``mlflow server --default-artifact-root s3://bucket`` would create it. Run artifacts then land
under ``s3://bucket/<experiment_id>/<run_id>/artifacts/`` and the MLflow 3 logged model under
``s3://bucket/<experiment_id>/models/<model_id>/artifacts/``.

Threads: HGB predicts on OpenMP threads. On the busy 2-core machine, 30 predict calls of
1,000 rows on the loaded model took 12 ms at the 90th percentile with one thread
(``threadpoolctl.threadpool_limits(1)``, or OMP_NUM_THREADS=1) and 171 ms with two, so a
service that shares its cores may want one thread.

Loading: use ``mlflow.sklearn.load_model`` and pass a list of feature dicts.
``mlflow.pyfunc.load_model`` hands the pipeline a pandas DataFrame, which DictVectorizer
rejects ("'str' object has no attribute 'items'", checked with MLflow 3.17).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.feature_extraction import DictVectorizer
from sklearn.metrics import mean_absolute_error, root_mean_squared_error
from sklearn.pipeline import Pipeline

import tlc_data

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT_NAME = "ride-duration"

# Name of the MLflow 3 logged model, and the run-artifact folder of the MLflow 2 layout copy.
MODEL_NAME = "model"

# Tracking URI schemes served by MLflow's SQLAlchemy store (a database without a server).
DATABASE_URI_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")

RANDOM_STATE = 1
SVD_COMPONENTS = 100
HGB_MAX_ITER = 300
HGB_LEARNING_RATE = 0.1
HGB_MAX_LEAF_NODES = 63

# Batch size of the prediction timing logged as the metric predict_1000_rows_ms.
TIMING_BATCH_ROWS = 1000

# Packages that mlflow.sklearn.load_model imports to unpickle this pipeline. Pinned from the
# training environment, because a model pickled by one scikit-learn version is not
# guaranteed to load in another. mlflow-skinny is the MLflow distribution the service ships.
MODEL_REQUIREMENTS = ("mlflow-skinny", "scikit-learn", "numpy", "scipy", "cloudpickle")

MODEL_SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "PU_DO"), ColSpec("double", "trip_distance")]),
    outputs=Schema([ColSpec("double")]),
)


@dataclass(frozen=True)
class TrainingResult:
    """Ids, model locations and validation metrics of one training run."""

    run_id: str
    experiment_id: str
    # MLflow 3 logged model URI, models:/<model_id>.
    model_uri: str
    # Validation metrics in minutes.
    rmse: float
    mae: float
    # Copy of the same model at <run artifact root>/model (the MLflow 2 layout).
    run_artifact_model_uri: str
    # Version created by --register-name, else None.
    model_version: str | None = None


def build_pipeline() -> Pipeline:
    """Return the unfitted pipeline: feature dicts in, durations in minutes out."""
    return Pipeline(
        [
            ("vectorizer", DictVectorizer()),
            ("svd", TruncatedSVD(n_components=SVD_COMPONENTS, random_state=RANDOM_STATE)),
            (
                "regressor",
                HistGradientBoostingRegressor(
                    max_iter=HGB_MAX_ITER,
                    learning_rate=HGB_LEARNING_RATE,
                    max_leaf_nodes=HGB_MAX_LEAF_NODES,
                    # scikit-learn turns this on by itself above 10,000 rows, which covers
                    # a full month; turning it on always also keeps small slices fast.
                    early_stopping=True,
                    random_state=RANDOM_STATE,
                ),
            ),
        ]
    )


def pipeline_params() -> dict[str, object]:
    """Return the hyperparameters logged with each run."""
    return {
        "model": "DictVectorizer+TruncatedSVD+HistGradientBoostingRegressor",
        "svd_components": SVD_COMPONENTS,
        "hgb_max_iter": HGB_MAX_ITER,
        "hgb_learning_rate": HGB_LEARNING_RATE,
        "hgb_max_leaf_nodes": HGB_MAX_LEAF_NODES,
        "random_state": RANDOM_STATE,
    }


def load_month(
    color: str,
    month: str,
    *,
    mirror: str | Path | None = None,
    data_dir: Path = Path("data"),
    max_rows: int | None = None,
) -> tuple[list[dict], np.ndarray]:
    """Return the feature dicts and durations of one month, optionally only its first rows."""
    year, month_number = tlc_data.parse_month(month)
    path = tlc_data.fetch_trip_file(color, year, month_number, mirror=mirror, data_dir=data_dir)
    trips = tlc_data.read_trips(path)
    if max_rows is not None:
        trips = trips.head(max_rows)
    return tlc_data.ride_features(trips), trips["duration"].to_numpy()


def measure_predict_ms(pipeline: Pipeline, features: list[dict], repeats: int = 5) -> float:
    """Return the median milliseconds of one predict call on the first 1,000 feature dicts."""
    batch = features[:TIMING_BATCH_ROWS]
    pipeline.predict(batch)

    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        pipeline.predict(batch)
        durations.append(time.perf_counter() - start)
    return statistics.median(durations) * 1000


def model_pip_requirements() -> list[str]:
    """Return the installed versions of MODEL_REQUIREMENTS as ``name==version`` pins."""
    return [f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS]


def is_database_uri(tracking_uri: str) -> bool:
    """Tell whether the tracking URI names a database that MLflow uses without a server."""
    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0]
    return scheme in DATABASE_URI_SCHEMES


def ensure_experiment(tracking_uri: str, name: str, artifact_root: str | None) -> str:
    """Return the id of the named experiment, creating it under artifact_root when missing.

    A new experiment gets the artifact location ``<artifact_root>/<experiment_id>``, the
    location that ``mlflow server --default-artifact-root <artifact_root>`` gives it. The
    client API cannot produce that for a database store without a server, because the id is
    assigned during creation, so this creates the experiment through MLflow's SQLAlchemy store
    built with that default artifact root, as the server does.

    Raises:
        ValueError: the experiment exists, or a tracking server created it, at a location
            other than ``<artifact_root>/<experiment_id>``.
    """
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)

    if experiment is None:
        if artifact_root is not None and is_database_uri(tracking_uri):
            # NOTE: SqlAlchemyStore is MLflow's store class, not a documented public API
            # (checked with MLflow 3.17). Its create_experiment derives the location from the
            # new id, which the public client cannot do. Imported here because it is slow to
            # import and only database tracking URIs need it.
            from mlflow.store.tracking.sqlalchemy_store import (  # pylint: disable=import-outside-toplevel
                SqlAlchemyStore,
            )

            store = SqlAlchemyStore(tracking_uri, artifact_root)
            experiment_id = store.create_experiment(name)
        else:
            # Without artifact_root, or with a tracking server, the store's own default applies.
            experiment_id = client.create_experiment(name)
        experiment = client.get_experiment(experiment_id)

    if artifact_root is not None:
        # The same normalization the store applies: local paths become absolute.
        expected_location = append_to_uri_path(
            resolve_uri_if_local(artifact_root), experiment.experiment_id
        )
        if experiment.artifact_location != expected_location:
            raise ValueError(
                f"experiment {name!r} stores artifacts at {experiment.artifact_location}, "
                f"not at {expected_location}: choose another --experiment-name, or start the "
                f"tracking server with --default-artifact-root {artifact_root}"
            )
    return experiment.experiment_id


def _log_model_both_layouts(pipeline: Pipeline, features_sample: list[dict]) -> ModelInfo:
    """Log the pipeline as an MLflow 3 logged model and copy it to the run's ``model/`` folder.

    The logged model (``<experiment>/models/<model_id>/artifacts/``) is what MLflow 3 APIs
    resolve ``models:/<model_id>`` and registry versions to. Deployed services locate the
    model from MODEL_BUCKET, MLFLOW_EXPERIMENT_ID and RUN_ID at
    ``<experiment>/<run_id>/artifacts/model``, the path MLflow 2 used, so the same files
    are also logged there as run artifacts.
    """
    model_info = mlflow.sklearn.log_model(
        pipeline,
        name=MODEL_NAME,
        # cloudpickle comes with mlflow-skinny, but the default skops format needs skops.
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        pip_requirements=model_pip_requirements(),
        signature=MODEL_SIGNATURE,
        # NOTE: no input_example, because MLflow validates an example through pyfunc, which
        # passes a pandas DataFrame that DictVectorizer rejects. The metadata shows the input.
        metadata={"feature_example": features_sample[:1]},
    )

    with tempfile.TemporaryDirectory() as tmp:
        local_model_dir = mlflow.artifacts.download_artifacts(model_info.model_uri, dst_path=tmp)
        mlflow.log_artifacts(local_model_dir, artifact_path=MODEL_NAME)
    return model_info


def train_and_log(
    train_month: str = "2022-01",
    val_month: str = "2022-02",
    color: str = "green",
    *,
    tracking_uri: str | None = None,
    experiment_name: str = DEFAULT_EXPERIMENT_NAME,
    artifact_root: str | None = None,
    register_name: str | None = None,
    alias: str | None = None,
    mirror: str | Path | None = None,
    data_dir: Path = Path("data"),
    max_rows: int | None = None,
) -> TrainingResult:
    """Fit the pipeline on train_month, score it on val_month, and log both to MLflow.

    tracking_uri defaults to MLFLOW_TRACKING_URI, then to ``sqlite:///mlflow.db``. With
    artifact_root (for example ``s3://bucket``; MLFLOW_S3_ENDPOINT_URL selects a local S3
    endpoint), a new experiment stores its artifacts under ``<artifact_root>/<experiment_id>``.
    max_rows keeps only the first rows of each month, for quick runs. With register_name the
    logged model becomes a new version of that registered model, and alias points at it.

    Side effect: MLflow's global tracking URI stays set to tracking_uri (mlflow.set_tracking_uri
    also exports it as MLFLOW_TRACKING_URI), so models:/ URIs resolve against it afterwards.
    """
    if alias is not None and register_name is None:
        raise ValueError("alias needs register_name: an alias points at a registered model version")
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    # Before training, so that an experiment at the wrong artifact location fails fast.
    experiment_id = ensure_experiment(tracking_uri, experiment_name, artifact_root)

    train_features, train_target = load_month(
        color, train_month, mirror=mirror, data_dir=data_dir, max_rows=max_rows
    )
    val_features, val_target = load_month(
        color, val_month, mirror=mirror, data_dir=data_dir, max_rows=max_rows
    )

    pipeline = build_pipeline()
    start = time.perf_counter()
    pipeline.fit(train_features, train_target)
    fit_seconds = time.perf_counter() - start

    predictions = pipeline.predict(val_features)
    rmse = float(root_mean_squared_error(val_target, predictions))
    mae = float(mean_absolute_error(val_target, predictions))
    predict_ms = measure_predict_ms(pipeline, val_features)
    logger.info(
        "validation rmse %.3f, mae %.3f, fit %.1f s, predict 1,000 rows %.1f ms",
        rmse,
        mae,
        fit_seconds,
        predict_ms,
    )

    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(
            {
                **pipeline_params(),
                "color": color,
                "train_month": train_month,
                "val_month": val_month,
                "train_rows": len(train_features),
                "val_rows": len(val_features),
            }
        )
        mlflow.log_metrics(
            {
                "rmse": rmse,
                "mae": mae,
                "fit_seconds": fit_seconds,
                "predict_1000_rows_ms": predict_ms,
            }
        )
        model_info = _log_model_both_layouts(pipeline, val_features)
        run_artifact_model_uri = f"{run.info.artifact_uri}/{MODEL_NAME}"

        model_version = None
        if register_name is not None:
            registered = mlflow.register_model(model_info.model_uri, register_name)
            model_version = str(registered.version)
            if alias is not None:
                MlflowClient(tracking_uri).set_registered_model_alias(
                    register_name, alias, model_version
                )

    return TrainingResult(
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        model_uri=model_info.model_uri,
        rmse=rmse,
        mae=mae,
        run_artifact_model_uri=run_artifact_model_uri,
        model_version=model_version,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-month", required=True, help="training month, YYYY-MM")
    parser.add_argument("--val-month", required=True, help="validation month, YYYY-MM")
    parser.add_argument(
        "--color", choices=tlc_data.COLORS, default="green", help="taxi color (default: green)"
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help=f"MLflow tracking URI (default: MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI})",
    )
    parser.add_argument(
        "--experiment-name", default=DEFAULT_EXPERIMENT_NAME, help="MLflow experiment name"
    )
    parser.add_argument(
        "--artifact-root",
        default=None,
        help="artifact root of a new experiment, e.g. s3://bucket (default: the store's own)",
    )
    parser.add_argument("--register-name", default=None, help="register the model under this name")
    parser.add_argument(
        "--alias",
        default=None,
        help="alias to set on the registered version (needs --register-name)",
    )
    parser.add_argument(
        "--output-json", type=Path, default=None, help="also write the result as JSON to this file"
    )
    parser.add_argument(
        "--max-rows", type=int, default=None, help="use only the first N trips of each month"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data"),
        help="download folder when TLC_MIRROR is unset",
    )
    args = parser.parse_args(argv)

    if args.alias is not None and args.register_name is None:
        parser.error("--alias needs --register-name")
    for option in ("train_month", "val_month"):
        try:
            tlc_data.parse_month(getattr(args, option))
        except ValueError as exc:
            parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The per-file progress bar of the model copy adds nothing to a command-line log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = parse_args(argv)

    result = train_and_log(
        args.train_month,
        args.val_month,
        args.color,
        tracking_uri=args.tracking_uri,
        experiment_name=args.experiment_name,
        artifact_root=args.artifact_root,
        register_name=args.register_name,
        alias=args.alias,
        data_dir=args.data_dir,
        max_rows=args.max_rows,
    )

    print(f"run_id: {result.run_id}")
    print(f"experiment_id: {result.experiment_id}")
    print(f"model_uri: {result.model_uri}")
    print(f"run_artifact_model_uri: {result.run_artifact_model_uri}")
    print(f"rmse: {result.rmse:.3f}")
    print(f"mae: {result.mae:.3f}")
    if result.model_version is not None:
        print(f"model_version: {args.register_name} {result.model_version}")

    if args.output_json is not None:
        args.output_json.parent.mkdir(parents=True, exist_ok=True)
        args.output_json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
