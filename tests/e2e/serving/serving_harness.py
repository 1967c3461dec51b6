"""Run `overseer serve` as a real process tree on loopback, and stop it without leaving orphans."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from support.polling import wait_for

TOKEN = "e2e-admin-token"
OVERSEER = str(Path(sys.executable).with_name("overseer"))
START_TIMEOUT = 120.0  # the machine may be busy (a Go build runs beside the tests)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def schema_snapshot(version: int = 1) -> dict[str, Any]:
    return {
        "name": "object-detector",
        "version": version,
        "labels": {"type": "object", "required": ["owner"], "properties": {"owner": {"type": "string"}}},
        "metadata": {"type": "object", "properties": {"f1": {"type": "number", "minimum": 0, "maximum": 1}}},
        "customObjects": {
            "type": "object",
            "required": ["conf"],
            "properties": {
                "resize_resolution": {"type": "integer", "default": 320},
                "conf": {"type": "number", "minimum": 0, "maximum": 1},
                "max_det": {"type": "integer", "default": 20},
                "multi_label": {"type": "boolean"},
            },
        },
    }


@dataclass(frozen=True)
class ModelFile:
    path: Path
    digest: str
    name: str
    version: str

    @property
    def uri(self) -> str:
        return f"file://{self.path}"

    def document(self, **overrides: Any) -> dict[str, Any]:
        model = {
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "digest": self.digest,
            "labels": {"owner": "ml-team"},
            "metadata": {"f1": 0.8},
            "customObjects": {"conf": 0.25},
        }
        model.update(overrides)
        return {"model": model, "schema": schema_snapshot()}


@dataclass
class Server:
    """One `overseer serve` process (its own session, so the whole group can be signalled)."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    worker_pids: set[int] = field(default_factory=set)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0, **kwargs)

    def admin(self) -> httpx.Client:
        return self.client(headers={"Authorization": f"Bearer {TOKEN}"})

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200
            return False

        wait_for(ready, timeout, f"{self.url}/readyz")
        with self.admin() as c:
            self.worker_pids |= {int(w["pid"]) for w in c.get("/admin/model").json()["workers"]}

    def model(self) -> dict[str, Any]:
        with self.admin() as c:
            answer = c.get("/admin/model")
            answer.raise_for_status()
            return dict(answer.json())

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM to the process group, as the node agent does; SIGKILL only if that fails."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # Workers run in their own sessions (circus); they must have gone with their parent.
        wait_for(lambda: not [p for p in self.worker_pids if alive(p)], 30, "worker processes to exit")
        return self.proc.returncode

    def kill_leftovers(self) -> None:
        for pid in [self.proc.pid, *self.worker_pids]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def serve_env(state_root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVERSEER_")}
    env.update({"OVERSEER_LOG_FORMAT": "json", "OVERSEER_CACHE_DIR": str(state_root / "cache"), **extra})
    return env


def start_server(
    tmp: Path,
    document: dict[str, Any],
    *,
    host: str = "127.0.0.1",
    workers: int = 1,
    wait: bool = True,
    env: dict[str, str] | None = None,
) -> Server:
    tmp.mkdir(parents=True, exist_ok=True)
    model_file = tmp / "model.json"
    model_file.write_text(json.dumps(document))
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port(host)
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                OVERSEER,
                "serve",
                "--model-file",
                str(model_file),
                "--token-file",
                str(token_file),
                "--host",
                host,
                "--port",
                str(port),
            ],
            env=serve_env(tmp, OVERSEER_WORKERS=str(workers), **(env or {})),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Server(proc, f"http://{host}:{port}", log_path)
    if wait:
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            server.kill_leftovers()
            raise
    return server


@contextlib.contextmanager
def running(tmp: Path, document: dict[str, Any], **kwargs: Any) -> Iterator[Server]:
    server = start_server(tmp, document, **kwargs)
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            server.kill_leftovers()


@contextlib.contextmanager
def file_server(root: Path) -> Iterator[str]:
    """A plain HTTP server on loopback serving `root`, for http:// weights URIs."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


def until(deadline_s: float) -> float:
    return time.monotonic() + deadline_s
