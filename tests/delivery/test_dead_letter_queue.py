"""Invalid records go to the dead-letter queue with their original data, never blocking a shard.

Each test runs the real path: records on a moto Kinesis stream, the local event source
mapping invoking the service built by ``model.init``, and the dead-letter messages read back
from moto's SQS and decoded.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from dead_letter_queue import MAX_MESSAGE_BYTES
from local_stack.aws import drain_queue
from tests.delivery.stack import RecordingHandler, deduplicate

# These tests start a moto server.
pytestmark = pytest.mark.integration

GOOD_RIDE = {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}
BAD_PAYLOAD = json.dumps(
    {"ride": {**GOOD_RIDE, "PULocationID": "Manhattan"}, "ride_id": "bad"}
).encode()
BAD_REASON = "'PULocationID' must be a number or a string holding exactly one, got \"Manhattan\""
# Fields of a dead-letter message that depend on when the test ran.
VOLATILE_FIELDS = ("rejectedAt", "approximateArrivalTimestamp")


def ride_payload(ride_id: str) -> bytes:
    return json.dumps({"ride": GOOD_RIDE, "ride_id": ride_id}).encode()


def stable_fields(message: dict) -> dict:
    return {name: value for name, value in message.items() if name not in VOLATILE_FIELDS}


def test_dead_letter_invalid_record_keeps_original_data(stack):
    # Given a bad record between two good ones, and a service with a dead-letter queue
    sequence_numbers = stack.put(
        [ride_payload("left"), BAD_PAYLOAD, ride_payload("right")], ["left", "bad", "right"]
    )
    handler = RecordingHandler(stack.service().lambda_handler)

    # When the event source mapping delivers the records
    mapping = stack.run_mapping(handler, batch_size=10)

    # Then the bad record is in the queue with everything needed to replay it
    stream_arn = mapping.stream_arn
    [message] = stack.dead_letters()
    assert stable_fields(message) == {
        "reason": BAD_REASON,
        "sequenceNumber": sequence_numbers[1],
        "partitionKey": "bad",
        "eventSourceARN": stream_arn,
        "shardId": "shardId-000000000000",
        "eventID": f"shardId-000000000000:{sequence_numbers[1]}",
        "modelVersion": stack.model_version,
        "data": base64.b64encode(BAD_PAYLOAD).decode("ascii"),
        "dataTruncated": False,
    }
    assert base64.b64decode(message["data"]) == BAD_PAYLOAD
    # And it blocked nothing: no record was reported, and both neighbours were predicted once
    assert handler.responses[0]["batchItemFailures"] == []
    assert mapping.stats.invocations == 1
    assert sorted(ride_id for ride_id, _ in deduplicate(stack.output_events())) == [
        "left",
        "right",
    ]
    assert len(stack.output_events()) == 2


def test_dead_letter_queue_unset_reports_record(stack):
    # Given a service without a dead-letter queue, and a mapping that retries once
    sequence_numbers = stack.put(
        [ride_payload("left"), BAD_PAYLOAD, ride_payload("right")], ["left", "bad", "right"]
    )
    handler = RecordingHandler(stack.service(dead_letter_queue_url=None).lambda_handler)

    # When the mapping delivers the records
    mapping = stack.run_mapping(handler, batch_size=10, maximum_retry_attempts=1)

    # Then the handler reports the bad record instead of dropping it
    assert handler.responses[0]["batchItemFailures"] == [{"itemIdentifier": sequence_numbers[1]}]
    # And Lambda retries from it, then discards the bad record and "right" to the on-failure queue
    assert handler.invoked_sequence_numbers() == [sequence_numbers, sequence_numbers[1:]]
    [failure] = stack.failure_records()
    assert failure["KinesisBatchInfo"]["startSequenceNumber"] == sequence_numbers[1]
    assert failure["KinesisBatchInfo"]["endSequenceNumber"] == sequence_numbers[2]
    assert mapping.stats.records_discarded == 2
    assert stack.dead_letters() == []


def test_dead_letter_send_failure_reports_record(stack):
    # Given a dead-letter queue URL that names no queue, so that every send fails
    missing_queue_url = f"{stack.endpoint_url}/123456789012/no-such-queue"
    sequence_numbers = stack.put(
        [ride_payload("left"), BAD_PAYLOAD, ride_payload("right")], ["left", "bad", "right"]
    )
    service = stack.service(dead_letter_queue_url=missing_queue_url)
    handler = RecordingHandler(service.lambda_handler)

    # When the mapping delivers the records
    stack.run_mapping(handler, batch_size=10, maximum_retry_attempts=0)

    # Then the bad record is reported for retry, and the good ones are still predicted
    assert handler.responses[0]["batchItemFailures"] == [{"itemIdentifier": sequence_numbers[1]}]
    assert [p["prediction"]["ride_id"] for p in handler.responses[0]["predictions"]] == [
        "left",
        "right",
    ]


def test_dead_letter_oversized_record_fits_default_queue_limit(stack):
    # Given a dead-letter queue with SQS's default MaximumMessageSize of 256 KiB, and a bad
    # record of 900 KiB, under the 1 MiB Kinesis limit but far over the queue's
    queue_url = stack.queue("small-dead-letter", MaximumMessageSize=str(256 * 1024))
    payload = b"{" + b"x" * (900 * 1024)
    encoded = base64.b64encode(payload).decode("ascii")
    sequence_numbers = stack.put([payload], ["big"])
    handler = RecordingHandler(stack.service(dead_letter_queue_url=queue_url).lambda_handler)

    # When the mapping delivers it
    stack.run_mapping(handler, batch_size=10)

    # Then the queue takes a message with a prefix of the data and the digest of all of it
    bodies = drain_queue(stack.sqs, queue_url)
    assert len(bodies) == 1
    message = json.loads(bodies[0])
    assert handler.responses[0]["batchItemFailures"] == []
    assert message["sequenceNumber"] == sequence_numbers[0]
    assert message["dataTruncated"] is True
    assert message["dataLength"] == len(encoded)
    assert message["dataSha256"] == hashlib.sha256(encoded.encode("ascii")).hexdigest()
    assert encoded.startswith(message["data"])
    assert len(bodies[0].encode()) <= MAX_MESSAGE_BYTES == 256 * 1024
