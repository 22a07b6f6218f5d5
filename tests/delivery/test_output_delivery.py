"""Output delivery failures: undelivered predictions are reported, and never past the deadline.

The faults are injected by ``local_stack.fault_injection.FaultInjectingProxy``, an HTTP proxy
in front of the moto server. The service's Kinesis client sends to the proxy, which forwards
to moto and injects the faults of the test's ``FaultPlan``.
"""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.config import Config

from local_stack.fault_injection import FaultPlan
from model import ModelService
from prediction_delivery import KinesisCallback, RetryPolicy
from tests.delivery.stack import RecordingHandler, RemainingTime, read_march_rides

# These tests start servers: moto, and in some the fault-injecting proxy.
pytestmark = pytest.mark.integration

NO_WAIT_RETRIES = RetryPolicy(max_attempts=3, base_delay_seconds=0.0, max_delay_seconds=0.0)


def short_timeout_service(stack, proxy, retry_policy: RetryPolicy) -> ModelService:
    """The service with a Kinesis client of 1 s timeouts, so that a test waits 1 s, not 10."""
    service = stack.service(kinesis_endpoint_url=proxy.endpoint_url)
    kinesis_client = boto3.client(
        "kinesis",
        endpoint_url=proxy.endpoint_url,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=0.5,
            read_timeout=0.5,
        ),
    )
    service.callbacks = [KinesisCallback(kinesis_client, stack.output_stream, retry_policy)]
    return service


def lambda_event(stack, count: int) -> dict:
    """Read ``count`` rides back from the input stream as the event Lambda would send."""
    events = []
    mapping = stack.mapping(lambda event, _context: events.append(event), batch_size=count)
    mapping.poll_once()
    return events[0]


def test_delivery_throttled_everywhere_reports_every_record(stack, proxy, tlc_mirror):
    # Given an output stream that throttles every entry (injected), and 3 rides
    proxy.set_plan(FaultPlan(entry_failure_rate=1.0))
    sequence_numbers = stack.put_rides(list(read_march_rides(str(tlc_mirror), 3)))
    service = stack.service(kinesis_endpoint_url=proxy.endpoint_url, retry_policy=NO_WAIT_RETRIES)
    handler = RecordingHandler(service.lambda_handler)

    # When the mapping delivers the rides once, without retrying the batch
    stack.run_mapping(handler, maximum_retry_attempts=0)

    # Then each entry was tried three times, and every input record was reported
    assert handler.responses[0]["batchItemFailures"] == [
        {"itemIdentifier": number} for number in sequence_numbers
    ]
    assert proxy.counters.put_records_calls == 3
    assert proxy.counters.entries_failed == 9
    assert stack.output_events() == []


def test_delivery_partial_throttling_reports_exactly_the_undelivered(stack, proxy, tlc_mirror):
    # Given half the entries throttled (injected), and no retry within the invocation
    proxy.set_plan(FaultPlan(entry_failure_rate=0.5, seed=3))
    rides = list(read_march_rides(str(tlc_mirror), 40))
    sequence_numbers = stack.put_rides(rides)
    service = stack.service(
        kinesis_endpoint_url=proxy.endpoint_url, retry_policy=RetryPolicy(max_attempts=1)
    )

    # When the handler takes the batch
    response = service.lambda_handler(lambda_event(stack, 40))

    # Then each ride is either on the output stream or reported, never both, never neither
    delivered = {event["prediction"]["ride_id"] for event in stack.output_events()}
    reported = {
        sequence_numbers.index(failure["itemIdentifier"])
        for failure in response["batchItemFailures"]
    }
    assert delivered | reported == set(range(40))
    assert delivered & reported == set()
    assert len(reported) == proxy.counters.entries_failed
    assert 0 < len(reported) < 40


def test_delivery_retries_stop_before_the_deadline(stack, proxy, tlc_mirror):
    # Given an output that throttles every entry (injected), a retry budget far larger than
    # the time left, and an invocation with 4 s left
    proxy.set_plan(FaultPlan(entry_failure_rate=1.0))
    stack.put_rides(list(read_march_rides(str(tlc_mirror), 5)))
    retries = RetryPolicy(max_attempts=1000, base_delay_seconds=0.05, max_delay_seconds=0.2)
    service = short_timeout_service(stack, proxy, retries)
    event = lambda_event(stack, 5)
    context = RemainingTime(4000)

    # When the handler takes the batch
    response = service.lambda_handler(event, context)

    # Then it retried while there was time, and returned in time with every record reported
    returned_with_ms_left = context.get_remaining_time_in_millis()
    assert len(response["batchItemFailures"]) == 5
    assert proxy.counters.put_records_calls > 3
    assert returned_with_ms_left > 500


def test_delivery_hung_call_never_started(stack, proxy, tlc_mirror):
    # Given an output that never responds (injected: the response is held back for 11 s,
    # past the production client's 10 s read timeout), and a function timeout of 5 s
    proxy.set_plan(FaultPlan(lost_response_rate=1.0, lost_response_hold_seconds=11))
    stack.put_rides(list(read_march_rides(str(tlc_mirror), 3)))
    service = stack.service(kinesis_endpoint_url=proxy.endpoint_url)
    handler = RecordingHandler(service.lambda_handler)

    # When the mapping invokes the handler once
    started = time.monotonic()
    mapping = stack.run_mapping(handler, function_timeout_seconds=5, maximum_retry_attempts=0)
    elapsed = time.monotonic() - started

    # Then the handler returned in time, reporting the records, instead of timing out
    assert mapping.stats.function_errors == 0
    assert len(handler.responses[0]["batchItemFailures"]) == 3
    assert elapsed < 5


def test_delivery_read_timeout_reports_records_it_cannot_confirm(stack, proxy, tlc_mirror):
    # Given an output whose responses are lost after moto stored the records (injected), and
    # a client that times out reading after 0.5 s
    proxy.set_plan(FaultPlan(lost_response_rate=1.0, lost_response_hold_seconds=1.0))
    stack.put_rides(list(read_march_rides(str(tlc_mirror), 4)))
    service = short_timeout_service(stack, proxy, RetryPolicy(max_attempts=1))

    # When the handler takes the batch
    response = service.lambda_handler(lambda_event(stack, 4), RemainingTime(30_000))

    # Then the records are reported although the stream contains them: the client cannot know
    assert len(response["batchItemFailures"]) == 4
    assert proxy.counters.entries_stored_unacknowledged == 4
    assert sorted(e["prediction"]["ride_id"] for e in stack.output_events()) == [0, 1, 2, 3]


def test_delivery_dead_letter_send_skipped_without_time_left(stack):
    # Given an invalid record, and an invocation with less time left than an SQS call may take
    stack.put([b"not json"], ["bad"])
    service = stack.service()
    event = lambda_event(stack, 1)

    # When the handler takes the batch with 2 s left
    response = service.lambda_handler(event, RemainingTime(2000))

    # Then the record is reported for retry instead of risking a timeout mid-send
    assert len(response["batchItemFailures"]) == 1
    assert stack.dead_letters() == []
