"""Run the schema-overseer operator on a local stack, the way a user runs it on a cluster:
`make up` installs it with the project's Helm chart, `make status` shows it, `make down` stops the
stack (and the operator pod with it).

    python -m localcluster.overseer_operator up|down|status [--dir .cluster] [--mode chart|process]

`up --mode chart` (the default) runs `helm upgrade --install` of charts/schema-overseer into the
namespace `schema-overseer` (CRDs from the chart, the operator pod under its ServiceAccount and
RBAC with in-cluster config, the webhooks called through their Service) with
hack/localcluster/chart-values.yaml (`listenAddress: podIP`: pods of the local cluster share the
host's network), and waits until the API server reaches the webhooks.

`up --mode process` runs `python -m overseer.operator` as a local process instead (webhooks on
127.0.0.1 with a url clientConfig; log <dir>/logs/operator.log): a fast edit-restart loop for the
operator's own development, and what the operator's cluster tests start (one per module, dying
with the test process).
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
CHART = REPO_ROOT / "charts" / "schema-overseer"
CHART_VALUES = Path(__file__).with_name("chart-values.yaml")
RELEASE = "schema-overseer"
RELEASE_NAMESPACE = "schema-overseer"


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


def remove_webhooks(stack_dir: Path, *, only_managed_by: str | None = None) -> None:
    """Delete the webhook configurations (the operator's own registration); with `only_managed_by`,
    only when they carry that app.kubernetes.io/managed-by label (never a Helm release's)."""
    selector = ["-l", f"app.kubernetes.io/managed-by={only_managed_by}"] if only_managed_by else []
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        name = [] if only_managed_by else [WEBHOOK_CONFIGURATION]
        subprocess.run(
            [*_kubectl(stack_dir), "delete", kind, *name, *selector, "--ignore-not-found"],
            capture_output=True,
            timeout=30,
            check=False,
        )


# --- the operator installed with the Helm chart ------------------------------------------------------


@dataclass(frozen=True)
class ChartRelease:
    """A release of the chart on a local stack, and the helm and kubectl to reach it."""

    stack_dir: Path
    name: str = RELEASE
    namespace: str = RELEASE_NAMESPACE

    @property
    def fullname(self) -> str:
        """The chart's "schema-overseer.fullname" (no overrides): the name of its objects."""
        return self.name if "schema-overseer" in self.name else f"{self.name}-schema-overseer"

    @property
    def service_account(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.fullname}"

    def helm(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """helm of the stack (bin/helm), its state (cache, config, repositories) under <dir>/helm."""
        home = self.stack_dir / "helm"
        env = {**os.environ, "KUBECONFIG": str(self.stack_dir / "kubeconfig"), "HELM_NAMESPACE": self.namespace}
        env.update({f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")})
        result = subprocess.run(
            [str(self.stack_dir / "bin" / "helm"), *args],
            env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise OperatorError(f"helm {' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*_kubectl(self.stack_dir), *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
        )
        if check and result.returncode != 0:
            raise OperatorError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result


def install_chart(
    stack_dir: Path,
    *,
    release: str = RELEASE,
    namespace: str = RELEASE_NAMESPACE,
    values: tuple[Path, ...] = (CHART_VALUES,),
    settings: tuple[str, ...] = (),
    timeout: float = 180.0,
) -> ChartRelease:
    """`helm upgrade --install` the chart (`settings` are `--set` arguments) and wait until the
    operator pod is Ready and the API server reaches its webhooks through the Service."""
    chart = ChartRelease(stack_dir.resolve(), release, namespace)
    # What an earlier local-process operator left: its process and its url-mode webhooks.
    stop_operator(chart.stack_dir)
    remove_webhooks(chart.stack_dir, only_managed_by="schema-overseer")
    if "crds.enabled=false" not in settings:
        adopt_crds(chart)
    chart.helm(
        "upgrade", "--install", release, str(CHART), "--namespace", namespace, "--create-namespace",
        *(arg for path in values for arg in ("--values", str(path))),
        *(arg for setting in settings for arg in ("--set", setting)),
        "--wait", "--timeout", f"{int(timeout)}s",
        timeout=timeout + 30,
    )  # fmt: skip
    wait_webhooks_reachable(chart, timeout=60)
    return chart


def adopt_crds(chart: ChartRelease) -> None:
    """Let the release take over CRDs that exist without it (applied with kubectl, or kept by an
    uninstalled release of another name): Helm adopts an object that carries its release's
    ownership label and annotations (charts/schema-overseer/README.md, "CRDs")."""
    for name in CRDS:
        if chart.kubectl("get", "crd", name, "--ignore-not-found", "-o", "name").stdout.strip():
            chart.kubectl("label", "--overwrite", "crd", name, "app.kubernetes.io/managed-by=Helm")
            chart.kubectl(
                "annotate", "--overwrite", "crd", name,
                f"meta.helm.sh/release-name={chart.name}", f"meta.helm.sh/release-namespace={chart.namespace}",
            )  # fmt: skip


WEBHOOK_PROBE = """
apiVersion: overseer.dev/v1alpha1
kind: ModelSchema
metadata: {name: webhook-probe}
spec:
  versions:
  - version: 1
    labels: {type: object}
    metadata: {type: object}
    customObjects: {type: object}
"""


def wait_webhooks_reachable(chart: ChartRelease, timeout: float) -> None:
    """A server-side dry-run create passes the webhooks only when the API server reaches them
    (failurePolicy Fail): the Service routes to a ready operator with the right certificate."""
    deadline = time.monotonic() + timeout
    while True:
        probe = chart.kubectl(
            "create", "--dry-run=server", "-n", chart.namespace, "-f", "-", stdin=WEBHOOK_PROBE, check=False
        )
        if probe.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise OperatorError(f"the API server does not reach the operator's webhooks: {probe.stderr.strip()}")
        time.sleep(0.5)


def uninstall_chart(chart: ChartRelease, timeout: float = 120.0) -> None:
    chart.helm("uninstall", chart.name, "--namespace", chart.namespace, "--wait", "--timeout", f"{int(timeout)}s",
               check=False, timeout=timeout + 30)  # fmt: skip


def chart_status(chart: ChartRelease) -> str | None:
    """One line on the release and its pod, or None when it is not installed."""
    listed = chart.helm("list", "--namespace", chart.namespace, "--filter", f"^{chart.name}$", "-o", "json",
                        check=False)  # fmt: skip
    releases = json.loads(listed.stdout or "[]") if listed.returncode == 0 else []
    if not releases:
        return None
    release = releases[0]
    columns = "{range .items[*]}{.metadata.name} {.status.phase} ready={.status.containerStatuses[0].ready}{end}"
    pods = chart.kubectl(
        "get", "pods", "-n", chart.namespace, "-l", f"app.kubernetes.io/instance={chart.name}",
        "-o", f"jsonpath={columns}", check=False,
    ).stdout  # fmt: skip
    return (f"operator: helm release {chart.name} ({release['chart']}, revision {release['revision']}, "
            f"{release['status']}) in namespace {chart.namespace}; pod {pods or 'none'}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster.overseer_operator")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=Path(".cluster"))
    parser.add_argument(
        "--mode", choices=["chart", "process"], default="chart",
        help="up: install the Helm chart (default), or run the operator as a local process",
    )  # fmt: skip
    args = parser.parse_args(argv)
    chart = ChartRelease(args.dir.resolve())
    if args.command == "up":
        return _up_chart(chart) if args.mode == "chart" else _up_process(args.dir)
    if args.command == "down":
        # The operator pod stops with the stack; a local-process operator is stopped here.
        stop_operator(args.dir)
        return 0
    found = read_operator(args.dir)
    if found is not None and found.alive():
        print(f"operator: local process (pid {found.pid}); webhooks {found.webhook_url}; log: {found.log}")
        return 0
    line = chart_status(chart)
    print(line or "operator: not installed (make up)")
    return 0 if line else 1


def _up_chart(chart: ChartRelease) -> int:
    t0 = time.monotonic()
    try:
        install_chart(chart.stack_dir, release=chart.name, namespace=chart.namespace)
    except (OperatorError, subprocess.SubprocessError) as error:
        print(f"operator: {error}", file=sys.stderr)
        print(f"  pod log: make logs POD={chart.namespace}/{chart.fullname}", file=sys.stderr)
        return 1
    print(f"operator up in {time.monotonic() - t0:.1f}s: helm release {chart.name} in namespace {chart.namespace}, "
          f"webhooks through Service {chart.fullname}-webhook")  # fmt: skip
    print(f"  log: make logs POD={chart.namespace}/{chart.fullname}")
    return 0


def _up_process(stack_dir: Path) -> int:
    chart = ChartRelease(stack_dir.resolve())
    if chart_status(chart) is not None:
        # One operator at a time; its webhook configurations have the release's name too.
        print(f"operator: uninstalling helm release {chart.name} first (CRDs and objects stay)")
        uninstall_chart(chart)
    running = read_operator(stack_dir)
    if running is not None and running.alive():
        print(f"operator already running (pid {running.pid}); log: {running.log}")
        return 0
    t0 = time.monotonic()
    try:
        process = start_operator(stack_dir, webhook_port=running.webhook_port if running else None)
    except (OperatorError, subprocess.CalledProcessError) as error:
        print(f"operator: {error}", file=sys.stderr)
        return 1
    print(f"operator up in {time.monotonic() - t0:.1f}s (pid {process.pid}); log: {process.log}")
    print(f"  webhooks: {process.webhook_url}  metrics: {process.metrics_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
