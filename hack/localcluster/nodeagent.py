"""The local node agent: one Ready node (`local-0`) standing in for kubelet, a container runtime and
kube-proxy.

It binds pending pods to itself (there is no kube-scheduler), runs each pod's first container
command as a host process bound to the pod's own loopback address, in a mount namespace of its own
where the pod's volumes (its ServiceAccount token too) sit at their mountPaths, publishes that
address as status.podIP, drives Ready from the readinessProbe (httpGet), restarts exited processes
with back-off, and on graceful deletion sends SIGTERM, waits the grace period, then removes the
pod. Its service proxy makes every Service's ClusterIP:port reach the ready pods behind it.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import functools
import http.client
import json
import logging
import os
import select
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from . import procs
from .mounts import Mount, plan_mounts
from .podspec import PodSpecError, build_process
from .proxy import ServiceProxy
from .services import Frontend, hosts_file, pod_hostname, service_env
from .tokens import PodTokens, parse_expiry
from .volumes import contained, sync_volumes

log = logging.getLogger("localcluster.nodeagent")

NODE_NAME = "local-0"
RESTART_BACKOFF_MAX = 20.0  # kubelet caps at 5 min; shorter here so tests see restarts quickly
VOLUME_RESYNC_SECONDS = 2.0
LOG_TAIL_BYTES = 2048
CONFIG_RETRY_MAX = 2.0  # a pod waiting for a ConfigMap, Secret or token is retried at most this often
LAUNCH_TIMEOUT = 30.0
PODINIT = Path(__file__).with_name("podinit.py")
# What a pod process runs from and what tests hand files through: visible even under a volume.
HOST_PATHS = sorted({"/tmp", os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix),
                     str(Path(__file__).resolve().parents[2])})


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class IPPool:
    """Hands out 127.<block>.x.y addresses round-robin, so a freed address is not reused soon."""

    def __init__(self, block: int) -> None:
        self._free = [f"127.{block}.{hi}.{lo}" for hi in range(4) for lo in range(2, 255)]
        self._lock = threading.Lock()
        self._next = 0
        self._used: set[str] = set()

    def allocate(self) -> str:
        with self._lock:
            for i in range(len(self._free)):
                ip = self._free[(self._next + i) % len(self._free)]
                if ip not in self._used:
                    self._used.add(ip)
                    self._next = (self._next + i + 1) % len(self._free)
                    return ip
        raise RuntimeError("no free pod IP")

    def release(self, ip: str) -> None:
        with self._lock:
            self._used.discard(ip)


class Probe:
    """httpGet probe state with Kubernetes' thresholds."""

    def __init__(self, spec: Mapping[str, Any] | None, initial: bool) -> None:
        # Readiness starts failing and must pass first; liveness starts passing and must fail
        # failureThreshold times in a row, also for a process that never answers at all.
        self.spec = spec or {}
        self.result = initial
        self._streak = 0
        self._next_at = 0.0
        self._started = time.monotonic()

    def due(self) -> bool:
        if not self.spec:
            return False
        t = time.monotonic()
        return t - self._started >= self.spec.get("initialDelaySeconds", 0) and t >= self._next_at

    def run(self, pod_ip: str, container: Mapping[str, Any]) -> bool:
        """Probe once; returns True when the result flipped."""
        self._next_at = time.monotonic() + self.spec.get("periodSeconds", 10)
        ok = _http_probe(self.spec.get("httpGet"), pod_ip, container, self.spec.get("timeoutSeconds", 1))
        if ok == self.result:
            self._streak = 0
            return False
        self._streak += 1
        threshold = self.spec.get("successThreshold", 1) if ok else self.spec.get("failureThreshold", 3)
        if self._streak >= threshold:
            self.result, self._streak = ok, 0
            return True
        return False


def _http_probe(http_get: Mapping[str, Any] | None, pod_ip: str, container: Mapping[str, Any], timeout: float) -> bool:
    if not http_get:
        return True  # exec/tcpSocket probes are not emulated: treat as passing
    port = http_get["port"]
    if isinstance(port, str):
        named = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
        port = named.get(port, 0)
    host = http_get.get("host") or pod_ip
    try:
        if http_get.get("scheme", "HTTP").upper() == "HTTPS":  # kubelet does not verify the certificate
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, int(port), timeout=timeout, context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        conn.request("GET", http_get.get("path", "/"))
        status = conn.getresponse().status
        conn.close()
    except (OSError, http.client.HTTPException):  # refused, reset, garbage status line, ...
        return False
    return 200 <= status < 400


