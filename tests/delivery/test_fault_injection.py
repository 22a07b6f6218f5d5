"""The fault-injecting proxy, and the service under its faults: no ride is ever lost.

``FaultInjectingProxy`` sits between a client and the moto server and injects the faults
into ``PutRecords`` calls, and everything it does not fail really reaches moto. The first
tests check the proxy itself against moto. The last runs real rides through the stack with
30% of the output entries throttled, plus server errors and lost responses, all injected.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from local_stack.fault_injection import FaultPlan
from local_stack.outcomes import StreamReader
from prediction_delivery import RetryPolicy
from tests.delivery.stack import deduplicate, read_march_rides

# These tests start servers: moto, and in some the fault-injecting proxy.
pytestmark = pytest.mark.integration


def one_attempt_client(endpoint_url: str, read_timeout: float = 5.0):
    return boto3.client(
        "kinesis",
        endpoint_url=endpoint_url,
        config=Config(
            retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=read_timeout
        ),
    )


def stored_data(stack) -> list[bytes]:
    """The data of every record on the output stream, in order."""
    return [
        record["Data"]
        for record in StreamReader(stack.kinesis, stack.output_stream).read_available()
    ]


def put(client, stack, count: int):
    return client.put_records(
        StreamName=stack.output_stream,
        Records=[{"Data": f"record-{i}".encode(), "PartitionKey": "k"} for i in range(count)],
    )


def test_fault_proxy_fails_chosen_fraction(stack, proxy):
    # Given a proxy that throttles 30% of entries (injected), seeded
    proxy.set_plan(FaultPlan(entry_failure_rate=0.3, seed=7))

    # When 500 entries are put through it
    response = put(one_attempt_client(proxy.endpoint_url), stack, 500)

    # Then about 30% failed with throttling, and exactly the others reached moto
    failed = [i for i, r in enumerate(response["Records"]) if "ErrorCode" in r]
    print(f"\ninjected entry failures: {len(failed)} of 500")
    assert 120 <= len(failed) <= 180
    assert response["FailedRecordCount"] == len(failed)
    assert {response["Records"][i]["ErrorCode"] for i in failed} == {
        "ProvisionedThroughputExceededException"
    }
    assert response["Records"][failed[0]]["ErrorMessage"].startswith("Injected fault:")
    assert stored_data(stack) == [f"record-{i}".encode() for i in range(500) if i not in failed]
    assert proxy.counters.entries_failed == len(failed)
    assert proxy.counters.entries_stored_acknowledged == 500 - len(failed)


def test_fault_proxy_same_seed_same_faults(stack, proxy):
    failed_positions = []
    for _ in range(2):
        proxy.set_plan(FaultPlan(entry_failure_rate=0.5, seed=42))
        response = put(one_attempt_client(proxy.endpoint_url), stack, 50)
        failed_positions.append([i for i, r in enumerate(response["Records"]) if "ErrorCode" in r])

    assert failed_positions[0] == failed_positions[1]


def test_fault_proxy_server_error_never_reaches_moto(stack, proxy):
    proxy.set_plan(FaultPlan(server_error_rate=1.0))

    with pytest.raises(ClientError) as raised:
        put(one_attempt_client(proxy.endpoint_url), stack, 3)

    assert raised.value.response["Error"]["Code"] == "InternalFailure"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert stored_data(stack) == []
    assert proxy.counters.server_errors == 1


def test_fault_proxy_closed_connection_after_store(stack, proxy):
    proxy.set_plan(FaultPlan(lost_response_rate=1.0))

    with pytest.raises(ConnectionClosedError):
        put(one_attempt_client(proxy.endpoint_url), stack, 3)

    assert stored_data(stack) == [b"record-0", b"record-1", b"record-2"]
    assert proxy.counters.entries_stored_unacknowledged == 3


def test_fault_proxy_read_timeout_after_store(stack, proxy):
    proxy.set_plan(FaultPlan(lost_response_rate=1.0, lost_response_hold_seconds=1.0))

    with pytest.raises(ReadTimeoutError):
        put(one_attempt_client(proxy.endpoint_url, read_timeout=0.5), stack, 2)

    assert stored_data(stack) == [b"record-0", b"record-1"]
    assert proxy.counters.lost_responses == 1


def test_fault_proxy_passes_other_calls_through(stack, proxy):
    proxy.set_plan(FaultPlan(server_error_rate=1.0))

    summary = one_attempt_client(proxy.endpoint_url).describe_stream_summary(
        StreamName=stack.output_stream
    )

    assert summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
    assert proxy.counters.other_requests == 1


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"entry_failure_rate": 1.5}, "entry_failure_rate must be from 0 to 1, got 1.5"),
        (
            {"server_error_rate": 0.6, "lost_response_rate": 0.6},
            "server_error_rate + lost_response_rate must be at most 1, got 1.2",
        ),
    ],
)
def test_fault_plan_rejects_impossible_rates(plan, message):
    with pytest.raises(ValueError) as raised:
        FaultPlan(**plan)

    assert str(raised.value) == message


def test_faults_30_percent_lose_no_ride(stack, proxy, tlc_mirror):
    # Given 1,000 real rides, and an output where 30% of entries are throttled, 5% of calls
    # fail with HTTP 500 and 3% lose their response after moto stored the records (injected)
    rides = list(read_march_rides(str(tlc_mirror), 1000))
    stack.put_rides(rides)
    plan = FaultPlan(
        entry_failure_rate=0.3, server_error_rate=0.05, lost_response_rate=0.03, seed=2022
    )
    retries = RetryPolicy(max_attempts=4, base_delay_seconds=0.001, max_delay_seconds=0.005)

    proxy.set_plan(plan)
    service = stack.service(kinesis_endpoint_url=proxy.endpoint_url, retry_policy=retries)

    # When the mapping runs until the input stream is idle
    mapping = stack.run_mapping(service.lambda_handler, batch_size=100, maximum_retry_attempts=-1)

    # Then every ride's prediction reached the output stream at least once
    output = stack.output_events()
    unique = deduplicate(output)
    duplicates = len(output) - len(unique)
    counters = proxy.counters
    print(
        f"\nrides: {len(rides)}, predictions: {len(output)}, duplicates: {duplicates}; "
        f"injected: {counters.entries_failed} entry failures, {counters.server_errors} "
        f"server errors, {counters.lost_responses} lost responses "
        f"({counters.entries_stored_unacknowledged} entries stored unacknowledged); "
        f"mapping: {mapping.stats.invocations} invocations, "
        f"{mapping.stats.partial_failures} partial failures"
    )
    assert sorted(unique) == [(ride["ride_id"], stack.model_version) for ride in rides]
    assert stack.failure_records() == []
    # And the faults did happen, each kind at least once
    assert counters.entries_failed > 0
    assert counters.server_errors > 0
    assert counters.lost_responses > 0
    # And every entry stored without the client knowing was sent, and stored, again
    assert duplicates >= counters.entries_stored_unacknowledged
