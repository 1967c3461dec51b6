"""docs/rollout.md matches the planner: every condition reason and Event reason it produces is
documented (collected from seeded random walks of the simulated world)."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

from overseer.operator.plan import Plan
from rollout_testing import BAD, V1, V2, V3, release
from rollout_world import World, random_walk

DOC = Path(__file__).parents[3] / "docs" / "rollout.md"


def test_every_reason_the_planner_produces_is_documented() -> None:
    documented = set(re.findall(r"`([A-Z][A-Za-z]+)`", DOC.read_text(encoding="utf-8")))
    produced: set[str] = set()
    for seed in range(40):
        rng = random.Random(seed)
        world = World(spec=V1, bad=frozenset({BAD.key}), max_unavailable=rng.randint(1, 3), replicas=3)
        world.auto_rollback = seed % 3 != 0

        def tick(original: Callable[[], Plan] = world.tick) -> Plan:
            p = original()
            produced.update(e.reason for e in p.events)
            if p.status is not None:
                produced.update(c.reason for c in p.status.conditions)
            return p

        world.tick = tick  # type: ignore[method-assign]
        world.settle()
        random_walk(world, rng, 120, [V1, V2, V3, BAD], release("20230000", digit="f"))
    assert {"RolloutStarted", "PodSwapped", "RollingBack", "HotSwapInProgress", "DriftDetected"} <= produced
    assert sorted(produced - documented) == []
