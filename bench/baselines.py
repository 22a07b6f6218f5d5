"""The two handlers the service is compared with: the course's per-record one, and a floor.

Neither is used by the service. ``reference_handler`` reproduces what the MLOps course's
reference service does per record: decode the base64 JSON, build the features, call the
model on one row, and make one ``PutRecord`` call per ride. It is given the scikit-learn
pipeline itself rather than the course's MLflow pyfunc wrapper, which only makes it faster.

``vectorized_floor`` is the least code that produces the same output: decode, one model
call, ``PutRecords`` in chunks of 500, with no validation, no error handling, no logging and
no metrics. A handler cannot do the same work much faster, so it bounds the service.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

MODEL_NAME = "ride_duration_prediction_model"
# Kinesis takes at most 500 records per PutRecords call.
PUT_RECORDS_MAX_ENTRIES = 500


def reference_handler(
    event: Mapping[str, Any],
    model: Any,
    model_version: str,
    kinesis_client: Any | None,
    stream_name: str,
) -> dict[str, Any]:
    """Handle a batch one record at a time, as the course reference does (the baseline)."""
    prediction_events = []
    for record in event["Records"]:
        encoded_data = record["kinesis"]["data"]
        ride_event = json.loads(base64.b64decode(encoded_data).decode("utf-8"))
        ride = ride_event["ride"]
        ride_id = ride_event["ride_id"]

        features = {
            "PU_DO": f"{ride['PULocationID']}_{ride['DOLocationID']}",
            "trip_distance": ride["trip_distance"],
        }
        prediction = float(model.predict([features])[0])
        prediction_event = {
            "model": MODEL_NAME,
            "version": model_version,
            "prediction": {"ride_duration": prediction, "ride_id": ride_id},
        }
        if kinesis_client is not None:
            kinesis_client.put_record(
                StreamName=stream_name,
                Data=json.dumps(prediction_event),
                PartitionKey=str(ride_id),
            )
        prediction_events.append(prediction_event)
    return {"predictions": prediction_events}


def vectorized_floor(
    event: Mapping[str, Any],
    model: Any,
    model_version: str,
    kinesis_client: Any | None,
    stream_name: str,
) -> dict[str, Any]:
    """Handle a batch with one model call and PutRecords, and nothing else (the floor)."""
    ride_events = [
        json.loads(base64.b64decode(record["kinesis"]["data"])) for record in event["Records"]
    ]
    features = [
        {
            "PU_DO": f"{ride_event['ride']['PULocationID']}_{ride_event['ride']['DOLocationID']}",
            "trip_distance": ride_event["ride"]["trip_distance"],
        }
        for ride_event in ride_events
    ]
    durations = model.predict(features)
    prediction_events = [
        {
            "model": MODEL_NAME,
            "version": model_version,
            "prediction": {"ride_duration": float(duration), "ride_id": ride_event["ride_id"]},
        }
        for ride_event, duration in zip(ride_events, durations, strict=True)
    ]
    if kinesis_client is not None:
        entries = [
            {
                "Data": json.dumps(prediction_event).encode("utf-8"),
                "PartitionKey": str(prediction_event["prediction"]["ride_id"]),
            }
            for prediction_event in prediction_events
        ]
        for start in range(0, len(entries), PUT_RECORDS_MAX_ENTRIES):
            kinesis_client.put_records(
                StreamName=stream_name, Records=entries[start : start + PUT_RECORDS_MAX_ENTRIES]
            )
    return {"predictions": prediction_events}
