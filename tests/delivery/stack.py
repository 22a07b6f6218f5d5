"""The local stack the delivery and observability tests run the service on.

Everything here is real: the moto server over HTTP, a model trained on real January rides
and logged to moto's S3 through MLflow, the service built by ``model.init``, and the local
event source mapping reading the input stream.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import model
import train
from local_stack.aws import client, create_bucket, create_queue, create_streams, drain_queue
from local_stack.event_source_mapping import LocalEventSourceMapping, MappingSettings
from local_stack.outcomes import StreamReader
from model_loading import ModelSource
from prediction_delivery import RetryPolicy
from tlc_data import fetch_trip_file, read_trips

MODEL_BUCKET = "delivery-test-models"
TRAINING_ROWS = 3000
# Retries without waiting, so that tests spend their time on the behaviour, not on backoff.
FAST_RETRIES = RetryPolicy(max_attempts=5, base_delay_seconds=0.001, max_delay_seconds=0.01)


_trained: dict[tuple[str, str], Any] = {}


def train_logged_model(endpoint_url: str, mirror: str, tracking_dir: Path) -> Any:
    """Train on real January rides and log the model to moto's S3, once per test session.

    Both test folders ask for it; the cache keeps it to one training run, which takes tens of
    seconds on a 2-core machine. ``tracking_dir`` receives the MLflow store of that first run.
    """
    key = (endpoint_url, mirror)
    if key not in _trained:
        _trained[key] = _train(endpoint_url, mirror, tracking_dir)
    return _trained[key]


def _train(endpoint_url: str, mirror: str, tracking_dir: Path) -> Any:
    create_bucket(client("s3", endpoint_url), MODEL_BUCKET)
    return train.train_and_log(
        "2022-01",
        "2022-02",
        "green",
        tracking_uri=f"sqlite:///{tracking_dir / 'mlflow.db'}",
        artifact_root=f"s3://{MODEL_BUCKET}",
        mirror=mirror,
        max_rows=TRAINING_ROWS,
    )


@functools.cache
def read_march_rides(mirror: str, count: int) -> tuple[dict[str, Any], ...]:
    """Return the first ``count`` real March rides as ride events, with ride ids 0, 1, ..."""
    trips = read_trips(fetch_trip_file("green", 2022, 3, mirror=mirror)).head(count)
    columns = trips[["PULocationID", "DOLocationID", "trip_distance"]]
    return tuple(
        {
            "ride": {
                "PULocationID": int(row.PULocationID),
                "DOLocationID": int(row.DOLocationID),
                "trip_distance": float(row.trip_distance),
            },
            "ride_id": index,
        }
        for index, row in enumerate(columns.itertuples(index=False))
    )


@dataclass
class LocalStack:
    """Clients of the moto server and a fresh set of streams and queues for one test."""

    endpoint_url: str
    logged_model: Any
    kinesis: Any = None
    sqs: Any = None
    input_stream: str = ""
    output_stream: str = ""
    dead_letter_url: str = ""
    on_failure_url: str = ""
    shard_count: int = 1
    _extra_queues: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kinesis = client("kinesis", self.endpoint_url)
        self.sqs = client("sqs", self.endpoint_url)
        # Unique names: moto keeps every stream of the session, and no test may read another's.
        suffix = uuid.uuid4().hex[:8]
        self.input_stream = f"rides-{suffix}"
        self.output_stream = f"predictions-{suffix}"
        create_streams(self.kinesis, [self.input_stream], shard_count=self.shard_count)
        create_streams(self.kinesis, [self.output_stream])
        self.dead_letter_url, _ = create_queue(self.sqs, f"dead-letter-{suffix}")
        self.on_failure_url, _ = create_queue(self.sqs, f"on-failure-{suffix}")

    def queue(self, name: str, **attributes: str) -> str:
        """Create another queue with these attributes, deleted with the stack; return its URL."""
        url, _ = create_queue(self.sqs, f"{name}-{self.input_stream}")
        if attributes:
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        self._extra_queues.append(url)
        return url

    def close(self) -> None:
        """Delete the streams and queues: moto lists only 10 streams a page, and
        ``create_streams`` in other tests reads only the first page."""
        for stream in (self.input_stream, self.output_stream):
            self.kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
        for queue_url in (self.dead_letter_url, self.on_failure_url, *self._extra_queues):
            self.sqs.delete_queue(QueueUrl=queue_url)

    @property
    def model_version(self) -> str:
        return self.logged_model.run_id

    def service(
        self,
        kinesis_endpoint_url: str | None = None,
        dead_letter_queue_url: str | bool | None = True,
        retry_policy: RetryPolicy | None = FAST_RETRIES,
    ) -> model.ModelService:
        """Build the service as a Lambda container does, with ``model.init``.

        ``dead_letter_queue_url`` True means this stack's queue, None no queue.
        """
        queue_url = self.dead_letter_url if dead_letter_queue_url is True else dead_letter_queue_url
        return model.init(
            self.output_stream,
            model_source=ModelSource(
                location=self.logged_model.run_artifact_model_uri,
                run_id=self.logged_model.run_id,
            ),
            kinesis_endpoint_url=kinesis_endpoint_url or self.endpoint_url,
            dead_letter_queue_url=queue_url or None,
            sqs_endpoint_url=self.endpoint_url,
            retry_policy=retry_policy,
        )

    def put(self, payloads: Sequence[bytes], partition_keys: Sequence[str]) -> list[str]:
        """Put records on the input stream in one PutRecords call; return their sequence numbers."""
        response = self.kinesis.put_records(
            StreamName=self.input_stream,
            Records=[
                {"Data": data, "PartitionKey": key}
                for data, key in zip(payloads, partition_keys, strict=True)
            ],
        )
        assert response.get("FailedRecordCount", 0) == 0
        return [record["SequenceNumber"] for record in response["Records"]]

    def put_rides(self, rides: Sequence[dict[str, Any]]) -> list[str]:
        """Put ride events as producers do, keyed by ride id, 500 per call."""
        sequence_numbers: list[str] = []
        for start in range(0, len(rides), 500):
            chunk = rides[start : start + 500]
            sequence_numbers += self.put(
                [json.dumps(ride).encode() for ride in chunk], [str(r["ride_id"]) for r in chunk]
            )
        return sequence_numbers

    def mapping(
        self, handler: Callable[[dict[str, Any], Any], Any], **settings: Any
    ) -> LocalEventSourceMapping:
        """Create an event source mapping on the input stream with this stack's on-failure queue."""
        settings.setdefault("on_failure_queue_url", self.on_failure_url)
        settings.setdefault("poll_interval_seconds", 0.02)
        clock = settings.pop("clock", None)
        return LocalEventSourceMapping(
            self.kinesis,
            self.input_stream,
            handler,
            MappingSettings(**settings),
            sqs_client=self.sqs,
            clock=clock,
        )

    def run_mapping(
        self, handler: Callable[[dict[str, Any], Any], Any], **settings: Any
    ) -> LocalEventSourceMapping:
        """Run a mapping until the input stream has been idle for half a second."""
        mapping = self.mapping(handler, **settings)
        mapping.run(threading.Event(), idle_exit_seconds=0.5)
        return mapping

    def output_events(self) -> list[dict[str, Any]]:
        """Read every prediction event on the output stream, duplicates included."""
        reader = StreamReader(self.kinesis, self.output_stream)
        return [json.loads(record["Data"]) for record in reader.read_available()]

    def dead_letters(self) -> list[dict[str, Any]]:
        """Receive and delete every dead-letter message, decoded from JSON."""
        return [json.loads(body) for body in drain_queue(self.sqs, self.dead_letter_url)]

    def failure_records(self) -> list[dict[str, Any]]:
        """Receive and delete every on-failure invocation record, decoded from JSON."""
        return [json.loads(body) for body in drain_queue(self.sqs, self.on_failure_url)]


