"""A local Kinesis event source mapping: poll every shard and invoke the handler, as Lambda does.

It builds events exactly as Lambda does for Kinesis and follows the settings the Terraform
configures for the real mapping:

- ``ReportBatchItemFailures``: after a partial failure, processing resumes from the lowest
  reported sequence number, so later records of the batch are delivered again;
- ``BisectBatchOnFunctionError``: a batch whose invocation fails is split in two, and the
  split does not count as a retry;
- ``MaximumRetryAttempts`` and ``MaximumRecordAgeInSeconds``: then the batch is discarded
  and its metadata sent to the on-failure destination (an SQS queue);
- records of one shard are processed in order, one batch at a time.

NOTE: shards are polled in turn by one thread, so a shard that is retrying delays the
others; in AWS each shard (times ``ParallelizationFactor``) has its own poller.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from observability import logger

Handler = Callable[[dict[str, Any], Any], Any]

ACCOUNT_ID = "123456789012"
FUNCTION_NAME = "stream-model-duration"


@dataclass(frozen=True)
class MappingSettings:
    """The event source mapping's settings, named as in Lambda's API."""

    batch_size: int = 100
    starting_position: str = "TRIM_HORIZON"
    maximum_retry_attempts: int = 10
    maximum_record_age_in_seconds: int = -1
    bisect_batch_on_function_error: bool = True
    report_batch_item_failures: bool = True
    on_failure_queue_url: str | None = None
    function_timeout_seconds: float = 60.0
    poll_interval_seconds: float = 0.1

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError(f"batch_size must be from 1 to 10000, got {self.batch_size}")
        if self.starting_position not in ("TRIM_HORIZON", "LATEST"):
            raise ValueError(
                f"starting_position must be TRIM_HORIZON or LATEST, got {self.starting_position!r}"
            )
        if self.maximum_retry_attempts < -1:
            raise ValueError("maximum_retry_attempts must be -1 (retry until expiry) or more")


@dataclass
class MappingStats:
    """Counters of what the mapping did, for reports and tests."""

    records_read: int = 0
    invocations: int = 0
    function_errors: int = 0
    partial_failures: int = 0
    records_redelivered: int = 0
    bisections: int = 0
    batches_discarded: int = 0
    records_discarded: int = 0


@dataclass
class _ShardState:
    shard_id: str
    iterator: str | None
    buffer: list[dict[str, Any]] = field(default_factory=list)
    max_batch: int = 0
    retried_head: str | None = None
    retries: int = 0


class LambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    def __init__(self, timeout_seconds: float, region: str) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = FUNCTION_NAME
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"))
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{FUNCTION_NAME}"
        self.log_group_name = f"/aws/lambda/{FUNCTION_NAME}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Return the milliseconds left before this invocation would time out."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FunctionError(RuntimeError):
    """The function raised, or returned a response Lambda would treat as a failure."""


class LocalEventSourceMapping:
    """Poll a Kinesis stream and invoke ``handler(event, context)`` with batches of records."""

    def __init__(
        self,
        kinesis_client: Any,
        stream_name: str,
        handler: Handler,
        settings: MappingSettings | None = None,
        sqs_client: Any = None,
    ) -> None:
        self.kinesis_client = kinesis_client
        self.stream_name = stream_name
        self.handler = handler
        self.settings = settings or MappingSettings()
        self.sqs_client = sqs_client
        self.stats = MappingStats()
        description = kinesis_client.describe_stream_summary(StreamName=stream_name)
        self.stream_arn = description["StreamDescriptionSummary"]["StreamARN"]
        self.region = self.stream_arn.split(":")[3]
        self._shards: dict[str, _ShardState] = {}

    def run(self, stop: threading.Event, idle_exit_seconds: float | None = None) -> MappingStats:
        """Poll until ``stop`` is set, or until no record arrived for ``idle_exit_seconds``."""
        last_activity = time.monotonic()
        while not stop.is_set():
            if self.poll_once():
                last_activity = time.monotonic()
            elif idle_exit_seconds is not None and (
                time.monotonic() - last_activity >= idle_exit_seconds
            ):
                break
            else:
                stop.wait(self.settings.poll_interval_seconds)
        return self.stats

    def poll_once(self) -> int:
        """Read and process one batch from every shard; return how many records were handled."""
        self._discover_shards()
        handled = 0
        for shard in self._shards.values():
            handled += self._process_shard(shard)
        return handled

    def _discover_shards(self) -> None:
        shards = self.kinesis_client.list_shards(StreamName=self.stream_name)["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id in self._shards:
                continue
            iterator = self.kinesis_client.get_shard_iterator(
                StreamName=self.stream_name,
                ShardId=shard_id,
                ShardIteratorType=self.settings.starting_position,
            )["ShardIterator"]
            self._shards[shard_id] = _ShardState(
                shard_id, iterator, max_batch=self.settings.batch_size
            )

    def _process_shard(self, shard: _ShardState) -> int:
        self._fill_buffer(shard)
        if not shard.buffer:
            return 0

        batch = shard.buffer[: shard.max_batch]
        if self._discard_expired(shard, batch):
            return len(batch)

        try:
            failed_index = self._invoke(shard, batch)
        except FunctionError as error:
            self._handle_function_error(shard, batch, error)
            return len(batch)

        if failed_index is None:
            del shard.buffer[: len(batch)]
            shard.max_batch = self.settings.batch_size
            shard.retried_head, shard.retries = None, 0
            return len(batch)

        # Records before the lowest failure are checkpointed; the rest are delivered again.
        self.stats.partial_failures += 1
        self.stats.records_redelivered += len(batch) - failed_index
        del shard.buffer[:failed_index]
        self._count_retry(shard, batch[failed_index:], condition="RetryAttemptsExhausted")
        return len(batch)

    def _fill_buffer(self, shard: _ShardState) -> None:
        wanted = self.settings.batch_size - len(shard.buffer)
        if wanted <= 0 or shard.iterator is None:
            return
        response = self.kinesis_client.get_records(ShardIterator=shard.iterator, Limit=wanted)
        shard.iterator = response.get("NextShardIterator")
        records = response.get("Records", [])
        self.stats.records_read += len(records)
        shard.buffer.extend(records)

    def _invoke(self, shard: _ShardState, batch: list[dict[str, Any]]) -> int | None:
        """Invoke the handler; return the index of the lowest reported failure, or None."""
        event = {"Records": [self._lambda_record(shard.shard_id, record) for record in batch]}
        context = LambdaContext(self.settings.function_timeout_seconds, self.region)
        self.stats.invocations += 1
        try:
            response = self.handler(event, context)
        except Exception as error:  # pylint: disable=broad-exception-caught
            # Any exception from the function is a function error to Lambda.
            raise FunctionError(f"{type(error).__name__}: {error}") from error

        if not self.settings.report_batch_item_failures:
            return None
        return _lowest_failure_index(response, batch)

    def _handle_function_error(
        self, shard: _ShardState, batch: list[dict[str, Any]], error: FunctionError
    ) -> None:
        self.stats.function_errors += 1
        logger.warning(
            "Function error",
            extra={"shard_id": shard.shard_id, "records": len(batch), "error": str(error)},
        )
        if self.settings.bisect_batch_on_function_error and len(batch) > 1:
            # Splitting does not consume a retry attempt, as in Lambda.
            self.stats.bisections += 1
            shard.max_batch = max(1, len(batch) // 2)
            return
        self._count_retry(shard, batch, condition="RetryAttemptsExhausted")

    def _count_retry(self, shard: _ShardState, batch: list[dict[str, Any]], condition: str) -> None:
        head = batch[0]["SequenceNumber"]
        if shard.retried_head == head:
            shard.retries += 1
        else:
            shard.retried_head, shard.retries = head, 1

        limit = self.settings.maximum_retry_attempts
        if limit != -1 and shard.retries > limit:
            self._discard(shard, batch, condition)

    def _discard_expired(self, shard: _ShardState, batch: list[dict[str, Any]]) -> bool:
        max_age = self.settings.maximum_record_age_in_seconds
        if max_age == -1:
            return False
        now = datetime.now(UTC)
        expired = [
            record
            for record in batch
            if (now - record["ApproximateArrivalTimestamp"]).total_seconds() > max_age
        ]
        if not expired:
            return False
        # Records arrive in order, so the expired ones are a prefix of the batch.
        self._discard(shard, expired, "RecordAgeExceeded")
        return True

    def _discard(self, shard: _ShardState, batch: list[dict[str, Any]], condition: str) -> None:
        """Drop the batch from the shard and send its metadata to the on-failure destination."""
        del shard.buffer[: len(batch)]
        shard.max_batch = self.settings.batch_size
        shard.retried_head, shard.retries = None, 0
        self.stats.batches_discarded += 1
        self.stats.records_discarded += len(batch)

        failure_record = self._failure_record(shard.shard_id, batch, condition)
        logger.error("Batch discarded", extra=failure_record)
        if self.settings.on_failure_queue_url and self.sqs_client is not None:
            self.sqs_client.send_message(
                QueueUrl=self.settings.on_failure_queue_url, MessageBody=json.dumps(failure_record)
            )

    def _failure_record(
        self, shard_id: str, batch: list[dict[str, Any]], condition: str
    ) -> dict[str, Any]:
        return {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": (
                    f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{FUNCTION_NAME}"
                ),
                "condition": condition,
                "approximateInvokeCount": self.settings.maximum_retry_attempts + 1,
            },
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": batch[0]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": batch[0][
                    "ApproximateArrivalTimestamp"
                ].isoformat(),
                "approximateArrivalOfLastRecord": batch[-1][
                    "ApproximateArrivalTimestamp"
                ].isoformat(),
                "batchSize": len(batch),
                "streamArn": self.stream_arn,
            },
        }

    def _lambda_record(self, shard_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """Build one record of the event in the shape Lambda sends for Kinesis."""
        return {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": record["PartitionKey"],
                "sequenceNumber": record["SequenceNumber"],
                "data": base64.b64encode(record["Data"]).decode("ascii"),
                "approximateArrivalTimestamp": record["ApproximateArrivalTimestamp"].timestamp(),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{record['SequenceNumber']}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT_ID}:role/{FUNCTION_NAME}",
            "awsRegion": self.region,
            "eventSourceARN": self.stream_arn,
        }


def _lowest_failure_index(response: Any, batch: list[dict[str, Any]]) -> int | None:
    """Find the first record to deliver again, treating a malformed response as Lambda does."""
    if response is None:
        return None
    if not isinstance(response, dict):
        raise FunctionError(f"response is a {type(response).__name__}, not an object")
    failures = response.get("batchItemFailures") or []
    if not failures:
        return None

    positions = {record["SequenceNumber"]: index for index, record in enumerate(batch)}
    indexes = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if identifier not in positions:
            # Lambda retries the whole batch when an identifier is empty or unknown.
            raise FunctionError(f"batchItemFailures names an unknown itemIdentifier {identifier!r}")
        indexes.append(positions[identifier])
    return min(indexes)


def load_handler(path: str) -> Handler:
    """Import ``module.function``, as Lambda reads its ``CMD``."""
    module_name, _, function_name = path.rpartition(".")
    module = importlib.import_module(module_name)
    return getattr(module, function_name)


def main(argv: list[str] | None = None) -> int:
    """Run the mapping as a process: the local stand-in for a deployed function."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint-url", required=True, help="Kinesis and SQS endpoint")
    parser.add_argument("--stream-name", default="ride_events", help="input stream")
    parser.add_argument("--handler", default="lambda_function.lambda_handler")
    parser.add_argument("--batch-size", type=int, default=100, help="records per invocation")
    parser.add_argument(
        "--starting-position", default="TRIM_HORIZON", choices=["TRIM_HORIZON", "LATEST"]
    )
    parser.add_argument("--maximum-retry-attempts", type=int, default=10)
    parser.add_argument("--maximum-record-age-in-seconds", type=int, default=-1)
    parser.add_argument("--on-failure-queue-url", default=None, help="SQS queue for discards")
    parser.add_argument("--stats-file", default=None, help="write the counters here as JSON")
    args = parser.parse_args(argv)

    # Imported here so that the handler's environment is complete before it initializes.
    from local_stack.aws import client  # pylint: disable=import-outside-toplevel

    settings = MappingSettings(
        batch_size=args.batch_size,
        starting_position=args.starting_position,
        maximum_retry_attempts=args.maximum_retry_attempts,
        maximum_record_age_in_seconds=args.maximum_record_age_in_seconds,
        on_failure_queue_url=args.on_failure_queue_url,
    )
    handler = load_handler(args.handler)
    mapping = LocalEventSourceMapping(
        client("kinesis", args.endpoint_url),
        args.stream_name,
        handler,
        settings,
        sqs_client=client("sqs", args.endpoint_url),
    )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logger.info(
        "Event source mapping started", extra={"stream": args.stream_name, **asdict(settings)}
    )
    stats = mapping.run(stop)
    logger.info("Event source mapping stopped", extra=asdict(stats))
    if args.stats_file:
        with open(args.stats_file, "w", encoding="utf-8") as stats_file:
            json.dump(asdict(stats), stats_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
