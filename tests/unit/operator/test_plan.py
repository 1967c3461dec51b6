"""The hot-swap planner, case by case: each property of issue 9 items 1-5 as a table of situations."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from overseer.operator.plan import HISTORY_LIMIT, Done, Fail, Wait, WriteConfigMap, camel, history_entry
from overseer.operator.rollout_state import (
    RolloutState,
    SwapLost,
    SwapOutcome,
    Swapped,
    SwapRefused,
    SwapUndelivered,
)
from rollout_testing import (
    BAD,
    T0,
    V1,
    V2,
    V3,
    complete,
    first_action_writes,
    loading,
    outcome,
    pods_on,
    release,
    serving,
    starting,
    step,
    swapped_pods,
    terminating,
    unreachable,
)

PODS = ("pod-a", "pod-b", "pod-c")

# --- a new deployment ----------------------------------------------------------------------------


def test_a_new_deployment_writes_the_configmap_first_and_swaps_nothing() -> None:
    p = step(V1, [], None)
    assert isinstance(p.actions[0], WriteConfigMap)
    assert p.actions[0].state.configmap_document() == V1.document
    assert p.swaps == ()
    assert isinstance(p.verdict, Wait)
    assert p.state is not None and p.state.phase == "Rolling" and p.state.stable is None


def test_pods_started_from_the_configmap_complete_the_first_rollout() -> None:
    first = step(V1, [starting("pod-a")], None).state
    p = step(V1, pods_on(V1, *PODS), first)
    assert p.state is not None and p.state.phase == "Complete" and p.state.stable == V1
    assert isinstance(p.verdict, Done)
    assert p.status is not None
    assert p.status.condition("Ready").status == "True"
    progressing = p.status.condition("Progressing")
    assert (progressing.status, progressing.reason, progressing.message) == (
        "False",
        "RolloutComplete",
        "3/3 pods on 20240101",
    )
    assert [h["version"] for h in p.status.history] == ["20240101"]
    assert p.status.model is not None and p.status.model.version == "20240101"
    assert [r.state for r in p.status.replicas] == ["Serving"] * 3
    assert any(e.reason == "RolloutSucceeded" for e in p.events)


def test_no_pods_is_never_a_finished_rollout() -> None:
    p = step(V1, [], step(V1, [], None).state)
    assert p.state is not None and p.state.phase == "Rolling"
    assert isinstance(p.verdict, Wait) and "no pods" in p.verdict.reason


# --- item 1: ConfigMap first, maxUnavailable, confirm by digest -------------------------------------


@pytest.mark.parametrize("max_unavailable", [1, 2, 3, 5])
def test_a_model_change_writes_the_configmap_then_swaps_at_most_max_unavailable_pods(max_unavailable: int) -> None:
    p = step(V2, pods_on(V1, *PODS), complete(V1, *PODS), max_unavailable=max_unavailable)
    assert first_action_writes(p)
    written = p.actions[0]
    assert isinstance(written, WriteConfigMap)
    assert written.state.configmap_document() == V2.document
    assert swapped_pods(p) == list(PODS[: min(max_unavailable, 3)])
    assert all(s.release == V2 and s.purpose == "rollout" for s in p.swaps)
    # The pods in flight are on record before the PUTs go out.
    assert {f.pod for f in written.state.in_flight} == set(swapped_pods(p))
    assert p.status is not None and p.status.condition("Progressing").reason == "HotSwapInProgress"
    assert p.status.condition("Progressing").message == "0/3 pods on 20240202"
    assert [r.state for r in p.status.replicas][:1] == ["Loading"]


def test_no_new_swap_while_the_budget_is_taken() -> None:
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    again = step(V2, pods_on(V1, *PODS), first.state, running=["pod-a"])
    assert again.swaps == ()
    assert isinstance(again.verdict, Wait)
    assert again.state == first.state and not any(isinstance(a, WriteConfigMap) for a in again.actions)


def test_a_confirmed_pod_lets_the_next_one_go() -> None:
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    pods = [serving("pod-a", V2), serving("pod-b", V1), serving("pod-c", V1)]
    p = step(V2, pods, first.state, outcomes=[outcome("pod-a", V2, Swapped(served=V2.key, changed=True))])
    assert swapped_pods(p) == ["pod-b"]
    assert p.status is not None and p.status.condition("Progressing").message == "1/3 pods on 20240202"
    assert [(e.reason, e.message) for e in p.events if e.reason == "PodSwapped"] == [
        ("PodSwapped", "pod pod-a serves cat_recognition:20240202")
    ]


def test_an_unconfirmed_swap_is_not_counted_and_the_pod_is_swapped_again() -> None:
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    # The PUT said yes, the confirming GET failed, and the pod still shows the old model.
    p = step(V2, pods_on(V1, *PODS), first.state, outcomes=[outcome("pod-a", V2, Swapped(served=None, changed=True))])
    assert swapped_pods(p) == ["pod-a"]
    assert p.state is not None and p.state.phase == "Rolling"


def test_a_pod_that_says_yes_but_serves_another_digest_stops_the_rollout() -> None:
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    p = step(V2, pods_on(V1, *PODS), first.state, outcomes=[outcome("pod-a", V2, Swapped(served=V1.key, changed=True))])
    assert p.state is not None and p.state.phase == "RolledBack"  # every pod is on V1 already
    assert p.state.failure is not None and p.state.failure.reason == "not_confirmed"


def test_the_rollout_finishes_only_when_every_pod_is_confirmed_on_the_target() -> None:
    state = step(V2, pods_on(V1, *PODS), complete(V1, *PODS), max_unavailable=3).state
    done = [outcome(n, V2, Swapped(served=V2.key, changed=True)) for n in PODS]
    history = [history_entry(V1, T0)]
    p = step(
        V2, pods_on(V2, *PODS), state, outcomes=done, max_unavailable=3, now=T0 + timedelta(seconds=3), history=history
    )
    assert p.state is not None and p.state.phase == "Complete" and p.state.stable == V2
    assert isinstance(p.verdict, Done)
    assert p.status is not None
    assert [h["version"] for h in p.status.history] == ["20240202", "20240101"]
    record = p.status.last_rollout
    assert record is not None
    assert (record.from_version, record.to_version, record.result, record.strategy) == (
        "20240101",
        "20240202",
        "Succeeded",
        "HotSwap",
    )
    assert record.started_at is not None and record.finished_at is not None
    assert record.finished_at - record.started_at == timedelta(seconds=2)


# --- item 1: pods that are not Ready, starting, or being deleted --------------------------------------


def test_starting_pods_are_waited_for_not_swapped() -> None:
    state = complete(V1, "pod-a")
    p = step(V2, [serving("pod-a", V1), starting("pod-b"), loading("pod-c")], state, max_unavailable=3)
    assert swapped_pods(p) == ["pod-a"]
    assert p.status is not None
    assert {r.pod: r.state for r in p.status.replicas} == {"pod-a": "Loading", "pod-b": "Pending", "pod-c": "Loading"}
    done = step(
        V2,
        [serving("pod-a", V2), starting("pod-b"), loading("pod-c")],
        p.state,
        outcomes=[outcome("pod-a", V2, Swapped(served=V2.key, changed=True))],
    )
    assert done.state is not None and done.state.phase == "Rolling"
    assert isinstance(done.verdict, Wait)
    assert "pod pod-b is starting" in done.verdict.reason and "pod pod-c is loading" in done.verdict.reason


def test_terminating_pods_are_neither_swapped_nor_counted() -> None:
    state = complete(V1, "pod-a", "pod-b")
    p = step(V2, [serving("pod-a", V1), terminating("pod-b", V1)], state, max_unavailable=2)
    assert swapped_pods(p) == ["pod-a"]
    assert p.status is not None and [r.pod for r in p.status.replicas] == ["pod-a"]
    done = step(
        V2,
        [serving("pod-a", V2), terminating("pod-b", V1)],
        p.state,
        outcomes=[outcome("pod-a", V2, Swapped(served=V2.key, changed=True))],
    )
    assert done.state is not None and done.state.phase == "Complete"


def test_unreachable_pods_are_reported_and_block_completion() -> None:
    state = complete(V1, "pod-a", "pod-b")
    p = step(V2, [serving("pod-a", V1), unreachable("pod-b", ready=True)], state, max_unavailable=2)
    assert swapped_pods(p) == ["pod-a"]
    assert p.status is not None and {r.pod: r.state for r in p.status.replicas}["pod-b"] == "Unknown"
    after = step(
        V2,
        [serving("pod-a", V2), unreachable("pod-b", ready=True)],
        p.state,
        outcomes=[outcome("pod-a", V2, Swapped(served=V2.key, changed=True))],
    )
    assert after.state is not None and after.state.phase == "Rolling"
    assert after.status is not None
    assert "pod pod-b: unreachable" in after.status.condition("Progressing").message


def test_pods_that_serve_no_traffic_are_swapped_first() -> None:
    state = complete(V1, *PODS)
    pods = [serving("pod-a", V1), serving("pod-b", V1), serving("pod-c", V1, ready=False)]
    assert swapped_pods(step(V2, pods, state)) == ["pod-c"]


def test_a_pod_whose_worker_failed_gets_the_document_again() -> None:
    state = complete(V1, "pod-a", "pod-b")
    pods = [serving("pod-a", V1), serving("pod-b", V1, state="failed")]
    p = step(V1, pods, state)
    assert swapped_pods(p) == ["pod-b"] and p.swaps[0].purpose == "repair"


def test_a_pod_whose_workers_disagree_is_left_to_settle() -> None:
    state = complete(V1, "pod-a")
    p = step(V2, [serving("pod-a", V1, state="mixed")], state)
    assert p.swaps == () and isinstance(p.verdict, Wait)


# --- item 3: a refusal stops the rollout; rollback or hold --------------------------------------------


def _rolling_with_a_on_v2() -> RolloutState:
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    pods = [serving("pod-a", V2), serving("pod-b", V1), serving("pod-c", V1)]
    second = step(V2, pods, first.state, outcomes=[outcome("pod-a", V2, Swapped(served=V2.key, changed=True))])
    assert swapped_pods(second) == ["pod-b"] and second.state is not None
    return second.state


REFUSALS = [
    ("digest_mismatch", 422, "DigestMismatch"),
    ("fetch_failed", 502, "FetchFailed"),
    ("load_failed", 500, "LoadFailed"),
    ("smoke_failed", 500, "SmokeFailed"),
    ("invalid_config", 422, "InvalidConfig"),
    ("worker_failed", 504, "WorkerFailed"),
]


@pytest.mark.parametrize(("reason", "status", "condition_reason"), REFUSALS)
def test_a_refusal_rolls_the_swapped_pods_and_the_configmap_back(
    reason: str, status: int, condition_reason: str
) -> None:
    state = _rolling_with_a_on_v2()
    pods = [serving("pod-a", V2), serving("pod-b", V1), serving("pod-c", V1)]
    refused = outcome("pod-b", V2, SwapRefused(reason, "the weights at the URI differ", status))
    p = step(V2, pods, state, outcomes=[refused], max_unavailable=1)
    assert p.state is not None and p.state.phase == "RollingBack"
    written = p.actions[0]
    assert isinstance(written, WriteConfigMap) and written.state.configmap_document() == V1.document
    assert [(s.pod, s.release, s.purpose) for s in p.swaps] == [("pod-a", V1, "rollback")]
    assert p.status is not None
    degraded = p.status.condition("Degraded")
    assert (degraded.status, degraded.reason) == ("True", condition_reason)
    assert "pod pod-b refused cat_recognition:20240202" in degraded.message
    assert "rolling back to cat_recognition:20240101" in degraded.message
    assert p.status.last_rollout is not None and p.status.last_rollout.result == "Failed"
    assert [e.reason for e in p.events] == ["SwapRefused", "RollingBack"]
    # pod-a back on V1: rolled back; V2 is never sent again.
    back = step(V2, pods_on(V1, *PODS), p.state, outcomes=[outcome("pod-a", V1, Swapped(V1.key, True))])
    assert back.state is not None and back.state.phase == "RolledBack"
    assert back.swaps == ()
    assert isinstance(back.verdict, Fail) and back.verdict.reason == condition_reason
    assert back.status is not None
    assert back.status.condition("Ready").status == "False"
    assert back.status.condition("Degraded").message.endswith("rolled back to cat_recognition:20240101")
    assert back.status.last_rollout is not None and back.status.last_rollout.result == "RolledBack"
    assert back.status.model is not None and back.status.model.version == "20240101"
    # Steady afterwards: the refused model is not retried by itself.
    again = step(V2, pods_on(V1, *PODS), back.state)
    assert again.swaps == () and again.state == back.state


def test_a_timeout_is_a_refusal_and_the_pod_gets_the_rollback_after_its_late_swap() -> None:
    state = _rolling_with_a_on_v2()
    pods = [serving("pod-a", V2), serving("pod-b", V1), serving("pod-c", V1)]
    lost = outcome("pod-b", V2, SwapLost("timeout", "no answer within 300 s"))
    p = step(V2, pods, state, outcomes=[lost], max_unavailable=2)
    assert p.state is not None and p.state.phase == "RollingBack"
    assert p.state.failure is not None and p.state.failure.reason == "timeout"
    # pod-b may still be loading V2: it gets V1 sent after it (queued behind), pod-a goes back too.
    assert sorted((s.pod, s.release.key.version) for s in p.swaps) == [("pod-a", "20240101"), ("pod-b", "20240101")]


def test_without_auto_rollback_the_rollout_holds() -> None:
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS), auto_rollback=False)
    pods = [serving("pod-a", V2), serving("pod-b", V1), serving("pod-c", V1)]
    second = step(V2, pods, first.state, auto_rollback=False, outcomes=[outcome("pod-a", V2, Swapped(V2.key, True))])
    refused = outcome("pod-b", V2, SwapRefused("load_failed", "weights did not load", 500))
    p = step(V2, pods, second.state, auto_rollback=False, outcomes=[refused])
    assert p.state is not None and p.state.phase == "Halted"
    assert p.swaps == ()
    assert p.state.configmap_document() == V2.document  # nothing is changed back
    assert isinstance(p.verdict, Fail) and p.verdict.reason == "LoadFailed"
    assert "holding (autoRollback is off)" in p.verdict.message
    # Held: nothing moves, whatever happens next.
    assert step(V2, pods, p.state, auto_rollback=False).swaps == ()
    # Turning autoRollback on rolls it back.
    on = step(V2, pods, p.state, auto_rollback=True)
    assert on.state is not None and on.state.phase == "RollingBack"
    assert [(s.pod, s.release) for s in on.swaps] == [("pod-a", V1)]


def test_a_refused_rollback_holds_and_says_both_reasons() -> None:
    state = _rolling_with_a_on_v2()
    pods = [serving("pod-a", V2), serving("pod-b", V1), serving("pod-c", V1)]
    p = step(V2, pods, state, outcomes=[outcome("pod-b", V2, SwapRefused("digest_mismatch", "differ", 422))])
    q = step(V2, pods, p.state, outcomes=[outcome("pod-a", V1, SwapRefused("fetch_failed", "file gone", 502))])
    assert q.state is not None and q.state.phase == "RollbackFailed"
    assert q.swaps == ()
    assert isinstance(q.verdict, Fail) and q.verdict.reason == "RollbackFailed"
    assert "digest_mismatch" in q.verdict.message and "pod pod-a: fetch_failed: file gone" in q.verdict.message
    assert q.state.configmap_document() == V1.document


def test_no_earlier_model_means_hold_even_with_auto_rollback() -> None:
    first = step(BAD, [serving("pod-a", V1)], None)  # lost state: V1's document is not known
    assert first.state is not None and first.state.stable is None
    p = step(
        BAD, [serving("pod-a", V1)], first.state, outcomes=[outcome("pod-a", BAD, SwapRefused("load_failed", "x", 500))]
    )
    assert p.state is not None and p.state.phase == "Halted"
    assert isinstance(p.verdict, Fail) and "no earlier model" in p.verdict.message


def test_a_retry_token_tries_the_same_model_again() -> None:
    state = _rolling_with_a_on_v2()
    pods = [serving("pod-a", V2), serving("pod-b", V1), serving("pod-c", V1)]
    p = step(V2, pods, state, outcomes=[outcome("pod-b", V2, SwapRefused("fetch_failed", "503 upstream", 502))])
    back = step(V2, pods_on(V1, *PODS), p.state, outcomes=[outcome("pod-a", V1, Swapped(V1.key, True))])
    assert back.state is not None and back.state.phase == "RolledBack"
    retry = step(V2, pods_on(V1, *PODS), back.state, attempt="2")
    assert retry.state is not None and retry.state.phase == "Rolling" and retry.state.failure is None
    assert first_action_writes(retry) and retry.state.configmap_document() == V2.document
    assert [(s.pod, s.release) for s in retry.swaps] == [("pod-a", V2)]


# --- item 4: a newer spec.model supersedes the one in flight ---------------------------------------------


def test_a_newer_model_supersedes_the_one_in_flight() -> None:
    state = _rolling_with_a_on_v2()  # pod-a on V2, pod-b's PUT of V2 running
    pods = [serving("pod-a", V2), serving("pod-b", V1), serving("pod-c", V1)]
    p = step(V3, pods, state, running=["pod-b"])
    assert first_action_writes(p) and p.state is not None
    assert p.state.configmap_document() == V3.document
    assert p.state.stable == V1  # the rollback target stays the last fully served model
    assert p.swaps == ()  # pod-b's PUT still counts against maxUnavailable
    assert p.status is not None
    assert "superseding cat_recognition:20240202" in p.status.condition("Progressing").message
    # pod-b's V2 swap ends: it is not V3's failure, and every next swap is to V3.
    pods_b_on_v2 = [serving("pod-a", V2), serving("pod-b", V2), serving("pod-c", V1)]
    q = step(V3, pods_b_on_v2, p.state, outcomes=[outcome("pod-b", V2, Swapped(V2.key, True))], max_unavailable=3)
    assert {s.release for s in q.swaps} == {V3}
    assert sorted(swapped_pods(q)) == list(PODS)


def test_a_refusal_of_a_superseded_model_is_not_the_new_rollout_failure() -> None:
    state = _rolling_with_a_on_v2()
    pods = [serving("pod-a", V2), serving("pod-b", V1), serving("pod-c", V1)]
    p = step(V3, pods, state, running=["pod-b"])
    q = step(V3, pods, p.state, outcomes=[outcome("pod-b", V2, SwapRefused("load_failed", "x", 500))])
    assert q.state is not None and q.state.phase == "Rolling" and q.state.failure is None
    assert swapped_pods(q) == ["pod-a"] and q.swaps[0].release == V3


def test_a_failure_after_a_supersede_rolls_back_to_the_last_fully_served_model() -> None:
    state = _rolling_with_a_on_v2()
    pods = [serving("pod-a", V2), serving("pod-b", V1), serving("pod-c", V1)]
    p = step(V3, pods, state, running=["pod-b"])
    pods = [serving("pod-a", V2), serving("pod-b", V2), serving("pod-c", V1)]
    q = step(V3, pods, p.state, outcomes=[outcome("pod-b", V2, Swapped(V2.key, True))])
    assert [(s.pod, s.release) for s in q.swaps] == [("pod-a", V3)]
    r = step(
        V3, pods, q.state, outcomes=[outcome("pod-a", V3, SwapRefused("load_failed", "x", 500))], max_unavailable=3
    )
    assert r.state is not None and r.state.phase == "RollingBack"
    assert r.state.configmap_document() == V1.document  # not V2: it was never served everywhere
    assert sorted((s.pod, s.release.key.version) for s in r.swaps) == [("pod-a", "20240101"), ("pod-b", "20240101")]


def test_going_back_to_the_stable_model_mid_rollout_is_a_rollout_to_it() -> None:
    state = _rolling_with_a_on_v2()
    pods = [serving("pod-a", V2), serving("pod-b", V1), serving("pod-c", V1)]
    p = step(V1, pods, state)
    assert p.state is not None and p.state.phase == "Rolling" and p.state.target == V1
    assert p.state.configmap_document() == V1.document
    assert p.state.from_key == V2.key
    assert {s.release for s in p.swaps} <= {V1}


# --- item 5: crash safety and drift --------------------------------------------------------------------------


def test_after_a_crash_a_put_on_record_is_sent_again_and_still_counts() -> None:
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    # The operator died after recording pod-a's PUT; the pod may or may not have swapped.
    for pod_a in (serving("pod-a", V1), serving("pod-a", V2)):
        p = step(V2, [pod_a, serving("pod-b", V1), serving("pod-c", V1)], first.state)
        assert [(s.pod, s.release) for s in p.swaps] == [("pod-a", V2)]


def test_the_put_sent_again_after_a_crash_reports_the_swap_the_lost_one_did() -> None:
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    again = step(V2, [serving("pod-a", V1), serving("pod-b", V1), serving("pod-c", V1)], first.state)
    unchanged = outcome("pod-a", V2, Swapped(served=V2.key, changed=False))  # the lost PUT had swapped it
    p = step(V2, [serving("pod-a", V2), *pods_on(V1, "pod-b", "pod-c")], again.state, outcomes=[unchanged])
    assert [e.message for e in p.events if e.reason == "PodSwapped"] == ["pod pod-a serves cat_recognition:20240202"]


def test_a_put_on_record_dies_with_a_restarted_pod() -> None:
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    restarted = serving("pod-a", V2, restarts=1)  # started again from the ConfigMap (V2)
    p = step(V2, [restarted, serving("pod-b", V1), serving("pod-c", V1)], first.state)
    assert swapped_pods(p) == ["pod-b"]


def test_a_lost_connection_to_a_deleted_pod_is_not_a_refusal() -> None:
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    pods = [terminating("pod-a", V1), serving("pod-b", V1), serving("pod-c", V1)]
    p = step(V2, pods, first.state, outcomes=[outcome("pod-a", V2, SwapLost("connection_lost", "reset"))])
    assert p.state is not None and p.state.phase == "Rolling"
    assert swapped_pods(p) == ["pod-b"]


def _dropped(pod: str = "pod-a", *, restarts: int = 0) -> SwapOutcome:
    return outcome(pod, V2, SwapLost("connection_lost", "server disconnected"), restarts=restarts)


def test_a_pod_oom_killed_during_its_swap_is_not_a_refusal() -> None:
    """The serving process dies mid-swap: the PUT's connection drops at once, before the API shows
    the new restart count. Nothing is decided (no refusal, no PUT on top) until the pod is seen
    again: restarted (it starts from the ConfigMap's document, the target), it is confirmed."""
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    down = [unreachable("pod-a"), serving("pod-b", V1), serving("pod-c", V1)]
    p = step(V2, down, first.state, outcomes=[_dropped()])
    assert p.state is not None and p.state.phase == "Rolling" and p.state.failure is None
    assert [(f.pod, f.undecided) for f in p.state.in_flight] == [("pod-a", True)]
    assert p.swaps == () and isinstance(p.verdict, Wait) and p.verdict.after_s == 2.0  # maxUnavailable 1
    assert [e.reason for e in p.events] == []
    still = step(V2, [loading("pod-a"), *down[1:]], p.state)  # restarting, count not shown yet
    assert still.swaps == () and still.state == p.state
    restarted = step(V2, [serving("pod-a", V2, restarts=1), *down[1:]], p.state)
    assert restarted.state is not None and restarted.state.phase == "Rolling" and restarted.state.failure is None
    assert [(s.pod, s.release) for s in restarted.swaps] == [("pod-b", V2)]


def test_a_dropped_connection_to_a_pod_that_swapped_anyway_is_confirmed() -> None:
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    pods = [serving("pod-a", V2), serving("pod-b", V1), serving("pod-c", V1)]
    p = step(V2, pods, first.state, outcomes=[_dropped()])
    assert p.state is not None and p.state.phase == "Rolling" and p.state.failure is None
    assert [(s.pod, s.release) for s in p.swaps] == [("pod-b", V2)]
    assert [e.message for e in p.events if e.reason == "PodSwapped"] == ["pod pod-a serves cat_recognition:20240202"]


def test_a_dropped_connection_to_a_live_pod_is_sent_again_once_then_refused() -> None:
    """The pod kept running (same restart count) and does not serve the model: the connection was
    lost, not the process. The PUT is sent again (queued behind the first, which may still run);
    the connection of that one dropping too is the refusal ConnectionLost."""
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    p = step(V2, pods_on(V1, *PODS), first.state, outcomes=[_dropped()])
    assert p.state is not None and p.state.phase == "Rolling"
    assert [(s.pod, s.release) for s in p.swaps] == [("pod-a", V2)]
    assert [(f.pod, f.earlier, f.undecided, f.dropped) for f in p.state.in_flight] == [("pod-a", True, False, 1)]
    q = step(V2, pods_on(V1, *PODS), p.state, outcomes=[_dropped()])
    assert q.state is not None and q.state.phase == "RollingBack"
    assert q.state.failure is not None and q.state.failure.reason == "connection_lost"
    assert "dropped during 2 PUTs while the pod kept running" in q.state.failure.message
    assert isinstance(q.verdict, Wait) and [(s.pod, s.release) for s in q.swaps] == [("pod-a", V1)]


def test_a_dropped_put_queued_behind_an_earlier_one_is_not_confirmed_by_the_pod_serving_its_model() -> None:
    """pod-a is fetching big weights for V2 when the operator restarts and the user reverts to V1:
    V1 is sent behind the V2 PUT, and that connection drops. pod-a still answers V1 - from before
    the V2 PUT, which is still queued ahead and would switch it to V2 after. Not confirmed: V1 is
    sent again, and only its answer (behind the V2 PUT) confirms the pod."""
    pods = ("pod-a", "pod-b")
    first = step(V2, pods_on(V1, *pods), complete(V1, *pods), now=T0 + timedelta(seconds=10))
    assert swapped_pods(first) == ["pod-a"]
    reverted = step(V1, pods_on(V1, *pods), first.state, now=T0 + timedelta(seconds=15))
    assert reverted.state is not None
    assert [(s.pod, s.release) for s in reverted.swaps] == [("pod-a", V1)]
    assert [(f.pod, f.key, f.earlier) for f in reverted.state.in_flight] == [("pod-a", V1.key, True)]
    dropped = outcome("pod-a", V1, SwapLost("connection_lost", "server disconnected"))
    p = step(V1, pods_on(V1, *pods), reverted.state, outcomes=[dropped], now=T0 + timedelta(seconds=16))
    assert p.state is not None and p.state.phase == "Rolling" and p.state.failure is None
    assert [(f.pod, f.key, f.earlier, f.undecided) for f in p.state.in_flight] == [("pod-a", V1.key, True, False)]
    assert [(s.pod, s.release) for s in p.swaps] == [("pod-a", V1)]
    assert [e.reason for e in p.events] == []
    assert p.status is not None and p.status.condition("Ready").status == "False"
    unchanged = outcome("pod-a", V1, Swapped(served=V1.key, changed=False))  # answered after the V2 PUT
    done = step(V1, pods_on(V1, *pods), p.state, outcomes=[unchanged], now=T0 + timedelta(seconds=90))
    assert done.state is not None and done.state.phase == "Complete" and done.state.in_flight == ()
    assert [e.reason for e in done.events] == ["PodSwapped", "RolloutSucceeded"]


def test_a_retry_after_connection_lost_counts_dropped_connections_afresh() -> None:
    """Held after ConnectionLost, then retried: the retry's PUT dropping once is sent again, not
    the refusal at once - also for a held record written by the build that kept the failed
    rollout's count on its flight."""
    held = _held_after_connection_lost()
    as_written_before = held.model_copy(
        update={"in_flight": tuple(f.model_copy(update={"dropped": 2}) for f in held.in_flight)}
    )
    for state in (held, as_written_before):
        retry = step(V2, pods_on(V1, *PODS), state, auto_rollback=False, attempt="1")
        assert retry.state is not None and retry.state.phase == "Rolling"
        assert [(s.pod, s.release) for s in retry.swaps] == [("pod-a", V2)]
        assert [(f.pod, f.dropped, f.undecided) for f in retry.state.in_flight] == [("pod-a", 0, False)]
        p = step(V2, pods_on(V1, *PODS), retry.state, auto_rollback=False, attempt="1", outcomes=[_dropped()])
        assert p.state is not None and p.state.phase == "Rolling" and p.state.failure is None, p.verdict
        assert [(s.pod, s.release) for s in p.swaps] == [("pod-a", V2)]
        assert [(f.pod, f.dropped) for f in p.state.in_flight] == [("pod-a", 1)]


def test_an_undelivered_put_is_tried_again_later_not_counted_as_a_refusal() -> None:
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    p = step(
        V2,
        pods_on(V1, *PODS),
        first.state,
        outcomes=[outcome("pod-a", V2, SwapUndelivered("unreachable", "connection refused"))],
    )
    assert p.state is not None and p.state.phase == "Rolling" and p.state.failure is None
    assert swapped_pods(p) == ["pod-b"]  # pod-a cools down for one plan
    q = step(V2, pods_on(V1, *PODS), p.state, outcomes=[outcome("pod-b", V2, SwapUndelivered("not_ready", "503"))])
    assert swapped_pods(q) == ["pod-a"]


def test_a_pod_crash_looping_since_the_rollout_started_is_a_refusal() -> None:
    first = step(V2, pods_on(V1, "pod-a", "pod-b"), complete(V1, "pod-a", "pod-b"))
    looping = unreachable("pod-b", crash_looping=True, crashed_at=T0 + timedelta(seconds=5))
    p = step(V2, [serving("pod-a", V1), looping], first.state, running=["pod-a"], now=T0 + timedelta(seconds=6))
    assert p.state is not None and p.state.phase == "RollingBack"
    assert p.state.failure is not None and p.state.failure.reason == "crash_loop"
    assert p.state.configmap_document() == V1.document  # the looping pod restarts on V1


def test_a_pod_crash_looping_before_the_rollout_is_not_its_failure() -> None:
    first = step(V2, pods_on(V1, "pod-a", "pod-b"), complete(V1, "pod-a", "pod-b"))
    looping = unreachable("pod-b", crash_looping=True, crashed_at=T0 - timedelta(hours=1))
    p = step(V2, [serving("pod-a", V1), looping], first.state, running=["pod-a"])
    assert p.state is not None and p.state.phase == "Rolling"
    assert p.status is not None and {r.pod: r.state for r in p.status.replicas}["pod-b"] == "Failed"


def test_lost_state_with_every_pod_on_the_desired_model_is_complete() -> None:
    p = step(V2, pods_on(V2, *PODS), None)
    assert p.state is not None and p.state.phase == "Complete" and p.swaps == ()


def test_drift_is_repaired_with_back_off_when_refused() -> None:
    state = complete(V1, *PODS)
    drifted = [serving("pod-a", V1), serving("pod-b", V3), serving("pod-c", V1)]
    p = step(V1, drifted, state)
    assert [(s.pod, s.release, s.purpose) for s in p.swaps] == [("pod-b", V1, "repair")]
    assert p.status is not None and p.status.condition("Progressing").reason == "RepairingDrift"
    assert [e.reason for e in p.events] == ["DriftDetected"]
    refused = outcome("pod-b", V1, SwapRefused("fetch_failed", "gone", 502))
    q = step(V1, drifted, p.state, outcomes=[refused], now=T0 + timedelta(seconds=10))
    assert q.swaps == ()
    assert q.status is not None and q.status.condition("Degraded").reason == "DriftRepairFailed"
    assert isinstance(q.verdict, Wait) and q.verdict.after_s == pytest.approx(30.0)
    later = step(V1, drifted, q.state, now=T0 + timedelta(seconds=41))
    assert swapped_pods(later) == ["pod-b"]
    fixed = step(
        V1,
        pods_on(V1, *PODS),
        later.state,
        outcomes=[outcome("pod-b", V1, Swapped(V1.key, True))],
        now=T0 + timedelta(seconds=42),
    )
    assert fixed.state is not None and fixed.state.repairs_failed == ()
    assert isinstance(fixed.verdict, Done)


def test_a_repair_that_timed_out_waits_for_its_back_off_too() -> None:
    """A timeout keeps the PUT on record (it may still run on the pod); re-sending it at every plan
    would hammer a pod that cannot take the model, back-off or not."""
    state = complete(V1, *PODS)
    drifted = [serving("pod-a", V1), serving("pod-b", V3), serving("pod-c", V1)]
    p = step(V1, drifted, state)
    timed_out = outcome("pod-b", V1, SwapLost("timeout", "no answer in 300 s"))
    q = step(V1, drifted, p.state, outcomes=[timed_out], now=T0 + timedelta(seconds=10))
    assert q.state is not None and [f.pod for f in q.state.repairs_failed] == ["pod-b"]
    assert q.swaps == ()
    for seconds in (12, 20, 39):
        waiting = step(V1, drifted, q.state, now=T0 + timedelta(seconds=seconds))
        assert waiting.swaps == (), seconds
    later = step(V1, drifted, q.state, now=T0 + timedelta(seconds=41))
    assert swapped_pods(later) == ["pod-b"]


def test_drift_back_off_doubles() -> None:
    state = complete(V1, "pod-a")
    drifted = [serving("pod-a", V3)]
    now = T0
    delays = []
    for _ in range(3):
        p = step(V1, drifted, state, now=now)
        assert swapped_pods(p) == ["pod-a"]
        q = step(V1, drifted, p.state, outcomes=[outcome("pod-a", V1, SwapRefused("fetch_failed", "x", 502))], now=now)
        assert q.state is not None
        retry_at = q.state.repairs_failed[0].retry_at
        assert retry_at is not None
        delays.append((retry_at - now).total_seconds())
        state, now = q.state, retry_at
    assert delays == [30.0, 60.0, 120.0]


# --- what counts as a model change --------------------------------------------------------------------------


def test_a_config_change_on_the_same_weights_is_a_rollout() -> None:
    conf_changed = release("20240101", digit="1", conf=0.5)
    assert conf_changed.key.digest == V1.key.digest and conf_changed.key != V1.key
    p = step(conf_changed, pods_on(V1, *PODS), complete(V1, *PODS))
    assert swapped_pods(p) == ["pod-a"] and p.swaps[0].release == conf_changed


def test_a_schema_default_applied_or_spelled_out_is_the_same_model() -> None:
    spelled = release("20240101", digit="1")
    document = spelled.document
    document["model"]["customObjects"]["resize_resolution"] = 640  # the schema default, written out
    from overseer.api.model_document import ModelDocument
    from overseer.operator.rollout_state import release_of

    assert release_of(ModelDocument.model_validate(document)).key == V1.key


def test_a_new_uri_for_the_same_weights_rewrites_the_configmap_without_swaps() -> None:
    moved = release("20240101", digit="1", uri="https://models.example/cat/20240101.pt")
    assert moved.key == V1.key
    p = step(moved, pods_on(V1, *PODS), complete(V1, *PODS))
    assert first_action_writes(p) and p.swaps == ()
    assert p.state is not None and p.state.phase == "Complete"
    assert p.state.configmap_document()["model"]["uri"] == "https://models.example/cat/20240101.pt"
    assert p.state.stable == moved


def test_an_invalid_spec_starts_nothing_and_keeps_the_rollout_going() -> None:
    assert step(None, [], None).state is None
    state = _rolling_with_a_on_v2()
    pods = [serving("pod-a", V2), serving("pod-b", V2), serving("pod-c", V1)]
    p = step(None, pods, state, outcomes=[outcome("pod-b", V2, Swapped(V2.key, True))])
    assert p.state is not None and p.state.target == V2
    assert [(s.pod, s.release) for s in p.swaps] == [("pod-c", V2)]


# --- status details --------------------------------------------------------------------------------------------


def test_history_is_newest_first_capped_and_carries_what_a_rollback_needs() -> None:
    history = [history_entry(release(f"2023{i:04d}"), None) for i in range(12)]
    p = step(V1, pods_on(V1, "pod-a"), None, history=history)
    assert p.status is not None
    entries = p.status.history
    assert len(entries) == HISTORY_LIMIT
    assert entries[0]["version"] == "20240101" and entries[1]["version"] == "20230000"
    assert set(entries[0]) >= {
        "name",
        "version",
        "uri",
        "digest",
        "labels",
        "metadata",
        "customObjects",
        "schemaVersion",
    }
    assert entries[0]["customObjects"] == {"conf": 0.25}
    # Not added twice.
    again = step(V1, pods_on(V1, "pod-a"), p.state, history=list(entries))
    assert again.status is not None and list(again.status.history) == list(entries)


def test_the_progress_message_names_the_model_when_names_differ() -> None:
    other = release("20240202", digit="4", name="dog_recognition")
    p = step(other, pods_on(V1, *PODS), complete(V1, *PODS))
    assert p.status is not None
    assert p.status.condition("Progressing").message == "0/3 pods on dog_recognition:20240202"


def test_ready_replicas_count_ready_pods_on_the_desired_model() -> None:
    state = complete(V1, *PODS)
    p = step(V2, [serving("pod-a", V2), serving("pod-b", V2, ready=False), serving("pod-c", V1)], state)
    assert p.status is not None and p.status.ready_replicas == 1


def test_pod_text_reaches_status_clipped_and_printable() -> None:
    state = _rolling_with_a_on_v2()
    pods = [serving("pod-a", V2), serving("pod-b", V1), serving("pod-c", V1)]
    p = step(V2, pods, state, outcomes=[outcome("pod-b", V2, SwapRefused("load_failed", "x\x1b[31m\n" * 2000, 500))])
    assert p.status is not None
    message = p.status.condition("Degraded").message
    assert len(message) < 1300 and "\x1b" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("digest_mismatch", "DigestMismatch"), ("timeout", "Timeout"), ("", "Unknown"), ("a--b", "AB")],
)
def test_pod_reasons_become_condition_reasons(reason: str, expected: str) -> None:
    assert camel(reason) == expected


