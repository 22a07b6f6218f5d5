"""PutRecords delivery: chunking against the real moto server, retries with a Stubber.

moto never fails part of a PutRecords call, so the retry tests replace the HTTP layer with
a botocore Stubber that returns the partial failures Kinesis can return.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import ANY, Stubber

from local_stack.aws import create_streams
from prediction_delivery import (
    MAX_BYTES_PER_CALL,
    KinesisCallback,
    KinesisRecordWriter,
    RetryPolicy,
    max_call_seconds,
)

STREAM = "ride_predictions"
NO_WAIT = RetryPolicy(max_attempts=4, base_delay_seconds=0.0, max_delay_seconds=0.0)


def prediction_event(ride_id, duration=12.5):
    return {
        "model": "ride_duration_prediction_model",
        "version": "run-1",
        "prediction": {"ride_duration": duration, "ride_id": ride_id},
    }


def record_put_records_calls(client):
    """Record the Records of every PutRecords request the client sends."""
    calls = []
    client.meta.events.register(
        "provide-client-params.kinesis.PutRecords",
        lambda params, **_: calls.append(params["Records"]),
    )
    return calls


def stubbed_client():
    client = boto3.client("kinesis", region_name="eu-west-1")
    return client, Stubber(client)


def ok(shard="shardId-000000000000", sequence="1"):
    return {"ShardId": shard, "SequenceNumber": sequence}


def throttled():
    return {
        "ErrorCode": "ProvisionedThroughputExceededException",
        "ErrorMessage": "Rate exceeded for shard shardId-000000000000",
    }


@pytest.fixture
def output_stream(kinesis_client):
    create_streams(kinesis_client, [STREAM])
    return kinesis_client


def test_send_batch_chunks_at_500_records(output_stream):
    calls = record_put_records_calls(output_stream)
    callback = KinesisCallback(output_stream, STREAM)

    report = callback.send_batch([prediction_event(i) for i in range(1201)])

    assert [len(records) for records in calls] == [500, 500, 201]
    assert report.failed_positions == []
    assert report.delivered == 1201


def test_send_batch_chunks_at_5_mib(output_stream):
    calls = record_put_records_calls(output_stream)
    writer = KinesisRecordWriter(output_stream, STREAM)
    # 12 records of 1 MiB minus room for the key: five fit in one call, not six.
    data = b"x" * (1024 * 1024 - 10)

    report = writer.put_records([(data, str(i)) for i in range(12)])

    assert [len(records) for records in calls] == [5, 5, 2]
    for records in calls:
        assert sum(len(r["Data"]) + len(r["PartitionKey"]) for r in records) <= MAX_BYTES_PER_CALL
    assert report.failed_positions == []


def test_send_batch_partition_key_is_ride_id(output_stream):
    calls = record_put_records_calls(output_stream)

    KinesisCallback(output_stream, STREAM).send_batch(
        [prediction_event(256), prediction_event("a-7")]
    )

    assert [r["PartitionKey"] for r in calls[0]] == ["256", "a-7"]
    assert json.loads(calls[0][0]["Data"]) == prediction_event(256)


def test_send_batch_retries_only_failed_entries():
    client, stubber = stubbed_client()
    events = [prediction_event(i) for i in range(3)]
    stubber.add_response(
        "put_records",
        {"FailedRecordCount": 2, "Records": [throttled(), ok(), throttled()]},
        {"StreamName": STREAM, "Records": ANY},
    )
    stubber.add_response(
        "put_records",
        {"Records": [ok(sequence="2"), ok(sequence="3")]},
        {
            "StreamName": STREAM,
            "Records": [
                {"Data": json.dumps(events[0]).encode(), "PartitionKey": "0"},
                {"Data": json.dumps(events[2]).encode(), "PartitionKey": "2"},
            ],
        },
    )
    callback = KinesisCallback(client, STREAM, NO_WAIT, sleep=lambda _: None)

    with stubber:
        report = callback.send_batch(events)

    stubber.assert_no_pending_responses()
    assert report.failed_positions == []
    assert report.retried_entries == 2
    assert report.calls == 2


def test_send_batch_reports_entries_failing_every_attempt():
    client, stubber = stubbed_client()
    # The first call stores ride 0 and refuses ride 1, which then fails every retry.
    stubber.add_response("put_records", {"FailedRecordCount": 1, "Records": [ok(), throttled()]})
    for _ in range(NO_WAIT.max_attempts - 1):
        stubber.add_response("put_records", {"FailedRecordCount": 1, "Records": [throttled()]})
    callback = KinesisCallback(client, STREAM, NO_WAIT, sleep=lambda _: None)

    with stubber:
        report = callback.send_batch([prediction_event(0), prediction_event(1)])

    stubber.assert_no_pending_responses()
    assert report.failed_positions == [1]
    assert report.calls == NO_WAIT.max_attempts
    assert report.last_errors[1].startswith("ProvisionedThroughputExceededException")


def test_send_batch_retries_whole_call_on_server_error():
    client, stubber = stubbed_client()
    stubber.add_client_error("put_records", "InternalFailure", http_status_code=500)
    stubber.add_client_error("put_records", "ServiceUnavailable", http_status_code=503)
    stubber.add_response("put_records", {"Records": [ok()]})
    callback = KinesisCallback(client, STREAM, NO_WAIT, sleep=lambda _: None)

    with stubber:
        report = callback.send_batch([prediction_event(1)])

    assert report.failed_positions == []
    assert report.calls == 3


def test_send_batch_stops_on_non_retryable_error():
    client, stubber = stubbed_client()
    stubber.add_client_error("put_records", "ResourceNotFoundException", http_status_code=400)
    callback = KinesisCallback(client, STREAM, NO_WAIT, sleep=lambda _: None)

    with stubber:
        report = callback.send_batch([prediction_event(1), prediction_event(2)])

    assert report.failed_positions == [0, 1]
    assert report.calls == 1


def test_send_batch_respects_deadline():
    client, stubber = stubbed_client()
    stubber.add_response("put_records", {"FailedRecordCount": 1, "Records": [throttled()]})
    now = [100.0]
    policy = RetryPolicy(max_attempts=10, base_delay_seconds=1.0, max_delay_seconds=1.0)
    callback = KinesisCallback(client, STREAM, policy, sleep=lambda _: None, clock=lambda: now[0])

    # Time for one call to run out its timeouts, but not for a backoff and a second call.
    deadline = 100.0 + max_call_seconds(client)

    with stubber:
        report = callback.send_batch([prediction_event(1)], deadline=deadline)

    assert report.failed_positions == [0]
    assert report.calls == 1


def test_send_batch_starts_no_call_that_could_end_after_deadline():
    client, stubber = stubbed_client()
    now = [100.0]
    callback = KinesisCallback(client, STREAM, NO_WAIT, sleep=lambda _: None, clock=lambda: now[0])

    with stubber:
        report = callback.send_batch([prediction_event(1)], deadline=100.0)

    assert report.failed_positions == [0]
    assert report.calls == 0
    assert report.last_errors == {0: "not sent: no time left in the invocation"}


def test_callback_single_event_raises_when_undelivered():
    client, stubber = stubbed_client()
    stubber.add_client_error("put_records", "AccessDeniedException", http_status_code=400)
    callback = KinesisCallback(client, STREAM, NO_WAIT, sleep=lambda _: None)

    with (
        stubber,
        pytest.raises(Exception, match="ride_id 7 was not delivered to stream 'ride_predictions'"),
    ):
        callback(prediction_event(7))


def test_backoff_grows_and_stays_capped():
    policy = RetryPolicy(max_attempts=10, base_delay_seconds=0.1, max_delay_seconds=1.0)

    ceilings = [max(policy.backoff_seconds(attempt) for _ in range(200)) for attempt in (1, 3, 8)]

    assert ceilings[0] <= 0.1
    assert 0.1 < ceilings[1] <= 0.4
    assert 0.4 < ceilings[2] <= 1.0
