"""Services route on the local cluster: ClusterIP:port reaches the ready pods, the apiserver reaches a
webhook through its Service, and `kubernetes.default` is the apiserver."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import sys
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from localcluster import certs
from localcluster.stack import Stack
from support.cluster import Kubectl
from support.polling import wait_for

# Two ports per pod: "http" (8080) answers "web <pod>", 9090 answers "admin <pod>"; POST /unready
# makes /ready fail, so the readiness probe takes the pod out of the rotation.
SERVER = """
import http.server, os, threading
name, ip = os.environ["POD_NAME"], os.environ["POD_IP"]
state = {"ready": True}
def handler(role):
    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def reply(self, code, body):
            self.send_response(code); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body)
        def do_GET(self):
            if self.path == "/ready":
                return self.reply(200 if state["ready"] else 503, b"")
            self.reply(200, f"{role} {name}".encode())
        def do_POST(self):
            state["ready"] = False
            self.reply(200, b"")
    return H
admin = http.server.ThreadingHTTPServer((ip, 9090), handler("admin"))
threading.Thread(target=admin.serve_forever, daemon=True).start()
http.server.ThreadingHTTPServer((ip, 8080), handler("web")).serve_forever()
"""

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
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: python:3.11
        command: [{python}, "-c", {server}]
        env:
        - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        ports:
        - {{name: http, containerPort: 8080}}
        - {{name: admin, containerPort: 9090}}
        readinessProbe: {{httpGet: {{path: /ready, port: http}}, periodSeconds: 1, failureThreshold: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports:
  - {{name: web, port: 80, targetPort: http}}
  - {{name: admin, port: 9091, targetPort: 9090}}
"""


def deploy_web(kubectl: Kubectl, replicas: int) -> None:
    kubectl.apply(WEB.format(replicas=replicas, python=json.dumps(sys.executable), server=json.dumps(SERVER)))


def get(ip: str, port: int, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=5) as resp:
        return str(resp.read().decode())


def cluster_ip(kubectl: Kubectl, name: str) -> str:
    ip = kubectl.json("get", "service", name)["spec"]["clusterIP"]
    assert isinstance(ip, str)
    return ip


def ready_pod_names(kubectl: Kubectl) -> set[str]:
    return {
        p["metadata"]["name"] for p in kubectl.json("get", "pods", "-l", "app=web")["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    }


def test_a_service_spreads_connections_over_its_ready_pods_on_every_port(
    kubectl: Kubectl, local_cluster: Stack
) -> None:
    deploy_web(kubectl, replicas=2)
    pods = wait_for(lambda: ready_pod_names(kubectl) if len(ready_pod_names(kubectl)) == 2 else None, 60,
                    "2 ready web pods")
    ip = cluster_ip(kubectl, "web")
    assert ip.startswith(f"127.{local_cluster.service_block}.")

    def both_pods_answer() -> Counter[str] | None:
        seen = Counter(get(ip, 80) for _ in range(20))
        return seen if set(seen) == {f"web {p}" for p in pods} else None

    # targetPort by name ("http" -> 8080) on port 80; round-robin over both pods.
    seen = wait_for(both_pods_answer, 30, "port 80 to reach both pods")
    assert sorted(seen.values()) == [10, 10]
    # targetPort by number (9090) on the second port.
    assert {get(ip, 9091) for _ in range(10)} == {f"admin {p}" for p in pods}


def test_a_pod_that_leaves_readiness_leaves_the_rotation_and_no_ready_pod_means_refused(kubectl: Kubectl) -> None:
    deploy_web(kubectl, replicas=2)
    wait_for(lambda: len(ready_pod_names(kubectl)) == 2, 60, "2 ready web pods")
    ip = cluster_ip(kubectl, "web")
    wait_for(lambda: len({get(ip, 80) for _ in range(6)}) == 2, 30, "both pods behind the ClusterIP")
    pods = kubectl.json("get", "pods", "-l", "app=web")["items"]
    leaving, staying = pods[0], pods[1]
    urllib.request.urlopen(urllib.request.Request(f"http://{leaving['status']['podIP']}:8080/", method="POST"),
                           timeout=5).close()
    wait_for(lambda: ready_pod_names(kubectl) == {staying["metadata"]["name"]}, 30, "one pod to turn unready")
    # The proxy follows the pod's Ready condition: from now on only the ready pod answers.
    wait_for(lambda: {get(ip, 80) for _ in range(6)} == {f"web {staying['metadata']['name']}"}, 10,
             "the unready pod to leave the rotation")
    assert {get(ip, 80) for _ in range(20)} == {f"web {staying['metadata']['name']}"}

    kubectl.run("scale", "deployment/web", "--replicas=0")

    def refused() -> bool:
        try:
            socket.create_connection((ip, 80), timeout=2).close()
        except ConnectionRefusedError:
            return True
        return False

    wait_for(refused, 30, "connections to a Service without ready pods to be refused")


def test_kubernetes_default_is_the_apiserver_with_a_certificate_valid_for_it(local_cluster: Stack,
                                                                              kubectl_admin: Kubectl) -> None:
    service = kubectl_admin.json("get", "service", "kubernetes", "-n", "default")
    ip = service["spec"]["clusterIP"]
    assert ip == f"127.{local_cluster.service_block}.0.1"
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("https", 443)]
    cert_dir = local_cluster.dir / "certs"
    context = ssl.create_default_context(cafile=str(cert_dir / "ca.crt"))
    context.load_cert_chain(str(cert_dir / "admin.crt"), str(cert_dir / "admin.key"))
    # Verified both by IP (what in-cluster config uses) and by the name kubernetes.default.svc.
    with urllib.request.urlopen(f"https://{ip}:443/version", context=context, timeout=10) as resp:
        assert json.loads(resp.read())["gitVersion"] == "v1.36.3"
    with socket.create_connection((ip, 443), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="kubernetes.default.svc") as tls:
        assert tls.version() is not None


WEBHOOK_SERVER = """
import http.server, json, os, ssl
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        obj = review["request"]["object"]
        refused = (obj["metadata"].get("labels") or {}).get("verdict") == "refuse"
        response = {"uid": review["request"]["uid"], "allowed": not refused}
        if refused:
            response["status"] = {"code": 403, "message": f"refused by the hook pod {os.environ['POD_NAME']}"}
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                           "response": response}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        self.send_response(200); self.end_headers()
server = http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8443), H)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/etc/webhook/tls/tls.crt", "/etc/webhook/tls/tls.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


@pytest.fixture
def webhook_configuration(kubectl_admin: Kubectl) -> Iterator[str]:
    name = f"test-hook-{uuid.uuid4().hex[:8]}"
    yield name
    kubectl_admin.run("delete", "validatingwebhookconfiguration", name, "--ignore-not-found", check=False)


def test_the_apiserver_calls_a_webhook_through_its_service(
    kubectl: Kubectl, namespace: str, tmp_path: Path, webhook_configuration: str
) -> None:
    ca_cert, ca_key = certs.make_ca("test-webhook-ca")
    # The name kube-apiserver checks for a service clientConfig: <service>.<namespace>.svc
    leaf, key = certs.issue_leaf(ca_cert, ca_key, common_name="hook", server=True,
                                 dns_sans=(f"hook.{namespace}.svc",))
    (tmp_path / "tls.crt").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    (tmp_path / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    kubectl.run("create", "secret", "tls", "hook-tls", f"--cert={tmp_path / 'tls.crt'}",
                f"--key={tmp_path / 'tls.key'}")
    kubectl.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: hook, labels: {{app: hook}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: hook
    image: python:3.11
    command: [{json.dumps(sys.executable)}, "-c", {json.dumps(WEBHOOK_SERVER)}]
    env:
    - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    ports: [{{name: https, containerPort: 8443}}]
    readinessProbe: {{httpGet: {{path: /, port: https, scheme: HTTPS}}, periodSeconds: 1}}
    volumeMounts: [{{name: tls, mountPath: /etc/webhook/tls, readOnly: true}}]
  volumes: [{{name: tls, secret: {{secretName: hook-tls}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: hook}}
spec:
  selector: {{app: hook}}
  ports: [{{port: 443, targetPort: https}}]
""")
    kubectl.run("wait", "--for=condition=Ready", "pod/hook", "--timeout=60s")
    ca_bundle = base64.b64encode((tmp_path / "ca.crt").read_bytes()).decode()
    kubectl.apply(f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: {webhook_configuration}}}
