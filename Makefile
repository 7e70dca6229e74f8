# CityShare: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
LAYERS := build/layers
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true


.PHONY: preflight chromium console role-table bench-layers bootstrap-admin demo test lint typecheck unit integration e2e infra-test security openapi layer synth deploy diff bench local clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUNTIME): $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(DEV): $(RUNTIME) requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# The stewards' console: a static page bundled with esbuild (pinned in console/package.json); the
# embedded gateway serves console/dist at /console/.
CONSOLE := console/dist/.built
console/node_modules/.package-lock.json: console/package.json console/package-lock.json
	cd console && npm ci --no-audit --no-fund
$(CONSOLE): console/node_modules/.package-lock.json $(wildcard console/src/*.js console/src/views/*.js) console/index.html console/style.css
	cd console && npm run --silent build
	touch $@
console: $(CONSOLE)  ## build the stewards' console (console/dist)

demo: $(RUNTIME) $(CONSOLE)  ## start the embedded stack and run the city scenario
	$(BIN)/cityshare demo

# pycanon (k-anonymity checks in the tests) pins old numpy and pandas: a virtualenv of its own.
PYCANON := build/pycanon/.installed
$(PYCANON): tests/requirements-pycanon.txt
	$(PYTHON) -m venv build/pycanon
	build/pycanon/bin/pip install -q -r tests/requirements-pycanon.txt
	touch $@

# The official Delta Sharing connector pins pyarrow and pandas below CityShare's: a virtualenv of its own.
DELTA_SHARING := build/delta-sharing/.installed
$(DELTA_SHARING): tests/requirements-delta-sharing.txt
	$(PYTHON) -m venv build/delta-sharing
	build/delta-sharing/bin/pip install -q -r tests/requirements-delta-sharing.txt
	touch $@

# The console's tests drive headless Chromium (Debian's package; Playwright's own download is not used).
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; } || \
		echo "Chromium is not installed: the console's browser tests will be skipped (apt-get install -y chromium)"

test: $(DEV) $(PYCANON) $(DELTA_SHARING) $(CONSOLE) chromium lint typecheck  ## ruff, mypy and every test suite
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

lint: $(DEV)
	$(BIN)/ruff check .
	PYTHONPATH=. $(BIN)/lint-imports --no-cache

typecheck: $(DEV)
	$(BIN)/mypy functions infra cityshare benchmarks app.py

unit integration security: $(DEV)
	$(BIN)/pytest tests/$@

infra-test: $(DEV)
	$(BIN)/pytest tests/infra

role-table: $(DEV)  ## rewrite docs/reference.md's IAM role table from the synthesised template
	$(BIN)/python -m tests.infra.iam

openapi: $(RUNTIME)  ## regenerate schemas/openapi.json, schemas/open-interfaces.json and schemas/events/
	$(BIN)/python -m functions.handlers.openapi schemas

local: $(RUNTIME) $(CONSOLE)  ## run the embedded stack until Ctrl-C (its state is kept in .cityshare/local)
	$(BIN)/cityshare local up

# x86_64 twins of the layers (same pins, trimming and .pyc) so cold starts can be measured here under
# Python 3.13 as Lambda runs them; "runtime" stands in for the boto3 the Lambda runtime provides.
BENCH_LAYERS := build/bench-layers
BENCH_PIP := $(BIN)/pip install -q --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
	--implementation cp --python-version 3.13 --only-binary=:all: --no-compile
$(BENCH_LAYERS)/.built: functions/requirements-core.txt functions/requirements-data.txt functions/requirements-analytics.txt
	@test -x "$(LAMBDA_PYTHON)" || { echo "Python 3.13 is needed: install python3.13 or set LAMBDA_PYTHON"; exit 1; }
	rm -rf $(BENCH_LAYERS) && mkdir -p $(BENCH_LAYERS)/core/python $(BENCH_LAYERS)/data/python $(BENCH_LAYERS)/analytics/python $(BENCH_LAYERS)/runtime/python
	$(BENCH_PIP) -t $(BENCH_LAYERS)/core/python -r functions/requirements-core.txt
	$(BENCH_PIP) -t $(BENCH_LAYERS)/data/python --no-deps -r functions/requirements-data.txt
	$(BENCH_PIP) -t $(BENCH_LAYERS)/analytics/python --no-deps -r functions/requirements-analytics.txt
	$(BENCH_PIP) -t $(BENCH_LAYERS)/runtime/python boto3==$$(grep -oP '^boto3==\K.*' requirements.txt)
	$(BIN)/python -m infra.cloud.layers trim $(BENCH_LAYERS)
	for layer in core data analytics runtime; do \
		PYTHONHASHSEED=0 "$(LAMBDA_PYTHON)" -m compileall -q -j 0 --invalidation-mode unchecked-hash $(BENCH_LAYERS)/$$layer/python >/dev/null || exit 1; \
	done
	touch $@
bench-layers: $(RUNTIME) $(BENCH_LAYERS)/.built

bench: $(DEV) bench-layers  ## print the benchmarks' figures
	$(BIN)/python -m benchmarks.api
	$(BIN)/python -m benchmarks.cold_start
	$(BIN)/python -m benchmarks.ingest
	$(BIN)/python -m benchmarks.authz
	$(BIN)/python -m benchmarks.views
	$(BIN)/python -m benchmarks.privacy
	$(BIN)/python -m benchmarks.triggers
	$(BIN)/python -m benchmarks.spatial
	$(BIN)/python -m benchmarks.forecast
	$(BIN)/python -m benchmarks.delta_sharing
	$(BIN)/python -m benchmarks.local_state
	$(BIN)/python -m benchmarks.console

# The Lambda layers for arm64, from wheels only: no Docker, no compiler. "data" drops pyarrow's C++
# headers, Cython sources, tests and the Arrow modules CityShare never loads (Flight, Substrait,
# Gandiva, ORC, cloud filesystems) so every function keeps 50 MB of Lambda's 250 MB unzipped limit.
# Every layer and the code asset carry .pyc compiled by the Lambda runtime's Python (3.13), checked by
# hash not mtime, so a cold start compiles nothing (/opt is read-only: without them it would compile
# on every cold start).
STAGE ?= dev
LAMBDA_PYTHON ?= $(shell for p in python3.13 "$$(pyenv prefix 3.13 2>/dev/null)/bin/python3.13"; do "$$p" -c '' 2>/dev/null && command -v "$$p" && break; done)
export LAMBDA_PYTHON
LAYER_PIP := $(BIN)/pip install -q --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 \
	--implementation cp --python-version 3.13 --only-binary=:all: --no-compile
# OpenDP's arm64 library carries 110 MB of symbols: stripped with binutils for arm64 (Debian's
# binutils-aarch64-linux-gnu, installed here when run as root), it fits under Lambda's limit.
AARCH64_STRIP := aarch64-linux-gnu-strip
$(LAYERS)/.built: functions/requirements-core.txt functions/requirements-data.txt functions/requirements-analytics.txt functions/requirements-privacy.txt
	@test -x "$(LAMBDA_PYTHON)" || { echo "Python 3.13 (the Lambda runtime's) is needed to compile the layers' .pyc: install python3.13 or set LAMBDA_PYTHON=/path/to/python3.13"; exit 1; }
	@command -v $(AARCH64_STRIP) >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y --no-install-recommends binutils-aarch64-linux-gnu >/dev/null 2>&1; } || \
		{ echo "$(AARCH64_STRIP) is needed to strip OpenDP's library: apt-get install binutils-aarch64-linux-gnu"; exit 1; }
	rm -rf $(LAYERS) && mkdir -p $(LAYERS)/core/python $(LAYERS)/data/python $(LAYERS)/analytics/python $(LAYERS)/privacy/python
	$(LAYER_PIP) -t $(LAYERS)/core/python -r functions/requirements-core.txt
	$(LAYER_PIP) -t $(LAYERS)/data/python --no-deps -r functions/requirements-data.txt
	$(LAYER_PIP) -t $(LAYERS)/analytics/python --no-deps -r functions/requirements-analytics.txt
	$(LAYER_PIP) -t $(LAYERS)/privacy/python --no-deps -r functions/requirements-privacy.txt
	find $(LAYERS)/privacy/python -name '*.so' -exec $(AARCH64_STRIP) --strip-unneeded {} +
	$(BIN)/python -m infra.cloud.layers trim $(LAYERS)
	for layer in core data analytics privacy; do \
		PYTHONHASHSEED=0 "$(LAMBDA_PYTHON)" -m compileall -q -j 0 --invalidation-mode unchecked-hash -d /opt/python $(LAYERS)/$$layer/python >/dev/null || exit 1; \
	done
	$(BIN)/python -m infra.cloud.layers report $(LAYERS)
	touch $@
layer: $(RUNTIME) $(LAYERS)/.built

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

CDK := PATH=$(abspath $(BIN)):$$PATH npx cdk
synth: layer console node_modules/.package-lock.json  ## CloudFormation template into cdk.out (offline, no credentials): make synth STAGE=prod
	$(CDK) synth --quiet -c stage=$(STAGE)
	$(BIN)/cfn-lint --non-zero-exit-code error cdk.out/CityShare-$(STAGE).template.json

diff: layer console node_modules/.package-lock.json
	$(CDK) diff -c stage=$(STAGE)

# From a fresh clone: builds what it needs, bootstraps the account/region of cdk.json (idempotent),
# deploys the stage. Needs AWS credentials for the target account.
# APPROVAL=never for a pipeline that cannot answer CDK's question about widened permissions (the
# default asks a person, on a terminal, before any IAM or security group change is made).
APPROVAL ?= broadening
deploy: preflight layer console node_modules/.package-lock.json  ## deploy a stage of cdk.json: make deploy STAGE=dev [APPROVAL=never]
	$(CDK) bootstrap -c stage=$(STAGE)
	$(CDK) deploy -c stage=$(STAGE) --require-approval $(APPROVAL)

# Credentials for the stage's account, checked before anything is built (seconds, not a minute).
preflight: $(RUNTIME)
	$(BIN)/python -m infra.preflight --stage $(STAGE)

# `make e2e`: the e2e suite against embedded stacks. `make e2e STAGE=dev`: the e2e and security
# suites against that deployed stage, as its platform admin (PROFILE, made by the README's deploy
# steps; it must match the stack's ApiUrl and Audience outputs).
PROFILE ?= admin.json
e2e: $(DEV) $(DELTA_SHARING)  ## e2e suite; against a deployed stage: make e2e STAGE=dev [PROFILE=admin.json]
ifeq ($(origin STAGE),command line)
	$(BIN)/python -m infra.e2e --stage $(STAGE) --profile $(PROFILE)
else
	$(BIN)/pytest tests/e2e
endif

bootstrap-admin: $(RUNTIME)  ## register the platform admin's key in a deployed stage: make bootstrap-admin STAGE=prod JWK=admin.jwk
	$(BIN)/python -m infra.bootstrap --stage $(STAGE) --jwk $(JWK)

clean:
	rm -rf build cdk.out .cityshare .pytest_cache .mypy_cache .ruff_cache
