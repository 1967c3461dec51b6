"""The planner in a simulated world: every interleaving hypothesis finds of pod answers, timeouts,
operator crashes, pod restarts and deletions, scale changes, drift and spec changes, with the
rollout's invariants checked after every step (rollout_world.World.check_step / check_pods):

- ConfigMap first: every PUT sends what the ConfigMap holds, after the state that records it;
- at most maxUnavailable pods have a PUT queued, counting PUTs of operator processes that died;
- a model is marked fully served only when every live pod was confirmed on it;
- after a refusal only the stable model is sent; a held rollout sends nothing;
- no pod ever serves a model that is neither the last fully served one nor one the spec asked for;
- (liveness) without faults, the rollout always ends: every pod on the desired model, or rolled
  back with every pod on the stable one, or held; and a good model retried after a failure
  reaches every pod.

The defaults keep the unit tier fast; soak it with

    HYPOTHESIS_PROFILE=rollout-soak OVERSEER_SIM_WALKS=3000 \
        pytest tests/unit/operator/test_plan_simulation.py --timeout 0
"""

from __future__ import annotations

import dataclasses
import os
import random

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from overseer.operator.plan import Done, Fail, Plan, PlanInput, RolloutSettings, plan
from overseer.operator.rollout_state import PodAnswer, Release, SwapRefused
from rollout_testing import BAD, V1, V2, V3, release
from rollout_world import InvariantBroken, World, random_walk, settle_and_check

FOREIGN = release("20230000", digit="f")
V2_CONF = release("20240202", digit="2", conf=0.5)  # same weights as V2, another config
V1_MOVED = release("20240101", digit="1", uri="https://models.example/cat/20240101.pt")  # same model, new URI
MODELS = [V1, V2, V3, BAD, V2_CONF, V1_MOVED]

settings.register_profile(
    "rollout-unit",
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "rollout-soak",
    max_examples=1000,
    stateful_step_count=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "rollout-unit")


class Rollouts(RuleBasedStateMachine):
    world: World

    @initialize(
        max_unavailable=st.integers(1, 3),
        auto_rollback=st.booleans(),
        replicas=st.integers(1, 4),
    )
    def start(self, max_unavailable: int, auto_rollback: bool, replicas: int) -> None:
        self.world = World(
            spec=V1,
            bad=frozenset({BAD.key}),
            max_unavailable=max_unavailable,
            auto_rollback=auto_rollback,
            replicas=replicas,
        )
        self.world.settle()

    def _pod(self, index: int) -> str | None:
        names = sorted(self.world.pods)
        return names[index % len(names)] if names else None

    @rule()
    def tick(self) -> None:
        self.world.tick()

    @rule()
    def tick_twice(self) -> None:
        self.world.tick()
        self.world.tick()

    @rule(index=st.integers(0, 7))
    def pod_answers(self, index: int) -> None:
        if (name := self._pod(index)) is not None:
            self.world.process(name)

    @rule()
    def every_pod_answers(self) -> None:
        for name in sorted(self.world.pods):
            self.world.process(name)

    @rule(index=st.integers(0, 7))
    def pod_boots(self, index: int) -> None:
        if (name := self._pod(index)) is not None:
            self.world.boot(name)

    @rule(index=st.integers(0, 7))
    def pod_finishes_loading(self, index: int) -> None:
        if (name := self._pod(index)) is not None:
            self.world.loaded(name)

    @rule(index=st.integers(0, 7))
    def pod_cut_off(self, index: int) -> None:
        if (name := self._pod(index)) is not None:
            self.world.cut_off(name)

    @rule(index=st.integers(0, 7))
    def pod_turns_puts_away(self, index: int) -> None:
        if (name := self._pod(index)) is not None:
            self.world.turn_puts_away(name)

    @rule()
    def network_heals(self) -> None:
        self.world.heal()

    @rule(model=st.sampled_from(MODELS))
    def weights_vanish(self, model: Release) -> None:
        self.world.weights_vanish(model)

    @rule(on=st.booleans())
    def user_flips_auto_rollback(self, on: bool) -> None:
        self.world.set_auto_rollback(on)

    @rule(first=st.sampled_from(MODELS), second=st.sampled_from(MODELS), answers=st.integers(0, 3))
    def user_applies_during_a_rollout(self, first: Release, second: Release, answers: int) -> None:
        self.world.apply(first)
        self.world.tick()
        for _ in range(answers):
            self.world.every_pod_answers()
            self.world.tick()
        self.world.apply(second)
        self.world.tick()

    @rule(index=st.integers(0, 7))
    def put_times_out(self, index: int) -> None:
        if (name := self._pod(index)) is not None:
            self.world.time_out(name)

    @rule(index=st.integers(0, 7))
    def pod_restarts(self, index: int) -> None:
        if (name := self._pod(index)) is not None:
            self.world.restart(name)

    @rule(index=st.integers(0, 7))
    def pod_oom_killed(self, index: int) -> None:
        """Its PUT's connection drops before the API shows the new restart count."""
        if (name := self._pod(index)) is not None:
            self.world.oom_kill(name)

    @rule(index=st.integers(0, 7))
    def put_connection_drops(self, index: int) -> None:
        if (name := self._pod(index)) is not None:
            self.world.drop_connection(name)

    @rule(index=st.integers(0, 7))
    def pod_deleted(self, index: int) -> None:
        if (name := self._pod(index)) is not None:
            self.world.delete(name)

    @rule()
    def deleted_pods_go(self) -> None:
        self.world.reap()

    @rule(replicas=st.integers(1, 4))
    def scale(self, replicas: int) -> None:
        self.world.scale(replicas)

    @rule()
    def operator_crashes(self) -> None:
        self.world.crash_operator()

    @rule(model=st.sampled_from(MODELS))
    def user_applies(self, model: Release) -> None:
        self.world.apply(model)

    @rule(index=st.integers(0, 7))
    def someone_swaps_a_pod_by_hand(self, index: int) -> None:
        if (name := self._pod(index)) is not None:
            self.world.tamper(name, FOREIGN)

    @precondition(lambda self: self.world.configmap is not None)
    @rule()
    def user_retries(self) -> None:
        self.world.retry()

    @rule()
    def settles(self) -> None:
        self._settle_and_check()

    @invariant()
    def pods_serve_allowed_models(self) -> None:
        self.world.check_pods()

    def teardown(self) -> None:
        if hasattr(self, "world"):
            self._settle_and_check()

    def _settle_and_check(self) -> None:
        settle_and_check(self.world)
        state = self.world.configmap
        assert state is not None
        event(f"settled: {state.phase}" + (f" ({state.failure.reason})" if state.failure else ""))


