"""Resolve ``models:/<name>@<alias>`` to the run id and artifact location a deployment sets.

The MLflow model registry decides which model serves: an alias such as ``production``
points at one registered model version. This script looks that version up on the tracking
server (MLFLOW_TRACKING_URI), finds where its artifacts are stored, checks that the
function's IAM role may read them, and prints::

    RUN_ID=<run id>
    MODEL_LOCATION=s3://<bucket>/<experiment id>/...
    MODEL_VERSION=<registered model version>

With ``--github-output`` the same values are appended to the file named by GITHUB_OUTPUT as
``run_id``, ``model_location`` and ``model_version``. The function then loads the model
straight from S3, so it needs no access to the tracking server.

Exit status: 0 on success, 1 when the alias cannot be resolved or points outside the
readable prefix, 2 for invalid arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from mlflow.exceptions import MlflowException
from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository
from mlflow.tracking import MlflowClient


class ModelResolutionError(RuntimeError):
    """The alias does not lead to model artifacts the function can read."""


@dataclass(frozen=True)
class ResolvedModel:
    """The registered model version an alias points at, and where its artifacts are."""

    run_id: str
    model_location: str
    model_version: str

    def as_lines(self) -> list[str]:
        return [
            f"RUN_ID={self.run_id}",
            f"MODEL_LOCATION={self.model_location}",
            f"MODEL_VERSION={self.model_version}",
        ]


def redact(uri: str) -> str:
    """Drop a user name and password from a URI, so that no message carries a secret."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=host))


def artifact_location(
    client: MlflowClient, tracking_uri: str, source: str, model_id: str | None
) -> str:
    """Return the storage URI of a model version's artifacts.

    MLflow 3 registers logged models: the version's source is ``models:/<model id>`` (and
    some client calls also fill ``model_id``). MLflow 2 versions have the run's artifact
    URI or a ``runs:/`` URI as source.
    """
    if not model_id and source.startswith("models:/"):
        reference = source.removeprefix("models:/")
        if "/" in reference or "@" in reference:
            raise ModelResolutionError(
                f"the model version's source {source} names another registered model, not a "
                "logged model; register the model from its run or its logged model instead"
            )
        model_id = reference
    if model_id:
        try:
            return client.get_logged_model(model_id).artifact_location
        except MlflowException as error:
            raise ModelResolutionError(
                f"cannot read the logged model {model_id}: {error.message}"
            ) from None
    if source.startswith("runs:/"):
        return RunsArtifactRepository.get_underlying_uri(source, tracking_uri)
    return source


def resolve_alias(
    tracking_uri: str, model_name: str, alias: str, model_bucket: str, experiment_id: str
) -> ResolvedModel:
    """Look the alias up and check its artifacts lie under s3://<bucket>/<experiment id>/."""
    client = MlflowClient(tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, alias)
    except MlflowException as error:
        raise ModelResolutionError(
            f"cannot resolve models:/{model_name}@{alias}: {error.message}. Check the registered "
            "model name and set the alias with MlflowClient.set_registered_model_alias "
            "(or train.py --register-name NAME --alias ALIAS)"
        ) from None

    location = artifact_location(
        client, tracking_uri, version.source, getattr(version, "model_id", None)
    ).rstrip("/")
    run_id = version.run_id
    if not run_id:
        raise ModelResolutionError(
            f"models:/{model_name}@{alias} (version {version.version}) names no run; the service "
            "reports the run id with each prediction, so register a model logged from a run"
        )

    readable_prefix = f"s3://{model_bucket}/{experiment_id}/"
    if not location.startswith(readable_prefix):
        raise ModelResolutionError(
            f"models:/{model_name}@{alias} (version {version.version}) stores its artifacts at "
            f"{location}, outside {readable_prefix}, the only prefix the function's role may read. "
            "Log the model to the experiment whose artifact root is that prefix, "
            "or change mlflow_experiment_id in the environment's tfvars"
        )
    return ResolvedModel(run_id=run_id, model_location=location, model_version=str(version.version))


def write_github_output(path: str, resolved: ResolvedModel) -> None:
    with open(path, "a", encoding="utf-8") as output:
        output.write(f"run_id={resolved.run_id}\n")
        output.write(f"model_location={resolved.model_location}\n")
        output.write(f"model_version={resolved.model_version}\n")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--model-name", required=True, help="registered model name")
    parser.add_argument("--alias", required=True, help="registry alias, for example production")
    parser.add_argument(
        "--model-bucket", required=True, help="model bucket (terraform output model_bucket_name)"
    )
    parser.add_argument(
        "--experiment-id",
        required=True,
        help="MLflow experiment whose prefix the function may read (tfvars mlflow_experiment_id)",
    )
    parser.add_argument(
        "--github-output",
        action="store_true",
        help="also append run_id, model_location and model_version to the GITHUB_OUTPUT file",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not tracking_uri:
        print(
            "MLFLOW_TRACKING_URI is not set: point it at the MLflow tracking server",
            file=sys.stderr,
        )
        return 2
    github_output = os.environ.get("GITHUB_OUTPUT", "")
    if arguments.github_output and not github_output:
        print("--github-output needs GITHUB_OUTPUT to name a file", file=sys.stderr)
        return 2

    try:
        resolved = resolve_alias(
            tracking_uri,
            arguments.model_name,
            arguments.alias,
            arguments.model_bucket,
            arguments.experiment_id,
        )
    except ModelResolutionError as error:
        print(f"error: {error} (tracking server {redact(tracking_uri)})", file=sys.stderr)
        return 1

    print("\n".join(resolved.as_lines()))
    if arguments.github_output:
        write_github_output(github_output, resolved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
