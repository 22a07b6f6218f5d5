"""Start and stop a moto server process on 127.0.0.1, the embedded AWS of the local stack."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"
# LocalStack's port, so that commands such as `aws --endpoint-url=http://localhost:4566 ...`
# work unchanged against the local stack.
DEFAULT_PORT = 4566
READY_TIMEOUT_SECONDS = 30.0


class PortInUseError(RuntimeError):
    """The requested port is already taken by another process."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def ensure_port_free(port: int, variable: str = "MOTO_PORT") -> None:
    """Raise :class:`PortInUseError` naming the port when something already listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as error:
            raise PortInUseError(
                f"Port {port} on {HOST} is already in use ({error.strerror}); stop the process "
                f"using it (for example a LocalStack container) or choose another port with "
                f"{variable}=<port>"
            ) from None


class MotoServer:
    """A moto server subprocess: ``with MotoServer(port) as server: server.endpoint_url``."""

    def __init__(self, port: int = 0, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """The HTTP endpoint to give boto3 as ``endpoint_url``."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> MotoServer:
        """Start the server and wait until it responds to HTTP requests."""
        ensure_port_free(self.port)
        output = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        # The process outlives this method: stop() ends it.
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._wait_until_ready()
        return self

    def stop(self) -> None:
        """Stop the server process, killing it if it does not exit within five seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"moto server exited with code {self.process.returncode} while starting on "
                    f"port {self.port}" + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(
            f"moto server on port {self.port} did not respond within {READY_TIMEOUT_SECONDS:.0f} s"
        )

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
