"""Reconciliation on the real local cluster with real serving pods: a ModelDeployment becomes a
ConfigMap, a Secret, a Deployment and a Service; its pods answer /detect; status, Events and
printer columns say what is served; hand-edits are reverted; deletion removes everything; an
invalid spec that bypassed the webhooks is Degraded and rolls nothing out; a killed operator
converges after a restart."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from localcluster.overseer_operator import remove_webhooks
from localcluster.stack import Stack
from operator_support import Operator, applied, condition, deployment_body, manifest, refused, schema_body
from PIL import Image
from support.cluster import Kubectl
from support.polling import wait_for

READY_TIMEOUT = 300  # two BentoML servers warming a YOLO network on a shared 2-core machine
OWNED = "configmaps,secrets,deployments,services"


@dataclass(frozen=True)
class Model:
    path: Path
    digest: str
    version: str

    def apply_to(self, body: dict[str, Any]) -> dict[str, Any]:
        body["spec"]["model"].update(uri=f"file://{self.path}", digest=self.digest, version=self.version)
        return body


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Model]:
    from overseer_devtools.toymodels import build_detector

    root = tmp_path_factory.mktemp("models")
    return {
        "a": Model(root / "a.pt", build_detector(root / "a.pt", seed=1, names=["cat", "dog"]), "20240103"),
        "b": Model(root / "b.pt", build_detector(root / "b.pt", seed=2, names=["cat", "dog"]), "20240202"),
    }


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(7).integers(0, 256, size=(240, 320, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def contract(operator: Operator, kubectl: Kubectl) -> Kubectl:
    applied(kubectl, schema_body())
    return kubectl


def mdep(kubectl: Kubectl, name: str = "cat-recognition") -> dict[str, Any]:
    body: dict[str, Any] = kubectl.json("get", "modeldeployment", name)
    return body


def owned(kubectl: Kubectl, name: str = "cat-recognition") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl.json("get", OWNED, "-l", f"overseer.dev/deployment={name}")["items"]
    return items


def pods(kubectl: Kubectl, name: str = "cat-recognition") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl.json("get", "pods", "-l", f"overseer.dev/deployment={name}")["items"]
    return items


def events(kubectl: Kubectl, name: str) -> list[tuple[str, str]]:
    items = kubectl.json("get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return [(e["type"], e["reason"]) for e in items]


def what_pods_load(configmap: dict[str, Any]) -> tuple[Any, ...]:
    """The model document pods start from and what the rollout record says it is rolling to; not
    the record's bookkeeping (restart baselines of pods it has seen, when it last progressed)."""
    data = configmap["data"]
    record = json.loads(data["rollout.json"])
    return json.loads(data["model.json"]), record["phase"], record["target"]["key"]


def token(kubectl: Kubectl, name: str = "cat-recognition") -> str:
    secret = kubectl.json("get", "secret", f"{name}-admin")
    return base64.b64decode(secret["data"]["token"]).decode()


def test_a_deployment_comes_up_serves_detect_and_deletion_removes_everything(
    operator: Operator, contract: Kubectl, models: dict[str, Model], jpeg: bytes
) -> None:
    body = models["a"].apply_to(deployment_body(schedulable=True))
    body["spec"]["replicas"] = 2
    applied(contract, body)
    # `kubectl wait` works on the Ready condition.
    contract.run("wait", "--for=condition=Ready", "modeldeployment/cat-recognition", f"--timeout={READY_TIMEOUT}s")
    uids = check_serving(contract, models["a"], jpeg)
    check_hand_edits_are_reverted(contract)
    check_a_model_change_is_swapped_in_place(contract, models, uids)

    # spec.replicas goes through the Deployment.
    contract.run("patch", "modeldeployment", "cat-recognition", "--type=merge", "-p", '{"spec":{"replicas":1}}')
    wait_for(lambda: contract.json("get", "deployment", "cat-recognition")["spec"]["replicas"] == 1, 30, "1 replica")

    # Deleting it removes everything it made, pods included.
    contract.run("delete", "modeldeployment", "cat-recognition", "--wait=false")
    wait_for(lambda: not owned(contract) and not pods(contract), 120, "owned objects and pods to be gone")
    wait_for(
        lambda: contract.json("get", "modelschema", "object-detector")["status"]["usedBy"] == [],
        30,
        "the schema's status to forget the deleted deployment",
    )


