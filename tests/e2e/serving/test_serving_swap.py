"""In-place swap: failures keep the old model serving, still seeing what it saw; a swap under load
fails no request and every answer, before and after, is right about the picture."""

from __future__ import annotations

import contextlib
import http.server
import itertools
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from overseer_devtools.shapes import Scene
from overseer_devtools.toymodels import build_detector
from overseer_serving.digest import sha256_file
from serving_harness import (
    ModelFile,
    Server,
    assert_sees,
    file_server,
    free_port,
    loopback_http,
    metric_count,
    metric_value,
    until,
)
from support.polling import wait_for


def detect_ok(server: Server, image: bytes) -> dict[str, Any]:
    with server.client() as c:
        answer = c.post("/detect", files={"image": ("x.png", image, "image/png")})
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


def assert_still_serving(server: Server, model: dict[str, Any], image: bytes, scene: Scene) -> None:
    """`model` serves, and still sees what was drawn in the picture."""
    assert server.model()["model"] == model
    answer = detect_ok(server, image)
    assert answer["model"] == model
    assert_sees(answer["detections"], scene)


# Weights already in the verified cache need no fetch: fetch failures need a digest never fetched.
NEVER_FETCHED = "sha256:" + "1" * 64

FAILURES = [
    "digest mismatch",
    "corrupt file",
    "pickle payload",
    "unreachable uri",
    "missing file",
    "schema violation",
    "unknown parameter",
    "wrong parameter type",
    "schema section missing",
    "truncated json",
    "not a document",
]


@pytest.mark.parametrize("case", FAILURES)
def test_failed_swap_says_why_and_keeps_the_old_model(
    server: Server, models: dict[str, ModelFile], scene: Scene, image_bytes: bytes, tmp_path: Path, case: str
) -> None:
    before = server.model()["model"]
    good = models["b"]
    marker = None
    named = ""
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
        body = good.document(uri=f"http://127.0.0.1:{free_port()}/weights.pt", digest=NEVER_FETCHED)
        expected = (502, "fetch_failed")
    elif case == "missing file":
        body = good.document(uri=f"file://{tmp_path}/nowhere.pt", digest=NEVER_FETCHED)
        expected = (502, "fetch_failed")
    elif case == "schema violation":
        body = good.document(customObjects={"conf": 7})
        expected = (422, "invalid_config")
    elif case == "unknown parameter":
        body = good.document(customObjects={"conf": 0.3, "confidence": 0.3})
        expected = (422, "invalid_config")
    elif case == "wrong parameter type":  # not coerced to a value nobody wrote
        body = good.document(customObjects={"conf": 0.3, "max_det": 5, "classes": [True]})
        expected = (422, "invalid_config")
        named = "customObjects.classes[0]: expected a class id (integer) or class name (string), found boolean true"
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
    assert named in answer.json()["error"]["message"]
    assert_still_serving(server, before, image_bytes, scene)
    if marker is not None:
        assert not marker.exists(), "unpickling ran code from the checkpoint"


def test_swap_under_load_fails_no_request_and_changes_each_client_once(
    server: Server, models: dict[str, ModelFile], scene: Scene, image_bytes: bytes
) -> None:
    old, new = models["a"], models["b"]
    assert server.model()["model"]["digest"] == old.digest
    clients = 8
    seen: list[list[tuple[int, str]]] = [[] for _ in range(clients)]
    detections: dict[str, list[Any]] = {old.digest: [], new.digest: []}  # every answer, by the model that gave it
    stop = threading.Event()

    def client(i: int) -> None:
        with server.client() as c:
            deadline = until(180)
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    r = c.post("/detect", files={"image": ("x.png", image_bytes, "image/png")})
                    if r.status_code == 200:
                        digest = r.json()["model"]["digest"]
                        seen[i].append((200, digest))
                        detections[digest].append(r.json()["detections"])
                    else:
                        seen[i].append((r.status_code, r.text))
                except httpx.HTTPError as error:
                    seen[i].append((0, repr(error)))

    def count(digest: str) -> list[int]:
        return [sum(1 for _, d in s if d == digest) for s in seen]

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, i) for i in range(clients)]
        try:
            wait_for(lambda: min(count(old.digest)) >= 2, 60, "every client to have 2 answers from the old model", 0.05)
            answer = put(server, new.document())
            assert answer.status_code == 200, answer.text
            assert answer.json()["changed"] is True
            wait_for(lambda: min(count(new.digest)) >= 2, 60, "every client to have 2 answers from the new model", 0.05)
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
    # Right throughout: each model gave one answer to the picture, every time, and it sees what was drawn.
    for digest, answers in detections.items():
        first = answers[0]
        assert all(a == first for a in answers), f"{digest} answered the same picture differently"
        assert_sees(first, scene)
    assert detections[old.digest][0] != detections[new.digest][0]  # two models: each answer from its own


