"""Rename hints and value rendering: what makes messages actionable."""

from __future__ import annotations

import pytest
from overseer.text import describe, field_path, found, most_similar, show


@pytest.mark.parametrize(
    ("name", "candidates", "expected"),
    [
        ("confidence", ["conf", "iou"], "conf"),
        ("conf", ["confidence", "classes"], "confidence"),
        ("iuo", ["iou", "conf"], "iou"),
        ("maxDet", ["max_det", "multi_label"], "max_det"),
        ("max_detections", ["max_det", "multi_label"], "max_det"),
        ("resolution", ["resize_resolution", "conf"], "resize_resolution"),
        ("batch", ["conf", "iou", "max_det"], None),
        ("x", ["y", "z"], None),
    ],
)
def test_most_similar(name: str, candidates: list[str], expected: str | None) -> None:
    assert most_similar(name, candidates) == expected


def test_rendering() -> None:
    assert show("abc") == "'abc'"
    assert show(True) == "true"
    assert show(None) == "null"
    assert len(show("x" * 1000)) == 60
    assert found([1, 2]) == "an array of 2 items"
    assert found({"a": 1}) == "an object"
    assert found(1.5) == "number 1.5"
    assert describe({"type": "number", "minimum": 0, "maximum": 1}) == "number between 0 and 1"
    assert describe({"type": "array", "items": {"type": "string"}, "minItems": 1}) == "array of string, at least 1 item"
    assert describe({"enum": ["a", "b"]}) == "one of 'a', 'b'"
    assert field_path("labels", ["app.kubernetes.io/name"]) == 'labels["app.kubernetes.io/name"]'
    assert field_path("customObjects", ["classes", 0, "name"]) == "customObjects.classes[0].name"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a\nb", "'a\\nb'"),
        ("tab\there\r", "'tab\\there\\r'"),
        ("it's", "'it\\'s'"),
        ("C:\\models", "'C:\\\\models'"),
        ("line\u2028sep\x85nel\x1b[31m", "'line\\u2028sep\\x85nel\\x1b[31m'"),
        (["a\nb"], '["a\\nb"]'),
        ({"k": "x\u2029"}, '{"k": "x\\u2029"}'),
        ("größe", "'größe'"),
    ],
)
def test_shown_values_are_one_unambiguous_line(value: object, expected: str) -> None:
    assert show(value) == expected
    assert len(show(value).splitlines()) == 1
