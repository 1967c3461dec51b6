"""Pod volumes as host folders: configMap, secret, projected (configMap/secret/downwardAPI),
downwardAPI, emptyDir and hostPath. Re-syncing rewrites changed files atomically, as kubelet does
for configMap and secret volumes, so a mounted ConfigMap update reaches a running process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .podspec import ObjectReader, PodSpecError, field_ref


def _write_if_changed(path: Path, data: bytes, mode: int) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)  # readers never see a half-written file


def _project(
    target: Path,
    data: Mapping[str, bytes] | None,
    items: list[dict[str, Any]] | None,
    default_mode: int,
    what: str,
    optional: bool,
) -> None:
    if data is None:
        if optional:
            return
        raise PodSpecError(f"{what} not found")
    if items:
        for item in items:
            if item["key"] not in data:
                if optional:
                    continue
                raise PodSpecError(f"{what} has no key {item['key']!r}")
            _write_if_changed(target / item["path"], data[item["key"]], item.get("mode", default_mode))
    else:
        for key, value in data.items():
            _write_if_changed(target / key, value, default_mode)


def sync_volumes(pod: Mapping[str, Any], pod_dir: Path, pod_ip: str, read_object: ObjectReader) -> dict[str, Path]:
    """Materialise (or refresh) every volume; returns volume name -> host folder."""
    namespace = pod["metadata"]["namespace"]
    dirs: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        target = pod_dir / "volumes" / name
        if "hostPath" in volume:
            dirs[name] = Path(volume["hostPath"]["path"])
            continue
        target.mkdir(parents=True, exist_ok=True)
        dirs[name] = target
        if "configMap" in volume:
            src = volume["configMap"]
            _project(target, read_object("ConfigMap", namespace, src["name"]), src.get("items"),
                     src.get("defaultMode", 0o644), f"configMap {src['name']!r}", src.get("optional", False))
        elif "secret" in volume:
            src = volume["secret"]
            _project(target, read_object("Secret", namespace, src["secretName"]), src.get("items"),
                     src.get("defaultMode", 0o644), f"secret {src['secretName']!r}", src.get("optional", False))
        elif "projected" in volume:
            mode = volume["projected"].get("defaultMode", 0o644)
            for source in volume["projected"].get("sources") or []:
                if "configMap" in source:
                    src = source["configMap"]
                    _project(target, read_object("ConfigMap", namespace, src["name"]), src.get("items"),
                             mode, f"configMap {src['name']!r}", src.get("optional", False))
                elif "secret" in source:
                    src = source["secret"]
                    _project(target, read_object("Secret", namespace, src["name"]), src.get("items"),
                             mode, f"secret {src['name']!r}", src.get("optional", False))
                elif "downwardAPI" in source:
                    _downward(target, pod, pod_ip, source["downwardAPI"].get("items") or [], mode)
                # serviceAccountToken: processes here use the kubeconfig they are given, not a token.
        elif "downwardAPI" in volume:
            _downward(target, pod, pod_ip, volume["downwardAPI"].get("items") or [],
                      volume["downwardAPI"].get("defaultMode", 0o644))
    return dirs


def _downward(target: Path, pod: Mapping[str, Any], pod_ip: str, items: list[dict[str, Any]], mode: int) -> None:
    for item in items:
        if "fieldRef" in item:
            value = field_ref(pod, item["fieldRef"]["fieldPath"], pod_ip)
            _write_if_changed(target / item["path"], value.encode(), item.get("mode", mode))
