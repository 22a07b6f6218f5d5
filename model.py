"""The ride-duration prediction service: a Kinesis batch in, one model call, predictions out.

``ModelService.lambda_handler`` takes a Lambda Kinesis event and returns
``{"predictions": [...], "batchItemFailures": [...]}``. Each record ends up in exactly one
of three places:

- predicted and delivered to every output callback;
- dead-lettered, when it can never be predicted and a dead-letter queue is configured;
- reported in ``batchItemFailures``, so that the event source mapping delivers it again.

A bad record never fails its neighbours. A model that raises fails the whole invocation,
so that the event source mapping retries or bisects the batch.

Delivery is at least once. Lambda retries a shard from the lowest reported record, so the
records after it are predicted and sent again, and a ``PutRecords`` call whose response is
lost may have stored its records already. Consumers deduplicate predictions by
``(ride_id, version)``; ``docs/delivery.md`` describes the guarantees and the replay of
dead-lettered records.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, runtime_checkable

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from threadpoolctl import threadpool_limits

from dead_letter_queue import DeadLetterQueue, RejectedRecord
from model_loading import LoadedModel, ModelSource, model_source_from_environ
from model_loading import load_model as load_model_from_source
from observability import logger, metrics
from prediction_delivery import DeliveryError, KinesisCallback, RetryPolicy
from ride_events import InvalidRideEvent, RideEvent, decode_ride_event, validate_ride_event

__all__ = [
    "BatchResponse",
    "DeliveryError",
    "KinesisCallback",
    "ModelService",
    "base64_decode",
    "create_kinesis_client",
    "get_model_location",
    "init",
    "load_model",
]

MODEL_NAME = "ride_duration_prediction_model"
# Invalid records logged one by one per invocation; the batch summary counts the rest.
MAX_INVALID_RECORDS_LOGGED = 20
# Time kept back from the invocation's deadline for building and returning the response.
DEADLINE_RESERVE_SECONDS = 1.0


class BatchItemFailure(TypedDict):
    """A record Lambda should deliver again, by its Kinesis sequence number."""

    itemIdentifier: str


class PredictionBody(TypedDict):
    ride_duration: float
    ride_id: int | str


class PredictionEvent(TypedDict):
    """One output record, in the shape the reference service publishes."""

    model: str
    version: str
    prediction: PredictionBody


class BatchResponse(TypedDict):
    """The handler's result, which Lambda's ``ReportBatchItemFailures`` reads."""

    predictions: list[PredictionEvent]
    batchItemFailures: list[BatchItemFailure]


@runtime_checkable
class BatchCallback(Protocol):
    """An output that takes a whole batch and returns the positions it could not deliver."""

    def send_batch(
        self, prediction_events: Sequence[PredictionEvent], deadline: float | None = None
    ) -> Any: ...


@dataclass
class _BatchState:
    records: list[dict[str, Any]]
    valid_positions: list[int] = field(default_factory=list)
    ride_events: list[RideEvent] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    failed_positions: set[int] = field(default_factory=set)
    dead_lettered: int = 0


class ModelService:
    """Predict ride durations for Kinesis batches and hand each prediction to the callbacks.

    ``callbacks`` are plain callables called once per prediction event, as in the reference
    service, or objects with ``send_batch`` (such as :class:`KinesisCallback`) that take the
    whole batch at once.
    """

    def __init__(
        self,
        model: Any,
        model_version: str | None = None,
        callbacks: Iterable[Callable[[PredictionEvent], Any]] | None = None,
        dead_letter_queue: DeadLetterQueue | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.model_version = model_version
        self.callbacks = list(callbacks or [])
        self.dead_letter_queue = dead_letter_queue
        self._clock = clock
        self._cold_start = True

    def prepare_features(self, ride: Mapping[str, Any]) -> dict[str, str | float]:
        """Validate one ride and build its features; raise ``InvalidRideEvent`` when unusable."""
        # The ride id plays no part in the features, so any valid one will do here.
        return validate_ride_event({"ride": ride, "ride_id": 0}).features()

    def predict(self, features: Mapping[str, Any]) -> float:
        """Predict the duration in minutes of one ride."""
        return self.predict_batch([features])[0]

    def predict_batch(self, features: Sequence[Mapping[str, Any]]) -> list[float]:
        """Predict every ride with one model call, as plain Python floats."""
        if not features:
            return []
        predictions = self.model.predict(list(features))
        return [float(prediction) for prediction in predictions]

    def lambda_handler(self, event: Mapping[str, Any], context: Any = None) -> BatchResponse:
        """Predict a Lambda Kinesis batch; the module docstring lists where each record ends up."""
        started = time.perf_counter()
        cold_start, self._cold_start = self._cold_start, False
        deadline = self._deadline(context)
        state = _BatchState(records=_kinesis_records(event))

        self._decode_records(state)

        # The model runs before anything is sent, so that an invocation it fails has no side
        # effect. Otherwise the retry would dead-letter the same records again.
        prediction_started = time.perf_counter()
        durations = self.predict_batch([ride_event.features() for ride_event in state.ride_events])
        prediction_ms = (time.perf_counter() - prediction_started) * 1000
        prediction_events = [
            self._prediction_event(ride_event, duration)
            for ride_event, duration in zip(state.ride_events, durations, strict=True)
        ]

        self._dead_letter(state, deadline)
        self._deliver(prediction_events, state, deadline)
        response: BatchResponse = {
            "predictions": prediction_events,
            "batchItemFailures": [
                {"itemIdentifier": _sequence_number(state.records[position])}
                for position in sorted(state.failed_positions)
            ],
        }
        self._log_batch(
            state, context, (time.perf_counter() - started) * 1000, prediction_ms, cold_start
        )
        return response

    def _decode_records(self, state: _BatchState) -> None:
        for position, record in enumerate(state.records):
            try:
                ride_event = decode_ride_event(record["kinesis"].get("data"))
            except InvalidRideEvent as error:
                state.rejected.append(RejectedRecord(position, record, str(error)))
                if len(state.rejected) <= MAX_INVALID_RECORDS_LOGGED:
                    logger.warning(
                        "Invalid ride event",
                        extra={
                            "sequence_number": _sequence_number(record),
                            "partition_key": record["kinesis"].get("partitionKey"),
                            "reason": str(error),
                        },
                    )
                continue
            state.valid_positions.append(position)
            state.ride_events.append(ride_event)

    def _dead_letter(self, state: _BatchState, deadline: float | None) -> None:
        if not state.rejected:
            return

        if self.dead_letter_queue is None:
            state.failed_positions.update(item.position for item in state.rejected)
            return

        unsent = self.dead_letter_queue.send(state.rejected, str(self.model_version), deadline)
        state.failed_positions.update(unsent)
        state.dead_lettered = len(state.rejected) - len(unsent)

    def _deliver(
        self, prediction_events: list[PredictionEvent], state: _BatchState, deadline: float | None
    ) -> None:
        """Send the events to every callback and mark the inputs of undelivered ones as failed."""
        if not prediction_events:
            return

        for callback in self.callbacks:
            if isinstance(callback, BatchCallback):
                report = callback.send_batch(prediction_events, deadline=deadline)
                undelivered = list(report.failed_positions)
            else:
                undelivered = _call_per_event(callback, prediction_events)
            state.failed_positions.update(state.valid_positions[index] for index in undelivered)

    def _prediction_event(self, ride_event: RideEvent, duration: float) -> PredictionEvent:
        return {
            "model": MODEL_NAME,
            "version": self.model_version,
            "prediction": {"ride_duration": duration, "ride_id": ride_event.ride_id},
        }

    def _deadline(self, context: Any) -> float | None:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if remaining is None:
            return None
        return self._clock() + remaining() / 1000 - DEADLINE_RESERVE_SECONDS

    def _log_batch(
        self,
        state: _BatchState,
        context: Any,
        duration_ms: float,
        prediction_ms: float,
        cold_start: bool,
    ) -> None:
        invalid = len(state.rejected)
        failed = len(state.failed_positions)
        undelivered = sum(
            1 for position in state.valid_positions if position in state.failed_positions
        )
        delivered = len(state.valid_positions) - undelivered if self.callbacks else 0
        logger.info(
            "Batch processed",
            extra={
                "records": len(state.records),
                "valid": len(state.ride_events),
                "invalid": invalid,
                "invalid_not_logged": max(0, invalid - MAX_INVALID_RECORDS_LOGGED),
                "dead_lettered": state.dead_lettered,
                "delivered": delivered,
                "failed": failed,
                "duration_ms": round(duration_ms, 2),
                "prediction_ms": round(prediction_ms, 2),
                "model_version": self.model_version,
                "request_id": getattr(context, "aws_request_id", None),
                "cold_start": cold_start,
            },
        )

        metrics.add_metric(name="RecordsProcessed", unit=MetricUnit.Count, value=len(state.records))
        metrics.add_metric(name="InvalidRecords", unit=MetricUnit.Count, value=invalid)
        metrics.add_metric(
            name="DeadLetteredRecords", unit=MetricUnit.Count, value=state.dead_lettered
        )
        metrics.add_metric(name="FailedRecords", unit=MetricUnit.Count, value=failed)
        metrics.add_metric(name="DeliveryFailures", unit=MetricUnit.Count, value=undelivered)
        metrics.add_metric(
            name="PredictionLatency", unit=MetricUnit.Milliseconds, value=prediction_ms
        )
        metrics.flush_metrics()


def _kinesis_records(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Check the event is a Kinesis batch; a malformed event fails the whole invocation."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        keys = sorted(map(str, event))[:10] if isinstance(event, Mapping) else []
        raise ValueError(
            "Expected a Lambda Kinesis event: an object with a 'Records' list, "
            f"got {type(event).__name__} with keys {keys}"
        )
    for index, record in enumerate(records):
        if not isinstance(record, Mapping) or not isinstance(record.get("kinesis"), Mapping):
            raise ValueError(f"Record {index} of the event has no 'kinesis' object")
        if not isinstance(record["kinesis"].get("sequenceNumber"), str):
            raise ValueError(f"Record {index} of the event has no 'kinesis.sequenceNumber' string")
    return records


def _sequence_number(record: Mapping[str, Any]) -> str:
    return record["kinesis"]["sequenceNumber"]


def _call_per_event(
    callback: Callable[[PredictionEvent], Any], prediction_events: list[PredictionEvent]
) -> list[int]:
    """Call a plain callback once per event; an exception fails only that event."""
    failed = []
    for index, prediction_event in enumerate(prediction_events):
        try:
            callback(prediction_event)
        except Exception as error:  # pylint: disable=broad-exception-caught
            # A user callback may raise anything; its input record is reported for retry.
            failed.append(index)
            logger.error(
                "Callback failed for a prediction",
                extra={
                    "ride_id": prediction_event["prediction"]["ride_id"],
                    "callback": getattr(callback, "__name__", type(callback).__name__),
                    "error": f"{type(error).__name__}: {error}",
                },
            )
    return failed


def base64_decode(encoded_data: str) -> dict[str, Any]:
    """Decode one record's data into its JSON document, as the reference service did."""
    return json.loads(base64.b64decode(encoded_data, validate=True).decode("utf-8"))