def test_the_state_survives_its_json_and_garbage_is_no_state() -> None:
    state = _rolling_with_a_on_v2()
    assert RolloutState.from_json(state.to_json()) == state
    for garbage in ("", "{", "[]", '{"format": 1}', state.to_json().replace('"format":1', '"format":99')):
        assert RolloutState.from_json(garbage) is None


# The fields of format 1 as the operator before `progressed_at` (a62fca3^) reads them, with
# extra="forbid": a record with any other field is a lost record to it.
_FORMAT_1_AS_RELEASED = {
    "state": {"format", "phase", "target", "stable", "from_key", "started_at", "finished_at", "attempt", "strategy",
              "in_flight", "failure", "rollback_failure", "repairs_failed", "superseded"},
    "in_flight": {"pod", "uid", "restarts", "key", "earlier"},
}  # fmt: skip


def _fields_the_release_does_not_know(record: dict[str, object]) -> set[str]:
    unknown = set(record) - _FORMAT_1_AS_RELEASED["state"]
    for flight in record.get("in_flight") or []:  # type: ignore[attr-defined]
        unknown |= set(flight) - _FORMAT_1_AS_RELEASED["in_flight"]
    return unknown


def _held_after_connection_lost() -> RolloutState:
    """pod-a's PUT of V2 dropped its connection twice while the pod kept serving V1: ConnectionLost,
    held (autoRollback off)."""
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS), auto_rollback=False)
    once = step(V2, pods_on(V1, *PODS), first.state, auto_rollback=False, outcomes=[_dropped()])
    assert [(s.pod, s.release) for s in once.swaps] == [("pod-a", V2)]
    twice = step(V2, pods_on(V1, *PODS), once.state, auto_rollback=False, outcomes=[_dropped()])
    assert twice.state is not None and twice.state.phase == "Halted" and twice.swaps == ()
    assert twice.state.failure is not None and twice.state.failure.reason == "connection_lost"
    return twice.state


