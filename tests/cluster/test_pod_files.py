"""Pods see their files where the spec says: volumes at their mountPaths (read-only ones refuse
writes), the ServiceAccount token, CA and namespace where in-cluster config looks, and nothing of it
leaks into the host's mount namespace or outlives the pod."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

from localcluster.stack import Stack
from support.cluster import Kubectl
from support.polling import wait_for

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

INSPECT = """
import json, os, time
def attempt(path, text="x"):
    try:
        with open(path, "w") as f:
            f.write(text)
        return "written"
    except OSError as e:
        return e.strerror
def read(path):
    try:
        return open(path).read()
    except OSError as e:
        return e.strerror
print(json.dumps({
    "config": read("/etc/app/config/settings.yaml"),
    "single": read("/etc/app.yaml"),
    "secret": read("/etc/app/secret/password"),
    "write_config": attempt("/etc/app/config/settings.yaml"),
    "write_scratch": attempt("/scratch/out.txt", "from the pod"),
    "write_read_only_scratch": attempt("/ro-scratch/out.txt"),
    "token_dir": os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount"),
    "host_file_under_tmp": read(os.environ["HOST_FILE"]),
    "write_tmp": attempt("/tmp/pod-only.txt"),
    "kubernetes_service": [os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")],
    "cwd": os.getcwd(),
}), flush=True)
time.sleep(3600)
"""

FILES_POD = """
apiVersion: v1
kind: Pod
metadata: {{name: files}}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: python:3.11
    command: [{python}, "-c", {script}]
    workingDir: /scratch
    env: [{{name: HOST_FILE, value: {host_file}}}]
    volumeMounts:
    - {{name: tmp, mountPath: /tmp}}
    - {{name: config, mountPath: /etc/app/config}}
    - {{name: config, mountPath: /etc/app.yaml, subPath: settings.yaml}}
    - {{name: secret, mountPath: /etc/app/secret}}
    - {{name: scratch, mountPath: /scratch}}
    - {{name: scratch, mountPath: /ro-scratch, readOnly: true}}
  volumes:
  - {{name: config, configMap: {{name: app-config}}}}
  - {{name: secret, secret: {{secretName: app-secret}}}}
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: tmp, emptyDir: {{}}}}
"""


def pod_dir(stack: Stack, pod: dict[str, Any]) -> Path:
    meta = pod["metadata"]
    return stack.dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"


def first_json_line(path: Path) -> dict[str, Any] | None:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    return next((json.loads(line) for line in lines if line.startswith("{")), None)


def pod_pid(pod: dict[str, Any]) -> int:
    return int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("local://"))


def test_volumes_are_at_their_mount_paths_and_read_only_mounts_refuse_writes(
    kubectl: Kubectl, local_cluster: Stack, tmp_path: Path
) -> None:
    host_mounts_before = Path("/proc/self/mountinfo").read_text()
    host_file = tmp_path / "model.txt"  # what tests hand to pods through the host's /tmp
    host_file.write_text("from the test")
    kubectl.run("create", "configmap", "app-config", "--from-literal=settings.yaml=level: debug")
    kubectl.run("create", "secret", "generic", "app-secret", "--from-literal=password=s3cret")
    kubectl.apply(FILES_POD.format(python=json.dumps(sys.executable), script=json.dumps(INSPECT),
                                   host_file=json.dumps(str(host_file))))
    kubectl.run("wait", "--for=condition=Ready", "pod/files", "--timeout=60s")
    pod = kubectl.json("get", "pod", "files")
    folder = pod_dir(local_cluster, pod)
    seen = wait_for(lambda: first_json_line(folder / "container.log"), 30, "the pod's report")

    assert seen["config"] == seen["single"] == "level: debug"
    assert seen["secret"] == "s3cret"
    assert seen["write_config"] == "Read-only file system"  # configMap volumes are always read-only
    assert seen["write_scratch"] == "written"
    assert seen["write_read_only_scratch"] == "Read-only file system"  # readOnly: true on the same emptyDir
    assert seen["cwd"] == "/scratch"
    assert seen["token_dir"] is False  # automountServiceAccountToken: false
    # An emptyDir at /tmp (read-only root filesystem charts): the pod's files stay its own, the
    # host's /tmp entries stay visible beside them (docs/local-cluster.md).
    assert seen["host_file_under_tmp"] == "from the test"
    assert seen["write_tmp"] == "written"
    assert not Path("/tmp/pod-only.txt").exists()
    assert (folder / "volumes" / "tmp" / "pod-only.txt").exists()
    service = kubectl.json("get", "service", "kubernetes", "-n", "default")
    assert seen["kubernetes_service"] == [service["spec"]["clusterIP"], "443"]  # set even without a token

    # The pod wrote into its emptyDir, which the agent keeps under the pod's folder.
    assert (folder / "volumes" / "scratch" / "out.txt").read_text() == "from the pod"
    # The mounts live in the pod's own namespace only: none on the host, no folders made there.
    pid = pod_pid(pod)
    assert " /etc/app/config " in Path(f"/proc/{pid}/mountinfo").read_text()
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert Path("/proc/self/mountinfo").read_text() == host_mounts_before
    for path in ("/etc/app", "/etc/app.yaml", "/scratch", "/ro-scratch", "/tmp/pod-only.txt"):
        assert not os.path.lexists(path), path

    kubectl.run("delete", "pod", "files", "--wait=true", "--timeout=60s")
    assert not Path(f"/proc/{pid}").exists()
    assert not (folder / "volumes").exists()  # secrets do not stay on disk after their pod


IN_CLUSTER = """
import json, os, socket, ssl, urllib.request
from kubernetes import client, config
config.load_incluster_config()  # KUBERNETES_SERVICE_HOST/PORT + the token and CA files, unchanged
v1 = client.CoreV1Api()
namespace = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
configmaps = v1.list_namespaced_config_map(namespace).items
report = {"namespace": namespace, "configmaps": [c.metadata.name for c in configmaps],
          "files": sorted(os.listdir("/var/run/secrets/kubernetes.io/serviceaccount"))}