def check_serving(contract: Kubectl, model: Model, jpeg: bytes) -> set[str]:
    """Status, printer columns, Events, /detect on every pod, ownership; returns the pods' UIDs."""
    table = contract.run("get", "modeldeployment", "cat-recognition").stdout.splitlines()
    assert table[0].split() == ["NAME", "MODEL", "VERSION", "SERVING", "READY", "STATUS", "AGE"]
    assert table[1].split()[:6] == [
        "cat-recognition", "cat_recognition", "20240103", "20240103", "2", "AllPodsServing",
    ]  # fmt: skip
    stored = mdep(contract)
    status = stored["status"]
    assert status["observedGeneration"] == stored["metadata"]["generation"]
    assert status["model"] == {"name": "cat_recognition", "version": "20240103", "digest": model.digest}
    assert status["readyReplicas"] == 2
    assert status["url"] == f"http://cat-recognition.{contract.namespace}.svc:3000"
    assert condition(stored, "Ready")["message"] == "2/2 pods on 20240103"
    assert (condition(stored, "Degraded")["status"], condition(stored, "Progressing")["reason"]) == (
        "False",
        "RolloutComplete",
    )
    assert status["history"][0]["digest"] == model.digest
    assert status["history"][0]["customObjects"]["conf"] == 0.25  # kept whole: a rollback needs it
    assert sorted(r["state"] for r in status["replicas"]) == ["Serving", "Serving"]
    assert status["lastRollout"]["result"] == "Succeeded"
    assert ("Normal", "RolloutSucceeded") in events(contract, "cat-recognition")
    assert stored["metadata"].get("finalizers") is None  # deletion never waits for the operator

    # The pods serve /detect with the model; their admin API takes the token from the Secret.
    running = pods(contract)
    assert len(running) == 2
    for pod in running:
        ip = pod["status"]["podIP"]
        answer = httpx.post(f"http://{ip}:3000/detect", files={"image": ("x.jpg", jpeg, "image/jpeg")}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"]["version"] == "20240103"
        admin = httpx.get(f"http://{ip}:3000/admin/model", headers={"Authorization": f"Bearer {token(contract)}"})
        assert admin.json()["model"]["digest"] == model.digest

    # Everything it made is owned by it (garbage collection) and labelled.
    objects = owned(contract)
    assert sorted(o["kind"] for o in objects) == ["ConfigMap", "Deployment", "Secret", "Service"]
    for obj in objects:
        (ref,) = obj["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"]) == ("ModelDeployment", stored["metadata"]["uid"], True)

    # The schema's status says which deployments use which version.
    schema = contract.json("get", "modelschema", "object-detector")
    assert schema["status"]["usedBy"] == [{"version": 2, "deployments": ["cat-recognition"]}]
    assert schema["status"]["latestVersion"] == 2
    return {p["metadata"]["uid"] for p in running}


def check_hand_edits_are_reverted(contract: Kubectl) -> None:
    configmap = contract.json("get", "configmap", "cat-recognition-model")
    contract.run("patch", "configmap", "cat-recognition-model", "--type=merge", "-p", '{"data":{"model.json":"{}"}}')
    contract.run("patch", "deployment", "cat-recognition", "--type=merge", "-p", '{"spec":{"revisionHistoryLimit":1}}')
    contract.run("delete", "service", "cat-recognition")
    wait_for(
        lambda: (
            contract.json("get", "configmap", "cat-recognition-model")["data"] == configmap["data"]
            and contract.json("get", "deployment", "cat-recognition")["spec"]["revisionHistoryLimit"] == 5
            and contract.run("get", "service", "cat-recognition", check=False).returncode == 0
        ),
        30,
        "the hand-edits to be reverted",
    )


def check_a_model_change_is_swapped_in_place(
    contract: Kubectl, models: dict[str, Model], uids: set[str]
) -> None:
    # The promotion gate compares with what is served now (f1 0.87).
    weaker = models["b"].apply_to(deployment_body(schedulable=True))
    weaker["spec"]["replicas"] = 2
    weaker["spec"]["model"]["metadata"]["f1"] = 0.85
    assert "0.85 is below 0.87, the f1 of the model served now (cat_recognition 20240103)" in refused(contract, weaker)

    # A new model is swapped into the running pods: the pod template does not change, no pod
    # restarts, and the status says what each pod serves.
    better = models["b"].apply_to(deployment_body(schedulable=True))
    better["spec"]["replicas"] = 2
    better["spec"]["model"]["metadata"]["f1"] = 0.9
    template = contract.json("get", "deployment", "cat-recognition")["spec"]["template"]
    applied(contract, better)

    def swapped() -> dict[str, Any] | None:
        stored = mdep(contract)
        ready = condition(stored, "Ready")
        on_b = (stored.get("status") or {}).get("model", {}).get("version") == "20240202"
        return stored if on_b and ready.get("status") == "True" else None

    stored = wait_for(swapped, 120, "every pod to serve 20240202")
    assert [r["version"] for r in stored["status"]["replicas"]] == ["20240202", "20240202"]
    assert [h["version"] for h in stored["status"]["history"][:2]] == ["20240202", "20240103"]
    assert models["b"].digest in contract.json("get", "configmap", "cat-recognition-model")["data"]["model.json"]
    assert contract.json("get", "deployment", "cat-recognition")["spec"]["template"] == template
    running = pods(contract)
    assert {p["metadata"]["uid"] for p in running} == uids
    assert all(p["status"]["containerStatuses"][0]["restartCount"] == 0 for p in running)
    seen = events(contract, "cat-recognition")
    assert seen.count(("Normal", "PodSwapped")) == 2
    assert ("Normal", "RolloutStarted") in seen


