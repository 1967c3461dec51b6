"""The hot-swap planner: what each pod serves now + the desired model + the persisted rollout state
-> the next actions and the status to report. Pure: no I/O, no clock (the caller passes `now`).

The caller (the executor) runs it in a loop:

    observe every pod (GET /admin/model), read the persisted RolloutState
    p = plan(PlanInput(desired, pods, state, settings, now, outcomes, running, history))
    WriteConfigMap in p.actions -> write p.state (and the model document it implies) FIRST;
                                   if that fails, do nothing else
    Swap in p.actions           -> PUT /admin/model, then GET to confirm; each result is a
                                   SwapOutcome fed to the next plan(); the pod stays in
                                   `running` until its result is in
    write p.status and p.events; Wait/Done/Fail say when to plan again

Every property the rollout promises (docs/rollout.md, "Invariants") is a property of this function,
tested as pure logic by tests/unit/operator/test_plan*.py, including a simulator that interleaves
pod answers, operator crashes, pod restarts, scale changes and spec changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from overseer.api.v1alpha1 import Condition, ReplicaStatus, RolloutRecord, ServedModel
from overseer.operator.rollout_state import (
    HOLDING_PHASES,
    Failure,
    InFlight,
    ModelKey,
    PodAnswer,
    PodUnavailable,
    Release,
    RestartBaseline,
    RolloutState,
    Strategy,
    SwapLost,
    SwapOutcome,
    Swapped,
    SwapPurpose,
    SwapRefused,
    SwapUndelivered,
)

HISTORY_LIMIT = 10
CRASH_LOOP_RESTARTS = 2
"""Restarts of the serving container since the rollout first saw the pod, down again after an
error exit, before it counts as crash-looping on the target: one exit (an OOM kill during a
swap, a node hiccup) is a restart, not a refusal of the model."""
DROPPED_PUTS_LIMIT = 2
"""PUTs to one run of a pod whose connection dropped while the pod kept running (the pod then
answers GET without the model): the first is sent again, the second is the refusal ConnectionLost."""
POLL_S = 2.0  # re-plan interval while pods start, settle or cannot be reached
STUCK_POLL_S = 30.0  # the same, once past the progress deadline
MESSAGE_LIMIT = 1024  # pod-provided text kept in status and Events

JSONObject = dict[str, Any]

# --- inputs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodView:
    """One pod of the deployment, as the API server and its admin API show it."""

    name: str
    uid: str
    phase: Literal["Pending", "Running", "Terminating"]
    """Pending: not started yet (no IP, containers not running); Terminating: deletionTimestamp set."""
    ready: bool = False
    restarts: int = 0
    """The serving container's restart count: a change means the serving process restarted."""
    crash_looping: bool = False
    """Its serving container keeps exiting (pods.py: at least two restarts in its life, down now
    after an error exit). What the status shows; the rollout's refusal counts restarts since it
    first saw the pod (`down_after_error`, `RolloutState.restart_baselines`)."""
    down_after_error: bool = False
    """The serving container is down now (backing off, or just exited) after an error exit."""
    created_at: datetime | None = None
    """metadata.creationTimestamp: a pod created after the rollout started has restarted only since."""
    crashed_at: datetime | None = None
    """When the serving container last exited with an error."""
    crash_message: str = ""
    """The serving process's last words when it exited (its termination message), for the refusal."""
    observed: PodAnswer | PodUnavailable | None = None
    """GET /admin/model; None when not asked (Pending, Terminating)."""


@dataclass(frozen=True)
class RolloutSettings:
    """spec.rollout and the operator's repair back-off."""

    max_unavailable: int = 1
    auto_rollback: bool = True
    repair_backoff_s: float = 30.0
    repair_backoff_max_s: float = 600.0
    progress_deadline_s: float = 600.0
    """HotSwap: an active rollout with no progress this long, waiting on pods: ProgressDeadlineExceeded."""
    strategy: Strategy = "HotSwap"
    """Rolling: a rollout or rollback reaches the pods by replacement (the pod template carries
    the wanted model), never by a PUT; drift repair still swaps in place."""


@dataclass(frozen=True)
class PlanInput:
    desired: Release | None
    """spec.model with its schema snapshot; None when the spec is invalid (nothing new starts)."""
    pods: Sequence[PodView]
    state: RolloutState | None
    """The persisted record; None for a new deployment, or when it was lost."""
    settings: RolloutSettings
    now: datetime
    outcomes: Sequence[SwapOutcome] = ()
    """Results of the PUTs that ended since the last plan (lost when the operator restarts)."""
    running: frozenset[str] = frozenset()
    """Pods with a PUT this operator process still waits for (empty after a restart)."""
    history: Sequence[Mapping[str, Any]] = ()
    """status.history as written before (wire form, newest first)."""
    attempt: str = ""
    """A retry token: when it differs from the failed rollout's, the same model is tried again."""


# --- outputs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteConfigMap:
    """Persist `state` and its model document (`state.configmap_document()`) before anything else."""

    state: RolloutState


@dataclass(frozen=True)
class Swap:
    """PUT `release` on the pod, then GET to confirm it serves `release.key`."""

    pod: str
    uid: str
    release: Release
    purpose: SwapPurpose
    restarts: int = 0
    """The pod's restart count when sent: its outcome carries it back (`SwapOutcome.restarts`)."""