review = client.AuthenticationV1Api().create_self_subject_review({"apiVersion": "authentication.k8s.io/v1",
                                                                  "kind": "SelfSubjectReview"})
report["user"] = review.status.user_info.username
try:
    v1.list_namespaced_secret(namespace)
    report["secrets"] = "allowed"
except client.ApiException as e:
    report["secrets"] = [e.status, json.loads(e.body)["message"]]
# Kopf's own fallback login, and any client given the URL: https://kubernetes.default.svc, token and CA.
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
request = urllib.request.Request(f"https://kubernetes.default.svc/api/v1/namespaces/{namespace}/configmaps",
                                 headers={"Authorization": "Bearer " + open(sa + "/token").read()})
context = ssl.create_default_context(cafile=sa + "/ca.crt")
with urllib.request.urlopen(request, context=context, timeout=10) as resp:
    report["by_name"] = [c["metadata"]["name"] for c in json.loads(resp.read())["items"]]
report["hostname"] = [socket.gethostname(), os.environ["HOSTNAME"]]
print(json.dumps(report), flush=True)
"""


def test_in_cluster_config_works_unchanged_with_the_pods_own_rbac(kubectl: Kubectl, namespace: str,
                                                                   local_cluster: Stack) -> None:
    kubectl.apply(f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: configmap-reader}}
rules: [{{apiGroups: [""], resources: [configmaps], verbs: [list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmap-reader}}
subjects: [{{kind: ServiceAccount, name: reader, namespace: {namespace}}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: visible}}
data: {{a: b}}
---
apiVersion: v1
kind: Pod
metadata: {{name: in-cluster}}
spec:
  serviceAccountName: reader
  restartPolicy: Never
  containers:
  - name: main
    image: python:3.11
    command: [{json.dumps(sys.executable)}, "-c", {json.dumps(IN_CLUSTER)}]
""")
    wait_for(lambda: kubectl.json("get", "pod", "in-cluster")["status"].get("phase") in ("Succeeded", "Failed"), 60,
             "the in-cluster client to finish")
    pod = kubectl.json("get", "pod", "in-cluster")
    log = pod_dir(local_cluster, pod) / "container.log"
    assert pod["status"]["phase"] == "Succeeded", log.read_text()
    report = first_json_line(log)
    assert report is not None, log.read_text()
    assert report["namespace"] == namespace
    assert report["files"] == ["ca.crt", "namespace", "token"]
    assert report["user"] == f"system:serviceaccount:{namespace}:reader"
    assert {"visible", "kube-root-ca.crt"} <= set(report["configmaps"])
    assert set(report["by_name"]) == set(report["configmaps"])  # the Service's DNS name resolves in the pod
    assert report["hostname"] == ["in-cluster", "in-cluster"]  # its own hostname, as in a container
    status, message = report["secrets"]
    assert status == 403
    assert f'User "system:serviceaccount:{namespace}:reader" cannot list resource "secrets"' in message


def test_a_projected_token_has_the_volumes_audience_and_lifetime_and_is_bound_to_the_pod(
    kubectl: Kubectl, kubectl_admin: Kubectl, namespace: str, local_cluster: Stack
) -> None:
    kubectl.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: vault-client}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: python:3.11
    command: [{json.dumps(sys.executable)}, "-c", "import time; time.sleep(600)"]
    volumeMounts: [{{name: vault-token, mountPath: /var/run/secrets/tokens}}]
  volumes:
  - name: vault-token
    projected:
      sources: [{{serviceAccountToken: {{path: vault, audience: vault.example.com, expirationSeconds: 600}}}}]
""")
    kubectl.run("wait", "--for=condition=Ready", "pod/vault-client", "--timeout=60s")
    pod = kubectl.json("get", "pod", "vault-client")
    token = (pod_dir(local_cluster, pod) / "volumes" / "vault-token" / "vault").read_text()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["aud"] == ["vault.example.com"]
    assert claims["exp"] - claims["iat"] == 600
    # Bound to the pod (the apiserver stops accepting it once the pod is gone, after its 10 s auth cache).
    assert claims["kubernetes.io"]["pod"] == {"name": "vault-client", "uid": pod["metadata"]["uid"]}

    def review(audience: str) -> dict[str, Any]:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token, "audiences": [audience]}}
        created = kubectl_admin.run("create", "-f", "-", "-o", "json", stdin=json.dumps(body))
        return dict(json.loads(created.stdout)["status"])

    assert review("vault.example.com")["user"]["username"] == f"system:serviceaccount:{namespace}:default"
    assert review("https://kubernetes.default.svc.cluster.local").get("authenticated") is not True
