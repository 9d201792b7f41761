# The two commands a newcomer needs: `make up` and `make test`. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Settings come from the environment; a `.env` file (see .env.example) is read if present.
-include .env
export

# The Python code reads VENV_DIR through mlsys.config (Settings.venv_python); make runs before
# any environment exists, so it keeps the same default itself (tests/test_config.py checks).
VENV_DIR ?= $(CURDIR)/.venvs
APP_PY := $(VENV_DIR)/app/bin/python
TFDV_PY := $(VENV_DIR)/tfdv/bin/python
PYTEST_ARGS ?=

.PHONY: help setup envs system-deps lock up down status restart-api db migrate train schema-draft schema-stats schema-check schema-propose schema-proposals schema-show schema-approve schema-reject test lint format bench

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: envs system-deps ## install what is missing (uv, the three environments, chromium); a no-op when up to date

envs:
	@scripts/envs.sh

system-deps: ## install Debian's chromium (browser test), haproxy (API_WORKERS >= 2) and redis-server (Celery broker) when missing
	@scripts/system_deps.sh

lock: ## re-resolve requirements/*.in into requirements/*.txt, every file pinned by its sha256 hash
	@scripts/envs.sh --lock

up: setup ## start the system on embedded defaults (database, model, services)
	@$(APP_PY) -m training.train --if-missing
	@$(APP_PY) -m ops up

down: ## stop everything that `make up` started
	@$(APP_PY) -m ops down

status: ## say what runs
	@$(APP_PY) -m ops status

restart-api: ## replace the API processes one after the other, losing no request (API_WORKERS >= 2)
	@$(APP_PY) -m service.fleet restart

db migrate: setup ## start the database if it is ours and apply pending migrations
	@$(APP_PY) -m ops db

.PHONY: prune-predictions
prune-predictions: setup ## drop the months of predictions older than PREDICTIONS_RETENTION_MONTHS, create the months ahead
	@$(APP_PY) -m mlsys.history maintain

train: setup ## (re)train the model into MODEL_DIR
	@$(APP_PY) -m training.train

schema-draft: setup ## write TFDV's inferred schema beside the curated one (never over it)
	@DATASET_PATH="$$($(APP_PY) -m mlsys.config dataset-path)" $(TFDV_PY) -m mlsys.tfdv_tools draft

schema-stats: setup ## regenerate the training statistics used for drift
	@DATASET_PATH="$$($(APP_PY) -m mlsys.config dataset-path)" $(TFDV_PY) -m mlsys.tfdv_tools stats

schema-check: setup ## validate the whole data set against the curated schema
	@DATASET_PATH="$$($(APP_PY) -m mlsys.config dataset-path)" $(TFDV_PY) -m mlsys.tfdv_tools check

# Schema proposals (docs/schema.md). The id may follow the target (`make schema-approve 7`) or
# be given as ID=7; REASON="..." is recorded with the decision, BY=name overrides your login.
ifneq ($(filter schema-approve schema-reject schema-show,$(firstword $(MAKECMDGOALS))),)
ID := $(or $(ID),$(word 2,$(MAKECMDGOALS)))
$(eval $(word 2,$(MAKECMDGOALS)):;@:)
# Passed through the environment, never pasted into the shell line: a reason may hold quotes.
# Only for these targets: exported by `make test`, an empty ID would reach the tests' makes.
export ID REASON BY
endif
PROPOSAL_ARGS = "$$ID" $(if $(REASON),--reason "$$REASON") $(if $(BY),--by "$$BY")

schema-propose: setup ## propose schema changes from the evidence of the recent files
	@$(APP_PY) -m pipelines.proposals propose

schema-proposals: setup ## list the schema proposals, newest first
	@$(APP_PY) -m pipelines.proposals list

schema-show: setup ## one schema proposal with its diff and evidence: make schema-show ID
	@$(APP_PY) -m pipelines.proposals show "$$ID"

schema-approve: setup ## approve a schema proposal: make schema-approve ID [REASON="..."]
	@$(APP_PY) -m pipelines.proposals approve $(PROPOSAL_ARGS)

schema-reject: setup ## reject a schema proposal: make schema-reject ID [REASON="..."]
	@$(APP_PY) -m pipelines.proposals reject $(PROPOSAL_ARGS)

test: setup ## run the whole test suite (starts its own throw-away database)
	@$(APP_PY) -m pytest $(PYTEST_ARGS)

lint: setup ## ruff check and format check
	@$(VENV_DIR)/app/bin/ruff check . && $(VENV_DIR)/app/bin/ruff format --check .

format: setup ## ruff format
	@$(VENV_DIR)/app/bin/ruff format . && $(VENV_DIR)/app/bin/ruff check --fix .

.PHONY: raw-data
raw-data: setup ## split the data set into DATA_DIR/raw-data with synthetic errors (RAW_DATA_ARGS="--help")
	@$(APP_PY) -m error_injection generate $(RAW_DATA_ARGS)

bench: setup ## run the benchmarks in bench/ and print their figures (BENCH=name for one)
	@$(APP_PY) -m bench $(BENCH)
