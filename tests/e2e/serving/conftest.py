"""Fixtures for the serving e2e tier: two real YOLO networks built from Ultralytics' bundled yaml."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from overseer_devtools.toymodels import build_detector
from PIL import Image
from serving_harness import ModelFile, Server, running


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelFile]:
    root = tmp_path_factory.mktemp("models")
    a = root / "cat-v1.pt"
    b = root / "animals-v2.pt"
    digest_a = build_detector(a, seed=1, names=["cat", "dog", "bird"])
    digest_b = build_detector(b, seed=2, names=["person", "car"])
    assert digest_a != digest_b
    return {
        "a": ModelFile(a, digest_a, "cat_recognition", "20240101"),
        "b": ModelFile(b, digest_b, "cat_recognition", "20240202"),
    }


@pytest.fixture(scope="session")
def image_bytes() -> bytes:
    rng = np.random.default_rng(7)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(models: dict[str, ModelFile], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per test module, starting on model A."""
    with running(tmp_path_factory.mktemp("server"), models["a"].document()) as srv:
        yield srv
