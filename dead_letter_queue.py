"""Send input records that can never be predicted to a dead-letter SQS queue.

Retrying an invalid record cannot fix it, so reporting it to Lambda would block its shard
until the record expires. The queue keeps the original data and where it came from, so that
an operator can fix the producer and replay the record.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chunking import chunk_by_count_and_size
from observability import logger
from prediction_delivery import max_call_seconds

# An SQS queue accepts messages and batches up to its MaximumMessageSize: 256 KiB unless set
# higher (at most 1 MiB). Messages are kept under the default, so that any queue takes them.
MAX_MESSAGE_BYTES = 256 * 1024
MAX_BATCH_ENTRIES = 10
# Room left in a message for the fields around the original data.
_ENVELOPE_RESERVE_BYTES = 4096


@dataclass(frozen=True)
class RejectedRecord:
    """An input record that failed decoding or validation, with its position in the batch."""

    position: int
    record: dict[str, Any]
    reason: str


class DeadLetterQueue:
    """Write rejected records to SQS with ``SendMessageBatch``."""

    def __init__(
        self,
        sqs_client: Any,
        queue_url: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sqs_client = sqs_client
        self.queue_url = queue_url
        self._clock = clock
        self._call_seconds = max_call_seconds(sqs_client)

    def send(
        self,
        rejected: Sequence[RejectedRecord],
        model_version: str,
        deadline: float | None = None,
    ) -> list[int]:
        """Send every rejected record; return the positions of those SQS did not accept.

        A batch is sent only when the SQS client's timeouts let the call end by ``deadline``,
        a ``clock`` value. The records of a batch not sent count as not accepted.
        """
        messages = [(item.position, dead_letter_message(item, model_version)) for item in rejected]
        unsent: list[int] = []
        batches = chunk_by_count_and_size(
            messages, MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES, lambda message: len(message[1].encode())
        )
        for batch in batches:
            if deadline is not None and self._clock() + self._call_seconds > deadline:
                logger.warning(
                    "No time left in the invocation for a dead-letter send; "
                    "the records will be reported for retry",
                    extra={"records": len(batch), "call_timeout_s": self._call_seconds},
                )
                unsent.extend(position for position, _ in batch)
                continue
            unsent.extend(self._send_batch(batch))
        return sorted(unsent)

    def _send_batch(self, batch: list[tuple[int, str]]) -> list[int]:
        entries = [{"Id": str(position), "MessageBody": body} for position, body in batch]
        try:
            response = self.sqs_client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as error:
            logger.error(
                "Dead-letter queue send failed; the records will be reported for retry",
                extra={"queue_url": self.queue_url, "records": len(batch), "error": str(error)},
            )
            return [position for position, _ in batch]

        failed = response.get("Failed", [])
        for failure in failed:
            logger.error(
                "Dead-letter queue rejected a message; the record will be reported for retry",
                extra={
                    "queue_url": self.queue_url,
                    "code": failure.get("Code"),
                    "error": failure.get("Message"),
                },
            )
        return [int(failure["Id"]) for failure in failed]


def dead_letter_message(rejected: RejectedRecord, model_version: str) -> str:
    """Build the JSON message body for one rejected record."""
    kinesis = rejected.record.get("kinesis", {})
    data = kinesis.get("data")
    event_id = rejected.record.get("eventID", "")
    message: dict[str, Any] = {
        "reason": rejected.reason,
        "sequenceNumber": kinesis.get("sequenceNumber"),
        "partitionKey": kinesis.get("partitionKey"),
        "approximateArrivalTimestamp": kinesis.get("approximateArrivalTimestamp"),
        "eventSourceARN": rejected.record.get("eventSourceARN"),
        "shardId": event_id.split(":", 1)[0] if ":" in event_id else None,
        "eventID": event_id or None,
        "modelVersion": model_version,
        "rejectedAt": datetime.now(UTC).isoformat(),
        "data": data,
        "dataTruncated": False,
    }

    if isinstance(data, str) and len(data) > MAX_MESSAGE_BYTES - _ENVELOPE_RESERVE_BYTES:
        # NOTE: data too large for one SQS message is cut. The digest and the sequence number
        # identify the full record, which stays readable in the stream for its retention.
        message["data"] = data[: MAX_MESSAGE_BYTES - _ENVELOPE_RESERVE_BYTES]
        message["dataTruncated"] = True
        message["dataLength"] = len(data)
        message["dataSha256"] = hashlib.sha256(data.encode("ascii", "replace")).hexdigest()
    elif data is not None and not isinstance(data, str):
        message["data"] = repr(data)[:1024]
    return json.dumps(message)
