"""The /detect and /admin/model handlers of service.py in-process (ASGI), with a fake runtime:
which model a slow upload gets, and that waiting PUTs never take the threads /detect needs."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from overseer_serving import service
from overseer_serving.auth import AdminToken
from overseer_serving.settings import ServingSettings
from PIL import Image

TOKEN = "unit-admin-token"


class FakeModel:
    def __init__(self, version: str) -> None:
        self.version = version
        self.desired = self

    def identity(self) -> dict[str, str]:
        return {"name": "m", "version": self.version, "digest": "sha256:" + "0" * 64}

    def predict(self, images: list[Any]) -> list[list[dict[str, Any]]]:
        return [[] for _ in images]


class FakeMetrics:
    def request(self, *args: Any, **kwargs: Any) -> None:
        pass


class FakeRuntime:
    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.admin_token = AdminToken(settings.admin_token_file)
        self.metrics = FakeMetrics()
        self.current = FakeModel("old")
        self.release = threading.Event()
        self.putting = 0
        self.guard = threading.Lock()

    def model(self) -> FakeModel:
        return self.current

    def put(self, raw: bytes, content_type: str | None) -> dict[str, Any]:
        """Stands for a PUT waiting for the swap lock (held by a slow fetch) until `release`."""
        with self.guard:
            self.putting += 1
        assert self.release.wait(20), "test never released the PUTs"
        return {"changed": False}


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[FakeRuntime]:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    fake = FakeRuntime(ServingSettings(state_dir=tmp_path, admin_token_file=token))
    service.http_app.state.runtime = fake
    service._admin_limiter = None  # made in this test's event loop
    yield fake
    fake.release.set()
    del service.http_app.state.runtime
    service._admin_limiter = None


def image_json() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 10, 10)).save(buf, format="PNG")
    return json.dumps({"image": base64.b64encode(buf.getvalue()).decode()}).encode()


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.http_app), base_url="http://serving")


def test_a_slow_upload_is_answered_by_the_model_current_when_inference_starts(runtime: FakeRuntime) -> None:
    body = image_json()

    async def upload() -> AsyncIterator[bytes]:
        yield body[:100]
        runtime.current = FakeModel("new")  # a swap completes while the client is still sending
        yield body[100:]

    async def main() -> httpx.Response:
        async with client() as c:
            return await c.post("/detect", content=upload(), headers={"content-type": "application/json"})

    answer = anyio.run(main)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"]["version"] == "new"  # not the old model, kept alive by a slow upload


def test_puts_waiting_for_the_swap_lock_do_not_starve_detect(runtime: FakeRuntime) -> None:
    waiting_puts = 45  # more than anyio's 40 default worker threads

    async def main() -> tuple[int, int]:
        async with client() as c, anyio.create_task_group() as group:
            for _ in range(waiting_puts):
                group.start_soon(
                    lambda: c.put("/admin/model", content=b"{}", headers={"authorization": f"Bearer {TOKEN}"})
                )
            with anyio.fail_after(10):
                while runtime.putting < service.ADMIN_THREADS:  # the PUTs are in, holding threads
                    await anyio.sleep(0.01)
                # Bounded: before the admin threads had their own limiter, this waited for a thread.
                answer = await c.post("/detect", content=image_json(), headers={"content-type": "application/json"})
            in_put = runtime.putting
            runtime.release.set()
        return answer.status_code, in_put

    status, in_put = anyio.run(main)
    assert status == 200
    assert in_put <= service.ADMIN_THREADS


# --- /admin/model: the bearer token before anything else, the token file off the event loop -------------


def admin_call(method: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def main() -> httpx.Response:
        async with client() as c:
            return await c.request(method, "/admin/model", content=b"{}", headers=headers or {})

    return anyio.run(main)


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_an_anonymous_caller_learns_nothing_about_the_token_file(runtime: FakeRuntime, method: str) -> None:
    token_file = runtime.settings.admin_token_file
    assert token_file is not None
    token_file.unlink()
    token_file.mkdir()  # unreadable for every user, root included
    for headers, message in [
        ({}, "missing bearer token: send 'Authorization: Bearer <token>'"),
        ({"authorization": "Basic eDp5"}, "expected 'Authorization: Bearer <token>'"),
        ({"authorization": "Bearer guess"}, "invalid bearer token"),
        ({"authorization": f"Bearer {TOKEN}"}, "invalid bearer token"),  # the old token: no file, no token
    ]:
        answer = admin_call(method, headers)
        assert answer.status_code == 401
        assert answer.json() == {"error": {"status": 401, "reason": "unauthorized", "message": message}}
        assert str(token_file) not in answer.text and "directory" not in answer.text
    assert runtime.putting == 0


def test_the_token_file_is_read_off_the_event_loop(runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    on_loop: list[bool] = []
    read = runtime.admin_token.current

    def current() -> str | None:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return read()

    monkeypatch.setattr(runtime.admin_token, "current", current)
    runtime.release.set()
    assert admin_call("PUT", {"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert admin_call("GET", {"authorization": "Bearer wrong"}).status_code == 401
    assert on_loop == [False, False]


def test_the_header_is_checked_before_the_token_file_is_touched(
    runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    touched: list[bool] = []
    monkeypatch.setattr(runtime.admin_token, "current", lambda: touched.append(True) or TOKEN)
    assert admin_call("GET").status_code == 401
    assert admin_call("PUT", {"authorization": "Token x"}).status_code == 401
    assert touched == []
