# Every target installs what it needs: uv (through pip when missing), then the locked environment.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= $(shell command -v uv 2>/dev/null || echo "$(CURDIR)/.tools/bin/uv")
RUN := $(UV) run --frozen
export CHECKPOINT_DISABLE := 1

.PHONY: help uv sync setup quality_checks test unit_test run

help: ## List the targets
	@grep -hE '^[a-zA-Z_]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-24s %s\n", $$1, $$2}'

uv:
	@test -x "$(UV)" || (python3 -m venv .tools && .tools/bin/pip install --quiet uv)

sync: uv ## Create .venv from uv.lock (runtime and dev dependencies)
	$(UV) sync --frozen

setup: sync ## Environment plus the pre-commit hooks
	$(RUN) pre-commit install

unit_test: sync ## Unit tests only
	$(RUN) pytest tests
