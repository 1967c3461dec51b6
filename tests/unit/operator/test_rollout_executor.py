"""The rollout executor (overseer.operator.rollout) against small in-process admin APIs on loopback:
swaps run as tasks of their own, a slow pod holds only its own swap, outcomes wait for the next
plan, and a deleted deployment's swaps are cancelled. (The real thing, with serving pods on the
local cluster, is tests/e2e/operator/.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from overseer.operator.metrics import Metrics
from overseer.operator.plan import Swap
from overseer.operator.rollout import RolloutExecutor
from overseer.operator.rollout_state import PodAnswer, PodUnavailable, RolloutState, Swapped, SwapRefused
from overseer.operator.settings import OperatorSettings
from overseer.schema.validation import validate_model_config
from rollout_testing import T0, V1, V2

TOKEN = "t0ken"


@dataclass
class FakePod:
    """The admin API of one serving pod: serves `model`; a PUT waits for `release` when set."""

    model: dict[str, Any]
    refuse: str | None = None
    release: asyncio.Event | None = None
    puts: list[dict[str, Any]] = field(default_factory=list)
    answered: int = 0

    def answer(self) -> dict[str, Any]:
        model = self.model["model"]
        # As a serving pod does: the config it applied, with the schema's defaults.
        config = validate_model_config(
            self.model["schema"], model["labels"], model["metadata"], model["customObjects"]
        ).defaulted
        identity = {k: model[k] for k in ("name", "version", "digest")}
        return {"model": identity, "config": config, "state": "serving", "workers": []}

    async def get(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": {"status": 401, "reason": "unauthorized", "message": "no"}}, status=401)
        return web.json_response(self.answer())

    async def put(self, request: web.Request) -> web.Response:
        document = json.loads(await request.read())
        self.puts.append(document)
        if self.release is not None:
            await self.release.wait()
        if self.refuse:
            error = {"status": 422, "reason": self.refuse, "message": "the weights differ"}
            return web.json_response({"error": error}, status=422)
        changed = document != self.model
        self.model = document
        self.answered += 1
        return web.json_response({"changed": changed, "swap_seconds": 0.01})


async def until(check: Any, what: str, timeout: float = 5.0) -> None:
    """Poll with a deadline (no sleep as synchronisation)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
async def pods() -> AsyncIterator[dict[str, tuple[FakePod, int]]]:
    """Three fake pods on loopback ports, all serving V1."""
    out: dict[str, tuple[FakePod, int]] = {}
    runners = []
    for name in ("pod-a", "pod-b", "pod-c"):
        fake = FakePod(V1.document)
        app = web.Application()
        app.router.add_get("/admin/model", fake.get)
        app.router.add_put("/admin/model", fake.put)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        out[name] = (fake, port)
        runners.append(runner)
    yield out
    for runner in runners:
        await runner.cleanup()


def k8s_pod(name: str, port: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {"containers": [{"name": "serving", "ports": [{"name": "http", "containerPort": port}]}]},
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "serving", "ready": True, "restartCount": 0, "state": {"running": {}}}],
        },
    }


@pytest.fixture
async def executor() -> AsyncIterator[tuple[RolloutExecutor, asyncio.Queue[tuple[str, str]]]]:
    done: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    settings = OperatorSettings(swap_timeout_s=5, pod_query_timeout_s=2)
    ex = RolloutExecutor(settings, Metrics("test"), lambda ns, name: done.put_nowait((ns, name)))
    yield ex, done
    await ex.close()


KEY = ("ns", "cats")


async def test_observe_asks_every_running_pod_at_once(pods: dict[str, tuple[FakePod, int]], executor: Any) -> None:
    ex, _ = executor
    raw = [k8s_pod(name, port) for name, (_, port) in pods.items()]
    pending = {"metadata": {"name": "pod-d", "uid": "uid-pod-d"}, "status": {"phase": "Pending"}}
    seen = await ex.observe([*raw, pending], TOKEN, 3000)
    views = {v.name: v for v in seen.views}
    assert all(isinstance(views[n].observed, PodAnswer) and views[n].observed.served == V1.key for n in pods)
    assert views["pod-d"].observed is None and "pod-d" not in seen.addresses
    wrong = await ex.observe(raw[:1], "not-the-token", 3000)
    assert isinstance(wrong.views[0].observed, PodUnavailable) and wrong.views[0].observed.kind == "unauthorized"


async def test_a_slow_pod_never_holds_another_deployments_swap(
    pods: dict[str, tuple[FakePod, int]], executor: Any
) -> None:
    ex, done = executor
    slow, _ = pods["pod-a"]
    slow.release = asyncio.Event()
    raw = [k8s_pod(name, port) for name, (_, port) in pods.items()]
    seen = await ex.observe(raw, TOKEN, 3000)
    other = ("ns", "dogs")
    ex.launch(KEY, [Swap("pod-a", "uid-pod-a", V2, "rollout")], seen, TOKEN)
    ex.launch(other, [Swap("pod-c", "uid-pod-c", V2, "rollout")], seen, TOKEN)
    assert await asyncio.wait_for(done.get(), 5) == other
    assert ex.pending(KEY) == ((), frozenset({"pod-a"}))
    slow.release.set()
    assert await asyncio.wait_for(done.get(), 5) == KEY


