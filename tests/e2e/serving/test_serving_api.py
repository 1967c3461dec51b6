"""Detection API, input limits, admin authentication and request metrics, on a real server."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
from PIL import Image
from serving_harness import ModelFile, Server, metric_value


def assert_well_formed(answer: dict[str, object], model: ModelFile, names: set[str]) -> None:
    assert answer["model"] == {"name": model.name, "version": model.version, "digest": model.digest}
    detections = answer["detections"]
    assert isinstance(detections, list) and detections, "the toy model reports boxes"
    assert len(detections) <= 20  # customObjects.max_det default from the schema
    for d in detections:
        assert set(d) == {"class_id", "class_name", "confidence", "box"}
        assert d["class_name"] in names
        assert 0.25 <= d["confidence"] <= 1.0  # customObjects.conf
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 <= x2 <= 320 and 0 <= y1 <= y2 <= 240  # in the original image's pixels


def test_detect_multipart_and_json_give_the_same_answer(
    server: Server, models: dict[str, ModelFile], image_bytes: bytes
) -> None:
    with server.client() as c:
        multipart = c.post("/detect", files={"image": ("x.jpg", image_bytes, "image/jpeg")})
        as_json = c.post("/detect", json={"image": base64.b64encode(image_bytes).decode()})
    assert multipart.status_code == 200, multipart.text
    assert as_json.status_code == 200, as_json.text
    assert_well_formed(multipart.json(), models["a"], {"cat", "dog", "bird"})
    assert multipart.json() == as_json.json()


def test_batch_endpoint_answers_per_image(server: Server, models: dict[str, ModelFile], image_bytes: bytes) -> None:
    files = [("images", (f"{i}.jpg", image_bytes, "image/jpeg")) for i in range(3)]
    with server.client() as c:
        answer = c.post("/detect/batch", files=files)
        single = c.post("/detect", files={"image": ("x.jpg", image_bytes, "image/jpeg")}).json()
    assert answer.status_code == 200, answer.text
    results = answer.json()
    assert len(results) == 3
    for result in results:
        assert_well_formed(result, models["a"], {"cat", "dog", "bird"})
        assert result["detections"] == single["detections"]


def test_batch_refuses_a_bad_image_with_the_same_error_contract_as_detect(server: Server, image_bytes: bytes) -> None:
    def refused() -> float:
        with server.client() as c:
            text = c.get("/metrics").text
        return metric_value(text, "overseer_requests_total", endpoint="detect_batch", code="400")

    before = refused()
    truncated = image_bytes[: len(image_bytes) // 2]
    with server.client() as c:
        not_image = c.post(
            "/detect/batch",
            files=[
                ("images", ("0.jpg", image_bytes, "image/jpeg")),
                ("images", ("1.txt", b"not an image", "text/plain")),
            ],
        )
        cut = c.post("/detect/batch", files=[("images", ("0.jpg", truncated, "image/jpeg"))])
        no_field = c.post("/detect/batch", files={"image": ("x.jpg", image_bytes, "image/jpeg")})
        too_many = c.post(
            "/detect/batch", files=[("images", (f"{i}.jpg", image_bytes, "image/jpeg")) for i in range(17)]
        )
        wrong_type = c.post("/detect/batch", json={"images": []})
    assert (not_image.status_code, error_of(not_image)["reason"]) == (400, "bad_image"), not_image.text
    assert str(error_of(not_image)["message"]).startswith("image 1: not a decodable image")
    assert (cut.status_code, error_of(cut)["reason"]) == (400, "bad_image"), cut.text
    assert str(error_of(cut)["message"]).startswith("image 0: not a decodable image")
    assert (no_field.status_code, error_of(no_field)["reason"]) == (400, "bad_request")
    assert "'images'" in str(error_of(no_field)["message"])
    assert (too_many.status_code, error_of(too_many)["reason"]) == (413, "too_large")
    assert (wrong_type.status_code, error_of(wrong_type)["reason"]) == (415, "unsupported_media_type")
    for answer in (not_image, cut, no_field, too_many, wrong_type):  # {"error": {status, reason, message}}
        assert set(answer.json()) == {"error"} and answer.json()["error"]["status"] == answer.status_code
    assert refused() == before + 3  # a refused batch counts once (answered batches count their images)


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
    def count() -> float:
        with server.client() as c:
            text = c.get("/metrics").text
        return metric_value(text, "overseer_requests_total", endpoint="detect", model_version="20240101", code="200")

    before = count()
    with server.client() as c:
        for _ in range(3):
            assert c.post("/detect", files={"image": ("x.jpg", image_bytes, "image/jpeg")}).status_code == 200
        text = c.get("/metrics").text
    assert count() == before + 3
    assert metric_value(text, "overseer_request_duration_seconds_count", endpoint="detect") >= 3
    info = metric_value(text, "overseer_model_info", version="20240101", digest=models["a"].digest)
    assert info == 1.0
