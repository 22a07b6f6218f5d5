"""A corpus of malformed records: each is dead-lettered with its own reason, between good rides.

Every bad record travels the real path, between two real March rides: a PutRecords call to
the moto input stream, the local event source mapping, and the handler with a dead-letter
queue. The test reads each bad record's message back from moto's SQS, checks its reason, and
checks that the rides around it reached the output stream once each.

A few cases cannot travel through Kinesis, so they go to the handler in a Lambda event built
by hand (the neighbours are there too):

- ``kinesis.data`` in URL-safe base64, or not a string: Lambda always writes ``data`` as
  standard base64 of the stored bytes, so only a hand-made event, or a change in Lambda,
  can produce them;
- a payload over 1 MiB: Kinesis rejects it at PutRecords (the first test shows moto does).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json

import pytest
from botocore.exceptions import ClientError

from tests.delivery.stack import LocalStack, deduplicate, encode, kinesis_record, read_march_rides

# These tests start a moto server.
pytestmark = pytest.mark.integration

GOOD_RIDE = {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}
KPL_MAGIC = b"\xf3\x89\x9a\xc2"


def ride_with(**changes) -> dict:
    """The good ride with fields replaced, or removed where the value is ``...``."""
    ride = dict(GOOD_RIDE)
    for name, value in changes.items():
        if value is ...:
            ride.pop(name)
        else:
            ride[name] = value
    return ride


def event_json(ride, ride_id="bad") -> bytes:
    return json.dumps({"ride": ride, "ride_id": ride_id}).encode()


def kpl_aggregated(inner: bytes) -> bytes:
    """Build a KPL aggregated record: magic bytes, an AggregatedRecord protobuf, its MD5."""
    key = b"kpl-key"
    # Record {partition_key_index: 0, data: inner}
    record = b"\x08\x00" + b"\x1a" + _varint(len(inner)) + inner
    # AggregatedRecord {partition_key_table: [key], records: [record]}
    message = b"\x0a" + _varint(len(key)) + key + b"\x1a" + _varint(len(record)) + record
    return KPL_MAGIC + message + hashlib.md5(message).digest()


def _varint(value: int) -> bytes:
    out = b""
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            return out + bytes([low])
        out += bytes([low | 0x80])


GOOD_PAYLOAD = event_json(GOOD_RIDE)

# name: (payload as stored in the stream, the reason its dead-letter message must give)
STREAM_CASES: dict[str, tuple[bytes, str]] = {
    # Encoding
    "base64_of_base64": (
        base64.b64encode(GOOD_PAYLOAD),
        "payload is base64 text, not JSON: the data was base64-encoded twice; encode the JSON once",
    ),
    "kpl_aggregated": (
        kpl_aggregated(GOOD_PAYLOAD),
        "payload is a KPL-aggregated record (magic bytes F3 89 9A C2); "
        "disable aggregation in the producer or deaggregate before this function",
    ),
    "gzip": (
        gzip.compress(GOOD_PAYLOAD),
        "payload is gzip-compressed (magic bytes 1F 8B); send uncompressed UTF-8 JSON",
    ),
    "bad_utf8": (
        b'{"ride": {"PULocationID": 130}, "ride_id": "caf\xe9"}',
        "payload is not valid UTF-8: byte 0xE9 at offset 47",
    ),
    "utf16": (
        json.dumps({"ride": GOOD_RIDE, "ride_id": 1}).encode("utf-16"),
        "payload is not valid UTF-8: byte 0xFF at offset 0",
    ),
    # JSON
    "invalid_json": (
        b'{"ride": {"PULocationID": 130,',
        "payload is not valid JSON: Expecting property name enclosed in double quotes "
        "at line 1 column 31",
    ),
    "empty_payload": (b"", "payload is not valid JSON: Expecting value at line 1 column 1"),
    "json_array": (
        json.dumps([{"ride": GOOD_RIDE, "ride_id": 1}]).encode(),
        "ride event must be a JSON object with 'ride' and 'ride_id', got a JSON array",
    ),
    "json_number": (
        b"42",
        "ride event must be a JSON object with 'ride' and 'ride_id', got a JSON number",
    ),
    "json_string": (
        b'"130_205"',
        "ride event must be a JSON object with 'ride' and 'ride_id', got a JSON string",
    ),
    "json_null": (
        b"null",
        "ride event must be a JSON object with 'ride' and 'ride_id', got a JSON null",
    ),
    "nested_too_deep": (
        b"[" * 10_000 + b"]" * 10_000,
        "payload is JSON nested too deeply to parse",
    ),
    # Fields of the event
    "missing_ride": (json.dumps({"ride_id": 1}).encode(), "ride event has no 'ride' field"),
    "missing_ride_id": (
        json.dumps({"ride": GOOD_RIDE}).encode(),
        "ride event has no 'ride_id' field",
    ),
    "ride_not_object": (
        json.dumps({"ride": "130 to 205", "ride_id": 1}).encode(),
        "'ride' must be a JSON object, got a JSON string",
    ),
    "ride_id_null": (
        event_json(GOOD_RIDE, None),
        "'ride_id' must be a string or an integer, got null (null)",
    ),
    "ride_id_boolean": (
        event_json(GOOD_RIDE, True),
        "'ride_id' must be a string or an integer, got true (boolean)",
    ),
    "ride_id_fraction": (
        event_json(GOOD_RIDE, 1.5),
        "'ride_id' must be a string or an integer, got 1.5 (number)",
    ),
    "ride_id_empty": (event_json(GOOD_RIDE, ""), "'ride_id' must not be empty"),
    "ride_id_too_long": (
        event_json(GOOD_RIDE, "r" * 300),
        "'ride_id' is 300 characters long; a Kinesis partition key allows at most 256",
    ),
    # trip_distance
    "distance_text": (
        event_json(ride_with(trip_distance="3.66 miles")),
        "'trip_distance' must be a number or a string holding exactly one, got \"3.66 miles\"",
    ),
    "distance_boolean": (
        event_json(ride_with(trip_distance=True)),
        "'trip_distance' must be a number, got true",
    ),
    "distance_null": (
        event_json(ride_with(trip_distance=None)),
        "'trip_distance' must be a number, got null",
    ),
    "distance_nan": (
        b'{"ride": {"PULocationID": 130, "DOLocationID": 205, "trip_distance": NaN}, '
        b'"ride_id": "bad"}',
        "'trip_distance' must be finite, got nan",
    ),
    "distance_infinity": (
        b'{"ride": {"PULocationID": 130, "DOLocationID": 205, "trip_distance": Infinity}, '
        b'"ride_id": "bad"}',
        "'trip_distance' must be finite, got inf",
    ),
    "distance_nan_text": (
        event_json(ride_with(trip_distance="NaN")),
        "'trip_distance' must be a number or a string holding exactly one, got \"NaN\"",
    ),
    "distance_overflow": (
        b'{"ride": {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 1e400}, '
        b'"ride_id": "bad"}',
        "'trip_distance' must be finite, got inf",
    ),
    "distance_negative": (
        event_json(ride_with(trip_distance=-1.5)),
        "'trip_distance' must not be negative, got -1.5",
    ),
    "distance_missing": (
        event_json(ride_with(trip_distance=...)),
        "ride has no 'trip_distance' field",
    ),
    # Location ids
    "pickup_text": (
        event_json(ride_with(PULocationID="Manhattan")),
        "'PULocationID' must be a number or a string holding exactly one, got \"Manhattan\"",
    ),
    "pickup_fraction": (
        event_json(ride_with(PULocationID=130.5)),
        "'PULocationID' must be a positive whole number (a TLC zone id), got 130.5",
    ),
    "pickup_fraction_text": (
        event_json(ride_with(PULocationID="130.5")),
        "'PULocationID' must be a positive whole number (a TLC zone id), got \"130.5\"",
    ),
    "pickup_zero": (
        event_json(ride_with(PULocationID=0)),
        "'PULocationID' must be a positive whole number (a TLC zone id), got 0",
    ),
    "pickup_boolean": (
        event_json(ride_with(PULocationID=False)),
        "'PULocationID' must be a number, got false",
    ),
    "pickup_missing": (
        event_json(ride_with(PULocationID=...)),
        "ride has no 'PULocationID' field",
    ),
    "dropoff_negative": (
        event_json(ride_with(DOLocationID=-5)),
        "'DOLocationID' must be a positive whole number (a TLC zone id), got -5",
    ),
    "dropoff_text_suffix": (
        event_json(ride_with(DOLocationID="205abc")),
        "'DOLocationID' must be a number or a string holding exactly one, got \"205abc\"",
    ),
    "dropoff_null": (
        event_json(ride_with(DOLocationID=None)),
        "'DOLocationID' must be a number, got null",
    ),
}

# A ride id whose JSON has "?" runs, which standard base64 writes with "/" and URL-safe with "_".
URL_SAFE_PAYLOAD = event_json(GOOD_RIDE, "???")
# name: (kinesis.data of the hand-made event, the reason its dead-letter message must give)
HAND_MADE_CASES: dict[str, tuple[object, str]] = {
    "url_safe_base64": (
        base64.urlsafe_b64encode(URL_SAFE_PAYLOAD).decode("ascii"),
        "kinesis.data is not standard base64: it contains '-' or '_', so it looks URL-safe "
        "encoded; encode with the standard alphabet (+ and /)",
    ),
    "data_not_string": (None, "kinesis.data must be a base64 string, got NoneType"),
    "over_1_mib": (
        encode(b"{" + b" " * (1024 * 1024 + 100) + b"}"),
        "payload of about 1048680 bytes is over the 1 MiB Kinesis record limit; "
        "send one ride per record",
    ),
}


@pytest.fixture(scope="module")
def corpus_run(moto_server, logged_model, tlc_mirror):
    """Stream every case between two real rides through the mapping and the handler, once."""
    stack = LocalStack(moto_server.endpoint_url, logged_model)
    rides = read_march_rides(str(tlc_mirror), len(STREAM_CASES) + 1)
    payloads, keys = [], []
    for ride, (name, (bad_payload, _)) in zip(rides, STREAM_CASES.items(), strict=False):
        payloads += [json.dumps(ride).encode(), bad_payload]
        keys += [str(ride["ride_id"]), name]
    payloads.append(json.dumps(rides[-1]).encode())
    keys.append(str(rides[-1]["ride_id"]))
    stack.put(payloads, keys)

    mapping = stack.run_mapping(stack.service().lambda_handler, batch_size=16)
    dead_letters = {message["partitionKey"]: message for message in stack.dead_letters()}
    output = stack.output_events()
    stack.close()
    return rides, mapping, dead_letters, output


def test_corpus_size():
    assert len(STREAM_CASES) + len(HAND_MADE_CASES) >= 30


def test_corpus_kinesis_rejects_records_over_1_mib(stack):
    with pytest.raises(ClientError) as raised:
        stack.kinesis.put_records(
            StreamName=stack.input_stream,
            Records=[{"Data": b"x" * (1024 * 1024 + 1), "PartitionKey": "big"}],
        )

    assert raised.value.response["Error"]["Code"] == "ValidationException"


@pytest.mark.parametrize("name", list(STREAM_CASES))
def test_corpus_stream_record_dead_lettered_with_reason(corpus_run, name):
    _, _, dead_letters, _ = corpus_run
    payload, reason = STREAM_CASES[name]

    message = dead_letters[name]

    assert message["reason"] == reason
    assert base64.b64decode(message["data"]) == payload


def test_corpus_stream_neighbours_delivered_once(corpus_run):
    rides, mapping, dead_letters, output = corpus_run

    assert sorted(event["prediction"]["ride_id"] for event in output) == [
        ride["ride_id"] for ride in rides
    ]
    assert len(dead_letters) == len(STREAM_CASES)
    assert mapping.stats.partial_failures == 0
    assert mapping.stats.function_errors == 0


@pytest.mark.parametrize("name", list(HAND_MADE_CASES))
def test_corpus_hand_made_event_dead_lettered_with_reason(stack, name):
    # Given a hand-made event: the bad record between two good ones
    data, reason = HAND_MADE_CASES[name]
    left = json.dumps({"ride": GOOD_RIDE, "ride_id": "left"}).encode()
    right = json.dumps({"ride": GOOD_RIDE, "ride_id": "right"}).encode()
    event = {
        "Records": [
            kinesis_record(encode(left), "1", "left"),
            kinesis_record(data, "2", name),
            kinesis_record(encode(right), "3", "right"),
        ]
    }

    # When the handler takes it
    response = stack.service().lambda_handler(event)

    # Then the bad record is dead-lettered with its reason and the neighbours delivered
    [message] = stack.dead_letters()
    assert message["reason"] == reason
    assert message["sequenceNumber"] == "2"
    assert response["batchItemFailures"] == []
    assert sorted(ride_id for ride_id, _ in deduplicate(stack.output_events())) == [
        "left",
        "right",
    ]


def test_corpus_numbers_as_exact_strings_are_valid(stack):
    # Given one ride three times: as numbers, as strings, and as strings of whole floats
    variants = {
        "numbers": GOOD_RIDE,
        "strings": {"PULocationID": "130", "DOLocationID": "205", "trip_distance": "3.66"},
        "float_strings": {"PULocationID": "130.0", "DOLocationID": 205.0, "trip_distance": "3.660"},
    }
    stack.put([event_json(ride, name) for name, ride in variants.items()], list(variants))

    # When they go through the stream and the handler
    stack.run_mapping(stack.service().lambda_handler, batch_size=10)

    # Then all three are valid and get the same prediction
    durations = {
        event["prediction"]["ride_id"]: event["prediction"]["ride_duration"]
        for event in stack.output_events()
    }
    assert sorted(durations) == sorted(variants)
    assert len(set(durations.values())) == 1
    assert stack.dead_letters() == []
