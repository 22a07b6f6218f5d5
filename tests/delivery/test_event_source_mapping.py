"""The local event source mapping retries, bisects, expires and discards as Lambda does.

The behaviour checked here is the one the AWS Lambda Developer Guide describes for Kinesis
("Using AWS Lambda with Amazon Kinesis": error handling, reporting batch item failures,
bisecting a batch, the on-failure invocation record). Every test runs the service built by
``model.init`` on records of a moto stream. Where a model must fail on purpose, a wrapper
around the real model raises (nothing real fails on demand), and the test states it.
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from local_stack.event_source_mapping import MappingSettings
from tests.delivery.stack import RecordingHandler, read_march_rides

# These tests start a moto server.
pytestmark = pytest.mark.integration

POISON_DISTANCE = 99.99
ISO_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class PoisonModel:
    """Stub around the real model: raises for any batch holding a ride of the poison distance."""

    def __init__(self, model) -> None:
        self.model = model

    def predict(self, features):
        if any(row["trip_distance"] == POISON_DISTANCE for row in features):
            raise ValueError(f"cannot predict a ride of {POISON_DISTANCE} miles")
        return self.model.predict(features)


class FlakyModel:
    """Stub around the real model: raises on its first ``failures`` calls, then predicts."""

    def __init__(self, model, failures: int) -> None:
        self.model = model
        self.failures = failures

    def predict(self, features):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("model backend unavailable")
        return self.model.predict(features)


def rides_with_poison(mirror, count: int, poison_index: int) -> list[dict]:
    rides = [json.loads(json.dumps(ride)) for ride in read_march_rides(str(mirror), count)]
    rides[poison_index]["ride"]["trip_distance"] = POISON_DISTANCE
    return rides


def delivered_ride_ids(stack) -> list:
    return sorted(event["prediction"]["ride_id"] for event in stack.output_events())


def test_mapping_bisects_failing_batch_to_the_poison_record(stack, tlc_mirror):
    # Given 8 rides whose 6th makes the model raise (stub around the real model)
    rides = rides_with_poison(tlc_mirror, 8, poison_index=5)
    sequence_numbers = stack.put_rides(rides)
    service = stack.service()
    service.model = PoisonModel(service.model)
    handler = RecordingHandler(service.lambda_handler)

    # When the mapping runs with bisection on and no retries
    mapping = stack.run_mapping(
        handler, batch_size=8, bisect_batch_on_function_error=True, maximum_retry_attempts=0
    )

    # Then the batch is halved down to the poison record, which alone is discarded
    invoked = [
        [sequence_numbers.index(s) for s in batch] for batch in handler.invoked_sequence_numbers()
    ]
    assert invoked == [
        [0, 1, 2, 3, 4, 5, 6, 7],
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [4, 5],
        [4],
        [5],
        [6, 7],
    ]
    assert mapping.stats.bisections == 3
    [failure] = stack.failure_records()
    assert failure["KinesisBatchInfo"]["startSequenceNumber"] == sequence_numbers[5]
    assert failure["KinesisBatchInfo"]["batchSize"] == 1
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    # The poison record was in the batches of 8, 4, 2 and 1.
    assert failure["requestContext"]["approximateInvokeCount"] == 4
    assert delivered_ride_ids(stack) == [0, 1, 2, 3, 4, 6, 7]


def test_mapping_retry_attempts_exhausted_sends_invocation_record(stack, tlc_mirror):
    # Given 4 rides, one of which makes the model raise (stub around the real model)
    rides = rides_with_poison(tlc_mirror, 4, poison_index=2)
    sequence_numbers = stack.put_rides(rides)
    service = stack.service()
    service.model = PoisonModel(service.model)
    handler = RecordingHandler(service.lambda_handler)

    # When the mapping retries the whole batch twice, without bisecting
    mapping = stack.run_mapping(
        handler, batch_size=10, bisect_batch_on_function_error=False, maximum_retry_attempts=2
    )

    # Then the batch is invoked three times and its metadata sent to the on-failure queue
    assert handler.invoked_sequence_numbers() == [sequence_numbers] * 3
    [failure] = stack.failure_records()
    first, last = stack.kinesis.get_records(
        ShardIterator=stack.kinesis.get_shard_iterator(
            StreamName=stack.input_stream,
            ShardId="shardId-000000000000",
            ShardIteratorType="TRIM_HORIZON",
        )["ShardIterator"]
    )["Records"][:: len(rides) - 1]
    assert UUID.fullmatch(failure["requestContext"]["requestId"])
    assert ISO_MILLIS.fullmatch(failure["timestamp"])
    assert failure == {
        "requestContext": {
            "requestId": failure["requestContext"]["requestId"],
            "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:stream-model-duration",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 3,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "version": "1.0",
        "timestamp": failure["timestamp"],
        "KinesisBatchInfo": {
            "shardId": "shardId-000000000000",
            "startSequenceNumber": sequence_numbers[0],
            "endSequenceNumber": sequence_numbers[-1],
            "approximateArrivalOfFirstRecord": iso_millis(first["ApproximateArrivalTimestamp"]),
            "approximateArrivalOfLastRecord": iso_millis(last["ApproximateArrivalTimestamp"]),
            "batchSize": 4,
            "streamArn": mapping.stream_arn,
        },
    }
    assert mapping.stats.retries == 2
    assert stack.output_events() == []


def test_mapping_partial_failure_retries_from_lowest_reported(stack, tlc_mirror):
    # Given 8 records, of which the 4th and 6th are invalid, and a service with no
    # dead-letter queue, so that it reports them in batchItemFailures
    rides = list(read_march_rides(str(tlc_mirror), 8))
    payloads = [json.dumps(ride).encode() for ride in rides]
    payloads[3] = payloads[5] = b"not json"
    sequence_numbers = stack.put(payloads, [str(i) for i in range(8)])
    handler = RecordingHandler(stack.service(dead_letter_queue_url=None).lambda_handler)

    # When the mapping runs with one retry
    mapping = stack.run_mapping(handler, batch_size=10, maximum_retry_attempts=1)

    # Then Lambda checkpoints before the lowest reported record and retries from it
    assert handler.responses[0]["batchItemFailures"] == [
        {"itemIdentifier": sequence_numbers[3]},
        {"itemIdentifier": sequence_numbers[5]},
    ]
    assert handler.invoked_sequence_numbers() == [sequence_numbers, sequence_numbers[3:]]
    # And after the retry fails the same way, the rest of the batch is discarded
    [failure] = stack.failure_records()
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 2
    assert failure["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert failure["KinesisBatchInfo"]["startSequenceNumber"] == sequence_numbers[3]
    assert failure["KinesisBatchInfo"]["batchSize"] == 5
    # The records after the lowest failure were delivered twice: at least once, not once
    assert delivered_ride_ids(stack) == [0, 1, 2, 4, 4, 6, 6, 7, 7]
    assert mapping.stats.partial_failures == 2


def test_mapping_record_age_discards_before_invoking(stack, tlc_mirror):
    # Given 3 rides, and a clock that runs 2 minutes ahead of their arrival
    sequence_numbers = stack.put_rides(list(read_march_rides(str(tlc_mirror), 3)))
    handler = RecordingHandler(stack.service().lambda_handler)

    def clock() -> datetime:
        return datetime.now(UTC) + timedelta(minutes=2)

    # When the mapping runs with a maximum record age of 60 s
    mapping = stack.run_mapping(handler, maximum_record_age_in_seconds=60, clock=clock)

    # Then the records are discarded unseen, and their metadata kept
    assert not handler.events
    [failure] = stack.failure_records()
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    assert failure["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in failure
    assert failure["KinesisBatchInfo"]["startSequenceNumber"] == sequence_numbers[0]
    assert failure["KinesisBatchInfo"]["endSequenceNumber"] == sequence_numbers[2]
    assert mapping.stats.records_expired == 3


def test_mapping_record_age_ends_endless_retries(stack, tlc_mirror):
    # Given a batch the model always fails on (stub), endless retries, and a clock that
    # moves 25 s ahead at each poll
    rides = rides_with_poison(tlc_mirror, 2, poison_index=0)
    stack.put_rides(rides)
    service = stack.service()
    service.model = PoisonModel(service.model)
    handler = RecordingHandler(service.lambda_handler)
    started = datetime.now(UTC)
    polls = []

    def clock() -> datetime:
        polls.append(None)
        return started + timedelta(seconds=25 * (len(polls) - 1))

    # When the mapping runs with a maximum record age of 60 s
    stack.run_mapping(
        handler,
        maximum_retry_attempts=-1,
        maximum_record_age_in_seconds=60,
        bisect_batch_on_function_error=False,
        clock=clock,
    )

    # Then the batch is retried until it is older than 60 s (at 0, 25 and 50 s), then discarded
    assert len(handler.events) == 3
    [failure] = stack.failure_records()
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["responseContext"]["functionError"] == "Unhandled"
    assert failure["KinesisBatchInfo"]["batchSize"] == 2


def test_mapping_model_failure_is_retried_through_bisection(stack, tlc_mirror):
    # Given 4 rides and an invalid record, and a model that fails its first call (stub)
    rides = list(read_march_rides(str(tlc_mirror), 4))
    payloads = [json.dumps(ride).encode() for ride in rides] + [b"not json"]
    stack.put(payloads, ["0", "1", "2", "3", "bad"])
    service = stack.service()
    service.model = FlakyModel(service.model, failures=1)
    handler = RecordingHandler(service.lambda_handler)

    # When the mapping runs with bisection
    mapping = stack.run_mapping(handler, batch_size=10, bisect_batch_on_function_error=True)

    # Then the failed invocation raised the model's error, and its halves succeeded
    assert [str(error) for error in handler.errors] == ["model backend unavailable"]
    assert [len(batch) for batch in handler.invoked_sequence_numbers()] == [5, 2, 3]
    assert mapping.stats.function_errors == 1
    assert delivered_ride_ids(stack) == [0, 1, 2, 3]
    # And the invalid record was dead-lettered once: nothing is sent before the model succeeds
    assert [message["partitionKey"] for message in stack.dead_letters()] == ["bad"]


def test_mapping_keeps_order_per_shard(make_stack, tlc_mirror):
    # Given 60 rides on a stream of 2 shards, and a model that fails every third call (stub)
    stack = make_stack(shard_count=2)
    rides = list(read_march_rides(str(tlc_mirror), 60))
    stack.put_rides(rides)
    service = stack.service()
    real_model = service.model
    calls = []

    class EveryThirdCallFails:
        def predict(self, features):
            calls.append(None)
            if len(calls) % 3 == 0:
                raise RuntimeError("model backend unavailable")
            return real_model.predict(features)

    service.model = EveryThirdCallFails()
    invocations = []

    def handler(event, context):
        shard = event["Records"][0]["eventID"].split(":")[0]
        sequence_numbers = [int(r["kinesis"]["sequenceNumber"]) for r in event["Records"]]
        try:
            response = service.lambda_handler(event, context)
        except RuntimeError:
            invocations.append((shard, sequence_numbers, False))
            raise
        invocations.append((shard, sequence_numbers, True))
        return response

    # When the mapping runs with small batches
    stack.run_mapping(handler, batch_size=7, maximum_retry_attempts=-1)

    # Then each shard's records were handled once each, in sequence order
    shards = {shard for shard, _, _ in invocations}
    assert len(shards) == 2
    for shard in shards:
        mine = [(numbers, ok) for s, numbers, ok in invocations if s == shard]
        handled = [n for numbers, ok in mine if ok for n in numbers]
        assert handled == sorted(handled)
        assert len(handled) == len(set(handled))
        # And a failed batch is retried from its first record: nothing skips ahead of it
        for (numbers, ok), (next_numbers, _) in itertools.pairwise(mine):
            if not ok:
                assert next_numbers[0] == numbers[0]
    assert delivered_ride_ids(stack) == list(range(60))


def test_mapping_unknown_item_identifier_retries_whole_batch(stack, tlc_mirror):
    # Given a handler that reports an empty itemIdentifier, which the service never does (stub)
    sequence_numbers = stack.put_rides(list(read_march_rides(str(tlc_mirror), 3)))
    handler = RecordingHandler(
        lambda _event, _context: {"batchItemFailures": [{"itemIdentifier": ""}]}
    )

    # When the mapping runs with one retry
    stack.run_mapping(handler, maximum_retry_attempts=1)

    # Then Lambda treats it as a failure of the whole batch
    assert handler.invoked_sequence_numbers() == [sequence_numbers, sequence_numbers]
    [failure] = stack.failure_records()
    assert failure["KinesisBatchInfo"]["batchSize"] == 3


def test_mapping_timeout_is_function_error(stack, tlc_mirror):
    # Given a handler that runs past the function timeout (stub: it only sleeps)
    import time  # pylint: disable=import-outside-toplevel

    stack.put_rides(list(read_march_rides(str(tlc_mirror), 1)))

    def slow_handler(_event, _context):
        time.sleep(1.2)
        return {"batchItemFailures": []}

    # When the mapping runs with a 1 s timeout and no retries
    mapping = stack.run_mapping(
        slow_handler, function_timeout_seconds=1.0, maximum_retry_attempts=0
    )

    # Then the invocation counts as failed, as a timed-out Lambda invocation does
    assert mapping.stats.function_errors == 1
    [failure] = stack.failure_records()
    assert failure["responseContext"]["functionError"] == "Unhandled"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"maximum_record_age_in_seconds": 30},
            "maximum_record_age_in_seconds must be -1 (no limit) or from 60 to 604800, got 30",
        ),
        (
            {"maximum_retry_attempts": 10_001},
            "maximum_retry_attempts must be -1 (retry until the record expires) or from 0 "
            "to 10000, got 10001",
        ),
        ({"batch_size": 0}, "batch_size must be from 1 to 10000, got 0"),
    ],
)
def test_mapping_settings_rejects_values_lambda_rejects(settings, message):
    with pytest.raises(ValueError) as raised:
        MappingSettings(**settings)

    assert str(raised.value) == message


def iso_millis(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
