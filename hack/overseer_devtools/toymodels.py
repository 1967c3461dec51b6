"""Small randomly initialised YOLO detectors, built from Ultralytics' bundled yaml (no download).

For tests, benchmarks and demos: the weights are random, but a raised class-score bias makes the
model report boxes, so answers are non-empty and well-formed.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from overseer_serving import offline
from overseer_serving.digest import sha256_file


def build_detector(path: Path, *, seed: int = 0, names: list[str] | None = None, score_bias: float = 4.0) -> str:
    """Write a yolov8n-sized detector to `path` (a .pt file); return its sha256 digest."""
    offline.apply()
    import torch

    ultralytics: Any = importlib.import_module("ultralytics")
    tasks: Any = importlib.import_module("ultralytics.nn.tasks")

    names = names or ["cat", "dog", "bird"]
    torch.manual_seed(seed)
    yolo = ultralytics.YOLO("yolov8n.yaml")  # bundled config, resolved locally
    model = tasks.DetectionModel(tasks.yaml_model_load("yolov8n.yaml"), nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    for branch in model.model[-1].cv3:  # per-level class-score convs of the Detect head
        branch[-1].bias.data.fill_(score_bias)
    yolo.model = model
    path.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(str(path))
    return sha256_file(path)
