# Quick start: `make up` (deploy the root stack against the local sandbox) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SANDBOX_PORT ?= 8787
SANDBOX_TOKEN ?= sandbox-token
SANDBOX_DIR := .oppie-sandbox
STACK ?= dev

# A local file backend and a fixed passphrase: nothing needs a Pulumi account.
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi-state
export PULUMI_CONFIG_PASSPHRASE ?= oppie-local-sandbox
export PULUMI_SKIP_UPDATE_CHECK := true

.PHONY: setup test lint up down preview refresh sandbox sandbox-start sandbox-stop stack-select bench examples \
	reliability require-pulumi clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict

test: lint
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python benchmarks/run.py

# Every example through the real provider host against an in-process sandbox (what CI does).
examples: setup
	$(BIN)/pytest -q tests/test_examples.py

reliability: setup
	$(BIN)/python benchmarks/reliability.py

# -- the root stack against the sandbox ----------------------------------------------------------
require-pulumi:
	@command -v pulumi >/dev/null 2>&1 || { \
	  echo "make: the Pulumi CLI is not on PATH, so the stack cannot be deployed."; \
	  echo "      Install it: curl -fsSL https://get.pulumi.com | sh   (or: brew install pulumi/tap/pulumi)"; \
	  echo "      then run 'make up' again. Everything else (sandbox, tests) works without it: 'make test'."; \
	  exit 2; }

sandbox-start: setup
	@mkdir -p $(SANDBOX_DIR)
	@if [ -f $(SANDBOX_DIR)/sandbox.pid ] && kill -0 $$(cat $(SANDBOX_DIR)/sandbox.pid) 2>/dev/null; then \
	  echo "sandbox already running (pid $$(cat $(SANDBOX_DIR)/sandbox.pid))"; \
	else \
	  nohup $(BIN)/oppie-sandbox --port $(SANDBOX_PORT) --token $(SANDBOX_TOKEN) \
	    > $(SANDBOX_DIR)/sandbox.log 2>&1 & echo $$! > $(SANDBOX_DIR)/sandbox.pid; \
	  for _ in $$(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$(SANDBOX_PORT)) 2>/dev/null && break; sleep 0.1; done; \
	  (exec 3<>/dev/tcp/127.0.0.1/$(SANDBOX_PORT)) 2>/dev/null || { echo "sandbox did not start: see $(SANDBOX_DIR)/sandbox.log"; exit 1; }; \
	  echo "sandbox on http://127.0.0.1:$(SANDBOX_PORT) (pid $$(cat $(SANDBOX_DIR)/sandbox.pid), log $(SANDBOX_DIR)/sandbox.log)"; \
	fi

sandbox-stop:
	@if [ -f $(SANDBOX_DIR)/sandbox.pid ]; then kill $$(cat $(SANDBOX_DIR)/sandbox.pid) 2>/dev/null || true; rm -f $(SANDBOX_DIR)/sandbox.pid; echo "sandbox stopped"; fi

sandbox: setup
	$(BIN)/oppie-sandbox --port $(SANDBOX_PORT) --token $(SANDBOX_TOKEN)

stack-select: require-pulumi setup
	@mkdir -p .pulumi-state
	@pulumi stack select --create $(STACK) >/dev/null
	@pulumi config set oppie:baseUrl http://127.0.0.1:$(SANDBOX_PORT) --stack $(STACK)
	@pulumi config set --secret oppie:apiToken $(SANDBOX_TOKEN) --stack $(STACK)

up: require-pulumi sandbox-start stack-select
	pulumi up --yes --stack $(STACK)

preview: require-pulumi sandbox-start stack-select
	pulumi preview --diff --stack $(STACK)

refresh: require-pulumi sandbox-start stack-select
	pulumi refresh --yes --stack $(STACK)

down: require-pulumi sandbox-start stack-select
	pulumi destroy --yes --stack $(STACK)
	$(MAKE) sandbox-stop

clean: sandbox-stop
	rm -rf $(VENV) .pulumi-state $(SANDBOX_DIR) .pytest_cache .mypy_cache .ruff_cache