def test_a_settled_record_is_readable_by_the_operator_before_the_fields_added_to_format_1() -> None:
    """A `helm rollback` of the operator: the fields added since (the progress deadline, restart
    baselines, dropped PUTs) are left out while they hold their default, and a finished rollout
    drops them; a rollout in progress keeps them, and the older operator treats that record as
    lost (docs/rollout.md, "Persisted state")."""
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    assert first.state is not None
    rolling = json.loads(first.state.to_json())
    assert _fields_the_release_does_not_know(rolling) == {"progressed_at", "restart_baselines"}
    lost = step(V2, pods_on(V1, *PODS), first.state, outcomes=[outcome("pod-a", V2, SwapLost("connection_lost", "x"))])
    assert lost.state is not None and '"dropped":1' in lost.state.to_json()  # sent again, counted
    done = step(V2, pods_on(V2, *PODS), first.state, outcomes=[outcome("pod-a", V2, Swapped(V2.key, True))])
    assert done.state is not None and done.state.phase == "Complete"
    settled = json.loads(done.state.to_json())
    assert _fields_the_release_does_not_know(settled) == set()
    assert RolloutState.from_json(done.state.to_json()) == done.state
    # Held after the refusal ConnectionLost (autoRollback off): the flight stays on record (its PUT
    # may still be queued on the pod, ahead of anything sent when the rollout goes on), in format 1.
    held = _held_after_connection_lost()
    assert held.phase == "Halted" and [(f.pod, f.earlier) for f in held.in_flight] == [("pod-a", True)]
    assert _fields_the_release_does_not_know(json.loads(held.to_json())) == set()
    assert RolloutState.from_json(held.to_json()) == held
    # The other way round: a field this operator does not know (a newer one's) is a lost record.
    assert RolloutState.from_json(json.dumps({**settled, "from_the_future": 1})) is None
    flights = json.loads(first.state.to_json())
    flights["in_flight"][0]["from_the_future"] = True
    assert RolloutState.from_json(json.dumps(flights)) is None


