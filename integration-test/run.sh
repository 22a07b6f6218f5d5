#!/usr/bin/env bash
# Run the integration tests against the Lambda image and LocalStack, with Docker Compose.
#
# Builds the image unless LOCAL_IMAGE_NAME names one, then starts LocalStack and creates the
# bucket and the output stream. Trains a model on real TLC rides (TLC_MIRROR, else downloaded)
# and logs it to LocalStack's S3. Starts the image and runs the pytest tests of this folder
# against it. The containers are removed on exit, and their logs are printed when a step fails.
# Without a Docker engine, `uv run pytest integration-test` runs the same tests against moto
# and the local invocation endpoint instead.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "${SCRIPT_DIR}")
UV=${UV:-uv}

export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_DEFAULT_REGION=eu-west-1
export AWS_EC2_METADATA_DISABLED=true
export PREDICTIONS_STREAM_NAME=${PREDICTIONS_STREAM_NAME:-ride_predictions}
export MODEL_BUCKET=${MODEL_BUCKET:-stream-model-duration-models}
export LOCALSTACK_PORT=${LOCALSTACK_PORT:-4566}
export INVOKE_PORT=${INVOKE_PORT:-8080}
LOCALSTACK_URL="http://127.0.0.1:${LOCALSTACK_PORT}"
READY_TIMEOUT_SECONDS=120

COMPOSE=(docker compose --file "${SCRIPT_DIR}/docker-compose.yaml")
WORK_DIR=$(mktemp -d)

cleanup() {
    local status=$?
    if ((status != 0)); then
        echo "Integration tests failed (exit code ${status}); container logs follow." >&2
        "${COMPOSE[@]}" logs --no-color >&2 || true
    fi
    "${COMPOSE[@]}" down --volumes --remove-orphans >/dev/null 2>&1 || true
    rm -rf "${WORK_DIR}"
    exit "${status}"
}
trap cleanup EXIT

# Run a check every second until it succeeds; fail after READY_TIMEOUT_SECONDS.
wait_for() {
    local description=$1
    shift
    local deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            echo "error: ${description} not ready after ${READY_TIMEOUT_SECONDS} s" >&2
            return 1
        fi
        sleep 1
    done
    echo "${description} is ready"
}

localstack_ready() {
    local health
    health=$(curl --silent --fail "${LOCALSTACK_URL}/_localstack/health") || return 1
    local service
    for service in kinesis s3 sqs; do
        grep --quiet --extended-regexp "\"${service}\": ?\"(available|running)\"" <<<"${health}" \
            || return 1
    done
}

# Once the emulator listens, it returns an HTTP response to any request (404 for the root path).
endpoint_answers() {
    local status
    status=$(curl --silent --output /dev/null --write-out '%{http_code}' \
        "http://127.0.0.1:${INVOKE_PORT}/") || true
    [[ "${status}" != "000" ]]
}

json_field() {
    "${UV}" run --frozen python -c \
        'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

if [[ -z "${LOCAL_IMAGE_NAME:-}" ]]; then
    LOCAL_IMAGE_NAME="stream-model-duration:$(date -u +%Y-%m-%d-%H%M%S)"
    echo "LOCAL_IMAGE_NAME is not set: building ${LOCAL_IMAGE_NAME}"
    docker build --tag "${LOCAL_IMAGE_NAME}" "${REPO_ROOT}"
fi
export LOCAL_IMAGE_NAME
echo "Testing image ${LOCAL_IMAGE_NAME}"

"${COMPOSE[@]}" up --detach localstack
wait_for "LocalStack" localstack_ready

aws --endpoint-url "${LOCALSTACK_URL}" s3api create-bucket --bucket "${MODEL_BUCKET}" \
    --create-bucket-configuration "LocationConstraint=${AWS_DEFAULT_REGION}" >/dev/null
aws --endpoint-url "${LOCALSTACK_URL}" kinesis create-stream \
    --stream-name "${PREDICTIONS_STREAM_NAME}" --shard-count 1
aws --endpoint-url "${LOCALSTACK_URL}" kinesis wait stream-exists \
    --stream-name "${PREDICTIONS_STREAM_NAME}"

# The same training run as the Docker-free stack (integration-test/docker_free_stack.py).
cd "${REPO_ROOT}"
MLFLOW_S3_ENDPOINT_URL="${LOCALSTACK_URL}" "${UV}" run --frozen python train.py \
    --train-month 2022-01 --val-month 2022-02 --max-rows 3000 \
    --tracking-uri "sqlite:///${WORK_DIR}/mlflow.db" --artifact-root "s3://${MODEL_BUCKET}" \
    --output-json "${WORK_DIR}/training.json"
RUN_ID=$(json_field "${WORK_DIR}/training.json" run_id)
MLFLOW_EXPERIMENT_ID=$(json_field "${WORK_DIR}/training.json" experiment_id)
MODEL_URI=$(json_field "${WORK_DIR}/training.json" run_artifact_model_uri)
export RUN_ID MLFLOW_EXPERIMENT_ID MODEL_URI

"${COMPOSE[@]}" up --detach backend
wait_for "The image's invocation endpoint" endpoint_answers

INVOKE_URL="http://127.0.0.1:${INVOKE_PORT}/2015-03-31/functions/function/invocations" \
    KINESIS_ENDPOINT_URL="${LOCALSTACK_URL}" \
    MLFLOW_S3_ENDPOINT_URL="${LOCALSTACK_URL}" \
    "${UV}" run --frozen pytest integration-test --verbose
