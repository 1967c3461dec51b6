"""A small world for the planner: serving pods, a ConfigMap, and an operator that can die.

The pods follow the serving contract (docs/serving.md): a PUT is queued behind the pod-wide swap
lock (first come, first served) and runs to its end even when its client is gone; a refused model
leaves the old one serving; a (re)started pod loads the model document the ConfigMap holds at that
moment, and a model it cannot load makes it crash-loop. The operator is the executor loop the
planner's docstring describes: observe, plan, persist first, send PUTs, feed the answers back.
A crash loses everything but the persisted state (and the status history).

Every step is checked against the rollout's invariants (`check_step`, `check_pods`); `settle()`
runs the world without faults until the rollout is done or has failed, for the liveness checks.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from overseer.operator.plan import (
    Done,
    Fail,
    Plan,
    PlanInput,
    PodView,
    RolloutSettings,
    WriteConfigMap,
    plan,
)
from overseer.operator.rollout_state import (
    ModelKey,
    PodAnswer,
    PodUnavailable,
    Release,
    RolloutState,
    SwapLost,
    SwapOutcome,
    Swapped,
    SwapRefused,
    SwapUndelivered,
)
from rollout_testing import T0


@dataclass
class Put:
    release: Release
    epoch: int  # the operator process that sent it
    number: int
    uid: str = ""  # the pod and the run of its serving process it was sent to (the Swap's)
    restarts: int = 0


@dataclass
class SimPod:
    name: str
    uid: str
    phase: Literal["Pending", "Loading", "Running", "Crashed", "Terminating"] = "Pending"
    serving: Release | None = None
    booting: Release | None = None  # the document a Loading pod started from
    cut_off: bool = False  # its admin port refuses connections (a network fault)
    busy: bool = False  # it answers GETs but turns PUTs away (503, as an overloaded server may)
    restarts: int = 0
    created_at: datetime = T0
    restart_unseen: bool = False  # it died; the API shows the new restart count once it boots
    crashed_at: datetime | None = None
    queue: list[Put] = field(default_factory=list)


class InvariantBroken(AssertionError):
    pass


@dataclass
class World:
    spec: Release
    bad: frozenset[ModelKey]  # models every pod refuses (and cannot start with)
    gone: set[ModelKey] = field(default_factory=set)  # weights that cannot be fetched for now
    max_unavailable: int = 1
    auto_rollback: bool = True
    replicas: int = 3
    now: datetime = T0
    configmap: RolloutState | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    pods: dict[str, SimPod] = field(default_factory=dict)
    epoch: int = 0
    running: dict[str, int] = field(default_factory=dict)  # pod -> number of the PUT awaited
    outcomes: list[SwapOutcome] = field(default_factory=list)
    attempt: str = ""
    asked: set[ModelKey] = field(default_factory=set)  # spec models since the stable one
    foreign: set[ModelKey] = field(default_factory=set)  # models put on pods behind our back
    last_plan: Plan | None = None
    planner: Callable[[PlanInput], Plan] = plan  # tests swap in broken variants to see them caught
    log: list[str] = field(default_factory=list)
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.asked.add(self.spec.key)
        for _ in range(self.replicas):
            self._new_pod()

    # -- the operator ------------------------------------------------------------------------------

    def tick(self) -> Plan:
        """One executor step: observe, plan, persist, then send the PUTs."""
        self.now += timedelta(seconds=1)
        before = self.configmap
        p = self.planner(
            PlanInput(
                desired=self.spec,
                pods=[self._view(pod) for pod in self.pods.values()],
                state=self.configmap,
                settings=RolloutSettings(max_unavailable=self.max_unavailable, auto_rollback=self.auto_rollback),
                now=self.now,
                outcomes=list(self.outcomes),
                running=frozenset(self.running),
                history=list(self.history),
                attempt=self.attempt,
            )
        )
        self.outcomes.clear()
        self.last_plan = p
        if p.state is not None and p.state != before:
            _require(isinstance(p.actions[0], WriteConfigMap), "a changed state is written before anything else")
            self.configmap = p.state
        self.check_step(before, p)
        if p.status is not None:
            self.history = [dict(h) for h in p.status.history]
        for swap in p.swaps:
            pod = self.pods[swap.pod]
            _require(swap.pod not in self.running, f"a second PUT to {swap.pod} while one is awaited")
            if pod.phase != "Running" or pod.cut_off:
                refused = SwapUndelivered("unreachable", "connection refused")
                self.outcomes.append(SwapOutcome(swap.pod, swap.release.key, refused, swap.uid, swap.restarts))
                continue
            if pod.busy:
                busy = SwapUndelivered("not_ready", "503")
                self.outcomes.append(SwapOutcome(swap.pod, swap.release.key, busy, swap.uid, swap.restarts))
                continue
            put = Put(swap.release, self.epoch, next(self._numbers), swap.uid, swap.restarts)
            pod.queue.append(put)
            self.running[swap.pod] = put.number
        self.log.append(f"tick -> {p.state.phase if p.state else None}, swaps {[s.pod for s in p.swaps]}")
        self.check_pods()
        return p

    def crash_operator(self) -> None:
        """The operator process dies: its memory goes, PUTs already sent keep running on the pods."""
        self.epoch += 1
        self.running.clear()
        self.outcomes.clear()
        self.log.append("operator crash")

    def time_out(self, name: str) -> None:
        """The operator stops waiting for a PUT (its deadline); the pod goes on with it."""
        if name in self.running:
            put = next(p for p in self.pods[name].queue if p.number == self.running[name])
            del self.running[name]
            lost = SwapLost("timeout", "deadline")
            self.outcomes.append(SwapOutcome(name, put.release.key, lost, put.uid, put.restarts))
            self.log.append(f"timeout {name}")

    # -- the pods -----------------------------------------------------------------------------------

    def process(self, name: str) -> None:
        """The pod finishes the PUT at the head of its queue."""
        pod = self.pods[name]
        if pod.phase != "Running" or not pod.queue:
            return
        put = pod.queue.pop(0)
        changed = pod.serving is None or pod.serving.key != put.release.key
        if put.release.key in self.bad:
            result: Swapped | SwapRefused = SwapRefused("load_failed", "weights did not load", 500)
        elif put.release.key in self.gone and (pod.serving is None or pod.serving.key != put.release.key):
            result = SwapRefused("fetch_failed", "the weights are not at the URI", 502)
        else:
            pod.serving = put.release
            result = Swapped(served=put.release.key, changed=changed)
        if put.epoch == self.epoch and self.running.get(name) == put.number:
            del self.running[name]
            self.outcomes.append(SwapOutcome(name, put.release.key, result, put.uid, put.restarts))
        self.log.append(f"{name} processed {put.release.key.version} -> {type(result).__name__}")
        self.check_pods()

    def every_pod_answers(self) -> None:
        for name in sorted(self.pods):
            self.process(name)

    def boot(self, name: str) -> None:
        """A pending pod's serving process starts, from the ConfigMap's document at this moment."""
        pod = self.pods[name]
        if pod.phase != "Pending" or self.configmap is None:
            return
        pod.phase, pod.booting, pod.restart_unseen = "Loading", self.configmap.wanted, False
        self.log.append(f"{name} booting {pod.booting.key.version}")

    def loaded(self, name: str) -> None:
        """A loading pod finishes: it serves its document, or crash-loops on one it cannot load."""
        pod = self.pods[name]
        if pod.phase != "Loading" or pod.booting is None:
            return
        if pod.booting.key in self.bad or pod.booting.key in self.gone:
            pod.phase, pod.crashed_at = "Crashed", self.now
        else:
            pod.phase, pod.serving = "Running", pod.booting
        self.log.append(f"{name} loaded {pod.booting.key.version} -> {pod.phase}")
        self.check_pods()

    def restart(self, name: str, *, seen_late: bool = False) -> None:
        """The serving process restarts (crash, OOM, liveness): PUTs in it die with it. Seen late:
        the connection drops at once, the API shows the new restart count only when it boots."""
        pod = self.pods[name]
        if pod.phase not in ("Running", "Loading", "Crashed"):
            return
        self._drop_puts(pod)
        pod.phase, pod.serving = "Pending", None
        pod.restarts += 1
        pod.restart_unseen = seen_late
        self.log.append(f"{name} restarted" + (" (seen late)" if seen_late else ""))

    def oom_kill(self, name: str) -> None:
        self.restart(name, seen_late=True)

    def drop_connection(self, name: str) -> None:
        """The operator's connection of an awaited PUT drops (a proxy, the network); the pod goes on."""
        if name in self.running:
            put = next(p for p in self.pods[name].queue if p.number == self.running[name])
            del self.running[name]
            lost = SwapLost("connection_lost", "server disconnected")
            self.outcomes.append(SwapOutcome(name, put.release.key, lost, put.uid, put.restarts))
            self.log.append(f"connection dropped {name}")

    def delete(self, name: str) -> None:
        """The pod is deleted; its Deployment creates a replacement."""
        pod = self.pods[name]
        if pod.phase == "Terminating":
            return
        self._drop_puts(pod)
        pod.phase = "Terminating"
        self.log.append(f"{name} deleted")
        if self._live_count() < self.replicas:
            self._new_pod()

    def reap(self) -> None:
        for name in [n for n, p in self.pods.items() if p.phase == "Terminating"]:
            del self.pods[name]

    def scale(self, replicas: int) -> None:
        self.replicas = replicas
        while self._live_count() < replicas:
            self._new_pod()
        live = sorted(n for n, p in self.pods.items() if p.phase != "Terminating")
        for name in live[replicas:]:
            self.delete(name)
        self.log.append(f"scale {replicas}")

    def tamper(self, name: str, release: Release) -> None:
        """Someone swaps a pod behind the operator's back (drift)."""
        pod = self.pods[name]
        if pod.phase == "Running":
            pod.serving = release
            self.foreign.add(release.key)
            self.log.append(f"{name} tampered -> {release.key.version}")

    def cut_off(self, name: str) -> None:
        self.pods[name].cut_off = True

    def heal(self) -> None:
        for pod in self.pods.values():
            pod.cut_off = pod.busy = False

    def turn_puts_away(self, name: str) -> None:
        self.pods[name].busy = True

    def weights_vanish(self, release: Release) -> None:
        self.gone.add(release.key)
        self.log.append(f"weights of {release.key.version} gone")

    # -- the user -----------------------------------------------------------------------------------

    def apply(self, release: Release) -> None:
        self.spec = release
        self.asked.add(release.key)
        self.log.append(f"apply {release.key.version}")

    def set_auto_rollback(self, on: bool) -> None:
        self.auto_rollback = on
        self.log.append(f"autoRollback {on}")

    def retry(self) -> None:
        self.attempt = str(int(self.attempt or "0") + 1)

    # -- invariants ---------------------------------------------------------------------------------

    def allowed(self) -> set[ModelKey]:
        stable = self.configmap.stable.key if self.configmap and self.configmap.stable else None
        return self.asked | self.foreign | ({stable} if stable else set())

    def check_step(self, before: RolloutState | None, p: Plan) -> None:
        state = self.configmap
        if state is None:
            _require(not p.swaps, "no PUT before the ConfigMap holds a model")
            return
        in_flight_pods = {f.pod for f in state.in_flight}
        for swap in p.swaps:
            # ConfigMap first: a PUT sends exactly what a pod starting now would load.
            _require(swap.release == state.wanted, f"PUT of {swap.release.key.version} but the ConfigMap holds another")
            _require(swap.pod in in_flight_pods, f"PUT to {swap.pod} not on record before it is sent")
        if state.phase in ("Halted", "RollbackFailed"):
            _require(not p.swaps, f"{state.phase}: hands off, but swaps {[s.pod for s in p.swaps]}")
        if state.phase in ("RollingBack", "RolledBack") and state.stable is not None:
            _require(all(s.release == state.stable for s in p.swaps), "after a refusal only the stable model is sent")
        _require(state.wanted.key in self.allowed(), "the ConfigMap holds a model nobody asked for")
        new_stable = state.stable.key if state.stable else None
        old_stable = before.stable.key if before and before.stable else None
        became_stable = new_stable != old_stable and new_stable is not None
        if became_stable:
            _require(new_stable in self.asked, "a model the spec never asked for became stable")
        # Every live pod was confirmed on the model, nothing is left queued on any (a PUT queued
        # there could switch a pod later): when a model becomes the stable one, when a rollout
        # completes or is rolled back (even to the model that was stable already), when it says Done.
        ended = state.phase in ("Complete", "RolledBack") and (before is None or before.phase != state.phase)
        if became_stable or ended or isinstance(p.verdict, Done):
            served = new_stable if became_stable and new_stable is not None else state.wanted.key
            for pod in self._live():
                _require(
                    pod.phase == "Running" and pod.serving is not None and pod.serving.key == served,
                    f"{served.version} marked fully served while {pod.name} is {pod.phase} on "
                    f"{pod.serving.key.version if pod.serving else None}",
                )
                _require(not pod.queue, f"{served.version} marked fully served while {pod.name} has a PUT queued")
        if became_stable:
            self.asked = {self.spec.key}
        # A pod confirmed on a model has no PUT of another model queued (it would switch the pod after).
        for e in p.events:
            if e.reason == "PodSwapped":
                name, label = e.message.removeprefix("pod ").split(" serves ", 1)
                puts = self.pods[name].queue if name in self.pods else []
                others = [put.release.key.label for put in puts if put.release.key.label != label]
                _require(not others, f"{name} confirmed on {label} while a PUT of {others} is queued there")
        if p.status is not None:
            _require(len(p.status.history) <= 10, "history over 10 entries")

    def check_pods(self) -> None:
        allowed = self.allowed()
        for pod in self._live():
            if pod.serving is not None and pod.phase == "Running":
                _require(
                    pod.serving.key in allowed,
                    f"{pod.name} serves {pod.serving.key.version}: neither the last fully served model "
                    f"nor one the spec asked for ({sorted(k.version for k in allowed)})",
                )
        busy = [p.name for p in self._live() if p.queue]
        _require(len(busy) <= self.max_unavailable, f"{len(busy)} pods swapping at once: {busy}")

    # -- liveness -----------------------------------------------------------------------------------

    def settle(self, max_ticks: int = 400) -> Plan:
        """Run without faults (pods answer, crashed pods restart, deleted pods go) until the rollout
        is over: Done or Fail, nothing queued, nothing awaited."""
        self.heal()
        self.gone.clear()
        for _ in range(max_ticks):
            self.reap()
            for pod in list(self.pods.values()):
                if pod.phase == "Crashed":
                    self.restart(pod.name)
                if pod.phase == "Pending":
                    self.boot(pod.name)
                if pod.phase == "Loading":
                    self.loaded(pod.name)
            p = self.tick()
            for pod in list(self.pods.values()):
                while pod.queue:
                    self.process(pod.name)
            quiet = not self.running and not self.outcomes and not any(p_.queue for p_ in self.pods.values())
            if isinstance(p.verdict, Done | Fail) and quiet:
                return p
        raise InvariantBroken(f"no end after {max_ticks} ticks: {self.last_plan}\n" + "\n".join(self.log[-40:]))

    # -- helpers ------------------------------------------------------------------------------------

    def _new_pod(self) -> None:
        n = next(self._numbers)
        self.pods[f"pod-{n:03d}"] = SimPod(name=f"pod-{n:03d}", uid=f"uid-{n}", created_at=self.now)

    def _live(self) -> list[SimPod]:
        return [p for p in self.pods.values() if p.phase != "Terminating"]

    def _live_count(self) -> int:
        return len(self._live())

    def _drop_puts(self, pod: SimPod) -> None:
        number = self.running.pop(pod.name, None)
        awaited = next((put for put in pod.queue if put.number == number), None)
        if awaited is not None:
            lost = SwapLost("connection_lost", "reset by peer")
            self.outcomes.append(SwapOutcome(pod.name, awaited.release.key, lost, awaited.uid, awaited.restarts))
        pod.queue.clear()

    def _view(self, pod: SimPod) -> PodView:
        if pod.phase == "Pending":
            restarts = pod.restarts - 1 if pod.restart_unseen else pod.restarts
            return PodView(name=pod.name, uid=pod.uid, phase="Pending", restarts=restarts, created_at=pod.created_at)
        if pod.phase == "Crashed":
            return PodView(
                name=pod.name,
                uid=pod.uid,
                phase="Running",
                restarts=pod.restarts,
                created_at=pod.created_at,
                crash_looping=True,
                down_after_error=True,
                crashed_at=pod.crashed_at,
                observed=PodUnavailable("unreachable", "connection refused"),
            )
        phase: Literal["Running", "Terminating"] = "Terminating" if pod.phase == "Terminating" else "Running"
        if pod.cut_off:
            observed: PodAnswer | PodUnavailable = PodUnavailable("unreachable", "connection refused")
        elif pod.phase == "Loading":
            observed = PodAnswer(served=None, state="loading")
        else:
            observed = PodAnswer(served=pod.serving.key if pod.serving else None, state="serving")
        ready = pod.phase == "Running"
        return PodView(
            name=pod.name,
            uid=pod.uid,
            phase=phase,
            ready=ready,
            restarts=pod.restarts,
            created_at=pod.created_at,
            observed=observed,
        )


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantBroken(message)


