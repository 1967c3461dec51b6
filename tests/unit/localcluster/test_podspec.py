"""How the node agent turns a pod spec into a host process: env, $(VAR) expansion, mounted paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from localcluster.podspec import PodSpecError, build_process, expand_vars, map_path

CONFIGMAPS = {("ConfigMap", "ns", "settings"): {"LEVEL": b"debug", "MODE": b"fast"},
              ("Secret", "ns", "token"): {"token": b"s3cret"}}


def read_object(kind: str, namespace: str, name: str) -> dict[str, bytes] | None:
    return CONFIGMAPS.get((kind, namespace, name))


def pod(container: dict, **spec: object) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", **container}], **spec}}


def test_var_expansion_follows_kubernetes_rules() -> None:
    env = {"A": "1"}
    assert expand_vars("--x=$(A)", env) == "--x=1"
    assert expand_vars("$(MISSING)", env) == "$(MISSING)"  # unknown references stay
    assert expand_vars("$$(A)", env) == "$(A)"  # $$ escapes


def test_paths_under_a_mount_are_rewritten_to_the_host_folder() -> None:
    mounts = {"/etc/overseer": Path("/h/model"), "/etc/overseer/token": Path("/h/token")}
    assert map_path("/etc/overseer/model.json", mounts) == "/h/model/model.json"
    assert map_path("/etc/overseer/token/t", mounts) == "/h/token/t"  # longest mount wins
    assert map_path("/etc/overseerx", mounts) == "/etc/overseerx"
    assert map_path("relative", mounts) == "relative"


def test_env_args_and_mounts_become_a_process(tmp_path: Path) -> None:
    spec = build_process(
        pod({
            "command": ["overseer", "serve"],
            "args": ["--host", "$(POD_IP)", "--model-file", "$(MODEL_FILE)"],
            "env": [
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "MODEL_FILE", "value": "/etc/overseer/model.json"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "token", "key": "token"}}},
            ],
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
            "volumeMounts": [{"name": "model", "mountPath": "/etc/overseer"}],
        }),
        pod_ip="127.9.0.2", pod_dir=tmp_path, volume_dirs={"model": tmp_path / "vol"},
        base_env={"PATH": "/usr/bin"}, read_object=read_object,
    )
    assert spec.argv == ["overseer", "serve", "--host", "127.9.0.2", "--model-file", f"{tmp_path}/vol/model.json"]
    assert spec.env["NAME"] == "p"
    assert spec.env["APP"] == "x"
    assert spec.env["TOKEN"] == "s3cret"
    assert spec.env["CFG_LEVEL"] == "debug"
    assert spec.env["MODEL_FILE"] == f"{tmp_path}/vol/model.json"
    assert spec.env["PATH"] == "/usr/bin"
    assert spec.cwd == tmp_path


def test_a_missing_secret_key_is_a_clear_container_error(tmp_path: Path) -> None:
    with pytest.raises(PodSpecError, match="secret 'token' key 'nope' not found"):
        build_process(
            pod({"command": ["x"],
                 "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "token", "key": "nope"}}}]}),
            "127.9.0.2", tmp_path, {}, {}, read_object,
        )


def test_a_container_without_command_cannot_run_here(tmp_path: Path) -> None:
    with pytest.raises(PodSpecError, match="no command"):
        build_process(pod({"image": "nginx"}), "127.9.0.2", tmp_path, {}, {}, read_object)