def current_and_other(server: Server, models: dict[str, ModelFile]) -> tuple[ModelFile, ModelFile]:
    """Of the two good models, the one serving and the other."""
    digest = server.model()["model"]["digest"]
    a, b = models["a"], models["b"]
    assert digest in (a.digest, b.digest)
    return (a, b) if digest == a.digest else (b, a)


def log_events(server: Server, start: int, *messages: str) -> list[dict[str, Any]]:
    """Our JSON log lines with one of `messages`, written after byte offset `start` of the log."""
    with server.log_path.open("rb") as f:
        f.seek(start)
        lines = f.read().decode(errors="replace").splitlines()
    events = []
    for line in lines:
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line)
                if event.get("msg") in messages:
                    events.append(event)
    return events


def test_the_same_document_again_is_a_no_op(server: Server, models: dict[str, ModelFile]) -> None:
    described = server.model()
    current, _ = current_and_other(server, models)
    # The served config has the schema defaults applied; sending them explicitly changes nothing.
    answer = put(server, current.document(customObjects=described["config"]["customObjects"]))
    assert answer.status_code == 200, answer.text
    assert answer.json()["changed"] is False
    assert server.model()["generation"] == described["generation"]


def test_concurrent_puts_are_serialised(
    server: Server, models: dict[str, ModelFile], scene: Scene, image_bytes: bytes
) -> None:
    current, other = current_and_other(server, models)
    generation = server.model()["generation"]
    log_start = server.log_path.stat().st_size
    # Two PUTs at once, each a real change whatever the order: another model, and this model with
    # a config nobody serves yet.
    documents = [other.document(), current.document(customObjects={"conf": 0.31})]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda d: put(server, d), documents))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert [a.json()["changed"] for a in answers] == [True, True]
    assert sorted(a.json()["generation"] for a in answers) == [generation + 1, generation + 2]
    last = max(answers, key=lambda a: a.json()["generation"]).json()
    assert server.model()["generation"] == generation + 2
    assert server.model()["model"] == last["model"]
    answer = detect_ok(server, image_bytes)
    assert answer["model"] == last["model"]
    assert_sees(answer["detections"], scene)

    # One after the other: the second swap started after the first was done.
    def both_swaps_logged() -> list[dict[str, Any]] | None:
        events = log_events(server, log_start, "swap started", "swap done")
        return events if len(events) == 4 else None

    events = wait_for(both_swaps_logged, 10, "two 'swap started' and two 'swap done' log lines")
    assert [e["msg"] for e in events] == ["swap started", "swap done", "swap started", "swap done"]
    assert events[1]["ts"] <= events[2]["ts"]
    assert {e["model_version"] for e in events} == {current.version, other.version}


def test_failed_swaps_are_counted_by_reason(server: Server, models: dict[str, ModelFile], tmp_path: Path) -> None:
    good = models["b"]
    failing = {
        "digest_mismatch": good.document(digest="sha256:" + "0" * 64),
        "load_failed": corrupt_model(tmp_path).document(),
        "fetch_failed": good.document(uri=f"file://{tmp_path}/nowhere.pt", digest=NEVER_FETCHED),
        "invalid_config": good.document(customObjects={"conf": 7}),
        "invalid_document": {"model": good.document()["model"]},
        "bad_request": json.dumps(good.document()).encode()[:-15],
    }

    def failures() -> dict[str, float]:
        with server.client() as c:
            text = c.get("/metrics").text
        return {r: metric_count(text, "overseer_model_swap_failures_total", reason=r) for r in failing}

    before = failures()
    for reason, body in failing.items():
        answer = put(server, body)
        assert answer.json()["error"]["reason"] == reason, answer.text
    assert failures() == {reason: count + 1 for reason, count in before.items()}