def test_a_hand_edited_record_whose_documents_do_not_hold_together_is_no_state() -> None:
    """Anyone who may edit the ConfigMap may edit the record: the operator must not trust it blindly."""
    record = json.loads(_rolling_with_a_on_v2().to_json())
    broken = copy.deepcopy(record)
    broken["target"]["document_json"] = "not json"
    other = copy.deepcopy(record)
    other["target"]["document_json"] = V3.document_json  # a document of another model than the key
    empty = copy.deepcopy(record)
    empty["target"]["document_json"] = json.dumps({"model": {}, "schema": {}})
    deep = copy.deepcopy(record)
    deep["target"]["document_json"] = "[" * 100_000 + "]" * 100_000
    for edited in (broken, other, empty, deep):
        assert RolloutState.from_json(json.dumps(edited)) is None


def test_a_retry_token_changed_while_nothing_failed_does_not_retry_a_later_failure() -> None:
    first = step(V2, pods_on(V1, *PODS), complete(V1, *PODS))
    noted = step(V2, pods_on(V1, *PODS), first.state, running=["pod-a"], attempt="7")
    assert noted.state is not None and noted.state.attempt == "7" and noted.state.phase == "Rolling"
    refused = outcome("pod-a", V2, SwapRefused("load_failed", "x", 500))
    p = step(V2, pods_on(V1, *PODS), noted.state, outcomes=[refused], attempt="7")
    assert p.state is not None and p.state.phase == "RolledBack"
    again = step(V2, pods_on(V1, *PODS), p.state, attempt="7")
    assert again.state is not None and again.state.phase == "RolledBack" and again.swaps == ()


