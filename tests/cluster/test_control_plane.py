"""The local control plane is a real Kubernetes: apiserver validation, controllers, a node that runs pods."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from localcluster import procs
from localcluster.stack import Stack, start_stack, stop_stack
from support.cluster import REPO_ROOT, Kubectl, processes_bound_to
from support.polling import wait_for

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: python:3.11
        command: ["python3", "-m", "http.server", "8080", "--bind", "$(POD_IP)"]
        env:
        - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
        - {{name: REVISION, value: "{revision}"}}
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
"""


def answers(ip: str, port: int = 8080) -> bool:
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def ready_pods(kubectl: Kubectl, selector: str = "app=web") -> list[dict]:
    pods = kubectl.json("get", "pods", "-l", selector)["items"]
    return [
        p for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]


def wait_ready_pods(kubectl: Kubectl, count: int, timeout: float = 30) -> list[dict]:
    def exactly() -> list[dict] | None:
        pods = ready_pods(kubectl)
        return pods if len(pods) == count else None

    return wait_for(exactly, timeout, f"{count} ready pods")


def wait_pods(kubectl: Kubectl, count: int, timeout: float = 30) -> list[dict]:
    """Wait until exactly `count` pods exist (terminating ones included)."""

    def exactly() -> list[dict] | None:
        pods = kubectl.json("get", "pods", "-l", "app=web")["items"]
        return pods if len(pods) == count else None

    return wait_for(exactly, timeout, f"exactly {count} pods")


def test_node_is_ready_and_version_matches_the_build(kubectl_admin: Kubectl) -> None:
    node = kubectl_admin.json("get", "node", "local-0")
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"
    version = json.loads(kubectl_admin.run("version", "-o", "json").stdout)["serverVersion"]
    assert version["gitVersion"] == "v1.36.3"


def test_project_crds_are_accepted_and_their_schema_is_enforced(kubectl_admin: Kubectl, kubectl: Kubectl) -> None:
    kubectl_admin.run("apply", "-f", str(REPO_ROOT / "crds"))
    for crd in ("modelschemas.overseer.dev", "modeldeployments.overseer.dev"):
        kubectl_admin.run("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")
    bad = """
apiVersion: overseer.dev/v1alpha1
kind: ModelDeployment
metadata: {name: bad}
spec:
  schemaRef: {name: object-detector, version: 1}
  replicas: "two"
  model: {name: m, version: "1", uri: "file:///m.pt", digest: "sha256:0000"}
"""
    result = kubectl.run("apply", "-f", "-", stdin=bad, check=False)
    assert result.returncode != 0
    # The API server's own structural-schema message, naming the field.
    assert 'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer' in result.stderr
    assert kubectl.run("get", "modeldeployment", "bad", check=False).returncode != 0


def test_deployment_reaches_two_ready_replicas_answering_on_pod_ips(kubectl: Kubectl) -> None:
    kubectl.apply(WEB.format(replicas=2, revision="1"))
    kubectl.run("rollout", "status", "deployment/web", "--timeout=60s")
    pods = wait_ready_pods(kubectl, 2)
    ips = {p["status"]["podIP"] for p in pods}
    assert len(ips) == 2 and all(ip.startswith("127.") for ip in ips)
    assert all(answers(ip) for ip in ips)
    deployment = kubectl.json("get", "deployment", "web")
    assert deployment["status"]["readyReplicas"] == 2


def test_scaling_to_one_stops_a_process(kubectl: Kubectl) -> None:
    kubectl.apply(WEB.format(replicas=2, revision="1"))
    kubectl.run("rollout", "status", "deployment/web", "--timeout=60s")
    before = {p["status"]["podIP"] for p in wait_ready_pods(kubectl, 2)}
    kubectl.run("scale", "deployment/web", "--replicas=1")
    remaining = wait_pods(kubectl, 1)
    stopped_ip = (before - {remaining[0]["status"]["podIP"]}).pop()
    wait_for(lambda: not processes_bound_to(stopped_ip), 10, f"process on {stopped_ip} to exit")
    assert not answers(stopped_ip)
    assert answers(remaining[0]["status"]["podIP"])


def test_rolling_update_replaces_pods(kubectl: Kubectl) -> None:
    kubectl.apply(WEB.format(replicas=2, revision="1"))
    kubectl.run("rollout", "status", "deployment/web", "--timeout=60s")
    old = {p["metadata"]["name"]: p["status"]["podIP"] for p in wait_ready_pods(kubectl, 2)}
    kubectl.apply(WEB.format(replicas=2, revision="2"))
    kubectl.run("rollout", "status", "deployment/web", "--timeout=90s")
    new = wait_pods(kubectl, 2, timeout=60)  # old ones gone: terminating pods still count
    assert not set(old) & {p["metadata"]["name"] for p in new}
    for pod in new:
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["REVISION"] == "2"
        assert answers(pod["status"]["podIP"])
    for ip in old.values():
        wait_for(lambda ip=ip: not processes_bound_to(ip), 10, f"old process on {ip} to exit")


