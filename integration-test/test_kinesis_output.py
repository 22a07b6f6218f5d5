"""The prediction published to the output Kinesis stream, read back as a consumer would."""

from __future__ import annotations

from typing import Any

import pytest
from integration_helpers import (
    IntegrationSettings,
    diff_documents,
    invoke_json,
    wait_for_ride_predictions,
)

pytestmark = pytest.mark.integration


def test_kinesis_output_contains_prediction(
    integration_settings: IntegrationSettings,
    kinesis_event: dict[str, Any],
    ride_event: dict[str, Any],
    expected_prediction_event: dict[str, Any],
    kinesis_client: Any,
) -> None:
    # given: the ride of event.json was predicted
    status, _ = invoke_json(integration_settings.invoke_url, kinesis_event)
    assert status == 200

    # when
    published = wait_for_ride_predictions(
        kinesis_client, integration_settings.predictions_stream_name, ride_event["ride_id"]
    )

    # then: every record of this ride (other tests predict it too) is the expected event
    assert not diff_documents([expected_prediction_event] * len(published), published)
