"""Fixtures for the serving e2e tier: the trained shapes detectors (`make models`) and pictures
whose drawn shapes the answers are checked against."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from overseer_devtools import shapes
from overseer_devtools.models import NAMES, TrainedModel, shapes_model
from serving_harness import ModelFile, Server, held_out_picture, running

# The models under the keys the tests use, each with its own version. "a" and "b" are two good
# detectors of the same classes; the others load but answer wrongly, or do not load.
SERVED = {
    "a": ("shapes-v1", "20240101"),
    "b": ("shapes-v2", "20240202"),
    "swapped": ("shapes-swapped", "20240303"),
    "blind": ("shapes-blind", "20240404"),
    "truncated": ("shapes-truncated", "20240505"),
}


@pytest.fixture(scope="session")
def trained() -> dict[str, TrainedModel]:
    """From the cache of `make models` (made here, once, if it is cold: a few minutes)."""
    return {name: shapes_model(name) for name in NAMES}


@pytest.fixture(scope="session")
def models(trained: dict[str, TrainedModel]) -> dict[str, ModelFile]:
    found = {
        key: ModelFile(trained[name].path, trained[name].digest, "shapes", version)
        for key, (name, version) in SERVED.items()
    }
    assert len({m.digest for m in found.values()}) == len(found)
    return found


@pytest.fixture(scope="session")
def scene() -> shapes.Scene:
    """A held-out 160x160 picture with three shapes, of both classes."""
    pictures = (held_out_picture(i, count=(3, 3)) for i in range(100))
    return next(p for p in pictures if {s.kind for s in p.shapes} == set(shapes.CLASSES))


@pytest.fixture(scope="session")
def image_bytes(scene: shapes.Scene) -> bytes:
    return scene.png()


@pytest.fixture(scope="module")
def server(models: dict[str, ModelFile], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per test module, starting on model A."""
    with running(tmp_path_factory.mktemp("server"), models["a"].document()) as srv:
        yield srv
