"""The service's stdout: one JSON batch line, rate-limited invalid-record lines, EMF metrics.

Each test runs the handler built by ``model.init`` (real model, moto output stream and
dead-letter queue) and parses what it wrote to stdout, as CloudWatch Logs would receive it.
"""

from __future__ import annotations

import json

import pytest

from local_stack.fault_injection import FaultPlan
from model import MAX_INVALID_RECORDS_LOGGED
from prediction_delivery import RetryPolicy
from tests.delivery.stack import RemainingTime, encode, kinesis_record

# These tests start servers: moto, and in some the fault-injecting proxy.
pytestmark = pytest.mark.integration

GOOD_RIDE = {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}
# Keys Powertools writes on every line.
POWERTOOLS_KEYS = {"level", "location", "message", "timestamp", "service"}
BATCH_FIELDS = {
    "records",
    "valid",
    "invalid",
    "invalid_not_logged",
    "dead_lettered",
    "delivered",
    "failed",
    "duration_ms",
    "prediction_ms",
    "model_version",
    "request_id",
    "cold_start",
}
METRIC_NAMES = [
    "RecordsProcessed",
    "InvalidRecords",
    "DeadLetteredRecords",
    "FailedRecords",
    "DeliveryFailures",
    "PredictionLatency",
]


def ride_data(ride_id) -> str:
    return encode(json.dumps({"ride": GOOD_RIDE, "ride_id": ride_id}).encode())


def event_of(*datas) -> dict:
    return {"Records": [kinesis_record(data, str(100 + i)) for i, data in enumerate(datas)]}


def parse(lines: list[str]) -> list[dict]:
    return [json.loads(line) for line in lines]


def with_message(records: list[dict], message: str) -> list[dict]:
    return [record for record in records if record.get("message") == message]


def emf_blobs(records: list[dict]) -> list[dict]:
    return [record for record in records if "_aws" in record]


def test_batch_log_has_exactly_the_batch_fields(stack, service_output):
    # Given a batch of 3 rides and 2 invalid records, and a service with a dead-letter queue
    service = stack.service()
    event = event_of(ride_data(1), "%%%", ride_data(2), encode(b"[]"), ride_data(3))
    service_output()

    # When the handler takes it
    service.lambda_handler(event, RemainingTime(60_000, request_id="request-1"))

    # Then one line describes the batch, with exactly these fields and values
    [batch] = with_message(parse(service_output()), "Batch processed")
    assert set(batch) == POWERTOOLS_KEYS | BATCH_FIELDS
    assert batch["level"] == "INFO"
    assert batch["service"] == "stream-model-duration"
    counts = {name: batch[name] for name in BATCH_FIELDS - {"duration_ms", "prediction_ms"}}
    assert counts == {
        "records": 5,
        "valid": 3,
        "invalid": 2,
        "invalid_not_logged": 0,
        "dead_lettered": 2,
        "delivered": 3,
        "failed": 0,
        "model_version": stack.model_version,
        "request_id": "request-1",
        "cold_start": True,
    }
    assert batch["duration_ms"] >= batch["prediction_ms"] > 0


def test_batch_log_cold_start_only_first(stack, service_output):
    service = stack.service()
    service_output()

    service.lambda_handler(event_of(ride_data(1)), RemainingTime(60_000, "request-1"))
    service.lambda_handler(event_of(ride_data(2)), RemainingTime(60_000, "request-2"))

    batches = with_message(parse(service_output()), "Batch processed")
    assert [(b["request_id"], b["cold_start"]) for b in batches] == [
        ("request-1", True),
        ("request-2", False),
    ]


def test_invalid_record_log_names_sequence_number_and_reason(stack, service_output):
    service = stack.service()
    service_output()

    service.lambda_handler(event_of(ride_data(1), encode(b"42")), RemainingTime(60_000))

    [line] = with_message(parse(service_output()), "Invalid ride event")
    assert line["level"] == "WARNING"
    assert line["sequence_number"] == "101"
    assert line["partition_key"] == "k"
    assert line["reason"] == (
        "ride event must be a JSON object with 'ride' and 'ride_id', got a JSON number"
    )


def test_invalid_record_logs_are_rate_limited(stack, service_output):
    # Given a batch of 100 invalid records
    service = stack.service()
    service_output()

    # When the handler takes it
    service.lambda_handler(event_of(*[encode(b"[]")] * 100), RemainingTime(60_000))

    # Then at most 20 lines name an invalid record, and the batch line counts the others
    records = parse(service_output())
    assert len(with_message(records, "Invalid ride event")) == MAX_INVALID_RECORDS_LOGGED == 20
    [batch] = with_message(records, "Batch processed")
    assert batch["invalid"] == 100
    assert batch["invalid_not_logged"] == 80


def test_metrics_emf_blob_carries_every_metric(stack, service_output):
    # Given 2 rides and 1 invalid record
    service = stack.service()
    service_output()

    # When the handler takes them
    service.lambda_handler(event_of(ride_data(1), "%%%", ride_data(2)), RemainingTime(60_000))

    # Then one embedded-metric-format blob carries every metric with its unit and value
    [blob] = emf_blobs(parse(service_output()))
    [directive] = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "StreamModelDuration"
    assert directive["Dimensions"] == [["service"]]
    assert [metric["Name"] for metric in directive["Metrics"]] == METRIC_NAMES
    assert {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]} == {
        "RecordsProcessed": "Count",
        "InvalidRecords": "Count",
        "DeadLetteredRecords": "Count",
        "FailedRecords": "Count",
        "DeliveryFailures": "Count",
        "PredictionLatency": "Milliseconds",
    }
    counts = {name: blob[name] for name in METRIC_NAMES[:-1]}
    assert counts == {
        "RecordsProcessed": [3.0],
        "InvalidRecords": [1.0],
        "DeadLetteredRecords": [1.0],
        "FailedRecords": [0.0],
        "DeliveryFailures": [0.0],
    }
    assert blob["PredictionLatency"][0] > 0
    assert isinstance(blob["_aws"]["Timestamp"], int)


def test_metrics_count_delivery_failures(stack, proxy, service_output):
    # Given an output that throttles every entry (injected), and one attempt per record
    proxy.set_plan(FaultPlan(entry_failure_rate=1.0))
    service = stack.service(
        kinesis_endpoint_url=proxy.endpoint_url, retry_policy=RetryPolicy(max_attempts=1)
    )
    service_output()

    # When the handler takes 3 rides
    response = service.lambda_handler(
        event_of(ride_data(1), ride_data(2), ride_data(3)), RemainingTime(60_000)
    )

    # Then the metrics and the batch line count 3 delivery failures
    records = parse(service_output())
    [blob] = emf_blobs(records)
    [batch] = with_message(records, "Batch processed")
    assert len(response["batchItemFailures"]) == 3
    assert blob["DeliveryFailures"] == [3.0]
    assert blob["FailedRecords"] == [3.0]
    assert (batch["delivered"], batch["failed"]) == (0, 3)
