"""Section 2: fresh-process start-up of the handler, against a floor that only loads the model.

Every run is a new interpreter of a runtime-only environment (the locked runtime
dependencies, no dev group), created with ``uv sync --compile-bytecode`` and started without
``PYTHONDONTWRITEBYTECODE``, so imports read compiled bytecode as they do in the image. The
handler's modules are copied into a task-root folder, as the Dockerfile copies them, and
compiled too. Variants:

- ``service_local``: ``import lambda_function`` with ``TEST_RUN=True`` and ``MODEL_LOCATION``
  set to the model folder;
- ``service_s3``: the same with ``RUN_ID`` and ``MODEL_BUCKET``, the model in moto's S3;
- ``floor_local``: import boto3 and scikit-learn and unpickle the same ``model.pkl``;
- ``floor_s3``: the same, reading ``model.pkl`` from moto's S3 with one ``GetObject``;
- ``service_imports`` and ``floor_imports``: the imports alone, to split import time from
  model loading;
- ``service_local_without_bytecode``: ``service_local`` with ``PYTHONDONTWRITEBYTECODE=1``
  and an empty ``PYTHONPYCACHEPREFIX``, so that every module is compiled from source, as in
  an environment installed without compiled bytecode on a machine that sets that variable.

The time reported is the wall time from starting the process to its exit, so it includes
the interpreter's own start-up. The in-process time of the import is reported beside it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import BUILD_DIR, PROFILES_DIR, REPO_ROOT, median, section_main
from bench.trained_model import load_trained_model
from local_stack.aws import LOCAL_CREDENTIALS, client, create_bucket
from local_stack.moto_server import MotoServer

RUNTIME_ENV = REPO_ROOT / "build" / "bench-runtime"
TASK_ROOT = BUILD_DIR / "task-root"
MODEL_COPY = BUILD_DIR / "cold-start-model"
EMPTY_PYCACHE = BUILD_DIR / "empty-pycache"
MODEL_BUCKET = "bench-cold-start-models"
EXPERIMENT_ID = "1"
# Runs per variant; BENCH_COLD_START_RUNS overrides it. Two more runs per variant warm the
# file system cache first and are not counted.
DEFAULT_RUNS = 10
WARM_UP_RUNS = 2
# The modules the image copies when the Dockerfile cannot be read.
FALLBACK_RUNTIME_MODULES = (
    "lambda_function.py",
    "model.py",
    "settings.py",
    "model_loading.py",
    "ride_events.py",
    "prediction_delivery.py",
    "dead_letter_queue.py",
    "observability.py",
    "chunking.py",
)

_TIMED = (
    "import time, json\n"
    "started = time.perf_counter()\n"
    "{body}\n"
    "print(json.dumps({{'in_process_seconds': time.perf_counter() - started}}))\n"
)
_FLOOR_LOCAL = (
    "import pickle\nimport boto3, sklearn\nwith open({path!r}, 'rb') as f:\n    pickle.load(f)"
)
_FLOOR_S3 = (
    "import pickle\nimport boto3, sklearn\n"
    "body = boto3.client('s3').get_object(Bucket={bucket!r}, Key={key!r})['Body'].read()\n"
    "pickle.loads(body)"
)


def runtime_python() -> Path:
    return RUNTIME_ENV / "bin" / "python"


def create_runtime_environment() -> str:
    """Install the runtime dependencies from uv.lock, compiled to bytecode; return the command."""
    uv = os.environ.get("UV") or shutil.which("uv") or "uv"
    command = [uv, "sync", "--frozen", "--no-default-groups", "--compile-bytecode", "--quiet"]
    subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(RUNTIME_ENV)},
        check=True,
    )
    return f"UV_PROJECT_ENVIRONMENT={RUNTIME_ENV.relative_to(REPO_ROOT)} " + " ".join(
        ["uv", *command[1:]]
    )


def runtime_modules() -> list[str]:
    """Return the modules the Dockerfile copies into the task root, or the known list."""
    try:
        text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    except OSError:
        return list(FALLBACK_RUNTIME_MODULES)
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        words = line.split()
        if len(words) > 2 and words[0] == "COPY" and "LAMBDA_TASK_ROOT" in words[-1]:
            sources = words[1:-1]
            if sources and all(source.endswith(".py") for source in sources):
                return sources
    return list(FALLBACK_RUNTIME_MODULES)


def assemble_task_root() -> list[str]:
    """Copy the handler's modules into a fresh task root and compile them."""
    shutil.rmtree(TASK_ROOT, ignore_errors=True)
    TASK_ROOT.mkdir(parents=True)
    modules = runtime_modules()
    for module in modules:
        shutil.copy2(REPO_ROOT / module, TASK_ROOT / module)
    subprocess.run(
        [str(runtime_python()), "-m", "compileall", "-q", str(TASK_ROOT)],
        check=True,
        env=child_environment({}),
    )
    return modules


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """Build a clean environment: no PYTHONDONTWRITEBYTECODE, no PYTHONPATH, local credentials."""
    kept = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TZ") if name in os.environ}
    return {**kept, **LOCAL_CREDENTIALS, **extra}


