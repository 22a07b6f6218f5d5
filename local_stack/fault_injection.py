"""Inject Kinesis faults between a client and the moto server, to test delivery under failure.

:class:`FaultInjectingProxy` is a small HTTP proxy on 127.0.0.1 that forwards every request
to the moto server unchanged, except ``PutRecords`` calls, where it injects the faults a
real Kinesis stream produces under load:

- **entry failures**: a chosen fraction of the entries of a call come back with
  ``ProvisionedThroughputExceededException``, while the other entries really reach moto and
  are stored (the call itself succeeds, as Kinesis does with ``FailedRecordCount > 0``);
- **server errors**: the proxy responds to a whole call with HTTP 500 ``InternalFailure``,
  and the call never reaches moto;
- **lost responses**: the call reaches moto, which stores every entry, but the response
  never reaches the client. The proxy either closes the connection at once (botocore raises
  ``ConnectionClosedError``) or holds it for ``lost_response_hold_seconds`` first, so that a
  client whose read timeout is shorter raises ``ReadTimeoutError``. The client cannot tell
  that the records were stored, so when it sends them again the stream holds duplicates.

Every injected fault is decided by a seeded ``random.Random`` and counted in
:class:`FaultCounters`, and every injected error message says that it was injected. Point a
service at :attr:`FaultInjectingProxy.endpoint_url` instead of the moto endpoint (for example
with ``KINESIS_ENDPOINT_URL``); the proxy works for clients in any process.

The proxy is a test harness: it listens on 127.0.0.1 only and serves one moto server.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

HOST = "127.0.0.1"
PUT_RECORDS_TARGET = "Kinesis_20131202.PutRecords"
THROTTLING_ERROR_CODE = "ProvisionedThroughputExceededException"
SERVER_ERROR_CODE = "InternalFailure"
# Headers that describe one hop of the connection, so the proxy sets them itself.
_HOP_BY_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
)
_UPSTREAM_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class FaultPlan:
    """The faults to inject into ``PutRecords`` calls, as probabilities from 0 to 1.

    ``server_error_rate`` and ``lost_response_rate`` apply to whole calls and are drawn
    first; ``entry_failure_rate`` applies to each entry of the remaining calls.
    """

    entry_failure_rate: float = 0.0
    server_error_rate: float = 0.0
    lost_response_rate: float = 0.0
    # With 0 the connection is closed at once. More keeps it open first, so that the client's
    # read timeout can expire.
    lost_response_hold_seconds: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("entry_failure_rate", "server_error_rate", "lost_response_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be from 0 to 1, got {value}")
        if self.server_error_rate + self.lost_response_rate > 1.0:
            raise ValueError(
                "server_error_rate + lost_response_rate must be at most 1, got "
                f"{self.server_error_rate + self.lost_response_rate}"
            )
        if self.lost_response_hold_seconds < 0:
            raise ValueError(
                f"lost_response_hold_seconds must not be negative, got "
                f"{self.lost_response_hold_seconds}"
            )


@dataclass
class FaultCounters:
    """Counts of the requests the proxy received and the faults it injected.

    Entries are the records of ``PutRecords`` calls.
    """

    put_records_calls: int = 0
    entries_received: int = 0
    # Entries failed with ProvisionedThroughputExceededException; moto never received them.
    entries_failed: int = 0
    # Calls failed with HTTP 500; moto never received them.
    server_errors: int = 0
    # Calls whose response was dropped after moto stored their entries.
    lost_responses: int = 0
    # Entries moto stored without the client getting a response: each may be stored again.
    entries_stored_unacknowledged: int = 0
    # Entries moto stored and acknowledged to the client.
    entries_stored_acknowledged: int = 0
    other_requests: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a plain dict, for reports."""
        return asdict(self)


class FaultInjectingProxy:
    """An HTTP proxy on 127.0.0.1 in front of a moto server that injects ``PutRecords`` faults.

    Use it as a context manager: ``with FaultInjectingProxy(moto_url, plan) as proxy:``.
    The plan can be changed between calls with :meth:`set_plan`, for example to stop
    injecting faults once a test has seen enough of them.
    """

    def __init__(self, upstream_url: str, plan: FaultPlan | None = None, port: int = 0) -> None:
        upstream = urlsplit(upstream_url)
        if upstream.hostname not in (HOST, "localhost") or upstream.port is None:
            raise ValueError(
                f"upstream_url must be a local http://127.0.0.1:<port> endpoint, "
                f"got {upstream_url!r}"
            )
        self.upstream_host = upstream.hostname
        self.upstream_port = upstream.port
        self.counters = FaultCounters()
        self._plan = plan or FaultPlan()
        self._random = random.Random(self._plan.seed)
        self._lock = threading.Lock()
        self._server = _ProxyServer((HOST, port), self)
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        """The endpoint to give clients in place of the moto endpoint."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def plan(self) -> FaultPlan:
        """The faults being injected now."""
        return self._plan

    def set_plan(self, plan: FaultPlan) -> None:
        """Inject other faults from the next call on; the random sequence restarts at its seed."""
        with self._lock:
            self._plan = plan
            self._random = random.Random(plan.seed)

    def start(self) -> FaultInjectingProxy:
        """Serve requests in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fault-injecting-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultInjectingProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send one request to moto unchanged and return its status, headers and body."""
        connection = http.client.HTTPConnection(
            self.upstream_host, self.upstream_port, timeout=_UPSTREAM_TIMEOUT_SECONDS
        )
        try:
            forwarded = {
                name: value
                for name, value in headers.items()
                if name.lower() not in _HOP_BY_HOP_HEADERS
            }
            forwarded["Host"] = f"{self.upstream_host}:{self.upstream_port}"
            forwarded["Content-Length"] = str(len(body))
            connection.request(method, path, body=body, headers=forwarded)
            response = connection.getresponse()
            response_body = response.read()
            response_headers = [
                (name, value)
                for name, value in response.getheaders()
                if name.lower() not in _HOP_BY_HOP_HEADERS
            ]
            return response.status, response_headers, response_body
        finally:
            connection.close()

    def decide_call(self) -> str:
        """Draw the fate of one ``PutRecords`` call: server_error, lost_response or entries."""
        with self._lock:
            plan = self._plan
            draw = self._random.random()
        if draw < plan.server_error_rate:
            return "server_error"
        if draw < plan.server_error_rate + plan.lost_response_rate:
            return "lost_response"
        return "entries"

    def decide_entries(self, count: int) -> list[bool]:
        """Draw, for each entry of a call, whether to fail it with throttling."""
        with self._lock:
            rate = self._plan.entry_failure_rate
            return [self._random.random() < rate for _ in range(count)]

    def count(self, **increments: int) -> None:
        """Add to the counters, under the lock, since requests are served in threads."""
        with self._lock:
            for name, increment in increments.items():
                setattr(self.counters, name, getattr(self.counters, name) + increment)


class _ProxyServer(ThreadingHTTPServer):
    """The HTTP server of a :class:`FaultInjectingProxy`, which its request handlers read."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], proxy: FaultInjectingProxy) -> None:
        super().__init__(address, _ProxyRequestHandler)
        self.proxy = proxy