@dataclass(frozen=True)
class Wait:
    """Nothing is finished: plan again when a running swap ends, or after `after_s` seconds."""

    reason: str
    after_s: float | None = None


@dataclass(frozen=True)
class Done:
    """Every pod serves the desired model."""

    message: str


@dataclass(frozen=True)
class Fail:
    """The rollout stopped (rolled back, held, rollback refused): Degraded with `reason`."""

    reason: str
    message: str


Action = WriteConfigMap | Swap | Wait | Done | Fail


@dataclass(frozen=True)
class Event:
    """A core/v1 Event to post on the ModelDeployment (the plan's, and the status writer's)."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class StatusReport:
    """The rollout's share of the ModelDeployment status (conditions carry no transition times:
    the status writer keeps lastTransitionTime when a condition's status does not change)."""

    conditions: tuple[Condition, ...]
    replicas: tuple[ReplicaStatus, ...]
    model: ServedModel | None
    ready_replicas: int
    last_rollout: RolloutRecord | None
    history: tuple[JSONObject, ...]

    def condition(self, kind: str) -> Condition:
        return next(c for c in self.conditions if c.type == kind)


@dataclass(frozen=True)
class Plan:
    state: RolloutState | None
    actions: tuple[Action, ...]
    status: StatusReport | None
    events: tuple[Event, ...] = ()

    @property
    def swaps(self) -> tuple[Swap, ...]:
        return tuple(a for a in self.actions if isinstance(a, Swap))

    @property
    def verdict(self) -> Wait | Done | Fail:
        last = self.actions[-1]
        assert isinstance(last, Wait | Done | Fail)
        return last


# --- the planner ----------------------------------------------------------------------------------------


def plan(inp: PlanInput) -> Plan:
    """The next step of the deployment's rollout (see the module docstring for the loop)."""
    run = _Run(inp)
    state = run.start_or_supersede()
    if state is None:
        return Plan(None, (Wait("no valid model to roll out yet", POLL_S),), None, tuple(run.events))
    state = run.forget_the_dead(state)
    state = run.track_restarts(state)
    state = run.absorb_outcomes(state)
    state = run.decide_dropped(state)
    state = run.react_to_crash_loops(state)
    state = run.finish_if_done(state)
    state, swaps = run.schedule(state)
    if (state != inp.state or swaps) and state.phase in ("Rolling", "RollingBack"):
        # A step or a swap sent (a PUT sent again too): the progress deadline starts again.
        state = state.model_copy(update={"progressed_at": inp.now})
    if state.phase not in ("Rolling", "RollingBack") and (state.restart_baselines or state.progressed_at):
        # Only a rollout counts restarts and progress; a settled record is one an operator from
        # before these fields can read (rollout_state: fields added to format 1).
        state = state.model_copy(update={"restart_baselines": (), "progressed_at": None})
    if state.phase in HOLDING_PHASES and any(f.undecided or f.dropped for f in state.in_flight):
        # Held, nothing is sent or decided: a flight only says a PUT may still run there (to count
        # and to queue behind when the rollout goes on), so it keeps the fields of format 1. Drift
        # repair (Complete, RolledBack) still decides its dropped PUTs and keeps counting them.
        kept = tuple(f.model_copy(update={"undecided": False, "dropped": 0}) for f in state.in_flight)
        state = state.model_copy(update={"in_flight": kept})
    actions: list[Action] = []
    if state != inp.state:
        actions.append(WriteConfigMap(state))
    actions.extend(swaps)
    actions.append(run.verdict(state, swaps))
    return Plan(state, tuple(actions), run.status(state), tuple(run.events))


@dataclass
class _PodClass:
    """What one live pod means for the rollout."""

    pod: PodView
    served: ModelKey | None
    kind: Literal["on_wanted", "off", "starting", "settling", "unknown", "crash_looping"]
    note: str = ""


