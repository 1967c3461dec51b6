"""Turn a Pod's first container into a host process description (pure: no API calls, no I/O).

What kubelet and a container runtime would do, reduced to what matters for running Python
processes on loopback: env resolution (Service variables, values, $(VAR) expansion, fieldRef,
configMap/secret refs) and the command line. Volumes are not rewritten into paths: the process
sees them at their mountPaths in its own mount namespace (mounts.py, podinit.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")

# Reads a ConfigMap's or Secret's data, decoded: (kind, namespace, name) -> {key: value}, None if absent.
ObjectReader = Callable[[str, str, str], dict[str, bytes] | None]


@dataclass
class ProcessSpec:
    argv: list[str]
    env: dict[str, str]  # everything the process gets
    declared: dict[str, str]  # what the container declares (and Service variables): expands subPathExpr
    cwd: str | None  # workingDir, in the pod's view; None: the pod's own folder (there is no image WORKDIR)


class PodSpecError(Exception):
    """The pod cannot be run as a host process; the message goes into the container status."""

    def __init__(self, message: str, reason: str = "CreateContainerConfigError") -> None:
        super().__init__(message)
        self.reason = reason  # the container's waiting reason, as kubelet would report it


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion: unknown references stay as they are, $$ escapes a $."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(repl, text)


def field_ref(pod: Mapping[str, Any], path: str, pod_ip: str) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path])
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise PodSpecError(f"unsupported fieldRef {path!r}")


def resolve_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    pod_ip: str,
    read_object: ObjectReader,
    service_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The container's environment as kubelet builds it: envFrom, then env with $(VAR) expansion
    over what is declared so far and the Service variables, then the Service variables not declared."""
    namespace = pod["metadata"]["namespace"]
    services = dict(service_env or {})
    declared: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(key)
            if ref:
                data = read_object(kind, namespace, ref["name"])
                if data is None and not ref.get("optional", False):
                    raise PodSpecError(f"{kind.lower()} {ref['name']!r} not found (envFrom)")
                for k, v in (data or {}).items():
                    declared[prefix + k] = v.decode(errors="replace")
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            declared[name] = expand_vars(item.get("value", ""), {**services, **declared})
            continue
        value_from = item["valueFrom"]
        if "fieldRef" in value_from:
            declared[name] = field_ref(pod, value_from["fieldRef"]["fieldPath"], pod_ip)
        elif "configMapKeyRef" in value_from or "secretKeyRef" in value_from:
            kind, ref = (
                ("ConfigMap", value_from["configMapKeyRef"]) if "configMapKeyRef" in value_from
                else ("Secret", value_from["secretKeyRef"])
            )
            data = read_object(kind, namespace, ref["name"]) or {}
            value = data.get(ref["key"])
            if value is None:
                if ref.get("optional"):
                    continue
                raise PodSpecError(f"{kind.lower()} {ref['name']!r} key {ref['key']!r} not found (env {name})")
            declared[name] = value.decode(errors="replace")
        elif "resourceFieldRef" in value_from:
            declared[name] = "0"
        else:
            raise PodSpecError(f"unsupported valueFrom for env {name}")
    return {**services, **declared}


def build_process(
    pod: Mapping[str, Any],
    pod_ip: str,
    base_env: Mapping[str, str],
    read_object: ObjectReader,
    service_env: Mapping[str, str] | None = None,
) -> ProcessSpec:
    containers = pod["spec"].get("containers") or []
    if not containers:
        raise PodSpecError("pod has no containers")
    container = containers[0]
    if not container.get("command"):
        # No image is ever pulled here, so an image's default entrypoint cannot be known.
        raise PodSpecError("container has no command: the local node runs commands, not images")
    declared = resolve_env(pod, container, pod_ip, read_object, service_env)
    argv = [expand_vars(a, declared) for a in [*container["command"], *(container.get("args") or [])]]
    return ProcessSpec(argv=argv, env={**base_env, **declared}, declared=declared, cwd=container.get("workingDir"))
