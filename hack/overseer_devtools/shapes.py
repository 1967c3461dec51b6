"""Generated pictures of red squares and blue circles, with the boxes that were drawn.

The data set of the trained toy detectors (`overseer_devtools.models`) and the test images that
check what they see. Every picture is a pure function of (split, seed, index) and the drawing
parameters: the same call draws the same pixels on any machine (numpy's PCG64 and PIL's drawing),
and the splits never share a picture, so held-out images were never trained on.

    scene = shapes.scene(3)                    # a 160x160 held-out picture, 1-3 shapes
    scene.png(), scene.shapes                  # its bytes, and what was drawn (class + box)
    shapes.write_dataset(root, seed=1, train=96, val=16)   # YOLO layout + data.yaml

Boxes are `(x1, y1, x2, y2)` in pixel-edge coordinates (a square drawn over columns 10..29 has
x1 = 10, x2 = 30), the convention of YOLO's answers.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image

CLASSES = ("square", "circle")  # class id = position; squares are red, circles blue
Split = Literal["train", "val", "heldout"]
_SPLIT_CODE = {"train": 1, "val": 2, "heldout": 3}  # first word of each picture's random seed
_GAP = 4  # pixels kept free between two shapes, so that every drawn shape is its own object


@dataclass(frozen=True)
class Shape:
    kind: str  # one of CLASSES
    box: tuple[int, int, int, int]

    @property
    def class_id(self) -> int:
        return CLASSES.index(self.kind)


@dataclass(frozen=True)
class Scene:
    image: Image
    shapes: tuple[Shape, ...]

    def png(self) -> bytes:
        buf = io.BytesIO()
        self.image.save(buf, format="PNG")
        return buf.getvalue()

    def jpeg(self, quality: int = 90) -> bytes:
        buf = io.BytesIO()
        self.image.save(buf, format="JPEG", quality=quality)
        return buf.getvalue()

    @property
    def size(self) -> tuple[int, int]:
        width, height = self.image.size
        return int(width), int(height)


def scene(
    index: int,
    *,
    split: Split = "heldout",
    seed: int = 0,
    size: tuple[int, int] = (160, 160),
    count: tuple[int, int] = (1, 3),
    side: tuple[int, int] = (16, 48),
    kinds: Sequence[str] = CLASSES,
) -> Scene:
    """Picture number `index` of (`split`, `seed`): `count` shapes (inclusive range) of sides in
    `side` pixels (inclusive), of the classes in `kinds`, on a noisy background of `size` (w, h)."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    rng = np.random.default_rng([_SPLIT_CODE[split], seed, index])
    width, height = size
    # A grey of any brightness, slightly tinted: the shapes' colours stay the cue, as in the classes.
    background = rng.integers(90, 220) + rng.integers(-15, 16, size=3)
    noise = rng.normal(0.0, 10.0, size=(height, width, 3))
    pixels = np.clip(background + noise, 0, 255).astype(np.uint8)
    image = PILImage.fromarray(pixels, mode="RGB")
    draw = ImageDraw.Draw(image)
    drawn: list[Shape] = []
    wanted = int(rng.integers(count[0], count[1] + 1))
    for _ in range(200):  # rejection sampling of free places; a crowded canvas gets fewer shapes
        if len(drawn) == wanted:
            break
        s = int(rng.integers(side[0], side[1] + 1))
        x1, y1 = int(rng.integers(0, width - s + 1)), int(rng.integers(0, height - s + 1))
        box = (x1, y1, x1 + s, y1 + s)
        kind = str(kinds[int(rng.integers(len(kinds)))])
        colour = _colour(rng, kind)
        if any(_near(box, other.box) for other in drawn):
            continue
        inclusive = (x1, y1, x1 + s - 1, y1 + s - 1)  # PIL's rectangle and ellipse include the end pixel
        if kind == "square":
            draw.rectangle(inclusive, fill=colour)
        else:
            draw.ellipse(inclusive, fill=colour)
        drawn.append(Shape(kind, box))
    return Scene(image, tuple(drawn))


def _colour(rng: np.random.Generator, kind: str) -> tuple[int, int, int]:
    strong, weak = int(rng.integers(190, 256)), rng.integers(0, 70, size=2)
    if kind == "square":
        return strong, int(weak[0]), int(weak[1])
    return int(weak[0]), int(weak[1]), strong


def _near(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return not (a[2] + _GAP <= b[0] or b[2] + _GAP <= a[0] or a[3] + _GAP <= b[1] or b[3] + _GAP <= a[1])


def yolo_labels(item: Scene) -> str:
    """The YOLO label file of a scene: `class cx cy w h` per shape, normalised to the image."""
    width, height = item.size
    lines = []
    for shape in item.shapes:
        x1, y1, x2, y2 = shape.box
        cx, cy, w, h = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height
        lines.append(f"{shape.class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "\n".join(lines) + "\n"


def write_dataset(root: Path, *, seed: int, train: int, val: int, size: tuple[int, int] = (160, 160)) -> Path:
    """Write a YOLO detection data set under `root` (images/ and labels/ per split, PNG) and its
    data.yaml with absolute paths (Ultralytics resolves relative ones against its own settings).
    Returns the data.yaml path."""
    for split, n in (("train", train), ("val", val)):
        images, labels = root / "images" / split, root / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            item = scene(i, split=split, seed=seed, size=size)  # type: ignore[arg-type]
            item.image.save(images / f"{i:04d}.png")
            (labels / f"{i:04d}.txt").write_text(yolo_labels(item))
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(CLASSES))
    data = root / "data.yaml"
    data.write_text(f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return data


def held_out(n: int, *, seed: int = 0, **drawing: object) -> list[Scene]:
    """`n` held-out pictures (never trained on), numbered 0..n-1; `drawing` as for `scene`."""
    return [scene(i, split="heldout", seed=seed, **drawing) for i in range(n)]  # type: ignore[arg-type]
