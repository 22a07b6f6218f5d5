"""Section 7: an estimate of what a million predictions cost on Lambda and Kinesis.

This is an estimate, not a bill. It multiplies milliseconds per record measured on this
machine (section 1) by AWS list prices, and so inherits three approximations. This
machine's CPU is not a Lambda vCPU. The local Kinesis is moto rather than AWS. The prices
are those of the region named below, not necessarily the region deployed to. Shard-hours are
charged per hour whatever the traffic, so they are given per month, not per prediction.
"""

from __future__ import annotations

import math
import re
from typing import Any

from bench.common import REPO_ROOT

PROD_TFVARS = REPO_ROOT / "infrastructure" / "vars" / "prod.tfvars"
ASSUMED_MEMORY_MB = 2048
ASSUMED_BATCH_SIZE = 500
ASSUMED_SHARDS = 2
PREDICTIONS = 1_000_000
PUT_PAYLOAD_UNIT_BYTES = 25 * 1024
HOURS_PER_MONTH = 730

# Prices in USD, read on the date below. The Lambda figures are the x86 prices in US East
# (N. Virginia) that AWS's pricing page and its "How AWS Pricing Works" whitepaper quote.
# NOTE: the Kinesis rates are provisioned-mode figures quoted by two secondary pages. The
# AWS pricing page defines the PUT payload unit (25 KB chunks of a record), but it renders
# its rate table in the browser, so the rates could not be read there.
PRICES_READ_ON = "2026-12-04"
PRICES = {
    "lambda_request_per_million": {
        "usd": 0.20,
        "source": (
            "https://docs.aws.amazon.com/whitepapers/latest/how-aws-pricing-works/lambda.html"
        ),
        "note": "US East (N. Virginia), after the free tier",
    },
    "lambda_gb_second": {
        "usd": 0.0000166667,
        "source": "https://aws.amazon.com/lambda/pricing/",
        "note": "x86, US East (N. Virginia); the page's example rounds it to 0.00001667",
    },
    "kinesis_put_payload_unit_per_million": {
        "usd": 0.014,
        "source": (
            "https://github.com/EveryMundo/aws-kinesis-client/blob/master/docs/"
            "why-we-created-this-package.md"
        ),
        "note": (
            "provisioned mode, US West (Oregon), as quoted from the AWS pricing page; unit "
            "definition (25 KB chunks) from https://aws.amazon.com/kinesis/pricing/"
        ),
    },
    "kinesis_shard_hour": {
        "usd": 0.015,
        "source": (
            "https://kindatechnical.com/aws-kinesis/lesson-29-understanding-kinesis-pricing.html"
        ),
        "note": "provisioned mode, example rate of a secondary page",
    },
}


def read_tfvars(path: Any = PROD_TFVARS) -> dict[str, str]:
    """Read ``name = value`` lines of a .tfvars file (numbers and strings only)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return values
    for line in text.splitlines():
        match = re.match(r'\s*([a-z_]+)\s*=\s*"?([^"#]+?)"?\s*(#.*)?$', line)
        if match:
            values[match.group(1)] = match.group(2).strip()
    return values


def deployment_settings() -> dict[str, Any]:
    """Memory, batch size, shards and architecture of production, or the stated assumptions."""
    tfvars = read_tfvars()

    def number(name: str, default: int) -> tuple[int, str]:
        if name in tfvars:
            return int(tfvars[name]), f"{PROD_TFVARS.relative_to(REPO_ROOT)}"
        return default, "assumed"

    memory, memory_source = number("lambda_memory_size_mb", ASSUMED_MEMORY_MB)
    batch_size, batch_source = number("batch_size", ASSUMED_BATCH_SIZE)
    input_shards, _ = number("input_shard_count", ASSUMED_SHARDS)
    output_shards, _ = number("output_shard_count", ASSUMED_SHARDS)
    return {
        "memory_mb": memory,
        "memory_source": memory_source,
        "batch_size": batch_size,
        "batch_size_source": batch_source,
        "region": tfvars.get("aws_region", "unknown"),
        "architecture": tfvars.get("lambda_architecture", "x86_64 (the variable's default)"),
        "shards": input_shards + output_shards,
    }


def lambda_cost(ms_per_record: float, settings: dict[str, Any]) -> dict[str, float]:
    """Request and duration cost of PREDICTIONS records at ``ms_per_record``."""
    invocations = math.ceil(PREDICTIONS / settings["batch_size"])
    # Lambda bills each invocation's duration rounded up to the millisecond.
    billed_ms = math.ceil(ms_per_record * settings["batch_size"]) * invocations
    gb_seconds = billed_ms / 1000 * settings["memory_mb"] / 1024
    requests = invocations / 1e6 * PRICES["lambda_request_per_million"]["usd"]
    duration = gb_seconds * PRICES["lambda_gb_second"]["usd"]
    return {
        "ms_per_record": round(ms_per_record, 4),
        "invocations": invocations,
        "gb_seconds": round(gb_seconds, 1),
        "requests_usd": round(requests, 4),
        "duration_usd": round(duration, 4),
        "total_usd": round(requests + duration, 4),
    }


def estimate(throughput: dict[str, Any]) -> dict[str, Any]:
    """Build the estimate from section 1's results."""
    settings = deployment_settings()
    cells = {
        (cell["variant"], cell["output"], cell["batch_size"]): cell for cell in throughput["cells"]
    }
    # Section 1 has no cell at the production batch size; 1,000 records is the nearest.
    measured_batch = 1_000
    per_record = {
        "service_with_output": cells[("service", "kinesis", measured_batch)]["ms_per_record"],
        "service_handler_only": cells[("service", "none", measured_batch)]["ms_per_record"],
        "reference_with_output": cells[("reference", "kinesis", measured_batch)]["ms_per_record"],
    }
    lambda_costs = {name: lambda_cost(ms, settings) for name, ms in per_record.items()}

    input_units = math.ceil(throughput["max_input_record_bytes"] / PUT_PAYLOAD_UNIT_BYTES)
    output_units = math.ceil(throughput["max_output_record_bytes"] / PUT_PAYLOAD_UNIT_BYTES)
    put_units = PREDICTIONS * (input_units + output_units)
    kinesis_put_usd = put_units / 1e6 * PRICES["kinesis_put_payload_unit_per_million"]["usd"]
    shard_month_usd = settings["shards"] * HOURS_PER_MONTH * PRICES["kinesis_shard_hour"]["usd"]

    return {
        "estimate": True,
        "predictions": PREDICTIONS,
        "settings": settings,
        "measured_batch_size": measured_batch,
        "lambda": lambda_costs,
        "kinesis_put_payload_units": put_units,
        "kinesis_put_units_per_record": {"input": input_units, "output": output_units},
        "kinesis_put_usd": round(kinesis_put_usd, 4),
        "kinesis_shard_month_usd": round(shard_month_usd, 2),
        "per_million_total_usd": {
            name: round(costs["total_usd"] + kinesis_put_usd, 4)
            for name, costs in lambda_costs.items()
        },
        "prices": PRICES,
        "prices_read_on": PRICES_READ_ON,
    }
