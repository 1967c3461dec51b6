"""`rollout.strategy: Rolling` end to end: a model change goes through a Kubernetes rolling update
(new pods, started from the ConfigMap), with the same status and record as a hot swap; a model the
new pods cannot start with rolls the template back, and the old pods never stop serving."""

from __future__ import annotations

import json

import pytest
from rollout_support import READY_TIMEOUT, Fleet, Model, StatusRecorder
from support.cluster import Kubectl

REPLICAS = 2


@pytest.fixture(scope="module")
def fleet(module_kubectl: Kubectl, models: dict[str, Model]) -> Fleet:
    fleet = Fleet(module_kubectl, "dog-recognition")
    fleet.apply(fleet.body(models["v1"], replicas=REPLICAS, strategy="Rolling"))
    fleet.wait_serving(models["v1"], replicas=REPLICAS, timeout=READY_TIMEOUT)
    return fleet


def template_model(fleet: Fleet) -> dict[str, str]:
    template = fleet.kubectl.json("get", "deployment", fleet.name)["spec"]["template"]
    return dict(json.loads(template["metadata"]["annotations"]["overseer.dev/model"]))


def test_a_model_change_replaces_the_pods(fleet: Fleet, models: dict[str, Model]) -> None:
    v1, v2 = models["v1"], models["v2"]
    before = fleet.identities()
    assert template_model(fleet)["digest"] == v1.digest
    with StatusRecorder(fleet.kubectl, fleet.name) as recorder:
        fleet.apply(fleet.body(v2, replicas=REPLICAS, strategy="Rolling"))
        status = fleet.wait_serving(v2, replicas=REPLICAS, timeout=READY_TIMEOUT)
    after = fleet.identities()
    assert not set(before) & set(after)  # every pod replaced
    assert all(restarts == 0 for _, restarts in after.values())
    assert set(fleet.served().values()) == {v2.version}
    assert template_model(fleet)["digest"] == v2.digest
    progress = [(r, m) for s, r, m in recorder.messages("Progressing") if s == "True"]
    assert any(r == "RollingUpdate" and m.startswith(f"0/{REPLICAS} pods on {v2.version}") for r, m in progress)
    last = status["lastRollout"]
    assert (last["strategy"], last["fromVersion"], last["toVersion"], last["result"]) == (
        "Rolling", v1.version, v2.version, "Succeeded",
    )  # fmt: skip
    reasons = [r for _, r, _ in fleet.events()]
    assert "PodSwapped" not in reasons  # no PUT: the pods were replaced


def test_a_model_the_new_pods_cannot_load_rolls_the_template_back(fleet: Fleet, models: dict[str, Model]) -> None:
    v2, corrupt = models["v2"], models["corrupt"]
    fleet.apply(fleet.body(v2, replicas=REPLICAS, strategy="Rolling"))
    fleet.wait_serving(v2, replicas=REPLICAS)
    before = fleet.identities()
    fleet.apply(fleet.body(corrupt, replicas=REPLICAS, strategy="Rolling"))
    status = fleet.wait(
        lambda s: fleet.condition("Ready", s).get("reason") == "RolledBack",
        "the rollout to be rolled back",
        READY_TIMEOUT,
    )
    degraded = fleet.condition("Degraded", status)
    assert (degraded["status"], degraded["reason"]) == ("True", "CrashLoop")
    assert (
        "overseer serve: error:" in degraded["message"]
        and f"rolled back to cat_recognition:{v2.version}" in (degraded["message"])
    )
    assert template_model(fleet)["digest"] == v2.digest  # the Deployment went back to the old pods' template
    fleet.wait(lambda s: len(fleet.identities()) == REPLICAS, "the crash-looping pod to be removed")
    assert fleet.identities() == before  # the old pods served throughout, never restarted
    assert set(fleet.served().values()) == {v2.version}


def test_a_serving_change_replaces_the_pods_and_carries_a_new_model_with_it(
    fleet: Fleet, models: dict[str, Model]
) -> None:
    v2, v3 = models["v2"], models["v3"]
    fleet.apply(fleet.body(v2, replicas=REPLICAS, strategy="Rolling"))
    fleet.wait_serving(v2, replicas=REPLICAS)
    before = fleet.identities()
    body = fleet.body(v3, replicas=REPLICAS, strategy="HotSwap")  # the template loses its model, too
    body["spec"]["serving"]["env"] = [{"name": "TEAM", "value": "vision"}]
    fleet.apply(body)
    status = fleet.wait_serving(v3, replicas=REPLICAS, timeout=READY_TIMEOUT)  # Ready: the Deployment rolled out
    after = fleet.identities()
    assert not set(before) & set(after) and len(after) == REPLICAS
    assert set(fleet.served().values()) == {v3.version}
    template = fleet.kubectl.json("get", "deployment", fleet.name)["spec"]["template"]
    assert {"name": "TEAM", "value": "vision"} in template["spec"]["containers"][0]["env"]
    assert "overseer.dev/model" not in (template["metadata"].get("annotations") or {})
    assert status["lastRollout"]["strategy"] == "HotSwap"
