"""Section 4: rides per second and end-to-end latency through the local stack.

The stack is the one ``make run`` builds, driven through ``local_stack.run``'s functions.
A moto server on 127.0.0.1 serves the two streams, the model bucket and the two queues.
The model is logged to S3 through MLflow, or reused from ``local_stack.run``'s model store
when ``train.py`` is unchanged. The service, the local event source mapping calling
``lambda_function``, runs in a process of its own.

Two runs, each on a fresh moto server:

- burst: the first 100,000 rides of February and March 2022 (green) are put on the input
  stream as fast as the producer can, the way ``make run`` replays a month. The latency of
  a ride is then mostly the time it waited in the stream behind the rides sent before it;
- paced: the first rides of March at a fixed rate, below what the stack can process, so
  that the latency is the time one ride takes through the pipeline.

A ride's latency runs from just before the ``PutRecords`` call that sent it to the arrival
timestamp of its prediction on the output stream, both on this machine's clock. The service
is started and ready (its model loaded) before the first ride is sent.

moto 5.2 scans a shard's records on every ``PutRecords`` and ``GetRecords`` call, so its
cost per call grows with the records already in the shard. With the stock server, the
burst run slows down more and more as the streams fill. The runs therefore
use ``bench.fast_moto``, the same moto server with those scans replaced by direct lookups
(``BENCH_E2E_STOCK_MOTO=1`` runs the stock server instead), and the section measures the
cost per call of both servers as a shard fills.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from typing import Any

import numpy as np

from bench.common import (
    BUILD_DIR,
    COLOR,
    REPLAY_MONTH,
    TRAIN_MONTH,
    VALIDATION_MONTH,
    median,
    section_main,
    trip_file,
)
from bench.fast_moto import FastMotoServer
from local_stack import run as stack
from local_stack.aws import LOCAL_CREDENTIALS, client, create_bucket, create_queue, create_streams
from local_stack.moto_server import MotoServer, free_port
from local_stack.outcomes import OutcomeCollector
from local_stack.replay import ReplayResult, Rides, read_rides, replay_rides
from prediction_delivery import KinesisRecordWriter, RetryPolicy

REPORT_DIR = BUILD_DIR / "end_to_end"
BURST_MONTHS = (VALIDATION_MONTH, REPLAY_MONTH)
# Rides of the burst run: the first ones of February, then March.
BURST_RIDES = 100_000
PACED_RATE_PER_SECOND = 300
PACED_SECONDS = 60
# Rides per PutRecords call of the paced producer: one call every 0.1 s at 300 rides/s.
PACED_CHUNK = 30
# The event source mapping's batch size: local_stack.run's default, as `make run` uses it.
BATCH_SIZE = 100
SHARDS = 2
IDLE_TIMEOUT_SECONDS = 120.0
SERVICE_READY_TIMEOUT_SECONDS = 180.0
# Records already in a shard at which moto's cost per call is measured.
MOTO_SCALING_POINTS = (0, 20_000, 40_000, 80_000)
MOTO_SCALING_CALLS = 5


def stack_arguments(port: int) -> argparse.Namespace:
    """Build the arguments local_stack.run's functions read, with its own parser's defaults."""
    return stack.parse_args(
        [
            "--port", str(port),
            "--color", COLOR,
            "--train-month", f"{TRAIN_MONTH[0]}-{TRAIN_MONTH[1]:02d}",
            "--val-month", f"{VALIDATION_MONTH[0]}-{VALIDATION_MONTH[1]:02d}",
            "--batch-size", str(BATCH_SIZE),
            "--shards", str(SHARDS),
            "--idle-timeout", str(IDLE_TIMEOUT_SECONDS),
            "--report-dir", str(REPORT_DIR),
        ]
    )  # fmt: skip


def combined_rides(months: tuple[tuple[int, int], ...], limit: int | None = None) -> Any:
    """Read several months as one Rides object, numbered 0..n-1 in file order."""
    parts = [read_rides(trip_file(*month)) for month in months]
    rides = Rides(
        ride_ids=np.arange(sum(len(part) for part in parts), dtype=np.int64),
        pickup_location_ids=np.concatenate([part.pickup_location_ids for part in parts]),
        dropoff_location_ids=np.concatenate([part.dropoff_location_ids for part in parts]),
        trip_distances=np.concatenate([part.trip_distances for part in parts]),
        durations=np.concatenate([part.durations for part in parts]),
    )
    if limit is None:
        return rides
    return Rides(
        ride_ids=rides.ride_ids[:limit],
        pickup_location_ids=rides.pickup_location_ids[:limit],
        dropoff_location_ids=rides.dropoff_location_ids[:limit],
        trip_distances=rides.trip_distances[:limit],
        durations=rides.durations[:limit],
    )


def paced_replay(kinesis_client: Any, stream_name: str, rides: Any, rate: float) -> Any:
    """Put the rides on the stream at ``rate`` rides per second, in small PutRecords calls."""
    writer = KinesisRecordWriter(kinesis_client, stream_name, RetryPolicy(max_attempts=8))
    result = ReplayResult(sent_at=np.full(len(rides), np.nan))
    result.started = time.time()
    interval = PACED_CHUNK / rate
    next_send = time.monotonic()
    for start in range(0, len(rides), PACED_CHUNK):
        delay = next_send - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        next_send += interval
        indexes = range(start, min(start + PACED_CHUNK, len(rides)))
        records = [(rides.event_payload(i), str(int(rides.ride_ids[i]))) for i in indexes]
        result.sent_at[start : start + len(records)] = time.time()
        report = writer.put_records(records)
        for position, location in report.stored_at.items():
            result.stored_at[int(rides.ride_ids[start + position])] = location
        result.rejected.extend(int(rides.ride_ids[start + p]) for p in report.failed_positions)
    result.finished = time.time()
    return result


def wait_until_ready(log_path: Any, service: Any) -> float:
    """Wait for the event source mapping's start-up line; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < SERVICE_READY_TIMEOUT_SECONDS:
        if service.poll() is not None:
            raise RuntimeError(f"the service exited with code {service.returncode}; see {log_path}")
        if log_path.is_file() and "Event source mapping started" in log_path.read_text(
            encoding="utf-8", errors="replace"
        ):
            return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"the service did not start within {SERVICE_READY_TIMEOUT_SECONDS:.0f} s")