@dataclass
class _Run:
    inp: PlanInput
    events: list[Event] = field(default_factory=list)
    cooldown: set[str] = field(default_factory=set)  # pods a PUT could not reach just now
    sent: set[str] = field(default_factory=set)  # pods this plan sends a PUT to (awaited from now on)
    _classes: dict[ModelKey, list[_PodClass]] = field(default_factory=dict)

    @property
    def now(self) -> datetime:
        return self.inp.now

    @property
    def live(self) -> list[PodView]:
        return sorted((p for p in self.inp.pods if p.phase != "Terminating"), key=lambda p: p.name)

    def event(self, kind: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Event(kind, reason, message))

    # -- 1. which rollout -------------------------------------------------------------------------

    def start_or_supersede(self) -> RolloutState | None:
        inp, desired, state = self.inp, self.inp.desired, self.inp.state
        if state is None:
            if desired is None:
                return None
            # A new deployment, or the record was lost: start from what the pods serve. With no
            # stable model known, a refusal cannot be rolled back (the rollout halts instead).
            self.event("Normal", "RolloutStarted", f"rolling out {desired.key.label} ({_pods(len(self.live))})")
            return RolloutState(
                phase="Rolling",
                target=desired,
                started_at=self.now,
                attempt=inp.attempt,
                strategy=inp.settings.strategy,
            )
        if desired is None or desired == state.target:
            return self._retry_or_rollback_held(state)
        if desired.key == state.target.key:
            # The same weights and config in another document (a new URI, a schema snapshot): no
            # pod changes, but new pods must start from the new document.
            stable = desired if state.stable is not None and state.stable.key == desired.key else state.stable
            state = state.model_copy(update={"target": desired, "stable": stable})
            if state.phase in _FAILED_PHASES:
                # A failed model's document changed (its URI fixed, say): it may load now - tried
                # again, as a retry would.
                self.event("Normal", "RolloutRetried", f"retrying {desired.key.label}: spec.model changed")
                return self._again(state)
            return state
        stable = state.target if state.phase == "Complete" else state.stable
        wanted = state.wanted.key
        from_key = stable.key if stable is not None and stable.key != desired.key else wanted
        superseded = state.superseded
        if state.phase == "Rolling" and state.target.key not in superseded:
            superseded = (*superseded, state.target.key)
            self.event(
                "Normal",
                "RolloutSuperseded",
                f"{desired.key.label} supersedes {state.target.key.label}, which is not on every pod yet",
            )
        if state.phase != "Rolling":
            superseded = ()
        self.event(
            "Normal",
            "RolloutStarted",
            f"rolling out {desired.key.label} (from {from_key.label}; {_pods(len(self.live))}, "
            f"{inp.settings.max_unavailable} at a time)",
        )
        return RolloutState(
            phase="Rolling",
            target=desired,
            stable=stable,
            from_key=from_key,
            started_at=self.now,
            attempt=inp.attempt,
            strategy=inp.settings.strategy,
            in_flight=state.in_flight,
            superseded=superseded,
        )

    def _retry_or_rollback_held(self, state: RolloutState) -> RolloutState:
        inp = self.inp
        failed = state.phase in _FAILED_PHASES
        if failed and inp.desired is not None and inp.attempt != state.attempt:
            self.event("Normal", "RolloutRetried", f"retrying {state.target.key.label} (attempt {inp.attempt!r})")
            return self._again(state)
        if state.phase == "Halted" and inp.settings.auto_rollback and _can_roll_back(state):
            assert state.stable is not None
            self.event("Warning", "RollingBack", f"autoRollback is on: rolling back to {state.stable.key.label}")
            return state.model_copy(update={"phase": "RollingBack"})
        if not failed and inp.desired is not None and inp.attempt != state.attempt:
            # A retry asked for while nothing failed is taken as done: it must not retry a later failure.
            return state.model_copy(update={"attempt": inp.attempt})
        return state

    def _again(self, state: RolloutState) -> RolloutState:
        """The failed rollout's target, rolled out again from where the pods are: its PUTs on
        record may still run (they are sent again behind), their dropped connections are the
        failed rollout's and counted afresh."""
        flights = tuple(f.model_copy(update={"undecided": False, "dropped": 0}) for f in state.in_flight)
        return state.model_copy(
            update={
                "in_flight": flights,
                "phase": "Rolling",
                "started_at": self.now,
                "finished_at": None,
                "attempt": self.inp.attempt,
                "strategy": self.inp.settings.strategy,
                "failure": None,
                "rollback_failure": None,
                "superseded": (),
                "restart_baselines": (),
            }
        )

    # -- 2. what happened since the last plan ---------------------------------------------------------

    def forget_the_dead(self, state: RolloutState) -> RolloutState:
        """A PUT dies with its pod (deleted, terminating, or its serving process restarted); a
        failed repair is forgotten once its pod is gone or serves the wanted model after all."""
        pods = {p.name: p for p in self.inp.pods}

        def same_pod(name: str, uid: str) -> PodView | None:
            pod = pods.get(name)
            return pod if pod is not None and pod.uid == uid and pod.phase != "Terminating" else None

        flights = tuple(
            f for f in state.in_flight if (p := same_pod(f.pod, f.uid)) is not None and p.restarts == f.restarts
        )
        wanted = state.wanted.key
        repairs = tuple(
            f
            for f in state.repairs_failed
            if (p := same_pod(f.pod, f.uid)) is not None
            and not (
                isinstance(p.observed, PodAnswer) and p.observed.served == wanted and p.observed.state == "serving"
            )
        )
        if (flights, repairs) == (state.in_flight, state.repairs_failed):
            return state
        return state.model_copy(update={"in_flight": flights, "repairs_failed": repairs})

    def track_restarts(self, state: RolloutState) -> RolloutState:
        """Rolling out or back: each pod's restart count when the rollout first sees it (0 for a
        pod created since it started), kept while the pod exists; none in other phases."""
        baselines: tuple[RestartBaseline, ...] = ()
        if state.phase in ("Rolling", "RollingBack"):
            listed = {p.uid for p in self.inp.pods}
            known = {b.uid for b in state.restart_baselines}
            kept = [b for b in state.restart_baselines if b.uid in listed]
            for pod in self.live:
                if pod.uid and pod.uid not in known:
                    new = pod.created_at is not None and pod.created_at >= state.started_at
                    kept.append(RestartBaseline(uid=pod.uid, restarts=0 if new else pod.restarts))
            baselines = tuple(kept)
        if baselines == state.restart_baselines:
            return state
        return state.model_copy(update={"restart_baselines": baselines})

    def _restarts_since_seen(self, state: RolloutState, pod: PodView) -> int:
        baseline = next((b.restarts for b in state.restart_baselines if b.uid == pod.uid), pod.restarts)
        return pod.restarts - baseline

    def absorb_outcomes(self, state: RolloutState) -> RolloutState:
        pods = {p.name: p for p in self.inp.pods}
        for outcome in sorted(self.inp.outcomes, key=lambda o: o.pod):
            flight = next((f for f in state.in_flight if f.pod == outcome.pod), None)
            if flight is None or (flight.key, flight.uid, flight.restarts) != (
                outcome.key,
                outcome.uid,
                outcome.restarts,
            ):
                # The pod is gone, or the answer is older than the PUT on record (another model,
                # or sent to the pod's serving process before it restarted): stale.
                continue
            pod = pods.get(outcome.pod)
            result = outcome.result
            rest = tuple(f for f in state.in_flight if f.pod != outcome.pod)
            if isinstance(result, Swapped):
                state = state.model_copy(update={"in_flight": rest})
                if result.served == outcome.key:
                    state = self._repaired(state, outcome.pod)
                    # A PUT sent after a lost one answers "unchanged" when that one did the swap.
                    if result.changed or flight.earlier:
                        self.event("Normal", "PodSwapped", f"pod {outcome.pod} serves {outcome.key.label}")
                elif result.served is not None:
                    # Confirmed by digest or not at all: a pod that says yes and serves something
                    # else would be swapped forever.
                    message = f"accepted the swap, but then served {result.served.label}"
                    state = self._refused(state, outcome, "not_confirmed", message)
                # served None: the confirming GET failed; the next observation tells.
            elif isinstance(result, SwapUndelivered):
                # This PUT never reached the pod; one sent before it (lost) may still run there.
                if not flight.earlier:
                    state = state.model_copy(update={"in_flight": rest})
                self.cooldown.add(outcome.pod)
            elif isinstance(result, SwapRefused):
                state = state.model_copy(update={"in_flight": rest})
                state = self._refused(state, outcome, result.reason, result.message)
            else:  # SwapLost: the swap may still run on the pod; the record stays until a PUT answers
                assert isinstance(result, SwapLost)
                if pod is None or pod.phase == "Terminating" or pod.uid != flight.uid:
                    state = state.model_copy(update={"in_flight": rest})
                    continue
                if result.kind == "connection_lost":
                    # The serving process may have died (an OOM kill): the connection drops at once,
                    # the API shows the new restart count later. Not a refusal yet (decide_dropped).
                    held = flight.model_copy(update={"undecided": True, "dropped": flight.dropped + 1})
                    state = state.model_copy(update={"in_flight": tuple(sorted((*rest, held), key=lambda f: f.pod))})
                    continue
                state = self._refused(state, outcome, result.kind, result.message)
        return state

    def decide_dropped(self, state: RolloutState) -> RolloutState:
        """A PUT whose connection dropped, decided by what its pod says afterwards (a restart of
        the pod drops the PUT in forget_the_dead: the pod starts from the ConfigMap's document).
        Serving the PUT's model, and no earlier PUT on record there: it was swapped. Otherwise, still
        the same run: the connection, not the process, was lost - the PUT is sent again (behind the
        lost one, which may still run; with an earlier PUT on record the pod may serve the model
        from before it, and only an answer queued behind it says it ended), and a second such loss
        is the refusal ConnectionLost. Not answering, loading or settling: not decided yet (the
        progress deadline covers a pod that stays silent)."""
        pods = {p.name: p for p in self.inp.pods}
        for flight in state.in_flight:
            answer = pods[flight.pod].observed if flight.undecided else None
            if not isinstance(answer, PodAnswer) or answer.served is None or answer.state in ("loading", "mixed"):
                continue
            rest = tuple(f for f in state.in_flight if f.pod != flight.pod)
            if answer.served == flight.key and answer.state == "serving" and not flight.earlier:
                state = self._repaired(state.model_copy(update={"in_flight": rest}), flight.pod)
                self.event("Normal", "PodSwapped", f"pod {flight.pod} serves {flight.key.label}")
                continue
            # The lost PUTs may still run there: the wanted model is sent after them (schedule).
            again = flight.model_copy(update={"undecided": False, "earlier": True})
            state = state.model_copy(update={"in_flight": tuple(sorted((*rest, again), key=lambda f: f.pod))})
            if flight.dropped >= DROPPED_PUTS_LIMIT:
                message = (
                    f"the connection dropped during {flight.dropped} PUTs while the pod kept running "
                    f"(restart count {flight.restarts}); it serves {answer.served.label}"
                )
                lost = SwapLost("connection_lost", message)
                state = self._refused(
                    state, SwapOutcome(flight.pod, flight.key, lost, flight.uid, flight.restarts), lost.kind, message
                )
        return state

    def _refused(self, state: RolloutState, outcome: SwapOutcome, reason: str, message: str) -> RolloutState:
        pod = next((p for p in self.inp.pods if p.name == outcome.pod), None)
        failure = Failure(
            pod=outcome.pod,
            uid=pod.uid if pod else "",
            key=outcome.key,
            reason=reason,
            message=_clip(message),
            at=self.now,
        )
        self.event(
            "Warning", "SwapRefused", f"pod {outcome.pod} refused {outcome.key.label}: {reason}: {failure.message}"
        )
        if outcome.key != state.wanted.key:
            return state  # a swap to a model this rollout no longer wants (superseded): not its failure
        if state.phase == "Rolling":
            return self._stop(state, failure)
        if state.phase == "RollingBack":
            assert state.stable is not None
            self.event(
                "Warning",
                "RollbackFailed",
                f"pod {outcome.pod} refused the rollback to {state.stable.key.label}: holding",
            )
            return state.model_copy(
                update={"phase": "RollbackFailed", "rollback_failure": failure, "finished_at": self.now}
            )
        if state.phase in ("Complete", "RolledBack"):
            previous = next((f for f in state.repairs_failed if f.pod == failure.pod), None)
            attempts = previous.attempts + 1 if previous and previous.key == failure.key else 1
            delay = min(
                self.inp.settings.repair_backoff_s * 2 ** (attempts - 1), self.inp.settings.repair_backoff_max_s
            )
            failure = failure.model_copy(update={"attempts": attempts, "retry_at": self.now + timedelta(seconds=delay)})
            others = tuple(f for f in state.repairs_failed if f.pod != failure.pod)
            self.event(
                "Warning",
                "DriftRepairFailed",
                f"pod {failure.pod} could not be put back on {failure.key.label}; retrying in {delay:.0f} s",
            )
            return state.model_copy(update={"repairs_failed": (*others, failure)})
        return state

    def _stop(self, state: RolloutState, failure: Failure) -> RolloutState:
        """A refusal of the target stops the rollout: back to the stable model, or hold."""
        if self.inp.settings.auto_rollback and _can_roll_back(state):
            assert state.stable is not None
            self.event("Warning", "RollingBack", f"rolling back to {state.stable.key.label}")
            return state.model_copy(update={"phase": "RollingBack", "failure": failure})
        halted = state.model_copy(update={"phase": "Halted", "failure": failure, "finished_at": self.now})
        self.event("Warning", "RolloutHalted", f"holding: {_hold_reason(halted)}")
        return halted

    def _repaired(self, state: RolloutState, pod: str) -> RolloutState:
        kept = tuple(f for f in state.repairs_failed if f.pod != pod)
        return state if kept == state.repairs_failed else state.model_copy(update={"repairs_failed": kept})

    def react_to_crash_loops(self, state: RolloutState) -> RolloutState:
        """A pod that keeps failing to start since the target was written is a refusal of it."""
        if state.phase != "Rolling":
            return state
        for pod in self.live:
            restarts = self._restarts_since_seen(state, pod)
            looping = pod.down_after_error and restarts >= CRASH_LOOP_RESTARTS
            if looping and pod.crashed_at is not None and pod.crashed_at >= state.started_at:
                last_words = f": {pod.crash_message}" if pod.crash_message else ""
                failure = Failure(
                    pod=pod.name,
                    uid=pod.uid,
                    key=state.target.key,
                    reason="crash_loop",
                    message=_clip(
                        f"the serving container keeps exiting ({restarts} restarts) "
                        f"since {state.target.key.label} was written to the ConfigMap{last_words}"
                    ),
                    at=self.now,
                )
                self.event("Warning", "SwapRefused", f"pod {pod.name}: {failure.message}")
                return self._stop(state, failure)
        return state

    # -- 3. finished? ---------------------------------------------------------------------------------

    def finish_if_done(self, state: RolloutState) -> RolloutState:
        if state.phase not in ("Rolling", "RollingBack") or state.in_flight:
            return state
        classes = self.classify(state)
        if not classes or any(c.kind != "on_wanted" for c in classes):
            return state
        if state.phase == "Rolling":
            seconds = (self.now - state.started_at).total_seconds()
            self.event(
                "Normal",
                "RolloutSucceeded",
                f"{_pods(len(classes))} serve {state.target.key.label} ({seconds:.1f} s)",
            )
            return state.model_copy(
                update={
                    "phase": "Complete",
                    "stable": state.target,
                    "finished_at": self.now,
                    "failure": None,
                    "superseded": (),
                    "repairs_failed": (),
                }
            )
        assert state.stable is not None
        self.event("Warning", "RolledBack", f"{_pods(len(classes))} serve {state.stable.key.label} again")
        return state.model_copy(update={"phase": "RolledBack", "finished_at": self.now})

    # -- 4. what to swap ------------------------------------------------------------------------------

    def classify(self, state: RolloutState) -> list[_PodClass]:
        """Each live pod against the model wanted now (the observations do not change in a plan)."""
        wanted = state.wanted.key
        if wanted not in self._classes:
            self._classes[wanted] = self._classify(wanted)
        return self._classes[wanted]

    def _classify(self, wanted: ModelKey) -> list[_PodClass]:
        out = []
        for pod in self.live:
            observed = pod.observed
            if pod.crash_looping and not isinstance(observed, PodAnswer):
                out.append(_PodClass(pod, None, "crash_looping", f"pod {pod.name} keeps failing to start"))
            elif pod.phase == "Pending" or observed is None:
                out.append(_PodClass(pod, None, "starting", f"pod {pod.name} is starting"))
            elif isinstance(observed, PodUnavailable):
                out.append(_PodClass(pod, None, "unknown", f"pod {pod.name}: {observed.kind}: {observed.message}"))
            elif observed.served is None or observed.state == "loading":
                out.append(_PodClass(pod, observed.served, "starting", f"pod {pod.name} is loading its model"))
            elif observed.state == "mixed":
                out.append(_PodClass(pod, observed.served, "settling", f"pod {pod.name}'s workers are switching"))
            elif observed.state == "failed":
                # A worker could not reach the pod's model: re-sending the document repairs it.
                out.append(_PodClass(pod, observed.served, "off", f"pod {pod.name}: {observed.error or 'failed'}"))
            elif observed.served == wanted:
                out.append(_PodClass(pod, observed.served, "on_wanted"))
            else:
                out.append(_PodClass(pod, observed.served, "off"))
        return out

    def schedule(self, state: RolloutState) -> tuple[RolloutState, list[Swap]]:
        if state.phase in ("Halted", "RollbackFailed"):
            return state, []  # hands off: a held rollout waits for the user
        wanted = state.wanted
        purpose: SwapPurpose = (
            "rollout" if state.phase == "Rolling" else "rollback" if state.phase == "RollingBack" else "repair"
        )
        pods = {p.name: p for p in self.inp.pods}
        classes = {c.pod.name: c for c in self.classify(state)}
        # Rolling: the pod template carries the wanted model; the Deployment replaces the pods.
        by_replacement = self.inp.settings.strategy == "Rolling" and purpose != "repair"
        swaps: list[Swap] = []
        flights: list[InFlight] = []
        # A PUT on record that this process does not wait for (sent before a restart, or its answer
        # timed out) may still run on the pod: send the wanted model after it, so that it is the
        # last word there. It already counts against maxUnavailable.
        for flight in state.in_flight:
            pod = pods[flight.pod]
            reachable = isinstance(pod.observed, PodAnswer) and pod.observed.served is not None
            # A repair that timed out is a failed repair: it waits for its back-off like any other.
            resend = (
                reachable
                and not flight.undecided
                and flight.pod not in self.inp.running
                and flight.pod not in self.cooldown
            )
            if resend and not self._backing_off(state, pod):
                swaps.append(Swap(pod.name, pod.uid, wanted, purpose, flight.restarts))
                # Another model (a rollback, a newer target) has its own budget of dropped PUTs.
                dropped = flight.dropped if flight.key == wanted.key else 0
                flights.append(flight.model_copy(update={"key": wanted.key, "earlier": True, "dropped": dropped}))
            else:
                flights.append(flight)
        # A pod whose PUT task still runs is not sent another (the executor would not start it):
        # e.g. one that restarted while its PUT's connection is not dropped yet.
        busy = {f.pod for f in flights} | set(self.inp.running)
        budget = 0 if by_replacement else self.inp.settings.max_unavailable - len(flights)
        candidates = [
            c
            for c in classes.values()
            if c.kind == "off"
            and c.pod.name not in busy
            and c.pod.name not in self.cooldown
            and not self._backing_off(state, c.pod)
        ]
        # Pods that serve no traffic first (a swap there costs nothing), then by name.
        candidates.sort(key=lambda c: (c.pod.ready, c.pod.name))
        for c in candidates[: max(budget, 0)]:
            swaps.append(Swap(c.pod.name, c.pod.uid, wanted, purpose, c.pod.restarts))
            flights.append(InFlight(pod=c.pod.name, uid=c.pod.uid, restarts=c.pod.restarts, key=wanted.key))
            if purpose == "repair":
                served = c.served.label if c.served else "no model"
                self.event(
                    "Warning", "DriftDetected", f"pod {c.pod.name} serves {served}: putting {wanted.key.label} back"
                )
        self.sent = {s.pod for s in swaps}
        flights.sort(key=lambda f: f.pod)
        new_flights = tuple(flights)
        if new_flights != state.in_flight:
            state = state.model_copy(update={"in_flight": new_flights})
        return state, swaps

    def _backing_off(self, state: RolloutState, pod: PodView) -> bool:
        failure = next((f for f in state.repairs_failed if f.pod == pod.name), None)
        return (
            failure is not None
            and failure.uid == pod.uid
            and failure.key == state.wanted.key
            and failure.retry_at is not None
            and self.now < failure.retry_at
        )

    # -- 5. verdict and status ------------------------------------------------------------------------

    def verdict(self, state: RolloutState, swaps: list[Swap]) -> Wait | Done | Fail:
        if state.phase in ("Halted", "RollbackFailed"):
            return Fail(_degraded_reason(state), _failure_message(state))
        classes = self.classify(state)
        if swaps or state.in_flight:
            after = None if swaps else STUCK_POLL_S if self.stuck(state) else POLL_S
            return Wait(f"{len(state.in_flight)} swap(s) in flight", after)
        pending = [c.note for c in classes if c.kind in ("starting", "settling", "unknown", "crash_looping")]
        # Pods still off the wanted model were not sent it (budget, a PUT turned away, back-off).
        off = [
            f"pod {c.pod.name} serves {c.served.label if c.served else 'no model'}" for c in classes if c.kind == "off"
        ]
        if state.phase in ("Rolling", "RollingBack"):
            why = "; ".join(pending + off) or "no pods yet"
            return Wait(why, STUCK_POLL_S if self.stuck(state) else POLL_S)
        if off:
            retry = [f.retry_at for f in state.repairs_failed if f.retry_at is not None]
            after = max((min(retry) - self.now).total_seconds(), POLL_S) if retry else POLL_S
            return Wait("repairing drift: " + "; ".join(off), after)
        if state.phase == "RolledBack":
            return Fail(_degraded_reason(state), _failure_message(state))
        if pending:
            return Wait("; ".join(pending), POLL_S)
        return Done(f"{_pods(len(classes))} serve {state.target.key.label}")

    def status(self, state: RolloutState) -> StatusReport:
        classes = self.classify(state)
        wanted = state.wanted.key
        on_wanted = sum(1 for c in classes if c.kind == "on_wanted")
        total = len(classes)
        busy = {f.pod for f in state.in_flight}
        replicas = tuple(_replica(c, busy) for c in classes)
        desired_key = self.inp.desired.key if self.inp.desired is not None else state.target.key
        ready_replicas = sum(1 for c in classes if c.pod.ready and c.kind == "on_wanted" and c.served == desired_key)
        names = {state.target.key.name} | ({state.stable.key.name} if state.stable else set())
        shown = wanted.version if len(names) == 1 else wanted.label
        count = f"{on_wanted}/{total} pods on {shown}"
        pending = [c.note for c in classes if c.kind in ("starting", "settling", "unknown", "crash_looping")]
        detail = "".join(f"; {note}" for note in pending)
        conditions = (
            self._ready(state, classes, count),
            self._progressing(state, classes, count, detail),
            self._degraded(state),
        )
        model = (
            ServedModel(name=state.stable.key.name, version=state.stable.key.version, digest=state.stable.key.digest)
            if state.stable is not None
            else None
        )
        return StatusReport(
            conditions=conditions,
            replicas=replicas,
            model=model,
            ready_replicas=ready_replicas,
            last_rollout=_last_rollout(state, count),
            history=_history(self.inp.history, state),
        )

    def _ready(self, state: RolloutState, classes: list[_PodClass], count: str) -> Condition:
        all_on = bool(classes) and all(c.kind == "on_wanted" for c in classes)
        if state.phase == "Complete" and all_on and not state.in_flight and not state.repairs_failed:
            return _condition("Ready", True, "AllPodsServing", count)
        reason = {
            "Rolling": "RolloutInProgress",
            "RollingBack": "RollingBack",
            "RolledBack": "RolledBack",
            "Halted": "RolloutHalted",
            "RollbackFailed": "RollbackFailed",
            "Complete": "DriftRepair" if classes else "NoPods",
        }[state.phase]
        return _condition("Ready", False, reason, count)

    def _progressing(self, state: RolloutState, classes: list[_PodClass], count: str, detail: str) -> Condition:
        if state.phase == "Rolling":
            superseded = f" (superseding {', '.join(k.label for k in state.superseded)})" if state.superseded else ""
            how = "RollingUpdate" if state.strategy == "Rolling" else "HotSwapInProgress"
            return _condition("Progressing", True, how, count + superseded + detail)
        if state.phase == "RollingBack":
            return _condition("Progressing", True, "RollingBack", f"rolling back: {count}{detail}")
        if state.phase == "Complete":
            if state.in_flight or any(c.kind == "off" for c in classes):
                return _condition("Progressing", True, "RepairingDrift", count + detail)
            return _condition("Progressing", False, "RolloutComplete", count + detail)
        reason = {"RolledBack": "RolledBack", "Halted": "RolloutHalted", "RollbackFailed": "RollbackFailed"}
        return _condition("Progressing", False, reason[state.phase], count + detail)

    def stuck(self, state: RolloutState) -> list[str]:
        """HotSwap, rolling out or back, no swap outstanding and no progress within the deadline:
        the pods it waits for (not answering, starting, settling, crash-looping). Not a refusal:
        nothing is rolled back; the user is told which pods to look at. Outstanding means a task
        of this process waits for the PUT (it may take minutes), or this plan sends it: a PUT on
        record that nobody waits for (sent before an operator restart, its connection lost) waits
        on its pod."""
        if state.phase not in ("Rolling", "RollingBack") or state.strategy != "HotSwap":
            return []
        awaited = self.inp.running | self.sent
        if any(f.pod in awaited for f in state.in_flight):
            return []
        since = state.progressed_at or state.started_at
        if (self.now - since).total_seconds() < self.inp.settings.progress_deadline_s:
            return []
        return [c.note for c in self.classify(state) if c.kind in ("starting", "settling", "unknown", "crash_looping")]

    def _degraded(self, state: RolloutState) -> Condition:
        if state.failure is not None and state.phase in ("RollingBack", "RolledBack", "Halted", "RollbackFailed"):
            return _condition("Degraded", True, _degraded_reason(state), _failure_message(state))
        if stuck := self.stuck(state):
            since = state.progressed_at or state.started_at
            minutes = (self.now - since).total_seconds() / 60
            message = f"no progress for {minutes:.0f} min, waiting on: " + "; ".join(stuck)
            return _condition("Degraded", True, "ProgressDeadlineExceeded", _clip(message))
        if state.repairs_failed:
            message = "; ".join(
                f"pod {f.pod} refused {f.key.label}: {f.reason}: {f.message}" for f in state.repairs_failed
            )
            return _condition("Degraded", True, "DriftRepairFailed", message)
        return _condition("Degraded", False, "AsExpected", "")


