# Entry points for the local stack and the tests; the work is done by ops/stack.sh.
# `make up` is idempotent: on a running stack it only checks and returns.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
STACK := ops/stack.sh
PYTEST_ARGS ?=

.PHONY: up services down status lint test clean

up:
	@$(STACK) up

services:
	@$(STACK) services

down:
	@$(STACK) down

status:
	@$(STACK) status

# Lint, format and types first: they take seconds, the suite minutes.
lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

# Tests run against the real servers (see STYLE.md), so they always start from `make up`.
test: up lint
	.venv/bin/python -m pytest $(PYTEST_ARGS)

clean:
	@$(STACK) clean
