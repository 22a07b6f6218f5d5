"""A moto server whose Kinesis shards read and write in time independent of their length.

moto 5.2's ``Shard`` copies its list of sequence numbers on every ``put_record``
(``get_max_sequence_number``) and walks every record of the shard on every ``get_records``,
so a shard of n records costs O(n) per record written and per read. Section 4 of
docs/benchmarks.md measures a 500-record ``PutRecords`` on a shard of 80,000 records at
well over ten times its cost on an empty shard. This module replaces those three methods
with versions that use what ``put_record`` guarantees: a shard's sequence numbers are
consecutive integers in insertion order, starting at 1. Everything else is moto's own code.

Run it as moto's server: ``python -m bench.fast_moto -H 127.0.0.1 -p 4566``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from moto.kinesis.models import Shard

from local_stack.moto_server import HOST, MotoServer, ensure_port_free

REPO_ROOT = Path(__file__).resolve().parents[1]


def _get_max_sequence_number(self: Shard) -> int:
    return next(reversed(self.records)) if self.records else 0


def _get_min_sequence_number(self: Shard) -> int:
    return next(iter(self.records)) if self.records else 0


def _get_records(
    self: Shard, last_sequence_id: str, limit: int | None
) -> tuple[list[Any], int, int]:
    """Return the records after ``last_sequence_id``, as moto's method does, without a scan."""
    last_sequence_int = int(last_sequence_id)
    if not self.records:
        return [], last_sequence_int, 0

    newest = self.records[next(reversed(self.records))]
    sequence_number = max(last_sequence_int + 1, next(iter(self.records)))
    results = []
    while sequence_number in self.records and (limit is None or len(results) < limit):
        results.append(self.records[sequence_number])
        sequence_number += 1
    if not results:
        return [], last_sequence_int, 0
    millis_behind_latest = int((newest.created_at - results[-1].created_at) * 1000)
    return results, results[-1].sequence_number, millis_behind_latest


def patch_kinesis_shards() -> None:
    """Replace moto's linear-time shard methods with the ones above."""
    Shard.get_max_sequence_number = _get_max_sequence_number
    Shard.get_min_sequence_number = _get_min_sequence_number
    Shard.get_records = _get_records


class FastMotoServer(MotoServer):
    """``MotoServer`` running this module instead of ``moto.server``."""

    def start(self) -> FastMotoServer:
        ensure_port_free(self.port)
        output = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        # The server outlives this method; stop() ends it, as in MotoServer.
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "bench.fast_moto", "-H", HOST, "-p", str(self.port)],
            cwd=REPO_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_ready()
        return self


def main() -> None:
    # Imported here: only the server process needs moto's web server and its backends.
    from moto.server import main as moto_main  # pylint: disable=import-outside-toplevel

    patch_kinesis_shards()
    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
