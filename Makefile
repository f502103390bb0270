# segpipe developer commands. `make` alone lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

# The interpreter for a new .venv: PYTHON=... overrides; else python3 when it is a supported
# version (3.11-3.13), else the first of python3.13, python3.12, python3.11 that runs.
PY_SUPPORTED := import sys; v = sys.version_info; sys.exit(not (v.major == 3 and 11 <= v.minor <= 13))
is_supported = $(shell $(1) -c '$(PY_SUPPORTED)' >/dev/null 2>&1 && echo yes)
PYTHON ?= $(firstword $(foreach py,python3 python3.13 python3.12 python3.11,$(if $(call is_supported,$(py)),$(py))))
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DATA ?=
PARAMS ?=
# Images: one per kind of step (docker/<kind>.Dockerfile -> segpipe-<kind>), never :latest.
# TAG defaults to the package version; `make images TAG=$(git rev-parse --short HEAD)` tags by commit
# (then compile/submit with the same --tag).
REGISTRY ?= $(SEGPIPE_REGISTRY)
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
TAG ?= $(VERSION)
DOCKER ?= docker
IMAGE_KINDS := beam trainer runtime
image_ref = $(if $(REGISTRY),$(patsubst %/,%,$(REGISTRY))/)segpipe-$(1):$(TAG)
# BASE_IMAGE=... builds every image on that base (Python 3.11) instead of its Dockerfile's default.
BASE_IMAGE ?=
# Each image installs core + its extra of pyproject.toml, from docker/locks/<image>.txt (make lock):
# exact versions with hashes for CPython 3.11 on x86_64 Linux, the images' Python and platform.
EXTRAS_beam := preprocess
EXTRAS_trainer := train
EXTRAS_runtime :=
LOCKS := docker/locks
UV_VERSION := 0.13.8
WHEELHOUSE := build/wheelhouse
WHEELHOUSES := $(foreach kind,$(IMAGE_KINDS),$(WHEELHOUSE)/$(kind)/deps/requirements.txt)
PACKAGE_SOURCES := pyproject.toml README.md $(shell find components pipelines -name '*.py')

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || { \
		test -n "$(PYTHON)" || { echo "no Python 3.11-3.13 found (tried python3, python3.13, python3.12, python3.11): install one or pass PYTHON=/path/to/python3.1x"; exit 2; }; \
		$(PYTHON) -c '$(PY_SUPPORTED)' || { echo "PYTHON=$(PYTHON) is $$($(PYTHON) -V 2>&1); segpipe needs Python 3.11-3.13"; exit 2; }; \
		$(PYTHON) -m venv $(VENV); }
	@$(BIN)/python -c '$(PY_SUPPORTED)' || { echo "$(VENV) has $$($(BIN)/python -V 2>&1); segpipe needs Python 3.11-3.13: remove $(VENV) (rm -rf $(VENV)) and run make again"; exit 2; }
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}'

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

.PHONY: test-fast
test-fast: $(INSTALLED) ## Lint and the quick tests (not those marked slow): under a minute on 2 idle cores
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -m "not slow" -n 2

.PHONY: test-containers
test-containers: $(INSTALLED) ## Build the images on a local Debian base, run the pipeline in them (root; own dockerd)
	bash tests/containers/run.sh

.PHONY: fmt
fmt: $(INSTALLED) ## Format and auto-fix the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: compile
compile: $(INSTALLED) ## Compile the pipeline for a cluster to pipeline.yaml (REGISTRY=... or env SEGPIPE_REGISTRY)
	$(BIN)/segpipe compile -o pipeline.yaml --tag $(TAG) $(if $(REGISTRY),--registry $(REGISTRY)) $(PARAMS)

.PHONY: lock
lock: $(INSTALLED) ## Re-resolve each image's lock (docker/locks/<image>.txt) from pyproject.toml
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(foreach kind,$(IMAGE_KINDS),$(BIN)/uv pip compile --quiet pyproject.toml $(LOCKS)/image-tools.in \
		$(addprefix --extra ,$(EXTRAS_$(kind))) --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes \
		--custom-compile-command "make lock" -o $(LOCKS)/$(kind).txt &&) true

