"""What the rollout's end-to-end tests share: the operator process, toy models and a weights server
that can be slow, flaky or down, load clients that talk to the pods, and a ModelDeployment handle
that reads what a user would (status, Events, what each pod serves)."""

from __future__ import annotations

import base64
import contextlib
import copy
import http.server
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from localcluster.overseer_operator import OperatorProcess, start_operator, stop_operator
from support.cluster import REPO_ROOT, Kubectl
from support.polling import wait_for

PORT = 3000
READY_TIMEOUT = 400.0  # three BentoML servers warming YOLO networks on a shared 2-core machine
ROLLOUT_TIMEOUT = 240.0
# What the e2e operator runs with: drift is looked for every 3 s (60 s in production), so that a
# test sees a repair without waiting a minute.
OPERATOR_ENV = {"OVERSEER_DRIFT_CHECK_INTERVAL_S": "3"}


# --- the operator ---------------------------------------------------------------------------------


@dataclass
class Operator:
    """The operator process of a test module; tests may kill it and start it again."""

    stack_dir: Path
    env: dict[str, str] = field(default_factory=lambda: dict(OPERATOR_ENV))
    process: OperatorProcess | None = None

    def start(self) -> OperatorProcess:
        port = self.process.webhook_port if self.process else None
        self.process = start_operator(self.stack_dir, die_with_caller=True, webhook_port=port, env=self.env)
        return self.process

    def stop(self) -> None:
        stop_operator(self.stack_dir)

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as when a node dies."""
        process = self.process
        assert process is not None
        os.killpg(process.pid, signal.SIGKILL)
        wait_for(lambda: not process.alive(), 10, "the operator to die")
        stop_operator(self.stack_dir)  # reaps it and forgets the record

    def metrics(self) -> str:
        assert self.process is not None
        return httpx.get(self.process.metrics_url, timeout=10).text


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
    total = 0.0
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if line.startswith("#") or sample != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


# --- models and where their weights are ----------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """A toy detector on disk, with what spec.model needs."""

    path: Path
    digest: str
    version: str
    f1: float

    def spec(self, uri: str | None = None, digest: str | None = None) -> dict[str, Any]:
        return {
            "name": "cat_recognition",
            "version": self.version,
            "uri": uri or f"file://{self.path}",
            "digest": digest or self.digest,
            "labels": {"owner": "vision-team", "stage": "production"},
            "metadata": {"f1": self.f1, "dataset_version": "2024.01"},
            # Small images: the load clients and three pods share two cores.
            "customObjects": {"conf": 0.25, "resize_resolution": 128},
        }


@dataclass
class Route:
    data: bytes
    delay_s: float = 0.0
    """Sleep before answering (a slow object store): it keeps a swap running long enough to act mid-way."""
    good_downloads: int | None = None
    """After this many downloads, serve `other` instead (a flaky mirror: the next pod sees other bytes)."""
    other: bytes = b""
    status: int = 200
    downloads: int = 0


class WeightsServer:
    """An HTTP server on loopback for http:// weights URIs, with faults on demand."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    route = server.routes.get(self.path)
                    if route is not None:
                        route.downloads += 1
                        flaky = route.good_downloads is not None and route.downloads > route.good_downloads
                        body = route.other if flaky else route.data
                        delay, status = route.delay_s, route.status
                if route is None:
                    self.send_error(404)
                    return
                if delay:
                    time.sleep(delay)  # the server is slow on purpose; nothing waits on this sleep
                if status != 200:
                    self.send_error(status)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def serve(self, path: str, route: Route) -> str:
        with self._lock:
            self.routes[path] = route
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


# --- load -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    client: int
    pod: str
    status: int  # 0: no HTTP answer at all
    version: str  # the model that answered, or the error


