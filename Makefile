# Quick start: `make up` (deploy the root stack against the local sandbox) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SANDBOX_PORT ?= 8787
SANDBOX_TOKEN ?= sandbox-token
SANDBOX_DIR ?= .oppie-sandbox
STACK ?= dev

# A local file backend and a fixed passphrase: nothing needs a Pulumi account.
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi-state
export PULUMI_CONFIG_PASSPHRASE ?= oppie-local-sandbox
export PULUMI_SKIP_UPDATE_CHECK := true
# Plugins come from PATH (the CLI's folder): nothing is fetched from get.pulumi.com, which is not reachable.
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true

# The Pulumi CLI: a `pulumi` on PATH as is, else the pinned build in .tools/ (tools/pulumi/install.sh says how).
WITH_PULUMI = set -e; cli_dir="$$(tools/pulumi/install.sh)"; export PATH="$$cli_dir:$$PATH";

.PHONY: setup test lint up down preview refresh drift sandbox sandbox-start sandbox-stop stack-select bench bench-drift \
	examples reliability mutation cli cli-yaml plugin sdk typescript dist clean

# The test machinery is a distribution of its own (tests/harness: oppie-pulumi-testing), never in the wheel.
$(BIN)/.installed: pyproject.toml tests/harness/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e tests/harness
	touch $@

setup: $(BIN)/.installed

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict

# The CLI first: the real-engine tier needs it. Outside CI a machine with neither Go nor a pulumi skips that
# tier (saying why); under CI=true the tier fails instead, so CI can never pass without it.
# The YAML language host too (the plugin's YAML program), and the TypeScript example's SDK and node_modules (the
# plugin's TypeScript program; Node.js and npm needed): prepared here, before pytest, so that a first build or
# install on a fresh machine does not count against a test's timeout.
test: lint
	tools/pulumi/install.sh >/dev/null || [ "$${CI:-}" != true ]
	tools/pulumi-yaml/install.sh --build >/dev/null || [ "$${CI:-}" != true ]
	$(MAKE) --no-print-directory typescript >/dev/null || [ "$${CI:-}" != true ]
	$(BIN)/pytest -q

# Find or build the Pulumi CLI (minutes the first time, instant after).
cli:
	tools/pulumi/install.sh

# The YAML language host, for YAML programs using the oppie provider plugin (docs/plugin.md).
cli-yaml:
	tools/pulumi-yaml/install.sh --build

# The provider plugin as a tarball for `pulumi plugin install resource oppie <version> --file ...`.
plugin: setup
	plugin/package.sh

# The release artefacts, into $(DIST): the oppie-pulumi wheel and sdist, the plugin tarball, the SDKs (a Python wheel,
# an npm tarball, a YAML package declaration) and the schema (tools/release/dist.sh lists them). The SDKs carry
# PLUGIN_DOWNLOAD_URL, where the engine downloads the plugin tarball from when a program first uses one: the release
# page of the version (the README's Installation). One version, oppie_pulumi/_version.py, in all of them.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' oppie_pulumi/_version.py)
DIST ?= dist
PLUGIN_DOWNLOAD_URL ?= https://github.com/oppie/oppie-pulumi/releases/download/v$(VERSION)
dist: setup
	@$(WITH_PULUMI) tools/release/dist.sh $(DIST) $(PLUGIN_DOWNLOAD_URL)

# The SDKs of the plugin, generated from its schema: sdk/python (pulumi_oppie) and sdk/nodejs (@oppie/pulumi-oppie).
# The plugin is named by its path: a bare `plugin/...` would be looked up in Pulumi's registry.
sdk: setup
	@$(WITH_PULUMI) pulumi package gen-sdk $(CURDIR)/plugin/pulumi-resource-oppie --language python --out sdk
	@$(MAKE) --no-print-directory -B sdk/nodejs/package.json

