"""Model location resolution and loading, with real MLflow stores and a real moto S3."""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline

from local_stack.aws import create_bucket
from model_loading import (
    ModelLoadError,
    ModelSource,
    load_model,
    load_model_dir,
    model_source_from_environ,
    redact,
)

FEATURES = [
    {"PU_DO": "130_205", "trip_distance": 3.66},
    {"PU_DO": "74_75", "trip_distance": 1.1},
    {"PU_DO": "41_42", "trip_distance": 0.9},
    {"PU_DO": "130_205", "trip_distance": 2.0},
]
DURATIONS = [18.0, 6.0, 5.0, 11.0]
REQUIREMENTS = ["scikit-learn"]


def fitted_pipeline():
    return make_pipeline(DictVectorizer(), LinearRegression()).fit(FEATURES, DURATIONS)


class MeanModel(mlflow.pyfunc.PythonModel):  # pylint: disable=abstract-method
    """A non-sklearn flavour: predicts the distance times ten from a DataFrame."""

    def predict(self, context, model_input, params=None):
        return (model_input["trip_distance"] * 10).tolist()


@pytest.fixture
def local_model_dir(tmp_path) -> Path:
    model_dir = tmp_path / "model"
    mlflow.sklearn.save_model(
        fitted_pipeline(),
        model_dir,
        pip_requirements=REQUIREMENTS,
        serialization_format="cloudpickle",
    )
    return model_dir


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture
def s3_env(monkeypatch, moto_endpoint, s3_client):
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", moto_endpoint)
    return s3_client


def upload_dir(s3_client, local_dir: Path, bucket: str, prefix: str) -> None:
    for path in local_dir.rglob("*"):
        if path.is_file():
            s3_client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(local_dir)}")


def set_run_id(model_dir: Path, run_id: str) -> None:
    mlmodel = model_dir / "MLmodel"
    mlmodel.write_text(mlmodel.read_text() + f"run_id: {run_id}\n")


# --- location resolution ---------------------------------------------------------------


def test_model_source_prefers_model_location():
    environ = {"MODEL_LOCATION": "s3://b/m", "RUN_ID": "r1", "MODEL_BUCKET": "other"}

    assert model_source_from_environ(environ) == ModelSource(location="s3://b/m", run_id="r1")


def test_model_source_reference_layout_from_run_id():
    environ = {"RUN_ID": "r1", "MODEL_BUCKET": "models", "MLFLOW_EXPERIMENT_ID": "7"}

    assert model_source_from_environ(environ) == ModelSource(
        location="s3://models/7/r1/artifacts/model", run_id="r1", bucket="models", experiment_id="7"
    )


def test_model_source_experiment_defaults_to_1():
    source = model_source_from_environ({"RUN_ID": "r1", "MODEL_BUCKET": "models"})

    assert source.location == "s3://models/1/r1/artifacts/model"


def test_model_source_nothing_configured():
    with pytest.raises(ModelLoadError) as raised:
        model_source_from_environ({})

    assert str(raised.value) == (
        "No model configured: set MODEL_LOCATION (a local directory, s3://..., runs:/... or "
        "models:/name@alias), or RUN_ID together with MODEL_BUCKET"
    )


def test_model_source_run_id_without_bucket():
    with pytest.raises(ModelLoadError) as raised:
        model_source_from_environ({"RUN_ID": "r1"})

    assert str(raised.value) == (
        "RUN_ID is set to 'r1' but MODEL_BUCKET is not: set MODEL_BUCKET to the bucket of the "
        "MLflow artifact store, or set MODEL_LOCATION instead"
    )


def test_redact_removes_credentials():
    assert (
        redact("https://alice:s3cret@mlflow.example.com:5000/x")
        == "https://mlflow.example.com:5000/x"
    )
    assert redact("s3://bucket/key") == "s3://bucket/key"


# --- loading -----------------------------------------------------------------------------


def test_load_local_dir_native_sklearn(local_model_dir):
    loaded = load_model(ModelSource(location=str(local_model_dir), run_id="run-from-env"))

    assert loaded.flavor == "sklearn"
    assert loaded.version == "run-from-env"
    assert list(loaded.model.predict(FEATURES)) == pytest.approx(
        fitted_pipeline().predict(FEATURES)
    )


def test_load_local_dir_version_is_logged_run_id(local_model_dir):
    set_run_id(local_model_dir, "abc123")

    loaded = load_model(ModelSource(location=str(local_model_dir), run_id="ignored"))

    assert loaded.version == "abc123"


def test_load_mlflow2_layout_by_run_id(s3_env, local_model_dir):
    create_bucket(s3_env, "models-v2")
    set_run_id(local_model_dir, "run2")
    upload_dir(s3_env, local_model_dir, "models-v2", "1/run2/artifacts/model")
    environ = {"RUN_ID": "run2", "MODEL_BUCKET": "models-v2", "MLFLOW_EXPERIMENT_ID": "1"}

    loaded = load_model(model_source_from_environ(environ))

    assert loaded.version == "run2"
    assert loaded.location == "s3://models-v2/1/run2/artifacts/model"
    assert list(loaded.model.predict(FEATURES)) == pytest.approx(
        fitted_pipeline().predict(FEATURES)
    )


