"""The pod admin client's mapping of every answer and transport failure, against tiny fakes on
loopback (aiohttp servers and raw sockets). The real serving process is in
tests/e2e/operator/test_podclient_real_pod.py."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from overseer.operator.podclient import PodAddress, PodClient, parse_model_answer, pod_client
from overseer.operator.rollout_state import (
    PodAnswer,
    PodUnavailable,
    SwapLost,
    Swapped,
    SwapRefused,
    SwapUndelivered,
    config_fingerprint,
)
from overseer.schema.validation import validate_model_config
from rollout_testing import V1, V2

TOKEN = "s3cret-admin-token"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def admin_answer(release: Any = V1, *, workers: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """What a healthy one-worker pod answers to GET /admin/model (docs/serving.md)."""
    model = release.document["model"]
    schema = release.document["schema"]
    config = validate_model_config(schema, model["labels"], model["metadata"], model["customObjects"]).defaulted
    identity = {"name": model["name"], "version": model["version"], "digest": model["digest"]}
    answer = {
        "model": identity,
        "schema": {"name": schema["name"], "version": schema["version"]},
        "config": config,
        "worker": 0,
        "generation": 3,
        "state": "serving",
        "workers": workers
        if workers is not None
        else [{"worker": 0, "pid": 1, "generation": 3, "state": "serving", "model": identity, "error": None}],
    }
    answer.update(extra)
    return answer


class FakePod:
    """An aiohttp app whose /admin/model answers with whatever the test sets."""

    def __init__(self) -> None:
        self.get: Handler = self._json(admin_answer())
        self.put: Handler = self._json({"changed": True, "swap_seconds": 0.4, **admin_answer(V2)})
        self.received: list[tuple[str, str | None, bytes]] = []

    @staticmethod
    def _json(body: Any, status: int = 200) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            if isinstance(body, str):
                return web.Response(text=body, status=status)
            return web.json_response(body, status=status)

        return handler

    def answer(self, method: str, body: Any, status: int = 200) -> None:
        setattr(self, method, self._json(body, status))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.received.append((request.method, request.headers.get("Authorization"), await request.read()))
        return await (self.get if request.method == "GET" else self.put)(request)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakePod, PodAddress]]:
    pod = FakePod()
    app = web.Application()
    app.router.add_route("*", "/admin/model", pod._dispatch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield pod, PodAddress("127.0.0.1", port)
    finally:
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[PodClient]:
    async with pod_client(get_deadline_s=2.0, put_deadline_s=2.0) as c:
        yield c


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def raw_server(behaviour: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> Any:
    return await asyncio.start_server(behaviour, "127.0.0.1", 0)


async def get_from(
    client: PodClient,
    behaviour: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    *,
    deadline_s: float,
) -> tuple[PodAnswer | PodUnavailable, float]:
    """GET from a raw TCP server behaving as `behaviour`: what the client made of it, and how long it took."""
    server = await raw_server(behaviour)
    async with server:
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        started = loop.time()
        seen = await client.get_model(PodAddress("127.0.0.1", port), TOKEN, deadline_s=deadline_s)
        return seen, loop.time() - started


# --- GET ---------------------------------------------------------------------------------------------


async def test_a_serving_pod_reports_the_key_the_operator_computes(fake: Any, client: PodClient) -> None:
    pod, address = fake
    seen = await client.get_model(address, TOKEN)
    assert seen == PodAnswer(served=V1.key, state="serving", schema_version=1, generation=3, error=None)
    assert pod.received[0][:2] == ("GET", f"Bearer {TOKEN}")


async def test_a_pod_loading_its_first_model(fake: Any, client: PodClient) -> None:
    pod, address = fake
    pod.answer("get", {"model": None, "worker": 0, "generation": 0, "state": "loading", "workers": []})
    assert await client.get_model(address, TOKEN) == PodAnswer(served=None, state="loading", generation=0)


@pytest.mark.parametrize(
    ("workers", "state"),
    [
        ([{"state": "serving", "model": "same"}, {"state": "serving", "model": "same"}], "serving"),
        ([{"state": "serving", "model": "same"}, {"state": "serving", "model": "other"}], "mixed"),
        ([{"state": "serving", "model": "same"}, {"state": "loading", "model": None}], "mixed"),
        (
            [{"state": "serving", "model": "same"}, {"state": "failed", "model": "same", "error": "load_failed: x"}],
            "failed",
        ),
    ],
)
async def test_every_worker_must_serve_the_model(
    fake: Any, client: PodClient, workers: list[dict[str, Any]], state: str
) -> None:
    pod, address = fake
    same = {"name": "cat_recognition", "version": "20240101", "digest": V1.key.digest}
    other = {"name": "cat_recognition", "version": "20240202", "digest": V2.key.digest}
    for i, w in enumerate(workers):
        w.update(worker=i, pid=100 + i, generation=3)
        w["model"] = {"same": same, "other": other, None: None}[w["model"]]
        w.setdefault("error", None)
    pod.answer("get", admin_answer(workers=workers))
    seen = await client.get_model(address, TOKEN)
    assert isinstance(seen, PodAnswer) and seen.state == state
    if state == "failed":
        assert seen.error == "load_failed: x"


@pytest.mark.parametrize(
    ("status", "body", "kind", "says"),
    [
        (
            401,
            {"error": {"status": 401, "reason": "unauthorized", "message": "wrong token"}},
            "unauthorized",
            "wrong token",
        ),
        (
            503,
            {"error": {"status": 503, "reason": "not_ready", "message": "no model yet"}},
            "not_ready",
            "no model yet",
        ),
        (500, {"error": {"status": 500, "reason": "internal", "message": "boom"}}, "bad_answer", "HTTP 500: boom"),
        (404, "Not Found", "bad_answer", "HTTP 404"),
        (200, [1, 2], "bad_answer", "not a JSON object"),
        (200, {"model": {"name": 1}}, "bad_answer", "model: expected"),
        (200, {"model": {"name": "a", "version": "b", "digest": "c"}}, "bad_answer", "config: expected"),
    ],
)
async def test_get_answers_that_do_not_tell_what_the_pod_serves(
    fake: Any, client: PodClient, status: int, body: Any, kind: str, says: str
) -> None:
    pod, address = fake
    pod.answer("get", body, status)
    seen = await client.get_model(address, TOKEN)
    assert isinstance(seen, PodUnavailable) and seen.kind == kind and says in seen.message
    assert TOKEN not in seen.message


async def test_get_from_a_closed_port_is_unreachable(client: PodClient) -> None:
    seen = await client.get_model(PodAddress("127.0.0.1", closed_port()), TOKEN)
    assert isinstance(seen, PodUnavailable) and seen.kind == "unreachable"


async def test_a_silent_pod_times_out_within_the_deadline(client: PodClient) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    seen, seconds = await get_from(client, silent, deadline_s=0.5)
    assert seconds < 3.0
    assert isinstance(seen, PodUnavailable) and seen.kind == "timeout"


async def test_a_pod_that_drips_its_answer_is_cut_at_the_deadline(client: PodClient) -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(200):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)

    seen, seconds = await get_from(client, drip, deadline_s=0.5)
    assert seconds < 3.0
    assert isinstance(seen, PodUnavailable) and seen.kind == "timeout"


async def test_a_huge_answer_is_not_read_whole(fake: Any) -> None:
    pod, address = fake

    async def huge(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"[" + b"0," * (2 << 20) + b"0]", content_type="application/json")

    pod.get = huge
    async with pod_client(max_answer_bytes=1 << 20) as c:
        seen = await c.get_model(address, TOKEN)
    assert isinstance(seen, PodUnavailable) and seen.kind == "bad_answer" and "over 1048576 bytes" in seen.message


async def test_redirects_are_not_followed_so_the_token_goes_nowhere_else(fake: Any, client: PodClient) -> None:
    pod, address = fake
    elsewhere = FakePod()
    app = web.Application()
    app.router.add_route("*", "/admin/model", elsewhere._dispatch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        target = f"http://127.0.0.1:{runner.addresses[0][1]}/admin/model"

        async def redirect(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(target)

        pod.get = redirect
        seen = await client.get_model(address, TOKEN)
    finally:
        await runner.cleanup()
    assert isinstance(seen, PodUnavailable) and seen.kind == "bad_answer" and "HTTP 302" in seen.message
    assert elsewhere.received == []


async def test_proxy_settings_of_the_environment_are_not_used(fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, address = fake
    dead_proxy = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with pod_client() as c:
        assert isinstance(await c.get_model(address, TOKEN), PodAnswer)


async def test_a_token_that_is_not_a_header_value_is_refused_before_sending(fake: Any, client: PodClient) -> None:
    pod, address = fake
    seen = await client.get_model(address, "abc\r\nX-Injected: 1")
    assert isinstance(seen, PodUnavailable) and seen.kind == "unauthorized"
    assert pod.received == []


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the JSON parser recurses
        b"\xff\xfe not utf-8",
        b"",
        b"null",
    ],
)
def test_hostile_get_answers_are_bad_answers_not_exceptions(body: bytes) -> None:
    seen = parse_model_answer(body)
    assert isinstance(seen, PodUnavailable) and seen.kind == "bad_answer"


def test_a_config_nested_as_deep_as_the_parser_allows_is_a_bad_answer_or_a_key() -> None:
    for depth in (500, 900, 990, 2000):
        config = "{" + '"a":{' * depth + "}" * depth + "}"
        body = json.dumps(admin_answer()).replace('"config": {', '"config": ' + config + ', "x": {', 1)
        seen = parse_model_answer(body.encode())
        assert isinstance(seen, PodAnswer | PodUnavailable)  # no exception, whatever the depth


def test_an_unusable_address_is_unreachable_not_an_exception() -> None:
    async def go() -> None:
        async with pod_client() as c:
            seen = await c.get_model(PodAddress("not an ip", 3000), TOKEN)
            assert isinstance(seen, PodUnavailable) and seen.kind == "unreachable"

    asyncio.run(go())


def test_answer_text_is_clipped_and_printable() -> None:
    answer = admin_answer(workers=[{"worker": 0, "state": "failed", "model": None, "error": "\x1b[2J" + "x" * 5000}])
    seen = parse_model_answer(json.dumps(answer).encode())
    assert isinstance(seen, PodAnswer) and seen.error is not None
    assert len(seen.error) <= 1024 and "\x1b" not in seen.error


def test_the_config_fingerprint_ignores_key_order() -> None:
    assert config_fingerprint({"a": 1, "b": {"c": 2, "d": 3}}) == config_fingerprint({"b": {"d": 3, "c": 2}, "a": 1})
    assert config_fingerprint({"a": 1}) != config_fingerprint({"a": 1.5})


# --- PUT ---------------------------------------------------------------------------------------------


async def test_a_swap_is_put_then_confirmed_by_a_get(fake: Any, client: PodClient) -> None:
    pod, address = fake
    pod.answer("get", admin_answer(V2))
    outcome = await client.swap(address, TOKEN, V2, pod="pod-a")
    assert outcome.pod == "pod-a" and outcome.key == V2.key
    assert outcome.result == Swapped(served=V2.key, changed=True, seconds=0.4)
    (method, auth, body), (then, _, _) = pod.received
    assert (method, auth, then) == ("PUT", f"Bearer {TOKEN}", "GET")
    assert json.loads(body) == V2.document


async def test_a_swap_the_pod_does_not_confirm_carries_what_it_serves(fake: Any, client: PodClient) -> None:
    _, address = fake  # the GET still answers V1
    outcome = await client.swap(address, TOKEN, V2, pod="pod-a")
    assert outcome.result == Swapped(served=V1.key, changed=True, seconds=0.4)


async def test_a_swap_whose_confirmation_fails_has_no_served_model(fake: Any, client: PodClient) -> None:
    pod, address = fake
    pod.answer("get", {"error": {"status": 500, "reason": "internal", "message": "x"}}, 500)
    outcome = await client.swap(address, TOKEN, V2, pod="pod-a")
    assert outcome.result == Swapped(served=None, changed=True, seconds=0.4)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (422, "digest_mismatch"),
        (422, "invalid_config"),
        (422, "invalid_document"),
        (400, "bad_request"),
        (413, "too_large"),
        (502, "fetch_failed"),
        (500, "load_failed"),
        (500, "smoke_failed"),
        (500, "unsafe_loader"),
        (500, "worker_failed"),
        (504, "worker_failed"),
        (500, "internal"),
    ],
)
async def test_every_refusal_keeps_the_pods_reason(fake: Any, client: PodClient, status: int, reason: str) -> None:
    pod, address = fake
    pod.answer("put", {"error": {"status": status, "reason": reason, "message": f"why {reason}"}}, status)
    result = await client.put_model(address, TOKEN, V2.document)
    assert result == SwapRefused(reason, f"why {reason}", status)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            401,
            {"error": {"status": 401, "reason": "unauthorized", "message": "no"}},
            SwapUndelivered("unauthorized", "no"),
        ),
        (503, {"error": {"status": 503, "reason": "not_ready", "message": "x"}}, SwapUndelivered("not_ready", "x")),
        (429, "slow down", SwapUndelivered("not_ready", "slow down")),
        (500, "<html>oops</html>", SwapRefused("bad_answer", "HTTP 500: <html>oops</html>", 500)),
        (200, {"ok": True}, SwapRefused("bad_answer", "the answer to the PUT is not the pod's admin API", 200)),
        (200, "not json", SwapRefused("bad_answer", "the answer to the PUT is not the pod's admin API", 200)),
        (
            422,
            {"error": {"status": 422, "reason": "digest mismatch; rm -rf /", "message": 7}},
            SwapRefused("digestmismatchrmrf", "", 422),
        ),
    ],
)
async def test_put_answers_that_are_not_refusals_of_the_model(
    fake: Any, client: PodClient, status: int, body: Any, expected: Any
) -> None:
    pod, address = fake
    pod.answer("put", body, status)
    assert await client.put_model(address, TOKEN, V2.document) == expected


async def test_put_to_a_closed_port_never_reached_the_pod(client: PodClient) -> None:
    result = await client.put_model(PodAddress("127.0.0.1", closed_port()), TOKEN, V2.document)
    assert isinstance(result, SwapUndelivered) and result.kind == "unreachable"


async def test_put_past_its_deadline_is_lost_not_refused(client: PodClient) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await raw_server(slow)
    async with server:
        port = server.sockets[0].getsockname()[1]
        result = await client.put_model(PodAddress("127.0.0.1", port), TOKEN, V2.document, deadline_s=0.5)
    assert isinstance(result, SwapLost) and result.kind == "timeout" and "0.5 s" in result.message


async def test_a_connection_dropped_during_the_put_is_lost(client: PodClient) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.abort()  # the pod died mid-swap

    server = await raw_server(drop)
    async with server:
        port = server.sockets[0].getsockname()[1]
        result = await client.put_model(PodAddress("127.0.0.1", port), TOKEN, V2.document)
    assert isinstance(result, SwapLost) and result.kind == "connection_lost"


async def test_a_cancelled_call_is_cancelled_not_swallowed(client: PodClient) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await raw_server(slow)
    async with server:
        port = server.sockets[0].getsockname()[1]
        task = asyncio.create_task(client.put_model(PodAddress("127.0.0.1", port), TOKEN, V2.document))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_one_slow_pod_does_not_hold_up_the_others(fake: Any, client: PodClient) -> None:
    _, address = fake

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await raw_server(slow)
    async with server:
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        started = loop.time()
        stuck = asyncio.create_task(client.put_model(PodAddress("127.0.0.1", port), TOKEN, V2.document))
        answers = await asyncio.gather(*(client.get_model(address, TOKEN) for _ in range(20)))
        assert all(isinstance(a, PodAnswer) for a in answers)
        assert loop.time() - started < 1.5
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck


def test_ipv6_pod_addresses_are_bracketed() -> None:
    assert PodAddress("fd00::7", 3000).base_url == "http://[fd00::7]:3000"
    assert PodAddress("10.244.1.7", 3000).base_url == "http://10.244.1.7:3000"
