# Fraud Detection Platform — the user's interface. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Settings: .env.example holds every variable; .env (optional, git-ignored) overrides it.
include .env.example
-include .env
include infra/versions.env
export

PY := .venv/bin/python
PYTEST := .venv/bin/pytest
STACK := $(PY) infra/local/stack.py
COMPOSE_STACK := $(PY) infra/compose/compose_stack.py
# `docker compose` when the Docker CLI has the compose plugin, else the pinned build from `make setup`
COMPOSE ?= $(if $(shell docker compose version 2>/dev/null),docker compose,.cache/bin/docker-compose)

##@ Runtimes: the native stack (plain processes) and Docker Compose (one container per service)
# make up / down / status / clean use Docker Compose unless RUNTIME=local; make demo and make test
# use the native stack unless RUNTIME=compose.
.PHONY: setup setup-compose up down status clean build
RUNTIME ?=
ifneq ($(filter-out local compose,$(RUNTIME)),)
$(error RUNTIME must be local or compose, not '$(RUNTIME)')
endif

setup: ## Install everything the native stack needs (idempotent, cached under .cache/)
	infra/setup/setup.sh

setup-compose: ## Docker engine (Debian docker.io), compose plugin, debian:bookworm-slim base (idempotent)
	infra/setup/setup.sh toolchain uv python
	infra/setup/compose.sh

up: up-$(or $(RUNTIME),compose) ## Start the platform and wait until every service is healthy (RUNTIME=compose|local)
down: down-$(or $(RUNTIME),compose) ## Stop the platform; data is kept (RUNTIME=compose|local)
status: status-$(or $(RUNTIME),compose) ## Each service: health, memory, address (RUNTIME=compose|local)
clean: clean-$(or $(RUNTIME),compose) ## Stop the platform and delete its data (RUNTIME=compose|local)

.PHONY: up-local down-local status-local clean-local
up-local: ## Native stack: start every service as a process and wait until all are ready
	$(STACK) up

down-local: ## Native stack: stop every service (data in var/data is kept)
	$(STACK) down

status-local:
	$(STACK) status

clean-local: ## Native stack: stop it and delete its data and logs
	$(STACK) clean

.PHONY: up-compose down-compose status-compose clean-compose compose-config
build: setup-compose ## Build the platform image of the compose stack (cached layers)
	$(COMPOSE_STACK) build

up-compose: setup-compose ## Compose: build (cached), start, wait until healthy; var/reports/compose-up.json
	$(COMPOSE_STACK) up

down-compose:
	$(COMPOSE_STACK) down

status-compose:
	$(COMPOSE_STACK) status

clean-compose: ## Compose: stop it and delete its volumes
	$(COMPOSE_STACK) clean

compose-config: ## Validate docker-compose.yml (works without a Docker engine)
	$(COMPOSE) --env-file infra/versions.env --env-file .env.example -f docker-compose.yml config --quiet

##@ Main job
.PHONY: demo

demo: setup up-$(or $(RUNTIME),local) ## Install (if needed), start the stack, run the platform end to end, print a summary
	FRAUD_RUNTIME=$(or $(RUNTIME),local) $(PY) -m demo

##@ Ingestion
.PHONY: produce replay replay-dlq register-schemas

COUNT ?= 10000
TPS ?= 0
SEED ?= 42
DAYS ?= 0
BAD_RATE ?= 0
produce: ## Simulated transactions + labels → Kafka (COUNT=10000 TPS=0 SEED=42 DAYS=auto BAD_RATE=0)
	$(PY) -m producer run --count $(COUNT) --tps $(TPS) --seed $(SEED) --days $(DAYS) --inject-bad-rate $(BAD_RATE)

replay: ## Stream a Parquet/CSV file of transactions (and its labels) → Kafka: make replay FILE=path
	@test -n "$(FILE)" || { echo "usage: make replay FILE=path/to/transactions.parquet (or .csv)"; exit 2; }
	$(PY) -m producer replay "$(FILE)"

replay-dlq: ## Re-validate the DLQ, re-send what now passes (report: var/reports/replay-dlq.json)
	$(PY) -m producer replay-dlq

