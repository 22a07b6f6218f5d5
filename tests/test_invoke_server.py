"""The local invocation endpoint's own behaviour: paths, methods, ports and init failures.

Its happy path and the error documents of a running handler are covered against the real
service in integration-test/, where the same tests also run against the container image.
"""

# pytest passes fixtures as arguments named like the fixture functions.
# pylint: disable=redefined-outer-name

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack.aws import LOCAL_CREDENTIALS
from local_stack.invoke_server import (
    INVOCATIONS_PATH,
    FunctionRuntime,
    wait_until_serving,
)
from local_stack.moto_server import HOST, free_port
from tests.conftest import REPO_ROOT


def _request(url: str, method: str = "POST", body: bytes | None = b"{}") -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _start_server(port: int, *arguments: str) -> subprocess.Popen[bytes]:
    """Start the endpoint with no model configured, so that initializing the handler fails."""
    environ = {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1", **LOCAL_CREDENTIALS}
    return subprocess.Popen(
        [sys.executable, "-m", "local_stack.invoke_server", "--port", str(port), *arguments],
        cwd=REPO_ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="module")
def unconfigured_server() -> Iterator[str]:
    """A server whose handler cannot initialize (no model configured); yields its base URL."""
    port = free_port()
    process = _start_server(port)
    try:
        wait_until_serving(f"http://{HOST}:{port}/", process)
        yield f"http://{HOST}:{port}"
    finally:
        _stop(process)


@pytest.mark.integration
def test_invoke_server_init_failure_returns_502(unconfigured_server: str) -> None:
    # when
    status, body = _request(unconfigured_server + INVOCATIONS_PATH)
    error_document = json.loads(body)

    # then
    assert status == 502
    assert error_document["errorType"] == "ModelLoadError"
    assert error_document["errorMessage"].startswith("No model configured: set MODEL_LOCATION")
    assert error_document["requestId"] == ""


@pytest.mark.integration
def test_invoke_server_unknown_path_names_invocation_path(unconfigured_server: str) -> None:
    # when
    status, body = _request(unconfigured_server + "/2015-03-31/functions/other/invocations")

    # then
    assert status == 404
    assert body.decode() == (
        "404 page not found: /2015-03-31/functions/other/invocations is not the invocation "
        f"path; POST the event to {unconfigured_server}{INVOCATIONS_PATH}\n"
    )


@pytest.mark.integration
def test_invoke_server_get_not_allowed(unconfigured_server: str) -> None:
    # when
    status, body = _request(unconfigured_server + INVOCATIONS_PATH, method="GET", body=None)

    # then
    assert status == 405
    assert body.decode() == (
        f"GET is not supported: POST the event to {unconfigured_server}{INVOCATIONS_PATH}\n"
    )


@pytest.mark.integration
def test_invoke_server_port_in_use_exits_with_message() -> None:
    # given: another process listens on the port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as occupant:
        occupant.bind((HOST, 0))
        occupant.listen()
        port = occupant.getsockname()[1]

        # when
        process = _start_server(port)
        output, _ = process.communicate(timeout=60)

    # then
    assert process.returncode == 2
    assert f"error: Port {port} on {HOST} is already in use" in output.decode()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("handler", "expected_error"),
    [
        (
            "lambda_handler",
            {
                "errorType": "Runtime.MalformedHandlerName",
                "errorMessage": "Bad handler 'lambda_handler': expected module.function",
            },
        ),
        (
            "no_such_module.lambda_handler",
            {
                "errorType": "Runtime.ImportModuleError",
                "errorMessage": "Unable to import module 'no_such_module': "
                "No module named 'no_such_module'",
            },
        ),
    ],
)
def test_invoke_server_bad_handler_option(handler: str, expected_error: dict[str, str]) -> None:
    # given
    port = free_port()
    process = _start_server(port, "--handler", handler)

    # when
    try:
        wait_until_serving(f"http://{HOST}:{port}/", process)
        status, body = _request(f"http://{HOST}:{port}{INVOCATIONS_PATH}")
    finally:
        _stop(process)
    error_document = json.loads(body)

    # then
    assert status == 502
    assert {key: error_document[key] for key in expected_error} == expected_error


# The tests below drive FunctionRuntime in this process with small handler modules that the
# tests write. The behaviour under test (retrying init, marshalling, the context) belongs to
# the runtime, and no handler of the service fails once and then succeeds, or returns a value
# that JSON cannot encode.


@pytest.fixture
def handler_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _write_module(folder: Path, name: str, source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / f"{name}.py").write_text(source, encoding="utf-8")
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_function_runtime_retries_failed_init(
    handler_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a module whose import fails while a marker file is missing
    marker = handler_folder / "ready"
    source = (
        "from pathlib import Path\n"
        f"if not Path({str(marker)!r}).exists():\n"
        "    raise RuntimeError('dependency not ready')\n"
        "def handler(event, context):\n"
        "    return {'echo': event}\n"
    )
    _write_module(handler_folder, "flaky_handler", source, monkeypatch)
    runtime = FunctionRuntime("flaky_handler.handler", timeout_seconds=3, region="eu-west-1")
    first_init = runtime.initialize()

    # when
    marker.touch()
    status, document = runtime.invoke(b'{"Records": []}')

    # then
    assert first_init is not None
    assert first_init["errorType"] == "RuntimeError"
    assert status == 200
    assert document == {"echo": {"Records": []}}


def test_function_runtime_unserializable_result_returns_marshal_error(
    handler_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    source = "def handler(event, context):\n    return {'value': object()}\n"
    _write_module(handler_folder, "object_handler", source, monkeypatch)
    runtime = FunctionRuntime("object_handler.handler", timeout_seconds=3, region="eu-west-1")

    # when
    status, document = runtime.invoke(b"{}")

    # then
    assert status == 200
    assert document["errorType"] == "Runtime.MarshalError"
    assert document["errorMessage"] == (
        "Unable to marshal response: Object of type object is not JSON serializable"
    )


def test_function_runtime_passes_lambda_context(
    handler_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    source = (
        "def handler(event, context):\n"
        "    return {\n"
        "        'request_id': context.aws_request_id,\n"
        "        'remaining_ms': context.get_remaining_time_in_millis(),\n"
        "        'function_name': context.function_name,\n"
        "        'arn': context.invoked_function_arn,\n"
        "    }\n"
    )
    _write_module(handler_folder, "context_handler", source, monkeypatch)
    runtime = FunctionRuntime("context_handler.handler", timeout_seconds=3, region="eu-west-1")

    # when
    status, document = runtime.invoke(b"{}")
    first_request_id = document["request_id"]
    _, second = runtime.invoke(b"{}")

    # then
    assert status == 200
    assert document["function_name"] == "stream-model-duration"
    assert document["arn"] == (
        "arn:aws:lambda:eu-west-1:123456789012:function:stream-model-duration"
    )
    assert 0 < document["remaining_ms"] <= 3000
    assert first_request_id != second["request_id"]
