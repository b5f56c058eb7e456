# Developer shortcuts. `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

VENV ?= .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
PIP := $(PYTHON) -m pip
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: help install run test test-postgres lint bench ci

help: ## Show this list of targets
	@echo "Usage: make <target> [PYTEST_ARGS=...]"
	@echo
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_-]+:.*## / { printf "  %-15s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

$(PYTHON):
	python3 -m venv $(VENV)

install: $(PYTHON) ## Create .venv (once) and install the package in it, editable, with test and lint extras
	$(PIP) install -q -e '.[test,lint]'

run: install ## Migrate, load demo data, serve the API (gunicorn 127.0.0.1:8000) + scheduler; Ctrl-C stops both
	$(BIN)/privacy db upgrade
	$(BIN)/privacy demo
	@echo "Starting API on http://$(HOST):$(PORT) ($(WORKERS) workers) and the scheduler; Ctrl-C stops both"
	@web=; sched=; \
	stop() { trap - INT TERM EXIT; \
	    for p in $$web $$sched; do kill -TERM $$p 2>/dev/null || true; done; \
	    wait 2>/dev/null || true; }; \
	trap 'stop; exit 130' INT; trap 'stop; exit 143' TERM; trap stop EXIT; \
	$(BIN)/privacy scheduler & sched=$$!; \
	$(BIN)/gunicorn -w $(WORKERS) -b $(HOST):$(PORT) wsgi:app & web=$$!; \
	rc=0; wait -n $$web $$sched || rc=$$?; \
	echo "a process exited (status $$rc); stopping the other one"; \
	exit $$rc

test: install ## Run the test suite (SQLite)
	$(BIN)/pytest $(PYTEST_ARGS)

test-postgres: install ## Run the test suite against a throwaway PostgreSQL (.ci/postgres.sh)
	@pg_env=$$(bash .ci/postgres.sh start); \
	eval "$$pg_env"; \
	trap 'bash .ci/postgres.sh stop "$$PRIVACY_CI_PG_DIR"' EXIT; \
	echo "PRIVACY_TEST_DATABASE_URL=$$PRIVACY_TEST_DATABASE_URL"; \
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install ## Run ruff, mypy and the import-linter layer contracts
	$(BIN)/ruff check . && $(BIN)/mypy privacy api retention exports && $(BIN)/lint-imports

bench: install ## Run the benchmarks (python -m bench.checks, bench, bench.requests, bench.fanout, bench.retention, bench.pg_signup)
	$(PYTHON) -m bench.checks
	$(PYTHON) -m bench
	$(PYTHON) -m bench.requests
	$(PYTHON) -m bench.fanout
	$(PYTHON) -m bench.retention
	$(PYTHON) -m bench.pg_signup

ci: ## Run the full CI script (.ci/run) locally
	bash .ci/run