webhooks:
- name: hook.overseer.test
  clientConfig:
    service: {{namespace: {namespace}, name: hook, path: /validate, port: 443}}
    caBundle: {ca_bundle}
  rules: [{{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}}]
  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {namespace}}}}}
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: 5
""")

    def refused() -> str | None:
        # The configuration takes effect a moment after it is created: until then a create passes.
        name = f"refuse-{uuid.uuid4().hex[:6]}"
        result = kubectl.run("create", "configmap", name, "--from-literal=a=b", "--dry-run=client", "-o", "json",
                             check=False)
        labelled = json.loads(result.stdout)
        labelled["metadata"]["labels"] = {"verdict": "refuse"}
        created = kubectl.run("create", "-f", "-", stdin=json.dumps(labelled), check=False)
        if created.returncode == 0:
            kubectl.run("delete", "configmap", name, check=False)
            return None
        return created.stderr

    message = wait_for(refused, 30, "the webhook to refuse a labelled ConfigMap")
    assert 'admission webhook "hook.overseer.test" denied the request: refused by the hook pod hook' in message
    kubectl.run("create", "configmap", "allowed", "--from-literal=a=b")  # the same path, allowed
    assert kubectl.json("get", "configmap", "allowed")["data"] == {"a": "b"}


def test_a_service_port_that_cannot_be_opened_is_reported_on_the_service(kubectl: Kubectl) -> None:
    # Two Services cannot be given the same ClusterIP, but a host process can hold one's port: the
    # proxy says so with an Event on the Service instead of failing silently.
    kubectl.apply("""
apiVersion: v1
kind: Service
metadata: {name: squatted}
spec:
  selector: {app: nothing-yet}
  ports: [{port: 8088}]
""")
    ip = cluster_ip(kubectl, "squatted")
    with socket.socket() as squatter:
        squatter.bind((ip, 8088))
        squatter.listen()
        deploy_web(kubectl, replicas=1)
        kubectl.run("patch", "service", "squatted", "--type=merge", "-p",
                    json.dumps({"spec": {"selector": {"app": "web"}, "ports": [{"port": 8088, "targetPort": 8080}]}}))

        def event() -> str | None:
            events = kubectl.json("get", "events", "--field-selector", "involvedObject.name=squatted")["items"]
            return next((e["message"] for e in events if e["reason"] == "ProxyListenFailed"), None)

        message = wait_for(event, 60, "a ProxyListenFailed event on the Service")
        assert f"cannot listen on {ip}:8088" in message
    # Once the port is free again, the proxy takes it (it retries).
    wait_for(lambda: get(ip, 8088).startswith("web "), 30, "the Service to route once the port is free")