def get_model_location(run_id: str | None = None) -> str:
    """Return the model location the environment selects, with ``run_id`` as ``RUN_ID``."""
    environ = dict(os.environ)
    if run_id:
        environ["RUN_ID"] = run_id
    return model_source_from_environ(environ).location


def load_model(run_id: str | None = None) -> LoadedModel:
    """Load the model the environment selects, with ``run_id`` as ``RUN_ID``."""
    environ = dict(os.environ)
    if run_id:
        environ["RUN_ID"] = run_id
    return load_model_from_source(model_source_from_environ(environ))


def limit_model_threads() -> None:
    """Run the model on one OpenMP thread unless OMP_NUM_THREADS sets another count.

    A Lambda function gets a full vCPU only from 1,769 MB of memory. With fewer cores than
    threads, the OpenMP threads of gradient-boosted trees wait on each other. Measured on a
    loaded 2-core machine, 1,000 rows took 59 ms with two threads and 9 ms with one.
    """
    if "OMP_NUM_THREADS" not in os.environ:
        threadpool_limits(limits=1, user_api="openmp")


def create_kinesis_client(endpoint_url: str | None = None) -> Any:
    """Create the output client; retries are ours, so botocore makes one attempt per call."""
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=2,
        read_timeout=10,
    )
    return boto3.client("kinesis", endpoint_url=endpoint_url, config=config)


