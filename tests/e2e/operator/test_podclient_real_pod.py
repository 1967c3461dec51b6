"""The pod admin client against a real `overseer serve` process on loopback (real BentoML, real
YOLO weights): what the planner is fed is what a serving pod really answers."""

from __future__ import annotations

import asyncio
import copy
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from overseer.api.model_document import ModelDocument
from overseer.operator.podclient import PodAddress, PodClient, pod_client
from overseer.operator.rollout_state import (
    PodAnswer,
    PodUnavailable,
    Release,
    SwapLost,
    Swapped,
    SwapRefused,
    SwapUndelivered,
    release_of,
)
from overseer_devtools.localserver import START_TIMEOUT_S, LocalServer, free_port, running
from overseer_devtools.toymodels import build_detector
from overseer_serving.digest import sha256_file

TOKEN = "e2e-operator-token"

# Defaults in the schema: the pod reports its config with them applied, and the operator's key
# must come out the same from the document it sends.
SCHEMA: dict[str, Any] = {
    "name": "object-detector",
    "version": 1,
    "labels": {"type": "object", "required": ["owner"], "properties": {"owner": {"type": "string"}}},
    "metadata": {"type": "object", "properties": {"f1": {"type": "number"}}},
    "customObjects": {
        "type": "object",
        "required": ["conf"],
        "properties": {
            "resize_resolution": {"type": "integer", "default": 320},
            "conf": {"type": "number", "minimum": 0, "maximum": 1},
            "max_det": {"type": "integer", "default": 20},
        },
    },
}


def document(path: Path, digest: str, version: str, **model: Any) -> dict[str, Any]:
    base = {
        "name": "cat_recognition",
        "version": version,
        "uri": f"file://{path}",
        "digest": digest,
        "labels": {"owner": "ml-team"},
        "metadata": {"f1": 0.8},
        "customObjects": {"conf": 0.25},
    }
    base.update(model)
    return {"model": base, "schema": copy.deepcopy(SCHEMA)}


def as_release(doc: dict[str, Any]) -> Release:
    return release_of(ModelDocument.model_validate(doc))


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Release]:
    root = tmp_path_factory.mktemp("weights")
    a, b = root / "a.pt", root / "b.pt"
    corrupt = root / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not a checkpoint" * 64)
    return {
        "a": as_release(document(a, build_detector(a, seed=1), "20240101")),
        "b": as_release(document(b, build_detector(b, seed=2, names=["person", "car"]), "20240202")),
        "corrupt": as_release(document(corrupt, sha256_file(corrupt), "20240303")),
    }


@pytest.fixture(scope="module")
def pod(weights: dict[str, Release], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    work = tmp_path_factory.mktemp("pod")
    env = {"OVERSEER_LOG_FORMAT": "json", "OVERSEER_CACHE_DIR": str(work / "cache")}
    with running(work, weights["a"].document, token=TOKEN, env=env) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[PodClient]:
    async with pod_client(get_deadline_s=10.0, put_deadline_s=120.0) as c:
        yield c


def address(server: LocalServer) -> PodAddress:
    host, _, port = server.url.removeprefix("http://").rpartition(":")
    return PodAddress(host, int(port))


async def wait_serving(client: PodClient, server: LocalServer, release: Release, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        seen = await client.get_model(address(server), TOKEN)
        if isinstance(seen, PodAnswer) and seen.served == release.key and seen.state == "serving":
            return
        assert loop.time() < deadline, f"pod never served {release.key.label}; last: {seen}"
        await asyncio.sleep(0.2)  # poll interval, bounded by the deadline above


async def test_the_key_a_pod_reports_is_the_key_the_operator_computes(
    pod: LocalServer, weights: dict[str, Release], client: PodClient
) -> None:
    await client.swap(address(pod), TOKEN, weights["a"], pod="p")  # whatever earlier tests left
    seen = await client.get_model(address(pod), TOKEN)
    assert isinstance(seen, PodAnswer)
    assert seen.state == "serving" and seen.schema_version == 1
    assert seen.served == weights["a"].key  # defaults applied on both sides, the same fingerprint


async def test_a_swap_is_confirmed_by_digest_and_a_repeat_is_a_no_op(
    pod: LocalServer, weights: dict[str, Release], client: PodClient
) -> None:
    first = await client.swap(address(pod), TOKEN, weights["b"], pod="p")
    assert isinstance(first.result, Swapped)
    assert first.result.served == weights["b"].key
    again = await client.swap(address(pod), TOKEN, weights["b"], pod="p")
    assert again.result == Swapped(served=weights["b"].key, changed=False, seconds=again.result.seconds)  # type: ignore[union-attr]
    back = await client.swap(address(pod), TOKEN, weights["a"], pod="p")
    assert isinstance(back.result, Swapped) and back.result.served == weights["a"].key and back.result.changed


async def test_a_config_change_on_the_same_weights_is_a_new_key_and_a_real_swap(
    pod: LocalServer, weights: dict[str, Release], client: PodClient
) -> None:
    a = weights["a"].document
    a["model"]["customObjects"] = {"conf": 0.4}
    stricter = as_release(a)
    assert stricter.key.digest == weights["a"].key.digest and stricter.key != weights["a"].key
    outcome = await client.swap(address(pod), TOKEN, stricter, pod="p")
    assert outcome.result == Swapped(served=stricter.key, changed=True, seconds=outcome.result.seconds)  # type: ignore[union-attr]
    await client.swap(address(pod), TOKEN, weights["a"], pod="p")


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("digest mismatch", 422, "digest_mismatch"),
        ("missing file", 502, "fetch_failed"),
        ("corrupt weights", 500, "load_failed"),
        ("schema violation", 422, "invalid_config"),
    ],
)
async def test_refusals_keep_the_pods_reason_and_the_old_model(
    pod: LocalServer,
    weights: dict[str, Release],
    client: PodClient,
    tmp_path: Path,
    case: str,
    status: int,
    reason: str,
) -> None:
    await client.swap(address(pod), TOKEN, weights["a"], pod="p")
    doc = weights["b"].document
    if case == "digest mismatch":
        doc["model"]["digest"] = "sha256:" + "0" * 64
    elif case == "missing file":
        doc["model"].update(uri=f"file://{tmp_path}/nowhere.pt", digest="sha256:" + "1" * 64)
    elif case == "corrupt weights":
        doc = weights["corrupt"].document
    else:
        doc["model"]["customObjects"] = {"conf": 7}
    # A document the pod refuses may not even be valid for the operator: send it as is.
    result = await client.put_model(address(pod), TOKEN, doc)
    assert isinstance(result, SwapRefused), result
    assert (result.status, result.reason) == (status, reason)
    assert result.message
    seen = await client.get_model(address(pod), TOKEN)
    assert isinstance(seen, PodAnswer) and seen.served == weights["a"].key


