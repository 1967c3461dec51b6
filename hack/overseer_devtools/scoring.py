"""What a detector saw against what was drawn: per-picture matching and mAP50.

Detections are in the serving answer's shape (`{"class_id", "class_name", "confidence", "box"}`),
so the same functions score `/detect` answers and raw `model.predict` results (`from_results`).
A detection and a drawn shape match when their class *names* agree and their IoU is at least the
threshold: the class name is what a user of /detect reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from overseer_devtools.shapes import CLASSES, Shape

Box = Sequence[float]
Detection = Mapping[str, Any]


def iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Match:
    """One picture: each drawn shape found (with its detection) or missed; detections left over."""

    found: list[tuple[Shape, Detection]] = field(default_factory=list)
    missed: list[Shape] = field(default_factory=list)
    extra: list[Detection] = field(default_factory=list)

    @property
    def perfect(self) -> bool:
        return not self.missed and not self.extra

    def describe(self) -> str:
        """One line per shape and per extra detection, for failure messages and the demo."""
        lines = [f"found  {s.kind:<6} {list(s.box)} as {_show(d)}" for s, d in self.found]
        lines += [f"MISSED {s.kind:<6} {list(s.box)}" for s in self.missed]
        lines += [f"EXTRA  {_show(d)}" for d in self.extra]
        return "\n".join(lines)


def _show(d: Detection) -> str:
    return f"{d['class_name']} {[round(float(v)) for v in d['box']]} conf {float(d['confidence']):.2f}"


def match(detections: Iterable[Detection], drawn: Iterable[Shape], *, threshold: float = 0.5) -> Match:
    """Greedy matching, most confident detection first (as mAP counts a true positive)."""
    result = Match()
    unmatched = list(drawn)
    for d in sorted(detections, key=lambda d: -float(d["confidence"])):
        candidates = [(iou(d["box"], s.box), s) for s in unmatched if s.kind == d["class_name"]]
        best = max(candidates, key=lambda c: c[0], default=None)
        if best is not None and best[0] >= threshold:
            unmatched.remove(best[1])
            result.found.append((best[1], d))
        else:
            result.extra.append(d)
    result.missed = unmatched
    return result


def average_precision(recall: Sequence[float], precision: Sequence[float]) -> float:
    """Area under the precision envelope (all-point interpolation, as VOC 2010+)."""
    r = [0.0, *recall, 1.0]
    p = [1.0, *precision, 0.0]
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    return sum((r[i + 1] - r[i]) * p[i + 1] for i in range(len(r) - 1))


def map50(answers: Sequence[Iterable[Detection]], truths: Sequence[Iterable[Shape]]) -> float:
    """Mean over CLASSES of the average precision at IoU 0.5, over a set of pictures (detections
    should come from a low `conf`, e.g. 0.001, for the curve to reach low scores)."""
    if len(answers) != len(truths):
        raise ValueError(f"{len(answers)} answers for {len(truths)} pictures")
    scored: dict[str, list[tuple[float, bool]]] = {name: [] for name in CLASSES}
    positives = dict.fromkeys(CLASSES, 0)
    for detections, truth in zip(answers, truths, strict=True):
        drawn = list(truth)
        for s in drawn:
            positives[s.kind] += 1
        m = match(detections, drawn)
        for _, d in m.found:
            scored[d["class_name"]].append((float(d["confidence"]), True))
        for d in m.extra:
            scored.setdefault(str(d["class_name"]), []).append((float(d["confidence"]), False))
    aps = []
    for name in CLASSES:
        hits = sorted(scored[name], key=lambda h: -h[0])
        if positives[name] == 0:
            continue
        tp = fp = 0
        recall, precision = [], []
        for _, ok in hits:
            tp, fp = tp + ok, fp + (not ok)
            recall.append(tp / positives[name])
            precision.append(tp / (tp + fp))
        aps.append(average_precision(recall, precision))
    return sum(aps) / len(aps) if aps else 0.0


def from_results(result: Any) -> list[dict[str, Any]]:
    """One Ultralytics `Results` as detections in the serving answer's shape (rounded alike)."""
    boxes, names = result.boxes, result.names
    return [
        {
            "class_id": int(c),
            "class_name": str(names[int(c)]),
            "confidence": round(float(p), 5),
            "box": [round(float(v), 2) for v in xyxy],
        }
        for xyxy, p, c in zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist(), strict=True)
    ]
