# siyu: the two commands are `make run` and `make test` (README.md).
#
#   make run        install (Python only), migrate, seed the demo workspace, serve on :8000
#   make test       install everything the tests need, run the suite on SQLite and on PostgreSQL
#   make check      lint + type check, then make test
#   make lint | typecheck | fmt | fmt-check
#   make test-sqlite | test-postgres   one half of make test (services started as needed)
#   make services-start | services-stop | services-env   the PostgreSQL + Redis test servers
#
# Variables: HOST, PORT (make run), PYTEST_ARGS (extra pytest arguments), SIYU_HOME.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: help run test check lint typecheck fmt fmt-check bootstrap bootstrap-python \
	test-sqlite test-postgres services-start services-stop services-env

help:
	@sed -n '3,11s/^# \{0,1\}//p' Makefile

bootstrap-python:
	scripts/bootstrap.sh python

bootstrap:
	scripts/bootstrap.sh all

run: bootstrap-python
	$(VENV)/bin/siyu init
	$(VENV)/bin/siyu demo
	exec $(VENV)/bin/siyu up --host $(HOST) --port $(PORT)

test: bootstrap
	scripts/test.sh all $(PYTEST_ARGS)

test-sqlite: bootstrap
	scripts/test.sh sqlite $(PYTEST_ARGS)

test-postgres: bootstrap
	scripts/test.sh postgres $(PYTEST_ARGS)

# `ruff format --check` joins `check` once the tree has been formatted (`make fmt`).
check: lint typecheck
	$(MAKE) test

lint: bootstrap-dev-tools
	$(VENV)/bin/ruff check .

typecheck: bootstrap-dev-tools
	$(VENV)/bin/mypy siyu config

fmt: bootstrap-dev-tools
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

fmt-check: bootstrap-dev-tools
	$(VENV)/bin/ruff format --check .

# ruff and mypy come with the dev extras; no Debian packages are needed for them.
.PHONY: bootstrap-dev-tools
bootstrap-dev-tools:
	@[ -x $(VENV)/bin/ruff ] && [ -x $(VENV)/bin/mypy ] || SIYU_SKIP_APT=1 scripts/bootstrap.sh all

services-start:
	scripts/services.sh start

services-stop:
	scripts/services.sh stop

services-env:
	@scripts/services.sh env
