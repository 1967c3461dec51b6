"""Helpers of the operator's cluster tests: the operator process handle, example manifests to vary,
and kubectl wrappers that assert what a user sees."""

from __future__ import annotations

import copy
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from localcluster.overseer_operator import OperatorProcess, start_operator, stop_operator
from support.cluster import REPO_ROOT, Kubectl
from support.polling import wait_for

EXAMPLES = REPO_ROOT / "examples"
# Pods of deployments that only exercise admission stay Pending: no serving process is started.
UNSCHEDULABLE = {"overseer.dev/test": "never-scheduled"}


@dataclass
class Operator:
    """The operator process of a test module; tests may stop, kill and start it again."""

    stack_dir: Path
    process: OperatorProcess | None = None
    restarts: int = field(default=0)

    def start(self) -> OperatorProcess:
        port = self.process.webhook_port if self.process else None
        self.process = start_operator(self.stack_dir, die_with_caller=True, webhook_port=port)
        return self.process

    def stop(self) -> None:
        stop_operator(self.stack_dir)

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as when a node dies."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        wait_for(lambda: not self.process.alive(), 10, "the operator to die")  # type: ignore[union-attr]
        stop_operator(self.stack_dir)  # reaps it and forgets the record

    def metrics(self) -> str:
        assert self.process is not None
        return httpx.get(self.process.metrics_url, timeout=10).text

    def log(self) -> str:
        assert self.process is not None
        return self.process.log.read_text(errors="replace")


def example(name: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    body["metadata"].pop("namespace", None)  # the test's fresh namespace
    return body


_SCHEMA = example("object-detector.modelschema.yaml")
_DEPLOYMENT = example("cat-recognition.modeldeployment.yaml")


def schema_body() -> dict[str, Any]:
    return copy.deepcopy(_SCHEMA)


def deployment_body(name: str = "cat-recognition", *, schedulable: bool = False) -> dict[str, Any]:
    body = copy.deepcopy(_DEPLOYMENT)
    body["metadata"]["name"] = name
    body["spec"]["replicas"] = 1
    del body["spec"]["serving"]["resources"]  # the local node has 2 cores
    if not schedulable:
        body["spec"]["serving"]["nodeSelector"] = dict(UNSCHEDULABLE)
    return body


def manifest(body: dict[str, Any]) -> str:
    return yaml.safe_dump(body, sort_keys=False)


def refused(kubectl: Kubectl, body: dict[str, Any], *args: str) -> str:
    """Apply `body`; it must be refused. Returns what kubectl printed."""
    result = kubectl.run("apply", *args, "-f", "-", stdin=manifest(body), check=False)
    assert result.returncode != 0, f"accepted: {result.stdout}{result.stderr}"
    return result.stderr


def applied(kubectl: Kubectl, body: dict[str, Any], *args: str) -> str:
    """Apply `body`; it must be admitted. Returns stderr (where kubectl prints warnings)."""
    result = kubectl.run("apply", *args, "-f", "-", stdin=manifest(body), check=False)
    assert result.returncode == 0, result.stderr
    return result.stderr


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})
