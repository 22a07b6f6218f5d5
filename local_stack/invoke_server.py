"""Serve the Lambda handler over HTTP as the container image does, without Docker.

Outside Lambda, the Lambda base image runs the Runtime Interface Emulator (RIE): a container
started with ``docker run -p 8080:8080 IMAGE`` runs the handler for each
``POST http://localhost:8080/2015-03-31/functions/function/invocations`` with the event as
the body. This server keeps that contract, as the RIE (aws/aws-lambda-runtime-interface-emulator,
``cmd/aws-lambda-rie`` and ``lambda/rapidcore``) and the Python runtime client
(aws/aws-lambda-python-runtime-interface-client, ``bootstrap.py``) implement it:

- the reply is the handler's result as JSON, with status 200;
- an exception in the handler is also status 200, because the runtime reports it as the
  invocation's result: the body is ``{"errorMessage", "errorType", "requestId", "stackTrace"}``;
- a body that is not JSON gives that error document with ``Runtime.UnmarshalError``, and a
  result that is not JSON-serializable one with ``Runtime.MarshalError``;
- a failed initialization (importing the handler raised) is status 502 with the error
  document, and the next invocation initializes again, as the RIE's suppressed init does;
- as in the RIE, ``/2015-03-31/functions/<AWS_LAMBDA_FUNCTION_NAME>/invocations`` (the name
  defaults to ``test_function``) invokes too, and other paths are 404. Unlike the RIE, which
  invokes for any method, methods other than POST get 405.

The handler module is imported once, before the first request is served, in this process and
with its environment: set the variables that ``docker run -e`` would set. Invocations run one
at a time, as in one Lambda execution environment.

NOTE: the RIE stops an invocation that runs past ``AWS_LAMBDA_FUNCTION_TIMEOUT`` and returns
"Task timed out after N.00 seconds". Here the timeout only sets what the context's
``get_remaining_time_in_millis()`` returns.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from local_stack.event_source_mapping import LambdaContext

INVOCATIONS_PATH = "/2015-03-31/functions/function/invocations"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_HANDLER = "lambda_function.lambda_handler"
# The RIE's defaults when AWS_LAMBDA_FUNCTION_TIMEOUT and AWS_LAMBDA_FUNCTION_NAME are unset.
DEFAULT_TIMEOUT_SECONDS = 300.0
DEFAULT_FUNCTION_NAME = "test_function"
# The RIE's status for an invocation whose initialization failed (DoneFailedHTTPCode).
INIT_FAILED_STATUS = HTTPStatus.BAD_GATEWAY
READY_TIMEOUT_SECONDS = 120.0

logger = logging.getLogger("local_stack.invoke_server")

Handler = Callable[[Any, Any], Any]
ErrorDocument = dict[str, Any]


class PortInUseError(RuntimeError):
    """The port is already taken by another process."""


class FunctionRuntime:
    """Import the handler once and run invocations as the Python Lambda runtime does."""

    def __init__(self, handler_path: str, timeout_seconds: float, region: str) -> None:
        self.handler_path = handler_path
        self.timeout_seconds = timeout_seconds
        self.region = region
        self._handler: Handler | None = None
        self._lock = threading.Lock()

    def initialize(self) -> ErrorDocument | None:
        """Import the handler; return the error document when that fails, else None."""
        started = time.perf_counter()
        try:
            self._handler = _import_handler(self.handler_path)
        except _InitError as error:
            logger.error(
                "Init failed for %s: %s: %s",
                self.handler_path,
                error.document["errorType"],
                error.document["errorMessage"],
            )
            return error.document
        logger.info(
            "Init done for %s in %.2f ms", self.handler_path, (time.perf_counter() - started) * 1000
        )
        return None

    def invoke(self, body: bytes) -> tuple[HTTPStatus, Any]:
        """Run one invocation; return the HTTP status and the document to send back."""
        with self._lock:
            if self._handler is None:
                init_error = self.initialize()
                if init_error is not None:
                    return INIT_FAILED_STATUS, init_error

            context = self._new_context()
            started = time.perf_counter()
            logger.info("START RequestId: %s Version: $LATEST", context.aws_request_id)
            result = self._run_handler(body, context)
            duration_ms = (time.perf_counter() - started) * 1000
            logger.info("END RequestId: %s", context.aws_request_id)
            logger.info(
                "REPORT RequestId: %s Duration: %.2f ms", context.aws_request_id, duration_ms
            )
            return HTTPStatus.OK, result

    def _new_context(self) -> LambdaContext:
        # Imported here, after main() has configured logging: the module imports the service's
        # Powertools logger, which filters its own records out of the root handlers that exist
        # when it is created, as the Lambda runtime's handler does. Created before them, every
        # service log line would appear twice.
        from local_stack.event_source_mapping import (  # pylint: disable=import-outside-toplevel
            LambdaContext,
        )

        return LambdaContext(self.timeout_seconds, self.region)

    def _run_handler(self, body: bytes, context: LambdaContext) -> Any:
        assert self._handler is not None
        request_id = context.aws_request_id
        try:
            event = json.loads(body)
        except ValueError as error:
            logger.warning(
                "Invalid JSON in the request body: %s (RequestId: %s)", error, request_id
            )
            return _error_document(
                f"Unable to unmarshal input: {error}", "Runtime.UnmarshalError", [], request_id
            )

        try:
            result = self._handler(event, context)
        except Exception as error:  # pylint: disable=broad-exception-caught
            # Lambda turns any exception of the handler into an error document.
            logger.error(
                "Handler raised %s: %s (RequestId: %s)", type(error).__name__, error, request_id
            )
            return _error_document(
                str(error), type(error).__name__, _stack_trace(error), request_id
            )

        try:
            json.dumps(result)
        except (TypeError, ValueError) as error:
            logger.error("Handler result is not JSON: %s (RequestId: %s)", error, request_id)
            return _error_document(
                f"Unable to marshal response: {error}", "Runtime.MarshalError", [], request_id
            )
        return result


class _InitError(Exception):
    def __init__(self, document: ErrorDocument) -> None:
        super().__init__(document["errorMessage"])
        self.document = document


def _import_handler(handler_path: str) -> Handler:
    """Import ``module.function`` and name each failure as the Python runtime names it."""
    module_name, _, function_name = handler_path.rpartition(".")
    if not module_name or not function_name:
        raise _InitError(
            _error_document(
                f"Bad handler '{handler_path}': expected module.function",
                "Runtime.MalformedHandlerName",
                [],
            )
        )

    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as error:
        # The runtime reports import errors without a stack trace.
        raise _InitError(
            _error_document(
                f"Unable to import module '{module_name}': {error}", "Runtime.ImportModuleError", []
            )
        ) from None
    except SyntaxError as error:
        raise _InitError(
            _error_document(
                f"Syntax error in module '{module_name}': {error}",
                "Runtime.UserCodeSyntaxError",
                [f'  File "{error.filename}" Line {error.lineno}\n    {error.text}'],
            )
        ) from None
    except Exception as error:  # pylint: disable=broad-exception-caught
        # The module's top level can raise anything, for example a model that fails to load.
        raise _InitError(
            _error_document(str(error), type(error).__name__, _stack_trace(error))
        ) from None

    handler = getattr(module, function_name, None)
    if handler is None:
        raise _InitError(
            _error_document(
                f"Handler '{function_name}' missing on module '{module_name}'",
                "Runtime.HandlerNotFound",
                [],
            )
        )
    return handler


def _error_document(
    message: str, error_type: str, stack_trace: list[str], request_id: str = ""
) -> ErrorDocument:
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack_trace,
    }


def _stack_trace(error: BaseException) -> list[str]:
    """Format the traceback without this module's own frames, as the runtime drops its own."""
    frames = traceback.extract_tb(error.__traceback__)
    first_user_frame = next(
        (index for index, frame in enumerate(frames) if frame.filename != __file__), len(frames)
    )
    return traceback.format_list(frames[first_user_frame:])