def test_a_refused_stable_model_holds_and_says_so() -> None:
    state = _rolling_with_a_on_v2()
    pods = [serving("pod-a", V2), serving("pod-b", V1), serving("pod-c", V1)]
    back = step(V1, pods, state, running=["pod-b"], max_unavailable=2)  # back to the stable model by hand
    assert back.state is not None and back.state.target == back.state.stable == V1
    assert [(s.pod, s.release) for s in back.swaps] == [("pod-a", V1)]
    gone = outcome("pod-a", V1, SwapRefused("fetch_failed", "the weights are gone", 502))
    q = step(V1, pods, back.state, outcomes=[gone], running=["pod-b"], max_unavailable=2)
    assert q.state is not None and q.state.phase == "Halted"
    assert isinstance(q.verdict, Fail) and q.verdict.reason == "FetchFailed"
    assert q.verdict.message.endswith("holding (the refused model is the last one every pod served)")


@pytest.mark.parametrize("phase", ["RollingBack", "RolledBack", "RollbackFailed"])
def test_a_record_of_a_rollback_without_a_stable_model_is_no_state(phase: str) -> None:
    """A rollback needs the model it goes back to: such a record is not trusted (it would stop every
    plan), and the planner starts from what the pods serve, as for a lost record."""
    record = json.loads(complete(V1, *PODS).to_json())
    record.update(phase=phase, stable=None)
    assert RolloutState.from_json(json.dumps(record)) is None
    p = step(V1, pods_on(V1, *PODS), RolloutState.from_json(json.dumps(record)))
    assert p.state is not None and p.state.phase == "Complete" and p.swaps == ()


