"""Builders of Lambda Kinesis events and ride payloads for the service tests."""

from __future__ import annotations

import base64
import json
from typing import Any

STREAM_ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/ride_events"
FIRST_SEQUENCE_NUMBER = 49630081666084879290581185630324770398608704880802529282


def ride_event(
    ride_id: Any = 256, pickup: Any = 130, dropoff: Any = 205, distance: Any = 3.66
) -> dict:
    return {
        "ride": {"PULocationID": pickup, "DOLocationID": dropoff, "trip_distance": distance},
        "ride_id": ride_id,
    }


def encode(document: Any) -> str:
    """Standard base64 of the UTF-8 JSON, as producers send it."""
    return base64.b64encode(json.dumps(document).encode("utf-8")).decode("ascii")


def kinesis_record(data: str, index: int = 0, partition_key: str = "256") -> dict:
    """One record of a Lambda Kinesis event, with a realistic sequence number."""
    sequence_number = str(FIRST_SEQUENCE_NUMBER + index)
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": sequence_number,
            "data": data,
            "approximateArrivalTimestamp": 1_700_000_000.123,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{sequence_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/stream-model-duration",
        "awsRegion": "eu-west-1",
        "eventSourceARN": STREAM_ARN,
    }


def kinesis_event(*encoded_payloads: str) -> dict:
    return {"Records": [kinesis_record(data, index) for index, data in enumerate(encoded_payloads)]}


def sequence_number(index: int) -> str:
    return str(FIRST_SEQUENCE_NUMBER + index)
