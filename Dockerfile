# syntax=docker/dockerfile:1
# Two images from one distribution (pyproject.toml), each with only its own dependencies:
#   docker build --target operator -t schema-overseer-operator:0.1.0 .   # Kopf operator, no torch
#   docker build --target serving  -t schema-overseer-serving:0.1.0 .    # BentoML + Ultralytics + torch
# Tag both with the version in pyproject.toml: the chart's appVersion is their default tag
# (tests/unit/test_versions.py keeps the three equal). No Docker engine exists on the development
# machines; tests/unit/test_dockerfile.py checks what can be checked without one (COPY sources,
# entrypoints equal to the chart's and the operator's commands, non-root users, pinned base).
#
# The base is pinned to a Python patch release on a Debian release; pin it by digest too in your
# CI (`--build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:...`) and let a bot bump it.
# A CPU-only torch (much smaller than the CUDA build) comes from PyTorch's CPU wheel index:
# `--build-arg PIP_EXTRA_INDEX_URL=<that index>` for the serving target.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: the project's wheel (both packages; the images differ by the extras they install) ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY serving/ serving/
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- what both images share: a non-root user, no bytecode writes (read-only root filesystem) ---
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 10001 overseer \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin overseer

# --- the operator: Kopf, the Kubernetes client, cryptography; no torch, no BentoML ---
FROM runtime AS operator
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install "$(ls /wheels/schema_overseer-*.whl)[operator]"
USER 10001:10001
# Settings come from OVERSEER_* variables (docs/operator.md); the chart sets them and runs this
# very command (charts/schema-overseer/templates/deployment.yaml).
ENTRYPOINT ["python", "-m", "overseer.operator"]

# --- the serving pod: BentoML, Ultralytics, torch ---
FROM runtime AS serving
ARG PIP_EXTRA_INDEX_URL=""
# Ultralytics never reaches the network: no weight downloads, no telemetry, no pip auto-install.
ENV YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false ULTRALYTICS_SAFE_LOAD=1 YOLO_CONFIG_DIR=/tmp/ultralytics \
    BENTOML_HOME=/tmp/bentoml HOME=/tmp
# OpenCV (through Ultralytics) needs these shared libraries.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    PIP_EXTRA_INDEX_URL="${PIP_EXTRA_INDEX_URL}" pip install "$(ls /wheels/schema_overseer-*.whl)[serving]"
USER 10001:10001
EXPOSE 3000
# The operator's Deployment of a ModelDeployment runs `overseer serve --host $(POD_IP) ...`
# (operator/overseer/operator/render.py): the same command, its flags as args.
ENTRYPOINT ["overseer", "serve"]
