"""Decoding and validation of ride events: every bad record gets its exact reason."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from ride_events import InvalidRideEvent, RideEvent, decode_ride_event
from tests.service.factories import encode, ride_event


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# (case id, kinesis.data, exact reason)
BAD_RECORDS = [
    (
        "not base64",
        "!!notbase64!!",
        "kinesis.data is not valid base64 (Only base64 data is "
        "allowed); encode the UTF-8 JSON with standard base64",
    ),
    (
        "bad base64 padding",
        "abc",
        "kinesis.data is not valid base64 (Incorrect padding); "
        "encode the UTF-8 JSON with standard base64",
    ),
    (
        "url-safe base64",
        base64.urlsafe_b64encode(b'{"ride": "\xff\xfe?>"}').decode(),
        "kinesis.data is not standard base64: it contains '-' or '_', so it looks URL-safe "
        "encoded; encode with the standard alphabet (+ and /)",
    ),
    (
        "base64 of base64",
        b64(encode(ride_event()).encode()),
        "payload is base64 text, not JSON: the data was base64-encoded twice; encode the JSON once",
    ),
    (
        "kpl aggregated",
        b64(b"\xf3\x89\x9a\xc2\x0a\x03abc"),
        "payload is a KPL-aggregated record (magic bytes F3 89 9A C2); disable aggregation in the "
        "producer or deaggregate before this function",
    ),
    (
        "gzip",
        b64(gzip.compress(json.dumps(ride_event()).encode())),
        "payload is gzip-compressed (magic bytes 1F 8B); send uncompressed UTF-8 JSON",
    ),
    (
        "bad utf-8",
        b64(b'{"ride_id": "\xc3\x28"}'),
        "payload is not valid UTF-8: byte 0xC3 at offset 13",
    ),
    ("not json", b64(b"ride 256"), "payload is not valid JSON: Expecting value at line 1 column 1"),
    (
        "json array",
        encode([1, 2]),
        "ride event must be a JSON object with 'ride' and 'ride_id', got a JSON array",
    ),
    (
        "json number",
        encode(42),
        "ride event must be a JSON object with 'ride' and 'ride_id', got a JSON number",
    ),
    ("missing ride", encode({"ride_id": 1}), "ride event has no 'ride' field"),
    (
        "missing ride_id",
        encode({"ride": ride_event()["ride"]}),
        "ride event has no 'ride_id' field",
    ),
    (
        "ride not object",
        encode({"ride": [1], "ride_id": 1}),
        "'ride' must be a JSON object, got a JSON array",
    ),
    (
        "ride_id null",
        encode(ride_event(ride_id=None)),
        "'ride_id' must be a string or an integer, got null (null)",
    ),
    (
        "ride_id object",
        encode(ride_event(ride_id={"a": 1})),
        "'ride_id' must be a string or an integer, got {'a': 1} (object)",
    ),
    ("ride_id empty", encode(ride_event(ride_id="")), "'ride_id' must not be empty"),
    (
        "pickup non-numeric string",
        encode(ride_event(pickup="Manhattan")),
        "'PULocationID' must be a number or a string holding exactly one, got \"Manhattan\"",
    ),
    (
        "pickup fraction",
        encode(ride_event(pickup=130.5)),
        "'PULocationID' must be a positive whole number (a TLC zone id), got 130.5",
    ),
    (
        "pickup zero",
        encode(ride_event(pickup=0)),
        "'PULocationID' must be a positive whole number (a TLC zone id), got 0",
    ),
    (
        "dropoff negative",
        encode(ride_event(dropoff=-5)),
        "'DOLocationID' must be a positive whole number (a TLC zone id), got -5",
    ),
    (
        "dropoff boolean",
        encode(ride_event(dropoff=True)),
        "'DOLocationID' must be a number, got true",
    ),
    (
        "dropoff missing",
        encode({"ride": {"PULocationID": 1, "trip_distance": 1}, "ride_id": 1}),
        "ride has no 'DOLocationID' field",
    ),
    (
        "distance missing",
        encode({"ride": {"PULocationID": 1, "DOLocationID": 2}, "ride_id": 1}),
        "ride has no 'trip_distance' field",
    ),
    (
        "distance text",
        encode(ride_event(distance="abc")),
        "'trip_distance' must be a number or a string holding exactly one, got \"abc\"",
    ),
    (
        "distance padded text",
        encode(ride_event(distance=" 3.66")),
        "'trip_distance' must be a number or a string holding exactly one, got \" 3.66\"",
    ),
    (
        "distance boolean",
        encode(ride_event(distance=True)),
        "'trip_distance' must be a number, got true",
    ),
    (
        "distance null",
        encode(ride_event(distance=None)),
        "'trip_distance' must be a number, got null",
    ),
    (
        "distance negative",
        encode(ride_event(distance=-1.5)),
        "'trip_distance' must not be negative, got -1.5",
    ),
    (
        "distance nan literal",
        b64(
            b'{"ride": {"PULocationID": 1, "DOLocationID": 2, "trip_distance": NaN}, "ride_id": 1}'
        ),
        "'trip_distance' must be finite, got nan",
    ),
    (
        "distance infinity string",
        encode(ride_event(distance="Infinity")),
        "'trip_distance' must be a number or a string holding exactly one, got \"Infinity\"",
    ),
    (
        "distance overflow",
        encode(ride_event(distance="1e999")),
        "'trip_distance' must be finite, got \"1e999\"",
    ),
    ("not a string", 12345, "kinesis.data must be a base64 string, got int"),
]


@pytest.mark.parametrize(
    ("encoded_data", "expected_reason"),
    [pytest.param(data, reason, id=case) for case, data, reason in BAD_RECORDS],
)
def test_decode_ride_event_rejects_with_exact_reason(encoded_data, expected_reason):
    with pytest.raises(InvalidRideEvent) as raised:
        decode_ride_event(encoded_data)

    assert str(raised.value) == expected_reason


def test_decode_ride_event_rejects_oversized_payload():
    payload = b64(json.dumps({"ride": {}, "ride_id": 1, "pad": "x" * (1024 * 1024)}).encode())

    with pytest.raises(InvalidRideEvent) as raised:
        decode_ride_event(payload)

    assert "over the 1 MiB Kinesis record limit" in str(raised.value)


def test_decode_ride_event_reference_example():
    encoded_data = encode(ride_event())

    actual = decode_ride_event(encoded_data)

    assert actual == RideEvent(
        ride_id=256, pickup_location_id=130, dropoff_location_id=205, trip_distance=3.66
    )


@pytest.mark.parametrize(
    ("pickup", "dropoff", "distance"),
    [(130, 205, 3.66), ("130", "205", "3.66"), (130.0, 205.0, "3.66"), ("130.0", 205, 3.66)],
)
def test_decode_ride_event_normalizes_numbers(pickup, dropoff, distance):
    encoded_data = encode(ride_event(pickup=pickup, dropoff=dropoff, distance=distance))

    features = decode_ride_event(encoded_data).features()

    assert features == {"PU_DO": "130_205", "trip_distance": 3.66}


def test_decode_ride_event_keeps_ride_id_as_received():
    assert decode_ride_event(encode(ride_event(ride_id="abc-1"))).ride_id == "abc-1"
    assert decode_ride_event(encode(ride_event(ride_id=7))).ride_id == 7


def test_decode_ride_event_accepts_zero_distance():
    assert decode_ride_event(encode(ride_event(distance=0))).trip_distance == 0.0


def test_decode_ride_event_error_shortens_long_values():
    with pytest.raises(InvalidRideEvent) as raised:
        decode_ride_event(encode(ride_event(distance="x" * 5000)))

    assert len(str(raised.value)) < 200
