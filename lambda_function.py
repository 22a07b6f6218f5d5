"""AWS Lambda entry point: read the environment and build the service once per container."""

from __future__ import annotations

import os
from typing import Any

import model
from settings import Settings

settings = Settings.from_environ(os.environ)

model_service = model.init(
    prediction_stream_name=settings.predictions_stream_name,
    run_id=settings.run_id,
    test_run=settings.test_run,
    kinesis_endpoint_url=settings.kinesis_endpoint_url,
    dead_letter_queue_url=settings.dead_letter_queue_url,
    sqs_endpoint_url=settings.sqs_endpoint_url,
)


def lambda_handler(event: dict[str, Any], context: Any) -> model.BatchResponse:
    """Predict the ride durations of one Kinesis batch."""
    return model_service.lambda_handler(event, context)
