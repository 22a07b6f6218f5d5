"""A local Kinesis event source mapping: poll every shard and invoke the handler, as Lambda does.

It builds events exactly as Lambda does for Kinesis and follows the settings the Terraform
configures for the real mapping, as the AWS Lambda Developer Guide ("Using AWS Lambda with
Amazon Kinesis": error handling, reporting batch item failures, bisecting a batch) describes:

- records of one shard are processed in order, one batch at a time, and a failing batch
  blocks its shard until it succeeds or is discarded;
- ``ReportBatchItemFailures``: Lambda checkpoints the records before the lowest reported
  sequence number and retries the records from it on, so records after it that the function
  had already handled are delivered again. The retry consumes a retry attempt;
- ``BisectBatchOnFunctionError``: a batch whose invocation fails (the function raised, or
  ran out of time) is split in two and each half is retried as a batch of its own, the
  first half first. Splitting does not consume a retry attempt; a failing batch of one
  record does;
- ``MaximumRetryAttempts``: a batch that failed more often than this is discarded;
- ``MaximumRecordAgeInSeconds``: records older than this are discarded before an invocation;
- a discarded batch's metadata goes to the on-failure destination, an SQS queue, as the
  invocation record the guide shows (``requestContext``, ``responseContext``, ``version``,
  ``timestamp``, ``KinesisBatchInfo``).

The function's response is read as Lambda reads it. No response, or an empty or missing
``batchItemFailures`` list, is a success. An item whose ``itemIdentifier`` is empty, null,
missing or not a sequence number of the batch makes the whole batch a failure.

NOTE: shards are polled in turn by one thread, so a shard that is retrying delays the
others. In AWS each shard (times ``ParallelizationFactor``) has its own poller. A handler
that runs past the function timeout is not stopped: its result is discarded and the
invocation counts as failed, as a timed-out Lambda invocation does.
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
Clock = Callable[[], datetime]

ACCOUNT_ID = "123456789012"
FUNCTION_NAME = "stream-model-duration"
EXECUTED_VERSION = "$LATEST"
# Failure conditions of the on-failure invocation record. AWS documents
# "RetryAttemptsExhausted"; "RecordAgeExceeded" is the name the LocalStack emulator uses.
RETRY_ATTEMPTS_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"
MAX_LOGGED_ERROR_CHARS = 500
# Limits of the CreateEventSourceMapping API for Kinesis.
MAX_BATCH_SIZE = 10_000
MAX_RETRY_ATTEMPTS = 10_000
MIN_RECORD_AGE_SECONDS = 60
MAX_RECORD_AGE_SECONDS = 604_800


@dataclass(frozen=True)
class MappingSettings:
    """The event source mapping's settings, named as in Lambda's API, with its limits."""

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
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(
                f"batch_size must be from 1 to {MAX_BATCH_SIZE}, got {self.batch_size}"
            )
        if self.starting_position not in ("TRIM_HORIZON", "LATEST"):
            raise ValueError(
                f"starting_position must be TRIM_HORIZON or LATEST, got {self.starting_position!r}"
            )
        if not -1 <= self.maximum_retry_attempts <= MAX_RETRY_ATTEMPTS:
            raise ValueError(
                f"maximum_retry_attempts must be -1 (retry until the record expires) or from 0 "
                f"to {MAX_RETRY_ATTEMPTS}, got {self.maximum_retry_attempts}"
            )
        age = self.maximum_record_age_in_seconds
        if age != -1 and not MIN_RECORD_AGE_SECONDS <= age <= MAX_RECORD_AGE_SECONDS:
            raise ValueError(
                f"maximum_record_age_in_seconds must be -1 (no limit) or from "
                f"{MIN_RECORD_AGE_SECONDS} to {MAX_RECORD_AGE_SECONDS}, got {age}"
            )
        if self.function_timeout_seconds <= 0:
            raise ValueError(
                f"function_timeout_seconds must be positive, got {self.function_timeout_seconds}"
            )


@dataclass
class MappingStats:
    """Counters of what the mapping did, for reports and tests."""

    records_read: int = 0
    invocations: int = 0
    function_errors: int = 0
    partial_failures: int = 0
    records_redelivered: int = 0
    retries: int = 0
    bisections: int = 0
    batches_discarded: int = 0
    records_discarded: int = 0
    records_expired: int = 0


@dataclass
class _ShardState:
    shard_id: str
    iterator: str | None
    # Records read from the shard and not yet checkpointed, in order.
    buffer: list[dict[str, Any]] = field(default_factory=list)
    # Sizes of the next batches, from the head of the buffer, when a failure fixed them:
    # the two halves of a bisected batch, or the records a retry covers. Empty means "read
    # a full batch".
    planned_sizes: list[int] = field(default_factory=list)
    # The first record of the batch being retried, and the retries that batch consumed.
    head: str | None = None
    retries: int = 0
    # Invocations each buffered record was part of, by sequence number.
    invoke_counts: dict[str, int] = field(default_factory=dict)
    last_response: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Outcome:
    """The result of one invocation, as the mapping reads it."""

    failed_index: int | None
    function_error: str | None = None
    response_context: dict[str, Any] = field(default_factory=dict)


class LambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    def __init__(self, timeout_seconds: float, region: str) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = FUNCTION_NAME
        self.function_version = EXECUTED_VERSION
        self.memory_limit_in_mb = int(os.getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"))
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{FUNCTION_NAME}"
        self.log_group_name = f"/aws/lambda/{FUNCTION_NAME}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Return the milliseconds left before this invocation would time out."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FunctionError(RuntimeError):
    """The function raised, or ran past its timeout."""


class LocalEventSourceMapping:
    """Poll a Kinesis stream and invoke ``handler(event, context)`` with batches of records.

    ``clock`` returns the current time that record ages are measured against. Tests pass one
    that runs ahead, because the shortest maximum record age Lambda accepts is 60 seconds.
    """

    def __init__(
        self,
        kinesis_client: Any,
        stream_name: str,
        handler: Handler,
        settings: MappingSettings | None = None,
        sqs_client: Any = None,
        clock: Clock | None = None,
    ) -> None:
        self.kinesis_client = kinesis_client
        self.stream_name = stream_name
        self.handler = handler
        self.settings = settings or MappingSettings()
        self.sqs_client = sqs_client
        self.stats = MappingStats()
        self._clock = clock or (lambda: datetime.now(UTC))
        description = kinesis_client.describe_stream_summary(StreamName=stream_name)
        self.stream_arn = description["StreamDescriptionSummary"]["StreamARN"]
        self.region = self.stream_arn.split(":")[3]
        self.function_arn = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{FUNCTION_NAME}"
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
        """Process one batch from every shard; return how many records were handled."""
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
            self._shards[shard_id] = _ShardState(shard_id, iterator)

    def _process_shard(self, shard: _ShardState) -> int:
        self._fill_buffer(shard)
        expired = self._discard_expired(shard)
        if not shard.buffer:
            return expired

        batch = shard.buffer[: self._next_batch_size(shard)]
        if batch[0]["SequenceNumber"] != shard.head:
            shard.head, shard.retries = batch[0]["SequenceNumber"], 0
        for record in batch:
            sequence_number = record["SequenceNumber"]
            shard.invoke_counts[sequence_number] = shard.invoke_counts.get(sequence_number, 0) + 1

        outcome = self._invoke(shard, batch)
        shard.last_response = outcome.response_context
        if outcome.function_error is not None:
            self._handle_function_error(shard, batch, outcome)
        elif outcome.failed_index is None:
            self._checkpoint(shard, len(batch))
            shard.head = None
        else:
            self._handle_partial_failure(shard, batch, outcome.failed_index)
        return expired + len(batch)

    def _next_batch_size(self, shard: _ShardState) -> int:
        if shard.planned_sizes:
            return shard.planned_sizes[0]
        return self.settings.batch_size

    def _fill_buffer(self, shard: _ShardState) -> None:
        wanted = self.settings.batch_size - len(shard.buffer)
        if wanted <= 0 or shard.iterator is None:
            return
        response = self.kinesis_client.get_records(ShardIterator=shard.iterator, Limit=wanted)
        shard.iterator = response.get("NextShardIterator")
        records = response.get("Records", [])
        self.stats.records_read += len(records)
        shard.buffer.extend(records)

    def _checkpoint(self, shard: _ShardState, count: int) -> None:
        """Drop the first ``count`` records of the shard's buffer: they will not be read again."""
        for record in shard.buffer[:count]:
            shard.invoke_counts.pop(record["SequenceNumber"], None)
        del shard.buffer[:count]
        remaining = count
        while remaining and shard.planned_sizes:
            dropped = min(remaining, shard.planned_sizes[0])
            shard.planned_sizes[0] -= dropped
            remaining -= dropped
            if shard.planned_sizes[0] == 0:
                shard.planned_sizes.pop(0)

    def _invoke(self, shard: _ShardState, batch: list[dict[str, Any]]) -> _Outcome:
        """Invoke the handler once and read its response as Lambda does."""
        event = {"Records": [self._lambda_record(shard.shard_id, record) for record in batch]}
        context = LambdaContext(self.settings.function_timeout_seconds, self.region)
        self.stats.invocations += 1
        started = time.monotonic()
        try:
            response = self.handler(event, context)
        except Exception as error:  # pylint: disable=broad-exception-caught
            # Any exception from the function is a function error to Lambda.
            return _function_error(f"{type(error).__name__}: {error}")

        elapsed = time.monotonic() - started
        if elapsed > self.settings.function_timeout_seconds:
            return _function_error(f"Task timed out after {elapsed:.2f} seconds")

        succeeded = {"statusCode": 200, "executedVersion": EXECUTED_VERSION}
        if not self.settings.report_batch_item_failures:
            return _Outcome(None, response_context=succeeded)
        return _Outcome(_lowest_failure_index(response, batch), response_context=succeeded)

    def _handle_function_error(
        self, shard: _ShardState, batch: list[dict[str, Any]], outcome: _Outcome
    ) -> None:
        self.stats.function_errors += 1
        logger.warning(
            "Function error",
            extra={
                "shard_id": shard.shard_id,
                "records": len(batch),
                # Cut, so that an exception quoting a payload cannot fill the log.
                "error": (outcome.function_error or "")[:MAX_LOGGED_ERROR_CHARS],
            },
        )
        if self.settings.bisect_batch_on_function_error and len(batch) > 1:
            # Splitting does not consume a retry attempt.
            self.stats.bisections += 1
            half = len(batch) // 2
            shard.planned_sizes[:1] = [half, len(batch) - half]
            return
        self._retry_or_discard(shard, len(batch))

    def _handle_partial_failure(
        self, shard: _ShardState, batch: list[dict[str, Any]], failed_index: int
    ) -> None:
        # Records before the lowest failure are checkpointed; the rest are delivered again.
        self.stats.partial_failures += 1
        self.stats.records_redelivered += len(batch) - failed_index
        self._checkpoint(shard, failed_index)
        retried = len(batch) - failed_index
        if failed_index > 0:
            # The retried batch starts at the failed record and has consumed no retry yet.
            shard.head, shard.retries = batch[failed_index]["SequenceNumber"], 0
        self._retry_or_discard(shard, retried)

    def _retry_or_discard(self, shard: _ShardState, count: int) -> None:
        """Retry the first ``count`` records as one batch, or discard them when out of retries."""
        limit = self.settings.maximum_retry_attempts
        if limit != -1 and shard.retries >= limit:
            self._discard(shard, shard.buffer[:count], RETRY_ATTEMPTS_EXHAUSTED)
            return
        shard.retries += 1
        self.stats.retries += 1
        # A retry covers exactly the failed records, never records read after them.
        if shard.planned_sizes:
            shard.planned_sizes[0] = count
        else:
            shard.planned_sizes.append(count)

    def _discard_expired(self, shard: _ShardState) -> int:
        """Discard records at the head of the shard older than the maximum record age."""
        max_age = self.settings.maximum_record_age_in_seconds
        if max_age == -1 or not shard.buffer:
            return 0
        now = self._clock()
        candidates = shard.buffer[: self._next_batch_size(shard)]
        expired = 0
        # Records of a shard arrive in order, so the expired ones are a prefix.
        while expired < len(candidates) and (
            (now - candidates[expired]["ApproximateArrivalTimestamp"]).total_seconds() > max_age
        ):
            expired += 1
        if expired:
            self.stats.records_expired += expired
            self._discard(shard, candidates[:expired], RECORD_AGE_EXCEEDED)
        return expired

    def _discard(self, shard: _ShardState, batch: list[dict[str, Any]], condition: str) -> None:
        """Drop the records and send their metadata to the on-failure destination."""
        failure_record = self._failure_record(shard, batch, condition)
        self._checkpoint(shard, len(batch))
        shard.head, shard.retries, shard.last_response = None, 0, None
        self.stats.batches_discarded += 1
        self.stats.records_discarded += len(batch)

        logger.error("Batch discarded", extra=failure_record)
        if self.settings.on_failure_queue_url and self.sqs_client is not None:
            self.sqs_client.send_message(
                QueueUrl=self.settings.on_failure_queue_url, MessageBody=json.dumps(failure_record)
            )

    def _failure_record(
        self, shard: _ShardState, batch: list[dict[str, Any]], condition: str
    ) -> dict[str, Any]:
        """Build the invocation record Lambda sends to an on-failure destination for Kinesis."""
        invocations = shard.invoke_counts.get(batch[0]["SequenceNumber"], 0)
        record: dict[str, Any] = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": condition,
                # Invocations that included the batch's first record.
                "approximateInvokeCount": invocations,
            },
        }
        if invocations and shard.last_response:
            # NOTE: AWS shows only the shape after a function error, with functionError
            # "Unhandled"; after a partial batch failure this record leaves functionError out.
            record["responseContext"] = shard.last_response
        record.update(
            {
                "version": "1.0",
                "timestamp": _iso_millis(self._clock()),
                "KinesisBatchInfo": {
                    "shardId": shard.shard_id,
                    "startSequenceNumber": batch[0]["SequenceNumber"],
                    "endSequenceNumber": batch[-1]["SequenceNumber"],
                    "approximateArrivalOfFirstRecord": _iso_millis(
                        batch[0]["ApproximateArrivalTimestamp"]
                    ),
                    "approximateArrivalOfLastRecord": _iso_millis(
                        batch[-1]["ApproximateArrivalTimestamp"]
                    ),
                    "batchSize": len(batch),
                    "streamArn": self.stream_arn,
                },
            }
        )
        return record

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