# --- helpers --------------------------------------------------------------------------------------------

_FAILED_PHASES = ("RolledBack", "Halted", "RollbackFailed")


def _can_roll_back(state: RolloutState) -> bool:
    return state.stable is not None and state.stable.key != state.target.key


def _hold_reason(state: RolloutState) -> str:
    if state.stable is None:
        return "no earlier model to roll back to"
    if state.stable.key == state.target.key:
        return "the refused model is the last one every pod served"
    return "autoRollback is off"


def _pods(n: int) -> str:
    return f"{n} pod" if n == 1 else f"{n} pods"


def _clip(text: str) -> str:
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def camel(reason: str) -> str:
    """digest_mismatch -> DigestMismatch: a pod's reason as a condition reason."""
    words = [w for w in "".join(ch if ch.isalnum() else "_" for ch in reason).split("_") if w]
    return "".join(w[:1].upper() + w[1:] for w in words) or "Unknown"


def _degraded_reason(state: RolloutState) -> str:
    if state.phase == "RollbackFailed":
        return "RollbackFailed"
    return camel(state.failure.reason) if state.failure else "RolloutFailed"


def _failure_message(state: RolloutState) -> str:
    failure = state.failure
    if failure is None:
        return ""
    head = f"pod {failure.pod} refused {failure.key.label}: {failure.reason}: {failure.message}"
    stable = state.stable.key.label if state.stable else None
    tail = {
        "RollingBack": f"; rolling back to {stable}",
        "RolledBack": f"; rolled back to {stable}",
        "Halted": f"; holding ({_hold_reason(state)})",
        "RollbackFailed": f"; the rollback to {stable} was refused, holding",
    }.get(state.phase, "")
    back = state.rollback_failure
    if state.phase == "RollbackFailed" and back is not None:
        tail += f": pod {back.pod}: {back.reason}: {back.message}"
    return head + tail


