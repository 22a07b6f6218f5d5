"""Fixtures of the delivery and observability tests, which both conftest files import."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from local_stack.fault_injection import FaultInjectingProxy
from tests.delivery.stack import LocalStack, train_logged_model


@pytest.fixture(scope="session")
def logged_model(moto_server, tlc_mirror, tmp_path_factory):
    """A model trained on real January rides, logged to moto's S3 through MLflow."""
    saved = os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    # The model loader reads the S3 endpoint from here too, so it stays set for the session.
    os.environ["MLFLOW_S3_ENDPOINT_URL"] = moto_server.endpoint_url
    yield train_logged_model(
        moto_server.endpoint_url, str(tlc_mirror), tmp_path_factory.mktemp("mlflow")
    )
    if saved is None:
        os.environ.pop("MLFLOW_S3_ENDPOINT_URL", None)
    else:
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = saved


@pytest.fixture
def make_stack(moto_endpoint, logged_model) -> Iterator[Callable[..., LocalStack]]:
    """Build stacks of fresh streams and queues, deleted again after the test."""
    stacks: list[LocalStack] = []

    def make(shard_count: int = 1) -> LocalStack:
        stacks.append(LocalStack(moto_endpoint, logged_model, shard_count=shard_count))
        return stacks[-1]

    yield make
    for created in stacks:
        created.close()


@pytest.fixture
def stack(make_stack) -> LocalStack:
    """Fresh input and output streams and queues on the moto server, one shard each."""
    return make_stack()


@pytest.fixture
def proxy(moto_endpoint) -> Iterator[FaultInjectingProxy]:
    """A fault-injecting proxy in front of the moto server, with no fault planned yet."""
    with FaultInjectingProxy(moto_endpoint) as running:
        yield running
