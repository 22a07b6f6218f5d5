"""Delivery is at least once: duplicates happen, and (ride_id, version) removes them.

Two real causes of duplicates, each produced with faults injected by the
``FaultInjectingProxy`` in front of moto:

- a PutRecords response lost after moto stored the records: the client cannot know, reports
  the records, and the retry stores them again;
- a partial batch failure: Lambda retries from the lowest reported record, so the records
  after it that were already delivered are delivered again.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config

from local_stack.fault_injection import FaultPlan
from prediction_delivery import KinesisCallback, RetryPolicy
from tests.delivery.stack import RecordingHandler, deduplicate, read_march_rides

# These tests start servers: moto and the fault-injecting proxy.
pytestmark = pytest.mark.integration


def test_at_least_once_lost_response_duplicates_then_deduplicates(stack, proxy, tlc_mirror):
    # Given 10 rides, and an output whose first response is lost after moto stored the
    # records (injected). The client's read timeout is 0.5 s, so that the test is quick
    rides = list(read_march_rides(str(tlc_mirror), 10))
    stack.put_rides(rides)
    service = stack.service(kinesis_endpoint_url=proxy.endpoint_url)
    kinesis_client = boto3.client(
        "kinesis",
        endpoint_url=proxy.endpoint_url,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=0.5, read_timeout=0.5),
    )
    service.callbacks = [
        KinesisCallback(kinesis_client, stack.output_stream, RetryPolicy(max_attempts=1))
    ]
    handler = RecordingHandler(service.lambda_handler)
    mapping = stack.mapping(handler, batch_size=10)
    proxy.set_plan(FaultPlan(lost_response_rate=1.0, lost_response_hold_seconds=1.0))

    # When the first invocation times out reading the response, and the retry gets through
    mapping.poll_once()
    proxy.set_plan(FaultPlan())
    mapping.poll_once()

    # Then every prediction is on the stream twice
    output = stack.output_events()
    duplicates = len(output) - len(deduplicate(output))
    print(f"\nlost responses: {proxy.counters.lost_responses}, duplicates: {duplicates}")
    assert len(handler.responses[0]["batchItemFailures"]) == 10
    assert handler.responses[1]["batchItemFailures"] == []
    assert duplicates == 10
    # And deduplicating by (ride_id, version) leaves exactly one per ride
    assert sorted(deduplicate(output)) == [(ride["ride_id"], stack.model_version) for ride in rides]


def test_at_least_once_partial_failures_redeliver_later_records(stack, proxy, tlc_mirror):
    # Given 300 rides, 30% of output entries throttled (injected), one attempt per invocation,
    # so that every throttled entry becomes a partial batch failure
    rides = list(read_march_rides(str(tlc_mirror), 300))
    stack.put_rides(rides)
    proxy.set_plan(FaultPlan(entry_failure_rate=0.3, seed=11))
    service = stack.service(
        kinesis_endpoint_url=proxy.endpoint_url, retry_policy=RetryPolicy(max_attempts=1)
    )

    # When the mapping retries until every record got through
    mapping = stack.run_mapping(service.lambda_handler, batch_size=50, maximum_retry_attempts=-1)

    # Then later records were delivered more than once
    output = stack.output_events()
    unique = deduplicate(output)
    duplicates = len(output) - len(unique)
    print(
        f"\npartial failures: {mapping.stats.partial_failures}, "
        f"records redelivered: {mapping.stats.records_redelivered}, duplicates: {duplicates}"
    )
    assert mapping.stats.partial_failures > 0
    assert duplicates > 0
    # And the duplicates are equal copies: one per (ride_id, version) is the whole result
    assert sorted(unique) == [(ride["ride_id"], stack.model_version) for ride in rides]
    for event in output:
        assert event == unique[(event["prediction"]["ride_id"], event["version"])]
    assert stack.failure_records() == []
