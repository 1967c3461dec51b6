"""Shared fixtures of the schema-core tests: the object-detector schema and a CLI runner."""

from __future__ import annotations

import copy
from typing import Any

import pytest

# Version 1 of the object-detector contract, as the seed documents describe it.
DETECTOR_V1: dict[str, Any] = {
    "labels": {
        "type": "object",
        "required": ["owner", "stage"],
        "properties": {
            "owner": {"type": "string"},
            "stage": {"type": "string", "enum": ["dev", "staging", "production"]},
        },
    },
    "metadata": {
        "type": "object",
        "required": ["f1"],
        "properties": {"f1": {"type": "number", "minimum": 0, "maximum": 1}, "dataset_version": {"type": "string"}},
    },
    "customObjects": {
        "type": "object",
        "additionalProperties": False,
        "required": ["conf"],
        "properties": {
            "resize_resolution": {"type": "integer", "minimum": 32, "maximum": 1280, "multipleOf": 32, "default": 640},
            "conf": {"type": "number", "minimum": 0, "maximum": 1},
            "iou": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.45},
            "multi_label": {"type": "boolean", "default": False},
        },
    },
}


@pytest.fixture
def detector_v1() -> dict[str, Any]:
    return copy.deepcopy(DETECTOR_V1)
