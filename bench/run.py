"""Run every benchmark section and rewrite docs/benchmarks.md and docs/benchmarks.json.

``make bench`` runs this. Each section runs in a process of its own, one after the other,
with its output in ``build/bench/logs/<section>.log``; its result is read back from
``build/bench/results/<section>.json``. A section skipped with ``--skip`` (or ``BENCH_SKIP``)
keeps the figures of the last run that measured it, marked with that run's date.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench import cost, report
from bench.common import (
    BUILD_DIR,
    DOCS_DIR,
    REPO_ROOT,
    RESULTS_DIR,
    load_average,
    machine_description,
    now_iso,
    write_json,
)

SECTIONS = (
    "handler_throughput",
    "cold_start",
    "footprint",
    "end_to_end",
    "batch_job",
    "model_quality",
)
JSON_PATH = DOCS_DIR / "benchmarks.json"
MARKDOWN_PATH = DOCS_DIR / "benchmarks.md"
LOG_DIR = BUILD_DIR / "logs"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--skip",
        default=os.environ.get("BENCH_SKIP", ""),
        help="comma-separated sections not to run (env BENCH_SKIP), from: " + ", ".join(SECTIONS),
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: rewrite docs/benchmarks.md from docs/benchmarks.json",
    )
    parser.add_argument(
        "--command",
        default="make bench",
        help="the command named in the report as the one that produced it",
    )
    args = parser.parse_args(argv)
    args.skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    unknown = args.skip - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}: use {', '.join(SECTIONS)}")
    return args


def run_module(module: str, log_name: str, *arguments: str) -> tuple[bool, str]:
    """Run ``python -m module`` with its output in a log file; return success and the log path."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{log_name}.log"
    started = time.perf_counter()
    print(f"{log_name}: running (log: {log_path.relative_to(REPO_ROOT)})", flush=True)
    with log_path.open("w", encoding="utf-8") as log_file:
        completed = subprocess.run(
            [sys.executable, "-m", module, *arguments],
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            check=False,
        )
    elapsed = time.perf_counter() - started
    status = (
        "done" if completed.returncode == 0 else f"failed with exit code {completed.returncode}"
    )
    print(f"{log_name}: {status} in {elapsed:.0f} s", flush=True)
    return completed.returncode == 0, str(log_path.relative_to(REPO_ROOT))


def previous_sections() -> tuple[dict[str, Any], str | None]:
    """Return the sections of the last published run, and when it finished."""
    try:
        previous = json.loads(JSON_PATH.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, None
    return previous.get("sections", {}), previous.get("finished_at")


def run_sections(skip: set[str]) -> dict[str, Any]:
    """Run the sections not skipped; carry the skipped ones over from the last run."""
    earlier, earlier_date = previous_sections()
    sections: dict[str, Any] = {}
    for name in SECTIONS:
        if name in skip:
            carried = earlier.get(name)
            if carried and "error" not in carried and not carried.get("skipped"):
                sections[name] = {
                    **carried,
                    "carried_over_from": carried.get("carried_over_from") or earlier_date,
                }
            else:
                sections[name] = {"skipped": True}
            print(f"{name}: skipped", flush=True)
            continue
        result_path = RESULTS_DIR / f"{name}.json"
        result_path.unlink(missing_ok=True)
        succeeded, log_path = run_module(f"bench.{name}", name, str(result_path))
        if succeeded:
            sections[name] = json.loads(result_path.read_text(encoding="utf-8"))
        else:
            sections[name] = {"error": f"the section failed; its log is {log_path}"}
    return sections


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        document = json.loads(JSON_PATH.read_text(encoding="utf-8"))
        MARKDOWN_PATH.write_text(report.render(document), encoding="utf-8")
        print(
            f"Wrote {MARKDOWN_PATH.relative_to(REPO_ROOT)} from {JSON_PATH.relative_to(REPO_ROOT)}"
        )
        return 0

    started = time.perf_counter()
    load_start = load_average()
    started_at = now_iso()

    model_ready, model_log = run_module("bench.trained_model", "trained_model")
    if not model_ready:
        print(f"error: the benchmark model could not be trained; see {model_log}", file=sys.stderr)
        return 1

    sections = run_sections(args.skip)
    throughput = sections.get("handler_throughput", {})
    if "cells" in throughput:
        sections["cost"] = cost.estimate(throughput)
        if throughput.get("carried_over_from"):
            sections["cost"]["carried_over_from"] = throughput["carried_over_from"]
    else:
        sections["cost"] = {"skipped": True}

    document = {
        "command": args.command,
        "skipped": sorted(args.skip),
        "started_at": started_at,
        "finished_at": now_iso(),
        "total_seconds": round(time.perf_counter() - started, 1),
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "machine": machine_description(),
        "sections": sections,
    }
    write_json(JSON_PATH, document)
    MARKDOWN_PATH.write_text(report.render(document), encoding="utf-8")
    print(f"Wrote {MARKDOWN_PATH.relative_to(REPO_ROOT)} and {JSON_PATH.relative_to(REPO_ROOT)}")

    failed = [name for name, result in sections.items() if "error" in result]
    if failed:
        print(f"error: section(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
