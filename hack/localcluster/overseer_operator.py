"""Run the schema-overseer operator against a local stack: `make up` starts it in the background,
`make down` stops it, tests start one per module (it dies with the test process).

    python -m localcluster.overseer_operator up|down|status [--dir .cluster]

`up` applies the CRDs, starts `python -m overseer.operator` in local mode (webhooks served on
127.0.0.1 over HTTPS with a CA of its own, registered with a url clientConfig), waits until the
liveness endpoint answers and the API server reaches the webhooks, and records the process in
<dir>/operator/operator.json. Its log is <dir>/logs/operator.log.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import procs

REPO_ROOT = Path(__file__).resolve().parents[2]
CRDS = ("modelschemas.overseer.dev", "modeldeployments.overseer.dev")
WEBHOOK_CONFIGURATION = "schema-overseer"
START_TIMEOUT = 90.0


class OperatorError(RuntimeError):
    """The operator did not start; the message names the reason and the log."""


@dataclass(frozen=True)
class OperatorProcess:
    pid: int
    started: int | None
    webhook_port: int
    metrics_port: int
    liveness_port: int
    log: Path

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def webhook_url(self) -> str:
        return f"https://127.0.0.1:{self.webhook_port}"

    @property
    def ca_file(self) -> Path:
        return self.log.parent.parent / "operator" / "certs" / "ca.crt"

    def alive(self) -> bool:
        return procs.is_same_process(self.pid, self.started)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _record(stack_dir: Path) -> Path:
    return stack_dir / "operator" / "operator.json"


def _kubectl(stack_dir: Path) -> list[str]:
    state = json.loads((stack_dir / "state.json").read_text())
    return [state["kubectl"], f"--kubeconfig={stack_dir / 'kubeconfig'}"]


def apply_crds(stack_dir: Path) -> None:
    kubectl = _kubectl(stack_dir)
    subprocess.run([*kubectl, "apply", "-f", str(REPO_ROOT / "crds")], check=True, capture_output=True, timeout=60)
    for name in CRDS:
        subprocess.run(
            [*kubectl, "wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s"],
            check=True,
            capture_output=True,
            timeout=90,
        )


def start_operator(
    stack_dir: Path,
    *,
    die_with_caller: bool = False,
    env: dict[str, str] | None = None,
    webhook_port: int | None = None,
    timeout: float = START_TIMEOUT,
) -> OperatorProcess:
    """Start the operator for the stack in `stack_dir` (CRDs applied first).

    `die_with_caller`: the operator gets SIGKILL when the calling process dies (tests: no orphan
    even when pytest is killed). `webhook_port`: keep the port of an earlier run (a restart), so
    the registered configurations stay right even before it re-registers them.
    """
    stack_dir = stack_dir.resolve()
    apply_crds(stack_dir)
    op_dir = stack_dir / "operator"
    op_dir.mkdir(parents=True, exist_ok=True)
    (stack_dir / "logs").mkdir(exist_ok=True)
    log = stack_dir / "logs" / "operator.log"
    ports = {"webhook": webhook_port or _free_port(), "metrics": _free_port(), "liveness": _free_port()}
    argv = [
        sys.executable, "-m", "overseer.operator",
        "--kubeconfig", str(stack_dir / "kubeconfig"),
        "--webhook-mode", "url",
        "--webhook-host", "127.0.0.1",
        "--webhook-addr", "127.0.0.1",
        "--webhook-port", str(ports["webhook"]),
        "--webhook-cert-dir", str(op_dir / "certs"),
        "--metrics-addr", "127.0.0.1",
        "--metrics-port", str(ports["metrics"]),
        "--liveness-port", str(ports["liveness"]),
    ]  # fmt: skip
    child_env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    # This checkout's code, whatever is installed in the venv (git worktrees share one venv).
    child_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT / "operator"), str(REPO_ROOT / "serving"), child_env.get("PYTHONPATH")])
    )
    child_env.update(env or {})
    preexec = functools.partial(procs.die_with_parent, os.getpid()) if die_with_caller else None
    with log.open("ab") as out:
        # preexec_fn only calls setsid and prctl (as the node agent does): no locks taken.
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            start_new_session=not die_with_caller,
            preexec_fn=preexec,  # noqa: PLW1509
        )
    process = OperatorProcess(
        proc.pid, procs.start_time(proc.pid), ports["webhook"], ports["metrics"], ports["liveness"], log
    )
    _record(stack_dir).write_text(json.dumps({**process.__dict__, "log": str(log)}))
    try:
        _wait_ready(stack_dir, process, proc, timeout)
    except BaseException:
        stop_operator(stack_dir)
        raise
    return process


def _wait_ready(stack_dir: Path, process: OperatorProcess, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "not started"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise OperatorError(f"the operator exited with code {proc.returncode}; log:\n{_tail(process.log)}")
        try:
            if _ready(stack_dir, process):
                return
            last = "webhooks not registered yet"
        except (OSError, ValueError, subprocess.SubprocessError) as error:
            last = str(error)
        time.sleep(0.2)
    raise OperatorError(f"the operator was not ready after {timeout:.0f}s ({last}); log: {process.log}")


def _ready(stack_dir: Path, process: OperatorProcess) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{process.liveness_port}/healthz", timeout=2) as answer:
        if answer.status != 200:
            return False
    context = ssl.create_default_context(cafile=str(process.ca_file))
    with (
        socket.create_connection(("127.0.0.1", process.webhook_port), timeout=2) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1"),
    ):
        pass
    config = subprocess.run(
        [*_kubectl(stack_dir), "get", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    if config.returncode != 0:
        return False
    urls = [w["clientConfig"].get("url", "") for w in json.loads(config.stdout).get("webhooks", [])]
    return bool(urls) and all(f":{process.webhook_port}/" in url for url in urls)


def read_operator(stack_dir: Path) -> OperatorProcess | None:
    try:
        data: dict[str, Any] = json.loads(_record(stack_dir).read_text())
        data["log"] = Path(data["log"])
        return OperatorProcess(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def stop_operator(stack_dir: Path, *, grace: float = 10.0) -> None:
    """SIGTERM (Kopf stops its handlers), SIGKILL after `grace`. The webhook configurations stay:
    with the operator down, overseer.dev objects are refused and nothing else is affected."""
    process = read_operator(stack_dir)
    if process is not None:
        procs.stop_group(process.pid, process.started, grace=grace)
        _record(stack_dir).unlink(missing_ok=True)


def remove_webhooks(stack_dir: Path) -> None:
    """Delete the webhook configurations (the operator's own registration)."""
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        subprocess.run(
            [*_kubectl(stack_dir), "delete", kind, WEBHOOK_CONFIGURATION, "--ignore-not-found"],
            capture_output=True,
            timeout=30,
            check=False,
        )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster.overseer_operator")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=Path(".cluster"))
    args = parser.parse_args(argv)
    if args.command == "up":
        running = read_operator(args.dir)
        if running is not None and running.alive():
            print(f"operator already running (pid {running.pid}); log: {running.log}")
            return 0
        t0 = time.monotonic()
        try:
            process = start_operator(args.dir, webhook_port=running.webhook_port if running else None)
        except (OperatorError, subprocess.CalledProcessError) as error:
            print(f"operator: {error}", file=sys.stderr)
            return 1
        print(f"operator up in {time.monotonic() - t0:.1f}s (pid {process.pid}); log: {process.log}")
        print(f"  webhooks: {process.webhook_url}  metrics: {process.metrics_url}")
        return 0
    if args.command == "down":
        stop_operator(args.dir)
        print("operator stopped")
        return 0
    found = read_operator(args.dir)
    if found is not None and found.alive():
        print(f"operator running (pid {found.pid}); webhooks {found.webhook_url}; log: {found.log}")
        return 0
    print("operator not running")
    return 1


if __name__ == "__main__":
    sys.exit(main())
