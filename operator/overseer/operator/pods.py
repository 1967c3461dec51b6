"""What the API server says about a deployment's pods, as the planner needs it. Pure.

A Pod object becomes a `PodView` (name, uid, phase, readiness, restarts, crash loop) and, for a
pod that runs and has an IP, a `PodAddress` for its admin API. What the pod serves is asked by the
executor (`rollout.py`) and added to the view afterwards.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from overseer.operator.plan import CRASH_LOOP_RESTARTS, PodView
from overseer.operator.podclient import PodAddress
from overseer.operator.rollout_state import PodAnswer, PodUnavailable

SERVING_CONTAINER = "serving"
PORT_NAME = "http"
_LAST_WORDS = re.compile(r"^overseer serve: .*$", re.MULTILINE)
_MESSAGE_LIMIT = 512


def pod_view(pod: Mapping[str, Any]) -> PodView:
    """A pod as the planner sees it, before its admin API is asked (`observed` is None)."""
    meta = _mapping(pod.get("metadata"))
    status = _mapping(pod.get("status"))
    container = serving_container_status(pod)
    waiting = _mapping(_mapping(container.get("state")).get("waiting"))
    last = _mapping(_mapping(container.get("lastState")).get("terminated"))
    terminated_now = _mapping(_mapping(container.get("state")).get("terminated"))
    crashed = terminated_now or last
    failed_exit = bool(crashed) and _int(crashed.get("exitCode")) != 0
    restarts = _int(container.get("restartCount"))
    # Down now (backing off, or just exited) after an error exit, and not for the first time.
    down = waiting.get("reason") == "CrashLoopBackOff" or bool(terminated_now)
    crash_looping = failed_exit and down and restarts >= CRASH_LOOP_RESTARTS
    return PodView(
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        phase=_phase(meta, status),
        ready=_ready(status),
        restarts=restarts,
        crash_looping=crash_looping,
        down_after_error=failed_exit and down,
        created_at=_time(meta.get("creationTimestamp")),
        crashed_at=_time(crashed.get("finishedAt")) if failed_exit else None,
        crash_message=last_words(str(crashed.get("message") or "")) if failed_exit else "",
    )


def pod_address(pod: Mapping[str, Any], default_port: int) -> PodAddress | None:
    """Where the pod's admin API listens: its IP and the serving container's `http` port (the
    port of the template the pod was made from, which a serving change may have changed)."""
    status = _mapping(pod.get("status"))
    ip = status.get("podIP")
    if not isinstance(ip, str) or not ip:
        return None
    port = default_port
    for container in _mapping(pod.get("spec")).get("containers") or []:
        if not isinstance(container, Mapping) or container.get("name") != SERVING_CONTAINER:
            continue
        for item in container.get("ports") or []:
            if not isinstance(item, Mapping) or item.get("name") != PORT_NAME:
                continue
            if isinstance(item.get("containerPort"), int):
                port = item["containerPort"]
    return PodAddress(ip, port)


def askable(view: PodView) -> bool:
    """Whether to ask the pod what it serves: it runs (a Pending or Terminating pod is not asked)."""
    return view.phase == "Running"


def observed(view: PodView, answer: PodAnswer | PodUnavailable | None) -> PodView:
    return replace(view, observed=answer)


def views_by_name(views: Sequence[PodView]) -> dict[str, PodView]:
    return {v.name: v for v in views}


# --- helpers --------------------------------------------------------------------------------------


def _phase(meta: Mapping[str, Any], status: Mapping[str, Any]) -> Literal["Pending", "Running", "Terminating"]:
    # A pod that ended (Succeeded/Failed: evicted, say) never serves again: like a terminating one,
    # it is not counted and never swapped.
    if meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
        return "Terminating"
    if status.get("phase") != "Running" or not status.get("podIP"):
        return "Pending"
    return "Running"


def _ready(status: Mapping[str, Any]) -> bool:
    return any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _statuses(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in status.get("containerStatuses") or [] if isinstance(c, Mapping)]


def serving_container_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    """The status of the `serving` container (the first one if none has the name; {} if none)."""
    statuses = _statuses(_mapping(pod.get("status")))
    return next((c for c in statuses if c.get("name") == SERVING_CONTAINER), statuses[0] if statuses else {})


def last_words(log_tail: str) -> str:
    """The serving process prints one `overseer serve: error: ...` line before it exits."""
    found = _LAST_WORDS.findall(log_tail)
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    text = found[-1].strip() if found else (lines[-1] if lines else "")
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


__all__ = [
    "CRASH_LOOP_RESTARTS",
    "askable",
    "last_words",
    "observed",
    "pod_address",
    "pod_view",
    "serving_container_status",
    "views_by_name",
]