class Load:
    """Closed-loop clients posting /detect straight to the pods' IPs (each client goes round the
    pods), recording every answer and the model version that gave it."""

    def __init__(self, ips: list[str], image: bytes, clients: int = 8, pause_s: float = 0.05) -> None:
        assert ips
        self.ips = ips
        self.image = image
        self.clients = clients
        self.pause_s = pause_s  # pacing: the pods, the operator and the API server share two cores
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _run(self, i: int) -> None:
        n = i
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                ip = self.ips[n % len(self.ips)]
                n += 1
                try:
                    r = client.post(f"http://{ip}:{PORT}/detect", files={"image": ("x.jpg", self.image, "image/jpeg")})
                    version = r.json()["model"]["version"] if r.status_code == 200 else r.text[:200]
                    answer = Answer(i, ip, r.status_code, version)
                except (httpx.HTTPError, ValueError, KeyError) as error:
                    answer = Answer(i, ip, 0, repr(error))
                with self._lock:
                    self.answers.append(answer)
                self._stop.wait(self.pause_s)

    def __enter__(self) -> Load:
        for i in range(self.clients):
            thread = threading.Thread(target=self._run, args=(i,), daemon=True, name=f"load-{i}")
            thread.start()
            self._threads.append(thread)
        wait_for(lambda: self.count() >= self.clients * 2, 60, "the load clients to get answers")
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(70)

    def count(self) -> int:
        with self._lock:
            return len(self.answers)

    def failures(self) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.status != 200]

    def versions(self) -> set[str]:
        with self._lock:
            return {a.version for a in self.answers if a.status == 200}

    def mark(self) -> int:
        """Where the answers are now: `since(mark)` are the ones after it."""
        return self.count()

    def since(self, mark: int) -> list[Answer]:
        with self._lock:
            return self.answers[mark:]


# --- the ModelDeployment, as a user sees it -----------------------------------------------------------