def create_sqs_client(endpoint_url: str | None = None) -> Any:
    """Create the dead-letter queue client."""
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=10
    )
    return boto3.client("sqs", endpoint_url=endpoint_url, config=config)


def init(
    prediction_stream_name: str,
    run_id: str | None = None,
    test_run: bool = False,
    *,
    model_source: ModelSource | None = None,
    kinesis_endpoint_url: str | None = None,
    dead_letter_queue_url: str | None = None,
    sqs_endpoint_url: str | None = None,
    retry_policy: RetryPolicy | None = None,
) -> ModelService:
    """Load the model and build the service with its outputs, once per container."""
    environ = dict(os.environ)
    if run_id:
        environ["RUN_ID"] = run_id
    loaded = load_model_from_source(model_source or model_source_from_environ(environ))
    limit_model_threads()
    logger.info(
        "Model loaded",
        extra={
            "model_location": loaded.location,
            "model_version": loaded.version,
            "flavor": loaded.flavor,
        },
    )

    callbacks: list[Any] = []
    if not test_run:
        kinesis_client = create_kinesis_client(kinesis_endpoint_url)
        callbacks.append(KinesisCallback(kinesis_client, prediction_stream_name, retry_policy))

    dead_letter_queue = None
    if dead_letter_queue_url:
        dead_letter_queue = DeadLetterQueue(
            create_sqs_client(sqs_endpoint_url), dead_letter_queue_url
        )

    return ModelService(
        model=loaded.model,
        model_version=loaded.version,
        callbacks=callbacks,
        dead_letter_queue=dead_letter_queue,
    )
