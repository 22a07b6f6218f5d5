"""Paths, timing helpers, ride events and the machine description shared by the sections."""

from __future__ import annotations

import base64
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = REPO_ROOT / "build" / "bench"
RESULTS_DIR = BUILD_DIR / "results"
DOCS_DIR = REPO_ROOT / "docs"
PROFILES_DIR = DOCS_DIR / "profiles"

COLOR = "green"
TRAIN_MONTH = (2022, 1)
VALIDATION_MONTH = (2022, 2)
REPLAY_MONTH = (2022, 3)
OUTPUT_STREAM = "ride_predictions"


def now_iso() -> str:
    """Return the current UTC time to the second, as ISO 8601."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages, rounded to two decimals."""
    return [round(value, 2) for value in os.getloadavg()]


def median(values: Sequence[float]) -> float:
    """Return the median of a non-empty sequence as a float."""
    return float(statistics.median(values))


def time_call(function: Callable[[], Any]) -> float:
    """Return the seconds one call of ``function`` takes on the monotonic clock."""
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def trip_file(year: int, month: int) -> Path:
    """Return the local path of a green trip file, from TLC_MIRROR or the data/ folder."""
    # Imported here: tlc_data imports pandas, which bench.run and the report do not need.
    from tlc_data import fetch_trip_file  # pylint: disable=import-outside-toplevel

    return fetch_trip_file(COLOR, year, month, data_dir=REPO_ROOT / "data")


def kinesis_event(payloads: Sequence[bytes], partition_keys: Sequence[str]) -> dict[str, Any]:
    """Build a Lambda Kinesis event with one record per payload, as the event source sends it."""
    records = []
    for index, (payload, partition_key) in enumerate(zip(payloads, partition_keys, strict=True)):
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": partition_key,
                    "sequenceNumber": f"{49_600_000_000_000_000_000 + index}",
                    "data": base64.b64encode(payload).decode("ascii"),
                    "approximateArrivalTimestamp": 1_648_771_200.0,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{index}",
                "eventName": "aws:kinesis:record",
                "awsRegion": "eu-west-1",
            }
        )
    return {"Records": records}


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    """Return the machine's total memory in GiB from /proc/meminfo."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def machine_description() -> dict[str, Any]:
    """Describe the machine the numbers come from: CPU, cores, memory, Python and OS."""
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "os": platform.platform(),
        "kernel": platform.release(),
    }


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def section_main(name: str, measure: Callable[[], dict[str, Any]]) -> int:
    """Run one section as a program: measure, then write the result to ``argv[1]``."""
    if len(sys.argv) != 2:
        print(f"usage: python -m bench.{name} OUTPUT_JSON", file=sys.stderr)
        return 2
    started = time.perf_counter()
    load_before = load_average()
    result = measure()
    result["section_seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_before"] = load_before
    result["load_average_after"] = load_average()
    result["measured_at"] = now_iso()
    write_json(Path(sys.argv[1]), result)
    return 0