def test_load_mlflow3_layout_by_run_id(s3_env, tracking_uri):
    create_bucket(s3_env, "models-v3")
    experiment_id = mlflow.create_experiment("v3", artifact_location="s3://models-v3/5")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.sklearn.log_model(
            fitted_pipeline(),
            name="model",
            pip_requirements=REQUIREMENTS,
            serialization_format="cloudpickle",
        )
    environ = {"RUN_ID": run.info.run_id, "MODEL_BUCKET": "models-v3", "MLFLOW_EXPERIMENT_ID": "5"}

    loaded = load_model(model_source_from_environ(environ))

    assert loaded.version == run.info.run_id
    assert list(loaded.model.predict(FEATURES)) == pytest.approx(
        fitted_pipeline().predict(FEATURES)
    )


def test_load_runs_and_models_uris(tracking_uri, tmp_path):
    experiment_id = mlflow.create_experiment("uris", artifact_location=str(tmp_path / "artifacts"))
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(
            fitted_pipeline(),
            name="model",
            pip_requirements=REQUIREMENTS,
            registered_model_name="ride-duration",
        )
    client = mlflow.MlflowClient(tracking_uri)
    client.set_registered_model_alias("ride-duration", "champion", info.registered_model_version)

    by_model_uri = load_model(ModelSource(location=info.model_uri))
    by_alias = load_model(ModelSource(location="models:/ride-duration@champion"))

    assert by_model_uri.version == run.info.run_id
    assert by_alias.version == run.info.run_id
    assert list(by_alias.model.predict(FEATURES)) == pytest.approx(
        fitted_pipeline().predict(FEATURES)
    )


def test_load_pyfunc_flavour_takes_feature_dicts(tmp_path):
    model_dir = tmp_path / "pyfunc"
    mlflow.pyfunc.save_model(model_dir, python_model=MeanModel(), pip_requirements=["pandas"])

    loaded = load_model(ModelSource(location=str(model_dir), run_id="pyfunc-run"))

    assert loaded.flavor == "python_function"
    assert list(loaded.model.predict(FEATURES[:2])) == pytest.approx([36.6, 11.0])


def test_load_missing_bucket_names_location_and_endpoint(s3_env, moto_endpoint):
    source = model_source_from_environ({"RUN_ID": "r9", "MODEL_BUCKET": "no-such-bucket"})

    with pytest.raises(ModelLoadError) as raised:
        load_model(source)

    message = str(raised.value)
    assert "s3://no-such-bucket/1/r9/artifacts/model/" in message
    assert f"S3 endpoint {moto_endpoint}" in message
    assert "NoSuchBucket" in message


def test_load_run_without_model_names_both_layouts(s3_env, moto_endpoint):
    create_bucket(s3_env, "empty-models")
    source = model_source_from_environ({"RUN_ID": "r9", "MODEL_BUCKET": "empty-models"})

    with pytest.raises(ModelLoadError) as raised:
        load_model(source)

    assert str(raised.value) == (
        f"No model for run r9 in bucket 'empty-models' (S3 endpoint {moto_endpoint}): nothing "
        "under s3://empty-models/1/r9/artifacts/model, and no model under "
        "s3://empty-models/1/models/ names that run. Check RUN_ID, MODEL_BUCKET and "
        "MLFLOW_EXPERIMENT_ID"
    )


def test_load_local_dir_without_mlmodel(tmp_path):
    with pytest.raises(ModelLoadError, match=r"No MLflow model at .*: MLmodel not found"):
        load_model(ModelSource(location=str(tmp_path)))


def test_load_corrupt_pickle_fails_with_one_error(local_model_dir):
    (local_model_dir / "model.pkl").write_bytes(b"not a pickle")

    with pytest.raises(
        ModelLoadError, match=r"Cannot unpickle model.pkl of the model at .*UnpicklingError"
    ):
        load_model_dir(local_model_dir, fallback_version="v")


def test_load_tracking_uri_password_not_leaked(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://bob:hunter2@127.0.0.1:9/")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")

    with pytest.raises(ModelLoadError) as raised:
        load_model(ModelSource(location="models:/ride-duration@champion"))

    assert "hunter2" not in str(raised.value)
    assert "tracking URI http://127.0.0.1:9/" in str(raised.value)


def test_load_reads_signature_feature_names(tmp_path):
    model_dir = tmp_path / "signed"
    signature = mlflow.models.infer_signature(
        [{"PU_DO": "130_205", "trip_distance": 3.66}][0], [18.0]
    )
    mlflow.sklearn.save_model(
        fitted_pipeline(), model_dir, pip_requirements=REQUIREMENTS, signature=signature
    )

    loaded = load_model_dir(model_dir, fallback_version="v")

    assert loaded.feature_names == ("PU_DO", "trip_distance")


def test_load_without_mlflow_explains_the_extra(monkeypatch):
    # given: an environment without MLflow, as the default image is (a None entry in
    # sys.modules makes the import fail)
    monkeypatch.setitem(sys.modules, "mlflow", None)

    # when
    with pytest.raises(ModelLoadError) as raised:
        load_model(ModelSource(location="models:/ride-duration@champion"))

    # then
    assert str(raised.value) == (
        "The model at models:/ride-duration@champion needs MLflow to resolve this location, and "
        "mlflow is not installed: build the image with --build-arg MODEL_LOADERS=mlflow (or "
        "install the project's 'mlflow' extra), or point MODEL_LOCATION at the model's s3:// "
        "folder"
    )
