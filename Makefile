# Every target installs what it needs: uv (through pip when missing), then the locked environment.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= $(shell command -v uv 2>/dev/null || echo "$(CURDIR)/.tools/bin/uv")
RUN := $(UV) run --frozen
export CHECKPOINT_DISABLE := 1

# Real TLC trip files: read from the folder TLC_MIRROR names, else downloaded once from TLC
# into the git-ignored data/. A copy of the files beside the checkout is used when present.
TLC_MIRROR ?= $(firstword $(wildcard $(abspath $(CURDIR)/../shared/data)))
export TLC_MIRROR
# The months the tests and `make run` read.
TLC_MONTHS := 2022-01 2022-02 2022-03
PYTHON_SOURCES := *.py local_stack tests integration-test scripts bench

.PHONY: help uv sync setup quality_checks lint format test unit_test run data

help: ## List the targets
	@grep -hE '^[a-zA-Z_]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-24s %s\n", $$1, $$2}'

uv:
	@test -x "$(UV)" || (python3 -m venv .tools && .tools/bin/pip install --quiet uv)

sync: uv ## Create .venv from uv.lock (runtime and dev dependencies)
	$(UV) sync --frozen

setup: sync ## Environment plus the pre-commit hooks
	$(RUN) pre-commit install

data: sync ## Fetch the TLC trip files of the tests and `make run` (nothing to do with TLC_MIRROR)
	$(RUN) python tlc_data.py --color green $(TLC_MONTHS)

test: sync data ## All tests that run without Docker: unit, integration on moto, container contract, HCL
	env -u INVOKE_URL $(RUN) pytest tests integration-test

unit_test: sync ## The tests that start no server
	$(RUN) pytest tests --ignore=tests/integration -m "not integration"

run: sync data ## The main job: stream a month of real rides through the local stack (MOTO_PORT, default 4566)
	$(RUN) python -m local_stack.run

format: sync ## Rewrite Python files in the project's format
	$(RUN) ruff format $(PYTHON_SOURCES)
	$(RUN) ruff check --fix --select I $(PYTHON_SOURCES)

lint: sync ## ruff format check, ruff lint (import order included) and pylint
	$(RUN) ruff format --check $(PYTHON_SOURCES)
	$(RUN) ruff check $(PYTHON_SOURCES)
	$(RUN) pylint $(PYTHON_SOURCES)

quality_checks: lint hadolint infra_checks ## Every static check: Python, Dockerfile, Terraform, workflows, shell