def settle_and_check(world: World) -> Plan:
    """Liveness: without faults the rollout ends - on the desired model everywhere, or rolled back
    with every pod on the stable one, or held - and a good model that failed (a timeout, a lost
    connection, weights gone for a while) reaches every pod when the user retries it."""
    end = world.settle()
    state = world.configmap
    _require(state is not None, "no state after settling")
    assert state is not None
    live = [p for p in world.pods.values() if p.phase != "Terminating"]
    if isinstance(end.verdict, Done):
        _require(state.phase == "Complete" and state.target.key == world.spec.key, f"Done in {state.phase}")
        _require(all(p.serving is not None and p.serving.key == world.spec.key for p in live), "Done, pods elsewhere")
        return end
    _require(isinstance(end.verdict, Fail), f"settled on {end.verdict}")
    _require(state.phase in ("RolledBack", "Halted", "RollbackFailed"), f"Fail in {state.phase}")
    _require(state.failure is not None, "failed without a recorded failure")
    if state.phase == "RolledBack":
        assert state.stable is not None
        _require(
            all(p.serving is not None and p.serving.key == state.stable.key for p in live),
            "rolled back, pods elsewhere",
        )
    if world.spec.key not in world.bad:
        world.retry()
        again = world.settle()
        _require(isinstance(again.verdict, Done), f"a good model retried did not reach every pod: {again.verdict}")
        _require(
            all(p.serving is not None and p.serving.key == world.spec.key for p in live if p.phase == "Running"),
            "retried, pods elsewhere",
        )
        return again
    return end


