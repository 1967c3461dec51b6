"""Pod volumes as host folders: projection, updates, pruning, and paths that try to escape."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from localcluster.podspec import PodSpecError
from localcluster.volumes import sync_volumes

Store = dict[tuple[str, str, str], dict[str, bytes]]


def pod_with(volume: dict) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "command": ["x"]}], "volumes": [{"name": "v", **volume}]}}


def reader(store: Store):  # type: ignore[no-untyped-def]
    return lambda kind, ns, name: store.get((kind, ns, name))


def test_configmap_keys_become_files_and_follow_updates_and_removals(tmp_path: Path) -> None:
    store: Store = {("ConfigMap", "ns", "m"): {"model.json": b'{"v": 1}', "extra": b"x"}}
    pod = pod_with({"configMap": {"name": "m"}})
    folder = sync_volumes(pod, tmp_path, "127.9.0.2", reader(store))["v"]
    assert (folder / "model.json").read_bytes() == b'{"v": 1}'
    store[("ConfigMap", "ns", "m")] = {"model.json": b'{"v": 2}'}
    sync_volumes(pod, tmp_path, "127.9.0.2", reader(store))
    assert (folder / "model.json").read_bytes() == b'{"v": 2}'
    assert not (folder / "extra").exists()  # a key that left the ConfigMap leaves the volume


def test_secret_items_are_written_with_their_mode(tmp_path: Path) -> None:
    store: Store = {("Secret", "ns", "t"): {"token": b"s3cret"}}
    pod = pod_with({"secret": {"secretName": "t", "items": [{"key": "token", "path": "admin/token", "mode": 0o600}]}})
    folder = sync_volumes(pod, tmp_path, "127.9.0.2", reader(store))["v"]
    token = folder / "admin" / "token"
    assert token.read_bytes() == b"s3cret"
    assert token.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../escape"])
def test_item_paths_outside_the_volume_are_refused(tmp_path: Path, path: str) -> None:
    store: Store = {("ConfigMap", "ns", "m"): {"k": b"v"}}
    pod = pod_with({"configMap": {"name": "m", "items": [{"key": "k", "path": path}]}})
    with pytest.raises(PodSpecError, match="escapes its volume"):
        sync_volumes(pod, tmp_path / "pod", "127.9.0.2", reader(store))
    assert not (tmp_path / "escape").exists()


def test_a_symlink_planted_in_the_volume_is_not_written_through(tmp_path: Path) -> None:
    store: Store = {("ConfigMap", "ns", "m"): {"model.json": b"new"}}
    pod = pod_with({"configMap": {"name": "m"}})
    folder = sync_volumes(pod, tmp_path / "pod", "127.9.0.2", reader(store))["v"]
    outside = tmp_path / "outside"
    outside.write_bytes(b"untouched")
    os.symlink(outside, folder / ".model.json.tmp")  # what a hostile process could plant
    store[("ConfigMap", "ns", "m")] = {"model.json": b"newer"}
    sync_volumes(pod, tmp_path / "pod", "127.9.0.2", reader(store))
    assert outside.read_bytes() == b"untouched"
    assert (folder / "model.json").read_bytes() == b"newer"


def test_a_missing_configmap_is_an_error_unless_optional(tmp_path: Path) -> None:
    with pytest.raises(PodSpecError, match="configMap 'm' not found"):
        sync_volumes(pod_with({"configMap": {"name": "m"}}), tmp_path, "127.9.0.2", reader({}))
    sync_volumes(pod_with({"configMap": {"name": "m", "optional": True}}), tmp_path, "127.9.0.2", reader({}))


def test_downward_api_and_empty_dir(tmp_path: Path) -> None:
    pod = pod_with({"downwardAPI": {"items": [{"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]}})
    folder = sync_volumes(pod, tmp_path, "127.9.0.2", reader({}))["v"]
    assert (folder / "ip").read_text() == "127.9.0.2"
    assert sync_volumes(pod_with({"emptyDir": {}}), tmp_path / "e", "127.9.0.2", reader({}))["v"].is_dir()


def test_a_projected_service_account_volume_holds_token_ca_and_namespace(tmp_path: Path) -> None:
    # What the ServiceAccount admission plugin adds to every pod (kube-api-access-*).
    store: Store = {("ConfigMap", "ns", "kube-root-ca.crt"): {"ca.crt": b"-----BEGIN CERTIFICATE-----"}}
    pod = pod_with({"projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    ]}})
    asked: list[tuple[str | None, int]] = []

    def token(_pod: object, audience: str | None, seconds: int) -> str:
        asked.append((audience, seconds))
        return f"jwt-{len(asked)}"

    folder = sync_volumes(pod, tmp_path, "127.9.0.2", reader(store), token)["v"]
    assert sorted(p.name for p in folder.iterdir()) == ["ca.crt", "namespace", "token"]
    assert (folder / "token").read_text() == "jwt-1"
    assert (folder / "namespace").read_text() == "ns"
    assert asked == [(None, 3607)]
    sync_volumes(pod, tmp_path, "127.9.0.2", reader(store), token)  # a refreshed token replaces the file
    assert (folder / "token").read_text() == "jwt-2"
