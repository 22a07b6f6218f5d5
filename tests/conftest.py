"""Shared fixtures: a real moto server over HTTP, local AWS credentials and real TLC rows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack.aws import LOCAL_CREDENTIALS, client
from local_stack.moto_server import MotoServer

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def local_aws_credentials() -> Iterator[None]:
    """Point every AWS SDK call at fake credentials, so that no test can reach a real account."""
    saved = {name: os.environ.get(name) for name in LOCAL_CREDENTIALS}
    os.environ.update(LOCAL_CREDENTIALS)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server process on a free port of 127.0.0.1 for the whole session."""
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with MotoServer(port=0, log_path=log_path) as server:
        yield server


@pytest.fixture
def moto_endpoint(moto_server: MotoServer) -> str:
    """The moto server's endpoint URL."""
    return moto_server.endpoint_url


@pytest.fixture
def kinesis_client(moto_endpoint: str):
    return client("kinesis", moto_endpoint)


@pytest.fixture
def s3_client(moto_endpoint: str):
    return client("s3", moto_endpoint)


@pytest.fixture
def sqs_client(moto_endpoint: str):
    return client("sqs", moto_endpoint)


@pytest.fixture(scope="session")
def tlc_mirror() -> Path:
    """The folder of TLC trip files named by TLC_MIRROR; tests of real rows skip without it."""
    mirror = os.environ.get("TLC_MIRROR")
    if not mirror or not Path(mirror).is_dir():
        pytest.skip("TLC_MIRROR does not name a folder of TLC trip files; `make test` sets it")
    return Path(mirror)
