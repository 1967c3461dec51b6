"""The hot swap end to end: the operator on the real local control plane, three real serving pods
(BentoML + YOLO), eight load clients posting /detect to the pods' IPs. A new spec.model reaches
every pod in place with no failed request and no restart; a pod that refuses it rolls the others
back; a held rollout is rolled back by hand with the documented one-liner; the operator killed
mid-rollout, a pod deleted mid-swap and a change applied mid-rollout all end with every pod on the
right model; drift is repaired without a spec change.

The module's tests share the pods (they are the expensive part): each one starts by bringing the
deployment to a known model, so each can also run alone."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import httpx
import pytest
from rollout_support import (
    PORT,
    READY_TIMEOUT,
    Fleet,
    Load,
    Model,
    Operator,
    Route,
    StatusRecorder,
    WeightsServer,
    metric,
)
from support.cluster import REPO_ROOT, Kubectl
from support.polling import wait_for

SLOW_S = 3.0  # a slow weights server: a swap then takes long enough to act in the middle of it


@pytest.fixture(scope="module")
def fleet(module_kubectl: Kubectl, models: dict[str, Model]) -> Fleet:
    fleet = Fleet(module_kubectl, "cat-recognition")
    fleet.apply(fleet.body(models["v1"]))
    fleet.wait_serving(models["v1"], timeout=READY_TIMEOUT)
    return fleet


def converge(fleet: Fleet, model: Model, **rollout: Any) -> dict[str, Any]:
    """Bring the deployment to `model` on every pod (the known state a test starts from)."""
    fleet.apply(fleet.body(model, **rollout))
    return fleet.wait_serving(model)


def label(model: Model) -> str:
    return f"cat_recognition:{model.version}"


def since(fleet: Fleet, count: int) -> list[tuple[str, str, str]]:
    return fleet.events()[count:]


def test_a_new_model_reaches_every_pod_in_place_under_load(
    fleet: Fleet, models: dict[str, Model], jpeg: bytes, rollout_operator: Operator
) -> None:
    v1, v2 = models["v1"], models["v2"]
    converge(fleet, v1)
    before, events_before, metrics_before = fleet.identities(), len(fleet.events()), rollout_operator.metrics()
    assert len(before) == 3
    with Load(fleet.ips(), jpeg) as load, StatusRecorder(fleet.kubectl, fleet.name) as recorder:
        fleet.apply(fleet.body(v2))
        status = fleet.wait_serving(v2)
        mark = load.mark()
        wait_for(lambda: {a.pod for a in load.since(mark) if a.version == v2.version} == set(fleet.ips()), 60,
                 "every pod to answer /detect with the new model")  # fmt: skip

    # Zero failed requests; the same pods, never restarted; every pod on v2.
    assert load.failures() == []
    assert load.versions() == {v1.version, v2.version}
    assert fleet.identities() == before
    assert set(fleet.served().values()) == {v2.version}

    # The status while it happened: one pod at a time (maxUnavailable 1), said in Progressing.
    progress = [m for s, r, m in recorder.messages("Progressing") if (s, r) == ("True", "HotSwapInProgress")]
    for k in (1, 2):
        assert any(m.startswith(f"{k}/3 pods on {v2.version}") for m in progress), progress
    loading = [sum(r["state"] == "Loading" for r in s.get("replicas") or []) for s in recorder.seen]
    assert max(loading) == 1  # never two pods swapping at once

    # ... and once done.
    assert [(r["version"], r["digest"], r["state"]) for r in status["replicas"]] == [
        (v2.version, v2.digest, "Serving")
    ] * 3
    assert fleet.condition("Ready", status)["message"] == f"3/3 pods on {v2.version}"
    assert fleet.condition("Progressing", status)["reason"] == "RolloutComplete"
    last = status["lastRollout"]
    assert (last["strategy"], last["fromVersion"], last["toVersion"], last["result"]) == (
        "HotSwap", v1.version, v2.version, "Succeeded",
    )  # fmt: skip
    assert last["startedAt"] <= last["finishedAt"] and re.fullmatch(
        rf"3/3 pods on {v2.version} in [\d.]+ s", last["message"]
    )
    newest, previous = status["history"][:2]
    assert (newest["version"], previous["version"]) == (v2.version, v1.version)
    # Everything spec.model needs to go back to it, schema defaults filled in (iou, max_det, ...).
    assert newest["customObjects"]["conf"] == 0.25 and newest["customObjects"]["max_det"] == 300
    assert newest["labels"] == {"owner": "vision-team", "stage": "production"} and newest["schemaVersion"] == 2

    # Events: start, each pod, finish.
    events = since(fleet, events_before)
    reasons = [r for _, r, _ in events]
    assert reasons.count("RolloutStarted") == 1 and reasons.count("RolloutSucceeded") == 1
    swapped = [m for _, r, m in events if r == "PodSwapped"]
    assert len(swapped) == 3 and all(m.endswith(f"serves {label(v2)}") for m in swapped)
    assert all(kind == "Normal" for kind, _, _ in events), events

    # Metrics.
    after = rollout_operator.metrics()
    for name, labels in (
        ("overseer_rollouts_total", {"strategy": "HotSwap", "result": "succeeded"}),
        ("overseer_rollout_duration_seconds_count", {"strategy": "HotSwap", "result": "succeeded"}),
    ):
        assert metric(after, name, **labels) == metric(metrics_before, name, **labels) + 1, name
    swaps = {"purpose": "rollout", "result": "swapped"}
    assert (
        metric(after, "overseer_pod_swaps_total", **swaps)
        == metric(metrics_before, "overseer_pod_swaps_total", **swaps) + 3
    )


def test_a_pod_refusing_the_model_rolls_the_swapped_pods_back(
    fleet: Fleet, models: dict[str, Model], jpeg: bytes, weights_http: WeightsServer, rollout_operator: Operator
) -> None:
    v2, v3 = models["v2"], models["v3"]
    converge(fleet, v2)
    before, events_before, metrics_before = fleet.identities(), len(fleet.events()), rollout_operator.metrics()
    # A flaky mirror: the first pod gets v3's bytes and swaps; the next one other bytes, which do
    # not match the digest spec.model pins.
    uri = weights_http.serve("/v3-flaky.pt", Route(v3.path.read_bytes(), good_downloads=1,
                                                   other=models["v4"].path.read_bytes()))  # fmt: skip
    with Load(fleet.ips(), jpeg) as load:
        fleet.apply(fleet.body(v3, uri=uri))
        status = fleet.wait(
            lambda s: fleet.condition("Ready", s).get("reason") == "RolledBack", "the rollout to be rolled back"
        )
    assert load.failures() == []
    # The load ran (the old model answered it) and saw nothing but the two models.
    assert v2.version in load.versions() and load.versions() <= {v2.version, v3.version}
    assert set(fleet.served().values()) == {v2.version}
    assert fleet.identities() == before

    degraded = fleet.condition("Degraded", status)
    assert (degraded["status"], degraded["reason"]) == ("True", "DigestMismatch")
    assert re.fullmatch(
        rf"pod \S+ refused {label(v3)}: digest_mismatch: .+; rolled back to {label(v2)}", degraded["message"]
    )
    assert (status["model"]["version"], status["lastRollout"]["result"]) == (v2.version, "RolledBack")
    assert [r["version"] for r in status["replicas"]] == [v2.version] * 3

    events = since(fleet, events_before)
    reasons = [(kind, r) for kind, r, _ in events]
    assert reasons.index(("Warning", "SwapRefused")) < reasons.index(("Warning", "RollingBack"))
    assert reasons[-1] == ("Warning", "RolledBack")
    swapped = [m for _, r, m in events if r == "PodSwapped"]
    # The first pod took v3, then went back to v2: the rollback swapped it.
    assert [m.rsplit(" ", 1)[-1] for m in swapped] == [label(v3), label(v2)]

    after = rollout_operator.metrics()
    assert metric(after, "overseer_rollbacks_total") == metric(metrics_before, "overseer_rollbacks_total") + 1
    done = {"strategy": "HotSwap", "result": "rolled_back"}
    assert (
        metric(after, "overseer_rollouts_total", **done)
        == metric(metrics_before, "overseer_rollouts_total", **done) + 1
    )


def test_weights_that_fail_to_load_are_refused_and_nothing_changes(
    fleet: Fleet, models: dict[str, Model], jpeg: bytes
) -> None:
    v2 = models["v2"]
    converge(fleet, v2)
    before = fleet.identities()
    with Load(fleet.ips(), jpeg) as load:
        fleet.apply(fleet.body(models["corrupt"]))  # the right digest of bytes that are no checkpoint
        status = fleet.wait(
            lambda s: fleet.condition("Ready", s).get("reason") == "RolledBack", "the rollout to be rolled back"
        )
    assert load.failures() == [] and load.versions() == {v2.version}
    assert set(fleet.served().values()) == {v2.version} and fleet.identities() == before
    degraded = fleet.condition("Degraded", status)
    assert (degraded["status"], degraded["reason"]) == ("True", "LoadFailed")
    assert f"refused {label(models['corrupt'])}: load_failed: " in degraded["message"]


def test_a_failed_rollout_is_retried_when_the_retry_annotation_changes(
    fleet: Fleet, models: dict[str, Model], weights_http: WeightsServer
) -> None:
    v2, v4 = models["v2"], models["v4"]
    converge(fleet, v2)
    route = Route(v4.path.read_bytes(), status=503)  # the weights server is down
    uri = weights_http.serve("/v4.pt", route)
    fleet.apply(fleet.body(v4, uri=uri))
    status = fleet.wait(lambda s: fleet.condition("Degraded", s).get("reason") == "FetchFailed", "FetchFailed")
    assert fleet.condition("Ready", status)["reason"] == "RolledBack"
    route.status = 200  # it is back; a refused model is not retried by itself ...
    events_before = len(fleet.events())
    fleet.kubectl.run("annotate", "modeldeployment", fleet.name, "rollout.overseer.dev/retry=1", "--overwrite")
    status = fleet.wait_serving(v4)  # ... until the retry token changes
    assert fleet.condition("Degraded", status)["status"] == "False"
    reasons = [r for _, r, _ in since(fleet, events_before)]
    assert reasons[0] == "RolloutRetried" and reasons[-1] == "RolloutSucceeded"


def run_documented_rollback(fleet: Fleet, index: int) -> None:
    """The manual rollback one-liner of docs/rollout.md, as written there (the deployment's name
    and the history index put in)."""
    doc = (REPO_ROOT / "docs" / "rollout.md").read_text(encoding="utf-8")
    section = doc.split("## Rolling back by hand", 1)[1]
    command = section.split("```bash\n", 1)[1].split("```", 1)[0]
    assert "mdep/cats" in command and ".status.history[1]" in command
    command = command.replace("mdep/cats", f"mdep/{fleet.name}").replace(
        ".status.history[1]", f".status.history[{index}]"
    )
    kubectl = fleet.kubectl
    wrapper = f'kubectl() {{ "{kubectl.binary}" --kubeconfig="{kubectl.kubeconfig}" -n "{kubectl.namespace}" "$@"; }}\n'
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", wrapper + command], capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_with_auto_rollback_off_a_refusal_holds_and_the_documented_one_liner_rolls_back(
    fleet: Fleet, models: dict[str, Model], jpeg: bytes, weights_http: WeightsServer
) -> None:
    v4, v5 = models["v4"], models["v5"]
    converge(fleet, v4, autoRollback=False)
    uri = weights_http.serve("/v5-flaky.pt", Route(v5.path.read_bytes(), good_downloads=1,
                                                   other=models["v6"].path.read_bytes()))  # fmt: skip
    with Load(fleet.ips(), jpeg) as load:
        fleet.apply(fleet.body(v5, uri=uri, autoRollback=False))
        status = fleet.wait(lambda s: fleet.condition("Ready", s).get("reason") == "RolloutHalted", "RolloutHalted")
        assert sorted(fleet.served().values()) == [v4.version, v4.version, v5.version]  # held as it stopped
        degraded = fleet.condition("Degraded", status)
        assert degraded["reason"] == "DigestMismatch" and degraded["message"].endswith(
            "; holding (autoRollback is off)"
        )
        assert status["history"][0]["version"] == v4.version  # the last model every pod served
        run_documented_rollback(fleet, 0)
        fleet.wait_serving(v4)
    assert load.failures() == [] and v4.version in load.versions() <= {v4.version, v5.version}
    assert fleet.get()["spec"]["model"]["version"] == v4.version


def test_the_documented_one_liner_rolls_back_to_the_model_before_through_the_promotion_gate(
    fleet: Fleet, models: dict[str, Model]
) -> None:
    v2, v4 = models["v2"], models["v4"]
    converge(fleet, v2)
    fleet.apply(fleet.body(v4, promotion=True))  # f1 0.84 after 0.82: promoted
    status = fleet.wait_serving(v4)
    assert [h["version"] for h in status["history"][:2]] == [v4.version, v2.version]
    run_documented_rollback(fleet, 1)  # back to v2, whose f1 is lower: a rollback, not a promotion
    status = fleet.wait_serving(v2)
    spec = fleet.get()["spec"]
    entry = next(h for h in status["history"] if h["version"] == v2.version)
    assert {k: spec["model"][k] for k in entry if k in spec["model"]} == {
        k: entry[k] for k in entry if k in spec["model"]
    }
    assert spec["schemaRef"]["version"] == entry["schemaVersion"]


def test_the_operator_killed_after_the_first_pod_swapped_converges(
    fleet: Fleet, models: dict[str, Model], jpeg: bytes, weights_http: WeightsServer, rollout_operator: Operator
) -> None:
    v2, v6 = models["v2"], models["v6"]
    converge(fleet, v2)
    before = fleet.identities()
    uri = weights_http.serve("/v6-slow.pt", Route(v6.path.read_bytes(), delay_s=SLOW_S))
    with Load(fleet.ips(), jpeg) as load:
        fleet.apply(fleet.body(v6, uri=uri))
        wait_for(lambda: list(fleet.served().values()).count(v6.version) == 1, 120, "the first pod to serve v6")
        rollout_operator.kill()  # the next pod's swap is under way: its PUT outlives the operator
        served = list(fleet.served().values())
        rollout_operator.start()
        status = fleet.wait_serving(v6)
    assert served.count(v6.version) >= 1
    assert load.failures() == [] and load.versions() == {v2.version, v6.version}
    assert fleet.identities() == before
    assert status["lastRollout"]["result"] == "Succeeded"
    assert [h["version"] for h in status["history"][:2]] == [v6.version, v2.version]


def test_a_pod_deleted_mid_swap_comes_back_on_the_right_model(
    fleet: Fleet, models: dict[str, Model], weights_http: WeightsServer
) -> None:
    v2, v7 = models["v2"], models["v7"]
    converge(fleet, v2)
    before = fleet.identities()
    uri = weights_http.serve("/v7-slow.pt", Route(v7.path.read_bytes(), delay_s=SLOW_S))
    fleet.apply(fleet.body(v7, uri=uri))

    def swapping() -> str | None:
        return next((r["pod"] for r in fleet.status().get("replicas") or [] if r["state"] == "Loading"), None)

    victim = wait_for(swapping, 60, "a pod to be swapping")
    fleet.kubectl.run("delete", "pod", victim, "--wait=false")
    fleet.wait_serving(v7, timeout=READY_TIMEOUT)
    after = fleet.identities()
    assert victim not in after and len(after) == 3
    assert {k: v for k, v in before.items() if k != victim}.items() <= after.items()  # the others: in place
    assert set(fleet.served().values()) == {v7.version}  # the new pod started from the ConfigMap


def test_a_change_applied_mid_rollout_supersedes_it(
    fleet: Fleet, models: dict[str, Model], jpeg: bytes, weights_http: WeightsServer
) -> None:
    v2, v8, v1 = models["v2"], models["v8"], models["v1"]
    converge(fleet, v2)
    before, events_before = fleet.identities(), len(fleet.events())
    uri = weights_http.serve("/v8-slow.pt", Route(v8.path.read_bytes(), delay_s=SLOW_S))
    with Load(fleet.ips(), jpeg) as load:
        fleet.apply(fleet.body(v8, uri=uri))
        wait_for(lambda: any(r["state"] == "Loading" for r in fleet.status().get("replicas") or []), 60,
                 "the rollout of v8 to be under way")  # fmt: skip
        fleet.apply(fleet.body(v1))
        fleet.wait_serving(v1)
    # No pod ever served a model that is neither the last fully served one nor one the spec asked for.
    assert load.failures() == [] and v2.version in load.versions() <= {v2.version, v8.version, v1.version}
    assert set(fleet.served().values()) == {v1.version}
    assert fleet.identities() == before
    events = since(fleet, events_before)
    superseded = [m for _, r, m in events if r == "RolloutSuperseded"]
    assert superseded == [f"{label(v1)} supersedes {label(v8)}, which is not on every pod yet"]


def test_drift_is_repaired_without_a_spec_change(fleet: Fleet, models: dict[str, Model], jpeg: bytes) -> None:
    v1, v2 = models["v1"], models["v2"]
    converge(fleet, v1)
    events_before = len(fleet.events())
    ip = fleet.ips()[0]
    document = {"model": v2.spec(), "schema": {"name": "object-detector", "version": 2}}
    schema = next(v for v in fleet.kubectl.json("get", "modelschema", "object-detector")["spec"]["versions"]
                  if v["version"] == 2)  # fmt: skip
    document["schema"].update({k: schema.get(k, {}) for k in ("labels", "metadata", "customObjects")})
    with Load(fleet.ips(), jpeg) as load:
        answer = httpx.put(f"http://{ip}:{PORT}/admin/model", json=document,
                           headers={"Authorization": f"Bearer {fleet.token()}"}, timeout=120)  # fmt: skip
        assert answer.status_code == 200 and answer.json()["changed"], answer.text
        # Nobody touches the ModelDeployment: the operator's periodic check finds the pod and puts v1 back.
        wait_for(lambda: fleet.served()[ip] == v1.version, 60, "the drifted pod to serve v1 again")
    assert load.failures() == []
    events = since(fleet, events_before)
    drift = [m for kind, r, m in events if (kind, r) == ("Warning", "DriftDetected")]
    assert len(drift) == 1 and f"serves {label(v2)}: putting {label(v1)} back" in drift[0], events
    fleet.wait_serving(v1)
