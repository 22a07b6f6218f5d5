"""Decode and validate the ride events carried in Kinesis records.

A record's ``kinesis.data`` is standard base64 of UTF-8 JSON such as
``{"ride": {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}, "ride_id": 256}``.
Validation converts nothing silently: a DictVectorizer would turn a string distance into 0
and return a plausible but wrong duration, so every field is checked and normalized here,
and anything unusable raises :class:`InvalidRideEvent` with the reason.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any

# Kinesis accepts at most 1 MiB of data per record.
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_ENCODED_BYTES = 4 * math.ceil(MAX_PAYLOAD_BYTES / 3)
# Kinesis partition keys are at most 256 characters, and the ride id becomes the key.
MAX_RIDE_ID_LENGTH = 256

KPL_AGGREGATION_MAGIC = b"\xf3\x89\x9a\xc2"
GZIP_MAGIC = b"\x1f\x8b"

_DECIMAL_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_STANDARD_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")
_SHOWN_VALUE_CHARS = 60
# JSON type names of the Python types json.loads returns.
_JSON_TYPE_NAMES = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


class InvalidRideEvent(ValueError):
    """A record that no retry can make usable; the message gives the reason and the fix."""


@dataclass(frozen=True)
class RideEvent:
    """One validated ride request, with its numbers normalized."""

    ride_id: int | str
    pickup_location_id: int
    dropoff_location_id: int
    trip_distance: float

    def features(self) -> dict[str, str | float]:
        """Build the model input: the pickup-dropoff zone pair and the distance in miles."""
        return {
            "PU_DO": f"{self.pickup_location_id}_{self.dropoff_location_id}",
            "trip_distance": self.trip_distance,
        }


def decode_ride_event(encoded_data: Any) -> RideEvent:
    """Decode one record's base64 ``kinesis.data`` and validate the ride event in it."""
    payload = decode_payload(encoded_data)
    document = parse_json(payload)
    return validate_ride_event(document)


