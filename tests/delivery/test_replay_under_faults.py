"""A reduced ``make load_test``: 3,000 real rides replayed with output faults, none lost.

The replay, the outcome collector and the report are those of ``local_stack.run``. The event
source mapping runs in a thread of the test instead of a process of its own. The faults are
injected by the ``FaultInjectingProxy`` between the service and moto's output stream.
"""

from __future__ import annotations

import threading
import time

import pytest

from local_stack.fault_injection import FaultPlan
from local_stack.outcomes import OutcomeCollector
from local_stack.replay import read_months, replay_rides
from local_stack.run import TrainedModel, build_report, print_summary
from tlc_data import fetch_trip_file

# This test starts servers: moto and the fault-injecting proxy.
pytestmark = pytest.mark.integration

RIDES = 3000


def test_replay_with_faults_loses_no_ride(stack, proxy, tlc_mirror):
    # Given 3,000 real March rides, and an output where 30% of the entries are throttled,
    # 5% of the calls fail with HTTP 500 and 5% lose their response (injected)
    started = time.time()
    rides = read_months([fetch_trip_file("green", 2022, 3, mirror=tlc_mirror)], limit=RIDES)
    proxy.set_plan(
        FaultPlan(entry_failure_rate=0.3, server_error_rate=0.05, lost_response_rate=0.05, seed=9)
    )
    service = stack.service(kinesis_endpoint_url=proxy.endpoint_url)
    mapping = stack.mapping(service.lambda_handler, batch_size=100, maximum_retry_attempts=-1)
    stop = threading.Event()
    poller = threading.Thread(target=mapping.run, args=(stop,), daemon=True)
    poller.start()

    # When the rides are replayed and every outcome collected
    try:
        replay = replay_rides(stack.kinesis, stack.input_stream, rides)
        collector = OutcomeCollector(
            stack.kinesis,
            stack.output_stream,
            stack.sqs,
            stack.dead_letter_url,
            stack.on_failure_url,
            replay.stored_at,
        )
        lost = collector.wait_for({int(i) for i in rides.ride_ids}, idle_timeout=30)
    finally:
        stop.set()
        poller.join(timeout=30)

    # Then no ride is lost, and the duplicates are counted
    training = TrainedModel(stack.model_version, stack.logged_model.experiment_id, 0.0)
    report = build_report(rides, replay, collector.outcomes, lost, training, started)
    print_summary(report)
    print(f"Faults injected        {proxy.counters.as_dict()}")
    assert report.rides_sent == RIDES
    assert report.rides_lost == 0
    assert report.predictions_received == RIDES
    assert report.records_failed == 0
    assert report.duplicate_predictions >= proxy.counters.entries_stored_unacknowledged
    assert proxy.counters.entries_failed > 0
    assert proxy.counters.server_errors > 0
    assert proxy.counters.lost_responses > 0
