"""Find the MLflow model the service runs, and load it once per container.

The location is the first of:

1. ``MODEL_LOCATION``: a local directory, ``s3://...``, ``runs:/...`` or ``models:/name@alias``;
2. ``MODEL_BUCKET`` + ``MLFLOW_EXPERIMENT_ID`` + ``RUN_ID``: the run's ``artifacts/model`` folder
   (the layout MLflow 2 wrote), and when that is empty, the MLflow 3 layout, where logged
   models live under ``{experiment_id}/models/<model_id>/artifacts`` and name their run.

Models of the ``sklearn`` flavour are read natively from their ``MLmodel`` file and pickle.
MLflow 3's ``pyfunc`` wrapper turns a list of dicts into a DataFrame, which a DictVectorizer
pipeline cannot read. Importing ``mlflow`` would also add most of a second to every cold
start. Other flavours, and ``runs:/`` or ``models:/`` URIs, go through MLflow itself.
Unpickling runs code from the artifact, so point these variables only at models you trust.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError

MLMODEL_FILE = "MLmodel"
DEFAULT_EXPERIMENT_ID = "1"
NATIVE_SERIALIZATION_FORMATS = frozenset({"pickle", "cloudpickle"})
# "user:password@" inside a URI, as HTTP client errors quote the URL they failed on.
_URI_CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")


class ModelLoadError(RuntimeError):
    """The model could not be found or loaded; the message names the location and endpoint."""


@dataclass(frozen=True)
class ModelSource:
    """A model location, and the run the model should come from when known."""

    location: str
    run_id: str | None = None
    bucket: str | None = None
    experiment_id: str | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to predict on a list of feature dicts, and where it came from."""

    model: Any
    version: str
    location: str
    flavor: str
    feature_names: tuple[str, ...] | None = None


def model_source_from_environ(environ: Mapping[str, str] = os.environ) -> ModelSource:
    """Choose the model location from ``MODEL_LOCATION``, or from ``RUN_ID`` and its bucket."""
    location = environ.get("MODEL_LOCATION", "").strip()
    run_id = environ.get("RUN_ID", "").strip() or None
    if location:
        return ModelSource(location=location, run_id=run_id)

    if run_id is None:
        raise ModelLoadError(
            "No model configured: set MODEL_LOCATION (a local directory, s3://..., runs:/... "
            "or models:/name@alias), or RUN_ID together with MODEL_BUCKET"
        )
    bucket = environ.get("MODEL_BUCKET", "").strip()
    if not bucket:
        raise ModelLoadError(
            f"RUN_ID is set to {run_id!r} but MODEL_BUCKET is not: set MODEL_BUCKET to the bucket "
            "of the MLflow artifact store, or set MODEL_LOCATION instead"
        )
    experiment_id = environ.get("MLFLOW_EXPERIMENT_ID", "").strip() or DEFAULT_EXPERIMENT_ID
    return ModelSource(
        location=f"s3://{bucket}/{experiment_id}/{run_id}/artifacts/model",
        run_id=run_id,
        bucket=bucket,
        experiment_id=experiment_id,
    )


def load_model(source: ModelSource, download_root: Path | None = None) -> LoadedModel:
    """Fetch the model folder when it is remote, then load it; raise :class:`ModelLoadError`."""
    download_root = download_root or Path(tempfile.mkdtemp(prefix="model-"))
    scheme = urlsplit(source.location).scheme

    if scheme == "s3":
        model_dir = _download_s3_model(source, download_root)
    elif scheme in ("", "file"):
        model_dir = Path(urlsplit(source.location).path if scheme else source.location)
    else:
        model_dir = _download_with_mlflow(source.location, download_root)

    return load_model_dir(model_dir, location=source.location, fallback_version=source.run_id)


