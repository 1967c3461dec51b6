# schema-overseer - every target installs what it needs; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# The stamp is keyed by pyproject.toml's content (not its mtime): a fresh clone or a git worktree
# sharing the venv does not reinstall, a dependency change does.
PIP_STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml 2>/dev/null | cut -c1-16)
CLUSTER_DIR ?= .cluster
# How `make up` runs the operator: chart (helm install, as a user does) or process (a local
# process with url webhooks: a quick edit-restart loop when working on the operator).
OPERATOR ?= chart
# The source folders first: a git worktree sharing .venv runs its own code, not the editable install's.
export PYTHONPATH := $(CURDIR)/operator:$(CURDIR)/serving:$(CURDIR)/hack$(if $(PYTHONPATH),:$(PYTHONPATH))
# Ultralytics must never reach the network (weights, telemetry, pip auto-install).
export YOLO_OFFLINE := 1
export YOLO_AUTOINSTALL := false
export ULTRALYTICS_SAFE_LOAD := 1
PYTEST := $(PY) -m pytest
# One version: pyproject.toml's. `overseer --version`, the chart's appVersion and the image tags
# agree (tests/unit/test_versions.py).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_REGISTRY ?=
OPERATOR_IMAGE := $(IMAGE_REGISTRY)$(if $(IMAGE_REGISTRY),/)schema-overseer-operator:$(VERSION)
SERVING_IMAGE := $(IMAGE_REGISTRY)$(if $(IMAGE_REGISTRY),/)schema-overseer-serving:$(VERSION)

.PHONY: help venv controlplane models up down status logs crds crds-check lint test test-unit test-cluster test-e2e demo bench images chart clean

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(PIP_STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	# pip keeps its wheel cache (~/.cache/pip): torch is downloaded once per machine.
	$(PY) -m pip install -q -e '.[operator,serving,test,dev]'
	@touch $@

venv: $(PIP_STAMP) ## create .venv and install the project with all extras (idempotent)

controlplane: ## build etcd, kube-apiserver, kube-controller-manager from Go modules (cached in ~/.cache)
	bash hack/controlplane/build.sh all

models: venv ## train the toy shape detectors once (cached in ~/.cache/schema-overseer/models); print NAME PATH DIGEST
	$(PY) -m overseer_devtools.models

up: venv controlplane ## start the local cluster and install the operator with its Helm chart (OPERATOR=process: a local process); kubeconfig in .cluster/kubeconfig
	$(PY) -m localcluster up --dir $(CLUSTER_DIR)
	$(PY) -m localcluster.overseer_operator up --dir $(CLUSTER_DIR) --mode $(OPERATOR)

down: ## stop the operator, the local cluster and every process it started
	@test -x $(PY) && $(PY) -m localcluster.overseer_operator down --dir $(CLUSTER_DIR) || true
	@test -x $(PY) && $(PY) -m localcluster down --dir $(CLUSTER_DIR) || true

status: ## is the local cluster running? the operator?
	@$(PY) -m localcluster status --dir $(CLUSTER_DIR); $(PY) -m localcluster.overseer_operator status --dir $(CLUSTER_DIR)

logs: ## print pod process logs of the local cluster (POD=namespace/name prefix)
	@$(PY) -m localcluster logs $(POD) --dir $(CLUSTER_DIR)

crds: venv ## regenerate crds/ (and the chart's copy and webhook template) from the Python sources
	$(PY) -m overseer.crdgen --out crds/
	$(PY) -m overseer.crdgen --out charts/schema-overseer/files/crds/
	$(PY) -m overseer.operator.chartgen

crds-check: venv ## fail when crds/ (or the chart's webhook template) differs from what the sources generate
	$(PY) -m overseer.crdgen --out crds/ --check
	$(PY) -m overseer.crdgen --out charts/schema-overseer/files/crds/ --check
	$(PY) -m overseer.operator.chartgen --check

lint: venv ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: venv controlplane lint models ## lint, then run every test tier (unit, cluster, e2e)
	$(PYTEST) tests

test-unit: venv ## fast tests of pure logic: no cluster, no servers
	$(PYTEST) tests -m unit

test-cluster: venv controlplane ## tests against the real local control plane
	$(PYTEST) tests -m cluster

test-e2e: venv controlplane models ## end-to-end tests with real serving processes
	$(PYTEST) tests -m e2e

demo: up models ## bring the local cluster up and show it
	@KUBECONFIG=$(abspath $(CLUSTER_DIR))/kubeconfig bash hack/demo.sh

images: ## build the operator and serving images (needs a Docker engine; IMAGE_REGISTRY=host/path to prefix)
	@command -v docker >/dev/null || { echo "images: no Docker engine here; build in CI: docker build --target operator|serving ." >&2; exit 2; }
	docker build --target operator -t $(OPERATOR_IMAGE) .
	docker build --target serving -t $(SERVING_IMAGE) .

chart: ## lint the Helm chart and package it into dist/ (helm is built from its Go module once)
	@helm=$$(bash hack/controlplane/build.sh helm | sed -n 's/^HELM=//p') \
	  && $$helm lint charts/schema-overseer && $$helm package charts/schema-overseer --destination dist/

bench: venv models ## run the benchmarks and print their figures
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean: down ## remove the venv, cluster state and caches (keeps ~/.cache binaries and pip cache)
	rm -rf $(VENV) $(CLUSTER_DIR) .mypy_cache .ruff_cache .pytest_cache