Rollouts.TestCase.settings = settings.get_profile(PROFILE)
test_rollouts = Rollouts.TestCase


# --- random walks: many long runs, cheaply --------------------------------------------------------------

WALKS = int(os.environ.get("OVERSEER_SIM_WALKS", "100"))


def test_random_walks_keep_every_invariant() -> None:
    """Seeded random walks (reproducible: the failing seed is in the message)."""
    for seed in range(WALKS):
        rng = random.Random(seed)
        world = World(
            spec=V1,
            bad=frozenset({BAD.key}),
            max_unavailable=rng.randint(1, 3),
            auto_rollback=rng.random() < 0.7,
            replicas=rng.randint(1, 4),
        )
        try:
            world.settle()
            random_walk(world, rng, 150, MODELS, FOREIGN)
            settle_and_check(world)
        except InvariantBroken as broken:
            log = "\n".join(world.log[-50:])
            raise AssertionError(f"seed {seed}: {broken}\n{log}") from None


# --- stories the random runs found -------------------------------------------------------------------


def test_a_dropped_put_behind_a_superseded_one_is_not_confirmed_by_the_model_the_pod_served_before() -> None:
    """pod-0 serves Y; X is queued there when the operator crashes and the user goes back to Y: Y
    is sent again behind X, and its connection drops. pod-0 answers Y (X has not run yet): that
    must not complete the rollout while X is queued there."""
    world = World(spec=V1, bad=frozenset(), replicas=2)
    world.settle()
    p0, p1 = sorted(world.pods)
    world.apply(V2)
    world.tick()
    world.process(p0)
    world.tick()  # pod-0 on V2, V2 sent to pod-1
    world.apply(V3)
    world.tick()
    world.process(p1)
    world.tick()  # pod-1 on V2, V3 queued on pod-0
    assert [put.release.key for put in world.pods[p0].queue] == [V3.key]
    world.crash_operator()
    world.apply(V2)
    world.tick()  # V2 sent again to pod-0, behind V3
    world.drop_connection(p0)
    p = world.tick()
    assert world.configmap is not None and world.configmap.phase == "Rolling" and not isinstance(p.verdict, Done)
    assert isinstance(settle_and_check(world).verdict, Done)
    assert {pod.serving.key for pod in world.pods.values() if pod.serving} == {V2.key}


