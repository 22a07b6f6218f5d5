#!/usr/bin/env bash
# Deploy an image and/or a model to the prediction function, waiting for each update.
#
# Usage: scripts/deploy.sh --function NAME [--image REPOSITORY_URL@sha256:DIGEST]
#                          [--run-id RUN_ID] [--model-location URI] [--region REGION]
#
#   --function        function name (env LAMBDA_FUNCTION_NAME; terraform output lambda_function_name)
#   --image           image by digest, as printed by scripts/publish.sh (env IMAGE_URI)
#   --run-id          MLflow run id of the model; becomes RUN_ID (env MODEL_RUN_ID)
#   --model-location  where the model's artifacts are; becomes MODEL_LOCATION (env MODEL_LOCATION)
#   --region          AWS region (env AWS_REGION, then AWS_DEFAULT_REGION)
#
# Give --image, a model (--run-id and/or --model-location), or both. The image goes
# first: update-function-code, then `aws lambda wait function-updated` until
# LastUpdateStatus leaves InProgress, and the script fails unless it is Successful.
# The model change merges RUN_ID and MODEL_LOCATION into the function's current
# environment, so the variables Terraform set stay as they are, then waits the same way.
set -euo pipefail

log() {
  printf 'deploy: %s\n' "$*" >&2
}

fail() {
  printf 'deploy: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

function_name="${LAMBDA_FUNCTION_NAME:-}"
image_uri="${IMAGE_URI:-}"
run_id="${MODEL_RUN_ID:-}"
model_location="${MODEL_LOCATION:-}"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --function) function_name="${2:?--function needs a value}"; shift 2 ;;
    --image) image_uri="${2:?--image needs a value}"; shift 2 ;;
    --run-id) run_id="${2:?--run-id needs a value}"; shift 2 ;;
    --model-location) model_location="${2:?--model-location needs a value}"; shift 2 ;;
    --region) region="${2:?--region needs a value}"; shift 2 ;;
    -h | --help) usage ;;
    *) printf 'deploy: error: unknown argument %s\n' "$1" >&2; usage ;;
  esac
done

[[ -n "$function_name" ]] || fail "no function given: pass --function NAME or set LAMBDA_FUNCTION_NAME"
[[ -n "$region" ]] || fail "no region given: pass --region or set AWS_REGION"
if [[ -z "$image_uri" && -z "$run_id" && -z "$model_location" ]]; then
  fail "nothing to deploy: pass --image, --run-id/--model-location, or both"
fi
if [[ -n "$image_uri" && ! "$image_uri" =~ ^[^@]+@sha256:[0-9a-f]{64}$ ]]; then
  fail "--image $image_uri is not an image by digest (REPOSITORY_URL@sha256:<64 hex digits>); a tag can move, so the deployment would not name exactly one image"
fi

command -v aws >/dev/null 2>&1 || fail "aws not found on PATH: install the AWS CLI"
command -v jq >/dev/null 2>&1 || fail "jq not found on PATH: install jq to merge the function's environment"

# Waits for the update in progress, then checks how it ended: the waiter also
# returns when an update failed, and a failed update leaves the old code running.
wait_for_update() {
  local what="$1" status reason
  log "waiting for the $what update of $function_name"
  if ! aws lambda wait function-updated --region "$region" --function-name "$function_name"; then
    log "the waiter stopped before the update finished; reading its status"
  fi
  status="$(aws lambda get-function-configuration --region "$region" --function-name "$function_name" \
    --query 'LastUpdateStatus' --output text)"
  if [[ "$status" != "Successful" ]]; then
    reason="$(aws lambda get-function-configuration --region "$region" --function-name "$function_name" \
      --query 'LastUpdateStatusReason' --output text)"
    fail "the $what update of $function_name ended with LastUpdateStatus=$status: $reason"
  fi
  log "the $what update of $function_name is live (LastUpdateStatus=Successful)"
}

if ! lookup_error="$(aws lambda get-function-configuration --region "$region" \
  --function-name "$function_name" --query 'FunctionName' --output text 2>&1 >/dev/null)"; then
  if [[ "$lookup_error" == *ResourceNotFoundException* ]]; then
    fail "function $function_name not found in $region: create it with make tf_apply ENV=<stg|prod> (terraform output lambda_function_name names it)"
  fi
  fail "cannot read function $function_name in $region: $lookup_error"
fi

# An update started while another is in progress fails with ResourceConflictException.
wait_for_update "previous"

if [[ -n "$image_uri" ]]; then
  log "deploying image $image_uri to $function_name"
  aws lambda update-function-code --region "$region" --function-name "$function_name" \
    --image-uri "$image_uri" --query 'LastUpdateStatus' --output text >/dev/null
  wait_for_update "image"

  deployed_image="$(aws lambda get-function --region "$region" --function-name "$function_name" \
    --query 'Code.ImageUri' --output text)"
  [[ "$deployed_image" == "$image_uri" ]] ||
    fail "$function_name reports image $deployed_image after the update, expected $image_uri"
fi

if [[ -n "$run_id" || -n "$model_location" ]]; then
  current_variables="$(aws lambda get-function-configuration --region "$region" \
    --function-name "$function_name" --query 'Environment.Variables' --output json)"
  environment_json="$(jq -c \
    --arg run_id "$run_id" --arg model_location "$model_location" '
      (. // {})
      | if $run_id != "" then .RUN_ID = $run_id else . end
      | if $model_location != "" then .MODEL_LOCATION = $model_location else . end
      | {Variables: .}' <<<"$current_variables")"

  log "pointing $function_name at the model RUN_ID=${run_id:-<unchanged>} MODEL_LOCATION=${model_location:-<unchanged>}"
  aws lambda update-function-configuration --region "$region" --function-name "$function_name" \
    --environment "$environment_json" --query 'LastUpdateStatus' --output text >/dev/null
  wait_for_update "environment"
fi

log "deployment of $function_name finished"