class _ProxyRequestHandler(BaseHTTPRequestHandler):
    """The handler of one request: forwarded to moto, with the planned PutRecords faults."""

    # BaseHTTPRequestHandler fixes the do_<METHOD> names.
    # pylint: disable=invalid-name
    server: _ProxyServer
    # HTTP/1.1 keeps botocore's pooled connections open between calls, as Kinesis does.
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self._read_body()
        if self.headers.get("X-Amz-Target") == PUT_RECORDS_TARGET:
            self._put_records(body)
        else:
            self._pass_through(body)

    def do_GET(self) -> None:
        self._pass_through(self._read_body())

    def do_PUT(self) -> None:
        self._pass_through(self._read_body())

    def do_DELETE(self) -> None:
        self._pass_through(self._read_body())

    def do_HEAD(self) -> None:
        self._pass_through(self._read_body())

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
        # One line per request on stderr would drown the test and service output.
        return

    @property
    def _proxy(self) -> FaultInjectingProxy:
        return self.server.proxy

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _pass_through(self, body: bytes) -> None:
        self._proxy.count(other_requests=1)
        status, headers, response_body = self._proxy.forward(
            self.command, self.path, dict(self.headers), body
        )
        self._reply(status, headers, response_body)

    def _put_records(self, body: bytes) -> None:
        request = json.loads(body)
        entries = request.get("Records", [])
        self._proxy.count(put_records_calls=1, entries_received=len(entries))

        fate = self._proxy.decide_call()
        if fate == "server_error":
            self._proxy.count(server_errors=1)
            self._reply_error(500, SERVER_ERROR_CODE, "Injected fault: internal failure")
            return
        if fate == "lost_response":
            self._lose_response(body, len(entries))
            return
        self._fail_some_entries(request, entries)

    def _lose_response(self, body: bytes, entry_count: int) -> None:
        status, _, _ = self._proxy.forward(self.command, self.path, dict(self.headers), body)
        stored = entry_count if status == 200 else 0
        self._proxy.count(lost_responses=1, entries_stored_unacknowledged=stored)
        if self._proxy.plan.lost_response_hold_seconds:
            time.sleep(self._proxy.plan.lost_response_hold_seconds)
        # Closing without a response: the client cannot know the entries were stored.
        self.close_connection = True

    def _fail_some_entries(self, request: dict[str, Any], entries: list[Any]) -> None:
        failing = self._proxy.decide_entries(len(entries))
        forwarded_entries = [
            entry for entry, fails in zip(entries, failing, strict=True) if not fails
        ]
        self._proxy.count(entries_failed=sum(failing))
        stream = request.get("StreamName") or request.get("StreamARN", "")

        results: list[dict[str, Any]] = []
        if forwarded_entries:
            forwarded_body = json.dumps({**request, "Records": forwarded_entries}).encode()
            status, headers, response_body = self._proxy.forward(
                self.command, self.path, dict(self.headers), forwarded_body
            )
            if status != 200:
                # moto rejected the call itself: pass its error on unchanged.
                self._reply(status, headers, response_body)
                return
            results = json.loads(response_body)["Records"]
            self._proxy.count(
                entries_stored_acknowledged=sum(1 for r in results if "ErrorCode" not in r)
            )

        stored = iter(results)
        merged = [_throttled_entry(stream) if fails else next(stored) for fails in failing]
        response = {
            "FailedRecordCount": sum(1 for entry in merged if "ErrorCode" in entry),
            "Records": merged,
        }
        self._reply(
            200,
            [("Content-Type", "application/x-amz-json-1.1")],
            json.dumps(response).encode(),
        )

    def _reply_error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"__type": code, "message": message}).encode()
        self._reply(status, [("Content-Type", "application/x-amz-json-1.1")], body)

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _throttled_entry(stream: str) -> dict[str, str]:
    return {
        "ErrorCode": THROTTLING_ERROR_CODE,
        "ErrorMessage": f"Injected fault: rate exceeded for a shard of stream {stream}",
    }
