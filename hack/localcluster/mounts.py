"""Which host folder goes where in a pod's mount namespace (pure: the launcher, podinit.py, mounts them).

As kubelet does: each volumeMount binds its volume (or the volume's subPath) at mountPath, parents
before children; configMap, secret, projected and downwardAPI volumes are always read-only, the
others read-only when the mount says so.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .podspec import PodSpecError, expand_vars

# Kubernetes mounts the API-data volumes read-only whatever the volumeMount says.
ALWAYS_READ_ONLY = ("configMap", "secret", "projected", "downwardAPI")


@dataclass(frozen=True)
class Mount:
    source: Path  # host folder (or file, for a subPath naming one)
    target: str  # absolute path in the pod's view
    read_only: bool

    def as_plan(self) -> dict[str, Any]:
        return {"source": str(self.source), "target": self.target, "readOnly": self.read_only}


def _sub_path(mount: Mapping[str, Any], env: Mapping[str, str]) -> str:
    sub = expand_vars(mount["subPathExpr"], env) if mount.get("subPathExpr") else mount.get("subPath") or ""
    if sub.startswith("/") or ".." in sub.split("/"):
        raise PodSpecError(f"volumeMount {mount['name']!r}: subPath {sub!r} must be a relative path inside the volume")
    return sub


def plan_mounts(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    volume_dirs: Mapping[str, Path],
    env: Mapping[str, str],
    hosts: Path | None = None,
) -> list[Mount]:
    """The container's volumeMounts as host binds, parents first. `env` expands subPathExpr;
    `hosts` becomes /etc/hosts unless the container mounts something there itself (as kubelet)."""
    kinds = {v["name"]: next((k for k in v if k != "name"), "") for v in pod["spec"].get("volumes") or []}
    mounts: list[Mount] = []
    seen: set[str] = set()
    for vm in container.get("volumeMounts") or []:
        name, mount_path = vm["name"], vm.get("mountPath") or ""
        if not mount_path.startswith("/"):
            raise PodSpecError(f"volumeMount {name!r}: mountPath {mount_path!r} must be absolute")
        target = posixpath.normpath(mount_path)
        if target == "/":
            raise PodSpecError(f"volumeMount {name!r}: a volume cannot replace the root folder here")
        if target in seen:
            raise PodSpecError(f"volumeMount {name!r}: mountPath {target} is mounted twice")
        seen.add(target)
        if name not in volume_dirs:
            raise PodSpecError(f"volumeMount {name!r}: no volume of that name")
        sub = _sub_path(vm, env)
        source = volume_dirs[name] / sub if sub else volume_dirs[name]
        read_only = bool(vm.get("readOnly")) or kinds.get(name) in ALWAYS_READ_ONLY
        mounts.append(Mount(source, target, read_only))
    if hosts is not None and "/etc/hosts" not in seen:
        mounts.append(Mount(hosts, "/etc/hosts", read_only=False))
    # Parents before children (/etc/app before /etc/app/certs), whatever order the spec lists them in.
    return sorted(mounts, key=lambda m: 0 if m.target == "/" else m.target.count("/"))
