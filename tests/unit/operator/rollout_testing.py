"""Builders for the planner's tests: model releases, pod views, and a plan-input shorthand."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from overseer.api.model_document import ModelDocument
from overseer.operator.plan import Plan, PlanInput, PodView, RolloutSettings, Swap, plan
from overseer.operator.rollout_state import (
    PodAnswer,
    PodUnavailable,
    Release,
    RolloutState,
    Strategy,
    SwapOutcome,
    SwapResult,
    release_of,
)

T0 = datetime(2024, 2, 15, 12, 0, tzinfo=UTC)

SCHEMA: dict[str, Any] = {
    "name": "object-detector",
    "version": 1,
    "labels": {"type": "object", "properties": {"owner": {"type": "string"}}},
    "metadata": {"type": "object"},
    "customObjects": {
        "type": "object",
        "required": ["conf"],
        "properties": {
            "conf": {"type": "number", "minimum": 0, "maximum": 1},
            "resize_resolution": {"type": "integer", "default": 640},
        },
    },
}


def release(
    version: str,
    *,
    digit: str | None = None,
    conf: float = 0.25,
    name: str = "cat_recognition",
    uri: str | None = None,
    schema_version: int = 1,
) -> Release:
    """A model release; the digest is derived from the version unless `digit` pins it."""
    digest = "sha256:" + (digit * 64 if digit else hashlib.sha256(version.encode()).hexdigest())
    document = {
        "model": {
            "name": name,
            "version": version,
            "uri": uri or f"file:///models/{name}/{version}/model.pt",
            "digest": digest,
            "labels": {"owner": "ml-team"},
            "metadata": {"f1": 0.8},
            "customObjects": {"conf": conf},
        },
        "schema": {**SCHEMA, "version": schema_version},
    }
    return release_of(ModelDocument.model_validate(document))


V1 = release("20240101", digit="1")
V2 = release("20240202", digit="2")
V3 = release("20240303", digit="3")
BAD = release("20249999", digit="9")


def serving(
    name: str, model: Release | None, *, ready: bool = True, restarts: int = 0, state: str = "serving"
) -> PodView:
    """A running pod whose admin API answers that it serves `model`."""
    answer = PodAnswer(served=model.key if model else None, state=state)  # type: ignore[arg-type]
    return PodView(name=name, uid=f"uid-{name}", phase="Running", ready=ready, restarts=restarts, observed=answer)


def starting(name: str) -> PodView:
    return PodView(name=name, uid=f"uid-{name}", phase="Pending")


def loading(name: str) -> PodView:
    return PodView(name=name, uid=f"uid-{name}", phase="Running", observed=PodAnswer(served=None, state="loading"))


def unreachable(
    name: str,
    *,
    ready: bool = False,
    crash_looping: bool = False,
    crashed_at: datetime | None = None,
    restarts: int | None = None,
) -> PodView:
    """A pod whose admin API does not answer; crash-looping: down after an error exit, with two
    restarts (since a rollout that first saw it with none) unless `restarts` says otherwise."""
    return PodView(
        name=name,
        uid=f"uid-{name}",
        phase="Running",
        ready=ready,
        restarts=restarts if restarts is not None else 2 if crash_looping else 0,
        crash_looping=crash_looping,
        down_after_error=crash_looping,
        crashed_at=crashed_at,
        observed=PodUnavailable("unreachable", "connection refused"),
    )


def terminating(name: str, model: Release | None) -> PodView:
    pod = serving(name, model)
    return PodView(name=pod.name, uid=pod.uid, phase="Terminating", observed=pod.observed)


def pods_on(model: Release, *names: str) -> list[PodView]:
    return [serving(n, model) for n in names]


def outcome(pod: str, model: Release, result: SwapResult, *, restarts: int = 0) -> SwapOutcome:
    """The end of a PUT sent to the pod (uid `uid-<pod>`) while its restart count was `restarts`."""
    return SwapOutcome(pod=pod, key=model.key, result=result, uid=f"uid-{pod}", restarts=restarts)


def step(
    desired: Release | None,
    pods: Sequence[PodView],
    state: RolloutState | None,
    *,
    max_unavailable: int = 1,
    auto_rollback: bool = True,
    outcomes: Sequence[SwapOutcome] = (),
    running: Sequence[str] = (),
    history: Sequence[dict[str, Any]] = (),
    now: datetime | None = None,
    attempt: str = "",
    strategy: Strategy = "HotSwap",
) -> Plan:
    return plan(
        PlanInput(
            desired=desired,
            pods=list(pods),
            state=state,
            settings=RolloutSettings(max_unavailable=max_unavailable, auto_rollback=auto_rollback, strategy=strategy),
            now=now or T0 + timedelta(seconds=1),
            outcomes=list(outcomes),
            running=frozenset(running),
            history=list(history),
            attempt=attempt,
        )
    )


def complete(model: Release, *pods: str) -> RolloutState:
    """The state after `model` was rolled out to every pod."""
    p = step(model, pods_on(model, *pods), None, now=T0)
    assert p.state is not None and p.state.phase == "Complete", p
    return p.state


def swapped_pods(p: Plan) -> list[str]:
    return [s.pod for s in p.swaps]


def swap_targets(p: Plan) -> set[str]:
    return {s.release.key.version for s in p.swaps}


def first_action_writes(p: Plan) -> bool:
    from overseer.operator.plan import WriteConfigMap

    return isinstance(p.actions[0], WriteConfigMap)


__all__ = [
    "BAD",
    "T0",
    "V1",
    "V2",
    "V3",
    "Swap",
    "complete",
    "first_action_writes",
    "loading",
    "outcome",
    "pods_on",
    "release",
    "serving",
    "starting",
    "step",
    "swap_targets",
    "swapped_pods",
    "terminating",
    "unreachable",
]