def example(name: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((REPO_ROOT / "examples" / name).read_text(encoding="utf-8"))
    body["metadata"].pop("namespace", None)
    return body


@dataclass
class Fleet:
    """A ModelDeployment with real serving pods on the local cluster."""

    kubectl: Kubectl
    name: str

    def body(
        self,
        model: Model,
        *,
        replicas: int = 3,
        uri: str | None = None,
        digest: str | None = None,
        promotion: bool = False,
        annotations: dict[str, str] | None = None,
        **rollout: Any,
    ) -> dict[str, Any]:
        """The example ModelDeployment serving `model` (promotion gate off unless asked: tests
        move back and forth between models)."""
        body = example("cat-recognition.modeldeployment.yaml")
        body["metadata"]["name"] = self.name
        if annotations:
            body["metadata"]["annotations"] = dict(annotations)
        spec = body["spec"]
        spec["model"] = model.spec(uri, digest)
        spec["replicas"] = replicas
        del spec["serving"]["resources"]  # the local node has 2 cores
        spec["rollout"].update(rollout)
        if not promotion:
            del spec["promotion"]
        return body

    def apply(self, body: dict[str, Any]) -> str:
        result = self.kubectl.run("apply", "-f", "-", stdin=yaml.safe_dump(body, sort_keys=False), check=False)
        assert result.returncode == 0, result.stderr
        return result.stderr

    def get(self) -> dict[str, Any]:
        body: dict[str, Any] = self.kubectl.json("get", "modeldeployment", self.name)
        return body

    def status(self) -> dict[str, Any]:
        return dict(self.get().get("status") or {})

    def condition(self, kind: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
        conditions = (status if status is not None else self.status()).get("conditions") or []
        return next((c for c in conditions if c["type"] == kind), {})

    def pods(self) -> list[dict[str, Any]]:
        items = self.kubectl.json("get", "pods", "-l", f"overseer.dev/deployment={self.name}")["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def ips(self) -> list[str]:
        return sorted(p["status"]["podIP"] for p in self.pods() if p["status"].get("podIP"))

    def identities(self) -> dict[str, tuple[str, int]]:
        """Pod name -> (uid, restart count): unchanged means no pod was replaced or restarted."""
        return {
            p["metadata"]["name"]: (
                p["metadata"]["uid"],
                sum(c["restartCount"] for c in p["status"]["containerStatuses"]),
            )
            for p in self.pods()
        }

    def token(self) -> str:
        secret = self.kubectl.json("get", "secret", f"{self.name}-admin")
        return base64.b64decode(secret["data"]["token"]).decode()

    def served(self) -> dict[str, str]:
        """Pod IP -> the version its admin API says it serves."""
        token = self.token()
        out = {}
        for ip in self.ips():
            answer = httpx.get(f"http://{ip}:{PORT}/admin/model", headers={"Authorization": f"Bearer {token}"},
                               timeout=10)  # fmt: skip
            answer.raise_for_status()
            out[ip] = answer.json()["model"]["version"]
        return out

    def events(self) -> list[tuple[str, str, str]]:
        # The Deployment and the Service have the same name: only the ModelDeployment's own Events.
        selector = f"involvedObject.kind=ModelDeployment,involvedObject.name={self.name}"
        items = self.kubectl.json("get", "events", "--field-selector", selector)["items"]
        # In the order they were made (the operator creates each Event once): a resourceVersion
        # is etcd's revision, timestamps have one-second steps.
        items.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
        return [(e["type"], e["reason"], e["message"]) for e in items]

    def reasons(self) -> list[tuple[str, str]]:
        return [(kind, reason) for kind, reason, _ in self.events()]

    def wait(
        self, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = ROLLOUT_TIMEOUT
    ) -> dict[str, Any]:
        """Poll the status until `check(status)` holds."""
        return wait_for(lambda: (s := self.status()) and check(s) and s, timeout, what)

    def wait_serving(self, model: Model, replicas: int = 3, timeout: float = ROLLOUT_TIMEOUT) -> dict[str, Any]:
        """Every pod serves `model`, the rollout is complete and the deployment Ready."""

        def done(status: dict[str, Any]) -> bool:
            ready = self.condition("Ready", status)
            on = [r for r in status.get("replicas") or [] if r.get("version") == model.version]
            return (
                ready.get("status") == "True"
                and (status.get("model") or {}).get("version") == model.version
                and len(on) == replicas == len(status.get("replicas") or [])
            )

        return self.wait(done, f"every pod to serve {model.version}", timeout)


class StatusRecorder:
    """Every status the API server stores for the deployment while the block runs (a watch, not
    polling: no intermediate state is missed)."""

    def __init__(self, kubectl: Kubectl, name: str) -> None:
        self.kubectl = kubectl
        self.name = name
        self.seen: list[dict[str, Any]] = []
        self._proc: Any = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StatusRecorder:
        import subprocess

        k = self.kubectl
        cmd = [str(k.binary), f"--kubeconfig={k.kubeconfig}", f"--namespace={k.namespace}",
               "get", "modeldeployment", self.name, "--watch", "-o", "json"]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        decoder = json.JSONDecoder()
        buffer = ""
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            buffer += line
            with contextlib.suppress(ValueError):
                obj, end = decoder.raw_decode(buffer.strip())
                self.seen.append(copy.deepcopy(obj.get("status") or {}))
                buffer = buffer.strip()[end:]

    def __exit__(self, *_: Any) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
        if self._thread is not None:
            self._thread.join(10)

    def messages(self, kind: str) -> list[tuple[str, str, str]]:
        """(status, reason, message) of condition `kind`, in order, without repeats."""
        out: list[tuple[str, str, str]] = []
        for status in self.seen:
            found = next((c for c in status.get("conditions") or [] if c["type"] == kind), None)
            if found is not None:
                item = (found["status"], found["reason"], found["message"])
                if not out or out[-1] != item:
                    out.append(item)
        return out


@contextlib.contextmanager
def weights_server() -> Iterator[WeightsServer]:
    server = WeightsServer()
    try:
        yield server
    finally:
        server.close()
