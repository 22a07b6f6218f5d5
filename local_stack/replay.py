"""Replay months of real TLC trips to the input stream as ride events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from prediction_delivery import KinesisRecordWriter, RetryPolicy
from tlc_data import DATETIME_PREFIXES, LOCATION_COLUMNS, detect_color

# Rides per PutRecords call; Kinesis takes at most 500.
REPLAY_CHUNK_SIZE = 500


@dataclass
class Rides:
    """The rides of one month, in file order, with what the predictions are checked against."""

    ride_ids: np.ndarray
    pickup_location_ids: np.ndarray
    dropoff_location_ids: np.ndarray
    trip_distances: np.ndarray
    durations: np.ndarray

    def __len__(self) -> int:
        return len(self.ride_ids)

    def event_payload(self, index: int) -> bytes:
        """Encode one ride as the JSON ride event producers send."""
        event = {
            "ride": {
                "PULocationID": int(self.pickup_location_ids[index]),
                "DOLocationID": int(self.dropoff_location_ids[index]),
                "trip_distance": float(self.trip_distances[index]),
            },
            "ride_id": int(self.ride_ids[index]),
        }
        return json.dumps(event).encode("utf-8")


@dataclass
class ReplayResult:
    """When each ride was sent, where it was stored, and which rides the stream rejected."""

    sent_at: np.ndarray
    stored_at: dict[int, tuple[str, str]] = field(default_factory=dict)
    rejected: list[int] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


def read_rides(path: str | Path, limit: int | None = None) -> Rides:
    """Read every trip of a TLC file, outliers included; the ride id is the row number."""
    color = detect_color(pq.read_schema(path).names)
    prefix = DATETIME_PREFIXES[color]
    columns = [f"{prefix}_pickup_datetime", f"{prefix}_dropoff_datetime", *LOCATION_COLUMNS]
    frame: pd.DataFrame = pq.read_table(path, columns=[*columns, "trip_distance"]).to_pandas()
    if limit is not None:
        frame = frame.head(limit)

    durations = (
        frame[f"{prefix}_dropoff_datetime"] - frame[f"{prefix}_pickup_datetime"]
    ).dt.total_seconds() / 60
    return Rides(
        ride_ids=np.arange(len(frame), dtype=np.int64),
        pickup_location_ids=frame["PULocationID"].to_numpy(),
        dropoff_location_ids=frame["DOLocationID"].to_numpy(),
        trip_distances=frame["trip_distance"].to_numpy(dtype=np.float64),
        durations=durations.to_numpy(dtype=np.float64),
    )


def read_months(paths: Sequence[str | Path], limit: int | None = None) -> Rides:
    """Read several TLC files, in order, as one replay of at most ``limit`` rides.

    Ride ids run on across the files (the first ride of the second file follows the last of
    the first), so they stay unique and remain the index of each ride.
    """
    parts: list[Rides] = []
    remaining = limit
    for path in paths:
        if remaining is not None and remaining <= 0:
            break
        part = read_rides(path, limit=remaining)
        parts.append(part)
        if remaining is not None:
            remaining -= len(part)

    total = sum(len(part) for part in parts)
    return Rides(
        ride_ids=np.arange(total, dtype=np.int64),
        pickup_location_ids=np.concatenate([part.pickup_location_ids for part in parts]),
        dropoff_location_ids=np.concatenate([part.dropoff_location_ids for part in parts]),
        trip_distances=np.concatenate([part.trip_distances for part in parts]),
        durations=np.concatenate([part.durations for part in parts]),
    )


def replay_rides(
    kinesis_client: Any,
    stream_name: str,
    rides: Rides,
    on_progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Put every ride on the stream with PutRecords, retrying rejected entries."""
    writer = KinesisRecordWriter(
        kinesis_client, stream_name, RetryPolicy(max_attempts=8, max_delay_seconds=5.0)
    )
    result = ReplayResult(sent_at=np.full(len(rides), np.nan))
    result.started = time.time()

    for start in range(0, len(rides), REPLAY_CHUNK_SIZE):
        indexes = range(start, min(start + REPLAY_CHUNK_SIZE, len(rides)))
        records = [(rides.event_payload(i), str(int(rides.ride_ids[i]))) for i in indexes]
        result.sent_at[start : start + len(records)] = time.time()
        report = writer.put_records(records)

        for position, location in report.stored_at.items():
            result.stored_at[int(rides.ride_ids[start + position])] = location
        result.rejected.extend(int(rides.ride_ids[start + p]) for p in report.failed_positions)
        if on_progress is not None:
            on_progress(len(records))

    result.finished = time.time()
    return result