def test_a_record_whose_key_is_not_the_config_of_its_document_is_no_state() -> None:
    """The key's config fingerprint is recomputed from the document: an edited config (or key) is
    caught, not only an edited name, version or digest."""
    record = json.loads(complete(V1, *PODS).to_json())
    other_config = release(V1.key.version, digit="1", conf=0.9)
    assert other_config.key.label == V1.key.label and other_config.key.digest == V1.key.digest
    assert other_config.key.config != V1.key.config
    edited = copy.deepcopy(record)
    edited["target"]["document_json"] = other_config.document_json
    forged_key = copy.deepcopy(record)
    forged_key["stable"]["key"]["config"] = "0" * 16
    for bad in (edited, forged_key):
        assert RolloutState.from_json(json.dumps(bad)) is None
    assert RolloutState.from_json(json.dumps(record)) is not None


def test_a_pod_restarted_while_its_put_still_runs_is_not_refused_by_the_stale_answer() -> None:
    """The serving process restarted (it now loads the ConfigMap's model) while the operator still
    waits on the PUT sent to the process that died: no second PUT meanwhile, and that PUT's lost
    connection is the old process's answer, not a refusal of the model."""
    pods = ("pod-a", "pod-b")
    first = step(V2, pods_on(V1, *pods), complete(V1, *pods))
    sent = first.swaps[0]
    assert (sent.pod, sent.restarts) == ("pod-a", 0)
    restarted = [serving("pod-a", V1, restarts=1), serving("pod-b", V1)]  # restarted on the old model
    waiting = step(V2, restarted, first.state, running=["pod-a"])
    assert swapped_pods(waiting) == ["pod-b"]  # the PUT to pod-a died with its process; pod-a still busy
    lost = SwapOutcome("pod-a", V2.key, SwapLost("connection_lost", "reset by peer"), uid="uid-pod-a", restarts=0)
    after = step(V2, restarted, waiting.state, outcomes=[lost], running=["pod-b"])
    assert after.state is not None and after.state.phase == "Rolling" and after.state.failure is None
    assert [(f.pod, f.restarts) for f in after.state.in_flight] == [("pod-b", 0)]


