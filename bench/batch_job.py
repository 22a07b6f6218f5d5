"""Section 5: rows per second and peak memory of the batch job on one month.

``python batch.py 2022 3`` runs in a child process of the project's environment, reading the
green March 2022 file through ``INPUT_FILE_PATTERN`` and scoring it with the benchmark model
through ``MODEL_LOCATION``. The child's peak resident memory comes from ``os.wait4``, which
reports the resource usage of that one child. The job logs how long reading, predicting
and writing took, a time without interpreter start-up, imports and model loading. The
section reports that time and the whole process's wall time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from typing import Any

from bench.common import BUILD_DIR, REPLAY_MONTH, REPO_ROOT, median, section_main, trip_file
from bench.trained_model import load_trained_model

OUTPUT_DIR = BUILD_DIR / "batch"
DEFAULT_RUNS = 3
_SCORING_LINE = re.compile(r"read, predicted and written in ([\d.]+) s")
_ROWS_READ = re.compile(r"rows read: (\d+)")
_ROWS_PREDICTED = re.compile(r"predictions written: (\d+)")


def run_batch_job(model_dir: str) -> dict[str, Any]:
    """Run the job once; return its wall time, logged scoring time, row counts and peak RSS."""
    year, month = REPLAY_MONTH
    input_folder = trip_file(year, month).parent
    env = {
        **os.environ,
        "INPUT_FILE_PATTERN": str(input_folder / "green_tripdata_{year:04d}-{month:02d}.parquet"),
        "OUTPUT_FILE_PATTERN": str(OUTPUT_DIR / "predictions_{year:04d}-{month:02d}.parquet"),
        "MODEL_LOCATION": model_dir,
    }
    env.pop("MODEL_FILE", None)
    env.pop("RUN_ID", None)
    log_path = OUTPUT_DIR / "batch.log"
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log_file:
        started = time.perf_counter()
        # Reaped with os.wait4 below, for the child's own resource usage.
        process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "batch.py", str(year), str(month)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    log = log_path.read_text(encoding="utf-8")
    if process.returncode != 0:
        raise RuntimeError(f"batch.py exited with {process.returncode}: {log[-2000:]}")

    scoring = _SCORING_LINE.search(log)
    rows_read = _ROWS_READ.search(log)
    rows_predicted = _ROWS_PREDICTED.search(log)
    return {
        "wall_seconds": wall,
        "scoring_seconds": float(scoring.group(1)) if scoring else None,
        "rows_read": int(rows_read.group(1)) if rows_read else None,
        "rows_predicted": int(rows_predicted.group(1)) if rows_predicted else None,
        # ru_maxrss is in KiB on Linux.
        "max_rss_mib": usage.ru_maxrss / 1024,
    }


def measure() -> dict[str, Any]:
    runs = int(os.environ.get("BENCH_BATCH_RUNS", DEFAULT_RUNS))
    trained = load_trained_model()
    results = [run_batch_job(str(trained.model_dir)) for _ in range(runs)]
    wall = median([result["wall_seconds"] for result in results])
    scoring_values = [result["scoring_seconds"] for result in results if result["scoring_seconds"]]
    scoring = median(scoring_values) if scoring_values else None
    rows_read = results[0]["rows_read"]
    rows_predicted = results[0]["rows_predicted"]
    return {
        "command": "python batch.py 2022 3",
        "input_file": f"green_tripdata_{REPLAY_MONTH[0]}-{REPLAY_MONTH[1]:02d}.parquet",
        "model": "MODEL_LOCATION = the benchmark model folder (train.py's recipe)",
        "runs": runs,
        "rows_read": rows_read,
        "rows_predicted": rows_predicted,
        "median_wall_seconds": round(wall, 2),
        "median_scoring_seconds": round(scoring, 2) if scoring else None,
        "rows_read_per_second_wall": round(rows_read / wall, 0) if rows_read else None,
        "rows_read_per_second_scoring": round(rows_read / scoring, 0)
        if rows_read and scoring
        else None,
        "max_rss_mib": round(max(result["max_rss_mib"] for result in results), 1),
        "python_dont_write_bytecode": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
    }


if __name__ == "__main__":
    sys.exit(section_main("batch_job", measure))
