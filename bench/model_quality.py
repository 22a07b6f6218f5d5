"""Section 6: validation RMSE of the shipped recipe against the course's two models.

Every model is fit on green 2022-01 and scored on green 2022-02, on trips of 1 to 60
minutes, with the features the service sends (``PU_DO`` and ``trip_distance`` as feature
dicts). The predict cost is the median time of one ``predict`` call on 1,000 validation rows
on one thread (OpenMP limited with threadpoolctl, the forest with ``n_jobs=1``), the models
measured in interleaved rounds.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, root_mean_squared_error
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

import tlc_data
import train
from bench.common import TRAIN_MONTH, VALIDATION_MONTH, median, section_main, time_call, trip_file

PREDICT_ROWS = 1_000
PREDICT_ROUNDS = 21
RANDOM_STATE = 1
COURSE_REFERENCE_RMSE = {"linear_regression": 6.90, "course_random_forest": 6.10}


def load_features(year: int, month: int) -> tuple[list[dict[str, Any]], Any]:
    trips = tlc_data.read_trips(trip_file(year, month))
    return tlc_data.ride_features(trips), trips["duration"].to_numpy()


def candidate_models() -> dict[str, Any]:
    """Build the shipped recipe and the course's linear regression and random forest."""
    return {
        "shipped_recipe": train.build_pipeline(),
        "linear_regression": make_pipeline(DictVectorizer(), LinearRegression()),
        "course_random_forest": make_pipeline(
            DictVectorizer(),
            RandomForestRegressor(
                n_estimators=100,
                max_depth=20,
                min_samples_leaf=10,
                random_state=RANDOM_STATE,
                n_jobs=-1,
            ),
        ),
    }


def measure() -> dict[str, Any]:
    train_features, train_target = load_features(*TRAIN_MONTH)
    validation_features, validation_target = load_features(*VALIDATION_MONTH)
    models = candidate_models()

    results: dict[str, dict[str, Any]] = {}
    for name, pipeline in models.items():
        started = time.perf_counter()
        pipeline.fit(train_features, train_target)
        fit_seconds = time.perf_counter() - started
        predictions = pipeline.predict(validation_features)
        results[name] = {
            "rmse_minutes": round(
                float(root_mean_squared_error(validation_target, predictions)), 3
            ),
            "mae_minutes": round(float(mean_absolute_error(validation_target, predictions)), 3),
            "fit_seconds": round(fit_seconds, 1),
        }

    models["course_random_forest"].set_params(randomforestregressor__n_jobs=1)
    batch = validation_features[:PREDICT_ROWS]
    timings: dict[str, list[float]] = {name: [] for name in models}
    with threadpool_limits(limits=1):
        for pipeline in models.values():
            pipeline.predict(batch)
        for _ in range(PREDICT_ROUNDS):
            for name, pipeline in models.items():
                timings[name].append(time_call(lambda pipeline=pipeline: pipeline.predict(batch)))
    for name, values in timings.items():
        results[name]["predict_1000_rows_ms"] = round(median(values) * 1000, 2)

    return {
        "train_month": f"{TRAIN_MONTH[0]}-{TRAIN_MONTH[1]:02d}",
        "validation_month": f"{VALIDATION_MONTH[0]}-{VALIDATION_MONTH[1]:02d}",
        "train_rows": len(train_features),
        "validation_rows": len(validation_features),
        "models": results,
        "course_reference_rmse": COURSE_REFERENCE_RMSE,
        "predict_rounds": PREDICT_ROUNDS,
    }


if __name__ == "__main__":
    sys.exit(section_main("model_quality", measure))
