"""prepare_data: trip durations, the 1 to 60 minute filter and categorical strings."""

from __future__ import annotations

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from batch import MissingColumnsError, prepare_data
from tests.batch.conftest import dt

CATEGORICAL = ["PULocationID", "DOLocationID"]


def test_prepare_data_course_trips(trips):
    # given the course's four trips of 9, 8, 0.98 and 60.02 minutes
    # when
    actual = prepare_data(trips, CATEGORICAL)

    # then
    expected = pd.DataFrame(
        {
            "PULocationID": ["-1", "1"],
            "DOLocationID": ["-1", "1"],
            "tpep_pickup_datetime": [dt(1, 1), dt(1, 2)],
            "tpep_dropoff_datetime": [dt(1, 10), dt(1, 10)],
            "duration": [9.0, 8.0],
        },
        index=[0, 1],
    )
    assert_frame_equal(actual, expected)


def test_prepare_data_bounds_are_inclusive():
    # given trips of exactly 1 and exactly 60 minutes, and one just under 1 minute
    trips = pd.DataFrame(
        {
            "PULocationID": [5, 6, 7],
            "DOLocationID": [8, 9, 10],
            "tpep_pickup_datetime": [dt(1, 0), dt(1, 0), dt(1, 0)],
            "tpep_dropoff_datetime": [dt(1, 1), dt(2, 0), dt(1, 0, 59)],
        }
    )

    # when
    actual = prepare_data(trips, CATEGORICAL)

    # then
    assert actual["duration"].tolist() == [1.0, 60.0]


def test_prepare_data_reads_green_times():
    # given a green trip, whose times are named lpep_*
    trips = pd.DataFrame(
        {
            "lpep_pickup_datetime": [dt(3, 0)],
            "lpep_dropoff_datetime": [dt(3, 15, 30)],
            "PULocationID": [74],
            "DOLocationID": [75],
        }
    )

    # when
    actual = prepare_data(trips, CATEGORICAL)

    # then
    expected = pd.DataFrame(
        {
            "lpep_pickup_datetime": [dt(3, 0)],
            "lpep_dropoff_datetime": [dt(3, 15, 30)],
            "PULocationID": ["74"],
            "DOLocationID": ["75"],
            "duration": [15.5],
        }
    )
    assert_frame_equal(actual, expected)


def test_prepare_data_leaves_input_unchanged(trips):
    # given
    before = trips.copy()

    # when
    prepare_data(trips, CATEGORICAL)

    # then
    assert_frame_equal(trips, before)


def test_prepare_data_without_times_names_columns(trips):
    # given a frame with no trip times at all
    frame = trips.drop(columns=["tpep_pickup_datetime", "tpep_dropoff_datetime"])

    # when
    with pytest.raises(MissingColumnsError) as raised:
        prepare_data(frame, CATEGORICAL)

    # then
    assert str(raised.value) == (
        "The frame lacks columns: the trip times: tpep_pickup_datetime and "
        "tpep_dropoff_datetime (yellow) or lpep_pickup_datetime and lpep_dropoff_datetime "
        "(green)"
    )


def test_prepare_data_without_dropoff_names_it(trips):
    # given a yellow frame that lost its dropoff time
    frame = trips.drop(columns=["tpep_dropoff_datetime"])

    # when
    with pytest.raises(MissingColumnsError) as raised:
        prepare_data(frame, CATEGORICAL)

    # then
    assert raised.value.missing == ("tpep_dropoff_datetime",)


def test_prepare_data_without_categorical_names_it(trips):
    # given
    frame = trips.drop(columns=["DOLocationID"])

    # when
    with pytest.raises(MissingColumnsError) as raised:
        prepare_data(frame, CATEGORICAL)

    # then
    assert str(raised.value) == "The frame lacks columns: DOLocationID (needed by the model)"
