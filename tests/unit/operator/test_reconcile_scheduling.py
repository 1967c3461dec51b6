"""When the reconciler runs a deployment again (overseer.operator.reconcile): triggers that arrive
before a run starts are merged into one, at the earliest time asked - a swap's end must not wait
behind the drift check scheduled a minute later."""

from __future__ import annotations

import asyncio
from typing import Any

from overseer.operator.metrics import Metrics
from overseer.operator.reconcile import Reconciler
from overseer.operator.settings import OperatorSettings


def reconciler(started: list[tuple[Any, float]]) -> Reconciler:
    r = Reconciler(kube=None, settings=OperatorSettings(), metrics=Metrics("test"), run_check=None)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    r._start = lambda key: (r._scheduled.pop(key, None), started.append((key, loop.time())))  # type: ignore[method-assign]
    return r


async def until(check: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline
        await asyncio.sleep(0.01)


async def test_an_earlier_trigger_moves_a_later_one_forward() -> None:
    started: list[tuple[Any, float]] = []
    r = reconciler(started)
    t0 = asyncio.get_running_loop().time()
    r.trigger("ModelDeployment", "ns", "cats", 60.0)  # the drift check
    r.trigger("ModelDeployment", "ns", "cats", 0.0)  # a swap ended
    await until(lambda: started)
    assert started[0][0] == ("ModelDeployment", "ns", "cats") and started[0][1] - t0 < 5.0
    assert not r._scheduled  # merged: the minute-long one is gone, not run twice


async def test_a_later_trigger_does_not_delay_an_earlier_one_and_keys_are_apart() -> None:
    started: list[tuple[Any, float]] = []
    r = reconciler(started)
    r.trigger("ModelDeployment", "ns", "cats", 0.0)
    r.trigger("ModelDeployment", "ns", "cats", 60.0)
    r.trigger("ModelDeployment", "ns", "dogs", 0.0)
    await until(lambda: len(started) == 2)
    assert {key for key, _ in started} == {("ModelDeployment", "ns", "cats"), ("ModelDeployment", "ns", "dogs")}
    await r.close()
    assert not r._scheduled
