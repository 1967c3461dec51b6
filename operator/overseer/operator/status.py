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

JSONObject = dict[str, Any]
HISTORY_LIMIT = 10
MESSAGE_LIMIT = 2000
CONDITION_TYPES = ("Ready", "Progressing", "Degraded")
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
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


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
    desired_model: JSONObject
    """spec.model (name, version, digest, uri, metadata) with the schema version it uses."""
    blocked: Blocked | None = None
    deployment: Mapping[str, Any] | None = None
    pods: Sequence[Mapping[str, Any]] = ()
    pods_model: Mapping[str, Any] | None = None
    """The model the current pods started from (the Deployment's annotation)."""
    url: str | None = None
    previous: Mapping[str, Any] = field(default_factory=dict)


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
    previous = observed.previous
    served = previous.get("model")
    history = list(previous.get("history") or [])
    if observed.blocked is not None:
        conditions = _blocked_conditions(observed, served)
        ready_replicas = int(previous.get("readyReplicas") or 0)
    else:
        conditions, served, ready_replicas, became_served = _running_conditions(observed, served)
        if became_served:
            history = _with_history(history, observed.desired_model, now)
    merged, transitions = merge_conditions(previous.get("conditions") or [], conditions, observed.generation, now)
    status: JSONObject = {
        "observedGeneration": observed.generation,
        "conditions": merged,
        "model": served,
        "readyReplicas": ready_replicas,
        "history": history,
    }
    if observed.url:
        status["url"] = observed.url
    return StatusUpdate(status, [_event(c, old) for c, old in transitions if _event_worthy(c, old)])


def _blocked_conditions(observed: DeploymentObservation, served: Any) -> list[Condition]:
    blocked = observed.blocked
    assert blocked is not None
    keeps = f"; the pods keep serving {_identity(served)}" if served else ""
    return [
        Condition("Ready", "False", blocked.reason, f"spec.model {_identity(observed.desired_model)} is not rolled out"
                  f"{keeps}: {blocked.message}"),
        Condition("Progressing", "False", blocked.reason, "nothing is rolled out until the spec is fixed"),
        Condition("Degraded", "True", blocked.reason, blocked.message),
    ]  # fmt: skip


def _running_conditions(observed: DeploymentObservation, served: Any) -> tuple[list[Condition], Any, int, bool]:
    want = observed.replicas
    deployment = observed.deployment or {}
    dstatus = deployment.get("status") or {}
    ready = int(dstatus.get("readyReplicas") or 0)
    updated = int(dstatus.get("updatedReplicas") or 0)
    total = int(dstatus.get("replicas") or 0)
    current = int(dstatus.get("observedGeneration") or 0) >= int(
        (deployment.get("metadata") or {}).get("generation") or 1
    )
    rolled_out = bool(deployment) and current and updated == want and ready == want and total == want
    desired_digest = observed.desired_model.get("digest")
    pods_model = dict(observed.pods_model or {})
    model_pending = bool(pods_model) and pods_model.get("digest") != desired_digest
    became_served = False
    if rolled_out:
        if not model_pending and (not served or served.get("digest") != desired_digest):
            became_served = True
        served = {k: pods_model[k] for k in ("name", "version", "digest") if k in pods_model} or served
    failing = failing_pod(observed.pods)
    desired = _identity(observed.desired_model)

    if rolled_out and not model_pending:
        ready_condition = Condition("Ready", "True", "Serving", f"{ready}/{want} pods serve {desired}")
        progressing = Condition("Progressing", "False", "Complete", f"{want}/{want} pods serve {desired}")
    elif rolled_out:
        ready_condition = Condition(
            "Ready", "False", "ModelChangePending",
            f"{desired} is in the ConfigMap; the {want} running pods serve {_identity(pods_model)} until it is "
            "swapped into them",
        )  # fmt: skip
        progressing = Condition("Progressing", "True", "ModelChangePending", ready_condition.message)
    else:
        reason = "PodsStarting" if not deployment or updated == total else "RollingUpdate"
        message = f"{ready}/{want} pods ready"
        if updated != total and deployment:
            message += f", {updated}/{want} updated"
        ready_condition = Condition("Ready", "False", "PodsNotReady", message)
        progressing = Condition("Progressing", "True", reason, message)
    if failing is not None:
        degraded = Condition("Degraded", "True", "PodsFailing", failing)
    elif _deadline_exceeded(dstatus):
        degraded = Condition("Degraded", "True", "ProgressDeadlineExceeded", "the serving pods did not become ready")
    else:
        degraded = Condition("Degraded", "False", "AsExpected", "")
    ready_replicas = ready if not model_pending else 0
    return [ready_condition, progressing, degraded], served, ready_replicas, became_served


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
        statuses = status.get("containerStatuses") or []
        if not statuses:
            continue
        container = statuses[0]
        waiting = (container.get("state") or {}).get("waiting") or {}
        restarts = int(container.get("restartCount") or 0)
        bad_wait = waiting.get("reason") in _BAD_WAITING
        if bad_wait or (restarts > 0 and not container.get("ready")):
            last = ((container.get("lastState") or {}).get("terminated")) or {}
            detail = _last_words(str(last.get("message") or "")) or str(waiting.get("message") or "")
            what = waiting.get("reason") or f"exit code {last.get('exitCode', '?')}"
            plural = "s" if restarts != 1 else ""
            text = f"pod {name}: {what} after {restarts} restart{plural}"
            return f"{text}: {detail}" if detail else text
    return None


def _last_words(log_tail: str) -> str:
    """The serving process prints one `overseer serve: error: ...` line before it exits."""
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("overseer serve:"):
            return line
    return lines[-1] if lines else ""


def _with_history(history: list[Any], model: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    entry = {k: model[k] for k in ("name", "version", "digest", "uri", "schemaVersion", "metadata") if k in model}
    entry["servedAt"] = _now_text(now)
    rest = [h for h in history if not (isinstance(h, Mapping) and h.get("digest") == model.get("digest"))]
    return [entry, *rest][:HISTORY_LIMIT]


def _event_worthy(condition: Condition, old: Mapping[str, Any] | None) -> bool:
    # "Not degraded, not progressing" at creation is no news.
    return not (old is None and condition.status == "False" and condition.type != "Ready")


def _event(condition: Condition, old: Mapping[str, Any] | None) -> Event:
    bad = (condition.type == "Degraded" and condition.status == "True") or (
        condition.type == "Ready" and condition.status == "False" and condition.reason not in _BENIGN
    )
    if condition.type == "Degraded" and condition.status == "False":
        return Event("Normal", "Recovered", f"no longer degraded (was: {old.get('reason') if old else '?'})")
    return Event("Warning" if bad else "Normal", condition.reason, f"{condition.type}: {condition.message}")


_BENIGN = {"PodsNotReady", "ModelChangePending", "Serving"}


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
