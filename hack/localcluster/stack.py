"""Start and stop the local control plane: etcd, kube-apiserver, kube-controller-manager, node agent.

State lives in one folder (`.cluster/` for `make up`, a temp folder for a test session):
state.json (ports, pids), certs/, logs/, kubeconfig, pods/. Starting over a stale folder from a
killed run stops whatever it recorded and starts clean; starting over a healthy one reuses it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import certs, loopback, procs

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "controlplane" / "build.sh"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "node-agent")
START_TIMEOUT = 120.0


class StackError(RuntimeError):
    """Starting the stack failed; the message says which component and where its log is."""


@dataclass(frozen=True)
class Stack:
    dir: Path
    kubeconfig: Path
    apiserver_url: str
    ip_block: int
    kubectl: Path  # built from the same Kubernetes release as the apiserver (no version skew)
    service_block: int = 0  # ClusterIPs are 127.<service_block>.x.y

    @property
    def bin_dir(self) -> Path:
        """kubectl and helm, for PATH."""
        return self.dir / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binaries() -> dict[str, Path]:
    """Build (or find cached) control-plane binaries; returns their paths."""
    try:
        out = subprocess.run(["bash", str(BUILD_SCRIPT), "all"], check=True, stdout=subprocess.PIPE, text=True).stdout
    except subprocess.CalledProcessError as e:
        raise StackError(f"building the control plane failed (exit {e.returncode}); see the messages above") from e
    paths = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {"etcd": Path(paths["ETCD"]), "kube-apiserver": Path(paths["KUBE_APISERVER"]),
            "kube-controller-manager": Path(paths["KUBE_CONTROLLER_MANAGER"]), "kubectl": Path(paths["KUBECTL"]),
            "helm": Path(paths["HELM"])}


def write_kubeconfig(path: Path, server: str, c: certs.ClusterCerts, user: str = "admin") -> None:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    cfg = {
        "apiVersion": "v1", "kind": "Config", "current-context": "local",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority-data": b64(c.ca_cert)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(c.admin_cert),
                                          "client-key-data": b64(c.admin_key)}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user, "namespace": "default"}}],
    }
    path.write_text(json.dumps(cfg, indent=2))  # JSON is valid YAML; kubectl reads it
    path.chmod(0o600)


def _read_state(d: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((d / "state.json").read_text()))
    except (OSError, ValueError):
        return None


def _spawn(name: str, argv: list[str], d: Path, env: dict[str, str] | None = None,
           pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    log = (d / "logs" / f"{name}.log").open("ab")
    try:
        # A new session: the stack outlives `make up`, and one killpg stops each component's tree.
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, pass_fds=pass_fds)
    finally:
        log.close()


def _wait(what: str, check: Any, d: Path, log_name: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log_tail = _tail(d / "logs" / log_name)
            raise StackError(f"{what} exited with code {proc.returncode}; last log lines:\n{log_tail}")
        try:
            if check():
                return
        except Exception as e:
            last_error = str(e)
        time.sleep(0.2)
    raise StackError(f"{what} not ready after {timeout:.0f}s ({last_error}); log: {d / 'logs' / log_name}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _https_ok(url: str, c: certs.ClusterCerts) -> bool:
    ctx = ssl.create_default_context(cafile=str(c.ca_cert))
    ctx.load_cert_chain(str(c.admin_cert), str(c.admin_key))
    with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
        return bool(resp.status == 200)


def is_healthy(d: Path) -> bool:
    state = _read_state(d)
    if not state:
        return False
    for name in COMPONENTS:
        pid, started = state["pids"].get(name, (0, None))
        if not procs.is_same_process(pid, started):
            return False
    try:
        return _https_ok(state["apiserver_url"] + "/readyz", _certs_of(d))
    except Exception:
        return False


def _certs_of(d: Path) -> certs.ClusterCerts:
    c = d / "certs"
    return certs.ClusterCerts(c / "ca.crt", c / "ca.key", c / "apiserver.crt", c / "apiserver.key",
                              c / "admin.crt", c / "admin.key", c / "sa.pub", c / "sa.key")


def start_stack(d: Path, owner_pid: int | None = None, timeout: float = START_TIMEOUT) -> Stack:
    """Start the stack in folder d (reusing a healthy one); raises StackError with the reason."""
    d = d.resolve()
    state = _read_state(d)
    if state and is_healthy(d):
        return Stack(d, d / "kubeconfig", state["apiserver_url"], state["ip_block"], Path(state["kubectl"]),
                     state.get("service_block", 0))
    if d.exists() and any(d.iterdir()):
        if state is None:
            # Not a stack folder (or one too broken to know): never delete what we did not make.
            raise StackError(f"{d} exists, is not empty and holds no state.json: choose another --dir or remove it")
        stop_stack(d)  # stale from a killed run: stop what it recorded, start clean
        shutil.rmtree(d, ignore_errors=True)
    bins = binaries()
    for attempt in range(2):  # a freshly picked port can be taken in between: pick again once
        try:
            blocks = loopback.reserve(2)
        except RuntimeError as e:
            raise StackError(str(e)) from e
        try:
            return _start(d, bins, owner_pid, timeout, blocks)
        except StackError:
            stop_stack(d)
            if attempt == 1:
                raise
            shutil.rmtree(d, ignore_errors=True)
        finally:
            blocks.release()  # the node agent holds its own copies of the locks while it runs
    raise AssertionError("unreachable")


def _start(d: Path, bins: dict[str, Path], owner_pid: int | None, timeout: float,
           blocks: loopback.Reservation) -> Stack:
    (d / "logs").mkdir(parents=True, exist_ok=True)
    ip_block, service_block = blocks.blocks
    c = certs.generate(d / "certs", service_ip=loopback.kubernetes_service_ip(service_block))
    etcd_port, peer_port, api_port, kcm_port = free_port(), free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    state: dict[str, Any] = {"apiserver_url": server, "ip_block": ip_block, "service_block": service_block,
                             "pids": {}, "kubectl": str(bins["kubectl"]),
                             "ports": {"etcd": etcd_port, "apiserver": api_port}}

    def save(name: str, proc: subprocess.Popen[bytes]) -> None:
        state["pids"][name] = (proc.pid, procs.start_time(proc.pid))
        (d / "state.json").write_text(json.dumps(state, indent=2))

    etcd = _spawn("etcd", [
        str(bins["etcd"]), "--name=local", f"--data-dir={d / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{etcd_port}", f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
        f"--listen-peer-urls=http://127.0.0.1:{peer_port}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-cluster=local=http://127.0.0.1:{peer_port}", "--unsafe-no-fsync", "--log-level=warn",
    ], d)
    save("etcd", etcd)
    _wait("etcd", lambda: urllib.request.urlopen(f"http://127.0.0.1:{etcd_port}/health", timeout=2).status == 200,
          d, "etcd.log", etcd, timeout)

    apiserver = _spawn("kube-apiserver", [
        str(bins["kube-apiserver"]), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1", f"--secure-port={api_port}", "--advertise-address=127.0.0.1",
        f"--tls-cert-file={c.serving_cert}", f"--tls-private-key-file={c.serving_key}",
        f"--client-ca-file={c.ca_cert}", f"--cert-dir={d / 'certs'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={c.sa_public}", f"--service-account-signing-key-file={c.sa_private}",
        # Loopback ClusterIPs: the node agent's proxy listens on them, so Services (webhooks too) route.
        f"--service-cluster-ip-range={loopback.service_range(service_block)}", "--authorization-mode=RBAC",
        # Endpoints may not hold loopback addresses, so the apiserver does not publish its own.
        "--endpoint-reconciler-type=none", "--allow-privileged=true", "--profiling=false",
    ], d)
    save("kube-apiserver", apiserver)
    _wait("kube-apiserver", lambda: _https_ok(server + "/readyz", c), d, "kube-apiserver.log", apiserver, timeout)
    write_kubeconfig(d / "kubeconfig", server, c)

    kcm = _spawn("kube-controller-manager", [
        str(bins["kube-controller-manager"]), f"--kubeconfig={d / 'kubeconfig'}",
        f"--authentication-kubeconfig={d / 'kubeconfig'}", f"--authorization-kubeconfig={d / 'kubeconfig'}",
        "--bind-address=127.0.0.1", f"--secure-port={kcm_port}", f"--cert-dir={d / 'certs' / 'kcm'}",
        f"--service-account-private-key-file={c.sa_private}", f"--root-ca-file={c.ca_cert}",
        f"--cluster-signing-cert-file={c.ca_cert}", f"--cluster-signing-key-file={c.ca_key}",
        # The node agent reports health itself; without a real kubelet, node lifecycle would evict.
        "--controllers=*,-nodelifecycle,-nodeipam", "--leader-elect=false",
        "--use-service-account-credentials=false",
    ], d)
    save("kube-controller-manager", kcm)

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "hack"), env.get("PYTHONPATH")]))
    # Pods run commands as an image's PATH would find them: `overseer serve` from the project's venv.
    env["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH")]))
    agent_argv = [sys.executable, "-m", "localcluster.nodeagent", f"--kubeconfig={d / 'kubeconfig'}",
                  f"--dir={d}", f"--ip-block={ip_block}"]
    if owner_pid:
        agent_argv.append(f"--owner-pid={owner_pid}")
    agent = _spawn("node-agent", agent_argv, d, env, pass_fds=tuple(blocks.fds))  # it holds the blocks
    save("node-agent", agent)
    _wait("kube-controller-manager and node agent", lambda: _cluster_ready(d, bins["kubectl"]), d, "node-agent.log",
          agent, timeout)
    if kcm.poll() is not None:
        raise StackError(f"kube-controller-manager exited; log:\n{_tail(d / 'logs' / 'kube-controller-manager.log')}")
    (d / "bin").mkdir(exist_ok=True)
    for tool in ("kubectl", "helm"):
        (d / "bin" / tool).symlink_to(bins[tool])
    return Stack(d, d / "kubeconfig", server, ip_block, bins["kubectl"], service_block)


def _cluster_ready(d: Path, kubectl: Path) -> bool:
    """Ready when node local-0 is Ready, the controllers made the default service account and the
    root CA ConfigMap (every pod mounts it with its token), and `kubernetes.default` is proxied."""
    kc = str(d / "kubeconfig")
    wanted = ["node/local-0", "serviceaccount/default", "configmap/kube-root-ca.crt", "service/kubernetes"]
    found = subprocess.run([str(kubectl), f"--kubeconfig={kc}", "-n", "default", "get", "-o", "json", *wanted],
                           capture_output=True, text=True, timeout=10, check=False)
    if found.returncode != 0:
        return False
    items = {i["kind"]: i for i in json.loads(found.stdout)["items"]}
    node_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in items["Node"]["status"]["conditions"])
    if os.geteuid() == 0:  # without root the agent cannot listen on port 443 (it says so in its log)
        try:
            socket.create_connection((items["Service"]["spec"]["clusterIP"], 443), timeout=1).close()
        except OSError:
            return False
    return node_ready


def stop_stack(d: Path, keep_agent: bool = False) -> None:
    """Stop everything recorded in d: pod processes, then agent, controller-manager, apiserver, etcd."""
    from .overseer_operator import stop_operator

    stop_operator(d)  # the operator first: it would only log errors against a stopping API server
    state = _read_state(d)
    pids = (state or {}).get("pids", {})
    if not keep_agent and "node-agent" in pids:
        pid, started = pids["node-agent"]
        procs.stop_group(pid, started, grace=20)
    # Pod processes die with the agent (PDEATHSIG); reap any group that survived, e.g. children.
    for record in (d / "pods").glob("*/process.json") if (d / "pods").exists() else []:
        rec = procs.read_record(record)
        if rec:
            procs.stop_group(rec[0], rec[1], grace=2)
    for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
        if name in pids:
            pid, started = pids[name]
            procs.stop_group(pid, started, grace=10)