def _prepare_sub_paths(mounts: list[Mount], volume_dirs: Mapping[str, Path]) -> None:
    """A subPath must stay inside its volume, also through a symlink the pod made there (the classic
    subPath escape); a missing one is created as a folder, as kubelet does."""
    roots = sorted({str(p) for p in volume_dirs.values()}, key=len, reverse=True)
    for m in mounts:
        root = next((Path(r) for r in roots if str(m.source).startswith(r.rstrip("/") + "/")), None)
        if root is None:
            continue  # a whole volume (or the hosts file), not a subPath
        try:
            source = contained(root, str(m.source.relative_to(root)))
        except PodSpecError as e:
            raise PodSpecError(f"mountPath {m.target}: {e}", reason="CreateContainerError") from e
        if not source.exists():
            source.mkdir(parents=True, exist_ok=True)


def launch(argv: list[str], env: Mapping[str, str], cwd: str | None, mounts: list[Mount], pod_dir: Path,
           hostname: str, logfile: Any) -> subprocess.Popen[bytes]:
    """Start the pod's process through podinit.py: its own mount namespace, its volumes mounted.

    Returns once the command runs (podinit's status pipe closes on exec); a mount or exec failure
    is raised as PodSpecError carrying podinit's reason and message.
    """
    staging = pod_dir / "rootfs"  # podinit's scratch mount point for a new root, empty on the host
    staging.mkdir(parents=True, exist_ok=True)
    plan = {"argv": argv, "cwd": cwd, "scratch": str(pod_dir), "staging": str(staging), "hostname": hostname,
            "mounts": [m.as_plan() for m in mounts], "keep": HOST_PATHS}
    status_read, status_write = os.pipe()
    try:
        # preexec_fn is needed for PDEATHSIG; it only calls setsid and prctl (no locks taken).
        # -I -S: the pod's PYTHON* variables and site-packages cannot change how podinit runs.
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(PODINIT), json.dumps(plan), str(status_write)],
            env=dict(env), cwd=pod_dir, stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
            pass_fds=(status_write,), preexec_fn=functools.partial(procs.die_with_parent, os.getpid()),  # noqa: PLW1509
        )
    except OSError as e:
        os.close(status_read)
        raise PodSpecError(f"cannot start the pod launcher: {e.strerror}", reason="RunContainerError") from e
    finally:
        os.close(status_write)
    try:
        report = _read_until_eof(status_read, LAUNCH_TIMEOUT)
    finally:
        os.close(status_read)
    if report is None or report:
        procs.stop_group(proc.pid, None, 1, reap=False)
        proc.wait()
        if report is None:
            raise PodSpecError(f"the pod launcher did not start the command within {LAUNCH_TIMEOUT:.0f}s",
                               reason="RunContainerError")
        problem = json.loads(report)
        raise PodSpecError(problem["message"], reason=problem["reason"])
    return proc


def _read_until_eof(fd: int, timeout: float) -> bytes | None:
    """All bytes until the writer closes; None when it stays open past the timeout."""
    deadline = time.monotonic() + timeout
    data = b""
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return data
            data += chunk
    return None


