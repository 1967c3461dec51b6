"""Status and Events (overseer.operator.status), pure: conditions per the API conventions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from operator_testing import DIGEST_A, DIGEST_B
from overseer.operator.status import (
    Blocked,
    DeploymentObservation,
    deployment_status,
    failing_pod,
    schema_status,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)
MODEL = {"name": "cat", "version": "v1", "digest": DIGEST_A, "uri": "file:///m.pt", "metadata": {"f1": 0.9},
         "schemaVersion": 2}  # fmt: skip
IDENTITY = {"name": "cat", "version": "v1", "digest": DIGEST_A}


def k8s_deployment(
    ready: int, updated: int | None = None, total: int | None = None, generation: int = 1
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "status": {
            "observedGeneration": generation,
            "readyReplicas": ready,
            "updatedReplicas": updated if updated is not None else ready,
            "replicas": total if total is not None else ready,
        },
    }


def observe(**kwargs: Any) -> DeploymentObservation:
    defaults: dict[str, Any] = {"generation": 3, "replicas": 2, "desired_model": MODEL, "pods_model": IDENTITY}
    return DeploymentObservation(**{**defaults, **kwargs})


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_pods_starting_then_ready_then_unchanged() -> None:
    first = deployment_status(observe(deployment=k8s_deployment(0, 2, 2)), T0)
    assert conditions(first.status) == {
        "Ready": ("False", "PodsNotReady"),
        "Progressing": ("True", "PodsStarting"),
        "Degraded": ("False", "AsExpected"),
    }
    assert first.status["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in first.status["conditions"])
    assert first.status["model"] is None
    assert [(e.type, e.reason) for e in first.events] == [("Normal", "PodsNotReady"), ("Normal", "PodsStarting")]

    ready = deployment_status(observe(deployment=k8s_deployment(2), previous=first.status), T1)
    assert conditions(ready.status)["Ready"] == ("True", "Serving")
    ready_condition = next(c for c in ready.status["conditions"] if c["type"] == "Ready")
    assert ready_condition["message"] == "2/2 pods serve cat v1"
    assert ready_condition["lastTransitionTime"] == "2026-01-01T00:05:00Z"
    assert ready.status["model"] == IDENTITY
    assert ready.status["readyReplicas"] == 2
    assert ready.status["history"][0] == {**MODEL, "servedAt": "2026-01-01T00:05:00Z"}
    assert [e.reason for e in ready.events] == ["Serving", "Complete"]
    degraded = next(c for c in ready.status["conditions"] if c["type"] == "Degraded")
    assert degraded["lastTransitionTime"] == "2026-01-01T00:00:00Z"  # unchanged status: time kept

    again = deployment_status(observe(deployment=k8s_deployment(2), previous=ready.status), T1 + dt.timedelta(hours=1))
    assert again.status == ready.status
    assert again.events == []


def test_an_invalid_spec_degrades_and_keeps_what_is_served() -> None:
    serving = deployment_status(observe(deployment=k8s_deployment(2)), T0)
    blocked = deployment_status(
        observe(
            desired_model={**MODEL, "version": "v2", "digest": DIGEST_B},
            blocked=Blocked("InvalidConfig", "spec.model.customObjects.conf: required property missing"),
            deployment=k8s_deployment(2),
            previous=serving.status,
        ),
        T1,
    )
    assert conditions(blocked.status) == {
        "Ready": ("False", "InvalidConfig"), "Progressing": ("False", "InvalidConfig"),
        "Degraded": ("True", "InvalidConfig"),
    }  # fmt: skip
    ready = next(c for c in blocked.status["conditions"] if c["type"] == "Ready")
    assert ready["message"] == (
        "spec.model cat v2 is not rolled out; the pods keep serving cat v1: "
        "spec.model.customObjects.conf: required property missing"
    )
    assert blocked.status["model"] == IDENTITY
    assert blocked.status["readyReplicas"] == 2
    assert ("Warning", "InvalidConfig") in [(e.type, e.reason) for e in blocked.events]


def test_a_model_change_waits_for_the_swap() -> None:
    update = deployment_status(
        observe(desired_model={**MODEL, "version": "v2", "digest": DIGEST_B}, deployment=k8s_deployment(2)), T0
    )
    assert conditions(update.status)["Ready"] == ("False", "ModelChangePending")
    assert conditions(update.status)["Progressing"] == ("True", "ModelChangePending")
    assert update.status["model"] == IDENTITY  # what the pods still serve
    assert update.status["readyReplicas"] == 0  # none serves spec.model


def test_a_crashing_pod_degrades_with_its_own_last_words() -> None:
    pod = {
        "metadata": {"name": "cat-7f9-abcde"},
        "status": {
            "containerStatuses": [
                {
                    "ready": False,
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {
                        "terminated": {"exitCode": 1, "message": "loading\noverseer serve: error: digest mismatch\n"}
                    },
                }
            ]
        },
    }
    update = deployment_status(observe(deployment=k8s_deployment(0, 2, 2), pods=[pod]), T0)
    degraded = next(c for c in update.status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "PodsFailing")
    assert (
        degraded["message"]
        == "pod cat-7f9-abcde: CrashLoopBackOff after 3 restarts: overseer serve: error: digest mismatch"
    )
    assert ("Warning", "PodsFailing") in [(e.type, e.reason) for e in update.events]


def test_healthy_and_terminating_pods_are_not_failing() -> None:
    healthy = {"metadata": {"name": "a"}, "status": {"containerStatuses": [{"ready": True, "restartCount": 2}]}}
    leaving = {"metadata": {"name": "b", "deletionTimestamp": "x"},
               "status": {"containerStatuses": [{"ready": False, "restartCount": 5}]}}  # fmt: skip
    scheduled = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "no node has gpu=a100",
    }
    unschedulable = {"metadata": {"name": "c"}, "status": {"conditions": [scheduled]}}
    assert failing_pod([healthy, leaving]) is None
    assert failing_pod([unschedulable]) == "pod c: Unschedulable: no node has gpu=a100"


def test_history_is_newest_first_capped_and_unique() -> None:
    previous: dict[str, Any] = {
        "history": [{"name": "cat", "version": f"v{i}", "digest": f"sha256:{i:064x}"} for i in range(10)]
    }
    update = deployment_status(observe(deployment=k8s_deployment(2), previous=previous), T0)
    history = update.status["history"]
    assert len(history) == 10
    assert history[0]["digest"] == DIGEST_A
    assert history[1]["version"] == "v0"


def test_schema_status_lists_users_and_validity() -> None:
    update = schema_status(
        generation=2, latest=2, usage={2: ["a", "b"], 1: ["c"]}, problems=None, versions=[1, 2], mode="BACKWARD",
        previous={}, now=T0,
    )  # fmt: skip
    assert update.status["usedBy"] == [{"version": 1, "deployments": ["c"]}, {"version": 2, "deployments": ["a", "b"]}]
    assert update.status["latestVersion"] == 2
    assert conditions(update.status) == {"Ready": ("True", "Valid")}
    assert update.events == []  # a valid new schema is no news
    broken = schema_status(
        generation=3, latest=2, usage={}, problems="spec.versions[1]: bad", versions=[1, 2], mode="BACKWARD",
        previous=update.status, now=T1,
    )  # fmt: skip
    assert conditions(broken.status) == {"Ready": ("False", "Invalid")}
    assert [(e.type, e.reason) for e in broken.events] == [("Warning", "Invalid")]