def test_deleting_the_namespace_removes_everything(kubectl_admin: Kubectl) -> None:
    ns = "doomed"
    kubectl_admin.run("create", "namespace", ns)
    kubectl = kubectl_admin.in_namespace(ns)
    kubectl.apply(WEB.format(replicas=2, revision="1"))
    kubectl.run("create", "configmap", "settings", "--from-literal=a=b")
    kubectl.run("rollout", "status", "deployment/web", "--timeout=60s")
    ips = [p["status"]["podIP"] for p in wait_ready_pods(kubectl, 2)]
    kubectl_admin.run("delete", "namespace", ns, "--wait=true", "--timeout=90s")
    assert kubectl_admin.run("get", "namespace", ns, check=False).returncode != 0
    for ip in ips:
        assert not processes_bound_to(ip)


def test_crashing_container_is_restarted_with_its_exit_reported(kubectl: Kubectl) -> None:
    kubectl.apply("""
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
  - name: main
    image: python:3.11
    command: ["python3", "-c", "import sys; print('config is broken: conf missing'); sys.exit(3)"]
    terminationMessagePolicy: FallbackToLogsOnError
""")

    def restarted() -> dict | None:
        status = kubectl.json("get", "pod", "crasher")["status"]["containerStatuses"][0]
        return status if status["restartCount"] >= 1 and status.get("lastState", {}).get("terminated") else None

    status = wait_for(restarted, 30, "a restart")
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert "config is broken: conf missing" in status["lastState"]["terminated"]["message"]


def test_configmap_volume_is_mounted_and_follows_updates(kubectl: Kubectl) -> None:
    kubectl.run("create", "configmap", "model", "--from-literal=model.json={\"version\": \"1\"}")
    kubectl.apply("""
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: python:3.11
    command: ["python3", "-c"]
    args:
    - |
      import http.server, os, pathlib
      path = pathlib.Path(os.environ["MODEL_FILE"])
      class H(http.server.BaseHTTPRequestHandler):
          def do_GET(self):
              body = path.read_bytes()
              self.send_response(200); self.end_headers(); self.wfile.write(body)
      http.server.HTTPServer((os.environ["POD_IP"], 8080), H).serve_forever()
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: MODEL_FILE, value: /etc/overseer/model.json}
    volumeMounts:
    - {name: model, mountPath: /etc/overseer}
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
  volumes:
  - name: model
    configMap: {name: model}
""")
    kubectl.run("wait", "--for=condition=Ready", "pod/reader", "--timeout=60s")
    ip = kubectl.json("get", "pod", "reader")["status"]["podIP"]

    def served() -> str:
        with urllib.request.urlopen(f"http://{ip}:8080/", timeout=2) as resp:
            return str(resp.read().decode())

    assert json.loads(served()) == {"version": "1"}
    kubectl.apply(kubectl.run("create", "configmap", "model", "--from-literal=model.json={\"version\": \"2\"}",
                              "--dry-run=client", "-o", "yaml").stdout)
    wait_for(lambda: json.loads(served()) == {"version": "2"}, 20, "the mounted file to follow the ConfigMap")


def test_a_stale_cluster_folder_is_cleaned_up(local_cluster: Stack, tmp_path: Path) -> None:
    stale = tmp_path / "stale"
    stale.mkdir()
    # What a killed run leaves: a state file naming processes that no longer exist.
    (stale / "state.json").write_text(json.dumps({
        "apiserver_url": "https://127.0.0.1:1", "ip_block": 99,
        "pids": {"etcd": [2**22 - 1, 1], "kube-apiserver": [2**22 - 2, 1]},
    }))
    (stale / "kubeconfig").write_text("stale")
    stack = start_stack(stale, owner_pid=os.getpid())
    try:
        assert stack.apiserver_url != "https://127.0.0.1:1"
        assert Kubectl(stack.kubectl, stack.kubeconfig).json("get", "node", "local-0")["metadata"]["name"] == "local-0"
    finally:
        stop_stack(stale)


def test_a_stack_whose_owner_is_killed_stops_itself(local_cluster: Stack, tmp_path: Path) -> None:
    """What happens when a test run is killed with SIGKILL: no teardown runs, yet nothing stays up."""
    owner = subprocess.Popen(["sleep", "600"])  # stands in for the test run that owns the stack
    stack = start_stack(tmp_path / "owned", owner_pid=owner.pid)
    recorded = json.loads((stack.dir / "state.json").read_text())["pids"]
    try:
        assert all(procs.is_same_process(pid, started) for pid, started in recorded.values())
        owner.kill()
        owner.wait()

        def all_stopped() -> bool:
            return not any(procs.is_same_process(pid, started) for pid, started in recorded.values())

        wait_for(all_stopped, 60, "etcd, apiserver, controller-manager and node agent to stop")
    finally:
        stop_stack(stack.dir)