async def test_a_slow_pod_holds_only_its_own_swap(pods: dict[str, tuple[FakePod, int]], executor: Any) -> None:
    ex, done = executor
    slow, _ = pods["pod-a"]
    slow.release = asyncio.Event()
    raw = [k8s_pod(name, port) for name, (_, port) in pods.items()]
    seen = await ex.observe(raw, TOKEN, 3000)
    swaps = [Swap("pod-a", "uid-pod-a", V2, "rollout"), Swap("pod-b", "uid-pod-b", V2, "rollout", restarts=3)]
    assert ex.launch(KEY, swaps, seen, TOKEN) == []  # returns at once: the swaps are tasks
    assert ex.pending(KEY) == ((), frozenset({"pod-a", "pod-b"}))

    assert await asyncio.wait_for(done.get(), 5) == KEY  # pod-b's end triggers the next plan
    outcomes, running = ex.pending(KEY)
    assert running == frozenset({"pod-a"})
    (outcome,) = outcomes
    assert outcome.pod == "pod-b" and outcome.result == Swapped(served=V2.key, changed=True, seconds=0.01)
    assert (outcome.uid, outcome.restarts) == ("uid-pod-b", 3)  # the run of the pod it was sent to

    ex.consumed(KEY, outcomes)  # the plan that took it was persisted
    assert ex.pending(KEY) == ((), frozenset({"pod-a"}))
    slow.release.set()
    await asyncio.wait_for(done.get(), 5)
    (late,), running = ex.pending(KEY)
    assert late.pod == "pod-a" and running == frozenset()


async def test_a_refusal_is_an_outcome_and_is_counted(pods: dict[str, tuple[FakePod, int]], executor: Any) -> None:
    ex, done = executor
    fake, port = pods["pod-c"]
    fake.refuse = "digest_mismatch"
    seen = await ex.observe([k8s_pod("pod-c", port)], TOKEN, 3000)
    ex.launch(KEY, [Swap("pod-c", "uid-pod-c", V2, "rollout")], seen, TOKEN)
    await asyncio.wait_for(done.get(), 5)
    (outcome,), _ = ex.pending(KEY)
    assert outcome.result == SwapRefused("digest_mismatch", "the weights differ", 422)
    assert 'overseer_pod_swaps_total{purpose="rollout",result="refused"} 1.0' in ex.metrics.render().decode()


async def test_a_swap_is_not_started_for_a_pod_replaced_under_the_same_name(
    pods: dict[str, tuple[FakePod, int]], executor: Any
) -> None:
    ex, _ = executor
    _, port = pods["pod-a"]
    seen = await ex.observe([k8s_pod("pod-a", port)], TOKEN, 3000)
    skipped = ex.launch(KEY, [Swap("pod-a", "uid-of-an-older-pod", V2, "rollout")], seen, TOKEN)
    assert len(skipped) == 1 and ex.pending(KEY) == ((), frozenset())
    assert len(ex.launch(KEY, [Swap("pod-a", "uid-pod-a", V2, "rollout")], seen, None)) == 1  # no token yet


async def test_a_deleted_deployment_cancels_its_swaps(pods: dict[str, tuple[FakePod, int]], executor: Any) -> None:
    ex, done = executor
    fake, port = pods["pod-a"]
    fake.release = asyncio.Event()
    seen = await ex.observe([k8s_pod("pod-a", port)], TOKEN, 3000)
    ex.launch(KEY, [Swap("pod-a", "uid-pod-a", V2, "rollout")], seen, TOKEN)
    await until(lambda: len(fake.puts) == 1, "the PUT to reach the pod")
    ex.forget(KEY)
    fake.release.set()  # the pod finishes the swap whose client went away
    await until(lambda: fake.answered == 1, "the pod to finish the swap")
    assert ex.pending(KEY) == ((), frozenset()) and done.empty()


def test_metrics_count_ended_rollouts_and_rollbacks() -> None:
    ex = RolloutExecutor(OperatorSettings(), Metrics("test"), lambda ns, name: None)
    rolling = RolloutState(phase="Rolling", target=V2, stable=V1, started_at=T0)
    ex.record(KEY, None, rolling, ())
    back = rolling.model_copy(update={"phase": "RollingBack"})
    ex.record(KEY, rolling, back, ())
    ex.record(KEY, back, back, ())  # unchanged: counted once
    from datetime import timedelta

    rolled = back.model_copy(update={"phase": "RolledBack", "finished_at": T0 + timedelta(seconds=3)})
    ex.record(KEY, back, rolled, ())
    text = ex.metrics.render().decode()
    assert 'overseer_rollbacks_total{strategy="HotSwap"} 1.0' in text
    assert 'overseer_rollouts_total{result="rolled_back",strategy="HotSwap"} 1.0' in text
    assert 'overseer_rollout_duration_seconds_sum{result="rolled_back",strategy="HotSwap"} 3.0' in text
    assert "overseer_rollouts_in_progress 0.0" in text
