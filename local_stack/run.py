"""``make run``: stream a month of real NYC taxi rides through the service on a local stack.

1. Start moto on 127.0.0.1 (port 4566 by default, LocalStack's); create the streams, the
   model bucket and the two SQS queues (invalid records, discarded batches).
2. Train a model on one month and log it to S3 through MLflow.
3. Start the service: the local event source mapping invoking ``lambda_function`` with the
   model found by ``RUN_ID``, in its own process, as a deployed function would be.
4. Replay another month to ``ride_events``.
5. Wait until every ride has a prediction or a recorded failure.
6. Print a summary, and write it as JSON with a plot of predicted against actual durations.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from local_stack.aws import LOCAL_CREDENTIALS, client, create_bucket, create_queue, create_streams
from local_stack.moto_server import DEFAULT_PORT, MotoServer, PortInUseError
from local_stack.outcomes import OutcomeCollector, Outcomes
from local_stack.replay import ReplayResult, Rides, read_rides, replay_rides
from tlc_data import fetch_trip_file

INPUT_STREAM = "ride_events"
PREDICTIONS_STREAM = "ride_predictions"
MODEL_BUCKET = "stream-model-duration-models"
DEAD_LETTER_QUEUE = "ride_events_dead_letter"
ON_FAILURE_QUEUE = "ride_events_on_failure"
# Durations, in minutes, that the quality figures are computed on, as in training.
QUALITY_RANGE = (1.0, 60.0)


@dataclass
class RunReport:
    """The figures ``make run`` prints and writes to ``run-report.json``."""

    rides_sent: int
    predictions_received: int
    duplicate_predictions: int
    records_dead_lettered: int
    records_discarded: int
    records_failed: int
    rides_lost: int
    model_version: str
    training_rmse: float
    replay_seconds: float
    total_seconds: float
    throughput_rides_per_second: float
    latency_p50_ms: float
    latency_p99_ms: float
    rides_scored: int
    rmse_minutes: float
    mae_minutes: float
    lost_ride_ids_sample: list[int]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.getenv("MOTO_PORT", str(DEFAULT_PORT))),
        help="port of the local AWS endpoint on 127.0.0.1 (env MOTO_PORT, default 4566)",
    )
    parser.add_argument("--color", default="green", choices=["green", "yellow"])
    parser.add_argument("--train-month", default="2022-01", help="YYYY-MM to train on")
    parser.add_argument("--val-month", default="2022-02", help="YYYY-MM to validate on")
    parser.add_argument("--replay-month", default="2022-03", help="YYYY-MM to replay")
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N rides")
    parser.add_argument("--batch-size", type=int, default=100, help="records per invocation")
    parser.add_argument("--shards", type=int, default=2, help="shards of the input stream")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=120.0,
        help="seconds without a new outcome before the remaining rides count as lost",
    )
    parser.add_argument("--report-dir", type=Path, default=Path("reports"))
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    parser.add_argument(
        "--retrain", action="store_true", help="train a new model even if one can be reused"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    try:
        report = run(args)
    except PortInUseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted; everything this run started has been stopped.", file=sys.stderr)
        return 130

    print_summary(report)
    return 0 if report.rides_lost == 0 else 1


def run(args: argparse.Namespace) -> RunReport:
    """Run the whole job and return its report; every process started is stopped on exit."""
    started = time.time()
    replay_year, replay_month = _year_month(args.replay_month)
    replay_file = fetch_trip_file(args.color, replay_year, replay_month)

    with MotoServer(args.port, log_path=args.report_dir / "moto.log") as moto:
        endpoint = moto.endpoint_url
        print(f"Local AWS endpoint: {endpoint} (moto)")
        os.environ.update(LOCAL_CREDENTIALS)
        kinesis, sqs = client("kinesis", endpoint), client("sqs", endpoint)

        create_streams(kinesis, [INPUT_STREAM], shard_count=args.shards)
        create_streams(kinesis, [PREDICTIONS_STREAM], shard_count=args.shards)
        create_bucket(client("s3", endpoint), MODEL_BUCKET)
        dead_letter_url, _ = create_queue(sqs, DEAD_LETTER_QUEUE)
        on_failure_url, _ = create_queue(sqs, ON_FAILURE_QUEUE)

        training = train_model(args, endpoint)
        print(
            f"Model: run {training.run_id} (experiment {training.experiment_id}), "
            f"validation RMSE {training.rmse:.2f} min"
        )
        # The service loads the model from the local S3 through these variables too.
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = endpoint

        service_env = {
            **os.environ,
            **LOCAL_CREDENTIALS,
            "RUN_ID": training.run_id,
            "MODEL_BUCKET": MODEL_BUCKET,
            "MLFLOW_EXPERIMENT_ID": training.experiment_id,
            "PREDICTIONS_STREAM_NAME": PREDICTIONS_STREAM,
            "KINESIS_ENDPOINT_URL": endpoint,
            "AWS_ENDPOINT_URL": endpoint,
            "DEAD_LETTER_QUEUE_URL": dead_letter_url,
            "POWERTOOLS_LOG_LEVEL": os.getenv("POWERTOOLS_LOG_LEVEL", "INFO"),
        }
        service = start_service(args, endpoint, on_failure_url, service_env)
        try:
            rides = read_rides(replay_file, limit=args.limit)
            with tqdm(total=len(rides), desc="Replaying rides", unit="ride") as progress:
                replay = replay_rides(kinesis, INPUT_STREAM, rides, on_progress=progress.update)

            collector = OutcomeCollector(
                kinesis, PREDICTIONS_STREAM, sqs, dead_letter_url, on_failure_url, replay.stored_at
            )
            wanted = {int(ride_id) for ride_id in rides.ride_ids}
            with tqdm(total=len(wanted), desc="Collecting outcomes", unit="ride") as progress:
                lost = collector.wait_for(wanted, args.idle_timeout, on_progress=progress.update)
        finally:
            stop_service(service)

    report = build_report(rides, replay, collector.outcomes, lost, training, started)
    write_report(report, args.report_dir)
    if not args.no_plot:
        plot_predictions(rides, collector.outcomes, args.report_dir / "predicted-vs-actual.png")
    return report


@dataclass(frozen=True)
class TrainedModel:
    """The MLflow run that contains the model ``make run`` serves."""

    run_id: str
    experiment_id: str
    rmse: float
    reused: bool = False


def train_model(args: argparse.Namespace, endpoint: str) -> TrainedModel:
    """Log a model to the local S3 through MLflow: trained now, or reused from an earlier run.

    moto keeps nothing between runs, so after training the experiment's S3 folder is copied
    to ``<report-dir>/model-store``, and the MLflow database stays in the report folder. A
    later run with the same months and the same ``train.py`` uploads that copy again and
    serves the same run id instead of training.
    """
    s3 = client("s3", endpoint)
    store_dir = args.report_dir / "model-store"
    manifest_path = store_dir / "manifest.json"
    fingerprint = _training_fingerprint(args)

    if not args.retrain and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("fingerprint") == fingerprint:
            _upload_folder(s3, store_dir / "s3", MODEL_BUCKET)
            print(f"Reusing the model of run {manifest['run_id']} (--retrain to train again)")
            return TrainedModel(
                manifest["run_id"], manifest["experiment_id"], manifest["rmse"], reused=True
            )

    # Imported here: MLflow takes seconds to import, and only training needs it.
    import train  # pylint: disable=import-outside-toplevel

    os.environ["MLFLOW_S3_ENDPOINT_URL"] = endpoint
    tracking_db = args.report_dir / "mlflow.db"
    tracking_db.unlink(missing_ok=True)
    print(f"Training on {args.color} {args.train_month}, validating on {args.val_month}...")
    result = train.train_and_log(
        train_month=args.train_month,
        val_month=args.val_month,
        color=args.color,
        tracking_uri=f"sqlite:///{tracking_db.resolve()}",
        artifact_root=f"s3://{MODEL_BUCKET}",
    )

    _download_folder(s3, MODEL_BUCKET, f"{result.experiment_id}/", store_dir / "s3")
    manifest = {
        "fingerprint": fingerprint,
        "run_id": result.run_id,
        "experiment_id": result.experiment_id,
        "rmse": result.rmse,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return TrainedModel(result.run_id, result.experiment_id, result.rmse)


def _training_fingerprint(args: argparse.Namespace) -> str:
    recipe = hashlib.sha256(Path(__file__).resolve().parents[1].joinpath("train.py").read_bytes())
    return f"{args.color}:{args.train_month}:{args.val_month}:{recipe.hexdigest()[:16]}"


def _download_folder(s3_client: Any, bucket: str, prefix: str, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            destination = target / item["Key"]
            destination.parent.mkdir(parents=True, exist_ok=True)
            s3_client.download_file(bucket, item["Key"], str(destination))


def _upload_folder(s3_client: Any, source: Path, bucket: str) -> None:
    for path in sorted(source.rglob("*")):
        if path.is_file():
            s3_client.upload_file(str(path), bucket, path.relative_to(source).as_posix())


def start_service(
    args: argparse.Namespace, endpoint: str, on_failure_url: str, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start the event source mapping and the handler in a process of their own."""
    log_path = args.report_dir / "service.log"
    print(f"Service log: {log_path}")
    command = [
        sys.executable,
        "-m",
        "local_stack.event_source_mapping",
        "--endpoint-url",
        endpoint,
        "--stream-name",
        INPUT_STREAM,
        "--batch-size",
        str(args.batch_size),
        "--on-failure-queue-url",
        on_failure_url,
        "--stats-file",
        str(args.report_dir / "event-source-mapping.json"),
    ]
    with log_path.open("wb") as log_file:
        return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)


