# The two commands: `make setup` (installs everything) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup engine broker images test test-unit lint demo demo-fix demo-pr bench accuracy clean

setup: $(STAMP) engine broker images ## venv + package + Docker engine + broker + base image

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall only when the package's declaration changed: a second `make setup` is quick.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[all,dev]'
	@touch $(STAMP)

engine:
	@bash scripts/setup-engine.sh

# RabbitMQ on loopback, for the Celery executor and its tests (quick when it answers).
broker:
	@bash scripts/setup-broker.sh

images: $(STAMP) engine
	$(BIN)/runner images build

test: ## the whole suite, Docker tests included (a missing engine fails the run)
	$(BIN)/pytest

test-unit: ## only the tests that need no engine
	$(BIN)/pytest -m 'not docker'

lint:
	$(BIN)/ruff check runner tests
	$(BIN)/ruff format --check runner tests
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: ## verify-patch on the bundled Flask example's three candidates
	bash examples/demo.sh

demo-fix: ## the Claude fix loop on the Flask example, against a scripted loopback API
	bash examples/demo-fix.sh

demo-pr: ## Sentry SDK → runner serve → fix → branch in a bare remote → draft PR (loopback GitHub)
	bash examples/demo-pr.sh

bench:
	$(BIN)/python bench/run.py

# The accuracy corpus (bench/accuracy): bare truth, then verify-patch three ways per case;
# resumable (results and environment images cached), writes docs/accuracy.md. Not a test.
# ACCURACY_ARGS="--cases ID ..." or "--limit N" to run part of it.
accuracy: $(STAMP) engine images
	$(BIN)/python bench/accuracy/run.py $(ACCURACY_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
