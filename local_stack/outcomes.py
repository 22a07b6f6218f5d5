"""Account for every replayed ride: predicted, dead-lettered, discarded, or lost."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from local_stack.aws import drain_queue


class StreamReader:
    """Read every shard of a stream from the start, following new shards as they appear."""

    def __init__(self, kinesis_client: Any, stream_name: str) -> None:
        self.kinesis_client = kinesis_client
        self.stream_name = stream_name
        self._iterators: dict[str, str | None] = {}

    def read_available(self, limit: int = 10_000) -> list[dict[str, Any]]:
        """Return the records that arrived since the last call, across all shards."""
        for shard in self.kinesis_client.list_shards(StreamName=self.stream_name)["Shards"]:
            if shard["ShardId"] not in self._iterators:
                self._iterators[shard["ShardId"]] = self.kinesis_client.get_shard_iterator(
                    StreamName=self.stream_name,
                    ShardId=shard["ShardId"],
                    ShardIteratorType="TRIM_HORIZON",
                )["ShardIterator"]

        records: list[dict[str, Any]] = []
        for shard_id, iterator in self._iterators.items():
            while iterator is not None:
                response = self.kinesis_client.get_records(ShardIterator=iterator, Limit=limit)
                iterator = response.get("NextShardIterator")
                records.extend(response["Records"])
                if not response["Records"] or response.get("MillisBehindLatest", 0) == 0:
                    break
            self._iterators[shard_id] = iterator
        return records


@dataclass
class Outcomes:
    """Outcome of the replayed rides: the first prediction of each, and every failure."""

    predictions: dict[int, float] = field(default_factory=dict)
    arrived_at: dict[int, float] = field(default_factory=dict)
    deliveries: Counter[int] = field(default_factory=Counter)
    model_versions: Counter[str] = field(default_factory=Counter)
    dead_lettered: dict[int, str] = field(default_factory=dict)
    discarded: set[int] = field(default_factory=set)

    @property
    def duplicates(self) -> int:
        """Prediction records beyond the first for the same ride."""
        return sum(count - 1 for count in self.deliveries.values())

    def accounted(self) -> set[int]:
        """Ride ids with a prediction or a recorded failure."""
        return set(self.predictions) | set(self.dead_lettered) | self.discarded


class OutcomeCollector:
    """Gather predictions from the output stream and failures from the two SQS queues."""

    def __init__(
        self,
        kinesis_client: Any,
        predictions_stream: str,
        sqs_client: Any,
        dead_letter_queue_url: str,
        on_failure_queue_url: str,
        stored_at: dict[int, tuple[str, str]],
    ) -> None:
        self.reader = StreamReader(kinesis_client, predictions_stream)
        self.sqs_client = sqs_client
        self.dead_letter_queue_url = dead_letter_queue_url
        self.on_failure_queue_url = on_failure_queue_url
        self.outcomes = Outcomes()
        # Discarded batches name shards and sequence ranges; this maps them back to rides.
        self._rides_by_shard: dict[str, list[tuple[int, int]]] = {}
        for ride_id, (shard_id, sequence_number) in stored_at.items():
            self._rides_by_shard.setdefault(shard_id, []).append((int(sequence_number), ride_id))

    def poll(self) -> int:
        """Collect what arrived since the last poll; return how many new outcomes there are."""
        before = len(self.outcomes.accounted())
        for record in self.reader.read_available():
            self._add_prediction(record)
        for body in drain_queue(self.sqs_client, self.dead_letter_queue_url):
            self._add_dead_letter(json.loads(body))
        for body in drain_queue(self.sqs_client, self.on_failure_queue_url):
            self._add_discarded_batch(json.loads(body))
        return len(self.outcomes.accounted()) - before

    def wait_for(
        self, ride_ids: set[int], idle_timeout: float, on_progress: Any = None
    ) -> set[int]:
        """Poll until every ride is accounted for, or nothing new came for ``idle_timeout`` s.

        Returns the ride ids still unaccounted for: the lost rides.
        """
        last_progress = time.monotonic()
        while True:
            added = self.poll()
            if on_progress is not None and added:
                on_progress(added)
            missing = ride_ids - self.outcomes.accounted()
            if not missing:
                return missing
            if added:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > idle_timeout:
                return missing
            time.sleep(0.2)

    def _add_prediction(self, record: dict[str, Any]) -> None:
        event = json.loads(record["Data"])
        ride_id = int(event["prediction"]["ride_id"])
        self.outcomes.deliveries[ride_id] += 1
        self.outcomes.model_versions[str(event["version"])] += 1
        if ride_id not in self.outcomes.predictions:
            self.outcomes.predictions[ride_id] = float(event["prediction"]["ride_duration"])
            self.outcomes.arrived_at[ride_id] = record["ApproximateArrivalTimestamp"].timestamp()

    def _add_dead_letter(self, message: dict[str, Any]) -> None:
        self.outcomes.dead_lettered[int(message["partitionKey"])] = message["reason"]

    def _add_discarded_batch(self, message: dict[str, Any]) -> None:
        batch = message["KinesisBatchInfo"]
        first, last = int(batch["startSequenceNumber"]), int(batch["endSequenceNumber"])
        for sequence_number, ride_id in self._rides_by_shard.get(batch["shardId"], []):
            if first <= sequence_number <= last:
                self.outcomes.discarded.add(ride_id)
