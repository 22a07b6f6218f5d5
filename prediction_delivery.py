"""Deliver prediction events to the output Kinesis stream with ``PutRecords``.

Kinesis accepts at most 500 records and 5 MiB (data plus partition keys) per ``PutRecords``
call, and may reject single entries of an accepted call, for example with
``ProvisionedThroughputExceededException``. Only the rejected entries are sent again,
matched by position, with exponential backoff and full jitter, until the attempt budget or
the invocation's remaining time runs out. Entries still undelivered after that are
returned to the caller, which reports their input records to Lambda for retry.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chunking import chunk_by_count_and_size
from observability import logger

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
# Attempts per call of a botocore client in its default "legacy" retry mode.
BOTOCORE_DEFAULT_ATTEMPTS = 5

# Errors of a whole call that a later attempt can fix. Any other error, such as a missing
# stream or denied access, fails every entry at once.
RETRYABLE_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "LimitExceededException",
        "RequestLimitExceeded",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "KMSThrottlingException",
    }
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: ``max_attempts`` counts the first call too."""

    max_attempts: int = 5
    base_delay_seconds: float = 0.05
    max_delay_seconds: float = 2.0

    def backoff_seconds(self, attempt: int) -> float:
        """Full-jitter exponential backoff before attempt ``attempt + 1``."""
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


@dataclass
class DeliveryReport:
    """Result of one delivery: counts, and the positions that were never delivered."""

    sent: int = 0
    calls: int = 0
    retried_entries: int = 0
    failed_positions: list[int] = field(default_factory=list)
    last_errors: dict[int, str] = field(default_factory=dict)
    # Where each stored entry landed: position -> (shard id, sequence number).
    stored_at: dict[int, tuple[str, str]] = field(default_factory=dict)

    @property
    def delivered(self) -> int:
        """Number of events the stream accepted."""
        return self.sent - len(self.failed_positions)


@dataclass(frozen=True)
class _Entry:
    position: int
    data: bytes
    partition_key: str

    @property
    def size(self) -> int:
        return len(self.data) + len(self.partition_key.encode("utf-8"))


class KinesisRecordWriter:
    """Write records to a Kinesis stream with ``PutRecords``, retrying only failed entries."""

    def __init__(
        self,
        kinesis_client: Any,
        stream_name: str,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kinesis_client = kinesis_client
        self.stream_name = stream_name
        self.retry_policy = retry_policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._call_seconds = max_call_seconds(kinesis_client)

    def put_records(
        self, records: Sequence[tuple[bytes, str]], deadline: float | None = None
    ) -> DeliveryReport:
        """Write ``(data, partition_key)`` pairs until the retry budget or ``deadline`` ends.

        ``deadline`` is a value of the ``clock`` (monotonic seconds) by which every call must
        have ended: an attempt starts only when the client's timeouts let it end in time, so
        that the invocation never times out in the middle of a batch.
        """
        report = DeliveryReport(sent=len(records))
        entries = [
            _Entry(position, data, partition_key)
            for position, (data, partition_key) in enumerate(records)
        ]

        chunks = chunk_by_count_and_size(
            entries, MAX_RECORDS_PER_CALL, MAX_BYTES_PER_CALL, lambda entry: entry.size
        )
        for chunk in chunks:
            undelivered = self._put_with_retries(chunk, report, deadline)
            report.failed_positions.extend(entry.position for entry in undelivered)

        report.failed_positions.sort()
        return report

    def _put_with_retries(
        self, pending: list[_Entry], report: DeliveryReport, deadline: float | None
    ) -> list[_Entry]:
        attempt = 0
        while pending:
            if not self._call_fits(deadline):
                logger.warning(
                    "No time left in the invocation for a PutRecords call",
                    extra={
                        "undelivered": len(pending),
                        "attempts": attempt,
                        "call_timeout_s": self._call_seconds,
                    },
                )
                self._record_errors(pending, "not sent: no time left in the invocation", report)
                break

            attempt += 1
            pending, retryable = self._put_once(pending, report)
            if not pending or not retryable:
                break

            if attempt >= self.retry_policy.max_attempts:
                logger.warning(
                    "Retry budget exhausted",
                    extra={"undelivered": len(pending), "attempts": attempt},
                )
                break

            delay = self.retry_policy.backoff_seconds(attempt)
            if not self._call_fits(deadline, delay):
                logger.warning(
                    "No time left in the invocation to retry",
                    extra={"undelivered": len(pending), "attempts": attempt},
                )
                break

            report.retried_entries += len(pending)
            logger.info(
                "Retrying failed PutRecords entries",
                extra={"entries": len(pending), "attempt": attempt + 1, "delay_s": round(delay, 3)},
            )
            self._sleep(delay)
        return pending

    def _put_once(self, entries: list[_Entry], report: DeliveryReport) -> tuple[list[_Entry], bool]:
        """Make one ``PutRecords`` call; return the unstored entries and whether to retry them."""
        report.calls += 1
        try:
            response = self.kinesis_client.put_records(
                StreamName=self.stream_name,
                Records=[
                    {"Data": entry.data, "PartitionKey": entry.partition_key} for entry in entries
                ],
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "Unknown")
            message = f"PutRecords failed with {code}: {error}"
            self._record_errors(entries, message, report)
            if code not in RETRYABLE_ERROR_CODES and not _is_server_error(error):
                # A later attempt cannot fix this, so stop retrying.
                logger.error(message, extra={"entries": len(entries)})
                return entries, False
            logger.warning(message, extra={"entries": len(entries)})
            return entries, True
        except BotoCoreError as error:
            # Connection errors and read timeouts: the call may or may not have stored the
            # records, so a retry may write duplicates (consumers deduplicate by ride_id).
            message = f"PutRecords failed: {error}"
            self._record_errors(entries, message, report)
            logger.warning(message, extra={"entries": len(entries)})
            return entries, True

        failed = []
        for entry, result in zip(entries, response["Records"], strict=True):
            if "ErrorCode" in result:
                failed.append(entry)
                report.last_errors[entry.position] = (
                    f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}"
                )
            else:
                report.stored_at[entry.position] = (result["ShardId"], result["SequenceNumber"])
        return failed, True

    def _call_fits(self, deadline: float | None, delay: float = 0.0) -> bool:
        """Whether a call started after ``delay`` would end by ``deadline`` even if it timed out."""
        return deadline is None or self._clock() + delay + self._call_seconds <= deadline

    @staticmethod
    def _record_errors(entries: list[_Entry], message: str, report: DeliveryReport) -> None:
        for entry in entries:
            report.last_errors[entry.position] = message


