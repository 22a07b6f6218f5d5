"""Section 1: records per second of the service's handler, the per-record baseline and the floor.

All variants run in this one process, on the same model and the same real rides (green
March 2022). They write to a moto Kinesis server on 127.0.0.1, and run again with output
disabled (the service's ``TEST_RUN`` mode) to isolate the handler's own cost. Each round
runs every variant and batch size once, in an order rotated from round to round, so that a
burst of load from other processes hits every variant alike. The figure reported for each
cell is the median over the rounds.

moto 5.2's ``Shard.put_record`` copies the shard's list of sequence numbers for every record
it stores, so a ``PutRecords`` call gets slower as the stream fills. The output stream is
therefore deleted and created again before each timed call with output, which keeps every
variant's cost independent of what ran before it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import boto3
from pyinstrument import Profiler

import model
from bench.baselines import reference_handler, vectorized_floor
from bench.common import (
    BUILD_DIR,
    OUTPUT_STREAM,
    PROFILES_DIR,
    REPLAY_MONTH,
    kinesis_event,
    median,
    section_main,
    time_call,
    trip_file,
)
from bench.trained_model import load_trained_model
from local_stack.aws import LOCAL_CREDENTIALS, client, create_streams
from local_stack.moto_server import MotoServer
from local_stack.replay import read_rides
from model_loading import load_model_dir

BATCH_SIZES = (1, 100, 1_000, 10_000)
# Rounds per cell; BENCH_REPEATS overrides it.
DEFAULT_REPEATS = 15
# A cell stops repeating once its runs add up to this many seconds, so that the per-record
# baseline at 10,000 records (close to a minute per run on moto) runs once or twice.
CELL_BUDGET_SECONDS = 20.0
OUTPUT_SHARDS = 2
PROFILE_BATCH_SIZE = 1_000
PROFILE_RUNS = 5

Handler = Callable[[dict[str, Any]], Any]


def build_handlers(endpoint: str, loaded: Any) -> dict[tuple[str, str], Handler]:
    """Create the six handlers: three variants, each with Kinesis output and without."""
    service_with_output = model.ModelService(
        model=loaded.model,
        model_version=loaded.version,
        callbacks=[
            model.KinesisCallback(model.create_kinesis_client(endpoint), OUTPUT_STREAM),
        ],
    )
    service_without_output = model.ModelService(model=loaded.model, model_version=loaded.version)
    # The course's clients use boto3's default configuration.
    reference_client = boto3.client("kinesis", endpoint_url=endpoint)
    floor_client = boto3.client("kinesis", endpoint_url=endpoint)

    def baseline(handler: Any, client: Any) -> Handler:
        return partial(
            handler,
            model=loaded.model,
            model_version=loaded.version,
            kinesis_client=client,
            stream_name=OUTPUT_STREAM,
        )

    return {
        ("service", "kinesis"): service_with_output.lambda_handler,
        ("reference", "kinesis"): baseline(reference_handler, reference_client),
        ("floor", "kinesis"): baseline(vectorized_floor, floor_client),
        ("service", "none"): service_without_output.lambda_handler,
        ("reference", "none"): baseline(reference_handler, None),
        ("floor", "none"): baseline(vectorized_floor, None),
    }


class EventSource:
    """Lambda Kinesis events of real rides; each round takes the next slice of the month."""

    def __init__(self) -> None:
        rides = read_rides(trip_file(*REPLAY_MONTH))
        self.payloads = [rides.event_payload(index) for index in range(len(rides))]
        self.keys = [str(int(ride_id)) for ride_id in rides.ride_ids]

    def event(self, batch_size: int, round_index: int) -> dict[str, Any]:
        start = (round_index * batch_size) % (len(self.payloads) - batch_size)
        stop = start + batch_size
        return kinesis_event(self.payloads[start:stop], self.keys[start:stop])


def check_agreement(
    handlers: dict[tuple[str, str], Handler], events: EventSource
) -> dict[str, float]:
    """Compare the three variants' predictions on one batch, and measure the record sizes."""
    event = events.event(PROFILE_BATCH_SIZE, 0)
    responses = {
        variant: handlers[(variant, "none")](event) for variant in ("service", "reference", "floor")
    }
    durations = {
        variant: [item["prediction"]["ride_duration"] for item in response["predictions"]]
        for variant, response in responses.items()
    }
    largest_difference = max(
        abs(service - other)
        for variant in ("reference", "floor")
        for service, other in zip(durations["service"], durations[variant], strict=True)
    )
    input_sizes = [len(payload) for payload in events.payloads]
    output_sizes = [
        len(json.dumps(prediction_event).encode("utf-8"))
        for prediction_event in responses["service"]["predictions"]
    ]
    return {
        "max_prediction_difference_minutes": largest_difference,
        "mean_input_record_bytes": round(sum(input_sizes) / len(input_sizes), 1),
        "max_input_record_bytes": max(input_sizes),
        "mean_output_record_bytes": round(sum(output_sizes) / len(output_sizes), 1),
        "max_output_record_bytes": max(output_sizes),
    }


def reset_stream(kinesis_client: Any) -> None:
    """Delete the output stream and create it again, empty (see the module docstring)."""
    with contextlib.suppress(kinesis_client.exceptions.ResourceNotFoundException):
        kinesis_client.delete_stream(StreamName=OUTPUT_STREAM, EnforceConsumerDeletion=True)
    kinesis_client.create_stream(StreamName=OUTPUT_STREAM, ShardCount=OUTPUT_SHARDS)
    kinesis_client.get_waiter("stream_exists").wait(
        StreamName=OUTPUT_STREAM, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50}
    )


