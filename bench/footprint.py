"""Section 3: disk size of the runtime dependency set, and which of it the handler imports.

The runtime set is installed as the Dockerfile installs it: ``uv export --no-dev --frozen``
into a requirements file, then ``uv pip install --require-hashes --no-deps
--compile-bytecode --target``. Each optional extra of pyproject.toml is installed the same
way, to report what it adds. Sizes are apparent file sizes (what an image layer stores), in
MiB. The handler's imports are read from ``sys.modules`` of a fresh runtime-only
interpreter after a cold start and one invocation with output to moto's Kinesis. That runs
twice, with the model in a local folder and in S3 (``RUN_ID``), and the module names are
mapped to distributions with ``importlib.metadata.packages_distributions``.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections import defaultdict
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.cold_start import (
    MODEL_BUCKET,
    MODEL_COPY,
    TASK_ROOT,
    assemble_task_root,
    child_environment,
    create_runtime_environment,
    runtime_python,
    upload_model,
)
from bench.common import BUILD_DIR, REPLAY_MONTH, REPO_ROOT, kinesis_event, section_main, trip_file
from bench.trained_model import load_trained_model
from local_stack.aws import LOCAL_CREDENTIALS, client, create_streams
from local_stack.moto_server import MotoServer
from local_stack.replay import read_rides

FOOTPRINT_DIR = BUILD_DIR / "footprint"
TARGET_DIR = FOOTPRINT_DIR / "target"
DEV_ENV = REPO_ROOT / ".venv"
MIB = 1024 * 1024
TOP_PACKAGES = 10
INVOCATION_RIDES = 10
OUTPUT_STREAM = "ride_predictions"

# Reasons to install runtime packages that the handler does not import. Packages not listed
# here are explained by the packages that require them.
# What unpickling the model imports besides the handler's own imports: train.py logs a
# scikit-learn pipeline in MLflow's cloudpickle format.
MODEL_PICKLE_DISTRIBUTIONS = frozenset({"scikit-learn", "cloudpickle"})

KNOWN_REASONS = {
    "mlflow-skinny": (
        "model_loading imports mlflow only for MODEL_LOCATION values of runs:/ and models:/ "
        "URIs and for flavours other than a pickled sklearn model, so a deployment that "
        "serves a pickled sklearn model from RUN_ID + MODEL_BUCKET, a folder or s3:// never "
        "imports it"
    ),
}

_IMPORTS_PROBE = """
import json, sys, importlib.metadata as metadata
import lambda_function
with open(sys.argv[1], encoding="utf-8") as event_file:
    event = json.load(event_file)
response = lambda_function.lambda_handler(event, None)
assert not response["batchItemFailures"], response["batchItemFailures"]
owners = metadata.packages_distributions()
used = set()
for name in list(sys.modules):
    used.update(owners.get(name.split(".")[0], []))
print(json.dumps(sorted(used)))
"""


def install_runtime_set(target: Path, extra: str | None = None) -> list[str]:
    """Export and install the runtime set (with an optional extra) into a fresh --target folder.

    Returns the two commands, as the report shows them.
    """
    uv = os.environ.get("UV") or shutil.which("uv") or "uv"
    shutil.rmtree(target, ignore_errors=True)
    FOOTPRINT_DIR.mkdir(parents=True, exist_ok=True)
    requirements = target.with_name(f"{target.name}-requirements.txt")
    export = [
        uv, "export", "--frozen", "--no-dev", "--no-emit-project",
        *(["--extra", extra] if extra else []),
        "--format", "requirements-txt", "--output-file", str(requirements), "--quiet",
    ]  # fmt: skip
    install = [
        uv, "pip", "install", "--require-hashes", "--no-deps", "--compile-bytecode", "--quiet",
        "--python", sys.executable, "--target", str(target), "--requirement", str(requirements),
    ]  # fmt: skip
    subprocess.run(export, cwd=REPO_ROOT, check=True)
    subprocess.run(install, cwd=REPO_ROOT, check=True)
    return [
        " ".join(["uv", *command[1:]]).replace(str(REPO_ROOT) + "/", "")
        for command in (export, install)
    ]


def optional_extras() -> list[str]:
    """Return the names of pyproject.toml's optional dependency groups (extras)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return sorted(project["project"].get("optional-dependencies", {}))


def measure_extras(default_sizes: dict[str, int]) -> dict[str, Any]:
    """Install the runtime set with each extra and report what the extra adds."""
    extras = {}
    for extra in optional_extras():
        target = FOOTPRINT_DIR / f"target-{extra}"
        commands = install_runtime_set(target, extra)
        sizes = distribution_sizes(target)
        added = sorted(set(sizes) - set(default_sizes), key=str.lower)
        extras[extra] = {
            "commands": commands,
            "total_mib": round(tree_bytes(target) / MIB, 1),
            "added_mib": round(sum(sizes[name] for name in added) / MIB, 1),
            "added_distributions": added,
        }
        shutil.rmtree(target, ignore_errors=True)
    return extras