class PodRunner(threading.Thread):
    """Supervises one pod: its process, probes, restarts and status."""

    def __init__(self, agent: NodeAgent, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.agent = agent
        self.pod = pod
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.container = pod["spec"]["containers"][0]
        self.pod_dir = agent.workdir / "pods" / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        self.ip = agent.ips.allocate()
        self.stop_requested = threading.Event()
        self.stopped = threading.Event()
        self.grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
        self.proc: subprocess.Popen[bytes] | None = None
        self.restart_count = 0
        self.started_at = now()
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.ready = False
        self._last_status: str = ""
        self._log_offset = 0
        self._transitions: dict[str, tuple[str, str]] = {}  # condition type -> (status, since)
        self.ever_started = False
        self.cut_short = threading.Event()  # a later, shorter deletion grace (force delete)
        self.tokens = PodTokens(agent.request_token)
        self.hostname = pod_hostname(pod)
        self._reported: tuple[str, str] | None = None  # the last problem sent as an Event

    # -- status ---------------------------------------------------------------------------------
    def publish(self, phase: str | None = None) -> None:
        """Patch the pod status; an unchanged status is not sent. Failures are retried on the next
        change or loop, never fatal: the apiserver may be restarting."""
        ready = "True" if self.ready else "False"
        if phase is None:
            phase = "Running" if self.ever_started else "Pending"
        conditions = [
            {"type": "PodReadyToStartContainers", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": ready},
            {"type": "Ready", "status": ready},
            {"type": "PodScheduled", "status": "True"},
        ]
        # Explicit nulls drop the other state keys under a strategic merge patch.
        state = {"running": None, "waiting": None, "terminated": None, **self.state}
        last = {"running": None, "waiting": None, "terminated": None, **self.last_state} if self.last_state else {}
        status = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self.started_at,
            "conditions": conditions,
            "containerStatuses": [{
                "name": self.container["name"],
                "image": self.container.get("image", "local"),
                "imageID": "",
                "containerID": f"local://{self.proc.pid}" if self.proc else "",
                "ready": self.ready,
                "started": "running" in self.state,
                "restartCount": self.restart_count,
                "state": state,
                "lastState": last,
            }],
        }
        fingerprint = json.dumps(status, sort_keys=True)
        if fingerprint == self._last_status:
            return
        for c in conditions:  # the transition time moves only when the condition's status does
            previous = self._transitions.get(c["type"])
            if previous is None or previous[0] != c["status"]:
                self._transitions[c["type"]] = (c["status"], now())
            c["lastTransitionTime"] = self._transitions[c["type"]][1]
        try:
            self.agent.core.patch_namespaced_pod_status(
                self.name, self.namespace, {"status": status},
                _content_type="application/strategic-merge-patch+json",
            )
            self._last_status = fingerprint
        except ApiException as e:
            if e.status != 404:
                log.warning("status update of %s/%s failed: %s", self.namespace, self.name, e.reason)
        except Exception as e:  # connection refused while the apiserver restarts, ...
            log.warning("status update of %s/%s failed: %s", self.namespace, self.name, e)

    # -- process --------------------------------------------------------------------------------
    def _volumes(self) -> dict[str, Path]:
        try:
            return sync_volumes(self.pod, self.pod_dir, self.ip, self.agent.read_object, self.tokens.get)
        except PodSpecError as e:  # kubelet keeps the pod ContainerCreating (FailedMount) until it can mount
            raise PodSpecError(str(e), reason="ContainerCreating") from e

    def _write_hosts(self) -> Path:
        """The pod's /etc/hosts, rewritten in place (the bind mount keeps the inode) when Services change."""
        path = self.pod_dir / "hosts"
        text = hosts_file(self.agent.proxy.services(), self.namespace, self.ip, self.hostname).encode()
        if not path.exists() or path.read_bytes() != text:
            with path.open("r+b" if path.exists() else "wb") as f:
                f.write(text)
                f.truncate()
        return path

    def _spawn(self) -> None:
        volume_dirs = self._volumes()
        links = self.pod["spec"].get("enableServiceLinks", True) is not False
        # The runtime sets HOSTNAME; the container's own env may still override it.
        base_env = {**self.agent.base_env, "HOSTNAME": self.hostname}
        spec = build_process(self.pod, self.ip, base_env, self.agent.read_object,
                             service_env(self.agent.proxy.services(), self.namespace, links))
        self.pod_dir.mkdir(parents=True, exist_ok=True)
        mounts = plan_mounts(self.pod, self.container, volume_dirs, spec.declared, hosts=self._write_hosts())
        _prepare_sub_paths(mounts, volume_dirs)
        logfile = (self.pod_dir / "container.log").open("ab")
        logfile.write(f"--- {now()} start #{self.restart_count}: {' '.join(spec.argv)}\n".encode())
        logfile.flush()
        self._log_offset = logfile.tell()  # this run's output starts here (for termination messages)
        try:
            self.proc = launch(spec.argv, spec.env, spec.cwd, mounts, self.pod_dir, self.hostname, logfile)
        finally:
            logfile.close()
        procs.record(self.pod_dir / "process.json", self.proc.pid)
        self.ever_started = True
        self.state = {"running": {"startedAt": now()}}
        readiness = self.container.get("readinessProbe")
        self.readiness = Probe(readiness, initial=readiness is None)  # no probe: ready once running
        self.liveness = Probe(self.container.get("livenessProbe"), initial=True)
        self.ready = self.readiness.result
        log.info("started %s/%s pid %d on %s", self.namespace, self.name, self.proc.pid, self.ip)

    def _log_tail(self) -> str:
        try:
            with (self.pod_dir / "container.log").open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(self._log_offset, f.tell() - LOG_TAIL_BYTES))
                return f.read().decode(errors="replace").strip()
        except OSError:
            return ""

    def _on_exit(self, returncode: int) -> float | None:
        """Record the exit; returns the back-off before a restart, or None when the pod is done."""
        code = 128 - returncode if returncode < 0 else returncode  # killed by signal N: 128+N, as runtimes report
        terminated: dict[str, Any] = {
            "exitCode": code, "reason": "Completed" if code == 0 else "Error",
            "startedAt": (self.state.get("running") or {}).get("startedAt", self.started_at), "finishedAt": now(),
        }
        if self.container.get("terminationMessagePolicy") == "FallbackToLogsOnError" and code != 0:
            terminated["message"] = self._log_tail()
        self.ready = False
        policy = self.pod["spec"].get("restartPolicy", "Always")
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            self.state = {"terminated": terminated}
            self.publish("Succeeded" if code == 0 else "Failed")
            return None
        self.last_state = {"terminated": terminated}
        backoff: float = min(RESTART_BACKOFF_MAX, 2.0 ** self.restart_count)
        self.restart_count += 1
        self.state = {"waiting": {"reason": "CrashLoopBackOff",
                                  "message": f"back-off {backoff:.0f}s restarting failed container"}}
        self.publish()
        return backoff

    def run(self) -> None:
        try:
            self._supervise()
        except Exception:
            log.exception("runner of %s/%s failed; the next pod event starts it again", self.namespace, self.name)
            self.agent.forget(self)
        finally:
            self._kill()
            self.agent.ips.release(self.ip)
            # Keep container.log for `make logs`; drop the process record and the volumes
            # (secrets do not stay on disk after their pod is gone). The mounts went with the
            # pod's mount namespace when its last process exited.
            (self.pod_dir / "process.json").unlink(missing_ok=True)
            shutil.rmtree(self.pod_dir / "volumes", ignore_errors=True)
            shutil.rmtree(self.pod_dir / "rootfs", ignore_errors=True)
            (self.pod_dir / "hosts").unlink(missing_ok=True)
            self.stopped.set()

    def _report(self, reason: str, message: str) -> None:
        """A Warning Event on the pod, once per distinct problem (what `kubectl describe` shows)."""
        if self._reported != (reason, message):
            self._reported = (reason, message)
            self.agent.event(self.pod, "Warning", reason, message)

    def _supervise(self) -> None:
        self.publish()
        restart_at = 0.0
        next_volume_sync = 0.0
        config_retry = 0.25  # a ConfigMap or token not there yet (a fresh namespace) comes quickly
        while not self.stop_requested.is_set():
            if self.proc is None:
                if time.monotonic() < restart_at:
                    self.stop_requested.wait(0.1)
                    continue
                try:
                    self._spawn()
                except PodSpecError as e:
                    self.state = {"waiting": {"reason": e.reason, "message": str(e)}}
                    self.publish()
                    self._report("FailedMount" if e.reason == "ContainerCreating" else "Failed", str(e))
                    restart_at = time.monotonic() + config_retry
                    config_retry = min(CONFIG_RETRY_MAX, config_retry * 2)
                    continue
                config_retry = 0.25
                self.publish()
            assert self.proc is not None
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                backoff = self._on_exit(code)
                if backoff is None:
                    return
                restart_at = time.monotonic() + backoff
                continue
            if self.readiness.due() and self.readiness.run(self.ip, self.container):
                self.ready = self.readiness.result
                self.publish()
            if self.liveness.due() and self.liveness.run(self.ip, self.container) and not self.liveness.result:
                log.info("liveness probe failed for %s/%s: restarting", self.namespace, self.name)
                self._kill()
                continue
            if time.monotonic() >= next_volume_sync:
                next_volume_sync = time.monotonic() + VOLUME_RESYNC_SECONDS
                try:
                    sync_volumes(self.pod, self.pod_dir, self.ip, self.agent.read_object, self.tokens.get)
                    self._write_hosts()
                except (PodSpecError, OSError) as e:
                    log.warning("volume sync of %s/%s: %s", self.namespace, self.name, e)
            self.stop_requested.wait(0.1)

    def _kill(self) -> None:
        if self.proc is not None:
            # reap=False: Popen must collect the exit status itself, or a kill would read as exit 0.
            procs.stop_group(self.proc.pid, None, self.grace, reap=False, cut_short=self.cut_short)
            self.proc.wait()

    def terminate(self, grace: float | None) -> None:
        if grace is not None and grace < self.grace:
            self.grace = grace
            if grace == 0:
                self.cut_short.set()  # a force delete ends a grace period already under way
        self.stop_requested.set()