def _condition(kind: str, status: bool, reason: str, message: str) -> Condition:
    return Condition(type=kind, status="True" if status else "False", reason=reason, message=message)


def _replica(c: _PodClass, busy: set[str]) -> ReplicaStatus:
    state: Literal["Pending", "Loading", "Serving", "Failed", "Unknown"]
    if c.pod.name in busy or c.kind == "settling":
        state = "Loading"
    elif c.kind == "starting":
        state = "Pending" if c.pod.phase == "Pending" or c.pod.observed is None else "Loading"
    elif c.kind == "crash_looping":
        state = "Failed"
    elif c.kind == "unknown":
        state = "Unknown"
    elif isinstance(c.pod.observed, PodAnswer) and c.pod.observed.state == "failed":
        state = "Failed"
    else:
        state = "Serving"
    served = c.served
    return ReplicaStatus(
        pod=c.pod.name,
        version=served.version if served else None,
        digest=served.digest if served else None,
        state=state,
    )


_RESULTS: dict[str, Literal["InProgress", "Succeeded", "Failed", "RolledBack"]] = {
    "Rolling": "InProgress",
    "RollingBack": "Failed",
    "Complete": "Succeeded",
    "RolledBack": "RolledBack",
    "Halted": "Failed",
    "RollbackFailed": "Failed",
}


