"""Matching detections to drawn shapes, and mAP50, on hand-made answers with known scores."""

from __future__ import annotations

from typing import Any

import pytest
from overseer_devtools.scoring import iou, map50, match
from overseer_devtools.shapes import Shape

SQUARE = Shape("square", (10, 10, 30, 30))
CIRCLE = Shape("circle", (50, 50, 80, 80))


def det(name: str, box: tuple[float, ...], confidence: float) -> dict[str, Any]:
    return {"class_id": 0 if name == "square" else 1, "class_name": name, "confidence": confidence, "box": list(box)}


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)


def test_a_shape_is_found_only_by_its_class_with_enough_overlap() -> None:
    m = match([det("square", (11, 10, 30, 31), 0.9), det("square", (50, 50, 80, 80), 0.8)], [SQUARE, CIRCLE])
    assert [s for s, _ in m.found] == [SQUARE]
    assert m.missed == [CIRCLE]  # a box in the right place with the wrong class does not find it
    assert [d["box"] for d in m.extra] == [[50, 50, 80, 80]]
    assert not m.perfect
    assert "MISSED circle" in m.describe() and "EXTRA  square" in m.describe()

    shifted = match([det("square", (20, 10, 40, 30), 0.9)], [SQUARE])  # IoU 1/3
    assert shifted.missed == [SQUARE]


def test_a_second_detection_of_the_same_shape_is_an_extra() -> None:
    m = match([det("circle", (50, 50, 80, 80), 0.6), det("circle", (51, 50, 80, 80), 0.9)], [CIRCLE])
    assert [d["confidence"] for _, d in m.found] == [0.9]  # the more confident one takes it
    assert [d["confidence"] for d in m.extra] == [0.6]


def test_map50() -> None:
    truth = [[SQUARE], [CIRCLE]]
    perfect = [[det("square", SQUARE.box, 0.9)], [det("circle", CIRCLE.box, 0.8)]]
    assert map50(perfect, truth) == 1.0
    assert map50([[], []], truth) == 0.0
    # squares: a false positive above the true one -> precision 1/2 at recall 1: AP 0.5; circles 1.0
    fp_first = [[det("square", SQUARE.box, 0.5), det("square", (100, 100, 120, 120), 0.9)], perfect[1]]
    assert map50(fp_first, truth) == pytest.approx(0.75)
    # a false positive below the true one costs nothing at IoU 0.5
    fp_after = [[det("square", SQUARE.box, 0.9), det("square", (100, 100, 120, 120), 0.1)], perfect[1]]
    assert map50(fp_after, truth) == 1.0
    with pytest.raises(ValueError, match="2 answers for 1 pictures"):
        map50(perfect, truth[:1])