def stop_service(service: subprocess.Popen[bytes]) -> None:
    if service.poll() is not None:
        return
    service.terminate()
    try:
        service.wait(timeout=10)
    except subprocess.TimeoutExpired:
        service.kill()
        service.wait(timeout=5)


def build_report(
    rides: Rides,
    replay: ReplayResult,
    outcomes: Outcomes,
    lost: set[int],
    training: TrainedModel,
    started: float,
) -> RunReport:
    """Compute the summary figures from what was sent and what came back."""
    predicted_ids = np.fromiter(outcomes.predictions, dtype=np.int64)
    predicted = np.fromiter(outcomes.predictions.values(), dtype=np.float64)
    actual = rides.durations[predicted_ids]
    latencies_ms = (
        np.fromiter((outcomes.arrived_at[i] for i in predicted_ids), dtype=np.float64)
        - replay.sent_at[predicted_ids]
    ) * 1000

    in_range = (actual >= QUALITY_RANGE[0]) & (actual <= QUALITY_RANGE[1])
    errors = predicted[in_range] - actual[in_range]
    last_arrival = max(outcomes.arrived_at.values(), default=replay.finished)
    failed = len(set(outcomes.dead_lettered) | outcomes.discarded)
    model_version = outcomes.model_versions.most_common(1)[0][0] if outcomes.model_versions else ""

    return RunReport(
        rides_sent=len(rides),
        predictions_received=len(outcomes.predictions),
        duplicate_predictions=outcomes.duplicates,
        records_dead_lettered=len(outcomes.dead_lettered),
        records_discarded=len(outcomes.discarded),
        records_failed=failed,
        rides_lost=len(lost),
        model_version=model_version,
        training_rmse=round(float(training.rmse), 3),
        replay_seconds=round(replay.finished - replay.started, 2),
        total_seconds=round(time.time() - started, 2),
        throughput_rides_per_second=round(len(rides) / max(last_arrival - replay.started, 1e-9), 1),
        latency_p50_ms=_percentile(latencies_ms, 50),
        latency_p99_ms=_percentile(latencies_ms, 99),
        rides_scored=int(in_range.sum()),
        rmse_minutes=round(float(np.sqrt(np.mean(errors**2))), 3) if len(errors) else float("nan"),
        mae_minutes=round(float(np.mean(np.abs(errors))), 3) if len(errors) else float("nan"),
        lost_ride_ids_sample=sorted(lost)[:20],
    )


