"""The rollout executor: the I/O around the pure planner (`plan.py`). It asks pods what they serve,
runs the swaps the planner decides, and keeps what the next plan needs between reconciles.

How it fits the reconciler (docs/rollout.md, "How the operator runs it"): each reconcile of a
ModelDeployment is one short step - observe, plan, persist, act, report - that never waits for a
swap. A `Swap` becomes an asyncio task owned by this executor, not by the reconcile or the Kopf
handler that started it: the step returns at once, the task outlives it, and when the PUT and its
confirming GET end, the outcome is queued for the next plan and that deployment is reconciled
again. So a slow pod (a PUT may take minutes) holds nothing but its own task: other deployments,
other pods and the webhooks carry on. Nothing here needs a finalizer: a deleted deployment's
tasks are cancelled, and a PUT cancelled mid-way is one the persisted record still lists
(`RolloutState.in_flight`), so the next operator process sends it again.

What lives only in memory - the outcomes not planned yet and the pods with a PUT running - is
lost with the process, on purpose: the planner is built to start from the persisted record and a
fresh look at the pods (invariant 7, crash safety).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from overseer.operator import pods as podviews
from overseer.operator.metrics import Metrics
from overseer.operator.plan import Event, PodView, Swap
from overseer.operator.podclient import PodAddress, PodClient
from overseer.operator.rollout_state import (
    ACTIVE_PHASES,
    RolloutState,
    SwapLost,
    SwapOutcome,
    Swapped,
    SwapRefused,
    SwapUndelivered,
)
from overseer.operator.settings import OperatorSettings

log = logging.getLogger("overseer.operator.rollout")

DeploymentKey = tuple[str, str]  # (namespace, name)
_ENDED = {"Complete": "succeeded", "RolledBack": "rolled_back", "Halted": "halted", "RollbackFailed": "rollback_failed"}


@dataclass(frozen=True)
class Observation:
    """The deployment's pods as the planner sees them, and where to reach each one's admin API."""

    views: tuple[PodView, ...]
    addresses: Mapping[str, PodAddress]


@dataclass
class _Swaps:
    """A deployment's swaps between two plans."""

    running: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    outcomes: list[SwapOutcome] = field(default_factory=list)


