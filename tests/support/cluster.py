"""The local control plane as pytest fixtures: one stack per test session, a namespace per test."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from localcluster.stack import Stack, start_stack, stop_stack

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Kubectl:
    binary: Path
    kubeconfig: Path
    namespace: str = "default"

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.binary), f"--kubeconfig={self.kubeconfig}", f"--namespace={self.namespace}", *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd[2:])} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, manifest: str) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-f", "-", stdin=manifest)

    def in_namespace(self, namespace: str) -> Kubectl:
        return Kubectl(self.binary, self.kubeconfig, namespace)


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A private stack in a temp folder: it never touches a `make up` cluster in .cluster/.
    # owner_pid: if this pytest process is killed, the node agent takes the stack down.
    stack = start_stack(tmp_path_factory.mktemp("cluster"), owner_pid=os.getpid())
    try:
        yield stack
    finally:
        stop_stack(stack.dir)


@pytest.fixture(scope="session")
def kubectl_admin(local_cluster: Stack) -> Kubectl:
    return Kubectl(local_cluster.kubectl, local_cluster.kubeconfig)


@pytest.fixture
def namespace(kubectl_admin: Kubectl) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl_admin.run("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl_admin.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def kubectl(kubectl_admin: Kubectl, namespace: str) -> Kubectl:
    return kubectl_admin.in_namespace(namespace)


def processes_bound_to(ip: str) -> list[int]:
    """Live host processes whose command line names the pod IP (how the node agent runs them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if ip.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found
