"""PUT /admin/model on a real server: the body is read by the one safe reader (duplicate keys refused
with their lines, the old model serving on), and the bearer token is checked before anything else -
an anonymous caller learns nothing about the token file, a rotated token takes effect at once."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from overseer_devtools.localserver import LocalServer, running
from overseer_devtools.toymodels import build_detector
from PIL import Image

TOKEN = "admin-input-token"


def document(weights: Path, digest: str, conf: float = 0.25) -> dict[str, Any]:
    return {
        "model": {
            "name": "cat_recognition",
            "version": "20240101",
            "uri": f"file://{weights}",
            "digest": digest,
            "customObjects": {"conf": conf},
        },
        "schema": {"name": "object-detector", "version": 1, "customObjects": {"type": "object"}},
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalServer, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("admin-input")
    digest = build_detector(root / "a.pt", seed=5, names=["cat", "dog"])
    doc = document(root / "a.pt", digest)
    env = {"OVERSEER_CACHE_DIR": str(root / "cache"), "OVERSEER_LOG_FORMAT": "json"}
    with running(root / "srv", doc, token=TOKEN, env=env) as srv:
        yield srv, doc


def image() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def assert_still_serving(srv: LocalServer, doc: dict[str, Any]) -> None:
    described = srv.model()
    assert described["model"]["digest"] == doc["model"]["digest"]
    assert described["config"]["customObjects"]["conf"] == 0.25
    with srv.client() as c:
        answer = c.post("/detect", files={"image": ("i.jpg", image(), "image/jpeg")})
    assert answer.status_code == 200 and answer.json()["model"]["digest"] == doc["model"]["digest"]


def test_a_put_with_a_duplicate_key_is_refused_and_the_old_model_keeps_serving(
    server: tuple[LocalServer, dict[str, Any]],
) -> None:
    srv, doc = server
    m = doc["model"]
    yaml_body = (
        f"model:\n  name: {m['name']}\n  version: '20240202'\n  uri: {m['uri']}\n  digest: {m['digest']}\n"
        "  customObjects:\n    conf: 0.25\n    conf: 0.9\n"
        "schema: {name: object-detector, version: 1, customObjects: {type: object}}\n"
    )
    json_body = json.dumps(document(Path(m["uri"][7:]), m["digest"], conf=0.25), indent=1).replace(
        '"conf": 0.25', '"conf": 0.25,\n "conf": 0.9'
    )
    with srv.admin() as admin:
        for body, content_type, message in [
            (
                yaml_body,
                "application/yaml",
                "model document: invalid YAML: line 8, column 5: duplicate key 'conf' (first at line 7)",
            ),
            (json_body, "application/json", "model document: invalid JSON: line "),
        ]:
            answer = admin.put("/admin/model", content=body.encode(), headers={"content-type": content_type})
            assert answer.status_code == 400, answer.text
            error = answer.json()["error"]
            assert error["reason"] == "bad_request"
            assert error["message"].startswith(message)
            assert "duplicate key 'conf'" in error["message"]
            assert_still_serving(srv, doc)


def test_the_token_file_is_never_described_to_a_caller_and_rotation_takes_effect(
    server: tuple[LocalServer, dict[str, Any]],
) -> None:
    srv, doc = server
    token_file = srv.log_path.parent / "token"
    token_file.unlink()
    token_file.mkdir()  # unreadable for every user, root included
    try:
        with srv.client() as anonymous:
            for headers, message in [
                ({}, "missing bearer token: send 'Authorization: Bearer <token>'"),
                ({"Authorization": "Bearer guess"}, "invalid bearer token"),
                ({"Authorization": f"Bearer {TOKEN}"}, "invalid bearer token"),
            ]:
                for method in ("GET", "PUT"):
                    answer = anonymous.request(method, "/admin/model", headers=headers, json=doc)
                    assert answer.status_code == 401
                    assert answer.json()["error"]["message"] == message
                    assert str(token_file) not in answer.text
        assert f"admin API refuses every caller: the admin token file {token_file} cannot be read" in srv.log
    finally:
        token_file.rmdir()
    token_file.write_text("rotated-token\n")  # the Secret was rotated
    with srv.client() as c:
        old = c.get("/admin/model", headers={"Authorization": f"Bearer {TOKEN}"})
        new = c.get("/admin/model", headers={"Authorization": "Bearer rotated-token"})
    assert old.status_code == 401
    assert new.status_code == 200 and new.json()["model"]["digest"] == doc["model"]["digest"]
    token_file.write_text(TOKEN + "\n")
    assert httpx.get(f"{srv.url}/admin/model", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_a_second_server_on_the_machine_does_not_erase_the_first_ones_metrics(
    server: tuple[LocalServer, dict[str, Any]], tmp_path: Path
) -> None:
    # BentoML empties <BENTOML_HOME>/prometheus_multiproc_dir when a server starts; with the shared
    # default home (~/bentoml) the first server's counters vanished from its /metrics.
    srv, doc = server
    with srv.admin() as admin:
        assert admin.put("/admin/model", content=b"{", headers={"content-type": "application/json"}).status_code == 400

    def refused() -> float:
        with srv.client() as c:
            text = c.get("/metrics").text
        series = 'overseer_model_swap_failures_total{reason="bad_request"}'
        lines = [line for line in text.splitlines() if line.startswith(series)]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

    before = refused()
    assert before >= 1.0
    weights = Path(doc["model"]["uri"].removeprefix("file://"))
    env = {"OVERSEER_CACHE_DIR": str(tmp_path / "cache"), "OVERSEER_LOG_FORMAT": "json"}
    with running(tmp_path / "second", document(weights, doc["model"]["digest"]), token=TOKEN, env=env):
        assert refused() == before