def decode_payload(encoded_data: Any) -> bytes:
    """Turn standard base64 text into the payload bytes, rejecting encodings we cannot read."""
    if not isinstance(encoded_data, str):
        raise InvalidRideEvent(
            f"kinesis.data must be a base64 string, got {type(encoded_data).__name__}"
        )
    if len(encoded_data) > MAX_ENCODED_BYTES:
        raise InvalidRideEvent(
            f"payload of about {len(encoded_data) * 3 // 4} bytes is over the 1 MiB Kinesis "
            "record limit; send one ride per record"
        )
    try:
        payload = base64.b64decode(encoded_data, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidRideEvent(_describe_bad_base64(encoded_data, error)) from None

    if payload.startswith(KPL_AGGREGATION_MAGIC):
        raise InvalidRideEvent(
            "payload is a KPL-aggregated record (magic bytes F3 89 9A C2); "
            "disable aggregation in the producer or deaggregate before this function"
        )
    if payload.startswith(GZIP_MAGIC):
        raise InvalidRideEvent(
            "payload is gzip-compressed (magic bytes 1F 8B); send uncompressed UTF-8 JSON"
        )
    return payload


def parse_json(payload: bytes) -> Any:
    """Parse UTF-8 JSON, naming the byte or character where it goes wrong."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidRideEvent(
            f"payload is not valid UTF-8: byte 0x{payload[error.start]:02X} at offset {error.start}"
        ) from None

    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidRideEvent("payload is JSON nested too deeply to parse") from None
    except json.JSONDecodeError as error:
        if _looks_like_base64(payload):
            raise InvalidRideEvent(
                "payload is base64 text, not JSON: the data was base64-encoded twice; "
                "encode the JSON once"
            ) from None
        raise InvalidRideEvent(
            f"payload is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None


def validate_ride_event(document: Any) -> RideEvent:
    """Check the event's fields and normalize its numbers."""
    if not isinstance(document, dict):
        raise InvalidRideEvent(
            f"ride event must be a JSON object with 'ride' and 'ride_id', "
            f"got a JSON {_json_type_name(document)}"
        )
    if "ride" not in document:
        raise InvalidRideEvent("ride event has no 'ride' field")
    if "ride_id" not in document:
        raise InvalidRideEvent("ride event has no 'ride_id' field")

    ride = document["ride"]
    if not isinstance(ride, dict):
        raise InvalidRideEvent(f"'ride' must be a JSON object, got a JSON {_json_type_name(ride)}")

    return RideEvent(
        ride_id=validate_ride_id(document["ride_id"]),
        pickup_location_id=parse_location_id(ride, "PULocationID"),
        dropoff_location_id=parse_location_id(ride, "DOLocationID"),
        trip_distance=parse_trip_distance(ride),
    )


def validate_ride_id(ride_id: Any) -> int | str:
    """Accept a non-empty string or an integer, the values that make a stable partition key."""
    if isinstance(ride_id, bool) or not isinstance(ride_id, int | str):
        raise InvalidRideEvent(
            f"'ride_id' must be a string or an integer, got {_show(ride_id)} "
            f"({_json_type_name(ride_id)})"
        )
    if isinstance(ride_id, str) and not ride_id:
        raise InvalidRideEvent("'ride_id' must not be empty")
    if len(str(ride_id)) > MAX_RIDE_ID_LENGTH:
        raise InvalidRideEvent(
            f"'ride_id' is {len(str(ride_id))} characters long; "
            f"a Kinesis partition key allows at most {MAX_RIDE_ID_LENGTH}"
        )
    return ride_id


def parse_location_id(ride: dict[str, Any], field: str) -> int:
    """Normalize a TLC zone id to an int: ``130``, ``130.0`` and ``"130"`` are the same zone."""
    if field not in ride:
        raise InvalidRideEvent(f"ride has no '{field}' field")

    value = ride[field]
    number = _parse_number(value, field)
    if not number.is_integer() or number < 1:
        raise InvalidRideEvent(
            f"'{field}' must be a positive whole number (a TLC zone id), got {_show(value)}"
        )
    return int(number)


def parse_trip_distance(ride: dict[str, Any]) -> float:
    """Normalize the trip distance in miles to a finite, non-negative float."""
    if "trip_distance" not in ride:
        raise InvalidRideEvent("ride has no 'trip_distance' field")

    value = ride["trip_distance"]
    distance = _parse_number(value, "trip_distance")
    if distance < 0:
        raise InvalidRideEvent(f"'trip_distance' must not be negative, got {_show(value)}")
    return distance


def _parse_number(value: Any, field: str) -> float:
    """Read a JSON number, or a string that is exactly a decimal number, as a finite float."""
    if isinstance(value, bool) or value is None:
        raise InvalidRideEvent(f"'{field}' must be a number, got {_show(value)}")

    if not isinstance(value, int | float) and not (
        isinstance(value, str) and _DECIMAL_NUMBER.fullmatch(value)
    ):
        raise InvalidRideEvent(
            f"'{field}' must be a number or a string holding exactly one, got {_show(value)}"
        )

    try:
        number = float(value)
    except OverflowError:
        # JSON integers have no size limit, floats do.
        number = math.inf

    if not math.isfinite(number):
        raise InvalidRideEvent(f"'{field}' must be finite, got {_show(value)}")
    return number


def _describe_bad_base64(encoded_data: str, error: Exception) -> str:
    if "-" in encoded_data or "_" in encoded_data:
        return (
            "kinesis.data is not standard base64: it contains '-' or '_', "
            "so it looks URL-safe encoded; encode with the standard alphabet (+ and /)"
        )
    return f"kinesis.data is not valid base64 ({error}); encode the UTF-8 JSON with standard base64"


def _looks_like_base64(payload: bytes) -> bool:
    stripped = payload.strip()
    return (
        len(stripped) >= 8 and len(stripped) % 4 == 0 and bool(_STANDARD_BASE64.fullmatch(stripped))
    )


def _json_type_name(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    """Render a received value for an error message, cut short so no log line carries a payload."""
    text = json.dumps(value) if isinstance(value, str | bool | None) else repr(value)
    if len(text) > _SHOWN_VALUE_CHARS:
        return text[:_SHOWN_VALUE_CHARS] + "..."
    return text
