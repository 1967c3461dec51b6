"""Rollout benchmark: how long a model change takes to reach every serving pod, HotSwap against
Rolling, and how many requests fail meanwhile.

    .venv/bin/python benchmarks/bench_rollout.py            # print the figures
    .venv/bin/python benchmarks/bench_rollout.py --check    # also exit 1 when an aim is missed

On a private local control plane (started and stopped here) with the operator in local mode, one
ModelDeployment with N=3 real serving pods (BentoML + a toy YOLO network) under continuous load:
8 clients posting /detect to the pods that are Ready and not terminating (re-listed every 0.5 s,
as a Service's endpoints would be). For each change, from just before `kubectl apply` until the
admin API of every pod says it serves the new model (and, for Rolling, the old pods are gone):

- HotSwap: three changes (v1 -> v2 -> v3 -> v4), each new weights, swapped in place;
- Rolling: two changes (v5, v6) with `rollout.strategy: Rolling`: pods replaced by a rolling update.

Printed: the median time to all pods and to the first pod, failed requests of the load, and the
ratio Rolling / HotSwap. Aims: HotSwap at least 10x faster than Rolling, zero failed requests with
HotSwap. Everything (control plane, operator, pods, clients) shares this machine's cores.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from localcluster.overseer_operator import start_operator, stop_operator
from localcluster.stack import Stack, start_stack, stop_stack

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
NAME = "cat-recognition"
REPLICAS = 3
PORT = 3000
CLIENTS = 8
AIM_RATIO = 10.0
READY_TIMEOUT_S = 600.0


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (httpx.HTTPError, subprocess.SubprocessError, RuntimeError, ValueError, KeyError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class Model:
    path: Path
    digest: str
    version: str


@dataclass
class Cluster:
    stack: Stack
    core: Any = None

    def __post_init__(self) -> None:
        # Pods are listed straight from the API (no kubectl process per poll: the timing resolution
        # is what the API answers in, not what a process start costs on a busy machine).
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(str(self.stack.kubeconfig), client_configuration=configuration)
        self.core = client.CoreV1Api(client.ApiClient(configuration))

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        cmd = [str(self.stack.kubectl), f"--kubeconfig={self.stack.kubeconfig}", f"--namespace={NAMESPACE}", *args]
        result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def pods(self) -> list[dict[str, Any]]:
        answer = self.core.list_namespaced_pod(
            NAMESPACE, label_selector=f"overseer.dev/deployment={NAME}", _preload_content=False, _request_timeout=10
        )
        items: list[dict[str, Any]] = json.loads(answer.data)["items"]
        return items

    def token(self) -> str:
        secret = json.loads(self.kubectl("get", "secret", f"{NAME}-admin", "-o", "json"))
        return base64.b64decode(secret["data"]["token"]).decode()


def endpoints(pods: list[dict[str, Any]]) -> list[str]:
    """What a Service would route to: Ready pods that are not terminating."""
    return sorted(
        p["status"]["podIP"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and p["status"].get("podIP")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
    )


@dataclass
class Load:
    """CLIENTS closed-loop clients on the current endpoints, re-listed every 0.5 s."""

    cluster: Cluster
    image: bytes
    ips: list[str] = field(default_factory=list)
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _refresh(self) -> None:
        while not self._stop.wait(0.5):
            try:
                found = endpoints(self.cluster.pods())
            except RuntimeError:
                continue
            with self._lock:
                self.ips = found

    def _client(self, i: int) -> None:
        n = i
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                with self._lock:
                    ips = list(self.ips)
                if not ips:
                    self._stop.wait(0.1)
                    continue
                ip = ips[n % len(ips)]
                n += 1
                try:
                    r = client.post(f"http://{ip}:{PORT}/detect", files={"image": ("x.jpg", self.image, "image/jpeg")})
                    good = r.status_code == 200
                    detail = f"{ip}: HTTP {r.status_code}"
                except httpx.HTTPError as error:
                    good, detail = False, f"{ip}: {type(error).__name__}"
                with self._lock:
                    if good:
                        self.ok += 1
                    else:
                        self.failed.append(detail)
                self._stop.wait(0.05)  # pacing: the pods, the control plane and the clients share the cores

    def __enter__(self) -> Load:
        self.ips = endpoints(self.cluster.pods())
        self._threads = [threading.Thread(target=self._refresh, daemon=True)]
        self._threads += [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(CLIENTS)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(70)

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.ok, len(self.failed)


def served(cluster: Cluster, token: str, client: httpx.Client | None = None) -> dict[str, str]:
    """Live pod name -> the version its admin API serves ('' when it does not answer)."""
    out = {}
    with contextlib.nullcontext(client) if client else httpx.Client(timeout=5) as http:
        for pod in cluster.pods():
            if pod["metadata"].get("deletionTimestamp"):
                continue
            ip = pod["status"].get("podIP")
            version = ""
            if ip:
                try:
                    answer = http.get(f"http://{ip}:{PORT}/admin/model", headers={"Authorization": f"Bearer {token}"})
                    if answer.status_code == 200 and answer.json().get("model"):
                        version = answer.json()["model"]["version"]
                except httpx.HTTPError:
                    pass
            out[pod["metadata"]["name"]] = version
    return out


@dataclass(frozen=True)
class Change:
    strategy: str
    to_all_s: float
    to_first_s: float
    apply_s: float  # kubectl apply itself (admission webhooks included)
    requests: int
    failed: int


def body(model: Model, strategy: str) -> dict[str, Any]:
    example = REPO / "examples" / "cat-recognition.modeldeployment.yaml"
    deployment: dict[str, Any] = yaml.safe_load(example.read_text(encoding="utf-8"))
    deployment["metadata"] = {"name": NAME, "namespace": NAMESPACE}
    spec = deployment["spec"]
    spec["model"].update(uri=f"file://{model.path}", digest=model.digest, version=model.version)
    spec["model"]["customObjects"] = {"conf": 0.25, "resize_resolution": 128}
    spec["replicas"] = REPLICAS
    spec["rollout"]["strategy"] = strategy
    del spec["serving"]["resources"]
    del spec["promotion"]
    return deployment


def change(cluster: Cluster, load: Load, model: Model, strategy: str) -> Change:
    """Apply `model` and time it until every pod serves it (and only REPLICAS pods are left)."""
    token = cluster.token()
    ok0, failed0 = load.snapshot()
    first: float | None = None
    t0 = time.monotonic()
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body(model, strategy)))
    applied = time.monotonic() - t0

    with httpx.Client(timeout=5) as http:

        def done() -> bool:
            nonlocal first
            now = served(cluster, token, http)
            if first is None and model.version in now.values():
                first = time.monotonic() - t0
            return len(now) == REPLICAS and set(now.values()) == {model.version}

        wait(done, READY_TIMEOUT_S, f"every pod to serve {model.version}", interval=0.02)
    elapsed = time.monotonic() - t0
    ok1, failed1 = load.snapshot()
    return Change(strategy, elapsed, first if first is not None else elapsed, applied, ok1 - ok0 + failed1 - failed0,
                  failed1 - failed0)  # fmt: skip


def run(cluster: Cluster, models: list[Model], image: bytes) -> list[Change]:
    schema = yaml.safe_load((REPO / "examples" / "object-detector.modelschema.yaml").read_text())
    schema["metadata"]["namespace"] = NAMESPACE
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(schema))
    log(f"{REPLICAS} serving pods starting on {models[0].version} ...")
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body(models[0], "HotSwap")))
    token = wait(cluster.token, 60, "the admin Secret")

    def started() -> bool:
        on = set(served(cluster, token).values())
        return len(endpoints(cluster.pods())) == REPLICAS and on == {models[0].version}

    wait(started, READY_TIMEOUT_S, "the serving pods", interval=1.0)
    changes = []
    with Load(cluster, image) as load:
        wait(lambda: load.snapshot()[0] >= CLIENTS * 4, 120, "the load to run")
        for model in models[1:4]:
            changes.append(change(cluster, load, model, "HotSwap"))
            log(f"HotSwap to {model.version}: {changes[-1]}")
        log("switching to Rolling (one rolling update, not measured) ...")
        current = models[3]
        cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body(current, "Rolling")))
        wait(lambda: _settled(cluster), READY_TIMEOUT_S, "the switch to Rolling", interval=1.0)
        for model in models[4:6]:
            changes.append(change(cluster, load, model, "Rolling"))
            log(f"Rolling to {model.version}: {changes[-1]}")
            wait(lambda: _settled(cluster), READY_TIMEOUT_S, "the rolling update to settle", interval=1.0)
    return changes


def _settled(cluster: Cluster) -> bool:
    deployment = json.loads(cluster.kubectl("get", "deployment", NAME, "-o", "json"))
    status = deployment.get("status") or {}
    pods = [p for p in cluster.pods() if not p["metadata"].get("deletionTimestamp")]
    return (
        status.get("observedGeneration") == deployment["metadata"]["generation"]
        and status.get("updatedReplicas") == status.get("readyReplicas") == status.get("replicas") == REPLICAS
        and len(pods) == REPLICAS
    )


def report(changes: list[Change], swap_seconds: float | None) -> bool:
    def pick(strategy: str) -> list[Change]:
        return [c for c in changes if c.strategy == strategy]

    hot, rolling = pick("HotSwap"), pick("Rolling")
    print(f"\nA model change reaching all {REPLICAS} pods, under load from {CLIENTS} clients (median of the runs):")
    print(f"  {'strategy':<9} {'runs':>4} {'all pods':>10} {'first pod':>10} {'requests':>9} {'failed':>7}")
    for name, runs in (("HotSwap", hot), ("Rolling", rolling)):
        print(
            f"  {name:<9} {len(runs):>4} {statistics.median(c.to_all_s for c in runs):>9.2f}s "
            f"{statistics.median(c.to_first_s for c in runs):>9.2f}s {sum(c.requests for c in runs):>9} "
            f"{sum(c.failed for c in runs):>7}"
        )
    ratio = statistics.median(c.to_all_s for c in rolling) / statistics.median(c.to_all_s for c in hot)
    print(f"  Rolling / HotSwap: {ratio:.1f}x (aim >= {AIM_RATIO:.0f}x)")
    print(
        f"  kubectl apply -> first pod swapped (HotSwap): median {statistics.median(c.to_first_s for c in hot):.2f}s "
        f"(of which kubectl apply itself, webhooks included: {statistics.median(c.apply_s for c in hot):.2f}s)"
    )
    if swap_seconds is not None:
        print(f"  one in-pod swap as the operator saw it (PUT + confirming GET): mean {swap_seconds:.2f}s")
    hot_failed = sum(c.failed for c in hot)
    return ratio >= AIM_RATIO and hot_failed == 0


def _swap_seconds(metrics: str) -> float | None:
    total = count = 0.0
    for line in metrics.splitlines():
        if line.startswith("overseer_pod_swap_duration_seconds_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("overseer_pod_swap_duration_seconds_count"):
            count += float(line.rsplit(" ", 1)[1])
    return total / count if count else None


def build_models(root: Path) -> list[Model]:
    from overseer_devtools.toymodels import build_detector

    out = []
    for i in range(1, 7):
        path = root / f"v{i}.pt"
        out.append(Model(path, build_detector(path, seed=i), f"2024{i:02d}{i:02d}"))
    return out


def jpeg() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(7).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when an aim is missed")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (the operator's and pods' logs)")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    with contextlib.ExitStack() as cleanup:
        if args.keep:
            root = args.keep.resolve()
            root.mkdir(parents=True, exist_ok=True)
        else:
            root = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-rollout-")))
        log("building toy models ...")
        models = build_models(root / "models")
        log("starting a private control plane and the operator ...")
        stack = start_stack(root / "cluster", owner_pid=os.getpid())
        try:
            process = start_operator(stack.dir, die_with_caller=True)
            cluster = Cluster(stack)
            cluster.kubectl("create", "namespace", NAMESPACE)
            changes = run(cluster, models, jpeg())
            metrics = httpx.get(process.metrics_url, timeout=10).text
        finally:
            stop_operator(stack.dir)
            stop_stack(stack.dir)
    ok = report(changes, _swap_seconds(metrics))
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