def tree_bytes(path: Path) -> int:
    """Return the apparent size of every regular file under ``path``, links not followed."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            file_path = Path(root) / name
            if not file_path.is_symlink():
                total += file_path.stat().st_size
    return total


def entry_bytes(path: Path) -> int:
    return tree_bytes(path) if path.is_dir() else path.stat().st_size


def top_level_owners(site: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Map each top-level entry, and each top-level module name, to its distribution."""
    owner_of: dict[str, str] = {}
    module_owner: dict[str, str] = {}
    for record in site.glob("*.dist-info/RECORD"):
        metadata_text = (record.parent / "METADATA").read_text(encoding="utf-8", errors="replace")
        name = next(
            line.split(":", 1)[1].strip()
            for line in metadata_text.splitlines()
            if line.startswith("Name:")
        )
        owner_of[record.parent.name] = name
        for line in record.read_text(encoding="utf-8").splitlines():
            first = line.split(",", 1)[0].split("/", 1)[0]
            if first and first not in ("..", "__pycache__"):
                owner_of.setdefault(first, name)
                module_owner[first.removesuffix(".py")] = name
    return owner_of, module_owner


def distribution_sizes(site: Path) -> dict[str, int]:
    """Attribute every top-level entry of an install folder to its distribution, by RECORD."""
    owner_of, module_owner = top_level_owners(site)
    sizes: dict[str, int] = defaultdict(int)
    for entry in site.iterdir():
        if entry.name == "__pycache__":
            # Bytecode of top-level modules such as six.py: owned by the module's distribution.
            for compiled in entry.iterdir():
                owner = module_owner.get(compiled.name.split(".")[0], "(unattributed)")
                sizes[owner] += compiled.stat().st_size
            continue
        sizes[owner_of.get(entry.name, "(unattributed)")] += entry_bytes(entry)
    return dict(sizes)


def requirements_graph(site: Path) -> dict[str, set[str]]:
    """Return each installed distribution's installed requirements (markers evaluated)."""
    installed = list(distributions(path=[str(site)]))
    names = {canonicalize_name(dist.metadata["Name"]): dist.metadata["Name"] for dist in installed}
    graph: dict[str, set[str]] = {}
    for dist in installed:
        requirements = graph.setdefault(dist.metadata["Name"], set())
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            name = names.get(canonicalize_name(requirement.name))
            if name is not None:
                requirements.add(name)
    return graph