def load_model_dir(
    model_dir: Path, location: str | None = None, fallback_version: str | None = None
) -> LoadedModel:
    """Load an MLflow model folder from the local file system."""
    location = location or str(model_dir)
    mlmodel_path = model_dir / MLMODEL_FILE
    if not mlmodel_path.is_file():
        raise ModelLoadError(
            f"No MLflow model at {redact(location)}: {MLMODEL_FILE} not found in {model_dir}"
        )
    try:
        mlmodel = yaml.safe_load(mlmodel_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ModelLoadError(f"Cannot read {mlmodel_path} of {redact(location)}: {error}") from None

    flavors = mlmodel.get("flavors", {})
    version = mlmodel.get("run_id") or fallback_version or mlmodel.get("model_id")
    if not version:
        raise ModelLoadError(
            f"The model at {redact(location)} names no run_id in {MLMODEL_FILE}; "
            "log it from an MLflow run, or set RUN_ID"
        )
    feature_names = _signature_input_names(mlmodel)

    sklearn_flavor = flavors.get("sklearn")
    if sklearn_flavor and _is_native_sklearn(sklearn_flavor):
        model = _unpickle(model_dir / sklearn_flavor["pickled_model"], sklearn_flavor, location)
        return LoadedModel(model, str(version), location, "sklearn", feature_names)
    if sklearn_flavor:
        model = _load_with_mlflow_sklearn(model_dir, location)
        return LoadedModel(model, str(version), location, "sklearn", feature_names)
    if "python_function" in flavors:
        model = _PyfuncModel(_load_with_mlflow_pyfunc(model_dir, location))
        return LoadedModel(model, str(version), location, "python_function", feature_names)
    raise ModelLoadError(
        f"The model at {redact(location)} has flavors {sorted(flavors)}; "
        "expected 'sklearn' or 'python_function'"
    )


def s3_endpoint_url(environ: Mapping[str, str] = os.environ) -> str | None:
    """Return the S3 endpoint override, in the order MLflow and the AWS SDKs read them."""
    for name in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def redact(uri: str) -> str:
    """Drop a user name and password from a URI, so that no error message carries a secret."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class _PyfuncModel:
    """Adapt an MLflow pyfunc model to the service's input: a list of feature dicts."""

    def __init__(self, pyfunc_model: Any) -> None:
        self.pyfunc_model = pyfunc_model

    def predict(self, features: list[dict[str, Any]]) -> Any:
        import pandas as pd  # pylint: disable=import-outside-toplevel

        return self.pyfunc_model.predict(pd.DataFrame(features))


def _download_s3_model(source: ModelSource, download_root: Path) -> Path:
    endpoint = s3_endpoint_url()
    s3_client = boto3.client("s3", endpoint_url=endpoint)
    bucket, prefix = _split_s3_uri(source.location)

    model_dir = _download_s3_prefix(s3_client, bucket, prefix, download_root / "model", endpoint)
    if model_dir is not None:
        return model_dir

    if source.run_id and source.bucket and source.experiment_id:
        model_prefix = _find_mlflow3_model_prefix(s3_client, source, endpoint)
        if model_prefix is not None:
            model_dir = _download_s3_prefix(
                s3_client, bucket, model_prefix, download_root / "model", endpoint
            )
            if model_dir is not None:
                return model_dir
        raise ModelLoadError(
            f"No model for run {source.run_id} in bucket {bucket!r} "
            f"(S3 endpoint {endpoint or 'AWS default'}): nothing under {source.location}, and no "
            f"model under s3://{bucket}/{source.experiment_id}/models/ names that run. "
            "Check RUN_ID, MODEL_BUCKET and MLFLOW_EXPERIMENT_ID"
        )
    raise ModelLoadError(
        f"No model at {source.location} (S3 endpoint {endpoint or 'AWS default'}): "
        "the prefix holds no objects. Check MODEL_LOCATION"
    )


def _download_s3_prefix(
    s3_client: Any, bucket: str, prefix: str, target: Path, endpoint: str | None
) -> Path | None:
    """Download every object under ``prefix``; return None when there is none."""
    prefix = prefix.rstrip("/") + "/"
    found = False
    try:
        for page in s3_client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix) :]
                if not relative or relative.endswith("/"):
                    continue
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                s3_client.download_file(bucket, item["Key"], str(destination))
                found = True
    except (ClientError, BotoCoreError) as error:
        raise ModelLoadError(
            f"Cannot read the model from s3://{bucket}/{prefix} "
            f"(S3 endpoint {endpoint or 'AWS default'}): {error}"
        ) from None
    return target if found else None


def _find_mlflow3_model_prefix(
    s3_client: Any, source: ModelSource, endpoint: str | None
) -> str | None:
    """Find the newest logged model of the run among ``{experiment_id}/models/*/artifacts``."""
    models_prefix = f"{source.experiment_id}/models/"
    matches: list[tuple[str, str]] = []
    try:
        pages = s3_client.get_paginator("list_objects_v2").paginate(
            Bucket=source.bucket, Prefix=models_prefix, Delimiter="/"
        )
        for page in pages:
            for common_prefix in page.get("CommonPrefixes", []):
                artifacts_prefix = common_prefix["Prefix"] + "artifacts"
                mlmodel = _read_s3_mlmodel(s3_client, source.bucket, artifacts_prefix)
                if mlmodel and mlmodel.get("run_id") == source.run_id:
                    matches.append((str(mlmodel.get("utc_time_created", "")), artifacts_prefix))
    except (ClientError, BotoCoreError) as error:
        raise ModelLoadError(
            f"Cannot list s3://{source.bucket}/{models_prefix} "
            f"(S3 endpoint {endpoint or 'AWS default'}): {error}"
        ) from None
    return max(matches)[1] if matches else None


