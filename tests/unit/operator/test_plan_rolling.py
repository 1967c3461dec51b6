"""The planner with `strategy: Rolling`: the model reaches the pods by replacement (the pod template
carries it), never by a PUT; the same record, status and rollback as a hot swap."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from overseer.operator.plan import Done, Fail, Wait
from rollout_testing import T0, V1, V2, complete, pods_on, serving, starting, step, terminating, unreachable

PODS = ("pod-a", "pod-b", "pod-c")


def test_a_model_change_sends_no_put_and_waits_for_the_pods_to_be_replaced() -> None:
    p = step(V2, pods_on(V1, *PODS), complete(V1, *PODS), strategy="Rolling")
    assert p.swaps == ()
    assert p.state is not None and p.state.phase == "Rolling" and p.state.strategy == "Rolling"
    assert p.state.configmap_document() == V2.document  # new pods start with it
    assert isinstance(p.verdict, Wait)
    assert p.status is not None
    progressing = p.status.condition("Progressing")
    assert (progressing.status, progressing.reason, progressing.message) == (
        "True",
        "RollingUpdate",
        "0/3 pods on 20240202",
    )
    assert p.status.last_rollout is not None and p.status.last_rollout.strategy == "Rolling"


def test_replaced_pods_complete_the_rollout() -> None:
    rolling = step(V2, pods_on(V1, *PODS), complete(V1, *PODS), strategy="Rolling").state
    halfway = [
        serving("pod-d", V2),
        starting("pod-e"),
        *(terminating(n, V1) for n in PODS[:1]),
        *pods_on(V1, *PODS[1:]),
    ]
    p = step(V2, halfway, rolling, strategy="Rolling")
    assert p.swaps == () and isinstance(p.verdict, Wait)
    assert p.status is not None and p.status.condition("Progressing").message.startswith("1/4 pods on 20240202")
    done = step(V2, [*pods_on(V2, "pod-d", "pod-e", "pod-f"), terminating("pod-c", V1)], p.state, strategy="Rolling")
    assert isinstance(done.verdict, Done)
    assert done.state is not None and done.state.phase == "Complete" and done.state.stable == V2
    assert {e.reason for e in done.events} == {"RolloutSucceeded"}


def test_a_new_pod_crash_looping_on_the_target_rolls_the_template_back() -> None:
    rolling = step(V2, pods_on(V1, *PODS), complete(V1, *PODS), strategy="Rolling").state
    crashed = unreachable("pod-d", crash_looping=True, crashed_at=T0 + timedelta(seconds=5))
    crashed = replace(crashed, created_at=T0 + timedelta(seconds=2))  # created by the rolling update
    p = step(V2, [crashed, *pods_on(V1, *PODS)], rolling, strategy="Rolling", now=T0 + timedelta(seconds=6))
    assert p.state is not None and p.state.phase == "RollingBack"
    assert p.state.wanted == V1  # the ConfigMap and the template go back: the Deployment rolls back
    assert p.swaps == ()
    back = step(V2, pods_on(V1, *PODS), p.state, strategy="Rolling", now=T0 + timedelta(seconds=9))
    assert back.state is not None and back.state.phase == "RolledBack"
    assert isinstance(back.verdict, Fail) and back.verdict.reason == "CrashLoop"


def test_drift_is_still_repaired_in_place() -> None:
    p = step(V1, [*pods_on(V1, "pod-a", "pod-b"), serving("pod-c", V2)], complete(V1, *PODS), strategy="Rolling")
    assert [(s.pod, s.release, s.purpose) for s in p.swaps] == [("pod-c", V1, "repair")]
