"""Turn a Pod's first container into a host process description (pure: no API calls, no I/O).

What kubelet and a container runtime would do, reduced to what matters for running Python
processes on loopback: env resolution (values, $(VAR) expansion, fieldRef, configMap/secret refs),
volume mounts mapped to host folders, and the same mapping applied to paths in env and args.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")

# Reads a ConfigMap's or Secret's data, decoded: (kind, namespace, name) -> {key: value}, None if absent.
ObjectReader = Callable[[str, str, str], dict[str, bytes] | None]


@dataclass
class ProcessSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    mounts: dict[str, Path] = field(default_factory=dict)  # container path -> host path


class PodSpecError(Exception):
    """The pod cannot be run as a host process; the message goes into the container status."""


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion: unknown references stay as they are, $$ escapes a $."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(repl, text)


def map_path(value: str, mounts: Mapping[str, Path]) -> str:
    """Rewrite a container path under a mountPath to the host folder standing in for it."""
    for mount_path in sorted(mounts, key=len, reverse=True):
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(mounts[mount_path]) + value[len(mount_path.rstrip("/")):]
    return value


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
) -> dict[str, str]:
    """The container's declared environment (only these take part in $(VAR) expansion)."""
    namespace = pod["metadata"]["namespace"]
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
            declared[name] = expand_vars(item.get("value", ""), declared)
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
    return declared


def build_process(
    pod: Mapping[str, Any],
    pod_ip: str,
    pod_dir: Path,
    volume_dirs: Mapping[str, Path],
    base_env: Mapping[str, str],
    read_object: ObjectReader,
) -> ProcessSpec:
    containers = pod["spec"].get("containers") or []
    if not containers:
        raise PodSpecError("pod has no containers")
    container = containers[0]
    if not container.get("command"):
        # No image is ever pulled here, so an image's default entrypoint cannot be known.
        raise PodSpecError("container has no command: the local node runs commands, not images")
    mounts: dict[str, Path] = {}
    for vm in container.get("volumeMounts") or []:
        host = volume_dirs.get(vm["name"])
        if host is None:
            continue
        mounts[vm["mountPath"]] = host / vm["subPath"] if vm.get("subPath") else host
    declared = resolve_env(pod, container, pod_ip, read_object)
    env = {**base_env, **{k: map_path(v, mounts) for k, v in declared.items()}}
    argv = [
        map_path(expand_vars(a, declared), mounts)
        for a in [*container["command"], *(container.get("args") or [])]
    ]
    working_dir = container.get("workingDir")
    cwd = Path(map_path(working_dir, mounts)) if working_dir else pod_dir
    return ProcessSpec(argv=argv, env=env, cwd=cwd, mounts=mounts)
