#!/usr/bin/env bash
# Smoke-test a deployed environment: put one ride on the input stream and wait for
# its prediction on the output stream.
#
# Usage: scripts/test_cloud_e2e.sh
#
# Environment:
#   INPUT_STREAM_NAME   input stream, e.g. stg_ride_events (terraform output input_stream_name)
#   OUTPUT_STREAM_NAME  output stream, e.g. stg_ride_predictions (terraform output output_stream_name)
#   AWS_REGION          region of the streams (or AWS_DEFAULT_REGION)
#   TIMEOUT_SECONDS     how long to wait for the prediction (default 120; a cold start loads the model)
#   RIDE_ID             ride id to send (default: e2e-<UTC time>-<random>, unique per run)
#
# The script opens a LATEST shard iterator on every output shard before it puts the
# ride, so it reads only records written after that moment, and matches the
# prediction by ride_id. It prints the prediction and exits with 0, or exits with 1
# when the time runs out.
set -euo pipefail

log() {
  printf 'e2e: %s\n' "$*" >&2
}

fail() {
  printf 'e2e: error: %s\n' "$*" >&2
  exit 1
}

input_stream="${INPUT_STREAM_NAME:-}"
output_stream="${OUTPUT_STREAM_NAME:-}"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
timeout_seconds="${TIMEOUT_SECONDS:-120}"
ride_id="${RIDE_ID:-e2e-$(date -u +%Y%m%dT%H%M%SZ)-${RANDOM}}"
# get-records may be called 5 times per second per shard; one poll a second stays well below.
poll_interval_seconds=1

[[ -n "$input_stream" ]] || fail "INPUT_STREAM_NAME is not set: use terraform -chdir=infrastructure output -raw input_stream_name"
[[ -n "$output_stream" ]] || fail "OUTPUT_STREAM_NAME is not set: use terraform -chdir=infrastructure output -raw output_stream_name"
[[ -n "$region" ]] || fail "AWS_REGION is not set"
[[ "$timeout_seconds" =~ ^[1-9][0-9]*$ ]] || fail "TIMEOUT_SECONDS=$timeout_seconds is not a positive whole number of seconds"
command -v aws >/dev/null 2>&1 || fail "aws not found on PATH: install the AWS CLI"
command -v jq >/dev/null 2>&1 || fail "jq not found on PATH: install jq to read the predictions"

# AWS CLI v2 base64-decodes blob arguments unless --cli-binary-format marks them as raw
# text. v1 has no such option and always sends them as given.
binary_format_args=()
if [[ "$(aws --version 2>&1)" == aws-cli/2.* ]]; then
  binary_format_args=(--cli-binary-format raw-in-base64-out)
fi

mapfile -t shard_ids < <(aws kinesis list-shards --region "$region" --stream-name "$output_stream" \
  --query 'Shards[].ShardId' --output text | tr '\t' '\n')
[[ ${#shard_ids[@]} -gt 0 && -n "${shard_ids[0]}" ]] || fail "output stream $output_stream has no shards"

shard_iterators=()
for shard_id in "${shard_ids[@]}"; do
  shard_iterators+=("$(aws kinesis get-shard-iterator --region "$region" --stream-name "$output_stream" \
    --shard-id "$shard_id" --shard-iterator-type LATEST --query 'ShardIterator' --output text)")
done

ride_event="$(jq -cn --arg ride_id "$ride_id" \
  '{ride: {PULocationID: 130, DOLocationID: 205, trip_distance: 3.66}, ride_id: $ride_id}')"
sequence_number="$(aws kinesis put-record --region "$region" --stream-name "$input_stream" \
  --partition-key "$ride_id" --data "$ride_event" "${binary_format_args[@]}" \
  --query 'SequenceNumber' --output text)"
log "put ride $ride_id on $input_stream (sequence number $sequence_number); waiting up to ${timeout_seconds}s on $output_stream"

deadline=$((SECONDS + timeout_seconds))
while ((SECONDS < deadline)); do
  for index in "${!shard_iterators[@]}"; do
    iterator="${shard_iterators[$index]}"
    # A closed shard (after a resharding) returns no next iterator.
    [[ -n "$iterator" && "$iterator" != "None" && "$iterator" != "null" ]] || continue

    response="$(aws kinesis get-records --region "$region" --shard-iterator "$iterator" --output json)"
    shard_iterators[index]="$(jq -r '.NextShardIterator // ""' <<<"$response")"

    while IFS= read -r encoded; do
      [[ -n "$encoded" ]] || continue
      prediction="$(base64 --decode <<<"$encoded" 2>/dev/null || true)"
      if jq -e --arg ride_id "$ride_id" '.prediction.ride_id == $ride_id' <<<"$prediction" >/dev/null 2>&1; then
        log "prediction for ride $ride_id received after $((SECONDS - deadline + timeout_seconds))s"
        jq -c . <<<"$prediction"
        exit 0
      fi
    done < <(jq -r '.Records[].Data' <<<"$response")
  done
  sleep "$poll_interval_seconds"
done

fail "timed out after ${timeout_seconds}s: no prediction for ride $ride_id on $output_stream. Check the function's logs (aws logs tail /aws/lambda/<function> --since 10m), its event source mapping state, and the invalid-records and failed-batches queues"
