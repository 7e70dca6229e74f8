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

.PHONY: bootstrap-admin demo test lint typecheck unit integration e2e infra-test security openapi layer synth deploy diff bench local clean

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

demo: $(RUNTIME)  ## start the embedded stack and run the city scenario
	$(BIN)/cityshare demo

# pycanon (k-anonymity checks in the tests) pins old numpy and pandas: a virtualenv of its own.
PYCANON := build/pycanon/.installed
$(PYCANON): tests/requirements-pycanon.txt
	$(PYTHON) -m venv build/pycanon
	build/pycanon/bin/pip install -q -r tests/requirements-pycanon.txt
	touch $@

test: $(DEV) $(PYCANON) lint typecheck  ## ruff, mypy and every test suite
	$(BIN)/pytest

lint: $(DEV)
	$(BIN)/ruff check .

typecheck: $(DEV)
	$(BIN)/mypy functions infra cityshare benchmarks app.py

unit integration e2e security: $(DEV)
	$(BIN)/pytest tests/$@

infra-test: $(DEV)
	$(BIN)/pytest tests/infra

openapi: $(RUNTIME)  ## regenerate schemas/openapi.json and schemas/events/ from the pydantic models
	$(BIN)/python -m functions.handlers.openapi schemas

local: $(RUNTIME)  ## run the embedded stack until Ctrl-C
	$(BIN)/cityshare local up

bench: $(DEV)  ## print the benchmarks' figures
	$(BIN)/python -m benchmarks.api
	$(BIN)/python -m benchmarks.cold_start
	$(BIN)/python -m benchmarks.ingest
	$(BIN)/python -m benchmarks.authz
	$(BIN)/python -m benchmarks.views
	$(BIN)/python -m benchmarks.triggers

# The Lambda layers for arm64, from wheels only: no Docker, no compiler. "data" drops pyarrow's C++
# headers, Cython sources and tests (never loaded) so core + data stay under Lambda's 250 MB limit.
LAYER_PIP := $(BIN)/pip install -q --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 \
	--implementation cp --python-version 3.13 --only-binary=:all: --no-compile
$(LAYERS)/.built: functions/requirements-core.txt functions/requirements-data.txt functions/requirements-analytics.txt
	rm -rf $(LAYERS) && mkdir -p $(LAYERS)/core/python $(LAYERS)/data/python $(LAYERS)/analytics/python
	$(LAYER_PIP) -t $(LAYERS)/core/python -r functions/requirements-core.txt
	$(LAYER_PIP) -t $(LAYERS)/data/python --no-deps -r functions/requirements-data.txt
	$(LAYER_PIP) -t $(LAYERS)/analytics/python --no-deps -r functions/requirements-analytics.txt
	cd $(LAYERS)/data/python/pyarrow && rm -rf include tests *.pyx *.pxd
	du -sh $(LAYERS)/core $(LAYERS)/data $(LAYERS)/analytics
	touch $@
layer: $(RUNTIME) $(LAYERS)/.built

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

synth: layer node_modules/.package-lock.json  ## CloudFormation template into cdk.out (offline, no credentials)
	PATH=$(abspath $(BIN)):$$PATH npx cdk synth --quiet

diff: layer node_modules/.package-lock.json
	PATH=$(abspath $(BIN)):$$PATH npx cdk diff

deploy: layer node_modules/.package-lock.json  ## deploy to the AWS account of your credentials
	PATH=$(abspath $(BIN)):$$PATH npx cdk deploy --require-approval broadening

bootstrap-admin: $(RUNTIME)  ## register the platform admin's key in a deployed stack: make bootstrap-admin STACK=CityShare-prod JWK=admin.jwk
	$(BIN)/python -m infra.bootstrap --stack $(STACK) --jwk $(JWK)

clean:
	rm -rf build cdk.out .cityshare .pytest_cache .mypy_cache .ruff_cache