class KinesisCallback(KinesisRecordWriter):
    """Send prediction events to the output stream, keyed by ``str(ride_id)``.

    Calling the instance with one event keeps the reference callback interface;
    :meth:`send_batch` is what the service uses for a whole batch.
    """

    def __init__(
        self,
        kinesis_client: Any,
        prediction_stream_name: str,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(kinesis_client, prediction_stream_name, retry_policy, sleep, clock)
        self.prediction_stream_name = prediction_stream_name

    def __call__(self, prediction_event: dict[str, Any]) -> None:
        """Send one event; raise :class:`DeliveryError` when it could not be delivered."""
        report = self.send_batch([prediction_event])
        if report.failed_positions:
            raise DeliveryError(
                f"prediction for ride_id {prediction_event['prediction']['ride_id']!r} was not "
                f"delivered to stream {self.stream_name!r}: {report.last_errors[0]}"
            )

    def send_batch(
        self, prediction_events: Sequence[dict[str, Any]], deadline: float | None = None
    ) -> DeliveryReport:
        """Deliver every event; the report lists the positions never delivered."""
        records = [
            (_serialize(event), str(event["prediction"]["ride_id"])) for event in prediction_events
        ]
        return self.put_records(records, deadline)


class DeliveryError(RuntimeError):
    """A prediction event that could not be delivered within the retry budget."""


def max_call_seconds(client: Any) -> float:
    """Return how long one API call of a boto3 client may take: its attempts' timeouts.

    Each attempt may spend its connect and its read timeout. botocore's sleeps between its own
    attempts are not counted, which is exact for clients that make one attempt per call.
    """
    config = getattr(getattr(client, "meta", None), "config", None)
    if config is None:
        return 0.0
    per_attempt = (config.connect_timeout or 0) + (config.read_timeout or 0)
    retries = config.retries or {}
    attempts = retries.get("total_max_attempts", BOTOCORE_DEFAULT_ATTEMPTS)
    return float(per_attempt * attempts)


def _serialize(prediction_event: dict[str, Any]) -> bytes:
    return json.dumps(prediction_event).encode("utf-8")


def _is_server_error(error: ClientError) -> bool:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
