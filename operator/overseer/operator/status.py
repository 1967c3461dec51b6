"""Status of ModelDeployments and ModelSchemas, per the Kubernetes API conventions. Pure.

Conditions Ready, Progressing, Degraded, each with a CamelCase reason, a message and the
generation it was computed from; lastTransitionTime moves only when the status flips. Every
transition (status or reason) yields one Event. The reconciler observes, calls these, writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from overseer.operator.plan import Event, StatusReport
from overseer.operator.pods import last_words, serving_container_status

JSONObject = dict[str, Any]
MESSAGE_LIMIT = 2000
_BAD_WAITING = {
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "RunContainerError",
}


@dataclass(frozen=True)
class Condition:
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str


@dataclass(frozen=True)
class Blocked:
    """Why nothing is rolled out: the spec is invalid, an owned name is taken, or applying failed."""

    reason: str
    message: str


@dataclass(frozen=True)
class DeploymentObservation:
    generation: int
    replicas: int
    """spec.replicas."""
    desired_model: JSONObject
    """spec.model's identity (name, version, digest): what a blocked spec did not roll out."""
    report: StatusReport | None = None
    """The rollout planner's share of the status (conditions, pods, served model, history)."""
    blocked: Blocked | None = None
    deployment: Mapping[str, Any] | None = None
    pods: Sequence[Mapping[str, Any]] = ()
    url: str | None = None
    previous: Mapping[str, Any] = field(default_factory=dict)
    internal_error: str | None = None
    """The rollout step failed on an error of the operator's own (no traceback): Degraded says so."""


@dataclass(frozen=True)
class StatusUpdate:
    status: JSONObject
    events: list[Event]


def _now_text(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(message: str) -> str:
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 3] + "..."


def merge_conditions(
    previous: Sequence[Mapping[str, Any]], new: Sequence[Condition], generation: int, now: dt.datetime
) -> tuple[list[JSONObject], list[tuple[Condition, Mapping[str, Any] | None]]]:
    """The new condition list (lastTransitionTime kept unless the status flips) and the
    transitions: (condition, what it was before) for each status or reason change."""
    before = {c.get("type"): c for c in previous if isinstance(c, Mapping)}
    out: list[JSONObject] = []
    transitions = []
    for condition in new:
        old = before.get(condition.type)
        flipped = old is None or old.get("status") != condition.status
        since = old.get("lastTransitionTime") if old is not None and not flipped else None
        out.append(
            {
                "type": condition.type,
                "status": condition.status,
                "reason": condition.reason,
                "message": _short(condition.message),
                "observedGeneration": generation,
                "lastTransitionTime": since or _now_text(now),
            }
        )
        if old is None or flipped or old.get("reason") != condition.reason:
            transitions.append((condition, old))
    return out, transitions


# --- ModelDeployment -----------------------------------------------------------------------------


def _identity(model: Mapping[str, Any] | None) -> str:
    if not model:
        return "no model"
    return f"{model.get('name')} {model.get('version')}"


def deployment_status(observed: DeploymentObservation, now: dt.datetime) -> StatusUpdate:
    """The ModelDeployment's status: the rollout planner's report (what each pod serves, the
    rollout's conditions, history), overruled where the spec is blocked, and completed with what
    only the Deployment and the pods' states tell (pods starting or replaced, pods failing)."""
    previous = observed.previous
    report = observed.report
    if report is not None:
        served: Any = report.model.model_dump(mode="json") if report.model else None
        history: list[Any] = list(report.history)
        replicas: list[Any] = [r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in report.replicas]
        ready_replicas = report.ready_replicas
        last_rollout = report.last_rollout.model_dump(mode="json", by_alias=True, exclude_none=True) if (
            report.last_rollout
        ) else None
    else:
        served, history = previous.get("model"), list(previous.get("history") or [])
        replicas = list(previous.get("replicas") or [])
        ready_replicas = int(previous.get("readyReplicas") or 0)
        last_rollout = previous.get("lastRollout")
    if observed.blocked is not None:
        conditions = _blocked_conditions(observed, served)
    elif observed.internal_error is not None:
        conditions = _internal_error_conditions(observed)
    elif report is None:
        conditions = _waiting_conditions()
    else:
        conditions = _rollout_conditions(observed, report)
    merged, transitions = merge_conditions(previous.get("conditions") or [], conditions, observed.generation, now)
    generation: int | None = observed.generation
    if observed.internal_error is not None:
        generation = _generation_before(previous, observed.generation, merged)
    status: JSONObject = {
        "observedGeneration": generation,  # None (a merge patch's delete) only after an internal error
        "conditions": merged,
        "model": served,
        "readyReplicas": ready_replicas,
        "replicas": replicas,
        "history": history,
        "lastRollout": last_rollout,
    }
    if observed.url:
        status["url"] = observed.url
    return StatusUpdate(status, [e for c, old in transitions if (e := _event(c, old)) is not None])