def run_child(body: str, extra_env: dict[str, str], *flags: str) -> tuple[float, float, str]:
    """Start one interpreter in the task root; return wall seconds, in-process seconds, stderr."""
    command = [str(runtime_python()), *flags, "-c", _TIMED.format(body=body)]
    started = time.perf_counter()
    completed = subprocess.run(
        command,
        cwd=TASK_ROOT,
        env=child_environment(extra_env),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(
            f"cold-start child failed with exit code {completed.returncode}: "
            f"{completed.stderr.strip()[-2000:]}"
        )
    in_process = json.loads(completed.stdout.strip().splitlines()[-1])["in_process_seconds"]
    return wall, in_process, completed.stderr


def upload_model(endpoint: str, model_dir: Path, run_id: str) -> str:
    """Put the model folder where RUN_ID + MODEL_BUCKET points; return the model.pkl key."""
    s3 = client("s3", endpoint)
    create_bucket(s3, MODEL_BUCKET)
    prefix = f"{EXPERIMENT_ID}/{run_id}/artifacts/model"
    for path in sorted(model_dir.iterdir()):
        if path.is_file():
            s3.upload_file(str(path), MODEL_BUCKET, f"{prefix}/{path.name}")
    return f"{prefix}/model.pkl"


def variants(endpoint: str, run_id: str, pickle_key: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Return each variant's timed code and environment."""
    s3_env = {"AWS_ENDPOINT_URL": endpoint}
    service_env = {"TEST_RUN": "True", "PREDICTIONS_STREAM_NAME": "ride_predictions"}
    return {
        "service_local": (
            "import lambda_function",
            {**service_env, "MODEL_LOCATION": str(MODEL_COPY)},
        ),
        "service_s3": (
            "import lambda_function",
            {
                **service_env,
                **s3_env,
                "RUN_ID": run_id,
                "MODEL_BUCKET": MODEL_BUCKET,
                "MLFLOW_EXPERIMENT_ID": EXPERIMENT_ID,
            },
        ),
        "floor_local": (_FLOOR_LOCAL.format(path=str(MODEL_COPY / "model.pkl")), {}),
        "floor_s3": (_FLOOR_S3.format(bucket=MODEL_BUCKET, key=pickle_key), s3_env),
        # Everything lambda_function imports, without building the service.
        "service_imports": ("import model, settings", service_env),
        "floor_imports": ("import pickle\nimport boto3, sklearn", {}),
        "service_local_without_bytecode": (
            "import lambda_function",
            {
                **service_env,
                "MODEL_LOCATION": str(MODEL_COPY),
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPYCACHEPREFIX": str(EMPTY_PYCACHE),
            },
        ),
    }


def measure_variants(
    cases: dict[str, tuple[str, dict[str, str]]], runs: int
) -> dict[str, dict[str, list[float]]]:
    """Run every variant ``runs`` times, interleaved in a rotating order."""
    names = list(cases)
    for _ in range(WARM_UP_RUNS):
        for name in names:
            run_child(*cases[name])

    timings: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"wall": [], "in_process": []})
    for round_index in range(runs):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            wall, in_process, _ = run_child(*cases[name])
            timings[name]["wall"].append(wall)
            timings[name]["in_process"].append(in_process)
    return dict(timings)


