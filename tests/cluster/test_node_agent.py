"""The node agent behaves like kubelet where users would notice: probes, exit codes, deletion, Pending."""

from __future__ import annotations

import time

from support.cluster import Kubectl, processes_bound_to
from support.polling import wait_for

NEVER_ANSWERS = """
apiVersion: v1
kind: Pod
metadata: {name: mute}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: python:3.11
    command: ["python3", "-c", "import time; time.sleep(600)", "$(POD_IP)"]
    env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
    livenessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1, failureThreshold: 2}
"""

# Ready only once SIGTERM is ignored: under load, Python's start-up can outlast the delete otherwise.
IGNORES_SIGTERM = """
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 120
  containers:
  - name: main
    image: python:3.11
    command: ["python3", "-c", "import signal, sys, http.server as h; signal.signal(signal.SIGTERM, signal.SIG_IGN);
               h.HTTPServer((sys.argv[1], 8080), h.SimpleHTTPRequestHandler).serve_forever()", "$(POD_IP)"]
    env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
"""


def test_a_container_that_never_answers_its_liveness_probe_is_restarted(kubectl: Kubectl) -> None:
    kubectl.apply(NEVER_ANSWERS)

    def restarted() -> dict | None:
        status = kubectl.json("get", "pod", "mute")["status"].get("containerStatuses", [{}])[0]
        return status if status.get("restartCount", 0) >= 1 else None

    status = wait_for(restarted, 60, "a liveness restart")
    terminated = status["lastState"]["terminated"]
    # Killed by SIGTERM: 128 + 15, reason Error - never "Completed" with exit 0.
    assert (terminated["exitCode"], terminated["reason"]) == (143, "Error")


def test_a_force_delete_ends_a_grace_period_under_way(kubectl: Kubectl) -> None:
    kubectl.apply(IGNORES_SIGTERM)
    kubectl.run("wait", "--for=condition=Ready", "pod/stubborn", "--timeout=60s")
    ip = kubectl.json("get", "pod", "stubborn")["status"]["podIP"]
    kubectl.run("delete", "pod", "stubborn", "--wait=false")  # 120 s grace; SIGTERM is ignored
    wait_for(lambda: kubectl.json("get", "pod", "stubborn")["metadata"].get("deletionTimestamp"), 10,
             "the graceful deletion to start")
    assert processes_bound_to(ip), "the process should still be in its grace period"
    started = time.monotonic()
    kubectl.run("delete", "pod", "stubborn", "--grace-period=0", "--force", "--wait=false")
    wait_for(lambda: kubectl.run("get", "pod", "stubborn", check=False).returncode != 0, 30, "the pod to go")
    wait_for(lambda: not processes_bound_to(ip), 10, "the process to be killed")
    assert time.monotonic() - started < 30


def test_a_pod_that_cannot_start_is_pending_with_the_reason(kubectl: Kubectl) -> None:
    kubectl.apply("""
apiVersion: v1
kind: Pod
metadata: {name: unconfigured}
spec:
  containers:
  - name: main
    image: python:3.11
    command: ["python3", "-c", "print('never runs')"]
    env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: missing, key: token}}}]
""")

    def waiting() -> dict | None:
        status = kubectl.json("get", "pod", "unconfigured")["status"]
        container = status.get("containerStatuses", [{}])[0]
        reason = container.get("state", {}).get("waiting", {}).get("reason")
        return status if reason == "CreateContainerConfigError" else None

    status = wait_for(waiting, 30, "CreateContainerConfigError")
    assert status["phase"] == "Pending"
    assert "secret 'missing' key 'token' not found" in status["containerStatuses"][0]["state"]["waiting"]["message"]