class InvokeServer(ThreadingHTTPServer):
    """An HTTP server on ``host:port`` that hands invocations to a :class:`FunctionRuntime`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], runtime: FunctionRuntime) -> None:
        self.runtime = runtime
        function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", DEFAULT_FUNCTION_NAME)
        self.invocation_paths = {
            INVOCATIONS_PATH,
            f"/2015-03-31/functions/{function_name}/invocations",
        }
        try:
            super().__init__(address, _InvocationRequestHandler)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"Port {address[1]} on {address[0]} is already in use: stop the process "
                    "using it (for example a container started with -p "
                    f"{address[1]}:8080) or choose another port with --port"
                ) from None
            raise

    @property
    def url(self) -> str:
        """The invocation URL to POST events to."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{INVOCATIONS_PATH}"


class _InvocationRequestHandler(BaseHTTPRequestHandler):
    # BaseHTTPRequestHandler fixes the do_<METHOD> names.
    # pylint: disable=invalid-name
    server: InvokeServer

    def do_POST(self) -> None:
        if not self._on_invocation_path():
            return
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send_text(
                HTTPStatus.LENGTH_REQUIRED, "Send the event with a Content-Length header\n"
            )
            return

        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, document = self.server.runtime.invoke(body)
        self._send_json(status, document)

    def do_GET(self) -> None:
        self._reject_method()

    def do_PUT(self) -> None:
        self._reject_method()

    def do_DELETE(self) -> None:
        self._reject_method()

    def _reject_method(self) -> None:
        if self._on_invocation_path():
            self._send_text(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{self.command} is not supported: POST the event to {self.server.url}\n",
            )

    def _on_invocation_path(self) -> bool:
        """Tell whether the request is for an invocation path, and send 404 when it is not."""
        if urlsplit(self.path).path in self.server.invocation_paths:
            return True
        self._send_text(
            HTTPStatus.NOT_FOUND,
            f"404 page not found: {self.path} is not the invocation path; "
            f"POST the event to {self.server.url}\n",
        )
        return False

    def _send_json(self, status: HTTPStatus, document: Any) -> None:
        body = json.dumps(document).encode("utf-8")
        self._send(status, body, "application/json")

    def _send_text(self, status: HTTPStatus, text: str) -> None:
        self._send(status, text.encode("utf-8"), "text/plain; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)


def wait_until_serving(
    url: str,
    process: subprocess.Popen[bytes] | None = None,
    timeout: float = READY_TIMEOUT_SECONDS,
) -> None:
    """Poll ``url`` on a server started as ``process`` until it returns an HTTP response.

    This server serves requests only once the handler is initialized, so any response, even
    404 for the root path, means it is ready. Raises ``RuntimeError`` when ``process`` exits
    first, and ``TimeoutError`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"The server exited with code {process.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise TimeoutError(f"No HTTP response from {url} within {timeout:.0f} s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Serve the Lambda handler at POST /2015-03-31/functions/function/invocations, "
        "as the container image does (the Runtime Interface Emulator's contract)."
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on ({DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to listen on ({DEFAULT_PORT})"
    )
    parser.add_argument(
        "--handler",
        default=DEFAULT_HANDLER,
        help=f"handler as module.function, like the image's CMD ({DEFAULT_HANDLER})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", DEFAULT_TIMEOUT_SECONDS)),
        help="function timeout in seconds that the context reports "
        "(AWS_LAMBDA_FUNCTION_TIMEOUT, else 300 as in the RIE)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the server, initialize the handler and serve until SIGINT or SIGTERM."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    runtime = FunctionRuntime(args.handler, args.timeout, region)

    # Listen first, so that a taken port fails at once rather than after the model loads.
    try:
        server = InvokeServer((args.host, args.port), runtime)
    except PortInUseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    runtime.initialize()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logger.info("Listening: curl -X POST %s -d @integration-test/event.json", server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        logger.info("Stopped")
    return 0


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