def closure(roots: set[str], graph: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(graph.get(name, ()))
    return seen


def module_level_imports(paths: list[Path]) -> set[str]:
    """Return the top-level names the modules import at module level (not inside functions)."""
    names: set[str] = set()
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def required_roots(site: Path, module_paths: list[Path]) -> set[str]:
    """The distributions the handler cannot start without.

    Those are the ones its modules import at module level, plus what unpickling the model
    needs: train.py saves a scikit-learn pipeline with cloudpickle. Imports inside functions
    (mlflow for runs:/ and models:/ locations, pandas for pyfunc models) are left out,
    because only some model locations reach them.
    """
    _, module_owner = top_level_owners(site)
    roots = {
        module_owner[name] for name in module_level_imports(module_paths) if name in module_owner
    }
    return roots | MODEL_PICKLE_DISTRIBUTIONS


def direct_dependencies() -> set[str]:
    """Return the canonical names of pyproject.toml's runtime dependencies."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {
        canonicalize_name(Requirement(line).name)
        for line in project["project"].get("dependencies", [])
    }


def handler_imports(endpoint: str) -> dict[str, list[str]]:
    """Return the distributions a fresh runtime interpreter imports, per model location."""
    trained = load_trained_model()
    create_runtime_environment()
    assemble_task_root()
    shutil.rmtree(MODEL_COPY, ignore_errors=True)
    shutil.copytree(trained.model_dir, MODEL_COPY)
    upload_model(endpoint, MODEL_COPY, trained.run_id)
    create_streams(client("kinesis", endpoint), [OUTPUT_STREAM], shard_count=1)

    rides = read_rides(trip_file(*REPLAY_MONTH), limit=INVOCATION_RIDES)
    event_path = FOOTPRINT_DIR / "event.json"
    event = kinesis_event(
        [rides.event_payload(index) for index in range(len(rides))],
        [str(int(ride_id)) for ride_id in rides.ride_ids],
    )
    event_path.write_text(json.dumps(event), encoding="utf-8")

    service_env = {"PREDICTIONS_STREAM_NAME": OUTPUT_STREAM, "AWS_ENDPOINT_URL": endpoint}
    locations = {
        "local_folder": {"MODEL_LOCATION": str(MODEL_COPY)},
        "s3_run_id": {"RUN_ID": trained.run_id, "MODEL_BUCKET": MODEL_BUCKET},
    }
    used = {}
    for name, location_env in locations.items():
        completed = subprocess.run(
            [str(runtime_python()), "-c", _IMPORTS_PROBE, str(event_path)],
            cwd=TASK_ROOT,
            env=child_environment({**service_env, **location_env}),
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"import probe with the model in {name} failed: {completed.stderr.strip()[-2000:]}"
            )
        used[name] = json.loads(completed.stdout.strip().splitlines()[-1])
    return used


def explain_unused(
    unused: set[str], used: set[str], graph: dict[str, set[str]], direct: set[str]
) -> dict[str, str]:
    """Say why each unimported runtime package is installed: who requires it."""
    required_by: dict[str, set[str]] = defaultdict(set)
    for name, requirements in graph.items():
        for requirement in requirements:
            required_by[requirement].add(name)
    reasons = {}
    for name in sorted(unused, key=str.lower):
        if name in KNOWN_REASONS:
            reasons[name] = KNOWN_REASONS[name]
            continue
        parents = sorted(required_by.get(name, set()), key=str.lower)
        imported_parents = [parent for parent in parents if parent in used]
        if imported_parents:
            reasons[name] = (
                f"required by {', '.join(imported_parents)} (imported), which may import it "
                "on a path this run did not take"
            )
        elif canonicalize_name(name) in direct:
            reasons[name] = "listed in pyproject.toml" + (
                f", and required by {', '.join(parents)}" if parents else ""
            )
        elif parents:
            reasons[name] = "required only by packages the handler does not import: " + ", ".join(
                parents
            )
        else:
            reasons[name] = "required by no installed package"
    return reasons


def explain_imported_not_required(
    names: set[str], graph: dict[str, set[str]], direct: set[str]
) -> dict[str, str]:
    """Say why a package is imported although nothing the handler requires requires it."""
    reasons = {}
    for name in sorted(names, key=str.lower):
        parents = sorted(
            (parent for parent, requirements in graph.items() if name in requirements),
            key=str.lower,
        )
        if canonicalize_name(name) in direct:
            parents = ["pyproject.toml", *parents]
        reasons[name] = (
            "an optional import: no required package lists it, and it is installed for "
            + ", ".join(parents)
        )
    return reasons


def measure() -> dict[str, Any]:
    os.environ.update(LOCAL_CREDENTIALS)
    commands = install_runtime_set(TARGET_DIR)
    sizes = distribution_sizes(TARGET_DIR)
    runtime_bytes = tree_bytes(TARGET_DIR)
    dev_bytes = tree_bytes(DEV_ENV)
    graph = requirements_graph(TARGET_DIR)
    installed = set(graph)

    log_path = BUILD_DIR / "logs" / "moto-footprint.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with MotoServer(log_path=log_path) as moto:
        used_by_location = handler_imports(moto.endpoint_url)
    used = set().union(*used_by_location.values()) & installed
    unused = installed - used
    direct = direct_dependencies()
    roots = required_roots(TARGET_DIR, sorted(TASK_ROOT.glob("*.py")))
    # The smallest set that still starts the handler and loads the model.
    required = closure(roots, graph)
    ranked = sorted(sizes.items(), key=lambda item: item[1], reverse=True)

    return {
        "commands": commands,
        "python": sys.version.split()[0],
        "runtime_mib": round(runtime_bytes / MIB, 1),
        "dev_environment_mib": round(dev_bytes / MIB, 1),
        "runtime_distributions": len(installed),
        "top_packages": [
            {"name": name, "mib": round(size / MIB, 1)} for name, size in ranked[:TOP_PACKAGES]
        ],
        "sizes_mib": {name: round(size / MIB, 2) for name, size in ranked},
        "imported": sorted(used, key=str.lower),
        "imported_by_location": used_by_location,
        "not_imported": explain_unused(unused, used, graph, direct),
        "not_imported_mib": round(sum(sizes.get(name, 0) for name in unused) / MIB, 1),
        "imported_not_required": explain_imported_not_required(used - required, graph, direct),
        "required_roots": sorted(roots, key=str.lower),
        "required_closure": sorted(required, key=str.lower),
        "required_closure_mib": round(sum(sizes.get(name, 0) for name in required) / MIB, 1),
        "beyond_required": sorted(installed - required, key=str.lower),
        "beyond_required_mib": round(
            sum(sizes.get(name, 0) for name in installed - required) / MIB, 1
        ),
        "extras": measure_extras(sizes),
    }


if __name__ == "__main__":
    sys.exit(section_main("footprint", measure))
