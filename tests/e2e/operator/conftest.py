"""Fixtures of the rollout's end-to-end tests: the session's local cluster, one operator per module,
toy models, a weights server with faults, and a namespace per module (its serving pods are the
expensive part, so a module's tests share them)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from localcluster.overseer_operator import remove_webhooks
from localcluster.stack import Stack
from PIL import Image
from rollout_support import Model, Operator, WeightsServer, example, weights_server
from support.cluster import Kubectl


@pytest.fixture(scope="module")
def rollout_operator(local_cluster: Stack) -> Iterator[Operator]:
    handle = Operator(local_cluster.dir)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()
        remove_webhooks(local_cluster.dir)  # later modules may run without an operator


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Model]:
    """Detectors with different weights (a pod caches weights by digest: a test that needs a first
    download - slow, flaky - takes a model no pod fetched before), f1 rising with the version."""
    from overseer_devtools.toymodels import build_detector

    root = tmp_path_factory.mktemp("rollout-models")
    out = {}
    for i in range(1, 9):
        path = root / f"v{i}.pt"
        out[f"v{i}"] = Model(path, build_detector(path, seed=i), f"2024{i:02d}{i:02d}", round(0.8 + i / 100, 2))
    corrupt = root / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not a checkpoint" * 4096)
    from overseer_serving.digest import sha256_file

    out["corrupt"] = Model(corrupt, sha256_file(corrupt), "20240909", 0.99)
    return out


@pytest.fixture(scope="session")
def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(7).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def weights_http() -> Iterator[WeightsServer]:
    with weights_server() as server:
        yield server


@pytest.fixture(scope="module")
def module_kubectl(kubectl_admin: Kubectl, rollout_operator: Operator) -> Iterator[Kubectl]:
    """A namespace for the module, with the example ModelSchema in it."""
    name = f"r-{uuid.uuid4().hex[:8]}"
    kubectl_admin.run("create", "namespace", name)
    kubectl = kubectl_admin.in_namespace(name)
    try:
        import yaml

        kubectl.run("apply", "-f", "-", stdin=yaml.safe_dump(example("object-detector.modelschema.yaml")))
        yield kubectl
    finally:
        kubectl_admin.run("delete", "namespace", name, "--wait=false", check=False)
