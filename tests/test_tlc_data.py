"""Tests for tlc_data: mirror lookup, download, reading real and yellow files, features."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import tlc_data

# Trips of 1 to 60 minutes in the green files, out of 62495, 69399 and 78537 rows.
EXPECTED_KEPT_ROWS = {(2022, 1): 59603, (2022, 2): 66097, (2022, 3): 74507}


@pytest.fixture
def no_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tlc_data.MIRROR_ENV_VAR, raising=False)


@pytest.fixture
def local_tlc_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Serve a temporary folder over HTTP on 127.0.0.1 and point TLC_BASE_URL at it.

    Yields the served folder: a file put there can be downloaded, any other name gets 404.
    """
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    monkeypatch.setattr(tlc_data, "TLC_BASE_URL", f"http://{host}:{port}")
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def write_yellow_file(path: Path) -> None:
    """Write three yellow trips of 0.5, 10 and 61 minutes, with an unused column."""
    pickups = pd.to_datetime(["2023-01-01 10:00:00", "2023-01-01 11:00:00", "2023-01-01 12:00:00"])
    frame = pd.DataFrame(
        {
            "VendorID": [1, 2, 1],
            "tpep_pickup_datetime": pickups,
            "tpep_dropoff_datetime": pickups + pd.to_timedelta([30, 600, 3660], unit="s"),
            "PULocationID": pd.array([161, 43, 132], dtype="int32"),
            "DOLocationID": pd.array([236, 238, 1], dtype="int32"),
            "trip_distance": [0.4, 1.5, 17.2],
        }
    )
    frame.to_parquet(path, index=False)


def test_trip_file_name_green_month():
    # given / when
    name = tlc_data.trip_file_name("green", 2022, 1)

    # then
    assert name == "green_tripdata_2022-01.parquet"


def test_trip_file_name_invalid_color():
    with pytest.raises(ValueError, match="invalid taxi color 'blue'"):
        tlc_data.trip_file_name("blue", 2022, 1)


def test_trip_file_name_invalid_month():
    with pytest.raises(ValueError, match="invalid month 13"):
        tlc_data.trip_file_name("green", 2022, 13)


def test_parse_month_valid():
    assert tlc_data.parse_month("2022-01") == (2022, 1)


@pytest.mark.parametrize("text", ["2022-1", "2022-13", "22-01", "2022/01"])
def test_parse_month_invalid(text: str):
    with pytest.raises(ValueError, match="expected YYYY-MM"):
        tlc_data.parse_month(text)


def test_fetch_trip_file_mirror_argument(tmp_path: Path, no_mirror: None):
    # given
    expected = tmp_path / "green_tripdata_2022-02.parquet"
    expected.write_bytes(b"parquet bytes")

    # when
    actual = tlc_data.fetch_trip_file("green", 2022, 2, mirror=tmp_path, data_dir=tmp_path / "data")

    # then
    assert actual == expected
    assert not (tmp_path / "data").exists()


def test_fetch_trip_file_mirror_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # given
    expected = tmp_path / "yellow_tripdata_2023-03.parquet"
    expected.write_bytes(b"parquet bytes")
    monkeypatch.setenv("TLC_MIRROR", str(tmp_path))

    # when
    actual = tlc_data.fetch_trip_file("yellow", 2023, 3, data_dir=tmp_path / "data")

    # then
    assert actual == expected


def test_fetch_trip_file_missing_in_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # given
    monkeypatch.setenv("TLC_MIRROR", str(tmp_path))
    missing = tmp_path / "green_tripdata_2021-07.parquet"

    # when
    with pytest.raises(FileNotFoundError) as error:
        tlc_data.fetch_trip_file("green", 2021, 7)

    # then
    message = str(error.value)
    assert str(missing) in message
    assert "TLC_MIRROR" in message


def test_fetch_trip_file_downloads_once(tmp_path: Path, no_mirror: None, local_tlc_server: Path):
    # given
    (local_tlc_server / "green_tripdata_2022-01.parquet").write_bytes(b"first version")
    data_dir = tmp_path / "data"

    # when
    first = tlc_data.fetch_trip_file("green", 2022, 1, data_dir=data_dir)
    (local_tlc_server / "green_tripdata_2022-01.parquet").write_bytes(b"second version")
    second = tlc_data.fetch_trip_file("green", 2022, 1, data_dir=data_dir)

    # then
    assert first == data_dir / "green_tripdata_2022-01.parquet"
    assert second == first
    assert first.read_bytes() == b"first version"
    assert sorted(path.name for path in data_dir.iterdir()) == ["green_tripdata_2022-01.parquet"]


def test_fetch_trip_file_download_failure(tmp_path: Path, no_mirror: None, local_tlc_server: Path):
    # given: the server has no such file, so it returns 404
    data_dir = tmp_path / "data"
    url = f"{tlc_data.TLC_BASE_URL}/green_tripdata_2019-05.parquet"

    # when
    with pytest.raises(OSError) as error:
        tlc_data.fetch_trip_file("green", 2019, 5, data_dir=data_dir)

    # then
    assert f"failed to download {url}" in str(error.value)
    assert list(data_dir.iterdir()) == []


@pytest.mark.parametrize(("year", "month"), sorted(EXPECTED_KEPT_ROWS))
def test_read_trips_real_green_month(tlc_mirror: Path, year: int, month: int):
    # given
    path = tlc_data.fetch_trip_file("green", year, month, mirror=tlc_mirror)

    # when
    trips = tlc_data.read_trips(path)

    # then
    assert len(trips) == EXPECTED_KEPT_ROWS[(year, month)]
    assert list(trips.columns) == [
        "pickup_datetime",
        "PULocationID",
        "DOLocationID",
        "trip_distance",
        "duration",
    ]
    assert trips["duration"].between(1, 60).all()


