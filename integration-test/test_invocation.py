"""The invocation endpoint, called as a client calls the image: POST the event, read the reply.

The status codes and error documents asserted here are those of the Lambda Runtime Interface
Emulator with the Python runtime, so the same tests hold for the image and for
``local_stack.invoke_server``.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from integration_helpers import IntegrationSettings, diff_documents, invoke, invoke_json

pytestmark = pytest.mark.integration


def test_invocation_returns_prediction(
    integration_settings: IntegrationSettings,
    kinesis_event: dict[str, Any],
    expected_prediction_event: dict[str, Any],
) -> None:
    # given
    expected_response = {"predictions": [expected_prediction_event], "batchItemFailures": []}

    # when
    status, actual_response = invoke_json(integration_settings.invoke_url, kinesis_event)

    # then
    assert status == 200
    assert not diff_documents(expected_response, actual_response)


def test_invocation_reports_invalid_record(
    integration_settings: IntegrationSettings,
    kinesis_event: dict[str, Any],
    expected_prediction_event: dict[str, Any],
) -> None:
    # given: the ride of event.json, then a record whose data is base64 of text, not JSON
    event = copy.deepcopy(kinesis_event)
    invalid_record = copy.deepcopy(event["Records"][0])
    invalid_record["kinesis"]["sequenceNumber"] = (
        "49630081666084879290581185630324770398608704880802529283"
    )
    invalid_record["kinesis"]["data"] = base64.b64encode(b"not a ride event").decode("ascii")
    event["Records"].append(invalid_record)
    expected_response = {
        "predictions": [expected_prediction_event],
        "batchItemFailures": [{"itemIdentifier": invalid_record["kinesis"]["sequenceNumber"]}],
    }

    # when
    status, actual_response = invoke_json(integration_settings.invoke_url, event)

    # then
    assert status == 200
    assert not diff_documents(expected_response, actual_response)


def test_invocation_handler_error_returns_error_document(
    integration_settings: IntegrationSettings,
) -> None:
    # given: an object that is not a Kinesis event, which the handler rejects by raising
    event = {"detail": "not a Kinesis event"}

    # when
    status, error_document = invoke_json(integration_settings.invoke_url, event)

    # then: the runtime reports the exception as the invocation's result
    assert status == 200
    assert sorted(error_document) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert error_document["errorType"] == "ValueError"
    assert "'Records'" in error_document["errorMessage"]
    assert isinstance(error_document["stackTrace"], list)


def test_invocation_invalid_json_returns_unmarshal_error(
    integration_settings: IntegrationSettings,
) -> None:
    # given
    body = b"this is not JSON"

    # when
    status, reply = invoke(integration_settings.invoke_url, body)
    error_document = json.loads(reply)

    # then
    assert status == 200
    assert error_document["errorType"] == "Runtime.UnmarshalError"
    assert error_document["errorMessage"] == (
        "Unable to unmarshal input: Expecting value: line 1 column 1 (char 0)"
    )


def test_invocation_unknown_path_not_found(integration_settings: IntegrationSettings) -> None:
    # given
    parts = urlsplit(integration_settings.invoke_url)
    url = urlunsplit((parts.scheme, parts.netloc, "/2015-03-31/functions/other/invoke", "", ""))

    # when
    status, _ = invoke(url, json.dumps({"Records": []}).encode("utf-8"))

    # then
    assert status == 404
