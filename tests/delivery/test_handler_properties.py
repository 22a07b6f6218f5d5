"""Property: whatever the records hold, the handler accounts for every one of them.

For any record bytes and any ``kinesis.data`` string, the handler built by ``model.init``
(real model, moto output stream, moto dead-letter queue) returns normally, and each record
ends in exactly one place: predicted and delivered, dead-lettered, or reported in
``batchItemFailures``. The events are built by hand, because only a hand-made event can carry
a ``data`` string that is not base64; 200 examples keep the test under a minute.
"""

from __future__ import annotations

import base64
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local_stack.outcomes import StreamReader
from tests.delivery.stack import LocalStack, encode, kinesis_record

# These tests start a moto server.
pytestmark = pytest.mark.integration

NUMBERS_AND_NOT = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["130", "3.66", "1e3", " 7", "0x1F", "NaN", "-0", "130.0"]),
    st.booleans(),
    st.none(),
)
RIDE_DOCUMENTS = st.fixed_dictionaries(
    {
        "ride": st.fixed_dictionaries(
            {},
            optional={
                "PULocationID": NUMBERS_AND_NOT,
                "DOLocationID": NUMBERS_AND_NOT,
                "trip_distance": NUMBERS_AND_NOT,
            },
        ),
    },
    optional={"ride_id": st.one_of(st.integers(), st.text(max_size=300), st.none(), st.floats())},
)
VALID_RIDES = st.fixed_dictionaries(
    {
        "ride": st.fixed_dictionaries(
            {
                "PULocationID": st.integers(min_value=1, max_value=265),
                "DOLocationID": st.integers(min_value=1, max_value=265),
                "trip_distance": st.floats(min_value=0, max_value=1e6),
            }
        ),
        "ride_id": st.integers(min_value=0, max_value=10**9),
    }
)
# What a record's kinesis.data can be: base64 of any bytes, of any ride-shaped JSON, of a
# valid ride, or any string at all.
DATA = st.one_of(
    st.binary(max_size=300).map(encode),
    RIDE_DOCUMENTS.map(lambda doc: encode(json.dumps(doc).encode())),
    VALID_RIDES.map(lambda doc: encode(json.dumps(doc).encode())),
    st.text(max_size=200),
)


@pytest.fixture(scope="module")
def property_stack(moto_server, logged_model):
    stack = LocalStack(moto_server.endpoint_url, logged_model)
    yield stack, stack.service(), StreamReader(stack.kinesis, stack.output_stream)
    stack.close()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(records_data=st.lists(DATA, min_size=1, max_size=8))
def test_handler_accounts_for_every_record(property_stack, records_data):
    stack, service, output = property_stack
    sequence_numbers = [str(1000 + index) for index in range(len(records_data))]
    event = {
        "Records": [
            kinesis_record(data, number)
            for data, number in zip(records_data, sequence_numbers, strict=True)
        ]
    }

    response = service.lambda_handler(event)

    dead_lettered = [message["sequenceNumber"] for message in stack.dead_letters()]
    reported = [failure["itemIdentifier"] for failure in response["batchItemFailures"]]
    delivered = [json.loads(record["Data"]) for record in output.read_available()]
    assert len(records_data) == len(response["predictions"]) + len(dead_lettered) + len(reported)
    assert set(dead_lettered).isdisjoint(reported)
    assert set(dead_lettered) | set(reported) <= set(sequence_numbers)
    assert delivered == response["predictions"]
    for prediction in delivered:
        assert math.isfinite(prediction["prediction"]["ride_duration"])


def test_handler_accounts_for_each_outcome_once(property_stack):
    # A fixed example next to the generated ones: one record of each outcome.
    stack, service, output = property_stack
    valid = json.dumps({"ride": {"PULocationID": 1, "DOLocationID": 2, "trip_distance": 1.0}})
    event = {
        "Records": [
            kinesis_record(encode(json.dumps({**json.loads(valid), "ride_id": 5}).encode()), "1"),
            kinesis_record(base64.b64encode(b"\x00\x01").decode(), "2"),
        ]
    }

    response = service.lambda_handler(event)

    assert [p["prediction"]["ride_id"] for p in response["predictions"]] == [5]
    assert [m["sequenceNumber"] for m in stack.dead_letters()] == ["2"]
    assert response["batchItemFailures"] == []
    assert len(output.read_available()) == 1
