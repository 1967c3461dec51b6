"""Serving pods on the real local cluster: started from a mounted ConfigMap and Secret, swapped in
place through each pod's IP under load, never restarted, every answer right about the picture, and
the same on every replica. This is the path the operator drives."""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from overseer_devtools.shapes import Scene
from serving_harness import OVERSEER, TOKEN, ModelFile, assert_sees
from support.cluster import Kubectl
from support.polling import wait_for

PORT = 3000
DEPLOYMENT = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: cat-recognition}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: cat-recognition}}}}
  template:
    metadata: {{labels: {{app: cat-recognition}}}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: serving
        image: schema-overseer-serving
        command: ["{OVERSEER}", "serve"]
        args: ["--host", "$(POD_IP)", "--port", "{PORT}",
               "--model-file", "/etc/overseer/model/model.json", "--token-file", "/etc/overseer/admin/token"]
        env:
        - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
        - {{name: OVERSEER_CACHE_DIR, value: /var/cache/overseer}}
        terminationMessagePolicy: FallbackToLogsOnError
        readinessProbe: {{httpGet: {{path: /readyz, port: {PORT}}}, periodSeconds: 1}}
        volumeMounts:
        - {{name: model, mountPath: /etc/overseer/model}}
        - {{name: admin, mountPath: /etc/overseer/admin}}
        - {{name: cache, mountPath: /var/cache/overseer}}
      volumes:
      - {{name: model, configMap: {{name: cat-recognition-model}}}}
      - {{name: admin, secret: {{secretName: cat-recognition-admin}}}}
      - {{name: cache, emptyDir: {{}}}}
"""


def ready_pods(kubectl: Kubectl) -> list[dict] | None:
    pods = [
        p for p in kubectl.json("get", "pods", "-l", "app=cat-recognition")["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]
    return pods if len(pods) == 2 else None


def served_model(ip: str) -> dict:
    answer = httpx.get(f"http://{ip}:{PORT}/admin/model", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    answer.raise_for_status()
    return dict(answer.json()["model"])


def detections_of(ip: str, image_bytes: bytes) -> list[dict[str, Any]]:
    answer = httpx.post(f"http://{ip}:{PORT}/detect", files={"image": ("x.png", image_bytes, "image/png")}, timeout=60)
    assert answer.status_code == 200, answer.text
    detections: list[dict[str, Any]] = answer.json()["detections"]
    return detections


def same_right_answer(ips: list[str], image_bytes: bytes, scene: Scene) -> list[dict[str, Any]]:
    """Every replica gives the same answer, and it sees what was drawn; returns it."""
    answers = [detections_of(ip, image_bytes) for ip in ips]
    assert all(a == answers[0] for a in answers), answers
    assert_sees(answers[0], scene)
    return answers[0]


def put_model(ip: str, document: dict) -> httpx.Response:
    return httpx.put(f"http://{ip}:{PORT}/admin/model", json=document,
                     headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)


class Load:
    """8 clients, 4 per pod (a client keeps its pod, so "changes once" is per pod, as a user sees
    it), each posting the picture in a loop: what each one saw, and every answer by model version."""

    def __init__(self, ips: list[str], image_bytes: bytes, clients: int = 8) -> None:
        self.ips, self.image_bytes, self.clients = ips, image_bytes, clients
        self.seen: list[list[tuple[int, str]]] = [[] for _ in range(clients)]
        self.answered: dict[str, list[Any]] = collections.defaultdict(list)  # detections, by model version
        self.stop = threading.Event()

    def client(self, i: int) -> None:
        with httpx.Client(base_url=f"http://{self.ips[i % len(self.ips)]}:{PORT}", timeout=60) as c:
            deadline = time.monotonic() + 240
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    r = c.post("/detect", files={"image": ("x.png", self.image_bytes, "image/png")})
                    if r.status_code == 200:
                        self.seen[i].append((200, r.json()["model"]["version"]))
                        self.answered[r.json()["model"]["version"]].append(r.json()["detections"])
                    else:
                        self.seen[i].append((r.status_code, r.text))
                except httpx.HTTPError as error:
                    self.seen[i].append((0, repr(error)))

    def every_client_has(self, version: str) -> bool:
        return all(any(v == version for _, v in s) for s in self.seen)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with ThreadPoolExecutor(self.clients) as pool:
            futures = [pool.submit(self.client, i) for i in range(self.clients)]
            try:
                yield
            finally:
                self.stop.set()
                for f in futures:
                    f.result()


def test_pods_swap_in_place_under_load_without_restart(
    kubectl: Kubectl, models: dict[str, ModelFile], scene: Scene, image_bytes: bytes
) -> None:
    old, new = models["a"], models["b"]
    model_json = json.dumps(old.document())
    kubectl.run("create", "configmap", "cat-recognition-model", f"--from-literal=model.json={model_json}")
    kubectl.run("create", "secret", "generic", "cat-recognition-admin", f"--from-literal=token={TOKEN}")
    kubectl.apply(DEPLOYMENT)
    pods = wait_for(lambda: ready_pods(kubectl), 240, "2 ready serving pods")
    ips = [p["status"]["podIP"] for p in pods]
    uids = {p["metadata"]["uid"] for p in pods}
    for ip in ips:
        assert served_model(ip) == {"name": old.name, "version": old.version, "digest": old.digest}
    expected = {old.version: same_right_answer(ips, image_bytes, scene)}

    load = Load(ips, image_bytes)
    with load.running():
        wait_for(lambda: load.every_client_has(old.version), 120, "every client served by the old model")
        for ip in ips:  # one pod at a time, as the rollout's maxUnavailable: 1 would
            answer = put_model(ip, new.document())
            assert answer.status_code == 200, answer.text
            assert answer.json()["changed"] is True
        wait_for(lambda: load.every_client_has(new.version), 120, "every client served by the new model")
    seen, answered = load.seen, load.answered

    assert [e for s in seen for e in s if e[0] != 200] == []
    for i, s in enumerate(seen):
        versions = [v for _, v in s]
        changes = sum(1 for a, b in itertools.pairwise(versions) if a != b)
        assert (versions[0], versions[-1], changes) == (old.version, new.version, 1), f"client {i}"

    # In place: the same pods, never restarted, now serving the new model.
    after = kubectl.json("get", "pods", "-l", "app=cat-recognition")["items"]
    assert {p["metadata"]["uid"] for p in after} == uids
    assert [p["status"]["containerStatuses"][0]["restartCount"] for p in after] == [0, 0]
    for ip in ips:
        assert served_model(ip)["version"] == new.version
    expected[new.version] = same_right_answer(ips, image_bytes, scene)
    assert expected[new.version] != expected[old.version]  # the new model's own answer
    # Under load, on both pods, before and after the swap: every answer was the right one.
    assert set(answered) == {old.version, new.version}
    for version, answers in answered.items():
        assert all(a == expected[version] for a in answers), version

    # A bad swap (weights that do not match the pinned digest) is refused; the pod keeps serving.
    bad = new.document()
    bad["model"]["digest"] = "sha256:" + "0" * 64
    bad["model"]["version"] = "20240303"
    answer = put_model(ips[0], bad)
    assert answer.status_code == 422, answer.text
    assert "digest" in answer.text
    assert served_model(ips[0])["version"] == new.version
    assert ready_pods(kubectl) is not None


def test_a_pod_with_an_invalid_config_never_becomes_ready_and_says_why(
    kubectl: Kubectl, models: dict[str, ModelFile]
) -> None:
    document = models["a"].document()
    document["model"]["customObjects"] = {"confidence": 0.3}  # conf renamed: the serving code cannot honour it
    kubectl.run("create", "configmap", "cat-recognition-model", f"--from-literal=model.json={json.dumps(document)}")
    kubectl.run("create", "secret", "generic", "cat-recognition-admin", f"--from-literal=token={TOKEN}")
    kubectl.apply(DEPLOYMENT.replace("replicas: 2", "replicas: 1"))

    def crashed() -> dict | None:
        pods = kubectl.json("get", "pods", "-l", "app=cat-recognition")["items"]
        statuses = [p["status"].get("containerStatuses", [{}])[0] for p in pods]
        return next((s for s in statuses if s.get("lastState", {}).get("terminated")), None)

    status = wait_for(crashed, 120, "the serving container to exit")
    assert status["ready"] is False
    terminated = status["lastState"]["terminated"]
    assert terminated["exitCode"] == 1
    # The process's own one-line reason, as kubectl describe would show it (not the agent's log).
    assert terminated["message"].startswith("overseer serve:"), terminated["message"]
    assert "customObjects.conf: required property missing" in terminated["message"]
    assert "'confidence' is set instead" in terminated["message"]
