"""``make run``: stream a month of real NYC taxi rides through the service on a local stack.

1. Start moto on 127.0.0.1 (port 4566 by default, LocalStack's); create the streams, the
   model bucket and the two SQS queues (invalid records, discarded batches).
2. Train a model on one month and log it to S3 through MLflow.
3. Start the service: the local event source mapping invoking ``lambda_function`` with the
   model found by ``RUN_ID``, in its own process, as a deployed function would be.
4. Replay other months to ``ride_events``.
5. Wait until every ride has a prediction or a recorded failure.
6. Print a summary, and write it as JSON with a plot of predicted against actual durations.

With ``--inject-faults`` (and ``--server-error-rate``, ``--lost-response-rate``) the service
writes its predictions through ``local_stack.fault_injection.FaultInjectingProxy``. The
proxy fails that share of the output ``PutRecords`` entries and calls on purpose, and the
report counts the injected faults. ``make load_test`` replays 100,000 rides this way.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from local_stack.aws import LOCAL_CREDENTIALS, client, create_bucket, create_queue, create_streams
from local_stack.fault_injection import FaultInjectingProxy, FaultPlan
from local_stack.moto_server import DEFAULT_PORT, MotoServer, PortInUseError
from local_stack.outcomes import OutcomeCollector, Outcomes
from local_stack.replay import ReplayResult, Rides, read_months, replay_rides
from tlc_data import fetch_trip_file

INPUT_STREAM = "ride_events"
PREDICTIONS_STREAM = "ride_predictions"
MODEL_BUCKET = "stream-model-duration-models"
DEAD_LETTER_QUEUE = "ride_events_dead_letter"
ON_FAILURE_QUEUE = "ride_events_on_failure"
MAPPING_STATS_FILE = "event-source-mapping.json"
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
    replay_months: list[str] = field(default_factory=list)
    # The faults asked for and the faults the proxy injected; None when none were asked for.
    fault_plan: dict[str, Any] | None = None
    faults_injected: dict[str, int] | None = None
    # The event source mapping's counters: invocations, retries, bisections, discards.
    event_source_mapping: dict[str, int] | None = None


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
    parser.add_argument(
        "--replay-month",
        nargs="+",
        default=["2022-03"],
        help="YYYY-MM months to replay, in order; ride ids run on across them",
    )
    parser.add_argument(
        "--rides",
        "--limit",
        dest="limit",
        type=int,
        default=None,
        help="replay only the first N rides of the months (default: all of them)",
    )
    parser.add_argument("--batch-size", type=int, default=100, help="records per invocation")
    parser.add_argument("--shards", type=int, default=2, help="shards of the input stream")
    parser.add_argument(
        "--maximum-retry-attempts",
        type=int,
        default=10,
        help="retries of a failing batch before the mapping discards it (-1: no limit)",
    )
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
    faults = parser.add_argument_group(
        "injected faults", "faults a proxy in front of moto injects into the service's output"
    )
    faults.add_argument(
        "--inject-faults",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="fraction of output PutRecords entries failed with throttling (0 to 1)",
    )
    faults.add_argument(
        "--server-error-rate",
        type=float,
        default=0.0,
        help="fraction of output PutRecords calls failed with HTTP 500 (0 to 1)",
    )
    faults.add_argument(
        "--lost-response-rate",
        type=float,
        default=0.0,
        help="fraction of output PutRecords calls whose records are stored but whose "
        "response is lost (0 to 1)",
    )
    faults.add_argument("--fault-seed", type=int, default=0, help="seed of the injected faults")
    return parser.parse_args(argv)


def fault_plan(args: argparse.Namespace) -> FaultPlan | None:
    """Return the faults the arguments ask for, or None when they ask for none."""
    plan = FaultPlan(
        entry_failure_rate=args.inject_faults,
        server_error_rate=args.server_error_rate,
        lost_response_rate=args.lost_response_rate,
        seed=args.fault_seed,
    )
    if plan.entry_failure_rate or plan.server_error_rate or plan.lost_response_rate:
        return plan
    return None


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
    replay_files = [fetch_trip_file(args.color, *_year_month(month)) for month in args.replay_month]
    plan = fault_plan(args)
    proxy: FaultInjectingProxy | None = None

    with contextlib.ExitStack() as stack:
        moto = stack.enter_context(MotoServer(args.port, log_path=args.report_dir / "moto.log"))
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

        output_endpoint = endpoint
        if plan is not None:
            proxy = stack.enter_context(FaultInjectingProxy(endpoint, plan))
            output_endpoint = proxy.endpoint_url
            print(f"Injecting faults into the output through {output_endpoint}: {plan}")

        service_env = {
            **os.environ,
            **LOCAL_CREDENTIALS,
            "RUN_ID": training.run_id,
            "MODEL_BUCKET": MODEL_BUCKET,
            "MLFLOW_EXPERIMENT_ID": training.experiment_id,
            "PREDICTIONS_STREAM_NAME": PREDICTIONS_STREAM,
            "KINESIS_ENDPOINT_URL": output_endpoint,
            "AWS_ENDPOINT_URL": endpoint,
            "DEAD_LETTER_QUEUE_URL": dead_letter_url,
            "POWERTOOLS_LOG_LEVEL": os.getenv("POWERTOOLS_LOG_LEVEL", "INFO"),
        }
        service = start_service(args, endpoint, on_failure_url, service_env)
        try:
            rides = read_months(replay_files, limit=args.limit)
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
    report.replay_months = list(args.replay_month)
    if plan is not None and proxy is not None:
        report.fault_plan = asdict(plan)
        report.faults_injected = proxy.counters.as_dict()
    report.event_source_mapping = _read_mapping_stats(args.report_dir)
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
        "--maximum-retry-attempts",
        str(args.maximum_retry_attempts),
        "--on-failure-queue-url",
        on_failure_url,
        "--stats-file",
        str(args.report_dir / MAPPING_STATS_FILE),
    ]
    # A file left by an earlier run must not pass for this run's counters.
    (args.report_dir / MAPPING_STATS_FILE).unlink(missing_ok=True)
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
    if report.faults_injected is not None:
        faults = report.faults_injected
        lines.append(
            (
                "Faults injected",
                f"{faults['entries_failed']:,} of {faults['entries_received']:,} output entries "
                f"throttled, {faults['server_errors']:,} HTTP 500s, "
                f"{faults['lost_responses']:,} lost responses "
                f"({faults['entries_stored_unacknowledged']:,} entries stored unacknowledged)",
            )
        )
    if report.event_source_mapping is not None:
        mapping = report.event_source_mapping
        lines.append(
            (
                "Event source mapping",
                f"{mapping['invocations']:,} invocations, {mapping['partial_failures']:,} "
                f"partial failures, {mapping['function_errors']:,} function errors, "
                f"{mapping['records_redelivered']:,} records delivered again",
            )
        )
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


def _read_mapping_stats(report_dir: Path) -> dict[str, int] | None:
    """Read the counters the mapping process wrote when it stopped, if it wrote them."""
    path = report_dir / MAPPING_STATS_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _percentile(values: np.ndarray, q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if len(values) else float("nan")


def _year_month(text: str) -> tuple[int, int]:
    year, month = text.split("-")
    return int(year), int(month)


if __name__ == "__main__":
    sys.exit(main())