class RolloutExecutor:
    """One per operator: the pod admin client and every deployment's running swaps."""

    def __init__(
        self,
        settings: OperatorSettings,
        metrics: Metrics,
        on_swap_done: Callable[[str, str], None],
        *,
        client: PodClient | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._on_swap_done = on_swap_done
        self._client = client
        self._session: aiohttp.ClientSession | None = None
        self._deployments: dict[DeploymentKey, _Swaps] = {}
        self._active: set[DeploymentKey] = set()

    @property
    def client(self) -> PodClient:
        if self._client is None:
            # No proxy from the environment, no cookies, no redirects (podclient): the admin token
            # goes to the pod and nowhere else. No overall connection limit - a pool shared by
            # every deployment would let slow PUTs to one deployment's pods queue another's GETs
            # behind them; the number of pods bounds the connections instead.
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=8, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
            )
            self._client = PodClient(
                self._session,
                get_deadline_s=self.settings.pod_query_timeout_s,
                put_deadline_s=self.settings.swap_timeout_s,
            )
        return self._client

    async def close(self) -> None:
        """Cancel every running swap (the pods finish theirs; the persisted record lists them)."""
        tasks = [task for swaps in self._deployments.values() for task in swaps.running.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._deployments.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- between plans ------------------------------------------------------------------------------

    def pending(self, key: DeploymentKey) -> tuple[tuple[SwapOutcome, ...], frozenset[str]]:
        """The outcomes not planned yet and the pods with a PUT still running: taken *before* the
        pods are observed, so that what the plan sees of a pod is never older than its outcome."""
        swaps = self._deployments.get(key)
        if swaps is None:
            return (), frozenset()
        return tuple(swaps.outcomes), frozenset(swaps.running)

    def consumed(self, key: DeploymentKey, outcomes: Sequence[SwapOutcome]) -> None:
        """Drop the outcomes a plan took, once that plan's record is persisted (if persisting fails,
        the next plan gets them again)."""
        swaps = self._deployments.get(key)
        if swaps is None or not outcomes:
            return
        taken = {id(o) for o in outcomes}
        swaps.outcomes = [o for o in swaps.outcomes if id(o) not in taken]

    def forget(self, key: DeploymentKey) -> None:
        """The deployment is gone: its swaps are of no use any more."""
        swaps = self._deployments.pop(key, None)
        if swaps is not None:
            for task in swaps.running.values():
                task.cancel()
        self._active.discard(key)
        self.metrics.rollouts_in_progress.set(len(self._active))

    # --- observe ----------------------------------------------------------------------------------

    async def observe(self, pods: Sequence[Mapping[str, Any]], token: str | None, default_port: int) -> Observation:
        """Every pod as the API server shows it, and what each running one serves (GET
        /admin/model, all pods at once, each within the query deadline)."""
        views = [podviews.pod_view(pod) for pod in pods]
        addresses: dict[str, PodAddress] = {}
        for view, pod in zip(views, pods, strict=True):
            address = podviews.pod_address(pod, default_port)
            if address is not None and podviews.askable(view):
                addresses[view.name] = address
        if token is None:
            return Observation(tuple(views), addresses)
        names = list(addresses)
        answers = await asyncio.gather(*(self.client.get_model(addresses[n], token) for n in names))
        seen = dict(zip(names, answers, strict=True))
        return Observation(tuple(podviews.observed(v, seen.get(v.name)) for v in views), addresses)

    # --- act --------------------------------------------------------------------------------------

    def launch(
        self, key: DeploymentKey, swaps: Sequence[Swap], observation: Observation, token: str | None
    ) -> list[Swap]:
        """Start each swap as a task of its own; returns the ones that could not start (no
        address or token: the next plan sees the pod again)."""
        entry = self._deployments.setdefault(key, _Swaps())
        views = podviews.views_by_name(observation.views)
        skipped = []
        for swap in swaps:
            address = observation.addresses.get(swap.pod)
            view = views.get(swap.pod)
            if token is None or address is None or view is None or view.uid != swap.uid or swap.pod in entry.running:
                skipped.append(swap)
                continue
            label = swap.release.key.label
            log.info("ModelDeployment %s/%s: pod %s: %s of %s sent", *key, swap.pod, swap.purpose, label)
            task = asyncio.get_running_loop().create_task(
                self._swap(key, swap, address, token), name=f"swap {key[0]}/{key[1]} pod {swap.pod}"
            )
            entry.running[swap.pod] = task
        return skipped

    async def _swap(self, key: DeploymentKey, swap: Swap, address: PodAddress, token: str) -> None:
        started = time.monotonic()
        try:
            outcome = await self.client.swap(address, token, swap.release, pod=swap.pod)
        except asyncio.CancelledError:
            entry = self._deployments.get(key)
            if entry is not None and entry.running.get(swap.pod) is asyncio.current_task():
                del entry.running[swap.pod]
            raise
        except Exception as error:  # the pod client never raises; if it did, the swap's fate is unknown
            log.exception("swap of %s/%s pod %s failed unexpectedly", key[0], key[1], swap.pod)
            outcome = SwapOutcome(swap.pod, swap.release.key, SwapLost("connection_lost", f"internal error: {error}"))
        # Which run of the pod's serving process it was sent to: an answer of a PUT sent before a
        # restart is stale, whatever is sent to the pod afterwards.
        outcome = dataclasses.replace(outcome, uid=swap.uid, restarts=swap.restarts)
        result, seconds = _result(outcome), time.monotonic() - started
        self.metrics.pod_swaps.labels(purpose=swap.purpose, result=result).inc()
        self.metrics.pod_swap_duration.labels(purpose=swap.purpose).observe(seconds)
        log.info(
            "ModelDeployment %s/%s: pod %s: %s of %s: %s after %.1f s%s",
            *key, swap.pod, swap.purpose, swap.release.key.label, result, seconds, _detail(outcome),
        )  # fmt: skip
        entry = self._deployments.get(key)
        if entry is None or entry.running.get(swap.pod) is not asyncio.current_task():
            return  # the deployment was deleted meanwhile
        # The pod leaves `running` and its outcome arrives in the same step (one event loop):
        # a plan never sees one without the other.
        del entry.running[swap.pod]
        entry.outcomes.append(outcome)
        self._on_swap_done(*key)

    # --- metrics of the rollout's transitions --------------------------------------------------------

    def record(
        self, key: DeploymentKey, before: RolloutState | None, after: RolloutState | None, events: Sequence[Event]
    ) -> None:
        """Count what a persisted plan changed: rollouts that ended (and how long they took),
        rollbacks that started, targets that were superseded."""
        if after is None:
            return
        strategy = after.strategy
        for event in events:
            if event.reason == "RolloutSuperseded":
                self.metrics.rollouts.labels(strategy=strategy, result="superseded").inc()
        new_run = before is None or before.started_at != after.started_at
        if after.phase in _ENDED and (new_run or before is None or before.phase != after.phase):
            result = _ENDED[after.phase]
            self.metrics.rollouts.labels(strategy=strategy, result=result).inc()
            if after.finished_at is not None:
                seconds = max((after.finished_at - after.started_at).total_seconds(), 0.0)
                self.metrics.rollout_duration.labels(strategy=strategy, result=result).observe(seconds)
        if after.phase == "RollingBack" and (before is None or before.phase != "RollingBack"):
            self.metrics.rollbacks.labels(strategy=strategy).inc()
        if after.phase in ACTIVE_PHASES:
            self._active.add(key)
        else:
            self._active.discard(key)
        self.metrics.rollouts_in_progress.set(len(self._active))


def _detail(outcome: SwapOutcome) -> str:
    result = outcome.result
    if isinstance(result, SwapRefused):
        return f" ({result.reason}: {result.message})"
    if isinstance(result, SwapUndelivered | SwapLost):
        return f" ({result.kind}: {result.message})"
    return ""


def _result(outcome: SwapOutcome) -> str:
    result = outcome.result
    if isinstance(result, Swapped):
        return "swapped" if result.changed else "unchanged"
    if isinstance(result, SwapRefused):
        return "refused"
    if isinstance(result, SwapUndelivered):
        return "undelivered"
    return "lost"


__all__ = ["DeploymentKey", "Observation", "RolloutExecutor"]
