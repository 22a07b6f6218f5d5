"""The model every section serves: ``train.py``'s recipe on green 2022-01, cached under build/.

The cache key is the SHA-256 of ``train.py`` and the installed scikit-learn version, so a
changed recipe, or a scikit-learn that may not read the old pickle, trains again. Training
goes through ``train.train_and_log`` with a SQLite tracking store and a local artifact root,
so the model folder is exactly what ``train.py`` logs (``MLmodel`` with the run id, and the
cloudpickled pipeline).

Run ``python -m bench.trained_model`` to train (or find) it and print its manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import BUILD_DIR, COLOR, REPO_ROOT, TRAIN_MONTH, VALIDATION_MONTH, write_json

MODEL_CACHE_DIR = BUILD_DIR / "model"


@dataclass(frozen=True)
class TrainedModel:
    """Location of the cached model, and the metrics training reported."""

    key: str
    run_id: str
    experiment_id: str
    model_dir: Path
    rmse: float

    @property
    def pickle_path(self) -> Path:
        """The pickled pipeline inside the MLflow model folder."""
        return self.model_dir / "model.pkl"


def cache_key() -> str:
    """Return the cache key: a hash of train.py and the scikit-learn version."""
    digest = hashlib.sha256((REPO_ROOT / "train.py").read_bytes())
    digest.update(version("scikit-learn").encode())
    return digest.hexdigest()[:16]


def manifest_path(key: str | None = None) -> Path:
    return MODEL_CACHE_DIR / (key or cache_key()) / "manifest.json"


def load_trained_model() -> TrainedModel:
    """Read the manifest of the current cache key; raise when the model was not trained yet."""
    path = manifest_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"No benchmark model at {path}: run `python -m bench.trained_model` first"
        )
    manifest = json.loads(path.read_text(encoding="utf-8"))
    return TrainedModel(
        key=manifest["key"],
        run_id=manifest["run_id"],
        experiment_id=manifest["experiment_id"],
        model_dir=Path(manifest["model_dir"]),
        rmse=manifest["rmse"],
    )


def ensure_trained_model() -> TrainedModel:
    """Return the cached model, training it first when the cache has none for this key."""
    key = cache_key()
    if manifest_path(key).is_file():
        return load_trained_model()

    # Imported here: MLflow takes seconds to import, and only training needs it.
    import train  # pylint: disable=import-outside-toplevel

    # The per-file progress bar of the model copy would fill the section's log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    folder = MODEL_CACHE_DIR / key
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mlflow.db").unlink(missing_ok=True)
    result = train.train_and_log(
        train_month=f"{TRAIN_MONTH[0]}-{TRAIN_MONTH[1]:02d}",
        val_month=f"{VALIDATION_MONTH[0]}-{VALIDATION_MONTH[1]:02d}",
        color=COLOR,
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        artifact_root=str(folder / "artifacts"),
        data_dir=REPO_ROOT / "data",
    )
    model_dir = Path(urlsplit(result.run_artifact_model_uri).path)
    write_json(
        manifest_path(key),
        {
            "key": key,
            "run_id": result.run_id,
            "experiment_id": result.experiment_id,
            "model_dir": str(model_dir),
            "rmse": result.rmse,
        },
    )
    return load_trained_model()


def main() -> int:
    trained = ensure_trained_model()
    print(f"model {trained.model_dir} (run {trained.run_id}, validation RMSE {trained.rmse:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
