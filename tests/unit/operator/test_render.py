"""What a ModelDeployment turns into (overseer.operator.render): exactly what a user's spec becomes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from operator_testing import DIGEST_B, NAMESPACE, deployment, schema
from overseer.api.model_document import ModelDocument
from overseer.api.v1alpha1 import ModelDeployment, SchemaVersion
from overseer.operator import render
from overseer.operator.settings import OperatorSettings

SETTINGS = OperatorSettings(serving_image="registry.example/overseer-serving:1.2.3")


def parsed(body: dict[str, Any]) -> ModelDeployment:
    return ModelDeployment.model_validate(body, by_alias=True)


def version(number: int = 2) -> SchemaVersion:
    raw = next(v for v in schema()["spec"]["versions"] if v["version"] == number)
    return SchemaVersion.model_validate(raw, by_alias=True)


def rendered_deployment(body: dict[str, Any]) -> dict[str, Any]:
    return render.render_deployment(body, parsed(body), SETTINGS, {"name": "m", "version": "1", "digest": "d"})


def test_names_labels_and_owner() -> None:
    body = deployment()
    names = render.Names.of("cat-recognition")
    assert (names.configmap, names.secret, names.deployment, names.service) == (
        "cat-recognition-model", "cat-recognition-admin", "cat-recognition", "cat-recognition",
    )  # fmt: skip
    for obj in (
        render.render_configmap(body, render.model_document(parsed(body), version())),
        render.render_secret(body, "t0ken"),
        render.render_service(body, parsed(body)),
        rendered_deployment(body),
    ):
        meta = obj["metadata"]
        assert meta["namespace"] == NAMESPACE
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "schema-overseer"
        assert meta["labels"]["overseer.dev/deployment"] == "cat-recognition"
        assert meta["ownerReferences"] == [
            {"apiVersion": "overseer.dev/v1alpha1", "kind": "ModelDeployment", "name": "cat-recognition",
             "uid": "uid-mdep", "controller": True, "blockOwnerDeletion": True},
        ]  # fmt: skip


def test_the_configmap_holds_the_model_document_with_defaults_filled_in() -> None:
    body = deployment()
    configmap = render.render_configmap(body, render.model_document(parsed(body), version()))
    document = ModelDocument.model_validate(json.loads(configmap["data"]["model.json"]))
    assert document.model.custom_objects == {
        "resize_resolution": 640, "conf": 0.25, "classes": ["cat"], "iou": 0.45, "max_det": 300, "multi_label": False,
    }  # fmt: skip
    assert document.schema_.name == "object-detector"
    assert document.schema_.version == 2
    assert document.schema_.custom_objects == version().custom_objects
    assert json.loads(configmap["metadata"]["annotations"][render.ANNOTATION_MODEL]) == {
        "name": "cat_recognition", "version": "20240103", "digest": body["spec"]["model"]["digest"],
    }  # fmt: skip


def test_the_secret_carries_the_token_only_in_its_data() -> None:
    secret = render.render_secret(deployment(), "s3cret")
    assert secret["stringData"] == {"token": "s3cret"}
    assert "s3cret" not in json.dumps(secret["metadata"])
    assert "stringData" not in render.render_secret_metadata(deployment())


def test_the_deployment_is_what_a_real_cluster_runs() -> None:
    body = deployment()
    obj = rendered_deployment(body)
    spec = obj["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": {"overseer.dev/deployment": "cat-recognition"}}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/overseer-serving:1.2.3"
    assert container["command"] == ["overseer", "serve"]
    assert container["args"] == [
        "--host", "$(POD_IP)", "--port", "3000",
        "--model-file", "/etc/overseer/model/model.json", "--token-file", "/etc/overseer/admin/token",
    ]  # fmt: skip
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }  # fmt: skip
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model"] == {"name": "model", "configMap": {"name": "cat-recognition-model"}}
    assert volumes["admin"]["secret"]["secretName"] == "cat-recognition-admin"
    assert volumes["cache"] == {"name": "cache", "emptyDir": {}}
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}
    assert not any("hostPath" in v for v in pod["volumes"])
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["OVERSEER_CACHE_DIR"]["value"] == "/var/cache/overseer"


def test_the_pod_template_never_carries_the_model() -> None:
    """A new model must not restart the pods: only the ConfigMap changes."""
    before = deployment()
    after = deployment()
    after["spec"]["model"].update(version="20240202", digest=DIGEST_B)
    after["spec"]["model"]["customObjects"]["conf"] = 0.4
    assert rendered_deployment(before)["spec"]["template"] == rendered_deployment(after)["spec"]["template"]


def test_serving_settings_reach_the_pod_template() -> None:
    body = deployment()
    body["spec"]["serving"].update(
        image="registry.example/custom:7",
        port=8080,
        nodeSelector={"gpu": "a100"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        env=[
            {"name": "HOME", "value": "/home/me"},
            {"name": "EXTRA", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
        volumes=[{"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}],
        volumeMounts=[{"name": "models", "mountPath": "/models", "readOnly": True}],
    )
    pod = rendered_deployment(body)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/custom:7"
    assert container["ports"][0]["containerPort"] == 8080
    assert "8080" in container["args"]
    assert pod["nodeSelector"] == {"gpu": "a100"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    names = [e["name"] for e in container["env"]]
    assert names.count("HOME") == 1 and {"name": "HOME", "value": "/home/me"} in container["env"]
    assert {"name": "EXTRA", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}} in container["env"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in pod["volumes"]
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
    service = render.render_service(body, parsed(body))
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    assert render.service_url(body, parsed(body)) == "http://cat-recognition.ml-serving.svc:8080"


@pytest.mark.parametrize(
    ("desired", "live", "subset"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": {"b": [1, {"c": "x"}]}}, {"a": {"b": [1, {"c": "x", "d": 0}], "e": 1}}, True),
        ({"cpu": 1}, {"cpu": "1"}, True),  # quantities come back as strings
        ({"a": 1}, {"a": 2}, False),
        ({"a": [1, 2]}, {"a": [1]}, False),
        ({"a": True}, {"a": "True"}, False),
        ({"a": {}}, None, False),
    ],
)
def test_is_subset(desired: Any, live: Any, subset: bool) -> None:
    assert render.is_subset(desired, live) is subset


def test_a_hand_edit_is_drift_and_server_defaults_are_not() -> None:
    desired = rendered_deployment(deployment())
    live = json.loads(json.dumps(desired))
    container = live["spec"]["template"]["spec"]["containers"][0]
    container["terminationMessagePath"] = "/dev/termination-log"  # a server default
    container["readinessProbe"]["successThreshold"] = 1
    live["spec"]["progressDeadlineSeconds"] = 600
    assert render.is_subset(desired, live)
    container["image"] = "someone/else:latest"
    assert not render.is_subset(desired, live)
    assert not render.pod_template_matches(desired, live)
