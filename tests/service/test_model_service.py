"""The handler: one model call per batch, the exact response, and bad records isolated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model import MODEL_NAME, ModelService
from prediction_delivery import DeliveryReport
from tests.service.factories import encode, kinesis_event, ride_event, sequence_number

MODEL_VERSION = "0123456789abcdef0123456789abcdef"


class RecordingModel:
    """Stub model: records each call and returns float32 values, as some regressors do."""

    def __init__(self) -> None:
        self.calls: list[list[dict]] = []

    def predict(self, features):
        self.calls.append(list(features))
        return np.array([10.0 + f["trip_distance"] for f in features], dtype=np.float32)


class FailingModel:
    def predict(self, features):
        raise RuntimeError("model exploded")


class RecordingBatchCallback:
    """Stub batch output that fails the positions given to it."""

    def __init__(self, fail_positions=()) -> None:
        self.fail_positions = list(fail_positions)
        self.batches: list[list[dict]] = []

    def send_batch(self, prediction_events, deadline=None):
        self.batches.append(list(prediction_events))
        return DeliveryReport(sent=len(prediction_events), failed_positions=self.fail_positions)


def expected_event(ride_id, duration):
    return {
        "model": MODEL_NAME,
        "version": MODEL_VERSION,
        "prediction": {"ride_duration": duration, "ride_id": ride_id},
    }


def test_lambda_handler_one_model_call_per_batch():
    model = RecordingModel()
    service = ModelService(model, MODEL_VERSION)
    event = kinesis_event(*(encode(ride_event(ride_id=i, distance=i)) for i in range(50)))

    service.lambda_handler(event)

    assert len(model.calls) == 1
    assert len(model.calls[0]) == 50


def test_lambda_handler_exact_response_shape():
    service = ModelService(RecordingModel(), MODEL_VERSION)
    event = kinesis_event(encode(ride_event(ride_id=256, distance=3.5)))

    actual = service.lambda_handler(event)

    assert actual == {"predictions": [expected_event(256, 13.5)], "batchItemFailures": []}


def test_lambda_handler_float32_predictions_serialize():
    service = ModelService(RecordingModel(), MODEL_VERSION)

    response = service.lambda_handler(kinesis_event(encode(ride_event(distance=3.66))))

    duration = response["predictions"][0]["prediction"]["ride_duration"]
    assert type(duration) is float  # pylint: disable=unidiomatic-typecheck
    assert json.loads(json.dumps(response)) == response


def test_lambda_handler_bad_record_in_middle():
    service = ModelService(RecordingModel(), MODEL_VERSION)
    event = kinesis_event(
        encode(ride_event(ride_id=1, distance=1.0)),
        "%%% not base64 %%%",
        encode(ride_event(ride_id=3, distance=3.0)),
    )

    actual = service.lambda_handler(event)

    assert actual == {
        "predictions": [expected_event(1, 11.0), expected_event(3, 13.0)],
        "batchItemFailures": [{"itemIdentifier": sequence_number(1)}],
    }


def test_lambda_handler_all_records_invalid():
    model = RecordingModel()
    service = ModelService(model, MODEL_VERSION)

    actual = service.lambda_handler(kinesis_event(encode([1]), encode({"ride_id": 1})))

    assert actual == {
        "predictions": [],
        "batchItemFailures": [
            {"itemIdentifier": sequence_number(0)},
            {"itemIdentifier": sequence_number(1)},
        ],
    }
    assert model.calls == []


def test_lambda_handler_empty_batch():
    assert ModelService(RecordingModel(), MODEL_VERSION).lambda_handler({"Records": []}) == {
        "predictions": [],
        "batchItemFailures": [],
    }


def test_lambda_handler_string_numbers_give_same_prediction():
    service = ModelService(RecordingModel(), MODEL_VERSION)
    event = kinesis_event(
        encode(ride_event(ride_id=1, pickup=130, dropoff=205, distance=3.66)),
        encode(ride_event(ride_id=2, pickup="130", dropoff="205.0", distance="3.66")),
    )

    predictions = service.lambda_handler(event)["predictions"]

    assert (
        predictions[0]["prediction"]["ride_duration"]
        == predictions[1]["prediction"]["ride_duration"]
    )


def test_lambda_handler_calls_plain_callbacks_once_per_prediction():
    received = []
    service = ModelService(RecordingModel(), MODEL_VERSION, callbacks=[received.append])
    event = kinesis_event(encode(ride_event(ride_id=1)), encode(ride_event(ride_id=2)))

    response = service.lambda_handler(event)

    assert received == response["predictions"]


def test_lambda_handler_plain_callback_failure_reports_its_record():
    def fail_ride_two(prediction_event):
        if prediction_event["prediction"]["ride_id"] == 2:
            raise ConnectionError("output unavailable")

    service = ModelService(RecordingModel(), MODEL_VERSION, callbacks=[fail_ride_two])
    event = kinesis_event(
        encode(ride_event(ride_id=1)), encode(ride_event(ride_id=2)), encode(ride_event(ride_id=3))
    )

    response = service.lambda_handler(event)

    assert response["batchItemFailures"] == [{"itemIdentifier": sequence_number(1)}]


def test_lambda_handler_undelivered_maps_back_to_input_records():
    callback = RecordingBatchCallback(fail_positions=[1])
    service = ModelService(RecordingModel(), MODEL_VERSION, callbacks=[callback])
    # The invalid record at index 1 shifts the valid ones: prediction 1 is input record 2.
    event = kinesis_event(encode(ride_event(ride_id=1)), encode([]), encode(ride_event(ride_id=3)))

    response = service.lambda_handler(event)

    assert response["batchItemFailures"] == [
        {"itemIdentifier": sequence_number(1)},
        {"itemIdentifier": sequence_number(2)},
    ]
    assert len(callback.batches) == 1


def test_lambda_handler_model_failure_fails_invocation():
    service = ModelService(FailingModel(), MODEL_VERSION)

    with pytest.raises(RuntimeError, match="model exploded"):
        service.lambda_handler(kinesis_event(encode(ride_event())))


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            {},
            "Expected a Lambda Kinesis event: an object with a 'Records' list, "
            "got dict with keys []",
        ),
        ({"Records": [{"body": "x"}]}, "Record 0 of the event has no 'kinesis' object"),
        (
            {"Records": [{"kinesis": {"data": ""}}]},
            "Record 0 of the event has no 'kinesis.sequenceNumber' string",
        ),
    ],
)
def test_lambda_handler_malformed_event_fails_invocation(event, message):
    service = ModelService(RecordingModel(), MODEL_VERSION)

    with pytest.raises(ValueError) as raised:
        service.lambda_handler(event)

    assert str(raised.value) == message


def test_prepare_features_reference_interface():
    service = ModelService(RecordingModel(), MODEL_VERSION)

    features = service.prepare_features(
        {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}
    )

    assert features == {"PU_DO": "130_205", "trip_distance": 3.66}


def test_predict_reference_interface():
    service = ModelService(RecordingModel(), MODEL_VERSION)

    assert service.predict({"PU_DO": "130_205", "trip_distance": 3.0}) == 13.0
