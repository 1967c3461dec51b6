"""In-place swap: failures keep the old model serving; a swap under load fails no request."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from overseer_serving.digest import sha256_file
from serving_harness import ModelFile, Server, file_server, free_port, metric_value, until


def detect_ok(server: Server, image: bytes) -> dict[str, Any]:
    with server.client() as c:
        answer = c.post("/detect", files={"image": ("x.jpg", image, "image/jpeg")})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def put(server: Server, body: bytes | dict[str, Any], content_type: str = "application/json") -> httpx.Response:
    content = json.dumps(body).encode() if isinstance(body, dict) else body
    with server.admin() as c:
        return c.put("/admin/model", content=content, headers={"content-type": content_type})


def corrupt_model(tmp_path: Path) -> ModelFile:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"PK\x03\x04 this is a truncated zip, not a checkpoint" * 100)
    return ModelFile(path, sha256_file(path), "cat_recognition", "corrupt")


def malicious_model(tmp_path: Path) -> tuple[ModelFile, Path]:
    """A checkpoint whose unpickling would run a shell command (the reason for safe loading)."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Payload(), "train_args": {}}, path)
    return ModelFile(path, sha256_file(path), "cat_recognition", "evil"), marker


FAILURES = [
    "digest mismatch",
    "corrupt file",
    "pickle payload",
    "unreachable uri",
    "missing file",
    "schema violation",
    "unknown parameter",
    "schema section missing",
    "truncated json",
    "not a document",
]


@pytest.mark.parametrize("case", FAILURES)
def test_failed_swap_says_why_and_keeps_the_old_model(
    server: Server, models: dict[str, ModelFile], image_bytes: bytes, tmp_path: Path, case: str
) -> None:
    before = server.model()["model"]
    good = models["b"]
    marker = None
    content_type = "application/json"
    if case == "digest mismatch":
        body: bytes | dict[str, Any] = good.document(digest="sha256:" + "0" * 64)
        expected = (422, "digest_mismatch")
    elif case == "corrupt file":
        body = corrupt_model(tmp_path).document()
        expected = (500, "load_failed")
    elif case == "pickle payload":
        evil, marker = malicious_model(tmp_path)
        body = evil.document()
        expected = (500, "load_failed")
    elif case == "unreachable uri":
        body = good.document(uri=f"http://127.0.0.1:{free_port()}/weights.pt")
        expected = (502, "fetch_failed")
    elif case == "missing file":
        body = good.document(uri=f"file://{tmp_path}/nowhere.pt")
        expected = (502, "fetch_failed")
    elif case == "schema violation":
        body = good.document(customObjects={"conf": 7})
        expected = (422, "invalid_config")
    elif case == "unknown parameter":
        body = good.document(customObjects={"conf": 0.3, "confidence": 0.3})
        expected = (422, "invalid_config")
    elif case == "schema section missing":
        doc = good.document()
        del doc["schema"]
        body = doc
        expected = (422, "invalid_document")
    elif case == "truncated json":
        body = json.dumps(good.document()).encode()[:-15]
        expected = (400, "bad_request")
    else:
        body, content_type = b"just some text", "application/yaml"
        expected = (422, "invalid_document")

    answer = put(server, body, content_type)
    assert (answer.status_code, answer.json()["error"]["reason"]) == expected, answer.text
    assert answer.json()["error"]["message"]
    assert server.model()["model"] == before
    assert detect_ok(server, image_bytes)["model"] == before
    if marker is not None:
        assert not marker.exists(), "unpickling ran code from the checkpoint"


def test_swap_under_load_fails_no_request_and_changes_each_client_once(
    server: Server, models: dict[str, ModelFile], image_bytes: bytes
) -> None:
    old, new = models["a"], models["b"]
    assert server.model()["model"]["digest"] == old.digest
    clients = 8
    seen: list[list[tuple[int, str]]] = [[] for _ in range(clients)]
    stop = threading.Event()

    def client(i: int) -> None:
        with server.client() as c:
            deadline = until(180)
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    r = c.post("/detect", files={"image": ("x.jpg", image_bytes, "image/jpeg")})
                    seen[i].append((r.status_code, r.json()["model"]["digest"] if r.status_code == 200 else r.text))
                except httpx.HTTPError as error:
                    seen[i].append((0, repr(error)))

    def count(digest: str) -> list[int]:
        return [sum(1 for _, d in s if d == digest) for s in seen]

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, i) for i in range(clients)]
        try:
            deadline = until(60)
            while min(count(old.digest)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)  # polling the clients' progress, with a deadline
            answer = put(server, new.document())
            assert answer.status_code == 200, answer.text
            assert answer.json()["changed"] is True
            deadline = until(60)
            while min(count(new.digest)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            for f in futures:
                f.result()

    failures = [entry for s in seen for entry in s if entry[0] != 200]
    assert failures == []
    for i, s in enumerate(seen):
        digests = [d for _, d in s]
        changes = sum(1 for a, b in itertools.pairwise(digests) if a != b)
        assert digests[0] == old.digest and digests[-1] == new.digest, f"client {i}"
        assert changes == 1, f"client {i} saw the model change {changes} times"
    assert server.model()["model"] == {"name": new.name, "version": new.version, "digest": new.digest}


def test_same_document_is_a_no_op_and_concurrent_puts_are_serialised(
    server: Server, models: dict[str, ModelFile], image_bytes: bytes
) -> None:
    current = server.model()["model"]["digest"]
    same = next(m for m in models.values() if m.digest == current)
    other = next(m for m in models.values() if m.digest != current)

    answer = put(server, same.document())
    assert answer.status_code == 200 and answer.json()["changed"] is False

    # Two different PUTs at once: both succeed, one after the other; the last applied wins.
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda m: put(server, m.document()), [other, same])
    assert first.status_code == 200 and second.status_code == 200
    final = server.model()["model"]["digest"]
    assert final in {other.digest, same.digest}
    assert detect_ok(server, image_bytes)["model"]["digest"] == final


def test_swap_from_http_uri_and_metrics_show_it(
    server: Server, models: dict[str, ModelFile], image_bytes: bytes, tmp_path: Path
) -> None:
    current = server.model()["model"]["digest"]
    target = next(m for m in models.values() if m.digest != current)
    shutil.copy(target.path, tmp_path / "weights.pt")
    with server.client() as c:
        before = c.get("/metrics").text
    with file_server(tmp_path) as base:
        answer = put(server, target.document(uri=f"{base}/weights.pt", customObjects={"conf": 0.5}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"]["digest"] == target.digest
    assert answer.json()["config"]["customObjects"] == {"conf": 0.5, "resize_resolution": 320, "max_det": 20}
    detections = detect_ok(server, image_bytes)["detections"]
    assert all(d["confidence"] >= 0.5 for d in detections)

    with server.client() as c:
        after = c.get("/metrics").text
    swaps = "overseer_model_swaps_total"
    assert (
        metric_value(after, swaps, model_version=target.version)
        == metric_value(before, swaps, model_version=target.version) + 1
    )
    assert metric_value(after, "overseer_model_swap_duration_seconds_count") >= 1
    for reason in (
        "digest_mismatch",
        "load_failed",
        "fetch_failed",
        "invalid_config",
        "invalid_document",
        "bad_request",
    ):
        assert metric_value(after, "overseer_model_swap_failures_total", reason=reason) >= 1, reason
    assert metric_value(after, "overseer_model_info", digest=target.digest) == 1.0
    assert metric_value(after, "overseer_model_info", digest=current) == 0.0