class NodeAgent:
    def __init__(self, kubeconfig: str, workdir: Path, ip_block: int, owner_pid: int | None) -> None:
        config.load_kube_config(kubeconfig)  # type: ignore[no-untyped-call]
        self.api = client.ApiClient()
        # Any: the client accepts plain dict bodies at runtime; its type stubs only know model classes.
        self.core: Any = client.CoreV1Api(self.api)
        self.workdir = workdir
        self.ips = IPPool(ip_block)
        self.owner_pid = owner_pid
        self.runners: dict[str, PodRunner] = {}
        self.deleting: set[str] = set()  # pod uids whose final deletion is under way
        self.node_since = now()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        api = urllib.parse.urlsplit(self.api.configuration.host)
        # The `kubernetes` Service has no pods behind it: its ClusterIP forwards to the apiserver.
        self.proxy = ServiceProxy((api.hostname or "127.0.0.1", api.port or 443), self._listen_problem)
        self.services_synced = threading.Event()
        # Pods inherit the agent's environment (PATH, the venv, YOLO offline settings), like an
        # image would carry them, minus variables that would point them at our own cluster.
        self.base_env = {k: v for k, v in os.environ.items()
                         if k != "KUBECONFIG" and not k.startswith("OVERSEER_")}

    # -- API helpers ----------------------------------------------------------------------------
    def read_object(self, kind: str, namespace: str, name: str) -> dict[str, bytes] | None:
        try:
            if kind == "ConfigMap":
                cm = self.core.read_namespaced_config_map(name, namespace)
                out = {k: v.encode() for k, v in (cm.data or {}).items()}
                out.update({k: base64.b64decode(v) for k, v in (cm.binary_data or {}).items()})
                return out
            secret = self.core.read_namespaced_secret(name, namespace)
            return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        except ApiException as e:
            if e.status == 404:
                return None
            raise PodSpecError(f"cannot read {kind} {namespace}/{name}: {e.reason}") from e
        except Exception as e:  # the apiserver unreachable for a moment: retried like a config error
            raise PodSpecError(f"cannot read {kind} {namespace}/{name}: {e}") from e

    def request_token(self, namespace: str, service_account: str, audience: str | None, seconds: int,
                      pod_name: str, pod_uid: str) -> tuple[str, float]:
        """TokenRequest for a projected serviceAccountToken, bound to the pod (invalid once it is gone)."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {
            "audiences": [audience] if audience else None, "expirationSeconds": seconds,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid}}}
        try:
            resp = self.core.create_namespaced_service_account_token(service_account, namespace, body,
                                                                     _preload_content=False)
        except ApiException as e:
            what = "not found" if e.status == 404 else e.reason
            raise PodSpecError(f"token for serviceaccount {namespace}/{service_account}: {what}") from e
        except Exception as e:  # the apiserver unreachable for a moment: retried
            raise PodSpecError(f"token for serviceaccount {namespace}/{service_account}: {e}") from e
        status = json.loads(resp.data)["status"]
        return status["token"], parse_expiry(status["expirationTimestamp"])

    def event(self, obj: Mapping[str, Any], kind_type: str, reason: str, message: str) -> None:
        """Record an Event about a pod or Service, as kubelet and kube-proxy do; never fatal."""
        meta = obj["metadata"]
        kind = obj.get("kind") or "Pod"
        t = now()
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": "v1", "kind": kind, "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta.get("uid")},
            "reason": reason, "message": message[:1024], "type": kind_type, "count": 1,
            "firstTimestamp": t, "lastTimestamp": t,
            "source": {"component": "kubelet" if kind == "Pod" else "kube-proxy", "host": NODE_NAME},
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], body)
        except Exception as e:
            log.warning("event %s for %s/%s not recorded: %s", reason, meta["namespace"], meta["name"], e)

    def _listen_problem(self, frontend: Frontend, reason: str) -> None:
        for service in self.proxy.services():
            meta = service["metadata"]
            if (meta["namespace"], meta["name"]) == (frontend.namespace, frontend.service):
                self.event({**service, "kind": "Service"}, "Warning", "ProxyListenFailed", reason)

    # -- node -----------------------------------------------------------------------------------
    def register_node(self) -> None:
        labels = {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", "overseer.dev/local-node": "true"}
        try:
            self.core.create_node({"apiVersion": "v1", "kind": "Node",
                                   "metadata": {"name": NODE_NAME, "labels": labels}})
        except ApiException as e:
            if e.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        t = now()
        since = self.node_since
        capacity = {"cpu": str(os.cpu_count() or 1), "memory": "16Gi", "pods": "250"}
        conditions = [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "local node agent is running"},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID"},
        ]
        for c in conditions:  # statuses never change while the agent runs: one transition, at start
            c.update(lastHeartbeatTime=t, lastTransitionTime=since)
        self.core.patch_node_status(NODE_NAME, {"status": {
            "capacity": capacity, "allocatable": capacity, "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE_NAME}],
            "nodeInfo": {"kubeletVersion": "local-node-agent", "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "host-process://1", "kernelVersion": os.uname().release,
                         "osImage": "host", "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""},
        }}, _content_type="application/strategic-merge-patch+json")

    # -- pods -----------------------------------------------------------------------------------
    def bind(self, pod: Mapping[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        node_labels = {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "overseer.dev/local-node": "true"}
        selector = spec.get("nodeSelector") or {}
        if any(node_labels.get(k) != v for k, v in selector.items()):
            self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": {"conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "lastTransitionTime": now(),
                "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."}]}},
                _content_type="application/strategic-merge-patch+json")
            return
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME}}
        try:
            # _preload_content=False: the client's Binding deserialisation is known to be broken.
            self.core.create_namespaced_pod_binding(meta["name"], meta["namespace"], body, _preload_content=False)
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("binding %s/%s failed: %s", meta["namespace"], meta["name"], e.reason)

    def forget(self, runner: PodRunner) -> None:
        with self.lock:
            if self.runners.get(runner.uid) is runner:
                del self.runners[runner.uid]

    def handle(self, event_type: str, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        key = meta["uid"]
        node = spec.get("nodeName")
        if event_type == "DELETED":
            with self.lock:
                runner = self.runners.pop(key, None)
                self.deleting.discard(key)
            if runner:
                runner.terminate(0)
            return
        if not node:
            ours = spec.get("schedulerName", "default-scheduler") == "default-scheduler"
            if ours and not meta.get("deletionTimestamp"):
                self.bind(pod)
            return
        if node != NODE_NAME:
            return
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            with self.lock:
                runner = self.runners.get(key)
                already = key in self.deleting
                self.deleting.add(key)
            if already:
                if runner is not None:
                    runner.terminate(grace)  # a force delete (grace 0) ends the wait under way
                return
            threading.Thread(target=self._finish_deletion, args=(pod, runner, grace), daemon=True).start()
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        with self.lock:
            if key in self.runners:
                self.runners[key].pod = pod  # labels/annotations may change; spec of a pod may not
                return
            runner = PodRunner(self, pod)
            self.runners[key] = runner
        runner.start()

    def _finish_deletion(self, pod: Mapping[str, Any], runner: PodRunner | None, grace: float | None) -> None:
        meta = pod["metadata"]
        if runner is not None and not runner.stopped.is_set():
            runner.terminate(grace)
            runner.stopped.wait()
        try:
            # As kubelet does: grace 0 with a UID precondition. With a body present the apiserver
            # ignores query parameters, so gracePeriodSeconds must be in the body.
            self.core.delete_namespaced_pod(meta["name"], meta["namespace"],
                                            body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})
        except Exception as e:
            if isinstance(e, ApiException) and e.status in (404, 409):
                return  # already gone, or a new pod of the same name (UID precondition)
            log.warning("final delete of %s/%s failed (retried on the next event): %s",
                        meta["namespace"], meta["name"], e)
            with self.lock:
                self.deleting.discard(meta["uid"])  # let the next event try again

    def _watch(self, what: str, list_fn: Callable[..., Any], on_list: Callable[[list[dict[str, Any]]], None],
               on_event: Callable[[str, dict[str, Any]], None]) -> None:
        """List, then watch from the list's resourceVersion; on any failure, list again."""
        while not self.stopping.is_set():
            try:
                listing = json.loads(list_fn(_preload_content=False).data)
                on_list(listing["items"])
                stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                    list_fn, resource_version=listing["metadata"]["resourceVersion"], timeout_seconds=30,
                    _request_timeout=60,  # a half-open connection must not block the watch forever
                )
                for event in stream:
                    if self.stopping.is_set():
                        return
                    if event["type"] == "ERROR":
                        break  # list again
                    on_event(event["type"], event["raw_object"])
            except ApiException as e:
                if e.status == 410:  # resourceVersion too old: list again, nothing is wrong
                    continue
                log.warning("%s watch failed (%s); re-listing", what, e.reason)
                self.stopping.wait(1)
            except Exception as e:  # the apiserver restarting or a dropped connection: list again
                if self.stopping.is_set():
                    return
                log.warning("%s watch interrupted (%s); re-listing", what, e)
                self.stopping.wait(1)

    def watch_pods(self) -> None:
        # As kubelet does, start no container before the Service list is in: its env names them.
        self.services_synced.wait(30)

        def listed(pods: list[dict[str, Any]]) -> None:
            self.proxy.replace_pods(pods)
            seen = set()
            for pod in pods:
                seen.add(pod["metadata"]["uid"])
                self.handle("ADDED", pod)
            with self.lock:
                gone = [uid for uid in self.runners if uid not in seen]
            for uid in gone:
                self.handle("DELETED", {"metadata": {"uid": uid}, "spec": {}})

        def changed(event_type: str, pod: dict[str, Any]) -> None:
            if event_type == "DELETED":
                self.proxy.remove_pod(pod["metadata"]["uid"])
            else:
                self.proxy.set_pod(pod)
            self.handle(event_type, pod)

        self._watch("pod", self.core.list_pod_for_all_namespaces, listed, changed)

    def watch_services(self) -> None:
        def listed(services: list[dict[str, Any]]) -> None:
            self.proxy.replace_services(services)
            self.services_synced.set()

        def changed(event_type: str, service: dict[str, Any]) -> None:
            if event_type == "DELETED":
                self.proxy.remove_service(service["metadata"]["uid"])
            else:
                self.proxy.set_service(service)

        self._watch("service", self.core.list_service_for_all_namespaces, listed, changed)

    def heartbeat_loop(self) -> None:
        while not self.stopping.wait(10):
            try:
                self.heartbeat()
            except Exception as e:
                log.warning("node heartbeat failed: %s", e)

    def owner_gone(self) -> bool:
        if self.owner_pid is None:
            return False
        try:
            os.kill(self.owner_pid, 0)
        except ProcessLookupError:
            return True
        return False

    def shutdown(self) -> None:
        self.stopping.set()
        with self.lock:
            runners = list(self.runners.values())
        for r in runners:
            r.terminate(min(r.grace, 5.0))
        for r in runners:
            r.stopped.wait(15)
        self.proxy.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcluster.nodeagent")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--ip-block", required=True, type=int)
    parser.add_argument("--owner-pid", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent = NodeAgent(args.kubeconfig, args.dir, args.ip_block, args.owner_pid)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    agent.register_node()
    agent.proxy.start()
    threading.Thread(target=agent.watch_services, name="service-watch", daemon=True).start()
    threading.Thread(target=agent.watch_pods, name="pod-watch", daemon=True).start()
    threading.Thread(target=agent.heartbeat_loop, name="heartbeat", daemon=True).start()
    owner_died = False
    while not stop.wait(0.5):
        if agent.owner_gone():
            owner_died = True
            break
    agent.shutdown()
    if owner_died:
        # The test run that owned this stack died without tearing it down: take it all down.
        from .stack import stop_stack

        log.warning("owner process %s is gone: stopping the whole stack", args.owner_pid)
        stop_stack(args.dir, keep_agent=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
