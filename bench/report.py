"""Render ``docs/benchmarks.md`` from the results document that ``bench.run`` assembles.

Every number in the page comes from the results. The sentences around them are written
here, and pick their wording from the numbers: a target met or missed, and by how much.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

SECTION_TITLES = {
    "handler_throughput": "1. Handler throughput",
    "cold_start": "2. Cold start",
    "footprint": "3. Footprint",
    "end_to_end": "4. End to end through the local stack",
    "batch_job": "5. Batch job",
    "model_quality": "6. Model quality",
    "cost": "7. Cost (estimate)",
}

# Targets the service is held to. The report states for each one whether this run met it.
TARGET_SPEEDUP_OVER_REFERENCE = 50.0
TARGET_TIME_OVER_FLOOR = 1.3
TARGET_COLD_START_OVER_FLOOR = 1.5
TARGET_RMSE_MINUTES = 5.9
COURSE_FOREST_RMSE = 6.10
TARGET_RECORDS_PER_SECOND = 5_000
TARGET_BATCH_SIZE = 1_000


def number(value: float, digits: int = 0) -> str:
    """Format with thousands separators and a fixed number of decimals."""
    return f"{value:,.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def shortfall_at_most(value: float, limit: float) -> str:
    return f"{value:,.2f} against at most {limit:,.2f}: {value / limit - 1:.0%} over"


def shortfall_at_least(value: float, minimum: float) -> str:
    return f"{value:,.1f} against at least {minimum:,.1f}: {1 - value / minimum:.0%} short"


def missed_targets(document: dict[str, Any]) -> list[str]:
    """Explain each missed target: by how much, why, and the profile that shows it."""
    sections = document["sections"]
    lines: list[str] = []
    throughput = sections.get("handler_throughput", {})
    if "ratios" in throughput:
        ratios = {(item["output"], item["batch_size"]): item for item in throughput["ratios"]}
        cells = {
            (cell["variant"], cell["output"], cell["batch_size"]): cell
            for cell in throughput["cells"]
        }
        with_output = cells[("service", "kinesis", TARGET_BATCH_SIZE)]
        without_output = cells[("service", "none", TARGET_BATCH_SIZE)]
        output_share = 1 - without_output["median_ms"] / with_output["median_ms"]
        profiles = throughput["profiles"]
        kinesis_profile = profiles.get("service_kinesis", "").removeprefix("docs/")
        none_profile = profiles.get("service_none", "").removeprefix("docs/")
        floor_profile = profiles.get("floor_none", "").removeprefix("docs/")
        for output in ("kinesis", "none"):
            ratio = ratios[(output, TARGET_BATCH_SIZE)]
            speedup = ratio["service_speedup_over_reference"]
            if speedup < TARGET_SPEEDUP_OVER_REFERENCE:
                lines.append(
                    f"- Speed-up over the per-record baseline ({output} output): "
                    f"{shortfall_at_least(speedup, TARGET_SPEEDUP_OVER_REFERENCE)}. Both "
                    "variants spend most of their time waiting for moto: the baseline in one "
                    "`PutRecord` per ride, the service in two `PutRecords` calls, which take "
                    f"{output_share:.0%} of its time ([profile]({kinesis_profile}): "
                    "`socket.recv_into` under `_put_once`). The speed-up is therefore the "
                    "ratio of moto's per-call and per-record costs more than a property of "
                    "the handler."
                )
            paired = ratio["service_time_over_floor_paired"]
            if paired > TARGET_TIME_OVER_FLOOR and output == "kinesis":
                lines.append(
                    "- Time over the floor with output: "
                    f"{shortfall_at_most(paired, TARGET_TIME_OVER_FLOOR)}. The service and the "
                    "floor make the same two `PutRecords` calls of 500 records, which take "
                    f"{output_share:.0%} of the service's time "
                    f"([profile]({kinesis_profile})); without output the ratio is "
                    f"{ratios[('none', TARGET_BATCH_SIZE)]['service_time_over_floor_paired']:.2f}"
                    "x, so the gap is in the output path: the service's retrying writer "
                    "(`prediction_delivery.py`) or moto's run-to-run variance."
                )
            if paired > TARGET_TIME_OVER_FLOOR and output == "none":
                lines.append(
                    "- Time over the floor without output: "
                    f"{shortfall_at_most(paired, TARGET_TIME_OVER_FLOOR)}. The service decodes "
                    "and validates every field of every record (`ride_events.py`), builds a "
                    "frozen dataclass per ride, logs and flushes metrics; the floor only "
                    f"decodes. Compare [the service's profile]({none_profile}) with "
                    f"[the floor's]({floor_profile})."
                )
        rate = with_output["records_per_second"]
        if rate < TARGET_RECORDS_PER_SECOND:
            lines.append(
                "- Records per second at 1,000 per batch: "
                f"{shortfall_at_least(rate, TARGET_RECORDS_PER_SECOND)}. "
                f"{output_share:.0%} of the time is moto's `PutRecords` "
                f"([profile]({kinesis_profile})); the handler alone does "
                f"{without_output['records_per_second']:,.0f} records/s."
            )

    cold = sections.get("cold_start", {})
    if "ratios" in cold:
        for key, label in (
            ("service_local_over_floor_local", "model on disk"),
            ("service_s3_over_floor_s3", "model in S3"),
        ):
            ratio = cold["ratios"][key]
            if ratio > TARGET_COLD_START_OVER_FLOOR:
                lines.append(
                    f"- Cold start, {label}: "
                    f"{shortfall_at_most(ratio, TARGET_COLD_START_OVER_FLOOR)}. "
                    f"See the [import profile]({cold['imports']['profile'].removeprefix('docs/')})."
                )

    quality = sections.get("model_quality", {})
    if "models" in quality:
        rmse = quality["models"]["shipped_recipe"]["rmse_minutes"]
        if rmse > TARGET_RMSE_MINUTES:
            lines.append(
                "- Validation RMSE: "
                f"{shortfall_at_most(rmse, TARGET_RMSE_MINUTES)}; train.py's docstring "
                "lists the recipes tried."
            )

    footprint = sections.get("footprint", {})
    if (
        "runtime_mib" in footprint
        and footprint["runtime_mib"] > footprint["required_closure_mib"] * 1.01
    ):
        lines.append(
            "- Runtime footprint: "
            f"{footprint['runtime_mib']:,.0f} MiB installed against "
            f"{footprint['required_closure_mib']:,.0f} MiB required, "
            f"{footprint['runtime_mib'] / footprint['required_closure_mib'] - 1:.0%} more; "
            "section 3 names the packages and why they are there."
        )
    return lines


# --- Targets ---


def target_rows(document: dict[str, Any]) -> list[list[str]]:
    """Evaluate every target the sections measured."""
    sections = document["sections"]
    rows: list[list[str]] = []

    throughput = sections.get("handler_throughput", {})
    if "ratios" in throughput:
        ratios = {(item["output"], item["batch_size"]): item for item in throughput["ratios"]}
        cells = {
            (cell["variant"], cell["output"], cell["batch_size"]): cell
            for cell in throughput["cells"]
        }
        for output, label in (("kinesis", "output to moto's Kinesis"), ("none", "output disabled")):
            ratio = ratios[(output, TARGET_BATCH_SIZE)]
            speedup = ratio["service_speedup_over_reference"]
            rows.append(
                [
                    f"handler at 1,000 records, {label}: at least "
                    f"{TARGET_SPEEDUP_OVER_REFERENCE:.0f}x the per-record baseline",
                    f"{speedup:,.1f}x",
                    verdict(speedup >= TARGET_SPEEDUP_OVER_REFERENCE),
                ]
            )
        for output, label in (("kinesis", "output to moto's Kinesis"), ("none", "output disabled")):
            ratio = ratios[(output, TARGET_BATCH_SIZE)]
            paired = ratio["service_time_over_floor_paired"]
            rows.append(
                [
                    f"handler at 1,000 records, {label}: within {TARGET_TIME_OVER_FLOOR}x the "
                    "vectorized floor's time",
                    f"{paired:.2f}x (paired median; {ratio['service_time_over_floor']:.2f}x "
                    "of the medians)",
                    verdict(paired <= TARGET_TIME_OVER_FLOOR),
                ]
            )
        rate = cells[("service", "kinesis", TARGET_BATCH_SIZE)]["records_per_second"]
        rows.append(
            [
                f"handler at 1,000 records per batch, output to moto's Kinesis: at least "
                f"{TARGET_RECORDS_PER_SECOND:,} records/s",
                f"{rate:,.0f} records/s",
                verdict(rate >= TARGET_RECORDS_PER_SECOND),
            ]
        )

    cold = sections.get("cold_start", {})
    if "ratios" in cold:
        for key, label in (
            ("service_local_over_floor_local", "model in a local folder"),
            ("service_s3_over_floor_s3", "model in S3 (RUN_ID)"),
        ):
            ratio = cold["ratios"][key]
            rows.append(
                [
                    f"cold start, {label}: within {TARGET_COLD_START_OVER_FLOOR}x the floor",
                    f"{ratio:.2f}x",
                    verdict(ratio <= TARGET_COLD_START_OVER_FLOOR),
                ]
            )

    quality = sections.get("model_quality", {})
    if "models" in quality:
        rmse = quality["models"]["shipped_recipe"]["rmse_minutes"]
        rows.append(
            [
                f"validation RMSE at most {TARGET_RMSE_MINUTES} minutes, below the course "
                f"forest's {COURSE_FOREST_RMSE:.2f}",
                f"{rmse:.2f} minutes",
                verdict(rmse <= TARGET_RMSE_MINUTES and rmse < COURSE_FOREST_RMSE),
            ]
        )

    footprint = sections.get("footprint", {})
    if "runtime_mib" in footprint:
        rows.append(
            [
                "runtime footprint: the smallest set that keeps the required packages",
                f"{footprint['runtime_mib']:,.0f} MiB installed; "
                f"{footprint['required_closure_mib']:,.0f} MiB is what the handler requires",
                "met"
                if footprint["runtime_mib"] <= footprint["required_closure_mib"] * 1.01
                else "**missed** (see section 3)",
            ]
        )
    return rows


# --- Sections ---


def extra_microseconds(cells: dict[tuple[str, str, int], Any], batch_size: int) -> float:
    """Return the service's median time beyond the floor's, without output, per record."""
    service = cells[("service", "none", batch_size)]["median_ms"]
    floor = cells[("floor", "none", batch_size)]["median_ms"]
    return (service - floor) / batch_size * 1000


def handler_throughput(result: dict[str, Any]) -> list[str]:
    cells = {(c["variant"], c["output"], c["batch_size"]): c for c in result["cells"]}
    ratios = {(r["output"], r["batch_size"]): r for r in result["ratios"]}
    sizes = sorted({c["batch_size"] for c in result["cells"]})
    lines = [
        "Records per second of one invocation, median over interleaved rounds, for batches of "
        f"real rides (green March 2022). Each cell ran up to {result['repeats']} times; a cell "
        f"stopped repeating once its runs added up to {result['cell_budget_seconds']:.0f} s, "
        "so the per-record baseline at the large batches ran only once or twice. All three "
        "variants use the same model, loaded once, on one OpenMP thread, and "
        + (
            "their predictions are identical."
            if result["max_prediction_difference_minutes"] == 0
            else "their predictions differ by at most "
            f"{result['max_prediction_difference_minutes']:.1e} minutes."
        ),
        "",
        "- **service**: `ModelService.lambda_handler` with a real `KinesisCallback` "
        "(validation, one model call, `PutRecords` with retries, a log line and metrics per "
        "invocation);",
        "- **baseline**: the course reference's per-record loop (`bench/baselines.py`): decode, "
        "one `predict` of one row and one `PutRecord` per ride;",
        "- **floor**: decode, one `predict`, `PutRecords` in chunks of 500, nothing else.",
        "",
    ]
    for output, title in (
        ("kinesis", "With output to moto's Kinesis (2 shards, emptied before each timed call)"),
        ("none", "With output disabled (`TEST_RUN`), the handler's own cost"),
    ):
        rows = []
        for size in sizes:
            service = cells[("service", output, size)]
            reference = cells[("reference", output, size)]
            floor = cells[("floor", output, size)]
            ratio = ratios[(output, size)]
            rows.append(
                [
                    f"{size:,}",
                    f"{service['records_per_second']:,.0f}",
                    f"{reference['records_per_second']:,.0f} ({reference['runs']} "
                    f"{'run' if reference['runs'] == 1 else 'runs'})",
                    f"{floor['records_per_second']:,.0f}",
                    f"{ratio['service_speedup_over_reference']:,.1f}x",
                    f"{ratio['service_time_over_floor_paired']:.2f}x",
                    f"{service['median_ms']:,.1f} ms",
                ]
            )
        lines += [f"**{title}**", ""]
        lines += table(
            [
                "batch",
                "service rec/s",
                "baseline rec/s",
                "floor rec/s",
                "service / baseline",
                "service time / floor time (paired)",
                "service median",
            ],
            rows,
        )
        lines.append("")

    kinesis_1000 = cells[("service", "kinesis", TARGET_BATCH_SIZE)]
    none_1000 = cells[("service", "none", TARGET_BATCH_SIZE)]
    reference_kinesis = cells[("reference", "kinesis", TARGET_BATCH_SIZE)]
    reference_none = cells[("reference", "none", TARGET_BATCH_SIZE)]
    output_share = 1 - none_1000["median_ms"] / kinesis_1000["median_ms"]
    lines += [
        f"At 1,000 records, writing to moto takes about {output_share:.0%} of the service's "
        f"time ({kinesis_1000['median_ms']:,.0f} ms with output against "
        f"{none_1000['median_ms']:,.0f} ms without), so with output the three variants mostly "
        "measure moto's `PutRecords` and `PutRecord`. The baseline pays one model call of one "
        f"row per ride ({reference_none['ms_per_record']:.2f} ms per record without output) "
        f"and one `PutRecord` round trip per ride ({reference_kinesis['ms_per_record']:.2f} ms "
        "per record with output). The service pays one model call and two `PutRecords` calls "
        "for the whole batch. moto 5.2 copies a shard's list of sequence numbers for every "
        "record it stores, so each `PutRecords` gets slower as the stream fills. The output "
        "stream is therefore deleted and created again before each timed call, so that no "
        "variant pays for the records of another.",
        "",
        "Without output, the service's own work beyond the floor's is "
        + " and ".join(
            f"{extra_microseconds(cells, size):,.1f} µs per record at {size:,} records"
            for size in (TARGET_BATCH_SIZE, sizes[-1])
        )
        + ". That time goes to decoding with validation of every field (`ride_events.py`), a "
        "frozen `RideEvent` per ride, and a log line and metrics per invocation: compare the "
        "service's and the floor's profiles below. At one record per batch the service is "
        "no faster than the baseline: both make one model call and one request, and the "
        "service also validates, logs and flushes metrics.",
        "",
        "The ratio of time over the floor is taken round by round, on the same event, and its "
        "median reported, because the machine's other load moves single runs by a factor of "
        "two. The ratio of the medians is in the Targets table and in `docs/benchmarks.json`.",
        "",
        "Profiles of 5 invocations of 1,000 records (pyinstrument): "
        + ", ".join(
            f"[{name}]({path.removeprefix('docs/')})" for name, path in result["profiles"].items()
        )
        + ".",
    ]
    return lines


def cold_start(result: dict[str, Any]) -> list[str]:
    variants = result["variants"]
    labels = {
        "service_local": "service, model in a local folder (`MODEL_LOCATION`)",
        "service_s3": "service, model in moto's S3 (`RUN_ID` + `MODEL_BUCKET`)",
        "floor_local": "floor: import boto3 and scikit-learn, unpickle `model.pkl` from disk",
        "floor_s3": "floor: the same, `model.pkl` read with one `GetObject`",
        "service_imports": "service's imports only (`import model, settings`)",
        "floor_imports": "floor's imports only (`import boto3, sklearn`)",
        "service_local_without_bytecode": (
            "service, model in a local folder, every module compiled from source"
        ),
    }
    rows = [
        [
            labels.get(name, name),
            f"{values['median_wall_ms']:,.0f}",
            f"{values['min_wall_ms']:,.0f} to {values['max_wall_ms']:,.0f}",
            f"{values['median_in_process_ms']:,.0f}",
        ]
        for name, values in variants.items()
    ]
    imports = result["imports"]
    service_top = list(imports["service_local"]["top_packages_ms"].items())[:5]
    lines = [
        f"A fresh interpreter per run, {variants['service_local']['runs']} runs per variant "
        "after two warm-up runs, interleaved. The environment holds only the runtime "
        "dependencies, with bytecode compiled, made with "
        f"`{result['environment_command']}` (Python {result['runtime_python']}), and the "
        "children run without `PYTHONDONTWRITEBYTECODE`, which this machine sets. "
        + (
            "Without compiled bytecode the same start-up takes "
            f"{result['ratios']['without_bytecode_over_with']:.1f} times as long (last row). "
            if "without_bytecode_over_with" in result["ratios"]
            else ""
        )
        + "The handler's modules "
        f"({', '.join(result['task_root_modules'])}) are copied into a task-root folder and "
        "compiled, as the image has them. `TEST_RUN=True`, so no Kinesis client is created. "
        f"The pickled model is {result['model_pickle_bytes'] / 1024 / 1024:.1f} MiB.",
        "",
    ]
    lines += table(["variant", "median wall ms", "range ms", "median in-process ms"], rows)
    lines += [
        "",
        "Wall time runs from starting the process to its exit; in-process time is that of "
        "the import or the loading code alone, without the interpreter's own start-up.",
        "",
        f"Service over floor: {result['ratios']['service_local_over_floor_local']:.2f}x with "
        f"the model on disk, {result['ratios']['service_s3_over_floor_s3']:.2f}x with the "
        "model in S3. Both the service and the floor spend most of their start-up importing "
        "scikit-learn's dependencies while unpickling the pipeline: the floor's imports alone "
        f"take {variants['floor_imports']['median_wall_ms']:,.0f} ms, the service's own "
        f"imports {variants['service_imports']['median_wall_ms']:,.0f} ms. The largest "
        "import costs of the service's start-up by top-level package: "
        + ", ".join(f"{package} {ms:,.0f} ms" for package, ms in service_top)
        + f" ([import profile]({imports['profile'].removeprefix('docs/')}), from one run "
        "under `-X importtime`, which itself slows imports down).",
    ]
    return lines


def footprint(result: dict[str, Any]) -> list[str]:
    extras = result.get("extras", {})
    size_rows = [
        [
            f"runtime set ({result['runtime_distributions']} distributions)",
            f"{result['runtime_mib']:,.1f} MiB",
        ],
        [
            "what the handler requires (the imported packages and their requirements)",
            f"{result['required_closure_mib']:,.1f} MiB",
        ],
    ]
    for extra, details in extras.items():
        size_rows.append(
            [
                f"runtime set with the `{extra}` extra "
                f"(+{len(details['added_distributions'])} distributions)",
                f"{details['total_mib']:,.1f} MiB (+{details['added_mib']:,.1f})",
            ]
        )
    size_rows.append(
        ["full dev environment (`.venv`)", f"{result['dev_environment_mib']:,.1f} MiB"]
    )
    lines = [
        "The runtime set installed as the Dockerfile installs it, with Python "
        f"{result['python']} (the image uses its own Python; compiled bytecode sizes differ "
        "slightly between versions):",
        "",
        *[f"    {command}" for command in result["commands"]],
        "",
        *table(["environment", "size"], size_rows),
        "",
        "The 10 largest runtime packages:",
        "",
        *table(
            ["package", "MiB", "imported by the handler"],
            [
                [
                    item["name"],
                    f"{item['mib']:,.1f}",
                    "yes" if item["name"] in result["imported"] else "no",
                ]
                for item in result["top_packages"]
            ],
        ),
        "",
        "Imported after a cold start and one invocation with output to Kinesis (the same set "
        "with the model in a local folder and in S3): " + ", ".join(result["imported"]) + ".",
        "",
    ]
    if result.get("imported_not_required"):
        lines += [
            "Imported but not required: "
            + "; ".join(
                f"{name} ({reason})" for name, reason in result["imported_not_required"].items()
            )
            + ".",
            "",
        ]

    beyond = result["beyond_required"]
    if beyond:
        extra_mib = result["runtime_mib"] - result["required_closure_mib"]
        lines += [
            f"The runtime set is {extra_mib:,.0f} MiB "
            f"({extra_mib / result['required_closure_mib']:.0%}) larger than what the handler "
            "requires to start and load a pickled scikit-learn model, because of: "
            + ", ".join(beyond)
            + ". The tables around this paragraph give the reason each one is installed.",
            "",
        ]
    else:
        lines += [
            "Every distribution of the runtime set is imported by the handler or required by "
            "one that is, so the set is the smallest that starts the handler and loads a "
            "pickled scikit-learn model.",
            "",
        ]
    for extra, details in extras.items():
        lines += [
            f"The `{extra}` extra, for images that load models through MLflow (`runs:/` and "
            "`models:/` locations, flavours other than a pickled sklearn model), adds "
            f"{details['added_mib']:,.0f} MiB: " + ", ".join(details["added_distributions"]) + ".",
            "",
        ]
    if result["not_imported"]:
        lines += [
            f"Not imported ({len(result['not_imported'])} distributions, "
            f"{result['not_imported_mib']:,.1f} MiB), and why each is installed:",
            "",
            *table(
                ["package", "MiB", "why it is installed"],
                [
                    [name, f"{result['sizes_mib'].get(name, 0):,.2f}", reason]
                    for name, reason in result["not_imported"].items()
                ],
            ),
        ]
    return lines


def end_to_end(result: dict[str, Any]) -> list[str]:
    burst, paced = result["burst"], result["paced"]
    rows = []
    for label, report in (("burst", burst), ("paced", paced)):
        rows.append(
            [
                label,
                f"{report['rides_sent']:,}",
                f"{report['predictions_received']:,}",
                f"{report['rides_lost']:,}",
                f"{report['send_rate_rides_per_second']:,.0f}",
                f"{report['throughput_rides_per_second']:,.0f}",
                f"{report['latency_p50_ms']:,.0f}",
                f"{report['latency_p99_ms']:,.0f}",
            ]
        )
    lines = [
        f"How: {result['how']}. The event source mapping invokes `lambda_function` with "
        f"batches of {result['batch_size']} records from {result['shards']} input shards, in "
        "its own process. Each run starts a fresh moto server and waits until the service "
        "has loaded its model before the first ride is sent.",
        "",
        *table(
            [
                "run",
                "rides",
                "predictions",
                "lost",
                "send rate rides/s",
                "throughput rides/s",
                "latency p50 ms",
                "latency p99 ms",
            ],
            rows,
        ),
        "",
        f"- **burst**: the first {burst['rides_sent']:,} rides of "
        f"{' and '.join(result['burst_months'])} go to the input stream as fast as the "
        "producer can put them, the way `make run` replays a month. Throughput is rides over "
        "the time from the first send to the last prediction. The producer is done after "
        f"{burst['replay_seconds']:,.0f} s, the service after about "
        f"{burst['rides_sent'] / burst['throughput_rides_per_second']:,.0f} s. A ride's "
        "latency is therefore mostly its wait in the stream behind the rides sent before it. "
        "The percentiles measure the length of the queue, and grow with the number of rides "
        "replayed rather than with the cost of one ride;",
        f"- **paced**: {paced['rides_sent']:,} rides of March at "
        f"{result['paced_rate_rides_per_second']} rides/s for {result['paced_seconds']} s, "
        "below what the stack can process, so nothing queues. The latency is one ride's "
        "trip: the producer's `PutRecords`, the mapping's poll interval (0.1 s) and "
        "`GetRecords`, one invocation, and the service's `PutRecords`.",
        "",
        f"Kinesis and SQS are served by {result['moto_server']}. moto 5.2's `Shard` copies the "
        "shard's list of sequence numbers for every record it stores and walks the whole "
        "shard on every `GetRecords`. With the stock server a `PutRecords` therefore gets "
        "slower as the streams fill, and the burst slows down the longer it runs. "
        "`bench/fast_moto.py` "
        "replaces those three methods with direct lookups, which a shard's consecutive "
        "sequence numbers allow, and leaves the rest of moto as it is. Cost per call as one "
        "shard fills, median of 5 calls:",
        "",
        *table(
            [
                "records in the shard",
                "stock moto: PutRecords of 500, ms",
                "stock moto: GetRecords, ms",
                "fast_moto: PutRecords of 500, ms",
                "fast_moto: GetRecords, ms",
            ],
            [
                [
                    f"{stock['records_in_shard']:,}",
                    f"{stock['put_records_500_ms']:,.0f}",
                    f"{stock['get_records_ms']:,.0f}",
                    f"{fast['put_records_500_ms']:,.0f}",
                    f"{fast['get_records_ms']:,.0f}",
                ]
                for stock, fast in zip(
                    result["moto_scaling"]["stock"],
                    result["moto_scaling"]["fast_moto"],
                    strict=True,
                )
            ],
        ),
    ]
    return lines


def batch_job(result: dict[str, Any]) -> list[str]:
    return [
        f"`{result['command']}` on `{result['input_file']}` with "
        f"{result['model']}, {result['runs']} runs, median. The job keeps the trips of 1 to "
        "60 minutes and writes one prediction per kept trip.",
        "",
        *table(
            ["measure", "value"],
            [
                ["rows read", f"{result['rows_read']:,}"],
                ["predictions written", f"{result['rows_predicted']:,}"],
                ["wall time of the process", f"{result['median_wall_seconds']:.1f} s"],
                [
                    "read, predict and write (logged by the job)",
                    f"{result['median_scoring_seconds']:.1f} s",
                ],
                [
                    "rows read per second, whole process",
                    f"{result['rows_read_per_second_wall']:,.0f}",
                ],
                [
                    "rows read per second, read-predict-write",
                    f"{result['rows_read_per_second_scoring']:,.0f}",
                ],
                ["peak resident memory (`wait4` max RSS)", f"{result['max_rss_mib']:,.0f} MiB"],
            ],
        ),
        "",
        "The whole-process time includes starting Python, importing pandas, pyarrow and "
        "scikit-learn and loading the model; the child inherits "
        f"`PYTHONDONTWRITEBYTECODE={result['python_dont_write_bytecode'] or '(unset)'}` from "
        "`make`, as the job runs on this machine.",
    ]


def model_quality(result: dict[str, Any]) -> list[str]:
    labels = {
        "shipped_recipe": (
            "shipped recipe (`train.build_pipeline()`: DictVectorizer, TruncatedSVD 100, "
            "HistGradientBoosting)"
        ),
        "linear_regression": "linear regression on the DictVectorizer output",
        "course_random_forest": (
            "course random forest (100 trees, max_depth 20, min_samples_leaf 10)"
        ),
    }
    reference = result["course_reference_rmse"]
    rows = [
        [
            labels[name],
            f"{values['rmse_minutes']:.2f}",
            f"{reference[name]:.2f}" if name in reference else "",
            f"{values['mae_minutes']:.2f}",
            f"{values['fit_seconds']:.1f}",
            f"{values['predict_1000_rows_ms']:.1f}",
        ]
        for name, values in result["models"].items()
    ]
    return [
        f"Fit on green {result['train_month']} ({result['train_rows']:,} trips of 1 to 60 "
        f"minutes), scored on green {result['validation_month']} "
        f"({result['validation_rows']:,} trips). Predict time is the median of "
        f"{result['predict_rounds']} interleaved calls on 1,000 validation rows on one thread; "
        "fit time is wall time with both cores available to the forest.",
        "",
        *table(
            ["model", "RMSE min", "course figure", "MAE min", "fit s", "predict 1,000 rows ms"],
            rows,
        ),
    ]


def cost(result: dict[str, Any]) -> list[str]:
    settings = result["settings"]
    prices = result["prices"]
    labels = {
        "service_with_output": "service, output to moto's Kinesis",
        "service_handler_only": "service, output disabled (lower bound)",
        "reference_with_output": "course per-record baseline, output to moto's Kinesis",
    }
    rows = [
        [
            labels[name],
            f"{costs['ms_per_record']:.3f}",
            f"{costs['gb_seconds']:,.0f}",
            f"${costs['requests_usd']:.4f}",
            f"${costs['duration_usd']:.4f}",
            f"${result['kinesis_put_usd']:.4f}",
            f"${result['per_million_total_usd'][name]:.4f}",
        ]
        for name, costs in result["lambda"].items()
    ]
    price_rows = [
        [name, f"${Decimal(str(item['usd']))}", item["note"], item["source"]]
        for name, item in prices.items()
    ]
    return [
        "**An estimate**, per million predictions, from section 1's milliseconds per record "
        f"at {result['measured_batch_size']:,} records per batch, billed at "
        f"{settings['memory_mb']:,} MB ({settings['memory_source']}) in batches of "
        f"{settings['batch_size']} ({settings['batch_size_source']}), architecture "
        f"{settings['architecture']}. This machine's core is not a Lambda vCPU (Lambda gives a "
        "full vCPU from 1,769 MB), and moto is not Kinesis, so the milliseconds are indicative "
        "only.",
        "",
        *table(
            [
                "handler",
                "ms per record",
                "GB-s",
                "Lambda requests",
                "Lambda duration",
                "Kinesis PUT units",
                "total",
            ],
            rows,
        ),
        "",
        f"Kinesis PUT payload units: each input record (at most "
        f"{result['kinesis_put_units_per_record']['input']} unit of 25 KB) and each output "
        f"record ({result['kinesis_put_units_per_record']['output']} unit) counts, "
        f"{result['kinesis_put_payload_units']:,} units per million predictions, whether sent "
        "one by one or with `PutRecords`. Shard-hours do not depend on the traffic: the "
        f"{settings['shards']} shards of production cost about "
        f"${result['kinesis_shard_month_usd']:,.2f} a month. Not included: CloudWatch Logs "
        "and metrics, ECR storage, S3, data transfer, the free tiers. Production runs in "
        f"{settings['region']}; the prices below are for the US regions named.",
        "",
        f"Prices, read on {result['prices_read_on']}:",
        "",
        *table(["price", "USD", "what", "source"], price_rows),
    ]


RENDERERS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "handler_throughput": handler_throughput,
    "cold_start": cold_start,
    "footprint": footprint,
    "end_to_end": end_to_end,
    "batch_job": batch_job,
    "model_quality": model_quality,
    "cost": cost,
}


def render(document: dict[str, Any]) -> str:
    """Return the whole Markdown page."""
    machine = document["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{document['command']}` on {document['finished_at']} (UTC) in "
        f"{document['total_seconds'] / 60:.1f} minutes. The numbers come from that run; "
        "`docs/benchmarks.json` has all of them, and `python -m bench.run --help` lists "
        "the options. These are measurements, not tests: nothing fails on a slow number.",
        "",
        "## Machine",
        "",
        *table(
            ["CPU", "cores", "memory", "Python", "OS"],
            [
                [
                    machine["cpu_model"],
                    str(machine["logical_cores"]),
                    f"{machine['memory_gib']} GiB",
                    f"{machine['python_implementation']} {machine['python']}",
                    machine["os"],
                ]
            ],
        ),
        "",
        "Load average (1, 5, 15 minutes): "
        f"{', '.join(map(str, document['load_average_start']))} at the start, "
        f"{', '.join(map(str, document['load_average_end']))} at the end. The machine was "
        "shared with other processes during the run, so single timings vary; every figure "
        "is a median of interleaved runs, and ratios compare variants measured side by side.",
        "",
        "## Targets",
        "",
        *table(["target", "this run", "result"], target_rows(document)),
        "",
    ]
    missed = missed_targets(document)
    if missed:
        lines += ["Where a target was missed:", "", *missed, ""]
    for name, title in SECTION_TITLES.items():
        lines += [f"## {title}", ""]
        result = document["sections"].get(name)
        if result is None or result.get("skipped"):
            lines += ["Skipped in this run (`BENCH_SKIP`), and no earlier result to show.", ""]
            continue
        if "error" in result:
            lines += [f"Failed in this run: {result['error']}", ""]
            continue
        if result.get("carried_over_from"):
            lines += [
                f"Skipped in this run; these figures are from the run of "
                f"{result['carried_over_from']}.",
                "",
            ]
        lines += RENDERERS[name](result)
        while lines[-1] == "":
            lines.pop()
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
