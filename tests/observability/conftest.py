"""Fixtures of the observability tests: the delivery tests' stack, and the service's stdout."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import pytest

from observability import logger
from tests.delivery.fixtures import logged_model, make_stack, proxy, stack

__all__ = ["logged_model", "make_stack", "proxy", "service_output", "stack"]


class _CurrentStdout:
    """A stream that writes to whatever ``sys.stdout`` is at the time of the write."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def service_output(capsys) -> Iterator[Callable[[], list[str]]]:
    """Return the lines the service wrote to stdout since the last call.

    The Powertools log handler keeps the stream it was created with, but pytest swaps
    ``sys.stdout`` between the phases of a test. So for the length of the test the handler
    writes to the current ``sys.stdout``, which ``capsys`` captures. The attribute is set
    directly because ``setStream`` flushes the previous stream, which may be closed already.
    """
    handler = logger.registered_handler
    previous = handler.stream
    handler.stream = _CurrentStdout()
    capsys.readouterr()

    def read() -> list[str]:
        return capsys.readouterr().out.splitlines()

    yield read
    handler.stream = previous
