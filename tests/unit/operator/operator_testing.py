"""Example objects for the operator's unit tests: the examples/ manifests as the API server would
hand them to the operator (namespace, uid, generation set)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NAMESPACE = "ml-serving"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def _load(name: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    return body


_SCHEMA = _load("object-detector.modelschema.yaml")
_DEPLOYMENT = _load("cat-recognition.modeldeployment.yaml")


def schema(**metadata: Any) -> dict[str, Any]:
    body = copy.deepcopy(_SCHEMA)
    body["metadata"].update({"namespace": NAMESPACE, "uid": "uid-schema", "generation": 1, **metadata})
    return body


def deployment(**metadata: Any) -> dict[str, Any]:
    body = copy.deepcopy(_DEPLOYMENT)
    body["metadata"].update({"namespace": NAMESPACE, "uid": "uid-mdep", "generation": 1, **metadata})
    return body


def with_version(body: dict[str, Any], number: int, **changes: Any) -> dict[str, Any]:
    """`body` (a ModelSchema) with a new version copied from its latest, changed by `changes`."""
    out = copy.deepcopy(body)
    latest = copy.deepcopy(out["spec"]["versions"][-1])
    latest["version"] = number
    latest.update(changes)
    out["spec"]["versions"].append(latest)
    return out
