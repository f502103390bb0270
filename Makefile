# segpipe developer commands. `make` alone lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DATA ?=
PARAMS ?=

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

.PHONY: install
install: $(INSTALLED) ## Create .venv (if missing) and install segpipe with its dev tools

.PHONY: run
run: $(INSTALLED) ## Run the whole pipeline locally (DATA=dir for your data, PARAMS="--param k=v")
	$(BIN)/segpipe run $(if $(DATA),--data $(DATA)) $(PARAMS)

.PHONY: test
test: $(INSTALLED) ## Run lint and the test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

.PHONY: fmt
fmt: $(INSTALLED) ## Format and auto-fix the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: compile
compile: $(INSTALLED) ## Compile the pipeline to pipeline.yaml
	$(BIN)/segpipe compile -o pipeline.yaml

.PHONY: ui
ui: $(INSTALLED) ## Open the MLflow UI on the local store (http://127.0.0.1:5000)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

.PHONY: clean
clean: ## Remove local run outputs (keeps .venv)
	rm -rf local_outputs exports segpipe-data mlartifacts mlflow.db pipeline.yaml .pytest_cache