def _blocked_conditions(observed: DeploymentObservation, served: Any) -> list[Condition]:
    blocked = observed.blocked
    assert blocked is not None
    keeps = f"; the pods keep serving {_identity(served)}" if served else ""
    return [
        Condition("Ready", "False", blocked.reason, f"spec.model {_identity(observed.desired_model)} is not rolled out"
                  f"{keeps}: {blocked.message}"),
        Condition("Progressing", "False", blocked.reason, "nothing new is rolled out until the spec is fixed"),
        Condition("Degraded", "True", blocked.reason, blocked.message),
    ]  # fmt: skip


def _internal_error_conditions(observed: DeploymentObservation) -> list[Condition]:
    """The step could not tell what the pods do: Ready and Progressing keep what they said,
    Degraded says why (the pods keep serving what they served; the step is retried)."""
    assert observed.internal_error is not None
    before = {c.get("type"): c for c in observed.previous.get("conditions") or [] if isinstance(c, Mapping)}
    kept = []
    for kind in ("Ready", "Progressing"):
        old = before.get(kind) or {}
        status: Literal["True", "False", "Unknown"] = (
            "True" if old.get("status") == "True" else "False" if old.get("status") == "False" else "Unknown"
        )
        kept.append(Condition(kind, status, str(old.get("reason") or "InternalError"), str(old.get("message") or "")))
    return [*kept, Condition("Degraded", "True", "InternalError", observed.internal_error)]


def _generation_before(previous: Mapping[str, Any], generation: int, merged: list[JSONObject]) -> int | None:
    """After an internal error the status still reflects the generation it was computed for: the
    carried Ready and Progressing keep their observedGeneration, and so does the status (None if
    it never had one), so that a newer spec reads as not rolled out yet (status.observedGeneration
    < metadata.generation: kstatus, Argo CD, `kubectl wait`). Degraded InternalError is this one's."""
    seen = previous.get("observedGeneration")
    before = seen if isinstance(seen, int) and not isinstance(seen, bool) and seen <= generation else None
    old = {c.get("type"): c for c in previous.get("conditions") or [] if isinstance(c, Mapping)}
    for condition in merged:
        if condition["type"] == "Degraded":
            continue
        kept = (old.get(condition["type"]) or {}).get("observedGeneration")
        kept = kept if isinstance(kept, int) and not isinstance(kept, bool) else before
        if kept is None:
            del condition["observedGeneration"]  # the field is an integer: absent, not null
        else:
            condition["observedGeneration"] = kept
    return before


def _waiting_conditions() -> list[Condition]:
    message = "waiting for the serving objects"
    return [
        Condition("Ready", "False", "PodsNotReady", message),
        Condition("Progressing", "True", "PodsStarting", message),
        Condition("Degraded", "False", "AsExpected", ""),
    ]


def _rollout_conditions(observed: DeploymentObservation, report: StatusReport) -> list[Condition]:
    by_type = {c.type: Condition(c.type, c.status, c.reason, c.message) for c in report.conditions}
    ready, progressing, degraded = by_type["Ready"], by_type["Progressing"], by_type["Degraded"]
    # The planner knows the pods that exist; the Deployment knows how many should, and whether it
    # is replacing them (a spec.serving change, a scale-up, the Rolling strategy).
    want = observed.replicas
    deployment = observed.deployment or {}
    dstatus = deployment.get("status") or {}
    ready_pods = int(dstatus.get("readyReplicas") or 0)
    updated = int(dstatus.get("updatedReplicas") or 0)
    total = int(dstatus.get("replicas") or 0)
    current = int(dstatus.get("observedGeneration") or 0) >= int(
        (deployment.get("metadata") or {}).get("generation") or 1
    )
    rolled_out = bool(deployment) and current and updated == want and ready_pods == want and total == want
    if not rolled_out:
        message = f"{ready_pods}/{want} pods ready"
        if deployment and updated != total:
            message += f", {updated}/{want} updated"
        if ready.status == "True":
            ready = Condition("Ready", "False", "PodsNotReady", message)
        if progressing.status == "False" and progressing.reason == "RolloutComplete":
            reason = "PodsStarting" if not deployment or updated == total else "RollingUpdate"
            progressing = Condition("Progressing", "True", reason, message)
    if degraded.status == "False":
        failing = failing_pod(observed.pods)
        if failing is not None:
            degraded = Condition("Degraded", "True", "PodsFailing", failing)
        elif _deadline_exceeded(dstatus):
            degraded = Condition(
                "Degraded", "True", "ProgressDeadlineExceeded", "the serving pods did not become ready"
            )
    return [ready, progressing, degraded]