def use_stock_moto() -> bool:
    return os.environ.get("BENCH_E2E_STOCK_MOTO", "").strip().lower() in ("1", "true", "yes")


def run_stack(name: str, rides: Any, rate: float | None) -> dict[str, Any]:
    """Run one replay through a fresh local stack and return local_stack.run's report."""
    args = stack_arguments(free_port())
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    started = time.time()
    server_class = MotoServer if use_stock_moto() else FastMotoServer
    with server_class(args.port, log_path=REPORT_DIR / f"moto-{name}.log") as moto:
        endpoint = moto.endpoint_url
        os.environ.update(LOCAL_CREDENTIALS)
        kinesis, sqs = client("kinesis", endpoint), client("sqs", endpoint)
        create_streams(kinesis, [stack.INPUT_STREAM], shard_count=args.shards)
        create_streams(kinesis, [stack.PREDICTIONS_STREAM], shard_count=args.shards)
        create_bucket(client("s3", endpoint), stack.MODEL_BUCKET)
        dead_letter_url, _ = create_queue(sqs, stack.DEAD_LETTER_QUEUE)
        on_failure_url, _ = create_queue(sqs, stack.ON_FAILURE_QUEUE)

        training = stack.train_model(args, endpoint)
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = endpoint
        service_env = {
            **os.environ,
            **LOCAL_CREDENTIALS,
            "RUN_ID": training.run_id,
            "MODEL_BUCKET": stack.MODEL_BUCKET,
            "MLFLOW_EXPERIMENT_ID": training.experiment_id,
            "PREDICTIONS_STREAM_NAME": stack.PREDICTIONS_STREAM,
            "KINESIS_ENDPOINT_URL": endpoint,
            "AWS_ENDPOINT_URL": endpoint,
            "DEAD_LETTER_QUEUE_URL": dead_letter_url,
            # INFO: the readiness check waits for the mapping's start-up line.
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        service = stack.start_service(args, endpoint, on_failure_url, service_env)
        try:
            ready_seconds = wait_until_ready(args.report_dir / "service.log", service)
            if rate is None:
                replay = replay_rides(kinesis, stack.INPUT_STREAM, rides)
            else:
                replay = paced_replay(kinesis, stack.INPUT_STREAM, rides, rate)
            collector = OutcomeCollector(
                kinesis, stack.PREDICTIONS_STREAM, sqs, dead_letter_url, on_failure_url,
                replay.stored_at,
            )  # fmt: skip
            wanted = {int(ride_id) for ride_id in rides.ride_ids}
            lost = collector.wait_for(wanted, args.idle_timeout)
        finally:
            stack.stop_service(service)

    report = asdict(stack.build_report(rides, replay, collector.outcomes, lost, training, started))
    report["service_start_seconds"] = round(ready_seconds, 1)
    report["send_rate_rides_per_second"] = round(
        len(rides) / max(replay.finished - replay.started, 1e-9), 1
    )
    report.pop("lost_ride_ids_sample", None)
    (REPORT_DIR / f"{name}-report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def moto_scaling(server_class: Any) -> list[dict[str, Any]]:
    """Time moto's PutRecords (500 records) and GetRecords as one shard fills up."""
    os.environ.update(LOCAL_CREDENTIALS)
    payload = json.dumps(
        {"ride": {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}, "ride_id": 1}
    ).encode()
    records = [{"Data": payload, "PartitionKey": str(index)} for index in range(500)]
    points = []
    with server_class(log_path=REPORT_DIR / "moto-scaling.log") as moto:
        kinesis = client("kinesis", moto.endpoint_url)
        create_streams(kinesis, ["scaling"], shard_count=1)
        shard_id = kinesis.list_shards(StreamName="scaling")["Shards"][0]["ShardId"]
        stored = 0
        for target in MOTO_SCALING_POINTS:
            while stored < target:
                kinesis.put_records(StreamName="scaling", Records=records)
                stored += len(records)
            put_seconds, get_seconds = [], []
            for _ in range(MOTO_SCALING_CALLS):
                started = time.perf_counter()
                response = kinesis.put_records(StreamName="scaling", Records=records)
                put_seconds.append(time.perf_counter() - started)
                stored += len(records)
                last = response["Records"][-1]["SequenceNumber"]
                iterator = kinesis.get_shard_iterator(
                    StreamName="scaling",
                    ShardId=shard_id,
                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                    StartingSequenceNumber=last,
                )["ShardIterator"]
                started = time.perf_counter()
                kinesis.get_records(ShardIterator=iterator, Limit=100)
                get_seconds.append(time.perf_counter() - started)
            points.append(
                {
                    "records_in_shard": target,
                    "put_records_500_ms": round(median(put_seconds) * 1000, 1),
                    "get_records_ms": round(median(get_seconds) * 1000, 1),
                }
            )
    return points


def measure() -> dict[str, Any]:

    burst_rides = combined_rides(BURST_MONTHS, limit=BURST_RIDES)
    paced_rides = combined_rides((REPLAY_MONTH,), limit=PACED_RATE_PER_SECOND * PACED_SECONDS)
    burst = run_stack("burst", burst_rides, rate=None)
    paced = run_stack("paced", paced_rides, rate=PACED_RATE_PER_SECOND)
    return {
        "how": (
            "local_stack.run's Python API (its argument parser, train_model, start_service, "
            "replay_rides, OutcomeCollector, build_report), because its command line can "
            "neither pace the rides nor run on bench.fast_moto"
        ),
        "batch_size": BATCH_SIZE,
        "shards": SHARDS,
        "burst_months": [f"{year}-{month:02d}" for year, month in BURST_MONTHS],
        "burst": burst,
        "paced_rate_rides_per_second": PACED_RATE_PER_SECOND,
        "paced_seconds": PACED_SECONDS,
        "paced": paced,
        "moto_server": "stock moto" if use_stock_moto() else "bench.fast_moto",
        "moto_scaling": {
            "stock": moto_scaling(MotoServer),
            "fast_moto": moto_scaling(FastMotoServer),
        },
    }


if __name__ == "__main__":
    sys.exit(section_main("end_to_end", measure))
