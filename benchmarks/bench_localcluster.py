"""Local cluster benchmark: what the node agent's Services and per-pod mount namespaces cost.

    .venv/bin/python benchmarks/bench_localcluster.py

1. Stack start with cached binaries (etcd, apiserver, controller-manager, node agent, ready).
2. Pod create -> Ready (no probe: Ready once the process runs), median of 8 pods each, measured
   side by side: a bare pod (no volumes, automountServiceAccountToken: false - its namespaces hold
   only its hostname and /etc/hosts), a default pod (plus the ServiceAccount token volume:
   TokenRequest, CA, namespace), a pod with three more volumes (configMap, secret, emptyDir at paths
   that do not exist on the host).
3. The service proxy: one HTTP request on a new connection (median and p99 of 300), and a 64 MiB
   download (best of 3), straight to the pod IP and through the Service's ClusterIP, interleaved.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))

from kubernetes import client, config, watch  # noqa: E402
from localcluster.stack import start_stack, stop_stack  # noqa: E402

NS = "bench"
SERVER = """
import http.server, os
BIG = b"x" * (64 << 20)
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = BIG if self.path == "/big" else b"ok"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), H).serve_forever()
"""
POD_IP_ENV = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def pod_manifest(name: str, kind: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "python:3.11",
                                 "command": [sys.executable, "-c", "import time; time.sleep(600)"]}
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 1}
    if kind == "bare":
        spec["automountServiceAccountToken"] = False
    if kind == "volumes":
        container["volumeMounts"] = [{"name": "config", "mountPath": "/etc/bench/config"},
                                     {"name": "secret", "mountPath": "/etc/bench/secret"},
                                     {"name": "scratch", "mountPath": "/bench-scratch"}]
        spec["volumes"] = [{"name": "config", "configMap": {"name": "bench"}},
                           {"name": "secret", "secret": {"secretName": "bench"}},
                           {"name": "scratch", "emptyDir": {}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": kind}}, "spec": spec}


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def time_to_ready(core: Any, manifest: dict[str, Any]) -> float:
    name = manifest["metadata"]["name"]
    stream = watch.Watch()
    started = time.monotonic()
    core.create_namespaced_pod(NS, manifest)
    for event in stream.stream(core.list_namespaced_pod, NS, field_selector=f"metadata.name={name}",
                               timeout_seconds=120, _preload_content=False):
        if is_ready(event["raw_object"]):
            stream.stop()
            return time.monotonic() - started
    raise RuntimeError(f"pod {name} not ready within 120 s")


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return bytes(resp.read())


def pod_starts(core: Any) -> None:
    kinds = ("bare", "default", "volumes")
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(8):
        for kind in kinds:  # interleaved, so load from elsewhere hits all three alike
            times[kind].append(time_to_ready(core, pod_manifest(f"{kind}-{i}", kind)))
    bare = statistics.median(times["bare"])
    for kind in kinds:
        median = statistics.median(times[kind])
        print(f"pod create -> Ready, {kind:8s} (median): {median * 1000:6.0f} ms  ({median / bare:4.2f}x bare)")
    core.delete_collection_namespaced_pod(NS, grace_period_seconds=0)


def start_server(core: Any) -> tuple[str, str]:
    """The HTTP server pod and its Service; returns (direct URL, ClusterIP URL) once both answer."""
    server = pod_manifest("server", "default")
    server["metadata"]["labels"] = {"app": "server"}
    server["spec"]["containers"][0].update(command=[sys.executable, "-c", SERVER], env=[POD_IP_ENV],
                                          readinessProbe={"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1})
    time_to_ready(core, server)
    pod_ip = core.read_namespaced_pod("server", NS).status.pod_ip
    service = core.create_namespaced_service(NS, {"metadata": {"name": "server"}, "spec": {
        "selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    direct, proxied = f"http://{pod_ip}:8080", f"http://{service.spec.cluster_ip}:80"
    deadline = time.monotonic() + 30
    while True:  # the proxy listens once it has seen the Service and its ready pod
        try:
            fetch(proxied + "/")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        else:
            return direct, proxied


def proxy(core: Any) -> None:
    urls = dict(zip(("direct", "proxied"), start_server(core), strict=True))
    latency: dict[str, list[float]] = {"direct": [], "proxied": []}
    for _ in range(300):
        for label, base in urls.items():  # interleaved
            t = time.perf_counter()
            fetch(base + "/")
            latency[label].append(time.perf_counter() - t)
    throughput: dict[str, float] = {"direct": 0.0, "proxied": 0.0}
    for _ in range(3):
        for label, base in urls.items():
            t = time.perf_counter()
            size = len(fetch(base + "/big"))
            throughput[label] = max(throughput[label], size / (time.perf_counter() - t) / 2**20)
    for label, samples in latency.items():
        samples.sort()
        p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99) - 1]
        print(f"GET on a new connection, {label:7s}:     median {p50 * 1000:5.2f} ms, p99 {p99 * 1000:5.2f} ms")
    ratio = statistics.median(latency["proxied"]) / statistics.median(latency["direct"])
    print(f"  ClusterIP / pod IP latency ratio:     {ratio:4.2f}x")
    for label, mib_s in throughput.items():
        print(f"64 MiB download, {label:7s} (best of 3): {mib_s:6.0f} MiB/s")
    print(f"  ClusterIP / pod IP throughput ratio:  {throughput['proxied'] / throughput['direct']:4.2f}x")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as d:
        t0 = time.monotonic()
        stack = start_stack(Path(d) / "stack", owner_pid=os.getpid())
        print(f"stack start (binaries cached):        {time.monotonic() - t0:6.2f} s")
        try:
            config.load_kube_config(str(stack.kubeconfig))
            core: Any = client.CoreV1Api()
            core.create_namespace({"metadata": {"name": NS}})
            core.create_namespaced_config_map(NS, {"metadata": {"name": "bench"}, "data": {"a": "b"}})
            core.create_namespaced_secret(NS, {"metadata": {"name": "bench"}, "stringData": {"a": "b"}})
            pod_starts(core)
            proxy(core)
            print(json.dumps({"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 1)}))
        finally:
            stop_stack(stack.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