@dataclass
class RecordingHandler:
    """Call the service's handler and keep every event and response, for assertions."""

    handler: Callable[[dict[str, Any], Any], Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    responses: list[Any] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        try:
            response = self.handler(event, context)
        except Exception as error:
            self.errors.append(error)
            raise
        self.responses.append(response)
        return response

    def invoked_sequence_numbers(self) -> list[list[str]]:
        """The sequence numbers of each invocation's records, in invocation order."""
        return [
            [record["kinesis"]["sequenceNumber"] for record in event["Records"]]
            for event in self.events
        ]


class RemainingTime:
    """A Lambda context whose remaining time is fixed at creation, for deadline tests."""

    def __init__(self, milliseconds: int, request_id: str = "test-request") -> None:
        self.deadline = time.monotonic() + milliseconds / 1000
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def kinesis_record(data: str, sequence_number: str, partition_key: str = "k") -> dict[str, Any]:
    """Build one record of a Lambda Kinesis event by hand, for data no stream can carry."""
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": sequence_number,
            "data": data,
            "approximateArrivalTimestamp": 1_700_000_000.0,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{sequence_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/stream-model-duration",
        "awsRegion": "eu-west-1",
        "eventSourceARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/rides",
    }


def encode(payload: bytes) -> str:
    """Standard base64, as Lambda encodes ``kinesis.data``."""
    return base64.b64encode(payload).decode("ascii")


def deduplicate(events: Sequence[dict[str, Any]]) -> dict[tuple[Any, str], dict[str, Any]]:
    """Keep one prediction per (ride_id, version), as a consumer of the stream should."""
    unique: dict[tuple[Any, str], dict[str, Any]] = {}
    for event in events:
        unique.setdefault((event["prediction"]["ride_id"], event["version"]), event)
    return unique