def test_a_crashing_pod_degrades_the_deployment_with_the_pods_own_reason(
    operator: Operator, contract: Kubectl, models: dict[str, Model]
) -> None:
    body = models["a"].apply_to(deployment_body(schedulable=True))
    body["spec"]["model"]["digest"] = models["b"].digest  # the file on disk is a's: the pod refuses it
    applied(contract, body)

    # The first rollout of a model its pods cannot start with: the pod's own last words, and
    # nothing to roll back to, so the rollout holds.
    def degraded() -> dict[str, Any] | None:
        found = condition(mdep(contract), "Degraded")
        return found if found.get("reason") == "CrashLoop" else None

    found = wait_for(degraded, 120, "Degraded/CrashLoop")
    assert "overseer serve: error:" in found["message"]
    assert "digest" in found["message"]
    assert "holding (no earlier model to roll back to)" in found["message"]
    assert condition(mdep(contract), "Ready")["reason"] == "RolloutHalted"
    seen = events(contract, "cat-recognition")
    assert ("Warning", "SwapRefused") in seen and ("Warning", "RolloutHalted") in seen


def test_with_the_webhooks_removed_an_invalid_change_is_degraded_and_nothing_rolls_out(
    operator: Operator, contract: Kubectl, local_cluster: Stack
) -> None:
    applied(contract, deployment_body())
    wait_for(lambda: len(owned(contract)) == 4, 60, "the owned objects")
    before = {o["kind"]: o for o in owned(contract)}
    remove_webhooks(local_cluster.dir)
    try:
        body = deployment_body()
        custom = body["spec"]["model"]["customObjects"]
        custom["confidence"] = custom.pop("conf")
        body["spec"]["replicas"] = 3
        contract.apply(manifest(body))  # nothing stops it at the door now

        def degraded() -> dict[str, Any] | None:
            found = condition(mdep(contract), "Degraded")
            return found if found.get("reason") == "InvalidConfig" else None

        found = wait_for(degraded, 60, "Degraded/InvalidConfig")
        assert "spec.model.customObjects.conf: required property missing" in found["message"]
        assert "'confidence' is set instead" in found["message"]
        assert condition(mdep(contract), "Ready")["status"] == "False"
        assert ("Warning", "InvalidConfig") in events(contract, "cat-recognition")
        after = {o["kind"]: o for o in owned(contract)}
        assert what_pods_load(after["ConfigMap"]) == what_pods_load(before["ConfigMap"])
        assert after["Deployment"]["spec"] == before["Deployment"]["spec"]  # not even the replicas
    finally:
        operator.stop()
        operator.start()  # registers the webhooks again


def test_the_operator_killed_mid_reconcile_converges_to_the_same_objects(operator: Operator, contract: Kubectl) -> None:
    applied(contract, deployment_body())
    wait_for(lambda: len(owned(contract)) == 4, 60, "the owned objects")
    wait_for(lambda: mdep(contract).get("status", {}).get("observedGeneration") == 1, 30, "a status")
    reference = {o["kind"]: o for o in owned(contract)}
    secret = token(contract)

    # Killed while reconciling a second one: whatever it had done is where it stopped.
    applied(contract, deployment_body("dog-recognition"))
    wait_for(lambda: owned(contract, "dog-recognition"), 30, "the operator to start on dog-recognition")
    operator.kill()
    # What a crash half-way through a reconcile leaves behind, and what users did meanwhile.
    contract.run("delete", "deployment,service", "cat-recognition")
    contract.run("patch", "configmap", "cat-recognition-model", "--type=merge", "-p", '{"data":{"model.json":"{}"}}')

    operator.start()

    def converged() -> bool:
        now = {o["kind"]: o for o in owned(contract)}
        return (
            set(now) == set(reference)
            and what_pods_load(now["ConfigMap"]) == what_pods_load(reference["ConfigMap"])
            and now["Deployment"]["spec"]["template"] == reference["Deployment"]["spec"]["template"]
            and now["Service"]["spec"]["ports"] == reference["Service"]["spec"]["ports"]
            and len(owned(contract, "dog-recognition")) == 4
        )

    wait_for(converged, 60, "the same objects as before the crash")
    assert token(contract) == secret  # created once, never replaced
    for name in ("cat-recognition", "dog-recognition"):
        stored = mdep(contract, name)
        assert stored["status"]["observedGeneration"] == stored["metadata"]["generation"]
    assert json.loads(reference["ConfigMap"]["data"]["model.json"])["model"]["name"] == "cat_recognition"
