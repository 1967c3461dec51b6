"""Pods as the API server shows them -> what the planner sees (overseer.operator.pods), pure."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from overseer.operator.podclient import PodAddress
from overseer.operator.pods import askable, pod_address, pod_view


def pod(
    name: str = "cat-7f9-abcde",
    *,
    phase: str = "Running",
    ip: str | None = "10.0.0.7",
    ready: bool = True,
    restarts: int = 0,
    waiting: dict[str, Any] | None = None,
    last: dict[str, Any] | None = None,
    deleting: bool = False,
    port: int = 3000,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [
            {
                "name": "serving",
                "ready": ready,
                "restartCount": restarts,
                "state": {"waiting": waiting} if waiting else {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                "lastState": {"terminated": last} if last else {},
            }
        ],
    }
    if ip:
        status["podIP"] = ip
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    containers = [{"name": "serving", "ports": [{"name": "http", "containerPort": port}]}]
    return {"metadata": meta, "spec": {"containers": containers}, "status": status}


def test_a_ready_running_pod() -> None:
    view = pod_view(pod(restarts=2))
    assert (view.name, view.uid, view.phase, view.ready, view.restarts) == (
        "cat-7f9-abcde", "uid-cat-7f9-abcde", "Running", True, 2,
    )  # fmt: skip
    assert not view.crash_looping and view.crashed_at is None and view.observed is None
    assert askable(view)
    assert pod_address(pod(port=8080), 3000) == PodAddress("10.0.0.7", 8080)


@pytest.mark.parametrize(
    ("raw", "phase"),
    [
        (pod(phase="Pending", ip=None, ready=False), "Pending"),
        (pod(phase="Running", ip=None, ready=False), "Pending"),  # no address yet
        (pod(deleting=True), "Terminating"),
        (pod(phase="Failed", ready=False), "Terminating"),  # evicted: never serves again
        (pod(phase="Succeeded", ready=False), "Terminating"),
    ],
)
def test_pods_that_are_not_asked(raw: dict[str, Any], phase: str) -> None:
    view = pod_view(raw)
    assert view.phase == phase
    assert not askable(view)


def test_a_crash_looping_pod_carries_when_and_its_last_words() -> None:
    last = {
        "exitCode": 1,
        "finishedAt": "2026-01-01T00:00:05Z",
        "message": "loading weights\noverseer serve: error: /etc/overseer/model/model.json: digest mismatch\n",
    }
    view = pod_view(pod(ready=False, restarts=3, waiting={"reason": "CrashLoopBackOff"}, last=last))
    assert view.crash_looping
    assert view.crashed_at == dt.datetime(2026, 1, 1, 0, 0, 5, tzinfo=dt.UTC)
    assert view.crash_message == "overseer serve: error: /etc/overseer/model/model.json: digest mismatch"


def test_a_pod_killed_once_and_running_again_is_not_crash_looping() -> None:
    view = pod_view(pod(restarts=1, last={"exitCode": 137, "finishedAt": "2026-01-01T00:00:05Z"}))
    assert not view.crash_looping
    assert view.crashed_at == dt.datetime(2026, 1, 1, 0, 0, 5, tzinfo=dt.UTC)  # a restart the planner sees


@pytest.mark.parametrize(
    ("restarts", "state", "looping"),
    [
        (0, {"terminated": {"exitCode": 137, "finishedAt": "2026-01-01T00:00:05Z"}}, False),  # just killed once
        (1, {"waiting": {"reason": "CrashLoopBackOff"}}, False),  # the first back-off
        (1, {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T00:00:05Z"}}, False),
        (2, {"waiting": {"reason": "CrashLoopBackOff"}}, True),  # it really loops
        (2, {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T00:00:05Z"}}, True),
    ],
)
def test_crash_looping_takes_more_than_one_failed_exit(restarts: int, state: dict[str, Any], looping: bool) -> None:
    """One exit during a swap (an OOM kill) restarts the pod from the ConfigMap: not a refusal."""
    raw = pod(ready=False, restarts=restarts, last={"exitCode": 1, "finishedAt": "2026-01-01T00:00:04Z"})
    raw["status"]["containerStatuses"][0]["state"] = state
    view = pod_view(raw)
    assert view.crash_looping is looping
    assert view.down_after_error  # the planner counts the restarts since its rollout saw the pod
    raw["metadata"]["creationTimestamp"] = "2026-01-01T00:00:01Z"
    assert pod_view(raw).created_at == dt.datetime(2026, 1, 1, 0, 0, 1, tzinfo=dt.UTC)


def test_only_the_serving_container_counts() -> None:
    """A sidecar's restarts are not the serving process's: they must not look like its restart."""
    raw = pod(restarts=1)
    sidecar = {"name": "istio-proxy", "ready": True, "restartCount": 4, "state": {"running": {}}}
    raw["status"]["containerStatuses"].insert(0, sidecar)
    assert pod_view(raw).restarts == 1


def test_a_clean_exit_in_back_off_is_not_a_crash() -> None:
    view = pod_view(pod(ready=False, waiting={"reason": "CrashLoopBackOff"}, last={"exitCode": 0}))
    assert not view.crash_looping and view.crashed_at is None


def test_hostile_or_odd_objects_never_raise() -> None:
    odd: dict[str, Any] = {
        "metadata": {"name": "x", "uid": "u"},
        "spec": {"containers": [{"name": "serving", "ports": [{"name": "http", "containerPort": "80"}]}, "junk"]},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.1",
            "conditions": ["junk", {"type": "Ready"}],
            "containerStatuses": [
                {
                    "name": "serving",
                    "restartCount": True,
                    "lastState": {"terminated": {"exitCode": 2, "finishedAt": 7}},
                },
                "junk",
            ],
        },
    }
    view = pod_view(odd)
    assert view.restarts == 0 and not view.ready and view.crashed_at is None
    assert pod_address(odd, 3000) == PodAddress("10.0.0.1", 3000)  # a non-integer port is not taken
    message = "x" * 5000 + "\x1b[31m"
    long = pod(ready=False, waiting={"reason": "CrashLoopBackOff"}, last={"exitCode": 1, "message": message})
    assert len(pod_view(long).crash_message) <= 512
    assert "\x1b" not in pod_view(long).crash_message
    assert pod_view({}).name == ""