def test_a_rollout_back_to_the_stable_model_is_not_complete_while_a_put_of_another_is_queued() -> None:
    """The same with a stable model that does not change: V2 is queued on pod-0 (slow weights) when
    the operator restarts and the user reverts to V1; V1 is sent behind V2 and its connection drops.
    pod-0 still answers V1: not Complete (Ready=True would be a lie: V2 would land after)."""
    world = World(spec=V1, bad=frozenset(), replicas=2)
    world.settle()
    p0 = sorted(world.pods)[0]
    world.apply(V2)
    world.tick()  # V2 queued on pod-0, not run yet
    world.crash_operator()
    world.apply(V1)
    world.tick()  # V1 sent to pod-0, behind V2
    assert [put.release.key for put in world.pods[p0].queue] == [V2.key, V1.key]
    world.drop_connection(p0)
    p = world.tick()
    assert world.configmap is not None and world.configmap.phase == "Rolling" and not isinstance(p.verdict, Done)
    assert p.status is not None and p.status.condition("Ready").status == "False"
    assert isinstance(settle_and_check(world).verdict, Done)
    assert {pod.serving.key for pod in world.pods.values() if pod.serving} == {V1.key}


# --- the simulator can fail: broken planners are caught -----------------------------------------------


def _greedy(inp: PlanInput) -> Plan:
    """Ignores maxUnavailable."""
    return plan(dataclasses.replace(inp, settings=RolloutSettings(max_unavailable=100)))


def _forgetful(inp: PlanInput) -> Plan:
    """Forgets which PUTs it still waits for."""
    return plan(dataclasses.replace(inp, running=frozenset()))


def _deaf(inp: PlanInput) -> Plan:
    """Does not listen to refusals."""
    return plan(dataclasses.replace(inp, outcomes=[o for o in inp.outcomes if not isinstance(o.result, SwapRefused)]))


def _blind(inp: PlanInput) -> Plan:
    """Does not confirm by digest: takes every answering pod to serve the desired model."""
    assert inp.desired is not None
    on_desired = PodAnswer(served=inp.desired.key, state="serving")
    pods = [dataclasses.replace(p, observed=on_desired) if isinstance(p.observed, PodAnswer) else p for p in inp.pods]
    return plan(dataclasses.replace(inp, pods=pods))


def _three_pods(planner: object) -> World:
    world = World(spec=V1, bad=frozenset({BAD.key}), replicas=3, planner=planner)  # type: ignore[arg-type]
    world.settle()
    return world


def test_a_planner_that_ignores_max_unavailable_is_caught() -> None:
    world = _three_pods(_greedy)
    world.apply(V2)
    with pytest.raises(InvariantBroken, match="3 pods swapping at once"):
        world.tick()


def test_a_planner_that_forgets_running_puts_is_caught() -> None:
    world = _three_pods(_forgetful)
    world.apply(V2)
    world.tick()
    with pytest.raises(InvariantBroken, match="a second PUT"):
        world.tick()


def test_a_planner_deaf_to_refusals_never_ends() -> None:
    world = _three_pods(_deaf)
    world.apply(BAD)
    with pytest.raises(InvariantBroken, match="no end after"):
        world.settle(max_ticks=50)


def test_a_planner_that_does_not_confirm_by_digest_is_caught() -> None:
    world = _three_pods(_blind)
    world.apply(V2)
    with pytest.raises(InvariantBroken, match=r"20240202 marked fully served while pod-000 is Running on 20240101"):
        world.tick()


def test_the_real_planner_passes_the_same_scripts() -> None:
    for script in (_greedy_script, _refusal_script):
        world = _three_pods(plan)
        script(world)


def _greedy_script(world: World) -> None:
    world.apply(V2)
    for _ in range(3):
        world.tick()
    assert isinstance(world.settle().verdict, Done)


def _refusal_script(world: World) -> None:
    world.apply(BAD)
    end = world.settle()
    assert isinstance(end.verdict, Fail) and world.configmap is not None
    assert world.configmap.phase == "RolledBack"
