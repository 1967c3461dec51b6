"""Detection API, input limits, admin authentication and request metrics, on a real server
serving a trained detector: answers are checked against the shapes drawn in the picture."""

from __future__ import annotations

import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
from overseer_devtools import shapes
from PIL import Image
from serving_harness import ModelFile, Server, assert_sees, held_out_picture, metric_count, metric_value

PNG = "image/png"


def assert_correct(answer: dict[str, Any], model: ModelFile, scene: shapes.Scene) -> None:
    """The answer's shape, and that it sees what was drawn in `scene`."""
    assert answer["model"] == {"name": model.name, "version": model.version, "digest": model.digest}
    detections = answer["detections"]
    assert isinstance(detections, list)
    assert len(detections) <= 20  # customObjects.max_det default from the schema
    width, height = scene.size
    for d in detections:
        assert set(d) == {"class_id", "class_name", "confidence", "box"}
        assert (d["class_id"], d["class_name"]) in set(enumerate(shapes.CLASSES))
        assert 0.25 <= d["confidence"] <= 1.0  # customObjects.conf
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height  # in the original image's pixels
    assert_sees(detections, scene)


def test_detect_finds_what_was_drawn_and_multipart_and_json_give_the_same_answer(
    server: Server, models: dict[str, ModelFile], scene: shapes.Scene, image_bytes: bytes
) -> None:
    with server.client() as c:
        multipart = c.post("/detect", files={"image": ("x.png", image_bytes, PNG)})
        as_json = c.post("/detect", json={"image": base64.b64encode(image_bytes).decode()})
        as_jpeg = c.post("/detect", files={"image": ("x.jpg", scene.jpeg(), "image/jpeg")})
    assert multipart.status_code == 200, multipart.text
    assert as_json.status_code == 200, as_json.text
    assert_correct(multipart.json(), models["a"], scene)
    assert multipart.json() == as_json.json()
    assert_correct(as_jpeg.json(), models["a"], scene)  # lossy, slightly different pixels: still seen


def test_batch_endpoint_answers_per_image(
    server: Server, models: dict[str, ModelFile], scene: shapes.Scene, image_bytes: bytes
) -> None:
    others = [held_out_picture(i) for i in range(2)]
    pictures = [scene, *others]
    files = [("images", (f"{i}.png", p.png(), PNG)) for i, p in enumerate(pictures)]
    with server.client() as c:
        answer = c.post("/detect/batch", files=files)
        single = c.post("/detect", files={"image": ("x.png", image_bytes, PNG)}).json()
    assert answer.status_code == 200, answer.text
    results = answer.json()
    assert len(results) == 3
    for result, picture in zip(results, pictures, strict=True):  # in order: each answer is its own picture's
        assert_correct(result, models["a"], picture)
    assert results[0]["detections"] == single["detections"]


def requests_counted(server: Server, **labels: str) -> float:
    with server.client() as c:
        text = c.get("/metrics").text
    return metric_count(text, "overseer_requests_total", endpoint="detect_batch", **labels)


