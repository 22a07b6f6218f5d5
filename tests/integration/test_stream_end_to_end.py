"""End to end on the moto server: a model logged to S3 through MLflow and found by RUN_ID,
rides on the input stream, the local event source mapping running the handler, and the
predictions read back from the output stream."""

from __future__ import annotations

import base64
import json
import threading

import mlflow.sklearn
import pytest
from deepdiff import DeepDiff

import model
import train
from local_stack.aws import create_bucket, create_queue, create_streams
from local_stack.event_source_mapping import LocalEventSourceMapping, MappingSettings
from local_stack.outcomes import StreamReader
from tlc_data import fetch_trip_file, read_trips, ride_features

BUCKET = "e2e-models"
INPUT_STREAM = "e2e_ride_events"
OUTPUT_STREAM = "e2e_ride_predictions"
# Durations are compared to 1e-6 minutes: the same model and input on the same machine give
# the same float, and JSON round-trips floats exactly; the margin only allows for BLAS order.
FLOAT_PRECISION = 6


@pytest.fixture(scope="module")
def logged_model(tmp_path_factory, tlc_mirror, moto_server):
    """Train on 3,000 real January rides and log the model to moto's S3 through MLflow."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_S3_ENDPOINT_URL", moto_server.endpoint_url)
    from local_stack.aws import client  # pylint: disable=import-outside-toplevel

    create_bucket(client("s3", moto_server.endpoint_url), BUCKET)
    tracking_uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    result = train.train_and_log(
        "2022-01",
        "2022-02",
        "green",
        tracking_uri=tracking_uri,
        artifact_root=f"s3://{BUCKET}",
        mirror=tlc_mirror,
        max_rows=3000,
    )
    yield result
    mp.undo()


@pytest.fixture(scope="module")
def march_rides(tlc_mirror):
    trips = read_trips(fetch_trip_file("green", 2022, 3, mirror=tlc_mirror)).head(40)
    return [
        {"ride": features_row, "ride_id": 1000 + index}
        for index, features_row in enumerate(
            trips[["PULocationID", "DOLocationID", "trip_distance"]].to_dict(orient="records")
        )
    ], ride_features(trips)


@pytest.fixture
def service(logged_model, monkeypatch, moto_endpoint, kinesis_client):
    # Fresh streams per test, so that no test reads another's records.
    for stream in (INPUT_STREAM, OUTPUT_STREAM):
        if stream in kinesis_client.list_streams()["StreamNames"]:
            kinesis_client.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
    create_streams(kinesis_client, [INPUT_STREAM, OUTPUT_STREAM])
    monkeypatch.setenv("RUN_ID", logged_model.run_id)
    monkeypatch.setenv("MODEL_BUCKET", BUCKET)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", logged_model.experiment_id)
    monkeypatch.delenv("MODEL_LOCATION", raising=False)
    return model.init(OUTPUT_STREAM, kinesis_endpoint_url=moto_endpoint)


def put_rides(kinesis_client, payloads: list[bytes], partition_keys: list[str]) -> list[str]:
    response = kinesis_client.put_records(
        StreamName=INPUT_STREAM,
        Records=[
            {"Data": data, "PartitionKey": key}
            for data, key in zip(payloads, partition_keys, strict=True)
        ],
    )
    return [record["SequenceNumber"] for record in response["Records"]]


def run_mapping(kinesis_client, handler, sqs_client=None, **settings) -> LocalEventSourceMapping:
    mapping = LocalEventSourceMapping(
        kinesis_client, INPUT_STREAM, handler, MappingSettings(**settings), sqs_client=sqs_client
    )
    mapping.run(threading.Event(), idle_exit_seconds=1.0)
    return mapping


def test_stream_predictions_match_model(service, logged_model, kinesis_client, march_rides):
    rides, features = march_rides
    put_rides(
        kinesis_client, [json.dumps(r).encode() for r in rides], [str(r["ride_id"]) for r in rides]
    )
    pipeline = mlflow.sklearn.load_model(logged_model.run_artifact_model_uri)
    expected = {
        ride["ride_id"]: {
            "model": "ride_duration_prediction_model",
            "version": logged_model.run_id,
            "prediction": {"ride_duration": float(duration), "ride_id": ride["ride_id"]},
        }
        for ride, duration in zip(rides, pipeline.predict(features), strict=True)
    }

    mapping = run_mapping(kinesis_client, service.lambda_handler, batch_size=16)

    output = [
        json.loads(record["Data"])
        for record in StreamReader(kinesis_client, OUTPUT_STREAM).read_available()
    ]
    actual = {event["prediction"]["ride_id"]: event for event in output}
    assert len(output) == len(rides)
    assert DeepDiff(expected, actual, significant_digits=FLOAT_PRECISION) == {}
    assert mapping.stats.invocations == 3


def test_stream_bad_record_in_middle(service, kinesis_client, sqs_client):
    good = {"ride": {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}}
    payloads = [
        json.dumps({**good, "ride_id": "left"}).encode(),
        b"\xff\xfe not json",
        json.dumps({**good, "ride_id": "right"}).encode(),
    ]
    sequence_numbers = put_rides(kinesis_client, payloads, ["left", "bad", "right"])
    responses = []

    def recording_handler(event, context):
        response = service.lambda_handler(event, context)
        responses.append(response)
        return response

    on_failure_url, _ = create_queue(sqs_client, "e2e_on_failure")
    mapping = run_mapping(
        kinesis_client,
        recording_handler,
        sqs_client=sqs_client,
        batch_size=10,
        maximum_retry_attempts=0,
        on_failure_queue_url=on_failure_url,
    )

    first = responses[0]
    assert [p["prediction"]["ride_id"] for p in first["predictions"]] == ["left", "right"]
    assert first["batchItemFailures"] == [{"itemIdentifier": sequence_numbers[1]}]
    # With no retries left, Lambda discards the retried batch: the bad record and "right",
    # which the first invocation had already delivered.
    assert mapping.stats.records_discarded == 2
    failure = json.loads(sqs_client.receive_message(QueueUrl=on_failure_url)["Messages"][0]["Body"])
    assert failure["KinesisBatchInfo"]["startSequenceNumber"] == sequence_numbers[1]


def test_lambda_event_shape(service, kinesis_client):
    events = []
    sequence_numbers = put_rides(kinesis_client, [b'{"ride_id": 1}'], ["1"])

    def capture(event, context):
        events.append(event)
        return {"batchItemFailures": []}

    run_mapping(kinesis_client, capture, batch_size=100)

    record = next(
        r for r in events[-1]["Records"] if r["kinesis"]["sequenceNumber"] == sequence_numbers[0]
    )
    assert sorted(record) == [
        "awsRegion",
        "eventID",
        "eventName",
        "eventSource",
        "eventSourceARN",
        "eventVersion",
        "invokeIdentityArn",
        "kinesis",
    ]
    assert sorted(record["kinesis"]) == [
        "approximateArrivalTimestamp",
        "data",
        "kinesisSchemaVersion",
        "partitionKey",
        "sequenceNumber",
    ]
    assert base64.b64decode(record["kinesis"]["data"]) == b'{"ride_id": 1}'
    assert record["eventSource"] == "aws:kinesis"
    assert record["eventName"] == "aws:kinesis:record"
    assert record["eventID"] == f"shardId-000000000000:{sequence_numbers[0]}"
    assert record["eventSourceARN"].endswith(f":stream/{INPUT_STREAM}")
    assert record["awsRegion"] == "eu-west-1"
