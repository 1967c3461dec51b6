"""Helpers of the chart's cluster tests: render the chart with the stack's helm, install it the way
`make up` does, and the example manifests a user applies after `helm install`."""

from __future__ import annotations

import copy
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml
from localcluster.overseer_operator import CHART, ChartRelease
from localcluster.stack import Stack
from support.cluster import REPO_ROOT, Kubectl

EXAMPLES = REPO_ROOT / "examples"
KUBE_VERSION = "1.36.3"


def helm(stack: Stack, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The stack's helm, with its own state folder (never the user's ~/.config/helm)."""
    return ChartRelease(stack.dir).helm(*args, check=check)


def render(stack: Stack, *settings: str, namespace: str = "schema-overseer", release: str = "schema-overseer",
           values: tuple[Path, ...] = ()) -> list[dict[str, Any]]:  # fmt: skip
    """`helm template` of the chart: the documents, in order."""
    args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    args += [arg for path in values for arg in ("--values", str(path))]
    args += [arg for setting in settings for arg in ("--set", setting)]
    out = helm(stack, *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name or ''}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)


def example(name: str, namespace: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    body["metadata"]["namespace"] = namespace
    return body


def manifest(*bodies: dict[str, Any]) -> str:
    return "---\n".join(yaml.safe_dump(b, sort_keys=False) for b in bodies)


def small(body: dict[str, Any], *, uri: str, digest: str, version: str | None = None) -> dict[str, Any]:
    """A ModelDeployment the local node can run: one replica, no CPU requests, a real model file."""
    body = copy.deepcopy(body)
    body["spec"]["replicas"] = 1
    body["spec"]["serving"].pop("resources", None)
    body["spec"]["model"].update(uri=uri, digest=digest)
    if version is not None:
        body["spec"]["model"]["version"] = version
    return body


def build_models(folder: Path, seeds: tuple[int, ...]) -> list[tuple[str, str]]:
    """Small YOLO networks built offline, one per seed; [(file:// uri, digest)]. Serving pods see
    the host's /tmp. One process for all (importing Ultralytics is the slow part)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"cat-{seed}.pt" for seed in seeds]
    code = ("import sys; from pathlib import Path; from overseer_devtools.toymodels import build_detector\n"
            "for path, seed in zip(sys.argv[1::2], sys.argv[2::2]):\n"
            "    print(build_detector(Path(path), seed=int(seed), names=['cat', 'dog', 'bird']))")
    args = [arg for path, seed in zip(paths, seeds, strict=True) for arg in (str(path), str(seed))]
    digests = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                             check=True).stdout.split()  # fmt: skip
    return [(f"file://{path}", digest) for path, digest in zip(paths, digests, strict=True)]


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def pod_log(stack: Stack, namespace: str, pod: str) -> str:
    """The container log the node agent keeps for a pod (there is no `kubectl logs` here)."""
    logs = sorted(stack.dir.glob(f"pods/{namespace}_{pod}_*/container.log"))
    return logs[-1].read_text(errors="replace") if logs else ""


def operator_pods(kubectl: Kubectl, release: ChartRelease) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = kubectl.json(
        "get", "pods", "-n", release.namespace, "-l", f"app.kubernetes.io/instance={release.name}"
    )["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def can_i(kubectl: Kubectl, release: ChartRelease, *query: str) -> bool:
    result = kubectl.run("auth", "can-i", *query, f"--as={release.service_account}", check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"
