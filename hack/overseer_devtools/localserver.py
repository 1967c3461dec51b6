"""Run `overseer serve` as a local process tree (on loopback by default) and stop it without orphans.

One implementation for the e2e tests and the benchmark:

    server = LocalServer.start(work_dir, document, token="t")
    seconds = server.wait_ready()          # polls /readyz with a deadline
    with server.admin() as c: c.put("/admin/model", json=other_document)
    server.stop()                          # SIGTERM to the process group, as a node agent does

The process runs in its own session, so the whole group can be signalled. BentoML's workers run in
sessions of their own (circus); `stop()` checks that they went with their parent. Only the
`serving` extra is needed (httpx); nothing here runs at import.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

OVERSEER = str(Path(sys.executable).with_name("overseer"))  # the console script of this environment
START_TIMEOUT_S = 180.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: [state, ppid, ...]; None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _start_ticks(pid: int) -> str | None:
    """When the process started (field 22 of /proc/<pid>/stat): tells a pid from its reuse."""
    stat = _stat(pid)
    return stat[19] if stat is not None else None


def clean_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without any OVERSEER_ setting, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVERSEER_")}
    env.update(overrides)
    return env


@dataclass
class LocalServer:
    """One `overseer serve` process tree."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    token: str
    started: float  # time.monotonic() at launch
    worker_pids: set[int] = field(default_factory=set)
    _worker_starts: dict[int, str | None] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        work: Path,
        document: Mapping[str, Any],
        *,
        token: str,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> LocalServer:
        """Write the model document and token into `work`, and launch `overseer serve` on them.

        `env` holds settings (OVERSEER_WORKERS, ...) added to this process's environment, from
        which every inherited OVERSEER_ variable is removed. Output goes to `work/server.log`.
        """
        work.mkdir(parents=True, exist_ok=True)
        model_file = work / "model.json"
        model_file.write_text(json.dumps(document))
        token_file = work / "token"
        token_file.write_text(token + "\n")
        port = port or free_port(host)
        log_path = work / "server.log"
        command = [OVERSEER, "serve", "--model-file", str(model_file), "--token-file", str(token_file)]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [*command, "--host", host, "--port", str(port)],
                env=clean_environment(**(env or {})),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        url_host = f"[{host}]" if ":" in host else host
        return cls(proc, f"http://{url_host}:{port}", log_path, token, time.monotonic())

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0, **kwargs)

    def admin(self) -> httpx.Client:
        return self.client(headers={"Authorization": f"Bearer {self.token}"})

    def model(self) -> dict[str, Any]:
        """GET /admin/model."""
        with self.admin() as c:
            answer = c.get("/admin/model")
            answer.raise_for_status()
            return dict(answer.json())

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> float:
        """Poll /readyz until 200; return the seconds since launch. Raises RuntimeError, with the
        end of the log, if the process exits or the deadline passes first."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.url}/readyz not 200 within {timeout:.0f} s:\n{self.log[-3000:]}")
            time.sleep(0.05)  # poll interval, bounded by the deadline above
        seconds = time.monotonic() - self.started
        self.note_workers()
        return seconds

    def note_workers(self) -> None:
        """Remember the worker processes GET /admin/model lists (to check they die with the server)."""
        for pid in {int(w["pid"]) for w in self.model()["workers"]} - self.worker_pids:
            self.worker_pids.add(pid)
            self._worker_starts[pid] = _start_ticks(pid)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM to the process group, SIGKILL if it has not exited within `timeout`; then check
        that no worker outlived it. Returns the exit code of `overseer serve`."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        deadline = time.monotonic() + 30
        while leftovers := [p for p in self.worker_pids if alive(p)]:
            if time.monotonic() > deadline:
                self.kill_leftovers()
                raise RuntimeError(f"worker processes {leftovers} outlived `overseer serve` (killed now)")
            time.sleep(0.1)  # poll interval, bounded by the deadline above
        return self.proc.returncode

    def kill_leftovers(self) -> None:
        """SIGKILL whatever of the tree is left: the last resort of a teardown. Never signals a
        pid that now belongs to another process."""
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        for pid in self.worker_pids:
            if alive(pid) and _start_ticks(pid) == self._worker_starts.get(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running(work: Path, document: Mapping[str, Any], *, token: str, **kwargs: Any) -> Iterator[LocalServer]:
    """A ready server for the duration of the block, stopped (and checked for orphans) after it."""
    server = LocalServer.start(work, document, token=token, **kwargs)
    try:
        server.wait_ready()
        yield server
    finally:
        try:
            server.stop()
        except BaseException:
            server.kill_leftovers()
            raise
