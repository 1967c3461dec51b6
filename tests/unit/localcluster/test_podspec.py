"""How the node agent turns a pod spec into a host process: env, Service variables, $(VAR) expansion."""

from __future__ import annotations

import pytest
from localcluster.podspec import PodSpecError, build_process, expand_vars

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


def test_env_and_args_become_a_process_with_paths_left_as_the_spec_names_them() -> None:
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
        pod_ip="127.9.0.2", base_env={"PATH": "/usr/bin"}, read_object=read_object,
    )
    # The volume is mounted at /etc/overseer in the pod's own mount namespace: no rewriting.
    assert spec.argv == ["overseer", "serve", "--host", "127.9.0.2", "--model-file", "/etc/overseer/model.json"]
    assert spec.env["NAME"] == "p"
    assert spec.env["APP"] == "x"
    assert spec.env["TOKEN"] == "s3cret"
    assert spec.env["CFG_LEVEL"] == "debug"
    assert spec.env["MODEL_FILE"] == "/etc/overseer/model.json"
    assert spec.env["PATH"] == "/usr/bin"
    assert spec.cwd is None  # no workingDir: the pod's own folder (there is no image WORKDIR)
    assert "PATH" not in spec.declared  # the host's environment is the image's, not the container's


def test_service_variables_are_set_expandable_and_overridden_by_the_container() -> None:
    services = {"KUBERNETES_SERVICE_HOST": "127.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
                "WEB_SERVICE_HOST": "127.96.0.7"}
    spec = build_process(
        pod({"command": ["client", "--server=https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"],
             "env": [{"name": "WEB_SERVICE_HOST", "value": "mine"},
                     {"name": "URL", "value": "http://$(WEB_SERVICE_HOST)/"}]}),
        "127.9.0.2", {"KUBERNETES_SERVICE_HOST": "from-the-host"}, read_object, services,
    )
    assert spec.argv[1] == "--server=https://127.96.0.1:443"
    assert spec.env["KUBERNETES_SERVICE_HOST"] == "127.96.0.1"  # overrides the host's (the image's) value
    assert spec.env["WEB_SERVICE_HOST"] == "mine"  # what the container declares wins
    assert spec.env["URL"] == "http://mine/"


def test_a_missing_secret_key_is_a_clear_container_error() -> None:
    with pytest.raises(PodSpecError, match="secret 'token' key 'nope' not found"):
        build_process(
            pod({"command": ["x"],
                 "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "token", "key": "nope"}}}]}),
            "127.9.0.2", {}, read_object,
        )


def test_a_container_without_command_cannot_run_here() -> None:
    with pytest.raises(PodSpecError, match="no command"):
        build_process(pod({"image": "nginx"}), "127.9.0.2", {}, read_object)