$(WHEELHOUSE)/%/deps/requirements.txt: $(LOCKS)/%.txt docker/wheelhouse.py docker/install-venv.sh $(PACKAGE_SOURCES) $(INSTALLED)
	$(BIN)/python docker/wheelhouse.py $< $(WHEELHOUSE)/$*

.PHONY: wheelhouse
wheelhouse: $(WHEELHOUSES) ## Fill build/wheelhouse/<image>: its locked wheels and segpipe's (needs PyPI)

.PHONY: images
images: $(WHEELHOUSES) ## Build the step images segpipe-{beam,trainer,runtime}:TAG offline from the wheelhouse
	@for kind in $(IMAGE_KINDS); do \
		ref="$(call image_ref,$$kind)"; \
		echo "building $$ref"; \
		DOCKER_BUILDKIT=0 $(DOCKER) build --network host -f docker/$$kind.Dockerfile \
			$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
			--build-arg SEGPIPE_VERSION=$(TAG) -t "$$ref" $(WHEELHOUSE)/$$kind || exit 1; \
	done

.PHONY: push
push: need-registry images ## Build and push the step images to REGISTRY=... (e.g. us-docker.pkg.dev/PROJECT/REPO)
	@for kind in $(IMAGE_KINDS); do $(DOCKER) push "$(call image_ref,$$kind)" || exit 1; done

.PHONY: need-registry
need-registry:
	@test -n "$(REGISTRY)" || { echo "set REGISTRY=... (or env SEGPIPE_REGISTRY), e.g. us-docker.pkg.dev/PROJECT/REPO"; exit 2; }

.PHONY: mlflow-image
mlflow-image: ## Build (and with REGISTRY=..., push) the optional MLflow server image
	$(DOCKER) build -f docker/mlflow.Dockerfile --build-arg SEGPIPE_VERSION=$(TAG) -t "$(call image_ref,mlflow)" .
	$(if $(REGISTRY),$(DOCKER) push "$(call image_ref,mlflow)")

.PHONY: ui
ui: $(INSTALLED) ## Serve the MLflow UI on the local store and print the runs table's link (http://127.0.0.1:5000)
	$(BIN)/segpipe ui --workdir $(CURDIR)

.PHONY: screenshots
screenshots: $(INSTALLED) ## Refresh docs/mlflow-*.png from the browser test (needs Debian's chromium)
	SEGPIPE_SCREENSHOTS_DIR=$(CURDIR)/docs $(BIN)/pytest tests/test_mlflow_ui.py -q

.PHONY: settings-doc
settings-doc: $(INSTALLED) ## Regenerate the settings reference in docs/settings.md from the code
	$(BIN)/python -c "from pipelines.cli.params import write_settings_reference as w; w('docs/settings.md')"

.PHONY: clean
clean: ## Remove local run outputs (keeps .venv)
	rm -rf local_outputs exports segpipe-data mlartifacts mlflow.db mlflow-server pipeline.yaml .pytest_cache

.PHONY: bench-train
bench-train: $(INSTALLED) ## Where training time goes: peak GFLOP/s, the train step, real CamVid epochs
	$(BIN)/python tests/benchmarks/bench_train.py --epochs 2

.PHONY: bench-camvid
bench-camvid: $(INSTALLED) ## One segpipe run --preset camvid (~50 min on 2 Zen 4 cores): docs/results-camvid.md, beside published results
	$(BIN)/python tests/benchmarks/bench_camvid.py

.PHONY: bench
bench: $(INSTALLED) ## Run the benchmarks on ../shared/data (slow; prints ratios)
	$(BIN)/python tests/benchmarks/bench_preprocess.py
	$(BIN)/python tests/benchmarks/bench_large_image.py
	$(BIN)/python tests/benchmarks/bench_metrics.py
	$(BIN)/python tests/benchmarks/bench_train.py --skip-epochs
	$(BIN)/python tests/benchmarks/bench_snapshot.py
	$(BIN)/python tests/benchmarks/bench_refusals.py
