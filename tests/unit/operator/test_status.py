"""Status and Events (overseer.operator.status), pure: conditions per the API conventions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from overseer.operator.plan import Plan, StatusReport
from overseer.operator.rollout_state import SwapRefused
from overseer.operator.status import (
    Blocked,
    DeploymentObservation,
    deployment_status,
    failing_pod,
    schema_status,
)
from rollout_testing import V1, V2, complete, outcome, pods_on, step
from support.argocd import modeldeployment_health

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)
V2_SPEC = {"name": V2.key.name, "version": V2.key.version, "digest": V2.key.digest}


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


def observe(report: StatusReport | None, **kwargs: Any) -> DeploymentObservation:
    defaults: dict[str, Any] = {"generation": 3, "replicas": 3, "desired_model": V2_SPEC, "report": report}
    return DeploymentObservation(**{**defaults, **kwargs})


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def message(status: dict[str, Any], kind: str) -> str:
    return str(next(c for c in status["conditions"] if c["type"] == kind)["message"])


def report(p: Plan) -> StatusReport:
    assert p.status is not None
    return p.status


PODS = ("pod-a", "pod-b", "pod-c")


def test_a_hot_swap_in_progress_then_complete() -> None:
    stable = complete(V1, *PODS)
    rolling = step(V2, pods_on(V1, *PODS), stable)
    first = deployment_status(observe(report(rolling), deployment=k8s_deployment(3)), T0)
    assert conditions(first.status) == {
        "Ready": ("False", "RolloutInProgress"),
        "Progressing": ("True", "HotSwapInProgress"),
        "Degraded": ("False", "AsExpected"),
    }
    assert message(first.status, "Progressing") == "0/3 pods on 20240202"
    assert first.status["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in first.status["conditions"])
    assert first.status["model"] == {"name": V1.key.name, "version": V1.key.version, "digest": V1.key.digest}
    assert [r["pod"] for r in first.status["replicas"]] == list(PODS)
    # The swap to pod-a is sent in this very plan.
    assert first.status["replicas"][0] == {
        "pod": "pod-a", "version": "20240101", "digest": V1.key.digest, "state": "Loading",
    }  # fmt: skip
    assert first.status["lastRollout"]["strategy"] == "HotSwap"
    assert first.status["lastRollout"]["result"] == "InProgress"
    assert first.events == []  # the rollout's Events come from the planner

    assert rolling.state is not None
    done = step(V2, pods_on(V2, *PODS), rolling.state.model_copy(update={"in_flight": ()}))
    second = deployment_status(observe(report(done), deployment=k8s_deployment(3), previous=first.status), T1)
    assert conditions(second.status) == {
        "Ready": ("True", "AllPodsServing"),
        "Progressing": ("False", "RolloutComplete"),
        "Degraded": ("False", "AsExpected"),
    }
    assert second.status["readyReplicas"] == 3
    assert second.status["history"][0]["version"] == "20240202"
    assert second.status["history"][0]["customObjects"] == {"conf": 0.25}  # as the document carries it
    degraded = next(c for c in second.status["conditions"] if c["type"] == "Degraded")
    assert degraded["lastTransitionTime"] == "2026-01-01T00:00:00Z"  # unchanged status: time kept

    again = deployment_status(observe(report(done), deployment=k8s_deployment(3), previous=second.status), T1)
    assert again.status == second.status
    assert again.events == []


def test_pods_the_deployment_has_not_made_yet_keep_it_from_ready() -> None:
    done = step(V1, pods_on(V1, "pod-a", "pod-b"), None)
    update = deployment_status(observe(report(done), deployment=k8s_deployment(2, 2, 2)), T0)
    assert conditions(update.status)["Ready"] == ("False", "PodsNotReady")
    assert conditions(update.status)["Progressing"] == ("True", "PodsStarting")
    assert message(update.status, "Ready") == "2/3 pods ready"


def test_a_serving_change_rolling_the_pods_is_progressing() -> None:
    done = step(V1, pods_on(V1, *PODS), None)
    update = deployment_status(observe(report(done), deployment=k8s_deployment(3, 1, 4)), T0)
    assert conditions(update.status)["Progressing"] == ("True", "RollingUpdate")
    assert message(update.status, "Progressing") == "3/3 pods ready, 1/3 updated"


def test_an_invalid_spec_degrades_and_keeps_what_is_served() -> None:
    stable = complete(V1, *PODS)
    served = step(None, pods_on(V1, *PODS), stable)  # an invalid spec: nothing new starts
    blocked = deployment_status(
        observe(
            report(served),
            blocked=Blocked("InvalidConfig", "spec.model.customObjects.conf: required property missing"),
            deployment=k8s_deployment(3),
        ),
        T1,
    )
    assert conditions(blocked.status) == {
        "Ready": ("False", "InvalidConfig"), "Progressing": ("False", "InvalidConfig"),
        "Degraded": ("True", "InvalidConfig"),
    }  # fmt: skip
    assert message(blocked.status, "Ready") == (
        "spec.model cat_recognition 20240202 is not rolled out; the pods keep serving cat_recognition 20240101: "
        "spec.model.customObjects.conf: required property missing"
    )
    assert blocked.status["model"]["version"] == "20240101"
    assert blocked.status["readyReplicas"] == 3
    assert [(e.type, e.reason) for e in blocked.events] == [("Warning", "InvalidConfig")]

    fixed = deployment_status(observe(report(served), deployment=k8s_deployment(3), previous=blocked.status), T1)
    assert conditions(fixed.status)["Degraded"] == ("False", "AsExpected")
    assert [(e.type, e.reason) for e in fixed.events] == [("Normal", "Recovered")]


def test_a_blocked_spec_with_nothing_planned_keeps_the_previous_status() -> None:
    previous = {"model": V2_SPEC, "history": [{"name": "x"}], "replicas": [{"pod": "p"}], "readyReplicas": 1}
    update = deployment_status(
        observe(None, blocked=Blocked("OwnedObjectConflict", "ConfigMap x exists"), previous=previous), T0
    )
    assert update.status["model"] == V2_SPEC and update.status["history"] == [{"name": "x"}]
    assert update.status["replicas"] == [{"pod": "p"}] and update.status["readyReplicas"] == 1
    assert conditions(update.status)["Degraded"] == ("True", "OwnedObjectConflict")


def test_a_rolled_back_rollout_is_degraded_with_the_pods_reason_and_no_duplicate_event() -> None:
    stable = complete(V1, *PODS)
    rolling = step(V2, pods_on(V1, *PODS), stable)
    assert rolling.state is not None
    refused = step(
        V2,
        pods_on(V1, *PODS),
        rolling.state,
        outcomes=[outcome("pod-a", V2, SwapRefused("digest_mismatch", "weights differ", 422))],
    )
    update = deployment_status(observe(report(refused), deployment=k8s_deployment(3)), T0)
    assert conditions(update.status)["Degraded"] == ("True", "DigestMismatch")
    assert "pod pod-a refused cat_recognition:20240202: digest_mismatch: weights differ" in message(
        update.status, "Degraded"
    )
    assert update.events == []  # SwapRefused, RollingBack and RolledBack come from the planner
    assert {e.reason for e in refused.events} >= {"SwapRefused", "RolledBack"}


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
    started = step(V1, [], None)
    update = deployment_status(observe(report(started), deployment=k8s_deployment(0, 1, 1), pods=[pod]), T0)
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


def test_a_failing_pod_is_judged_by_its_serving_container() -> None:
    sidecar = {"name": "log-shipper", "ready": False, "restartCount": 7, "state": {"waiting": {"reason": "x"}}}
    serving = {
        "name": "serving",
        "ready": False,
        "restartCount": 2,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "message": "overseer serve: error: digest mismatch"}},
    }
    pod = {"metadata": {"name": "a"}, "status": {"containerStatuses": [sidecar, serving]}}
    assert failing_pod([pod]) == "pod a: CrashLoopBackOff after 2 restarts: overseer serve: error: digest mismatch"
    healthy = {**serving, "ready": True, "restartCount": 0, "state": {"running": {}}, "lastState": {}}
    assert failing_pod([{"metadata": {"name": "a"}, "status": {"containerStatuses": [sidecar, healthy]}}]) is None


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


def test_an_internal_error_on_a_new_generation_does_not_carry_ready_over_to_it() -> None:
    """spec.model changed (generation 5) and the step failed on an error of the operator's own:
    Ready=True said the pods serve generation 4's model. The status still reflects generation 4
    (status.observedGeneration and the carried conditions), so GitOps tools (kstatus, the Argo CD
    health check, `kubectl wait`) see generation 5 as not rolled out; Degraded says why, for 5."""
    ready = {"type": "Ready", "status": "True", "reason": "AllPodsServing", "message": "3/3 pods on 20240101",
             "observedGeneration": 4, "lastTransitionTime": "2024-01-01T00:00:00Z"}  # fmt: skip
    progressing = {**ready, "type": "Progressing", "status": "False", "reason": "RolloutComplete", "message": "3/3"}
    fine = {**ready, "type": "Degraded", "status": "False", "reason": "AsExpected", "message": ""}
    previous = {"observedGeneration": 4, "conditions": [ready, progressing, fine]}
    error = "internal error in the rollout step, retrying: KeyError: 'x'"
    update = deployment_status(observe(None, generation=5, previous=previous, internal_error=error), T0)
    assert update.status["observedGeneration"] == 4
    by_type = {c["type"]: c for c in update.status["conditions"]}
    assert (by_type["Ready"]["status"], by_type["Ready"]["observedGeneration"]) == ("True", 4)
    assert by_type["Progressing"]["observedGeneration"] == 4
    degraded = by_type["Degraded"]
    assert (degraded["status"], degraded["reason"], degraded["observedGeneration"]) == ("True", "InternalError", 5)
    obj = {"metadata": {"name": "cat", "generation": 5}, "status": update.status}
    assert modeldeployment_health(obj) == {"status": "Degraded", "message": f"InternalError: {error}"}

    # The same error on the generation the status already reflects (a drift check): nothing older.
    same = deployment_status(observe(None, generation=4, previous=previous, internal_error=error), T0)
    assert same.status["observedGeneration"] == 4
    assert all(c["observedGeneration"] == 4 for c in same.status["conditions"])
    # No status before at all: nothing is claimed for any generation.
    first = deployment_status(observe(None, generation=1, previous={}, internal_error=error), T0)
    assert first.status["observedGeneration"] is None  # a merge patch's null: none is written
    carried = {c["type"]: c for c in first.status["conditions"]}
    assert carried["Ready"]["status"] == "Unknown" and "observedGeneration" not in carried["Ready"]
    assert carried["Degraded"]["observedGeneration"] == 1
