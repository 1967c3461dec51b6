"""The generated pictures: deterministic, drawn where their boxes say, splits that never meet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from overseer_devtools import shapes


def test_a_picture_is_a_function_of_its_split_seed_and_index() -> None:
    again = shapes.scene(5)
    assert shapes.scene(5).png() == again.png()
    assert shapes.scene(5).shapes == again.shapes
    assert shapes.scene(6).png() != again.png()
    assert shapes.scene(5, seed=1).png() != again.png()


def pixels(item: shapes.Scene) -> bytes:
    return np.asarray(item.image).tobytes()


def test_training_pictures_are_never_held_out_pictures() -> None:
    held_out = {pixels(shapes.scene(i)) for i in range(10)}
    for seed in (1, 2):
        for split in ("train", "val"):
            drawn = {pixels(shapes.scene(i, split=split, seed=seed)) for i in range(10)}
            assert not drawn & held_out, (split, seed)


@pytest.mark.parametrize("index", range(12))
def test_each_box_holds_its_shape_in_its_colour(index: int) -> None:
    item = shapes.scene(index)
    assert 1 <= len(item.shapes) <= 3
    pixels = np.asarray(item.image).astype(int)
    for shape in item.shapes:
        x1, y1, x2, y2 = shape.box
        assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 160
        assert 16 <= x2 - x1 == y2 - y1 <= 48
        red, _, blue = pixels[(y1 + y2) // 2, (x1 + x2) // 2]
        assert (red > blue + 100) if shape.kind == "square" else (blue > red + 100), shape
        corner = pixels[y1, x1]  # a square fills its corner; a circle leaves the background there
        corner_is_shape = abs(corner - pixels[(y1 + y2) // 2, (x1 + x2) // 2]).max() < 40
        assert corner_is_shape == (shape.kind == "square"), shape
    for a in item.shapes:  # shapes never touch: each one is an object of its own
        for b in item.shapes:
            if a is not b:
                assert a.box[2] <= b.box[0] or b.box[2] <= a.box[0] or a.box[3] <= b.box[1] or b.box[3] <= a.box[1]


def test_the_drawing_can_be_asked_for_other_sizes_counts_and_classes() -> None:
    item = shapes.scene(0, size=(640, 480), count=(4, 4), side=(30, 30), kinds=("circle",))
    assert item.size == (640, 480)
    assert [s.kind for s in item.shapes] == ["circle"] * 4
    assert {s.box[2] - s.box[0] for s in item.shapes} == {30}


def test_yolo_labels_are_normalised_centre_and_size() -> None:
    item = shapes.scene(0, size=(200, 100), count=(1, 1), side=(20, 20), kinds=("circle",))
    (shape,) = item.shapes
    x1, y1, _, _ = shape.box
    label = shapes.yolo_labels(item).split()
    assert label[0] == "1"
    assert [float(v) for v in label[1:]] == pytest.approx([(x1 + 10) / 200, (y1 + 10) / 100, 0.1, 0.2], abs=1e-6)


def test_write_dataset_lays_out_a_yolo_data_set(tmp_path: Path) -> None:
    data_yaml = shapes.write_dataset(tmp_path / "d", seed=1, train=3, val=2)
    assert sorted(p.name for p in (tmp_path / "d" / "images" / "train").iterdir()) == [
        "0000.png",
        "0001.png",
        "0002.png",
    ]
    assert len(list((tmp_path / "d" / "labels" / "val").iterdir())) == 2
    text = data_yaml.read_text()
    assert f"path: {(tmp_path / 'd').resolve()}\n" in text  # absolute: Ultralytics' settings play no part
    assert "  0: square\n  1: circle\n" in text
    first = (tmp_path / "d" / "labels" / "train" / "0000.txt").read_text()
    assert first == shapes.yolo_labels(shapes.scene(0, split="train", seed=1))