def _last_rollout(state: RolloutState, count: str) -> RolloutRecord:
    if state.phase == "Complete" and state.finished_at is not None:
        seconds = (state.finished_at - state.started_at).total_seconds()
        message = f"{count} in {seconds:.1f} s"
    elif state.failure is not None:
        message = _failure_message(state)
    else:
        message = count
    return RolloutRecord(
        fromVersion=state.from_key.version if state.from_key else None,
        toVersion=state.target.key.version,
        strategy=state.strategy,
        result=_RESULTS[state.phase],
        startedAt=state.started_at,
        finishedAt=state.finished_at if state.phase not in ("Rolling", "RollingBack") else None,
        message=message,
    )


_HISTORY_IDENTITY = ("name", "version", "digest", "uri", "schemaVersion", "labels", "metadata", "customObjects")


def history_entry(release: Release, served_at: datetime | None) -> JSONObject:
    """A status.history entry: everything `spec.model` needs to go back to it (docs/rollout.md)."""
    model = release.document["model"]
    entry: JSONObject = {
        "name": model["name"],
        "version": model["version"],
        "digest": model["digest"],
        "uri": model["uri"],
        "schemaVersion": release.schema_version,
        "labels": model.get("labels", {}),
        "metadata": model.get("metadata", {}),
        "customObjects": model.get("customObjects", {}),
    }
    if served_at is not None:
        entry["servedAt"] = served_at.isoformat()
    return entry


def _same_entry(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal on every identity field both carry (an API server that prunes unknown fields may
    have dropped the config sections from older entries)."""
    return all(a[k] == b[k] for k in _HISTORY_IDENTITY if k in a and k in b)


def _history(previous: Sequence[Mapping[str, Any]], state: RolloutState) -> tuple[JSONObject, ...]:
    """The last models served by every pod, newest first, at most HISTORY_LIMIT."""
    entries = [dict(e) for e in previous]
    if state.stable is not None:
        served_at = state.finished_at if state.phase == "Complete" and state.stable == state.target else None
        entry = history_entry(state.stable, served_at)
        if not entries or not _same_entry(entries[0], entry):
            entries.insert(0, entry)
    return tuple(entries[:HISTORY_LIMIT])