# --- Infrastructure ---
# tf_plan and tf_apply run the terraform binary from PATH against the real AWS
# account of ENV (stg or prod); the checks need neither terraform nor AWS.
TF_DIR := infrastructure
TERRAFORM ?= terraform
# Overrides the bucket of backend/$(ENV).s3.tfbackend, for a state bucket with another name.
TF_STATE_BUCKET ?=
# A local provider mirror (terraform init -plugin-dir) for machines without registry access.
TF_PLUGIN_DIR ?=
# TF_AUTO_APPROVE=1 lets tf_apply run without the interactive confirmation (CD does this).
TF_AUTO_APPROVE ?=
# Extra arguments for plan and apply, e.g. TF_ARGS='-target=module.ecr' while bootstrapping.
TF_ARGS ?=
SHELL_SCRIPTS = $(wildcard scripts/*.sh integration-test/*.sh)

.PHONY: tf_fmt tf_fmt_check checkov tf_check tf_validate tf_require_env tf_init tf_plan tf_apply \
	workflow_check shell_check infra_checks

tf_fmt: sync ## Rewrite the Terraform files in canonical format
	$(RUN) python scripts/terraform_fmt.py $(TF_DIR)

tf_fmt_check: sync
	$(RUN) python scripts/terraform_fmt.py --check $(TF_DIR)

# checkov has an environment of its own: its HCL parser would replace python-hcl2 in .venv.
checkov: uv
	UV_PROJECT_ENVIRONMENT=.venv-checkov $(UV) run --frozen --no-default-groups --group checkov \
	  checkov -d $(TF_DIR) --skip-download --compact --quiet

tf_check: tf_fmt_check checkov ## Terraform format check (writes nothing) and checkov

workflow_check: sync
	$(RUN) check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

shell_check: sync
	$(if $(SHELL_SCRIPTS),$(RUN) shellcheck $(SHELL_SCRIPTS),@echo "shell_check: no shell scripts found")

infra_checks: tf_check workflow_check shell_check ## Offline infrastructure checks: fmt, checkov, workflow schema, shellcheck

tf_require_env:
	@case "$(ENV)" in \
	  stg|prod) ;; \
	  *) echo "ENV must be stg or prod, got '$(ENV)': run make $(or $(firstword $(MAKECMDGOALS)),tf_plan) ENV=stg" >&2; exit 2 ;; \
	esac
	@command -v $(TERRAFORM) >/dev/null 2>&1 || { \
	  echo "$(TERRAFORM) not found on PATH: install Terraform >= 1.10 (https://developer.hashicorp.com/terraform/install)" >&2; \
	  exit 127; }

tf_validate: ## Validate the configuration without a backend or AWS credentials (TF_PLUGIN_DIR for offline)
	@command -v $(TERRAFORM) >/dev/null 2>&1 || { \
	  echo "$(TERRAFORM) not found on PATH: install Terraform >= 1.10 (https://developer.hashicorp.com/terraform/install)" >&2; \
	  exit 127; }
	$(TERRAFORM) -chdir=$(TF_DIR) init -input=false -backend=false $(if $(TF_PLUGIN_DIR),-plugin-dir=$(TF_PLUGIN_DIR))
	$(TERRAFORM) -chdir=$(TF_DIR) validate

tf_init: tf_require_env
	$(TERRAFORM) -chdir=$(TF_DIR) init -input=false -reconfigure \
	  -backend-config=backend/$(ENV).s3.tfbackend \
	  $(if $(TF_STATE_BUCKET),-backend-config=bucket=$(TF_STATE_BUCKET)) \
	  $(if $(TF_PLUGIN_DIR),-plugin-dir=$(TF_PLUGIN_DIR))

tf_plan: tf_init ## terraform validate and plan for ENV=stg|prod (real AWS account)
	$(TERRAFORM) -chdir=$(TF_DIR) validate
	$(TERRAFORM) -chdir=$(TF_DIR) plan -input=false -var-file=vars/$(ENV).tfvars $(TF_ARGS)

tf_apply: tf_init ## terraform apply for ENV=stg|prod (real AWS account; TF_AUTO_APPROVE=1 skips the prompt)
	$(TERRAFORM) -chdir=$(TF_DIR) apply -input=false -var-file=vars/$(ENV).tfvars $(TF_ARGS) \
	  $(if $(filter 1 true yes,$(TF_AUTO_APPROVE)),-auto-approve)

# --- Batch job ---
.PHONY: batch_integration_test

batch_integration_test: sync ## Batch scoring tests: prepare_data, local runs, the CLI against S3 on moto
	$(RUN) pytest tests/batch

# --- Image and integration tests ---
# The Lambda image, its stand-in without Docker (make serve), and the integration tests, which
# run on the image and LocalStack when a Docker engine answers, else on moto and make serve's
# endpoint. The same pytest tests run both ways.
IMAGE_REPOSITORY ?= stream-model-duration
IMAGE_TAG := $(shell date -u +%Y-%m-%d-%H%M%S)
# The image that build creates and publish pushes.
LOCAL_IMAGE_NAME ?= $(IMAGE_REPOSITORY):$(IMAGE_TAG)
SERVE_PORT ?= 8080

.PHONY: build hadolint integration_test contract_test publish serve

build: ## Build the Lambda image, tagged stream-model-duration:<UTC timestamp>
	docker build --tag $(LOCAL_IMAGE_NAME) .
	@echo "Built image $(LOCAL_IMAGE_NAME)"

hadolint: sync ## Lint the Dockerfile
	$(RUN) hadolint Dockerfile

integration_test: sync data ## Invocation and Kinesis tests: image and LocalStack with Docker, else moto and the local endpoint
	@if docker info >/dev/null 2>&1; then \
	  echo "integration_test: a Docker engine answers: testing the image with LocalStack (integration-test/run.sh)"; \
	  UV="$(UV)" bash integration-test/run.sh; \
	else \
	  echo "integration_test: no Docker engine answers: testing local_stack.invoke_server with moto"; \
	  env -u INVOKE_URL $(RUN) pytest integration-test; \
	fi

contract_test: sync ## Container contract: the image's task root, assembled without Docker, serves a prediction
	$(RUN) pytest tests/test_container_contract.py

publish: build ## Build the image and push it to ECR with scripts/publish.sh
	LOCAL_IMAGE_NAME=$(LOCAL_IMAGE_NAME) bash scripts/publish.sh

serve: sync ## Serve the handler as the image does, on 127.0.0.1:8080 (SERVE_PORT), with the shell's variables
	$(RUN) python -m local_stack.invoke_server --port $(SERVE_PORT)

# --- Benchmarks ---
# make bench measures throughput, cold start, footprint, end-to-end latency, the batch job,
# model quality and cost, and rewrites docs/benchmarks.md and docs/benchmarks.json. A full
# run took 12 minutes on a shared 2-core machine. BENCH_SKIP=end_to_end,model_quality
# (comma-separated) skips sections and keeps their last published figures. UV names the uv
# that builds the bytecode-compiled runtime environment under build/bench-runtime.
BENCH_SKIP ?=

.PHONY: bench

bench: sync data ## Run the benchmarks and rewrite docs/benchmarks.md (BENCH_SKIP=section,... to skip)
	UV="$(UV)" BENCH_SKIP="$(BENCH_SKIP)" $(RUN) python -m bench.run

# --- Load test ---
# make load_test replays LOAD_TEST_RIDES real rides (February, then March 2022) through the
# local stack while a proxy in front of moto injects faults into the service's output:
# LOAD_TEST_FAULTS of the PutRecords entries throttled, 1% of the calls failed with HTTP 500
# and 0.5% of the responses lost after the records were stored. It fails unless every ride is
# accounted for, prints rides/s, latency p50/p99 and the duplicates, and writes
# reports/load-test/run-report.json. LOAD_TEST_FAULTS=0 measures the stack without faults.
# Eight shards keep moto fast: its PutRecords and GetRecords take time in proportion to the
# records already on a shard.
LOAD_TEST_RIDES ?= 100000
LOAD_TEST_FAULTS ?= 0.3

.PHONY: load_test

load_test: sync data ## Replay 100,000 real rides with injected output faults; report in reports/load-test
	$(RUN) python -m local_stack.run --rides $(LOAD_TEST_RIDES) --replay-month 2022-02 2022-03 \
	  --shards 8 --inject-faults $(LOAD_TEST_FAULTS) \
	  $(if $(filter 0 0.0,$(LOAD_TEST_FAULTS)),,--server-error-rate 0.01 --lost-response-rate 0.005) \
	  --fault-seed 2022 --report-dir reports/load-test --no-plot