# --local: a TypeScript SDK that compiles itself when installed (a postinstall running tsc; main: bin/index.js), so a
# program can depend on the folder (`file:../../sdk/nodejs`) without a build step of its own. Regenerated when the
# schema's sources change. The plugin runs from the checkout's .venv (`make setup`; `make test` makes it first).
sdk/nodejs/package.json: $(wildcard oppie_pulumi/provider/*.py) oppie_pulumi/_models.py oppie_pulumi/_config.py
	@$(WITH_PULUMI) pulumi package gen-sdk $(CURDIR)/plugin/pulumi-resource-oppie --language nodejs --out sdk --local

# The TypeScript example's node_modules: `npm ci` from its package-lock.json, the generated SDK copied in
# (install-links in its .npmrc) and compiled by its postinstall. Redone when the lock file or the SDK changes. npm
# 11 warns that it will block dependencies' install scripts unless approved, and its approvals name a `file:`
# dependency by absolute path only; so a blocked postinstall is caught here rather than committed as approved.
TS_EXAMPLE := examples/typescript-phone-agents
$(TS_EXAMPLE)/node_modules/.package-lock.json: $(TS_EXAMPLE)/package-lock.json sdk/nodejs/package.json
	cd $(TS_EXAMPLE) && npm ci --no-audit --no-fund
	@test -f $(TS_EXAMPLE)/node_modules/@oppie/pulumi-oppie/bin/index.js || { rm -f $@; \
	  echo "npm skipped the SDK's postinstall (tsc): run \`npm install-scripts approve @oppie/pulumi-oppie\`" \
	    "in $(TS_EXAMPLE), then make typescript again" >&2; exit 1; }

typescript: $(TS_EXAMPLE)/node_modules/.package-lock.json

# The provider in-process and through its host (run.py), then the real CLI against the engine's floor (engine.py).
bench: setup
	$(BIN)/python benchmarks/run.py
	tools/pulumi/install.sh >/dev/null
	$(BIN)/python benchmarks/engine.py

# `oppie-pulumi drift` over 1,000 agents in 3 stacks (built without `pulumi up`): time, API calls, peak memory.
bench-drift: setup
	$(BIN)/python benchmarks/drift.py

# Every example through the real provider host against an in-process sandbox (what CI does).
examples: setup
	$(BIN)/pytest -q tests/test_examples.py

reliability: setup
	$(BIN)/python benchmarks/reliability.py

# Mutation testing of the core (oppie_pulumi/agents/), the client, the models and the dynamic adapter ([tool.mutmut] in
# pyproject.toml): hours on 2 cores, so not part of `make test` or CI (docs/mutation.md). mutmut's pass, then the provider-host pass: the tests
# that run the provider in the real dynamic host, a child process mutmut cannot see into, judge what mutmut left
# alive. `mutmut show <name>` shows one mutant.
mutation: setup
	$(BIN)/pip install --quiet -e '.[mutation]'
	$(BIN)/mutmut run --max-children 2
	$(BIN)/python tools/mutation_host_pass.py

# -- the root stack against the sandbox ----------------------------------------------------------
# A port already served is reported and left alone: `make up` after `make sandbox`, or the other way round, is normal.
SANDBOX_LISTENING = (exec 3<>/dev/tcp/127.0.0.1/$(SANDBOX_PORT)) 2>/dev/null

sandbox-start: setup
	@mkdir -p $(SANDBOX_DIR)
	@if [ -f $(SANDBOX_DIR)/sandbox.pid ] && kill -0 $$(cat $(SANDBOX_DIR)/sandbox.pid) 2>/dev/null; then \
	  echo "sandbox already running (pid $$(cat $(SANDBOX_DIR)/sandbox.pid))"; \
	elif $(SANDBOX_LISTENING); then \
	  echo "something already listens on http://127.0.0.1:$(SANDBOX_PORT) (a sandbox from \`make sandbox\`?): using it"; \
	else \
	  nohup $(BIN)/oppie-sandbox --port $(SANDBOX_PORT) --token $(SANDBOX_TOKEN) --db $(SANDBOX_DIR)/agents.db \
	    > $(SANDBOX_DIR)/sandbox.log 2>&1 & echo $$! > $(SANDBOX_DIR)/sandbox.pid; \
	  for _ in $$(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$(SANDBOX_PORT)) 2>/dev/null && break; sleep 0.1; done; \
	  (exec 3<>/dev/tcp/127.0.0.1/$(SANDBOX_PORT)) 2>/dev/null || { echo "sandbox did not start: see $(SANDBOX_DIR)/sandbox.log"; exit 1; }; \
	  echo "sandbox on http://127.0.0.1:$(SANDBOX_PORT) (pid $$(cat $(SANDBOX_DIR)/sandbox.pid), log $(SANDBOX_DIR)/sandbox.log)"; \
	fi

sandbox-stop:
	@if [ -f $(SANDBOX_DIR)/sandbox.pid ]; then kill $$(cat $(SANDBOX_DIR)/sandbox.pid) 2>/dev/null || true; rm -f $(SANDBOX_DIR)/sandbox.pid; echo "sandbox stopped"; fi

sandbox: setup
	@if $(SANDBOX_LISTENING); then \
	  echo "a sandbox (or another server) already listens on http://127.0.0.1:$(SANDBOX_PORT): use it."; \
	  echo "  \`make up\` and \`make sandbox-start\` start one in the background; \`make sandbox-stop\` stops that one."; \
	  echo "  Or serve another port: make sandbox SANDBOX_PORT=8788"; \
	  exit 1; \
	fi
	$(BIN)/oppie-sandbox --port $(SANDBOX_PORT) --token $(SANDBOX_TOKEN)

stack-select: setup
	@mkdir -p .pulumi-state
	@$(WITH_PULUMI) pulumi stack select --create $(STACK) >/dev/null; \
	  pulumi config set oppie:baseUrl http://127.0.0.1:$(SANDBOX_PORT) --stack $(STACK); \
	  pulumi config set --secret oppie:apiToken $(SANDBOX_TOKEN) --stack $(STACK)

up: sandbox-start stack-select
	@$(WITH_PULUMI) pulumi up --yes --stack $(STACK)

preview: sandbox-start stack-select
	@$(WITH_PULUMI) pulumi preview --diff --stack $(STACK)

# --run-program: the engine otherwise configures refresh and destroy from the copy of the stack config it
# stored in the state at the last `up`, so a rotated token or a new baseUrl would be ignored (docs/phone-agent.md).
refresh: sandbox-start stack-select
	@$(WITH_PULUMI) pulumi refresh --yes --run-program --stack $(STACK)

# A drift review of the stack against the sandbox (oppie-pulumi drift): read-only; exit 0 in sync, 2 findings
# (each with the command that fixes it), 1 the review could not run.
drift: sandbox-start stack-select
	@$(WITH_PULUMI) $(BIN)/oppie-pulumi drift --stack $(STACK)

down: sandbox-start stack-select
	@$(WITH_PULUMI) pulumi destroy --yes --run-program --stack $(STACK)
	$(MAKE) sandbox-stop

clean: sandbox-stop
	rm -rf $(VENV) .pulumi-state $(SANDBOX_DIR) .pytest_cache .mypy_cache .ruff_cache dist sdk $(TS_EXAMPLE)/node_modules
