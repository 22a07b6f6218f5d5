"""NYC TLC trip record files: locate or download a month, read it, build model features.

TLC publishes one Parquet file per taxi color and month at
``{TLC_BASE_URL}/{color}_tripdata_{YYYY}-{MM}.parquet``. A folder that contains files under
those names can stand in for the base URL: name it with ``mirror=`` or the ``TLC_MIRROR``
environment variable.

Command line: ``python tlc_data.py --color green 2022-01 2022-02`` fetches those months and
prints the local path of each file.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

TLC_BASE_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"
MIRROR_ENV_VAR = "TLC_MIRROR"
COLORS = ("green", "yellow")

# Green files name the timestamps lpep_*, yellow files tpep_*.
DATETIME_PREFIXES = {"green": "lpep", "yellow": "tpep"}
LOCATION_COLUMNS = ["PULocationID", "DOLocationID"]

# Durations in minutes kept by read_trips, both bounds inclusive.
MIN_DURATION_MINUTES = 1.0
MAX_DURATION_MINUTES = 60.0

DOWNLOAD_TIMEOUT_SECONDS = 120


def trip_file_name(color: str, year: int, month: int) -> str:
    """Return the name under which TLC publishes one color and month."""
    if color not in COLORS:
        raise ValueError(f"invalid taxi color {color!r}: expected one of {', '.join(COLORS)}")
    if not 1 <= month <= 12:
        raise ValueError(f"invalid month {month}: expected 1 to 12")
    return f"{color}_tripdata_{year:04d}-{month:02d}.parquet"


def parse_month(text: str) -> tuple[int, int]:
    """Parse ``YYYY-MM`` into ``(year, month)``."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"invalid month {text!r}: expected YYYY-MM, for example 2022-01")
    return int(match.group(1)), int(match.group(2))


def fetch_trip_file(
    color: str,
    year: int,
    month: int,
    *,
    mirror: str | Path | None = None,
    data_dir: Path = Path("data"),
) -> Path:
    """Return a local path to one month of trips, downloading it from TLC at most once.

    With ``mirror`` (or, when it is None, the ``TLC_MIRROR`` environment variable) set to
    a folder, the file is taken from that folder and nothing is downloaded. Otherwise the
    file is downloaded into ``data_dir`` unless it is already there.

    Raises:
        ValueError: the color or month is invalid.
        FileNotFoundError: the mirror folder has no such file.
        OSError: the download failed (the message names the URL).
    """
    name = trip_file_name(color, year, month)

    mirror_folder = mirror if mirror is not None else os.environ.get(MIRROR_ENV_VAR)
    if mirror_folder:
        path = Path(mirror_folder) / name
        if not path.is_file():
            raise FileNotFoundError(
                f"trip file not found: {path} (the mirror folder comes from "
                f"{'the mirror argument' if mirror is not None else MIRROR_ENV_VAR}; "
                f"put {name} there or unset {MIRROR_ENV_VAR} to download from TLC)"
            )
        return path

    path = Path(data_dir) / name
    if path.is_file():
        return path

    _download(f"{TLC_BASE_URL}/{name}", path)
    return path


