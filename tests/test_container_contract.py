"""The Lambda image's contract, checked without Docker: its task root runs the handler.

The Dockerfile installs the locked runtime dependencies into the task root and copies the
runtime modules listed in its ``COPY ... ${LAMBDA_TASK_ROOT}/`` instruction next to them.
These tests assemble the same folder from the same list and the same ``uv export``, then
start the invocation endpoint on it in an interpreter that can import only from that
folder, and request a prediction. A module or a package that the handler imports but the
image lacks fails them, as it would fail the deployed function.

Differences from the image, on purpose:

- the interpreter is the image's Python version when ``uv python find`` has it (or
  ``CONTRACT_TEST_PYTHON`` names one), else the one running the tests, with a warning;
- ``local_stack/invoke_server.py``, with the ``event_source_mapping`` module it imports, is
  copied into a runner folder beside the task root, in place of the emulator and the Python
  runtime client that the base image brings. The repository itself is not on the path;
- the dependency folder is cached under ``build/lambda-task-root/`` by the hash of uv.lock
  and the Python version, and linked into each test's task root.
"""

# pytest passes fixtures as arguments named like the fixture functions.
# pylint: disable=redefined-outer-name

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deepdiff import DeepDiff

from local_stack.aws import LOCAL_CREDENTIALS, client, create_bucket, create_streams
from local_stack.invoke_server import INVOCATIONS_PATH, wait_until_serving
from local_stack.moto_server import HOST, MotoServer, free_port
from tests.conftest import REPO_ROOT
from tests.service.factories import encode, kinesis_event, ride_event

DOCKERFILE = REPO_ROOT / "Dockerfile"
TASK_ROOT_VARIABLE = "${LAMBDA_TASK_ROOT}"
CACHE_ROOT = REPO_ROOT / "build" / "lambda-task-root"
INVOKE_SERVER = REPO_ROOT / "local_stack" / "invoke_server.py"

MODEL_BUCKET = "contract-test-models"
PREDICTIONS_STREAM = "contract_test_predictions"
MODEL_NAME = "ride_duration_prediction_model"
# Minutes: the endpoint may compute with another Python and numpy build than the test, which
# changes only the last bits of a float (see integration-test/integration_helpers.py).
PREDICTION_TOLERANCE_MINUTES = 1e-6
ENDPOINT_READY_SECONDS = 120.0


# --- Reading the Dockerfile ---


def dockerfile_instructions(text: str) -> list[tuple[str, list[str]]]:
    """Split a Dockerfile into (instruction, arguments), joining continued lines."""
    instructions = []
    logical_line = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical_line and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            # A comment inside a continued instruction is dropped, as Docker does.
            continue
        if stripped.endswith("\\"):
            logical_line += stripped[:-1] + " "
            continue
        logical_line += stripped
        keyword, _, arguments = logical_line.partition(" ")
        instructions.append((keyword.upper(), shlex.split(arguments)))
        logical_line = ""
    return instructions