def random_walk(world: World, rng: random.Random, steps: int, models: list[Release], foreign: Release) -> None:
    """Random faults, answers and user actions, with the invariants checked after each."""
    names = lambda: sorted(world.pods)  # noqa: E731 - the pods change as the walk goes

    def some_pod() -> str | None:
        pods = names()
        return rng.choice(pods) if pods else None

    def on_pod(action: Callable[[str], None]) -> Callable[[], None]:
        def run() -> None:
            if (name := some_pod()) is not None:
                action(name)

        return run

    def applies_during_a_rollout() -> None:
        world.apply(rng.choice(models))
        world.tick()
        for _ in range(rng.randrange(3)):
            world.every_pod_answers()
            world.tick()
        world.apply(rng.choice(models))

    moves: list[tuple[float, Callable[[], None]]] = [
        (5, world.tick),
        (4, on_pod(world.process)),
        (1, world.every_pod_answers),
        (2, on_pod(world.boot)),
        (2, on_pod(world.loaded)),
        (1, on_pod(world.time_out)),
        (1, on_pod(world.restart)),
        (1, on_pod(world.oom_kill)),
        (0.5, on_pod(world.drop_connection)),
        (0.5, on_pod(world.delete)),
        (0.5, world.reap),
        (0.3, lambda: world.scale(rng.randint(1, 4))),
        (0.8, world.crash_operator),
        (1, lambda: world.apply(rng.choice(models))),
        (0.5, applies_during_a_rollout),
        (0.3, on_pod(lambda name: world.tamper(name, foreign))),
        (0.5, on_pod(world.cut_off)),
        (0.5, on_pod(world.turn_puts_away)),
        (0.5, world.heal),
        (0.2, lambda: world.weights_vanish(rng.choice(models))),
        (0.3, lambda: world.set_auto_rollback(rng.random() < 0.5)),
        (0.3, world.retry),
        (0.2, lambda: settle_and_check(world) and None),
    ]
    weights = [w for w, _ in moves]
    for _ in range(steps):
        rng.choices(moves, weights)[0][1]()
        world.check_pods()