def import_profile(cases: dict[str, tuple[str, dict[str, str]]]) -> dict[str, Any]:
    """Run ``-X importtime`` on the service and the floor; save the slowest imports by package."""
    summary: dict[str, Any] = {}
    lines = [
        "Import time by top-level package (sum of each module's own time), from python -X",
        "importtime in the runtime-only environment with bytecode compiled. One run each.",
        "",
    ]
    for name in ("service_local", "floor_local"):
        _, _, stderr = run_child(*cases[name], "-X", "importtime")
        by_package: dict[str, int] = defaultdict(int)
        total = 0
        for line in stderr.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
            if match is None:
                continue
            self_us = int(match.group(1))
            by_package[match.group(4).split(".")[0]] += self_us
            total += self_us
        ranked = sorted(by_package.items(), key=lambda item: item[1], reverse=True)
        summary[name] = {
            "total_import_ms": round(total / 1000, 1),
            "top_packages_ms": {package: round(us / 1000, 1) for package, us in ranked[:15]},
        }
        lines.append(f"{name}: {total / 1000:.0f} ms in imports")
        lines.extend(f"  {us / 1000:8.1f} ms  {package}" for package, us in ranked[:25])
        lines.append("")
    PROFILES_DIR.mkdir(parents=True, exist_ok=True)
    path = PROFILES_DIR / "cold_start_imports.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    summary["profile"] = str(path.relative_to(REPO_ROOT))
    return summary


def measure() -> dict[str, Any]:
    runs = int(os.environ.get("BENCH_COLD_START_RUNS", DEFAULT_RUNS))
    trained = load_trained_model()
    environment_command = create_runtime_environment()
    modules = assemble_task_root()
    shutil.rmtree(MODEL_COPY, ignore_errors=True)
    shutil.copytree(trained.model_dir, MODEL_COPY)
    shutil.rmtree(EMPTY_PYCACHE, ignore_errors=True)
    EMPTY_PYCACHE.mkdir(parents=True)

    log_path = BUILD_DIR / "logs" / "moto-cold-start.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with MotoServer(log_path=log_path) as moto:
        pickle_key = upload_model(moto.endpoint_url, MODEL_COPY, trained.run_id)
        cases = variants(moto.endpoint_url, trained.run_id, pickle_key)
        timings = measure_variants(cases, runs)
        imports = import_profile(cases)

    results = {
        name: {
            "runs": len(values["wall"]),
            "median_wall_ms": round(median(values["wall"]) * 1000, 1),
            "min_wall_ms": round(min(values["wall"]) * 1000, 1),
            "max_wall_ms": round(max(values["wall"]) * 1000, 1),
            "median_in_process_ms": round(median(values["in_process"]) * 1000, 1),
        }
        for name, values in timings.items()
    }
    python_version = subprocess.run(
        [str(runtime_python()), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return {
        "environment_command": environment_command,
        "runtime_python": python_version,
        "task_root_modules": modules,
        "model_pickle_bytes": (MODEL_COPY / "model.pkl").stat().st_size,
        "variants": results,
        "ratios": {
            "service_local_over_floor_local": round(
                results["service_local"]["median_wall_ms"]
                / results["floor_local"]["median_wall_ms"],
                3,
            ),
            "without_bytecode_over_with": round(
                results["service_local_without_bytecode"]["median_wall_ms"]
                / results["service_local"]["median_wall_ms"],
                3,
            ),
            "service_s3_over_floor_s3": round(
                results["service_s3"]["median_wall_ms"] / results["floor_s3"]["median_wall_ms"], 3
            ),
        },
        "imports": imports,
    }


if __name__ == "__main__":
    sys.exit(section_main("cold_start", measure))
