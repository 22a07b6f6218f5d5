#!/usr/bin/env bash
# Push a locally built image to Amazon ECR and print the pushed image by digest.
#
# Usage: scripts/publish.sh [LOCAL_IMAGE_NAME [REPOSITORY [REGION [TAG]]]]
#
#   LOCAL_IMAGE_NAME  local image to push, e.g. stream-model-duration:3f2c1ab (env LOCAL_IMAGE_NAME)
#   REPOSITORY        ECR repository name or URL (env ECR_REPOSITORY; terraform output ecr_repository_url)
#   REGION            AWS region of the repository (env AWS_REGION, then AWS_DEFAULT_REGION)
#   TAG               tag in ECR (env IMAGE_TAG; default: the tag of LOCAL_IMAGE_NAME)
#
# Standard output is one line, REPOSITORY_URL@sha256:<digest>, for scripts/deploy.sh.
# Progress and errors go to standard error. The repository has immutable tags, so
# a tag that exists already is not pushed again: the script prints the digest
# stored under it instead, which makes a rerun of the same commit's pipeline safe.
set -euo pipefail

log() {
  printf 'publish: %s\n' "$*" >&2
}

fail() {
  printf 'publish: error: %s\n' "$*" >&2
  exit 1
}

require_command() {
  command -v "$1" >/dev/null 2>&1 || fail "$1 not found on PATH: $2"
}

local_image="${1:-${LOCAL_IMAGE_NAME:-}}"
repository="${2:-${ECR_REPOSITORY:-}}"
region="${3:-${AWS_REGION:-${AWS_DEFAULT_REGION:-}}}"
tag="${4:-${IMAGE_TAG:-}}"

[[ -n "$local_image" ]] || fail "no image given: pass LOCAL_IMAGE_NAME (for example stream-model-duration:\$(git rev-parse --short HEAD)) as the first argument or in the environment"
[[ -n "$repository" ]] || fail "no repository given: pass the ECR repository name or URL as the second argument or as ECR_REPOSITORY (terraform -chdir=infrastructure output -raw ecr_repository_url)"
[[ -n "$region" ]] || fail "no region given: pass it as the third argument or set AWS_REGION"

if [[ -z "$tag" ]]; then
  # The tag is what follows the last colon, unless that colon belongs to a registry port.
  name_tail="${local_image##*/}"
  [[ "$name_tail" == *:* ]] || fail "LOCAL_IMAGE_NAME=$local_image has no tag: add one (name:tag) or set IMAGE_TAG"
  tag="${name_tail##*:}"
fi
[[ "$tag" != "latest" ]] || fail "tag 'latest' cannot be used: the repository's tags are immutable, so tag each image with its commit SHA"

require_command aws "install the AWS CLI (https://docs.aws.amazon.com/cli/)"
require_command docker "install Docker to push images"

account_id="$(aws sts get-caller-identity --query Account --output text 2>/dev/null)" ||
  fail "no usable AWS credentials: configure a profile, export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or assume the deployment role"

if [[ "$repository" == *.dkr.ecr.*/* ]]; then
  registry="${repository%%/*}"
  repository_name="${repository#*/}"
else
  registry="${account_id}.dkr.ecr.${region}.amazonaws.com"
  repository_name="$repository"
fi
repository_url="${registry}/${repository_name}"

if ! describe_error="$(aws ecr describe-repositories --region "$region" \
  --repository-names "$repository_name" --query 'repositories[0].repositoryUri' --output text 2>&1 >/dev/null)"; then
  if [[ "$describe_error" == *RepositoryNotFoundException* ]]; then
    fail "ECR repository $repository_name not found in $region: create it with make tf_apply ENV=<stg|prod> (see docs/deployment.md)"
  fi
  fail "cannot read ECR repository $repository_name in $region: $describe_error"
fi

existing_digest="$(aws ecr describe-images --region "$region" --repository-name "$repository_name" \
  --image-ids imageTag="$tag" --query 'imageDetails[0].imageDigest' --output text 2>/dev/null || true)"
if [[ "$existing_digest" == sha256:* ]]; then
  log "tag $tag already exists in $repository_name with digest $existing_digest; tags are immutable, so the push is skipped and that image is used"
  printf '%s@%s\n' "$repository_url" "$existing_digest"
  exit 0
fi

docker info >/dev/null 2>&1 ||
  fail "cannot reach the Docker daemon${DOCKER_HOST:+ at $DOCKER_HOST}: start Docker or point DOCKER_HOST at a running engine"
docker image inspect "$local_image" >/dev/null 2>&1 ||
  fail "local image $local_image not found: build it first (docker build -t $local_image .)"

log "logging in to $registry"
aws ecr get-login-password --region "$region" |
  docker login --username AWS --password-stdin "$registry" >/dev/null ||
  fail "docker login to $registry failed: check that the credentials allow ecr:GetAuthorizationToken"

log "pushing $local_image as $repository_url:$tag"
docker tag "$local_image" "$repository_url:$tag"
docker push "$repository_url:$tag" >&2 || fail "docker push of $repository_url:$tag failed"

digest="$(aws ecr describe-images --region "$region" --repository-name "$repository_name" \
  --image-ids imageTag="$tag" --query 'imageDetails[0].imageDigest' --output text)"
[[ "$digest" == sha256:* ]] || fail "pushed $repository_url:$tag but ECR reports no digest for it (got '$digest')"

log "pushed $repository_url:$tag with digest $digest"
printf '%s@%s\n' "$repository_url" "$digest"