def _read_s3_mlmodel(s3_client: Any, bucket: str, artifacts_prefix: str) -> dict[str, Any] | None:
    try:
        body = s3_client.get_object(Bucket=bucket, Key=f"{artifacts_prefix}/{MLMODEL_FILE}")["Body"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return yaml.safe_load(body.read())


def _download_with_mlflow(location: str, download_root: Path) -> Path:
    mlflow = _import_mlflow(location, "to resolve this location")
    try:
        return Path(
            mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(download_root))
        )
    except Exception as error:  # pylint: disable=broad-exception-caught
        # MLflow raises many types here (MlflowException, boto and HTTP errors); each one
        # means the same thing to the operator.
        tracking_uri = redact(mlflow.get_tracking_uri())
        raise ModelLoadError(
            f"Cannot download the model from {redact(location)} (tracking URI {tracking_uri}, "
            f"S3 endpoint {s3_endpoint_url() or 'AWS default'}): {type(error).__name__}: "
            f"{_first_line(error)}"
        ) from None


def _import_mlflow(location: str, purpose: str) -> Any:
    """Import MLflow with pandas, which its loaders need, or explain how to install them."""
    try:
        import mlflow  # pylint: disable=import-outside-toplevel
        import mlflow.pyfunc  # pylint: disable=import-outside-toplevel
        import pandas  # noqa: F401  # pylint: disable=import-outside-toplevel,unused-import
    except ImportError as error:
        raise ModelLoadError(
            f"The model at {redact(location)} needs MLflow {purpose}, and {error.name} is not "
            "installed: build the image with --build-arg MODEL_LOADERS=mlflow (or install the "
            "project's 'mlflow' extra), or point MODEL_LOCATION at the model's s3:// folder"
        ) from None
    return mlflow


def _is_native_sklearn(sklearn_flavor: Mapping[str, Any]) -> bool:
    return (
        sklearn_flavor.get("serialization_format", "pickle") in NATIVE_SERIALIZATION_FORMATS
        and not sklearn_flavor.get("code")
        and "pickled_model" in sklearn_flavor
    )


def _unpickle(path: Path, sklearn_flavor: Mapping[str, Any], location: str) -> Any:
    try:
        with path.open("rb") as model_file:
            if sklearn_flavor.get("serialization_format") == "cloudpickle":
                import cloudpickle  # pylint: disable=import-outside-toplevel

                return cloudpickle.load(model_file)
            return pickle.load(model_file)
    except Exception as error:  # pylint: disable=broad-exception-caught
        # Unpickling can raise anything the pickled classes raise, for example an
        # AttributeError when scikit-learn's version differs from the one that saved it.
        raise ModelLoadError(
            f"Cannot unpickle {path.name} of the model at {redact(location)} "
            f"(saved with scikit-learn {sklearn_flavor.get('sklearn_version', 'unknown')}): "
            f"{type(error).__name__}: {_first_line(error)}"
        ) from None


def _load_with_mlflow_sklearn(model_dir: Path, location: str) -> Any:
    _import_mlflow(location, "to load a scikit-learn model that is not pickled")
    try:
        from mlflow import sklearn as mlflow_sklearn  # pylint: disable=import-outside-toplevel

        return mlflow_sklearn.load_model(str(model_dir))
    except Exception as error:  # pylint: disable=broad-exception-caught
        raise ModelLoadError(
            f"Cannot load the sklearn model at {redact(location)}: {type(error).__name__}: "
            f"{_first_line(error)}"
        ) from None


def _load_with_mlflow_pyfunc(model_dir: Path, location: str) -> Any:
    mlflow = _import_mlflow(location, "to load a model of another flavour than sklearn")
    try:
        return mlflow.pyfunc.load_model(str(model_dir))
    except Exception as error:  # pylint: disable=broad-exception-caught
        raise ModelLoadError(
            f"Cannot load the pyfunc model at {redact(location)}: {type(error).__name__}: "
            f"{_first_line(error)}"
        ) from None


def _signature_input_names(mlmodel: Mapping[str, Any]) -> tuple[str, ...] | None:
    inputs = (mlmodel.get("signature") or {}).get("inputs")
    if not inputs:
        return None
    try:
        return tuple(column["name"] for column in json.loads(inputs) if "name" in column)
    except (TypeError, ValueError):
        return None


def _split_s3_uri(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if not parts.netloc:
        raise ModelLoadError(f"Invalid S3 URI {uri!r}: expected s3://bucket/prefix")
    return parts.netloc, parts.path.lstrip("/")


def _first_line(error: BaseException) -> str:
    """Return the first line of an error message, with any URI credentials removed."""
    text = _URI_CREDENTIALS.sub(r"\1", str(error).strip())
    return text.splitlines()[0] if text else "no message"