def test_read_trips_yellow_file(tmp_path: Path):
    # given
    path = tmp_path / "yellow_tripdata_2023-01.parquet"
    write_yellow_file(path)
    expected = pd.DataFrame(
        {
            "pickup_datetime": pd.to_datetime(["2023-01-01 11:00:00"]).astype("datetime64[us]"),
            "PULocationID": pd.array([43], dtype="int32"),
            "DOLocationID": pd.array([238], dtype="int32"),
            "trip_distance": [1.5],
            "duration": [10.0],
        }
    )

    # when
    trips = tlc_data.read_trips(path)

    # then
    pd.testing.assert_frame_equal(trips, expected)


def test_read_trips_duration_bounds_inclusive(tmp_path: Path):
    # given: trips of exactly 1 and exactly 60 minutes, and one just above 60
    pickups = pd.to_datetime(["2022-01-01 10:00:00"] * 3)
    frame = pd.DataFrame(
        {
            "lpep_pickup_datetime": pickups,
            "lpep_dropoff_datetime": pickups + pd.to_timedelta([60, 3600, 3601], unit="s"),
            "PULocationID": [1, 2, 3],
            "DOLocationID": [4, 5, 6],
            "trip_distance": [0.5, 20.0, 21.0],
        }
    )
    path = tmp_path / "green_tripdata_2022-01.parquet"
    frame.to_parquet(path, index=False)

    # when
    trips = tlc_data.read_trips(path)

    # then
    assert trips["duration"].tolist() == [1.0, 60.0]


def test_read_trips_missing_columns(tmp_path: Path):
    # given
    path = tmp_path / "broken.parquet"
    pd.DataFrame(
        {"tpep_pickup_datetime": pd.to_datetime(["2023-01-01"]), "trip_distance": [1.0]}
    ).to_parquet(path)

    # when
    with pytest.raises(ValueError) as error:
        tlc_data.read_trips(path)

    # then
    assert str(error.value) == (
        "not a green or yellow TLC trip file, missing columns: "
        "green needs lpep_pickup_datetime, lpep_dropoff_datetime, PULocationID, DOLocationID; "
        "yellow needs tpep_dropoff_datetime, PULocationID, DOLocationID"
    )


def test_ride_features_rows():
    # given
    trips = pd.DataFrame(
        {"PULocationID": [130, 7], "DOLocationID": [205, 7], "trip_distance": [3.66, 0.0]}
    )

    # when
    features = tlc_data.ride_features(trips)

    # then
    assert features == [
        {"PU_DO": "130_205", "trip_distance": 3.66},
        {"PU_DO": "7_7", "trip_distance": 0.0},
    ]
    # type() and not isinstance(), because numpy.float64 subclasses float: the contract is a
    # plain Python float, as the service builds from one ride.
    assert all(type(row["trip_distance"]) is float for row in features)  # pylint: disable=unidiomatic-typecheck


def test_ride_features_int32_ids():
    # given: TLC files from 2023 on store the IDs as int32
    trips = pd.DataFrame(
        {
            "PULocationID": pd.array([130], dtype="int32"),
            "DOLocationID": pd.array([205], dtype="int32"),
            "trip_distance": pd.array([3], dtype="int32"),
        }
    )

    # when
    features = tlc_data.ride_features(trips)

    # then
    assert features == [{"PU_DO": "130_205", "trip_distance": 3.0}]
    assert type(features[0]["trip_distance"]) is float  # pylint: disable=unidiomatic-typecheck


def test_ride_features_missing_location_id():
    # given
    trips = pd.DataFrame(
        {"PULocationID": [130.0, None], "DOLocationID": [205, 7], "trip_distance": [3.66, 1.0]}
    )

    # when / then
    with pytest.raises(ValueError):
        tlc_data.ride_features(trips)


def test_ride_features_empty_frame():
    # given
    trips = pd.DataFrame({"PULocationID": [], "DOLocationID": [], "trip_distance": []})

    # when
    features = tlc_data.ride_features(trips)

    # then
    assert features == []


def test_main_prints_mirror_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    # given
    for name in ("green_tripdata_2022-01.parquet", "green_tripdata_2022-02.parquet"):
        (tmp_path / name).write_bytes(b"parquet bytes")
    monkeypatch.setenv("TLC_MIRROR", str(tmp_path))

    # when
    exit_code = tlc_data.main(["--color", "green", "2022-01", "2022-02"])

    # then
    assert exit_code == 0
    assert capsys.readouterr().out.splitlines() == [
        str(tmp_path / "green_tripdata_2022-01.parquet"),
        str(tmp_path / "green_tripdata_2022-02.parquet"),
    ]


def test_main_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    # given
    monkeypatch.setenv("TLC_MIRROR", str(tmp_path))

    # when
    exit_code = tlc_data.main(["2022-03"])

    # then
    assert exit_code == 1
    assert capsys.readouterr().err.startswith(
        f"error: trip file not found: {tmp_path / 'green_tripdata_2022-03.parquet'}"
    )


def test_main_invalid_month(capsys: pytest.CaptureFixture[str]):
    # when
    with pytest.raises(SystemExit) as error:
        tlc_data.main(["2022-13"])

    # then
    assert error.value.code == 2
    assert "invalid month '2022-13'" in capsys.readouterr().err