def measure_cells(
    handlers: dict[tuple[str, str], Handler],
    events: EventSource,
    repeats: int,
    kinesis_client: Any,
) -> dict[tuple[str, str, int], list[float]]:
    """Time every (variant, output, batch size) cell over interleaved rounds."""
    timings: dict[tuple[str, str, int], list[float]] = {}
    keys = list(handlers)
    for round_index in range(repeats):
        # Rotate the order so that no variant always runs first or last in a round.
        order = keys[round_index % len(keys) :] + keys[: round_index % len(keys)]
        for batch_size in BATCH_SIZES:
            event = events.event(batch_size, round_index)
            for variant, output in order:
                cell = timings.setdefault((variant, output, batch_size), [])
                if cell and sum(cell) >= CELL_BUDGET_SECONDS:
                    continue
                if output == "kinesis":
                    reset_stream(kinesis_client)
                cell.append(time_call(partial(handlers[(variant, output)], event)))
        print(f"round {round_index + 1}/{repeats} done", flush=True)
    return timings


def summarize(timings: dict[tuple[str, str, int], list[float]]) -> list[dict[str, Any]]:
    rows = []
    for (variant, output, batch_size), seconds in sorted(timings.items()):
        middle = median(seconds)
        rows.append(
            {
                "variant": variant,
                "output": output,
                "batch_size": batch_size,
                "runs": len(seconds),
                "median_ms": round(middle * 1000, 3),
                "min_ms": round(min(seconds) * 1000, 3),
                "max_ms": round(max(seconds) * 1000, 3),
                "records_per_second": round(batch_size / middle, 1),
                "ms_per_record": round(middle * 1000 / batch_size, 4),
            }
        )
    return rows


def ratios(
    rows: list[dict[str, Any]], timings: dict[tuple[str, str, int], list[float]]
) -> list[dict[str, Any]]:
    """Compare the service with the baseline and the floor, per output mode and batch size.

    Besides the ratio of the medians, the service's time over the floor's is taken round by
    round, on the same event, and the median of those paired ratios is reported. A burst of
    load that slows one round then cancels out.
    """
    by_cell = {(row["variant"], row["output"], row["batch_size"]): row for row in rows}
    result = []
    for output in ("kinesis", "none"):
        for batch_size in BATCH_SIZES:
            service = by_cell[("service", output, batch_size)]["median_ms"]
            reference = by_cell[("reference", output, batch_size)]["median_ms"]
            floor = by_cell[("floor", output, batch_size)]["median_ms"]
            result.append(
                {
                    "output": output,
                    "batch_size": batch_size,
                    "service_speedup_over_reference": round(reference / service, 2),
                    "service_time_over_floor": round(service / floor, 3),
                    "service_time_over_floor_paired": round(
                        median(
                            [
                                service_seconds / floor_seconds
                                for service_seconds, floor_seconds in zip(
                                    timings[("service", output, batch_size)],
                                    timings[("floor", output, batch_size)],
                                    strict=False,
                                )
                            ]
                        ),
                        3,
                    ),
                }
            )
    return result


def profile_service(
    handlers: dict[tuple[str, str], Handler], events: EventSource
) -> dict[str, str]:
    """Profile the service at 1,000 records with pyinstrument; return the saved text files."""
    PROFILES_DIR.mkdir(parents=True, exist_ok=True)
    saved = {}
    for variant, output in (("service", "kinesis"), ("service", "none"), ("floor", "none")):
        profiler = Profiler(interval=0.0005)
        handler = handlers[(variant, output)]
        profiler.start()
        for round_index in range(PROFILE_RUNS):
            handler(events.event(PROFILE_BATCH_SIZE, round_index))
        profiler.stop()
        path = PROFILES_DIR / f"{variant}_1000_{output}_output.txt"
        path.write_text(
            profiler.output_text(unicode=False, color=False, show_all=False), encoding="utf-8"
        )
        saved[f"{variant}_{output}"] = str(path.relative_to(PROFILES_DIR.parent.parent))
    return saved


def measure() -> dict[str, Any]:
    os.environ.update(LOCAL_CREDENTIALS)

    repeats = int(os.environ.get("BENCH_REPEATS", DEFAULT_REPEATS))
    trained = load_trained_model()
    loaded = load_model_dir(trained.model_dir)
    # The service limits the model to one OpenMP thread at start-up; every variant gets it.
    model.limit_model_threads()
    events = EventSource()

    log_path = BUILD_DIR / "logs" / "moto-handler-throughput.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with MotoServer(log_path=log_path) as moto:
        kinesis_client = client("kinesis", moto.endpoint_url)
        create_streams(kinesis_client, [OUTPUT_STREAM], OUTPUT_SHARDS)
        handlers = build_handlers(moto.endpoint_url, loaded)
        for handler in handlers.values():
            handler(events.event(100, 0))  # warm-up: connections, caches, lazy imports
        agreement = check_agreement(handlers, events)
        timings = measure_cells(handlers, events, repeats, kinesis_client)
        reset_stream(kinesis_client)
        profiles = profile_service(handlers, events)

    rows = summarize(timings)
    return {
        "model_run_id": trained.run_id,
        "rides_file": f"green_tripdata_{REPLAY_MONTH[0]}-{REPLAY_MONTH[1]:02d}.parquet",
        "repeats": repeats,
        "cell_budget_seconds": CELL_BUDGET_SECONDS,
        "output_shards": OUTPUT_SHARDS,
        **agreement,
        "cells": rows,
        "ratios": ratios(rows, timings),
        "profiles": profiles,
    }


if __name__ == "__main__":
    sys.exit(section_main("handler_throughput", measure))