def _download(url: str, path: Path) -> None:
    """Download url to path through a temporary file, so a failed download leaves no file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s to %s", url, path)

    tmp_path: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", delete=False
        ) as tmp:
            tmp_path = Path(tmp.name)
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
                shutil.copyfileobj(response, tmp, length=1 << 20)
        os.replace(tmp_path, path)
    except BaseException as exc:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        # urllib.error.URLError, HTTPError and timeouts are OSError subclasses, as are disk errors.
        if isinstance(exc, OSError):
            raise OSError(
                f"failed to download {url}: {exc} "
                f"(check the network, or set {MIRROR_ENV_VAR} to a folder that has the file)"
            ) from exc
        raise


def detect_color(columns: list[str]) -> str:
    """Return the taxi color whose needed columns (pickup and dropoff times, location IDs,
    trip distance) are all in ``columns``.

    Raises:
        ValueError: neither color's columns are all present. The message lists what is
            missing for each color.
    """
    missing_by_color = {}
    for color in COLORS:
        missing = [name for name in _needed_columns(color) if name not in columns]
        if not missing:
            return color
        missing_by_color[color] = missing

    details = "; ".join(
        f"{color} needs {', '.join(missing)}" for color, missing in missing_by_color.items()
    )
    raise ValueError(f"not a green or yellow TLC trip file, missing columns: {details}")


def _needed_columns(color: str) -> list[str]:
    prefix = DATETIME_PREFIXES[color]
    return [
        f"{prefix}_pickup_datetime",
        f"{prefix}_dropoff_datetime",
        *LOCATION_COLUMNS,
        "trip_distance",
    ]


def read_trips(path: str | Path) -> pd.DataFrame:
    """Read a green or yellow trip file and keep the trips of 1 to 60 minutes.

    Returns a frame with the columns ``pickup_datetime`` (the file's lpep_ or tpep_ pickup
    time under one name for both colors), ``PULocationID``, ``DOLocationID``,
    ``trip_distance`` and ``duration`` (dropoff minus pickup, in minutes), with a fresh
    RangeIndex. Only those five source columns are read from the file.

    Raises:
        ValueError: the file lacks the columns of both colors.
    """
    schema_columns = pq.read_schema(path).names
    color = detect_color(schema_columns)
    prefix = DATETIME_PREFIXES[color]
    pickup_column = f"{prefix}_pickup_datetime"
    dropoff_column = f"{prefix}_dropoff_datetime"

    df = pq.read_table(path, columns=_needed_columns(color)).to_pandas()

    duration = (df[dropoff_column] - df[pickup_column]).dt.total_seconds() / 60
    in_range = duration.between(MIN_DURATION_MINUTES, MAX_DURATION_MINUTES, inclusive="both")

    trips = pd.DataFrame(
        {
            "pickup_datetime": df[pickup_column],
            "PULocationID": df["PULocationID"],
            "DOLocationID": df["DOLocationID"],
            "trip_distance": df["trip_distance"],
            "duration": duration,
        }
    )
    return trips[in_range].reset_index(drop=True)


def ride_features(df: pd.DataFrame) -> list[dict]:
    """Build one model feature dict per trip: ``{"PU_DO": "130_205", "trip_distance": 3.66}``.

    Contract shared with the streaming service, which builds the same dict from one ride:
    ``PU_DO`` is the pickup and dropoff location IDs written as integers and joined by an
    underscore, and ``trip_distance`` is a Python float in miles. The IDs are cast to int64
    first, so int32 IDs (TLC files from 2023 on) give the same strings as int64 ones.

    Raises:
        ValueError: a location ID is missing (the cast to int64 fails on NaN or None).
    """
    pickup_ids = df["PULocationID"].astype("int64").astype(str)
    dropoff_ids = df["DOLocationID"].astype("int64").astype(str)
    features = pd.DataFrame(
        {
            "PU_DO": pickup_ids + "_" + dropoff_ids,
            "trip_distance": df["trip_distance"].astype("float64"),
        }
    )
    return features.to_dict(orient="records")


def main(argv: list[str] | None = None) -> int:
    """Fetch the trip files of the given months and print their local paths."""
    parser = argparse.ArgumentParser(
        description=(
            "Fetch TLC trip files: take them from the TLC_MIRROR folder when it is set, "
            "else download each one once into --data-dir."
        )
    )
    parser.add_argument("months", nargs="+", help="months to fetch, YYYY-MM")
    parser.add_argument("--color", choices=COLORS, default="green", help="taxi color")
    parser.add_argument(
        "--data-dir", type=Path, default=Path("data"), help="download folder (default: data)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        months = [parse_month(month) for month in args.months]
    except ValueError as exc:
        parser.error(str(exc))

    for year, month in months:
        try:
            path = fetch_trip_file(args.color, year, month, data_dir=args.data_dir)
        except OSError as exc:
            # FileNotFoundError (mirror) and download failures both land here.
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
