"""No log line carries a payload or a secret, however large or broken the input.

The handler runs on records of 900 KiB, on every error path that logs (invalid records,
a dead-letter queue that does not exist, PutRecords failures injected by the fault proxy),
and its whole stdout is checked line by line.
"""

from __future__ import annotations

import json

import pytest

from local_stack.fault_injection import FaultPlan
from prediction_delivery import RetryPolicy
from tests.delivery.stack import RemainingTime, encode, kinesis_record

# These tests start servers: moto and the fault-injecting proxy.
pytestmark = pytest.mark.integration

MAX_LINE_BYTES = 1000
PAYLOAD_SIZE = 900 * 1024
SECRET = "canary-secret-0123456789abcdefghijklmnopqrstuv"
GOOD_RIDE = {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}


def large_bad_payloads() -> dict[str, bytes]:
    """Records of 900 KiB, each invalid in its own way."""
    filler = "x" * PAYLOAD_SIZE
    return {
        "not_json": b"{" + filler.encode(),
        "long_ride_id": json.dumps({"ride": GOOD_RIDE, "ride_id": filler}).encode(),
        "long_location": json.dumps(
            {"ride": {**GOOD_RIDE, "PULocationID": filler}, "ride_id": 1}
        ).encode(),
        "long_number": json.dumps(
            {"ride": {**GOOD_RIDE, "trip_distance": "9" * PAYLOAD_SIZE}, "ride_id": 1}
        ).encode(),
        "long_array": json.dumps([filler]).encode(),
    }


def large_event() -> dict:
    ride = encode(json.dumps({"ride": GOOD_RIDE, "ride_id": "good"}).encode())
    records = [kinesis_record(ride, "1", "good")]
    for index, (name, payload) in enumerate(large_bad_payloads().items(), start=2):
        records.append(kinesis_record(encode(payload), str(index), name))
    return {"Records": records}


def test_log_lines_stay_short_with_900_kib_payloads(stack, proxy, service_output):
    # Given 900 KiB invalid records, a dead-letter queue that does not exist, and an output
    # whose calls fail (injected), so that every logging path runs
    proxy.set_plan(FaultPlan(server_error_rate=0.5, entry_failure_rate=0.5, seed=1))
    service = stack.service(
        kinesis_endpoint_url=proxy.endpoint_url,
        dead_letter_queue_url=f"{stack.endpoint_url}/123456789012/no-such-queue",
        retry_policy=RetryPolicy(max_attempts=3, base_delay_seconds=0.0, max_delay_seconds=0.0),
    )
    service_output()

    # When the handler takes them
    response = service.lambda_handler(large_event(), RemainingTime(60_000))

    # Then every line is short JSON, and none repeats the payload
    lines = service_output()
    print(f"\n{len(lines)} lines, longest {max(len(line.encode()) for line in lines)} bytes")
    assert len(response["batchItemFailures"]) >= 5
    assert len(lines) >= 8
    for line in lines:
        assert len(line.encode()) <= MAX_LINE_BYTES, line[:200]
        assert "x" * 100 not in line
        assert "9" * 100 not in line
        json.loads(line)


def test_logs_never_carry_the_secret_key(stack, proxy, service_output, monkeypatch):
    # Given a service whose AWS clients sign with a recognizable secret key
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SECRET + "-token")
    proxy.set_plan(FaultPlan(server_error_rate=1.0))
    service = stack.service(
        kinesis_endpoint_url=proxy.endpoint_url,
        dead_letter_queue_url=f"{stack.endpoint_url}/123456789012/no-such-queue",
        retry_policy=RetryPolicy(max_attempts=2, base_delay_seconds=0.0, max_delay_seconds=0.0),
    )
    service_output()

    # When every call it makes fails and is logged
    service.lambda_handler(large_event(), RemainingTime(60_000))

    # Then the secret appears in no line
    output = "\n".join(service_output())
    assert "Dead-letter queue send failed" in output
    assert "PutRecords failed" in output
    assert SECRET not in output
