"""Shared parts of the integration tests: their settings, the invocation call, the Kinesis reader.

The tests run the same way against the container image and LocalStack (``run.sh``) and against
the local invocation endpoint and moto (the Docker-free stack in ``conftest.py``): both give
them the environment variables read by :meth:`IntegrationSettings.from_environ`.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepdiff import DeepDiff

EVENT_PATH = Path(__file__).resolve().parent / "event.json"
DEFAULT_PREDICTIONS_STREAM_NAME = "ride_predictions"

# Absolute tolerance in minutes for numbers, given to DeepDiff as math_epsilon (it compares
# with math.isclose(abs_tol=...)). JSON carries a float exactly, because repr round-trips.
# So a difference can only come from the endpoint computing with another Python, numpy or
# BLAS build than the test, as the image does with Python 3.12 and its own wheels. That
# changes the last bits of the SVD's sums: an estimate of 1e-12 minutes. A millionth of a
# minute is far above that and far below any difference that matters for a ride duration.
# An absolute tolerance also stays meaningful near zero, where significant_digits rounds.
PREDICTION_TOLERANCE_MINUTES = 1e-6

HTTP_TIMEOUT_SECONDS = 120.0
KINESIS_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class IntegrationSettings:
    """Locations of the endpoint, the output stream and the model, from environment variables."""

    invoke_url: str
    kinesis_endpoint_url: str
    predictions_stream_name: str
    # The model version the service reports: the MLflow run id.
    run_id: str
    # The model the test loads itself to compute the expected prediction.
    model_uri: str
    s3_endpoint_url: str | None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> IntegrationSettings:
        """Read the settings; raise ``ValueError`` naming every missing variable."""
        required = ("INVOKE_URL", "KINESIS_ENDPOINT_URL", "RUN_ID", "MODEL_URI")
        missing = [name for name in required if not environ.get(name)]
        if missing:
            raise ValueError(
                f"Missing environment variables {', '.join(missing)}: integration-test/run.sh "
                "sets them for the image; unset INVOKE_URL to start the Docker-free stack instead"
            )
        return cls(
            invoke_url=environ["INVOKE_URL"],
            kinesis_endpoint_url=environ["KINESIS_ENDPOINT_URL"],
            predictions_stream_name=environ.get(
                "PREDICTIONS_STREAM_NAME", DEFAULT_PREDICTIONS_STREAM_NAME
            ),
            run_id=environ["RUN_ID"],
            model_uri=environ["MODEL_URI"],
            s3_endpoint_url=environ.get("MLFLOW_S3_ENDPOINT_URL")
            or environ.get("AWS_ENDPOINT_URL"),
        )


def invoke(url: str, body: bytes) -> tuple[int, bytes]:
    """POST ``body`` to ``url``; return the status and the response body, whatever the status."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def invoke_json(url: str, document: Any) -> tuple[int, Any]:
    """POST a JSON document and parse the JSON reply."""
    status, body = invoke(url, json.dumps(document).encode("utf-8"))
    return status, json.loads(body)


def diff_documents(expected: Any, actual: Any) -> DeepDiff:
    """Compare two JSON documents: a changed, added or missing key or a changed type is a
    difference, and numbers may differ by at most ``PREDICTION_TOLERANCE_MINUTES``."""
    return DeepDiff(expected, actual, math_epsilon=PREDICTION_TOLERANCE_MINUTES)


def wait_for_ride_predictions(
    kinesis_client: Any, stream_name: str, ride_id: int | str, timeout: float = KINESIS_WAIT_SECONDS
) -> list[dict[str, Any]]:
    """Read every shard from its start until a prediction for ``ride_id`` appears.

    Returns every prediction event for the ride found in the stream, in shard order. Raises
    ``TimeoutError`` when none appears within ``timeout`` seconds.
    """
    iterators = _trim_horizon_iterators(kinesis_client, stream_name)
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        for shard_id, iterator in list(iterators.items()):
            records, iterators[shard_id] = _read_to_latest(kinesis_client, iterator)
            for record in records:
                prediction_event = json.loads(record["Data"])
                if prediction_event.get("prediction", {}).get("ride_id") == ride_id:
                    found.append(prediction_event)
        if found:
            return found
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"No prediction for ride_id {ride_id!r} in stream {stream_name!r} "
                f"within {timeout:.0f} s"
            )
        time.sleep(0.5)


def _trim_horizon_iterators(kinesis_client: Any, stream_name: str) -> dict[str, str]:
    shards = kinesis_client.list_shards(StreamName=stream_name)["Shards"]
    return {
        shard["ShardId"]: kinesis_client.get_shard_iterator(
            StreamName=stream_name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for shard in shards
    }


def _read_to_latest(kinesis_client: Any, iterator: str) -> tuple[list[dict[str, Any]], str]:
    """Read a shard until it has nothing newer; return the records and the next iterator."""
    records: list[dict[str, Any]] = []
    while True:
        response = kinesis_client.get_records(ShardIterator=iterator, Limit=1000)
        records.extend(response["Records"])
        iterator = response["NextShardIterator"]
        # An empty page with records still ahead of it is possible in Kinesis, so an empty
        # page only ends the read when the shard reports it has caught up.
        if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
            return records, iterator
