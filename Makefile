# Entry points for the local stack and the tests; the work is done by ops/stack.sh.
# `make up` is idempotent: on a running stack it only checks and returns.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
STACK := ops/stack.sh
PYTEST_ARGS ?=

.PHONY: up services down status lint test clean cluster-up cluster-down cluster-status cluster-test

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
# The slowest tests are listed: the suite has a 20-minute budget (.ci/run).
test: up lint
	.venv/bin/python -m pytest --durations=15 $(PYTEST_ARGS)

clean:
	@$(STACK) clean

# The local cluster (ops/cluster.sh): 3 Kafka brokers, ZooKeeper, 2x2 ClickHouse, 2 apis and 2
# workers per stage, on their own ports with state in .stack/cluster/; the single node is untouched.
cluster-up:
	@ops/cluster.sh up

cluster-down:
	@ops/cluster.sh down

cluster-status:
	@ops/cluster.sh status

# Fault tests against the cluster (tests/cluster/, not collected by `make test`).
cluster-test: cluster-up
	PYTHONPATH=$(CURDIR) .venv/bin/python -m pytest -m cluster -s tests/cluster $(PYTEST_ARGS)
