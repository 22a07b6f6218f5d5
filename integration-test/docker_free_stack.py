"""The integration tests' stack without Docker: moto, a model in its S3, the local endpoint.

It replaces ``run.sh`` and ``docker-compose.yaml`` where Docker is missing: moto runs in
place of LocalStack, and ``local_stack.invoke_server`` in a subprocess in place of the
container, with the environment the container gets. The model is trained on real TLC rows
(``TLC_MIRROR``, else downloaded) and logged through MLflow to moto's S3, where ``RUN_ID``,
``MODEL_BUCKET`` and ``MLFLOW_EXPERIMENT_ID`` find it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from local_stack.aws import LOCAL_CREDENTIALS, client, create_bucket, create_streams
from local_stack.invoke_server import INVOCATIONS_PATH, wait_until_serving
from local_stack.moto_server import HOST, MotoServer, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]

MODEL_BUCKET = "stream-model-duration-models"
PREDICTIONS_STREAM_NAME = "ride_predictions"
# The same training run as run.sh: a few thousand real rides are enough for a model whose
# predictions the tests can recompute, and keep training to seconds.
TRAIN_MONTH = "2022-01"
VAL_MONTH = "2022-02"
MAX_TRAINING_ROWS = 3000

ENDPOINT_READY_SECONDS = 120.0


@contextlib.contextmanager
def docker_free_stack(work_dir: Path) -> Iterator[dict[str, str]]:
    """Start the stack and yield the variables that ``run.sh`` exports for the tests."""
    with MotoServer(port=0, log_path=work_dir / "moto.log") as moto:
        endpoint = moto.endpoint_url
        create_bucket(client("s3", endpoint), MODEL_BUCKET)
        create_streams(client("kinesis", endpoint), [PREDICTIONS_STREAM_NAME])
        training = log_model(endpoint, work_dir)

        service_environ = {
            "PATH": os.environ.get("PATH", os.defpath),
            "PYTHONUNBUFFERED": "1",
            **LOCAL_CREDENTIALS,
            "PREDICTIONS_STREAM_NAME": PREDICTIONS_STREAM_NAME,
            "RUN_ID": training.run_id,
            "MODEL_BUCKET": MODEL_BUCKET,
            "MLFLOW_EXPERIMENT_ID": training.experiment_id,
            "TEST_RUN": "False",
            "AWS_ENDPOINT_URL": endpoint,
            "KINESIS_ENDPOINT_URL": endpoint,
        }
        port = free_port()
        with endpoint_process(port, service_environ, work_dir / "invoke-server.log"):
            yield {
                "INVOKE_URL": f"http://{HOST}:{port}{INVOCATIONS_PATH}",
                "KINESIS_ENDPOINT_URL": endpoint,
                "PREDICTIONS_STREAM_NAME": PREDICTIONS_STREAM_NAME,
                "RUN_ID": training.run_id,
                "MODEL_URI": training.run_artifact_model_uri,
                "MLFLOW_S3_ENDPOINT_URL": endpoint,
            }


def log_model(s3_endpoint_url: str, work_dir: Path):
    """Train on real rides and log the model to the bucket; return ``train.TrainingResult``."""
    # Imported here: MLflow takes seconds to import, and only the Docker-free path needs it.
    import train  # pylint: disable=import-outside-toplevel

    with environment({**LOCAL_CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint_url}):
        return train.train_and_log(
            train_month=TRAIN_MONTH,
            val_month=VAL_MONTH,
            tracking_uri=f"sqlite:///{work_dir / 'mlflow.db'}",
            artifact_root=f"s3://{MODEL_BUCKET}",
            max_rows=MAX_TRAINING_ROWS,
            data_dir=REPO_ROOT / "data",
        )


@contextlib.contextmanager
def endpoint_process(port: int, environ: Mapping[str, str], log_path: Path) -> Iterator[None]:
    """Run ``local_stack.invoke_server`` on ``port`` until the block ends."""
    command = [sys.executable, "-m", "local_stack.invoke_server", "--port", str(port)]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=dict(environ), stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            try:
                wait_until_serving(f"http://{HOST}:{port}/", process, ENDPOINT_READY_SECONDS)
            except (RuntimeError, TimeoutError) as error:
                log = log_path.read_text(errors="replace")
                raise RuntimeError(f"{error}; the endpoint's log ({log_path}):\n{log}") from None
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@contextlib.contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block and restore the previous values after it."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
