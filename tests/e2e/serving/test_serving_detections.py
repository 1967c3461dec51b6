"""What the served model sees, against what was drawn: trained detectors find every shape; models
that load but are wrong are caught by their answers; and the customObjects a schema governs change
the answers the way docs/serving.md says - the seed's Case 2 ("resolution moves 224 -> 640 ...
results silently change"), shown on a real network."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from overseer_devtools import shapes
from overseer_devtools.scoring import from_results, match
from overseer_serving import offline
from PIL import Image
from serving_harness import ModelFile, Server, assert_sees, held_out_picture, running, with_classes_swapped

# Held-out pictures (never trained on): 160x160, one to three shapes of 24-48 px each.
PICTURES = [held_out_picture(i) for i in range(8)]


@pytest.fixture(scope="module")
def server(models: dict[str, ModelFile], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("detections"), models["a"].document()) as srv:
        yield srv


def serve(server: Server, model: ModelFile, **custom_objects: Any) -> None:
    """Swap `server` in place to `model` with `custom_objects` (conf 0.25 unless given)."""
    document = model.document(customObjects={"conf": 0.25, **custom_objects})
    with server.admin() as c:
        answer = c.put("/admin/model", json=document)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"]["digest"] == model.digest


def detect(server: Server, picture: shapes.Scene) -> list[dict[str, Any]]:
    with server.client() as c:
        answer = c.post("/detect", files={"image": ("x.png", picture.png(), "image/png")})
    assert answer.status_code == 200, answer.text
    detections: list[dict[str, Any]] = answer.json()["detections"]
    return detections


def ordered(detections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(detections, key=lambda d: (-d["confidence"], d["box"]))


@pytest.mark.parametrize("key", ["a", "b"])
def test_each_trained_model_finds_every_drawn_shape(server: Server, models: dict[str, ModelFile], key: str) -> None:
    serve(server, models[key])
    for picture in PICTURES:
        assert_sees(detect(server, picture), picture)


def test_the_two_good_models_are_different_networks(server: Server, models: dict[str, ModelFile]) -> None:
    answers = {}
    for key in ("a", "b"):
        serve(server, models[key])
        answers[key] = [detect(server, p) for p in PICTURES]
    assert answers["a"] != answers["b"]  # same shapes found, by different weights: other scores and boxes


def test_a_model_with_swapped_classes_loads_and_calls_each_shape_the_other_class(
    server: Server, models: dict[str, ModelFile]
) -> None:
    serve(server, models["swapped"])  # loads, passes the smoke inference: the swap succeeds
    for picture in PICTURES:
        detections = detect(server, picture)
        assert match(detections, picture.shapes).found == []  # not one shape with its right class
        assert not match(detections, with_classes_swapped(picture)).missed  # each one, with the other
    serve(server, models["a"])


def test_a_blind_model_loads_and_finds_nothing(server: Server, models: dict[str, ModelFile]) -> None:
    serve(server, models["blind"], conf=0.001)
    assert [detect(server, p) for p in PICTURES] == [[]] * len(PICTURES)
    serve(server, models["a"])


def test_weights_that_do_not_load_leave_the_old_model_seeing(server: Server, models: dict[str, ModelFile]) -> None:
    serve(server, models["a"])
    with server.admin() as c:
        answer = c.put("/admin/model", json=models["truncated"].document())
    assert (answer.status_code, answer.json()["error"]["reason"]) == (500, "load_failed"), answer.text
    assert server.model()["model"]["digest"] == models["a"].digest
    for picture in PICTURES:
        assert_sees(detect(server, picture), picture)


# --- customObjects change the answers as documented -------------------------------------------


def test_conf_is_the_score_threshold(server: Server, models: dict[str, ModelFile]) -> None:
    serve(server, models["a"], conf=0.05)
    low = [detect(server, p) for p in PICTURES]
    scores = sorted(d["confidence"] for answer in low for d in answer)
    threshold = round(scores[len(scores) // 2], 3) + 0.0005  # the median: some answers keep, some drop
    serve(server, models["a"], conf=threshold)
    high = [detect(server, p) for p in PICTURES]
    # Exactly the detections scored at or above the threshold; nothing else changes.
    assert [ordered(a) for a in high] == [ordered([d for d in a if d["confidence"] >= threshold]) for a in low]
    assert 0 < sum(map(len, high)) < sum(map(len, low))


def test_classes_keeps_only_the_classes_named(server: Server, models: dict[str, ModelFile]) -> None:
    serve(server, models["a"])
    every = [detect(server, p) for p in PICTURES]
    for kept, named in ((["circle"], "circle"), ([0], "square")):  # by name or by class id
        serve(server, models["a"], classes=kept)
        for picture, all_classes in zip(PICTURES, every, strict=True):
            detections = detect(server, picture)
            assert ordered(detections) == ordered([d for d in all_classes if d["class_name"] == named])
            drawn = [s for s in picture.shapes if s.kind == named]
            assert not match(detections, drawn).missed
    assert {s.kind for p in PICTURES for s in p.shapes} == {"square", "circle"}  # both filters were tested


def test_resize_resolution_is_the_size_the_model_sees(server: Server, models: dict[str, ModelFile]) -> None:
    # 640x640 pictures of shapes 28-36 px: at resize_resolution 640 they keep the size the model
    # learnt; at 160 they shrink to 7-9 px and the model no longer sees them. The same document
    # with one number changed, and the answers silently change: the seed's Case 2.
    large = [shapes.scene(i, size=(640, 640), side=(28, 36), count=(3, 5)) for i in range(4)]
    serve(server, models["a"], resize_resolution=640)
    for picture in large:
        assert_sees(detect(server, picture), picture)
    serve(server, models["a"], resize_resolution=160)
    found = sum(len(match(detect(server, p), p.shapes).found) for p in large)
    assert found <= sum(len(p.shapes) for p in large) // 4


def test_max_det_keeps_the_most_confident_detections(server: Server, models: dict[str, ModelFile]) -> None:
    serve(server, models["a"])
    every = [detect(server, p) for p in PICTURES]
    serve(server, models["a"], max_det=1)
    for all_detections, picture in zip(every, PICTURES, strict=True):
        assert all_detections  # so that keeping one is a real cut
        assert detect(server, picture) == ordered(all_detections)[:1]


def shapes_with_both_classes(detections: list[dict[str, Any]], picture: shapes.Scene) -> int:
    """Drawn shapes found whose very box is reported again under the other class."""
    found = match(detections, picture.shapes).found
    return sum(any(e["box"] == d["box"] and e["class_name"] != d["class_name"] for e in detections) for _, d in found)


def test_multi_label_lets_one_box_carry_several_classes(server: Server, models: dict[str, ModelFile]) -> None:
    # At a very low threshold the other class's score of a box passes too; with multi_label the
    # box is reported once per class above the threshold, without it once, with its best class.
    serve(server, models["a"], conf=0.002, max_det=300)
    single = [detect(server, p) for p in PICTURES]
    serve(server, models["a"], conf=0.002, max_det=300, multi_label=True)
    multi = [detect(server, p) for p in PICTURES]
    assert [shapes_with_both_classes(a, p) for a, p in zip(single, PICTURES, strict=True)] == [0] * len(PICTURES)
    assert sum(shapes_with_both_classes(a, p) > 0 for a, p in zip(multi, PICTURES, strict=True)) >= 3
    assert sum(map(len, multi)) > sum(map(len, single))


def test_agnostic_nms_compares_boxes_across_classes(server: Server, models: dict[str, ModelFile]) -> None:
    # NMS (iou 0.7) compares the boxes of one class only, so the same box under two classes (what
    # multi_label gives at a low threshold, above) survives it. agnostic_nms compares every box
    # with every other: of the two, only the one with the best class is left.
    serve(server, models["a"], conf=0.002, max_det=300, multi_label=True)
    per_class = [detect(server, p) for p in PICTURES]
    serve(server, models["a"], conf=0.002, max_det=300, multi_label=True, agnostic_nms=True)
    agnostic = [detect(server, p) for p in PICTURES]
    assert sum(shapes_with_both_classes(a, p) > 0 for a, p in zip(per_class, PICTURES, strict=True)) >= 3
    assert [shapes_with_both_classes(a, p) for a, p in zip(agnostic, PICTURES, strict=True)] == [0] * len(PICTURES)
    for answer, picture in zip(agnostic, PICTURES, strict=True):
        assert_sees(answer, picture)  # what was drawn, under its right class, is what is left


def test_the_server_answers_as_the_model_does_outside_the_server(server: Server, models: dict[str, ModelFile]) -> None:
    """The served answer is Ultralytics' own predict with the served arguments, box for box."""
    offline.apply()  # before Ultralytics is imported: no network, restricted loading
    from ultralytics import YOLO  # type: ignore[attr-defined]

    serve(server, models["b"], conf=0.3, max_det=10)
    model = YOLO(str(models["b"].path), task="detect")
    for picture in PICTURES[:4]:
        (result,) = model.predict(picture.image, imgsz=160, conf=0.3, max_det=10, iou=0.7, verbose=False)
        served = detect(server, picture)
        assert served == from_results(result)
        assert_sees(served, picture)  # not two empty answers
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.get("/readyz").status_code == 200


def test_the_demo_helper_prints_found_against_drawn_and_draws_the_boxes(
    server: Server, models: dict[str, ModelFile], tmp_path: Path
) -> None:
    def demo(picture: int) -> tuple[subprocess.CompletedProcess[str], Path]:
        out = tmp_path / f"detect-{picture}.png"
        command = [sys.executable, "-m", "overseer_devtools.demo_detect", "call", server.url, "--picture", str(picture)]
        done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=60, check=False)
        return done, out

    serve(server, models["a"])
    right, picture = demo(3)
    drawn = len(shapes.scene(3).shapes)
    assert right.returncode == 0, right.stderr
    assert f"right: found {drawn} of {drawn} drawn shapes" in right.stdout
    assert Image.open(picture).size == (480, 480)  # the 160x160 picture, three times larger
    serve(server, models["swapped"])
    wrong, _ = demo(3)
    assert wrong.returncode == 3, wrong.stderr
    assert f"WRONG: found 0 of {drawn} drawn shapes" in wrong.stdout
    serve(server, models["a"])