def test_an_answer_to_the_put_on_record_is_still_taken() -> None:
    pods = ("pod-a", "pod-b")
    first = step(V2, pods_on(V1, *pods), complete(V1, *pods))
    refused = SwapOutcome("pod-a", V2.key, SwapRefused("load_failed", "oom", 500), uid="uid-pod-a", restarts=0)
    p = step(V2, pods_on(V1, *pods), first.state, outcomes=[refused])
    assert p.state is not None and p.state.phase == "RolledBack"


@pytest.mark.parametrize("auto_rollback", [True, False])
def test_a_failed_models_fixed_document_is_tried_again(auto_rollback: bool) -> None:
    """fetch_failed: the user fixes spec.model.uri (same digest, so the same key). That is a spec
    change a user expects to act on, as the retry annotation does."""
    pods = ("pod-a", "pod-b")
    first = step(V2, pods_on(V1, *pods), complete(V1, *pods), auto_rollback=auto_rollback)
    refused = outcome(first.swaps[0].pod, V2, SwapRefused("fetch_failed", "404 from the weights server", 502))
    failed = step(V2, pods_on(V1, *pods), first.state, outcomes=[refused], auto_rollback=auto_rollback)
    assert failed.state is not None and failed.state.phase == ("RolledBack" if auto_rollback else "Halted")
    fixed = release(V2.key.version, digit="2", uri="https://weights.example/cat/20240202.pt")
    assert fixed.key == V2.key and fixed != V2
    p = step(fixed, pods_on(V1, *pods), failed.state, auto_rollback=auto_rollback, now=T0 + timedelta(seconds=5))
    assert p.state is not None and p.state.phase == "Rolling" and p.state.failure is None
    assert p.state.target == fixed and p.state.started_at == T0 + timedelta(seconds=5)
    assert [s.release for s in p.swaps] == [fixed]
    assert ("Normal", "RolloutRetried") in [(e.type, e.reason) for e in p.events]
    # The same document again is no change: nothing more starts.
    again = step(fixed, pods_on(V1, *pods), p.state, running=swapped_pods(p), auto_rollback=auto_rollback)
    assert again.state is not None and again.state.started_at == p.state.started_at and again.swaps == ()


def test_a_hot_swap_waiting_on_a_silent_pod_past_the_progress_deadline_is_degraded_not_rolled_back() -> None:
    """pod-b never answers (a network policy, a wedged process): the rollout cannot finish. Past
    the deadline (600 s without progress) the user is told which pod, the operator polls slower,
    and nothing is rolled back: the pods that took the model keep it."""
    pods = ("pod-a", "pod-b")
    first = step(V2, [serving("pod-a", V1), unreachable("pod-b")], complete(V1, *pods))
    assert swapped_pods(first) == ["pod-a"]
    done_at = T0 + timedelta(seconds=10)
    silent = [serving("pod-a", V2), unreachable("pod-b")]
    confirmed = step(V2, silent, first.state, outcomes=[outcome("pod-a", V2, Swapped(V2.key, True))], now=done_at)
    assert confirmed.state is not None and confirmed.state.progressed_at == done_at

    before = step(V2, silent, confirmed.state, now=done_at + timedelta(seconds=599))
    assert before.status is not None and before.status.condition("Degraded").status == "False"
    assert isinstance(before.verdict, Wait) and before.verdict.after_s == 2.0

    past = step(V2, silent, confirmed.state, now=done_at + timedelta(seconds=601))
    assert past.state is not None and past.state.phase == "Rolling" and past.swaps == ()
    assert past.status is not None
    degraded = past.status.condition("Degraded")
    assert (degraded.status, degraded.reason) == ("True", "ProgressDeadlineExceeded")
    assert "no progress for 10 min" in degraded.message and "pod pod-b: unreachable" in degraded.message
    assert "pod-a" not in degraded.message
    assert isinstance(past.verdict, Wait) and past.verdict.after_s == 30.0

    answered = step(V2, pods_on(V2, *pods), past.state, now=done_at + timedelta(seconds=700))
    assert answered.state is not None and answered.state.phase == "Complete"
    assert answered.status is not None and answered.status.condition("Degraded").status == "False"