async def test_a_wrong_token_is_unauthorized_for_get_and_undelivered_for_put(
    pod: LocalServer, weights: dict[str, Release], client: PodClient
) -> None:
    seen = await client.get_model(address(pod), "not-the-token")
    assert isinstance(seen, PodUnavailable) and seen.kind == "unauthorized"
    result = await client.put_model(address(pod), "not-the-token", weights["b"].document)
    assert isinstance(result, SwapUndelivered) and result.kind == "unauthorized"


@contextmanager
def gated_weights_server(path: Path) -> Iterator[tuple[str, threading.Event]]:
    """Serves `path` over HTTP on loopback, but holds each answer until the event is set: a swap
    that fetches from it lasts exactly as long as the test wants, however fast the machine."""
    body = path.read_bytes()
    gate = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener was closed
                return
            with conn:
                conn.recv(65536)
                if not gate.wait(60):
                    continue
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
                conn.sendall(body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/{path.name}", gate
    finally:
        stop.set()
        gate.set()
        listener.close()
        thread.join(10)


async def test_a_put_past_its_deadline_is_lost_and_the_pod_finishes_the_swap(
    pod: LocalServer, weights: dict[str, Release], client: PodClient, tmp_path: Path
) -> None:
    await client.swap(address(pod), TOKEN, weights["a"], pod="p")
    # Weights the pod has never cached, from a server that answers only when the test says so: the
    # PUT's deadline passes while the pod is still fetching, on any machine.
    slow = tmp_path / "slow.pt"
    digest = build_detector(slow, seed=3)
    with gated_weights_server(slow) as (url, gate):
        release = as_release(document(slow, digest, "20240404", uri=url))
        result = await client.put_model(address(pod), TOKEN, release.document, deadline_s=0.3)
        assert isinstance(result, SwapLost) and result.kind == "timeout", result
        seen = await client.get_model(address(pod), TOKEN)
        assert isinstance(seen, PodAnswer) and seen.served == weights["a"].key  # still the old model
        gate.set()
        await wait_serving(client, pod, release)  # the swap ran to its end without its client
    await client.swap(address(pod), TOKEN, weights["a"], pod="p")


async def test_a_starting_pod_is_unreachable_or_loading_never_an_error(
    weights: dict[str, Release], client: PodClient, tmp_path: Path
) -> None:
    env = {"OVERSEER_LOG_FORMAT": "json", "OVERSEER_CACHE_DIR": str(tmp_path / "cache")}
    server = LocalServer.start(tmp_path, weights["a"].document, token=TOKEN, env=env)
    seen: list[PodAnswer | PodUnavailable] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while not (seen and isinstance(seen[-1], PodAnswer) and seen[-1].state == "serving"):
            assert loop.time() < deadline, f"never served; last: {seen[-1:]}\n{server.log[-2000:]}"
            seen.append(await client.get_model(address(server), TOKEN, deadline_s=2.0))
            await asyncio.sleep(0.1)  # poll interval, bounded by the deadline above
        server.note_workers()
    finally:
        try:
            server.stop()
        except BaseException:
            server.kill_leftovers()
            raise
    kinds = {s.kind if isinstance(s, PodUnavailable) else s.state for s in seen}
    assert kinds <= {"unreachable", "timeout", "loading", "serving"}, seen
    assert seen[-1].served == weights["a"].key  # type: ignore[union-attr]
    # Stopped: unreachable, and a PUT is undelivered (it never reached a swap).
    gone = await client.get_model(address(server), TOKEN, deadline_s=2.0)
    assert isinstance(gone, PodUnavailable) and gone.kind == "unreachable"
    put = await client.put_model(address(server), TOKEN, weights["b"].document, deadline_s=2.0)
    assert isinstance(put, SwapUndelivered) and put.kind == "unreachable"


async def test_nothing_listening_is_unreachable(client: PodClient) -> None:
    seen = await client.get_model(PodAddress("127.0.0.1", free_port()), TOKEN)
    assert isinstance(seen, PodUnavailable) and seen.kind == "unreachable"