def test_batch_answers_a_bad_image_as_an_error_item_and_the_others_normally(
    server: Server, models: dict[str, ModelFile], scene: shapes.Scene, image_bytes: bytes
) -> None:
    huge = io.BytesIO()
    Image.new("L", (10_000, 8_000)).save(huge, format="PNG")  # 80 MP, a few KB compressed
    before = {code: requests_counted(server, code=code) for code in ("200", "400", "413")}
    with server.client() as c:
        answer = c.post(
            "/detect/batch",
            files=[
                ("images", ("0.png", image_bytes, PNG)),
                ("images", ("1.txt", b"not an image", "text/plain")),  # not identifiable
                ("images", ("2.png", image_bytes[: len(image_bytes) // 2], PNG)),  # truncated
                ("images", ("3.png", huge.getvalue(), PNG)),
                ("images", ("4.png", image_bytes, PNG)),
            ],
        )
    assert answer.status_code == 200, answer.text
    items = answer.json()
    assert len(items) == 5
    for good in (items[0], items[4]):
        assert_correct(good, models["a"], scene)
    errors = [items[i]["error"] for i in (1, 2, 3)]
    assert all(set(item) == {"error"} for item in (items[1], items[2], items[3]))
    assert [(e["status"], e["reason"]) for e in errors] == [
        (400, "bad_image"),
        (400, "bad_image"),
        (413, "image_too_large"),
    ]
    assert str(errors[0]["message"]).startswith("image 1: not a decodable image")
    assert str(errors[1]["message"]).startswith("image 2: not a decodable image")
    assert str(errors[2]["message"]).startswith("image 3: image is 10000x8000 pixels")
    after = {code: requests_counted(server, code=code) for code in ("200", "400", "413")}
    assert after == {"200": before["200"] + 2, "400": before["400"] + 2, "413": before["413"] + 1}  # per image


def test_batch_refuses_a_bad_request_with_the_same_error_contract_as_detect(server: Server, image_bytes: bytes) -> None:
    before = requests_counted(server)
    with server.client() as c:
        no_field = c.post("/detect/batch", files={"image": ("x.png", image_bytes, PNG)})
        text_field = c.post(  # a text part: BentoML would download it as a URL
            "/detect/batch", data={"images": "http://127.0.0.1:1/x.jpg"}, files={"note": ("n.txt", b"x", "text/plain")}
        )
        too_many = c.post(
            "/detect/batch", files=[("images", (f"{i}.png", image_bytes, PNG)) for i in range(17)]
        )
        wrong_type = c.post("/detect/batch", json={"images": []})
        malformed = c.post(
            "/detect/batch", content=b"--x\r\nnonsense", headers={"content-type": "multipart/form-data; boundary=x"}
        )
    assert (no_field.status_code, error_of(no_field)["reason"]) == (400, "bad_request")
    assert "'images'" in str(error_of(no_field)["message"])
    assert (text_field.status_code, error_of(text_field)["reason"]) == (400, "bad_request")  # never fetched as a URL
    assert str(error_of(text_field)["message"]).startswith("image 0: send a file part")
    assert (too_many.status_code, error_of(too_many)["reason"]) == (413, "too_large")
    assert (wrong_type.status_code, error_of(wrong_type)["reason"]) == (415, "unsupported_media_type")
    assert malformed.status_code == 400, malformed.text
    for answer in (no_field, text_field, too_many, wrong_type, malformed):  # {"error": {status, reason, message}}
        assert set(answer.json()) == {"error"} and answer.json()["error"]["status"] == answer.status_code
    assert requests_counted(server) == before + 5  # a refused request counts once


def batch_sizes(server: Server) -> tuple[float, float]:
    """(calls of the batch function, calls that saw exactly one image) so far."""
    with server.client() as c:
        text = c.get("/metrics").text
    return metric_count(text, "overseer_batch_size_count"), metric_count(text, "overseer_batch_size_bucket", le="1.0")


def concurrently(server: Server, bodies: list[list[tuple[str, tuple[str, bytes, str]]]]) -> list[httpx.Response]:
    """One client per body, all sending at once (released together by a barrier)."""
    barrier = threading.Barrier(len(bodies))

    def send(files: list[tuple[str, tuple[str, bytes, str]]]) -> httpx.Response:
        with server.client() as c:
            barrier.wait(timeout=60)
            return c.post("/detect/batch", files=files)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, bodies))


def test_adaptive_batching_merges_concurrent_requests(server: Server, models: dict[str, ModelFile]) -> None:
    calls_before, singles_before = batch_sizes(server)
    answers: list[httpx.Response] = []
    pictures = [held_out_picture(i) for i in range(8)]  # a picture of its own per client
    for _ in range(4):  # rounds of 8 clients with one image each
        answers += concurrently(server, [[("images", (f"{i}.png", p.png(), PNG))] for i, p in enumerate(pictures)])
    for answer, picture in zip(answers, pictures * 4, strict=True):
        assert answer.status_code == 200, answer.text
        (item,) = answer.json()  # each client gets exactly its own one answer back: its picture's
        assert_correct(item, models["a"], picture)
    calls, singles = batch_sizes(server)
    merged_calls = (calls - calls_before) - (singles - singles_before)
    # 32 requests of one image each reached the batch function in fewer calls: some merged
    assert calls - calls_before < len(answers), (calls - calls_before, len(answers))
    assert merged_calls >= 1


def calls_over(server: Server, size: int) -> float:
    """Calls of the batch function that got more than `size` images, so far."""
    with server.client() as c:
        text = c.get("/metrics").text
    return metric_count(text, "overseer_batch_size_count") - metric_count(
        text, "overseer_batch_size_bucket", le=f"{size:.1f}"
    )


def test_a_bad_image_from_one_client_does_not_fail_a_concurrent_good_client(
    server: Server, models: dict[str, ModelFile], scene: shapes.Scene, image_bytes: bytes
) -> None:
    # Three good clients of one image and one bad client of four images, at once. A call of the
    # batch function without the bad request has at most 3 images, the bad request alone has 4:
    # a call of more than 4 merged good and bad images - the case this test is about.
    good = [("images", ("x.png", image_bytes, PNG))]
    bad = [
        ("images", ("bad.png", image_bytes[: len(image_bytes) // 3], PNG)),
        ("images", ("bad.txt", b"not an image", "text/plain")),
        ("images", ("empty.png", b"", PNG)),
        ("images", ("bad.gif", b"GIF89a but not really", "image/gif")),
    ]
    bodies = [good, good, bad, good]
    merged_before = calls_over(server, 4)
    for _ in range(20):  # rounds until BentoML merged the two kinds at least once (it does within a few)
        answers = concurrently(server, bodies)
        for answer, sent in zip(answers, bodies, strict=True):
            assert answer.status_code == 200, answer.text
            items = answer.json()
            assert len(items) == len(sent)
            if sent is good:
                assert_correct(items[0], models["a"], scene)
            else:
                assert [item["error"]["reason"] for item in items] == ["bad_image"] * 4
                assert [str(item["error"]["message"])[:8] for item in items] == [f"image {i}:" for i in range(4)]
        if calls_over(server, 4) > merged_before:
            break
    assert calls_over(server, 4) > merged_before, "no call of the batch function merged good and bad requests"


def test_probes(server: Server) -> None:
    with server.client() as c:
        assert c.get("/livez").status_code == 200
        assert c.get("/readyz").status_code == 200


def error_of(answer: httpx.Response) -> dict[str, object]:
    error = answer.json()["error"]
    assert isinstance(error, dict)
    return error


def test_bad_images_are_refused_with_the_reason(server: Server) -> None:
    huge = io.BytesIO()
    Image.new("L", (10_000, 8_000)).save(huge, format="PNG")  # 80 MP, a few KB compressed
    with server.client() as c:
        not_image = c.post("/detect", files={"image": ("x.jpg", b"GIF89a but not really", "image/jpeg")})
        too_many_pixels = c.post("/detect", files={"image": ("big.png", huge.getvalue(), "image/png")})
        bad_base64 = c.post("/detect", json={"image": "***"})
        no_field = c.post("/detect", files={"picture": ("x.jpg", b"x", "image/jpeg")})
        wrong_type = c.post("/detect", content=b"x", headers={"content-type": "text/plain"})
    assert (not_image.status_code, error_of(not_image)["reason"]) == (400, "bad_image")
    assert (too_many_pixels.status_code, error_of(too_many_pixels)["reason"]) == (413, "image_too_large")
    assert "10000x8000" in str(error_of(too_many_pixels)["message"])
    assert bad_base64.status_code == 400 and "base64" in str(error_of(bad_base64)["message"])
    assert no_field.status_code == 400 and "'image'" in str(error_of(no_field)["message"])
    assert wrong_type.status_code == 415


def test_body_over_the_byte_limit_is_refused(server: Server) -> None:
    blob = np.random.default_rng(0).integers(0, 256, size=28 * 1024 * 1024, dtype=np.uint8).tobytes()
    with server.client() as c:
        answer = c.post("/detect", files={"image": ("big.bin", blob, "application/octet-stream")})
    assert answer.status_code == 413


def test_admin_needs_the_bearer_token(server: Server, models: dict[str, ModelFile]) -> None:
    body = models["b"].document()
    with server.client() as c:
        answers = {
            "get without token": c.get("/admin/model"),
            "put without token": c.put("/admin/model", json=body),
            "get with wrong token": c.get("/admin/model", headers={"Authorization": "Bearer wrong"}),
            "put with wrong token": c.put("/admin/model", json=body, headers={"Authorization": "Bearer wrong"}),
            "basic auth": c.get("/admin/model", auth=("admin", "e2e-admin-token")),
        }
    for what, answer in answers.items():
        assert answer.status_code == 401, what
        assert error_of(answer)["reason"] == "unauthorized", what
    assert server.model()["model"]["digest"] == models["a"].digest  # nothing was swapped


def test_metrics_count_requests_by_model_version(
    server: Server, models: dict[str, ModelFile], image_bytes: bytes
) -> None:
    def counts() -> tuple[float, float]:
        """(requests counted for this model version, request durations observed) so far."""
        with server.client() as c:
            text = c.get("/metrics").text
        labels = {"endpoint": "detect", "model_version": "20240101"}
        requests = metric_count(text, "overseer_requests_total", code="200", **labels)
        return requests, metric_count(text, "overseer_request_duration_seconds_count", **labels)

    before = counts()
    with server.client() as c:
        for _ in range(3):
            assert c.post("/detect", files={"image": ("x.png", image_bytes, PNG)}).status_code == 200
        text = c.get("/metrics").text
    assert counts() == (before[0] + 3, before[1] + 3)  # each request counted and timed once
    info = metric_value(text, "overseer_model_info", version="20240101", digest=models["a"].digest)
    assert info == 1.0
