"""s3:// weights against a real S3-compatible server on loopback (moto, IAM authentication on).

First the fetch itself (the same digest check, size limit and whole-download deadline as
http(s)://, and each refusal in words), then a real `overseer serve` that starts from s3://, swaps
to another s3:// model with PUT /admin/model, and refuses a wrong digest, a missing key and bad
credentials with the old model still serving. Its credentials come from a mounted credentials file
and AWS_PROFILE, as a Secret through spec.serving.env would give them, and are re-read per fetch.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from overseer_devtools.localserver import OVERSEER, LocalServer, clean_environment, free_port
from overseer_devtools.toymodels import build_detector
from overseer_serving.errors import DigestMismatch, FetchFailed
from overseer_serving.fetch import fetch
from s3_server import S3Server
from test_serving_fetch import LENGTH, drip_server

TOKEN = "s3-admin-token"
START_TIMEOUT = 180.0


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def store() -> Iterator[S3Server]:
    with S3Server.running() as server:
        yield server


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("s3-models")
    built = {}
    for name, seed, classes in (("a", 11, ["cat", "dog"]), ("b", 12, ["person", "car", "bus"])):
        build_detector(root / f"{name}.pt", seed=seed, names=classes)
        built[name] = (root / f"{name}.pt").read_bytes()
    return built


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set the AWS environment of this process for an in-process fetch (nothing inherited)."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)

    def use(values: dict[str, str]) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    yield use


# --- the fetch ------------------------------------------------------------------------------------------


def test_an_object_is_fetched_and_verified_into_the_cache(store: S3Server, aws_env: Any, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    uri = store.put("models", "plain/weights v1.pt", data)  # a space in the key: taken literally
    aws_env(store.env(store.reader))
    path = fetch(uri, sha256(data), tmp_path / "cache", timeout_s=30, max_bytes=10**6)
    assert path.read_bytes() == data
    assert path.name == f"{sha256(data).removeprefix('sha256:')}.pt"


def test_refusals_say_what_is_wrong_and_leave_nothing_in_the_cache(
    store: S3Server, aws_env: Any, tmp_path: Path
) -> None:
    data = b"w" * 5000
    uri = store.put("models", "refusals/w.pt", data)
    cache = tmp_path / "cache"
    reader = store.env(store.reader)
    cases: list[tuple[str, dict[str, str], str, type[Exception], str]] = [
        ("wrong digest", reader, uri, DigestMismatch, f"digest mismatch for {uri}: document pins {sha256(b'x')}"),
        ("missing key", reader, "s3://models/refusals/nope.pt", FetchFailed, "no such key 'refusals/nope.pt'"),
        # (credentials allowed on every bucket: a policy limited to `models` is refused first, as on AWS)
        ("missing bucket", store.env(store.admin), "s3://nobucket/w.pt", FetchFailed, "no such bucket 'nobucket' at"),
        (
            "wrong secret",
            {**reader, "AWS_SECRET_ACCESS_KEY": "not-the-secret"},
            uri,
            FetchFailed,
            "the secret key of the credentials from the environment (AWS_ACCESS_KEY_ID) does not match",
        ),
        (
            "unknown key id",
            {**reader, "AWS_ACCESS_KEY_ID": "AKIAUNKNOWN000000000"},
            uri,
            FetchFailed,
            "the access key id of the credentials from the environment (AWS_ACCESS_KEY_ID) is not known",
        ),
        (
            "no permission",
            store.env(store.outsider),
            uri,
            FetchFailed,
            "access denied to the credentials from the environment (AWS_ACCESS_KEY_ID): they need s3:GetObject",
        ),
        (
            "endpoint unreachable",
            {**reader, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}"},
            uri,
            FetchFailed,
            "the S3 endpoint http://127.0.0.1:",
        ),
    ]
    for case, env, target, error, message in cases:
        aws_env(env)
        digest = sha256(b"x") if case == "wrong digest" else sha256(data)
        with pytest.raises(error) as caught:
            fetch(target, digest, cache, timeout_s=10, max_bytes=10**6)
        assert message in str(caught.value), case
        assert str(caught.value).startswith(("cannot fetch s3://", "digest mismatch for s3://")), case
        assert store.reader.secret not in str(caught.value) and "Signature=" not in str(caught.value), case
        assert list(cache.iterdir()) == [], case


def test_the_size_limit_holds_before_the_download(store: S3Server, aws_env: Any, tmp_path: Path) -> None:
    data = b"z" * 50_000
    uri = store.put("models", "big/w.pt", data)
    aws_env(store.env(store.reader))
    with pytest.raises(FetchFailed, match=r"weights at s3://models/big/w.pt exceed the 1000-byte limit"):
        fetch(uri, sha256(data), tmp_path / "cache", timeout_s=10, max_bytes=1000)


def test_the_whole_download_deadline_holds_for_s3_too(store: S3Server, aws_env: Any, tmp_path: Path) -> None:
    # An "S3 endpoint" that answers 200 and then drips one byte every 50 ms: each read is quick,
    # only a deadline for the whole copy stops it (botocore's own reader would wait per block).
    with drip_server(byte_every_s=0.05, give_up_after_s=8) as (url, _):
        endpoint = url.rsplit("/", 1)[0]
        aws_env(store.env(store.reader, AWS_ENDPOINT_URL_S3=endpoint))
        with pytest.raises(FetchFailed, match=r"weights at s3://models/w.pt did not arrive within 1 s"):
            fetch("s3://models/w.pt", sha256(b"x" * LENGTH), tmp_path / "cache", timeout_s=1.0, max_bytes=10 * LENGTH)


# --- a real `overseer serve` ----------------------------------------------------------------------------


def document(uri: str, digest: str, version: str) -> dict[str, Any]:
    return {
        "model": {
            "name": "cat_recognition",
            "version": version,
            "uri": uri,
            "digest": digest,
            "labels": {"owner": "ml-team"},
            "customObjects": {"conf": 0.25, "resize_resolution": 320},
        },
        "schema": {
            "name": "object-detector",
            "version": 1,
            "labels": {"type": "object", "required": ["owner"]},
            "customObjects": {"type": "object", "required": ["conf"]},
        },
    }


def credentials_file(path: Path, key_id: str, secret: str) -> None:
    """What a Secret mounted as an AWS shared credentials file holds (rewritten = rotated)."""
    path.write_text(f"[serving]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")


def error_of(answer: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()["error"]
    return body


def test_serve_starts_from_s3_swaps_to_s3_and_refuses_bad_ones_keeping_the_old_model(
    store: S3Server, weights: dict[str, bytes], tmp_path: Path
) -> None:
    uri_a = store.put("models", "cat/20240101/model.pt", weights["a"])
    uri_b = store.put("models", "cat/20240202/model.pt", weights["b"])
    digest_a, digest_b = sha256(weights["a"]), sha256(weights["b"])
    creds = tmp_path / "aws-credentials"
    credentials_file(creds, store.reader.key_id, store.reader.secret)
    env = {
        **store.env(store.reader),
        "AWS_SHARED_CREDENTIALS_FILE": str(creds),
        "AWS_PROFILE": "serving",
        "OVERSEER_CACHE_DIR": str(tmp_path / "cache"),
        "OVERSEER_LOG_FORMAT": "json",
    }
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]  # only the mounted file
    server = LocalServer.start(tmp_path / "srv", document(uri_a, digest_a, "20240101"), token=TOKEN, env=env)
    try:
        server.wait_ready(START_TIMEOUT)
        assert server.model()["model"] == {"name": "cat_recognition", "version": "20240101", "digest": digest_a}
        with server.admin() as admin, server.client() as client:

            def put(doc: dict[str, Any]) -> httpx.Response:
                return admin.put("/admin/model", json=doc)

            def still_serving_a() -> None:
                assert server.model()["model"]["digest"] == digest_a
                image = _image()
                answer = client.post("/detect", files={"image": ("i.jpg", image, "image/jpeg")})
                assert answer.status_code == 200
                assert answer.json()["model"]["digest"] == digest_a

            refuse_bad_swaps(store, creds, put, still_serving_a, uri_b, digest_b)

            swapped = put(document(uri_b, digest_b, "20240202"))
            assert swapped.status_code == 200, swapped.text
            assert swapped.json()["changed"] is True
            assert swapped.json()["previous"]["digest"] == digest_a
            answer = client.post("/detect", files={"image": ("i.jpg", _image(), "image/jpeg")})
            assert answer.json()["model"] == {"name": "cat_recognition", "version": "20240202", "digest": digest_b}
            metrics = client.get("/metrics").text
            assert 'overseer_model_swap_failures_total{reason="fetch_failed"} 3.0' in metrics
            assert 'overseer_model_swap_failures_total{reason="digest_mismatch"} 1.0' in metrics
        assert server.stop() == 0
    finally:
        server.kill_leftovers()


def refuse_bad_swaps(
    store: S3Server, creds: Path, put: Any, still_serving_a: Any, uri_b: str, digest_b: str
) -> None:
    """Bad credentials, no permission, a missing key, a wrong digest: each refused, model A serving."""
    # Bad credentials: the mounted Secret is rotated to a wrong secret; the next fetch reads it.
    credentials_file(creds, store.reader.key_id, "rotated-to-a-wrong-secret")
    refused = put(document(uri_b, digest_b, "20240202"))
    assert refused.status_code == 502, refused.text
    assert error_of(refused)["reason"] == "fetch_failed"
    assert error_of(refused)["message"] == (
        f"cannot fetch {uri_b}: the secret key of the credentials from the shared credentials file "
        f"{creds} (profile serving) does not match its access key id"
    )
    still_serving_a()
    credentials_file(creds, store.outsider.key_id, store.outsider.secret)
    denied = put(document(uri_b, digest_b, "20240202"))
    assert denied.status_code == 502 and "access denied" in error_of(denied)["message"]
    still_serving_a()
    credentials_file(creds, store.reader.key_id, store.reader.secret)  # fixed: no restart needed

    missing = put(document("s3://models/cat/20240303/model.pt", digest_b, "20240303"))
    assert missing.status_code == 502
    assert error_of(missing)["message"] == (
        "cannot fetch s3://models/cat/20240303/model.pt: no such key 'cat/20240303/model.pt' in bucket 'models'"
    )
    still_serving_a()
    wrong = put(document(uri_b, sha256(b"not these weights"), "20240202"))
    assert wrong.status_code == 422
    assert error_of(wrong)["reason"] == "digest_mismatch"
    still_serving_a()


def test_serve_from_a_missing_s3_object_exits_1_with_one_line(store: S3Server, tmp_path: Path) -> None:
    model_file = tmp_path / "model.json"
    model_file.write_text(json.dumps(document("s3://models/absent/model.pt", sha256(b"a"), "1")))
    token = tmp_path / "token"
    token.write_text(TOKEN)
    env = clean_environment(**store.env(store.reader), OVERSEER_STATE_DIR=str(tmp_path / "state"))
    command = [OVERSEER, "serve", "--model-file", str(model_file), "--token-file", str(token), "--port", "1"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"overseer serve: error: {model_file}: cannot fetch s3://models/absent/model.pt: "
        "no such key 'absent/model.pt' in bucket 'models'"
    )


def _image() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    pixels = np.random.default_rng(3).integers(0, 256, size=(160, 200, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="JPEG")
    return buf.getvalue()