def _deadline_exceeded(dstatus: Mapping[str, Any]) -> bool:
    for condition in dstatus.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return True
    return False


def failing_pod(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """`pod x: CrashLoopBackOff after 3 restarts: <the process's own last words>` for the first
    pod that cannot run, or None."""
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", "")):
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp"):
            continue
        name = meta.get("name", "?")
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                return f"pod {name}: {condition.get('reason') or 'Unschedulable'}: {condition.get('message') or ''}"
        container = serving_container_status(pod)  # a sidecar's restarts are not the model's
        if not container:
            continue
        waiting = (container.get("state") or {}).get("waiting") or {}
        restarts = int(container.get("restartCount") or 0)
        bad_wait = waiting.get("reason") in _BAD_WAITING
        if bad_wait or (restarts > 0 and not container.get("ready")):
            last = ((container.get("lastState") or {}).get("terminated")) or {}
            detail = last_words(str(last.get("message") or "")) or str(waiting.get("message") or "")
            what = waiting.get("reason") or f"exit code {last.get('exitCode', '?')}"
            plural = "s" if restarts != 1 else ""
            text = f"pod {name}: {what} after {restarts} restart{plural}"
            return f"{text}: {detail}" if detail else text
    return None


# Degraded reasons that come from the pods or the spec, not from the rollout: the planner posts
# the rollout's own Events (RolloutStarted, SwapRefused, RolledBack, ...), these transitions post theirs.
_OWN_DEGRADED = {
    "PodsFailing",
    "ProgressDeadlineExceeded",
    "InvalidConfig",
    "InvalidSpec",
    "SchemaNotFound",
    "InvalidSchemaRef",
    "OwnedObjectConflict",
    "ApplyFailed",
    "InternalError",
}


def _event(condition: Condition, old: Mapping[str, Any] | None) -> Event | None:
    if condition.type != "Degraded":
        return None
    if condition.status == "True" and condition.reason in _OWN_DEGRADED:
        return Event("Warning", condition.reason, condition.message)
    was = old.get("reason") if old is not None and old.get("status") == "True" else None
    if condition.status == "False" and was in _OWN_DEGRADED:
        return Event("Normal", "Recovered", f"no longer degraded (was: {was})")
    return None


# --- ModelSchema ----------------------------------------------------------------------------------


def schema_status(
    *,
    generation: int,
    latest: int | None,
    usage: Mapping[int, Sequence[str]],
    problems: str | None,
    versions: Sequence[int],
    mode: str,
    previous: Mapping[str, Any],
    now: dt.datetime,
) -> StatusUpdate:
    if problems:
        ready = Condition("Ready", "False", "Invalid", problems)
    else:
        listed = ", ".join(str(v) for v in versions)
        ready = Condition(
            "Ready", "True", "Valid", f"versions {listed}: valid JSON Schemas; new versions must be {mode} compatible"
        )
    merged, transitions = merge_conditions(previous.get("conditions") or [], [ready], generation, now)
    status: JSONObject = {
        "observedGeneration": generation,
        "latestVersion": latest,
        "usedBy": [{"version": v, "deployments": list(names)} for v, names in sorted(usage.items())],
        "conditions": merged,
    }
    events = [
        Event("Normal" if c.status == "True" else "Warning", c.reason, c.message)
        for c, old in transitions
        if old is not None or c.status == "False"
    ]
    return StatusUpdate(status, events)


__all__ = [
    "Blocked",
    "Condition",
    "DeploymentObservation",
    "Event",
    "StatusUpdate",
    "deployment_status",
    "failing_pod",
    "merge_conditions",
    "schema_status",
]
