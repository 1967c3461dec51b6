# syntax=docker/dockerfile:1
# Two images from one distribution: the operator (no torch) and the serving pod.
#   docker build --target operator -t schema-overseer-operator .
#   docker build --target serving  -t schema-overseer-serving .
# (No Docker engine exists on the development machines; these images are built by CI elsewhere.)

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY serving/ serving/
RUN useradd --uid 10001 --no-create-home overseer

FROM base AS operator
RUN pip install '.[operator]'
USER 10001
ENTRYPOINT ["kopf", "run", "--all-namespaces", "-m", "overseer.operator"]

FROM base AS serving
# Ultralytics never reaches the network: no weight downloads, no telemetry, no pip auto-install.
ENV YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false ULTRALYTICS_SAFE_LOAD=1 YOLO_CONFIG_DIR=/tmp/ultralytics
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && pip install '.[serving]'
USER 10001
EXPOSE 3000
ENTRYPOINT ["overseer", "serve"]