def write_report(report: RunReport, report_dir: Path) -> Path:
    path = report_dir / "run-report.json"
    path.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    print(f"Report: {path}")
    return path


def print_summary(report: RunReport) -> None:
    lines = [
        ("Rides sent", f"{report.rides_sent:,}"),
        ("Predictions received", f"{report.predictions_received:,}"),
        ("Duplicate predictions", f"{report.duplicate_predictions:,}"),
        (
            "Records failed",
            f"{report.records_failed:,} "
            f"({report.records_dead_lettered:,} dead-lettered, "
            f"{report.records_discarded:,} discarded)",
        ),
        ("Rides lost", f"{report.rides_lost:,}"),
        ("Throughput", f"{report.throughput_rides_per_second:,.0f} rides/s"),
        ("Latency p50 / p99", f"{report.latency_p50_ms:,.0f} / {report.latency_p99_ms:,.0f} ms"),
        (
            "RMSE / MAE",
            f"{report.rmse_minutes:.2f} / {report.mae_minutes:.2f} min "
            f"on {report.rides_scored:,} rides of 1 to 60 minutes",
        ),
        ("Model version", report.model_version),
    ]
    width = max(len(label) for label, _ in lines)
    print()
    for label, value in lines:
        print(f"{label:<{width}}  {value}")


def plot_predictions(rides: Rides, outcomes: Outcomes, path: Path) -> None:
    """Plot predicted against actual durations of the rides of 1 to 60 minutes."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    ids = np.fromiter(outcomes.predictions, dtype=np.int64)
    predicted = np.fromiter(outcomes.predictions.values(), dtype=np.float64)
    actual = rides.durations[ids]
    keep = (actual >= QUALITY_RANGE[0]) & (actual <= QUALITY_RANGE[1])

    figure, axes = plt.subplots(figsize=(6, 6))
    axes.hexbin(actual[keep], predicted[keep], gridsize=60, bins="log", cmap="viridis")
    axes.plot(QUALITY_RANGE, QUALITY_RANGE, color="red", linewidth=1, label="perfect prediction")
    axes.set_xlabel("actual duration (minutes)")
    axes.set_ylabel("predicted duration (minutes)")
    axes.set_title(f"Predicted against actual duration, {keep.sum():,} rides")
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    print(f"Plot: {path}")


def _percentile(values: np.ndarray, q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if len(values) else float("nan")


def _year_month(text: str) -> tuple[int, int]:
    year, month = text.split("-")
    return int(year), int(month)


if __name__ == "__main__":
    sys.exit(main())