def test_swap_from_http_uri_and_metrics_show_it(
    server: Server, models: dict[str, ModelFile], scene: Scene, image_bytes: bytes, tmp_path: Path
) -> None:
    current_model, target = current_and_other(server, models)
    current = current_model.digest
    shutil.copy(target.path, tmp_path / "weights.pt")
    with server.client() as c:
        before = c.get("/metrics").text
    with file_server(tmp_path) as base:
        answer = put(server, target.document(uri=f"{base}/weights.pt", customObjects={"conf": 0.5}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"]["digest"] == target.digest
    assert answer.json()["config"]["customObjects"] == {"conf": 0.5, "resize_resolution": 160, "max_det": 20}
    detections = detect_ok(server, image_bytes)["detections"]
    assert_sees(detections, scene)  # not empty: the threshold below is checked on real detections
    assert all(d["confidence"] >= 0.5 for d in detections)

    with server.client() as c:
        after = c.get("/metrics").text
    swaps = "overseer_model_swaps_total"
    assert (
        metric_count(after, swaps, model_version=target.version)
        == metric_count(before, swaps, model_version=target.version) + 1
    )
    duration = "overseer_model_swap_duration_seconds_count"
    assert metric_count(after, duration) == metric_count(before, duration) + 1
    assert metric_value(after, "overseer_model_info", digest=target.digest) == 1.0
    # the old model's series is still exported, at 0 (not merely absent)
    assert metric_value(after, "overseer_model_info", digest=current) == 0.0


def test_metric_value_tells_a_zero_series_from_a_missing_one() -> None:
    text = 'overseer_model_info{digest="sha256:aa",version="1"} 0.0\noverseer_model_info{digest="sha256:bb"} 1.0\n'
    assert metric_value(text, "overseer_model_info", digest="sha256:aa") == 0.0
    assert metric_value(text, "overseer_model_info", digest="sha256:cc") is None  # never exported
    assert metric_count(text, "overseer_model_swaps_total") == 0.0


@contextlib.contextmanager
def held_file_server(path: Path) -> Iterator[tuple[str, threading.Event, threading.Event]]:
    """Serves `path` on loopback, but holds each request until `release` is set (20 s at most).
    Yields (url, requested, release)."""
    requested = threading.Event()
    release = threading.Event()
    data = path.read_bytes()

    class Held(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.set()
            release.wait(20)
            self.send_response(200)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with loopback_http(Held) as url:
        try:
            yield f"{url}/w.pt", requested, release
        finally:
            release.set()  # before the server shuts down, so a held request can finish


def test_puts_waiting_for_the_swap_lock_do_not_starve_detect(
    server: Server, image_bytes: bytes, tmp_path: Path
) -> None:
    # Weights never fetched before (a cache hit needs no fetch), served by a server that holds them.
    path = tmp_path / "held.pt"
    target = ModelFile(path, build_detector(path, seed=3, names=["cat"]), "cat_recognition", "held")
    with held_file_server(path) as (url, requested, release), ThreadPoolExecutor(45) as pool:
        document = target.document(uri=url)
        # 45 PUTs, more than anyio's 40 default worker threads: one fetches (holding the swap lock),
        # the others wait for the lock.
        puts = [pool.submit(put, server, document) for _ in range(45)]
        assert requested.wait(30), "the first PUT never fetched"
        try:
            with httpx.Client(base_url=server.url, timeout=10.0) as c:  # bounded
                for _ in range(3):
                    answer = c.post("/detect", files={"image": ("x.png", image_bytes, "image/png")})
                    assert answer.status_code == 200, answer.text
        finally:
            release.set()
        answers = [p.result(timeout=120) for p in puts]
    assert sorted(a.status_code for a in answers) == [200] * 45
    assert sum(a.json()["changed"] for a in answers) == 1  # one swap; the same document again is a no-op
    assert detect_ok(server, image_bytes)["model"]["digest"] == target.digest