def _function_error(message: str) -> _Outcome:
    return _Outcome(
        None,
        function_error=message,
        response_context={
            "statusCode": 200,
            "executedVersion": EXECUTED_VERSION,
            "functionError": "Unhandled",
        },
    )


def _lowest_failure_index(response: Any, batch: list[dict[str, Any]]) -> int | None:
    """Find the first record to deliver again; a malformed report fails the whole batch."""
    if response is None:
        return None
    if not isinstance(response, dict):
        # NOTE: AWS documents only that a null or empty response is a success. Any other
        # shape is read here as a failure of the whole batch, so that no record is lost.
        logger.warning(
            "Function response is not an object; retrying the whole batch",
            extra={"response_type": type(response).__name__},
        )
        return 0
    failures = response.get("batchItemFailures") or []
    if not failures:
        return None

    positions = {record["SequenceNumber"]: index for index, record in enumerate(batch)}
    indexes = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if identifier not in positions:
            logger.warning(
                "batchItemFailures names an unknown itemIdentifier; retrying the whole batch",
                extra={"item_identifier": str(identifier)[:100]},
            )
            return 0
        indexes.append(positions[identifier])
    return min(indexes)


def _iso_millis(moment: datetime) -> str:
    """Format a time as AWS does in invocation records: UTC, milliseconds, a "Z" suffix."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


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
    parser.add_argument(
        "--maximum-retry-attempts",
        type=int,
        default=10,
        help="retries of a failing batch before it is discarded (-1: until the record expires)",
    )
    parser.add_argument(
        "--maximum-record-age-in-seconds",
        type=int,
        default=-1,
        help="age in seconds after which records are discarded (-1: no limit, else 60-604800)",
    )
    parser.add_argument(
        "--bisect-batch-on-function-error",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="split a batch whose invocation fails in two before retrying (default: on)",
    )
    parser.add_argument(
        "--function-timeout-seconds",
        type=float,
        default=60.0,
        help="seconds an invocation may run before it counts as timed out",
    )
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
        bisect_batch_on_function_error=args.bisect_batch_on_function_error,
        on_failure_queue_url=args.on_failure_queue_url,
        function_timeout_seconds=args.function_timeout_seconds,
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
