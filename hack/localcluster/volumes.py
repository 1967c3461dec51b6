"""Pod volumes as host folders: configMap, secret, projected (configMap/secret/downwardAPI/
serviceAccountToken), downwardAPI, emptyDir and hostPath. Re-syncing rewrites changed files
atomically, as kubelet does for configMap and secret volumes, so a mounted ConfigMap update (or a
refreshed token) reaches a running process; podinit.py binds the folders at their mountPaths.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .podspec import ObjectReader, PodSpecError, field_ref

# A projected ServiceAccount token for the pod: (pod, audience or None, expirationSeconds) -> token.
TokenSource = Callable[[Mapping[str, Any], str | None, int], str]


def contained(root: Path, relative: str) -> Path:
    """root/relative, refusing paths that escape root (absolute, '..', or through a symlink)."""
    path = root / relative
    if os.path.isabs(relative) or not path.resolve().is_relative_to(root.resolve()):
        raise PodSpecError(f"volume path {relative!r} escapes its volume")
    return path


def _write_if_changed(path: Path, data: bytes, mode: int) -> None:
    if path.is_file() and not path.is_symlink() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    # O_EXCL | O_NOFOLLOW: never write through a link a pod process may have planted.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # readers never see a half-written file


def _project(
    target: Path,
    data: Mapping[str, bytes] | None,
    items: list[dict[str, Any]] | None,
    default_mode: int,
    what: str,
    optional: bool,
) -> set[Path]:
    """Write the projected files; returns the paths written (so vanished keys can be pruned)."""
    if data is None:
        if optional:
            return set()
        raise PodSpecError(f"{what} not found")
    written: set[Path] = set()
    if items:
        for item in items:
            if item["key"] not in data:
                if optional:
                    continue
                raise PodSpecError(f"{what} has no key {item['key']!r}")
            path = contained(target, item["path"])
            _write_if_changed(path, data[item["key"]], item.get("mode", default_mode))
            written.add(path)
    else:
        for key, value in data.items():
            path = contained(target, key)
            _write_if_changed(path, value, default_mode)
            written.add(path)
    return written


def _prune(target: Path, keep: set[Path]) -> None:
    """Remove files whose key left the ConfigMap/Secret, as kubelet does."""
    for path in target.rglob("*"):
        if path.is_file() and path not in keep:
            path.unlink(missing_ok=True)


def sync_volumes(
    pod: Mapping[str, Any], pod_dir: Path, pod_ip: str, read_object: ObjectReader, token: TokenSource | None = None
) -> dict[str, Path]:
    """Materialise (or refresh) every volume; returns volume name -> host folder."""
    namespace = pod["metadata"]["namespace"]
    dirs: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        target = pod_dir / "volumes" / name
        if "hostPath" in volume:
            host = Path(volume["hostPath"]["path"])
            if volume["hostPath"].get("type") == "DirectoryOrCreate":
                host.mkdir(parents=True, exist_ok=True)
            dirs[name] = host
            continue
        target.mkdir(parents=True, exist_ok=True)
        dirs[name] = target
        if "configMap" in volume:
            src = volume["configMap"]
            _prune(target, _project(target, read_object("ConfigMap", namespace, src["name"]), src.get("items"),
                                    src.get("defaultMode", 0o644), f"configMap {src['name']!r}",
                                    src.get("optional", False)))
        elif "secret" in volume:
            src = volume["secret"]
            _prune(target, _project(target, read_object("Secret", namespace, src["secretName"]), src.get("items"),
                                    src.get("defaultMode", 0o644), f"secret {src['secretName']!r}",
                                    src.get("optional", False)))
        elif "projected" in volume:
            mode = volume["projected"].get("defaultMode", 0o644)
            written: set[Path] = set()
            for source in volume["projected"].get("sources") or []:
                if "configMap" in source:
                    src = source["configMap"]
                    written |= _project(target, read_object("ConfigMap", namespace, src["name"]), src.get("items"),
                                        mode, f"configMap {src['name']!r}", src.get("optional", False))
                elif "secret" in source:
                    src = source["secret"]
                    written |= _project(target, read_object("Secret", namespace, src["name"]), src.get("items"),
                                        mode, f"secret {src['name']!r}", src.get("optional", False))
                elif "downwardAPI" in source:
                    written |= _downward(target, pod, pod_ip, source["downwardAPI"].get("items") or [], mode)
                elif "serviceAccountToken" in source:
                    src = source["serviceAccountToken"]
                    if token is None:
                        raise PodSpecError("serviceAccountToken volumes need a token source")
                    path = contained(target, src["path"])
                    value = token(pod, src.get("audience") or None, int(src.get("expirationSeconds", 3600)))
                    _write_if_changed(path, value.encode(), mode)
                    written.add(path)
            _prune(target, written)
        elif "downwardAPI" in volume:
            _downward(target, pod, pod_ip, volume["downwardAPI"].get("items") or [],
                      volume["downwardAPI"].get("defaultMode", 0o644))
    return dirs


def _downward(target: Path, pod: Mapping[str, Any], pod_ip: str, items: list[dict[str, Any]], mode: int) -> set[Path]:
    written: set[Path] = set()
    for item in items:
        if "fieldRef" in item:
            path = contained(target, item["path"])
            value = field_ref(pod, item["fieldRef"]["fieldPath"], pod_ip)
            _write_if_changed(path, value.encode(), item.get("mode", mode))
            written.add(path)
    return written