def test_a_slow_rollout_that_keeps_progressing_is_not_past_its_deadline() -> None:
    """The deadline is since the last progress (a swap sent or answered), not since the start."""
    pods = ("pod-a", "pod-b", "pod-c")
    p = step(V2, pods_on(V1, *pods), complete(V1, *pods))
    now, on_v2 = T0, set()
    for name in pods:
        now += timedelta(seconds=500)
        on_v2.add(name)
        views = [serving(n, V2 if n in on_v2 else V1) for n in pods]
        p = step(V2, views, p.state, outcomes=[outcome(name, V2, Swapped(V2.key, True))], now=now)
        assert p.status is not None and p.status.condition("Degraded").status == "False"
    assert p.state is not None and p.state.phase == "Complete"


def test_a_put_on_record_nobody_waits_for_does_not_hold_off_the_progress_deadline() -> None:
    """The operator restarted mid-rollout (no task waits for pod-a's PUT any more) and pod-a stops
    answering: the flight on record is no swap in progress, so past the deadline the rollout says
    which pod it waits on - while a PUT a task really waits for (it may take minutes) holds it off."""
    pods = ("pod-a", "pod-b")
    first = step(V2, pods_on(V1, *pods), complete(V1, *pods), now=T0 + timedelta(seconds=10))
    assert first.state is not None and [f.pod for f in first.state.in_flight] == ["pod-a"]
    silent = [unreachable("pod-a"), serving("pod-b", V1)]
    later = T0 + timedelta(minutes=60)
    after_restart = step(V2, silent, first.state, now=later)
    assert after_restart.status is not None and after_restart.state == first.state
    degraded = after_restart.status.condition("Degraded")
    assert (degraded.status, degraded.reason) == ("True", "ProgressDeadlineExceeded")
    assert "pod pod-a: unreachable" in degraded.message
    assert isinstance(after_restart.verdict, Wait) and after_restart.verdict.after_s == 30.0

    waited_for = step(V2, silent, first.state, now=later, running=["pod-a"])
    assert waited_for.status is not None and waited_for.status.condition("Degraded").status == "False"


def test_a_put_sent_again_after_an_operator_restart_is_progress_not_past_the_deadline() -> None:
    """The operator restarts twice, 15 min apart, while pod-c is still starting: each time pod-a's
    PUT on record is sent again. That PUT is awaited from this plan on, and sending it is progress:
    no ProgressDeadlineExceeded for one plan then AsExpected the next (a flap, with a Warning and a
    Recovered Event). Past the deadline from that re-send, with pod-a silent, it is stuck."""
    pods = ("pod-a", "pod-b", "pod-c")
    first = step(V2, pods_on(V1, *pods), complete(V1, *pods), now=T0 + timedelta(seconds=10))
    assert swapped_pods(first) == ["pod-a"]
    waiting = [serving("pod-a", V1), serving("pod-b", V1), starting("pod-c")]
    state, now = first.state, T0 + timedelta(seconds=10)
    for _ in range(2):  # the operator restarted: nobody waits for pod-a's PUT
        now += timedelta(minutes=15)
        again = step(V2, waiting, state, now=now)
        assert swapped_pods(again) == ["pod-a"]
        assert again.state is not None and again.state.progressed_at == now and first_action_writes(again)
        assert again.status is not None and again.status.condition("Degraded").status == "False"
        assert isinstance(again.verdict, Wait) and again.verdict.after_s is None
        awaited = step(V2, waiting, again.state, now=now + timedelta(seconds=2), running=["pod-a"])
        assert awaited.status is not None and awaited.status.condition("Degraded").status == "False"
        state = awaited.state
    silent = [unreachable("pod-a"), serving("pod-b", V1), starting("pod-c")]
    past = step(V2, silent, state, now=now + timedelta(seconds=601))
    assert past.swaps == () and past.status is not None
    degraded = past.status.condition("Degraded")
    assert (degraded.status, degraded.reason) == ("True", "ProgressDeadlineExceeded")
    assert "pod pod-a: unreachable" in degraded.message and "pod pod-c is starting" in degraded.message


def test_restarts_from_before_the_rollout_do_not_make_one_oom_kill_a_crash_loop() -> None:
    """pod-a restarted twice last week; OOM-killed once during the rollout, it is down after an
    error exit with restart count 2. Counted since the rollout first saw it (2), that is no crash
    loop; two restarts more, down again after an error, is one."""
    first = step(V2, [serving("pod-a", V1, restarts=2), serving("pod-b", V1)], complete(V1, "pod-a", "pod-b"))
    assert first.state is not None
    assert [(b.uid, b.restarts) for b in first.state.restart_baselines] == [("uid-pod-a", 2), ("uid-pod-b", 0)]
    killed_at = T0 + timedelta(seconds=5)
    killed = unreachable("pod-a", crash_looping=True, crashed_at=killed_at, restarts=2)
    p = step(V2, [killed, serving("pod-b", V1)], first.state, running=["pod-a"], now=killed_at)
    assert p.state is not None and p.state.phase == "Rolling" and p.state.failure is None
    looping = unreachable("pod-a", crash_looping=True, crashed_at=killed_at + timedelta(seconds=30), restarts=4)
    q = step(V2, [looping, serving("pod-b", V1)], p.state, now=killed_at + timedelta(seconds=31))
    assert q.state is not None and q.state.phase == "RollingBack"
    assert q.state.failure is not None and q.state.failure.reason == "crash_loop"
    assert "(2 restarts)" in q.state.failure.message
    # Once the rollout ends, no baselines are kept (the next rollout takes its own).
    back = step(V2, [serving("pod-a", V1, restarts=5), serving("pod-b", V1)], q.state)
    assert back.state is not None and back.state.phase == "RolledBack" and back.state.restart_baselines == ()


def test_a_pod_created_during_the_rollout_counts_every_restart() -> None:
    first = step(V2, pods_on(V1, "pod-a"), complete(V1, "pod-a"))
    looping = unreachable("pod-z", crash_looping=True, crashed_at=T0 + timedelta(seconds=8))
    new = replace(looping, created_at=T0 + timedelta(seconds=2))  # after the rollout started (T0 + 1 s)
    p = step(V2, [serving("pod-a", V1), new], first.state, running=["pod-a"], now=T0 + timedelta(seconds=9))
    assert p.state is not None and p.state.phase == "RollingBack"
    assert p.state.failure is not None and (p.state.failure.pod, p.state.failure.reason) == ("pod-z", "crash_loop")
