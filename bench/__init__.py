"""Benchmarks of what users pay for: throughput, cold start, footprint, latency, quality, cost.

``make bench`` (``python -m bench.run``) runs every section, each in a process of its own,
and rewrites ``docs/benchmarks.md`` and ``docs/benchmarks.json``. These are measurements,
not tests: nothing here asserts a timing.
"""