register-schemas: ## Set compatibility and register the Avro schemas (a refused change exits 3)
	$(PY) -m producer register-schemas

##@ Transforms (dbt on Trino, orchestrated by Airflow)
.PHONY: dbt-build dbt-parse

dbt-build: ## Build Silver and Gold with every data and unit test (dbt build, in its own venv)
	$(PY) -m common.dbt build

dbt-parse: ## Parse the dbt project (no warehouse needed)
	$(PY) -m common.dbt parse

##@ ML
.PHONY: simulate evaluate train

simulate: ## 6 months of simulated transactions → var/data/transactions.parquet (DAYS=182 SEED=42)
	$(PY) -m producer simulate --out var/data/transactions.parquet --days $(if $(filter 0,$(DAYS)),182,$(DAYS)) --seed $(SEED)

evaluate: ## Train + evaluate every model on a labelled file → var/reports/evaluate.json (DATA=path)
	@test -n "$(DATA)" || { echo "usage: make evaluate DATA=path/to/transactions.parquet (or .csv)"; exit 2; }
	$(PY) -m ml evaluate --data "$(DATA)" --out var/reports/evaluate.json

train: ## Train on a labelled file, log to MLflow, register the model (DATA=path)
	@test -n "$(DATA)" || { echo "usage: make train DATA=path/to/transactions.parquet"; exit 2; }
	$(PY) -m ml train --data "$(DATA)" --register "$(MLFLOW_MODEL_NAME)"

##@ Serving
.PHONY: serve write-features apply-online rebuild-online parity

serve: ## Run the scoring API in the foreground on SERVING_PORT (model: MLFLOW_MODEL_NAME@champion)
	OMP_NUM_THREADS=1 $(PY) -m serving

write-features: ## Gold transactions → the Redis online state, merged (DATA=path: from a file instead)
	$(PY) -m ml write-features $(if $(DATA),--data "$(DATA)",)

rebuild-online: ## After Redis lost its data: the online state from Gold, then Kafka (var/reports/rebuild_online.json)
	$(PY) -m ml rebuild-online

PARITY_DAYS ?= 4
PARITY_CUSTOMERS ?= 9000
parity: ## Replay a simulation through the running API; every vector = training's (var/reports/parity.json)
	$(PY) -m bench.parity --days $(PARITY_DAYS) --customers $(PARITY_CUSTOMERS)

##@ Quality
.PHONY: test test-compose test-unit test-integration test-e2e lint format bench

test: setup lint up-local ## Lint, then all tests: unit, integration and e2e against the real local stack
	$(PYTEST) tests/unit tests/integration tests/e2e

test-compose: setup up-compose ## The integration and e2e tiers against the compose stack (started, then stopped)
	rc=0; FRAUD_RUNTIME=compose $(PYTEST) -m "not browser and not native" tests/integration tests/e2e || rc=$$?; $(COMPOSE_STACK) down; exit $$rc

test-unit: ## Unit tests only (pure logic, no services)
	$(PYTEST) tests/unit

test-integration: up-local ## Integration tests against the local stack
	$(PYTEST) tests/integration

test-e2e: up-local ## End-to-end tests against the local stack
	$(PYTEST) tests/e2e

lint: ## ruff (lint + format check), mypy, import-linter (layers), sqlfluff + dbt parse, promtool, compose config
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports
	cd dbt && ../.venvs/dbt/bin/sqlfluff lint models
	$(PY) -m common.dbt parse >/dev/null
	promtool check rules monitoring/prometheus/rules/*.yml
	promtool test rules monitoring/prometheus/tests/*.yml
	$(MAKE) --no-print-directory compose-config

format: ## Apply ruff formatting and safe fixes
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

BENCH ?=
bench: ## Benchmarks → var/reports/bench.json and docs/benchmarks.md (BENCH=<section> runs one)
	$(PY) -m bench $(if $(BENCH),--section $(BENCH),)

##@ Help
.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
	  /^[a-zA-Z0-9_-]+:.*##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)