def final_stage(instructions: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """Return the instructions from the last FROM on: the stage that becomes the image."""
    last_from = max(index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def runtime_modules(dockerfile_text: str) -> list[str]:
    """Return the files the image's stage copies from the build context into the task root."""
    modules = []
    for keyword, arguments in final_stage(dockerfile_instructions(dockerfile_text)):
        if keyword != "COPY" or any(argument.startswith("--from") for argument in arguments):
            continue
        *sources, destination = [
            argument for argument in arguments if not argument.startswith("--")
        ]
        if destination.rstrip("/") == TASK_ROOT_VARIABLE:
            modules.extend(sources)
    return modules


def image_python_version(dockerfile_text: str) -> str:
    """Return the Python version of the image's base, such as ``3.12``."""
    keyword, arguments = final_stage(dockerfile_instructions(dockerfile_text))[0]
    match = re.fullmatch(r"public\.ecr\.aws/lambda/python:(\d+\.\d+)", arguments[0])
    if keyword != "FROM" or match is None:
        raise ValueError(f"The image's base is {arguments[0]!r}, not public.ecr.aws/lambda/python")
    return match.group(1)


def repository_imports(module_path: Path) -> set[Path]:
    """Return the repository's modules that a module imports at any depth, itself included.

    Only absolute imports of files in this repository count, such as ``import model`` or
    ``from local_stack.event_source_mapping import LambdaContext``.
    """
    found: set[Path] = set()
    pending = [module_path]
    while pending:
        path = pending.pop()
        if path in found:
            continue
        found.add(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                candidate = REPO_ROOT / f"{name.replace('.', '/')}.py"
                if candidate.is_file():
                    pending.append(candidate)
    return found


# --- Assembling the task root ---


def image_python(version: str) -> str:
    """Find an interpreter of the image's Python version, else return the running one."""
    override = os.environ.get("CONTRACT_TEST_PYTHON")
    if override:
        return override

    found = subprocess.run(
        [uv_executable(), "python", "find", "--no-project", version],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode == 0 and found.stdout.strip():
        return found.stdout.strip()
    warnings.warn(
        f"Python {version}, the image's version, was not found by `uv python find`: the task root "
        f"is tested with Python {sys.version_info.major}.{sys.version_info.minor} "
        f"({sys.executable}). Set CONTRACT_TEST_PYTHON to a Python {version} interpreter.",
        stacklevel=2,
    )
    return sys.executable


def uv_executable() -> str:
    """Return uv: the one running the tests (uv run sets UV), else the one on PATH."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv not found: run the tests with `make test`, or put uv on PATH")
    return uv


def python_version_of(python: str) -> str:
    completed = subprocess.run(
        [python, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.strip()


def locked_dependencies(python: str) -> Path:
    """Install the runtime dependencies from uv.lock once per lock and Python version.

    Returns the folder they are installed in. Builds of other locks for the same Python
    version are removed, so the cache holds one folder per version.
    """
    lock_hash = hashlib.sha256((REPO_ROOT / "uv.lock").read_bytes()).hexdigest()[:16]
    version = python_version_of(python)
    target = CACHE_ROOT / f"py{version}-{lock_hash}"
    if (target / "site-packages").is_dir():
        return target / "site-packages"

    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=CACHE_ROOT))
    requirements = staging / "requirements.txt"
    uv = uv_executable()
    subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--format",
         "requirements-txt", "--output-file", str(requirements), "--quiet"],
        cwd=REPO_ROOT,
        check=True,
    )  # fmt: skip
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--require-hashes", "--no-deps", "--python", python,
         "--target", str(staging / "site-packages"), "--requirement", str(requirements)],
        cwd=REPO_ROOT,
        check=True,
    )  # fmt: skip

    for stale in CACHE_ROOT.glob(f"py{version}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:
        # Another test run finished the same folder first; its copy is as good as this one.
        shutil.rmtree(staging, ignore_errors=True)
    return target / "site-packages"


def assemble_task_root(task_root: Path, dependencies: Path, modules: list[str]) -> None:
    """Lay out the task root as the image does: dependencies, then the runtime modules."""
    task_root.mkdir()
    for entry in dependencies.iterdir():
        (task_root / entry.name).symlink_to(entry)
    for module in modules:
        destination = task_root / module
        if destination.exists():
            pytest.fail(f"Runtime module {module} has the name of an installed package's file")
        shutil.copy2(REPO_ROOT / module, destination)


def copy_runner(runner_root: Path) -> None:
    """Copy the invocation endpoint and the local_stack modules it imports to ``runner_root``.

    Modules outside local_stack, such as observability, come from the task root.
    """
    package = REPO_ROOT / "local_stack"
    needed = {package / "__init__.py"} | {
        path for path in repository_imports(INVOKE_SERVER) if path.parent == package
    }
    (runner_root / "local_stack").mkdir(parents=True)
    for path in needed:
        shutil.copy2(path, runner_root / "local_stack" / path.name)


def clean_environ(task_root: Path, runner_root: Path, **variables: str) -> dict[str, str]:
    """The environment of the clean interpreter: the task root and runner, nothing inherited."""
    return {
        "PATH": os.defpath,
        "HOME": str(task_root),
        "LAMBDA_TASK_ROOT": str(task_root),
        "PYTHONPATH": f"{task_root}{os.pathsep}{runner_root}",
        "PYTHONUNBUFFERED": "1",
        **LOCAL_CREDENTIALS,
        **variables,
    }


# -S: no site-packages (neither the dev environment's nor the interpreter's);
# -P: neither the working folder nor a script's folder on sys.path.
ISOLATED_FLAGS = ("-S", "-P")


@pytest.fixture(scope="module")
def dockerfile_text() -> str:
    return DOCKERFILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def task_python(dockerfile_text: str) -> str:
    return image_python(image_python_version(dockerfile_text))


@pytest.fixture(scope="module")
def lambda_task(
    tmp_path_factory: pytest.TempPathFactory, dockerfile_text: str, task_python: str
) -> tuple[Path, Path]:
    """The assembled task root and the runner folder beside it."""
    base = tmp_path_factory.mktemp("lambda")
    task_root, runner_root = base / "task", base / "runtime"
    assemble_task_root(
        task_root, locked_dependencies(task_python), runtime_modules(dockerfile_text)
    )
    copy_runner(runner_root)
    return task_root, runner_root


@pytest.fixture(scope="module")
def logged_model(
    tlc_mirror: Path, moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
):
    """A model trained on real rides and logged through MLflow to moto's S3."""
    import train  # pylint: disable=import-outside-toplevel

    endpoint = moto_server.endpoint_url
    create_bucket(client("s3", endpoint), MODEL_BUCKET)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint)
        return train.train_and_log(
            tracking_uri=f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}",
            artifact_root=f"s3://{MODEL_BUCKET}",
            mirror=tlc_mirror,
            max_rows=2000,
        )


@pytest.fixture
def endpoint_url(
    lambda_task: tuple[Path, Path], task_python: str, logged_model: Any, moto_server: MotoServer
) -> Iterator[str]:
    """Start the invocation endpoint from the task root; yield its invocation URL."""
    task_root, runner_root = lambda_task
    create_streams(client("kinesis", moto_server.endpoint_url), [PREDICTIONS_STREAM])
    environ = clean_environ(
        task_root,
        runner_root,
        RUN_ID=logged_model.run_id,
        MODEL_BUCKET=MODEL_BUCKET,
        MLFLOW_EXPERIMENT_ID=logged_model.experiment_id,
        PREDICTIONS_STREAM_NAME=PREDICTIONS_STREAM,
        TEST_RUN="False",
        AWS_ENDPOINT_URL=moto_server.endpoint_url,
        KINESIS_ENDPOINT_URL=moto_server.endpoint_url,
    )
    port = free_port()
    log_path = task_root.parent / "invoke-server.log"
    command = [task_python, *ISOLATED_FLAGS, "-m", "local_stack.invoke_server", "--port", str(port)]
    with (
        log_path.open("wb") as log_file,
        subprocess.Popen(
            command, cwd=task_root, env=environ, stdout=log_file, stderr=subprocess.STDOUT
        ) as process,
    ):
        try:
            try:
                wait_until_serving(f"http://{HOST}:{port}/", process, ENDPOINT_READY_SECONDS)
            except (RuntimeError, TimeoutError) as error:
                log = log_path.read_text(errors="replace")
                pytest.fail(f"{error}; the endpoint's log:\n{log}")
            yield f"http://{HOST}:{port}{INVOCATIONS_PATH}"
        finally:
            # Popen's exit waits for the process.
            process.terminate()


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _run_isolated(task_python: str, lambda_task: tuple[Path, Path], code: str) -> str:
    task_root, runner_root = lambda_task
    completed = subprocess.run(
        [task_python, *ISOLATED_FLAGS, "-c", code],
        cwd=task_root,
        env=clean_environ(task_root, runner_root),
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout


# --- Tests ---


def test_dockerfile_runtime_modules_are_repository_modules(dockerfile_text: str) -> None:
    # given
    modules = runtime_modules(dockerfile_text)

    # then
    assert modules
    assert [module for module in modules if not (REPO_ROOT / module).is_file()] == []
    assert [module for module in modules if Path(module).suffix != ".py"] == []


def test_dockerfile_runtime_modules_cover_handler_imports(dockerfile_text: str) -> None:
    # given
    listed = set(runtime_modules(dockerfile_text))

    # when
    imported = {
        str(path.relative_to(REPO_ROOT))
        for path in repository_imports(REPO_ROOT / "lambda_function.py")
    }

    # then
    assert sorted(imported - listed) == []


@pytest.mark.integration
def test_task_root_interpreter_is_isolated(
    task_python: str, lambda_task: tuple[Path, Path]
) -> None:
    # given: modules of the repository and the dev environment that the image does not have
    absent = ("tlc_data", "train", "batch", "mlflow", "pandas", "pytest", "moto")
    code = (
        "import importlib.util, sys\n"
        f"for name in {absent!r}:\n"
        "    print(name, importlib.util.find_spec(name) is not None)\n"
        "print(*sys.path, sep='\\n')\n"
    )

    # when
    lines = _run_isolated(task_python, lambda_task, code).splitlines()
    found = dict(line.split() for line in lines[: len(absent)])
    search_path = lines[len(absent) :]

    # then
    assert found == {name: "False" for name in absent}
    assert [entry for entry in search_path if entry.startswith(str(REPO_ROOT))] == []


@pytest.mark.integration
def test_task_root_serves_prediction(
    endpoint_url: str, logged_model: Any, moto_server: MotoServer
) -> None:
    # given
    import mlflow.sklearn  # pylint: disable=import-outside-toplevel

    ride = ride_event(ride_id=256, pickup=130, dropoff=205, distance=3.66)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_S3_ENDPOINT_URL", moto_server.endpoint_url)
        model = mlflow.sklearn.load_model(logged_model.run_artifact_model_uri)
    expected_duration = float(model.predict([{"PU_DO": "130_205", "trip_distance": 3.66}])[0])
    expected_response = {
        "predictions": [
            {
                "model": MODEL_NAME,
                "version": logged_model.run_id,
                "prediction": {"ride_duration": expected_duration, "ride_id": 256},
            }
        ],
        "batchItemFailures": [],
    }
    body = json.dumps(kinesis_event(encode(ride))).encode("utf-8")

    # when
    status, reply = _post(endpoint_url, body)

    # then
    assert status == 200, reply.decode(errors="replace")
    actual_response = json.loads(reply)
    assert not DeepDiff(
        expected_response, actual_response, math_epsilon=PREDICTION_TOLERANCE_MINUTES
    )
