"""What a ModelDeployment turns into: a ConfigMap, a Secret, a Deployment and a Service. Pure.

A unit test shows exactly what a user's spec becomes; the reconciler applies the result with
server-side apply. The Deployment is what a real cluster runs - the serving image, `overseer
serve`, the model document and admin token mounted from the ConfigMap and the Secret, probes on
/readyz and /livez, a non-root read-only-root container with emptyDirs for the weights cache and
/tmp - and the local node agent runs the very same object.

The ConfigMap is rendered from the rollout's record (`RolloutState`): the model document new pods
start from (the model the rollout wants now: its target, or the stable model during a rollback) and
the record itself, so both are written in one update. With the HotSwap strategy the pod template
never carries the model, so pods are not restarted for a new model (the hot swap rolls it into them
in place); with Rolling, the template carries the wanted model's identity in an annotation, so a
model change is a rolling update of the Deployment (docs/rollout.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from overseer.api.model_document import ModelDocument, SchemaSnapshot
from overseer.api.v1alpha1 import API_VERSION, ModelDeployment, SchemaVersion
from overseer.operator.rollout_state import ModelKey, RolloutState
from overseer.operator.settings import FIELD_MANAGER, OperatorSettings
from overseer.schema.validation import validate_model_config

JSONObject = dict[str, Any]

# Where the serving container finds its files (docs/operator.md lists them).
MODEL_DIR = "/etc/overseer/model"
MODEL_FILE_KEY = "model.json"
ROLLOUT_KEY = "rollout.json"
"""The rollout's record, next to the model document in the ConfigMap (docs/rollout.md, "Persisted state")."""
ADMIN_DIR = "/etc/overseer/admin"
TOKEN_KEY = "token"
CACHE_DIR = "/var/cache/overseer"
TMP_DIR = "/tmp"  # an emptyDir: the root filesystem is read-only
RESERVED_VOLUMES = {"model": MODEL_DIR, "admin": ADMIN_DIR, "cache": CACHE_DIR, "tmp": TMP_DIR}
RESERVED_ENV = ("POD_IP",)
SERVING_USER = 10001  # the serving image's user (Dockerfile)

LABEL_DEPLOYMENT = "overseer.dev/deployment"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={FIELD_MANAGER}"
ANNOTATION_MODEL = "overseer.dev/model"
"""On the ConfigMap: the model in it. On the pod template (Rolling strategy only): the model its pods
start with, so that a model change replaces the pods."""
ANNOTATION_RETRY = "rollout.overseer.dev/retry"
"""On the ModelDeployment: a new value retries a failed rollout of the same spec.model. (Not under
overseer.dev/: Kopf ignores the annotations of its own storage prefix, so they trigger nothing.)"""


@dataclass(frozen=True)
class Names:
    configmap: str
    secret: str
    deployment: str
    service: str

    @classmethod
    def of(cls, name: str) -> Names:
        # The Deployment and the Service carry the user's name (`kubectl get deploy cat-recognition`).
        return cls(configmap=f"{name}-model", secret=f"{name}-admin", deployment=name, service=name)


def labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "overseer-serving",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "model-server",
        LABEL_MANAGED_BY: FIELD_MANAGER,
        LABEL_DEPLOYMENT: name,
    }


def selector(name: str) -> dict[str, str]:
    """The pod selector: immutable in a Deployment, so only the stable label."""
    return {LABEL_DEPLOYMENT: name}


def owner_reference(body: Mapping[str, Any]) -> JSONObject:
    meta = body["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(body: Mapping[str, Any], name: str, annotations: Mapping[str, str] | None = None) -> JSONObject:
    meta: JSONObject = {
        "name": name,
        "namespace": body["metadata"]["namespace"],
        "labels": labels(body["metadata"]["name"]),
        "ownerReferences": [owner_reference(body)],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


# --- the model document ----------------------------------------------------------------------------


def model_document(deployment: ModelDeployment, version: SchemaVersion) -> ModelDocument:
    """The document the pods start from (and PUT /admin/model takes), with the schema's defaults
    filled in, so a pod never depends on the mutating webhook having run."""
    model = deployment.spec.model
    sections = version.model_dump(by_alias=True)
    checked = validate_model_config(sections, model.labels, model.metadata, model.custom_objects)
    defaulted = model.model_copy(
        update={
            "labels": checked.defaulted["labels"],
            "metadata": checked.defaulted["metadata"],
            "custom_objects": checked.defaulted["customObjects"],
        }
    )
    snapshot = SchemaSnapshot.model_validate(
        {
            "name": deployment.spec.schema_ref.name,
            "version": version.version,
            "labels": sections["labels"],
            "metadata": sections["metadata"],
            "customObjects": sections["customObjects"],
        }
    )
    return ModelDocument(model=defaulted, schema=snapshot)


# --- owned objects ---------------------------------------------------------------------------------


def key_identity(key: ModelKey) -> JSONObject:
    return {"name": key.name, "version": key.version, "digest": key.digest, "config": key.config}


def render_configmap(body: Mapping[str, Any], state: RolloutState) -> JSONObject:
    """The model document pods start from and the rollout's record, in one object (one write)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(
            body,
            Names.of(body["metadata"]["name"]).configmap,
            {ANNOTATION_MODEL: json.dumps(key_identity(state.wanted.key), sort_keys=True)},
        ),
        "data": {
            MODEL_FILE_KEY: json.dumps(state.configmap_document(), indent=2, sort_keys=True) + "\n",
            ROLLOUT_KEY: state.to_json(),
        },
    }


def rollout_record(configmap: Mapping[str, Any] | None) -> RolloutState | None:
    """The record persisted in the ConfigMap; None when there is none or it cannot be trusted."""
    data = (configmap or {}).get("data")
    text = data.get(ROLLOUT_KEY) if isinstance(data, Mapping) else None
    return RolloutState.from_json(text if isinstance(text, str) else None)


def render_secret(body: Mapping[str, Any], token: str) -> JSONObject:
    """Created once; the token is never logged, never rendered into status or Events."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(body, Names.of(body["metadata"]["name"]).secret),
        "type": "Opaque",
        "stringData": {TOKEN_KEY: token},
    }


def render_secret_metadata(body: Mapping[str, Any]) -> JSONObject:
    """What the operator keeps applying to an existing Secret: labels and owner, never the data."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(body, Names.of(body["metadata"]["name"]).secret),
    }


def render_service(body: Mapping[str, Any], deployment: ModelDeployment) -> JSONObject:
    name = body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(body, Names.of(name).service),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(name),
            "ports": [{"name": "http", "port": deployment.spec.serving.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def service_url(body: Mapping[str, Any], deployment: ModelDeployment) -> str:
    meta = body["metadata"]
    return f"http://{Names.of(meta['name']).service}.{meta['namespace']}.svc:{deployment.spec.serving.port}"


def render_deployment(
    body: Mapping[str, Any],
    deployment: ModelDeployment,
    settings: OperatorSettings,
    template_model: ModelKey | None = None,
) -> JSONObject:
    """The serving Deployment. `template_model` (Rolling strategy): the model whose identity the pod
    template carries, so that changing it replaces the pods; None (HotSwap): the template carries
    no model, and a model change leaves the pods running."""
    name = body["metadata"]["name"]
    names = Names.of(name)
    serving = deployment.spec.serving
    port = serving.port
    container: JSONObject = {
        "name": "serving",
        "image": serving.image or settings.serving_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["overseer", "serve"],
        "args": [
            "--host",
            "$(POD_IP)",
            "--port",
            str(port),
            "--model-file",
            f"{MODEL_DIR}/{MODEL_FILE_KEY}",
            "--token-file",
            f"{ADMIN_DIR}/{TOKEN_KEY}",
        ],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": _env(serving.env),
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/livez", "port": "http"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        },
        # Loading and warming a model can take minutes on a big GPU model: liveness waits for it.
        "startupProbe": {
            "httpGet": {"path": "/livez", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 5,
            "failureThreshold": 120,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "model", "mountPath": MODEL_DIR, "readOnly": True},
            {"name": "admin", "mountPath": ADMIN_DIR, "readOnly": True},
            {"name": "cache", "mountPath": CACHE_DIR},
            {"name": "tmp", "mountPath": TMP_DIR},
            *[m.model_dump(by_alias=True, exclude_none=True) for m in serving.volume_mounts],
        ],
    }
    resources = serving.resources.model_dump(exclude_defaults=True)
    if resources:
        container["resources"] = resources
    pod_spec: JSONObject = {
        "automountServiceAccountToken": False,  # serving pods never call the Kubernetes API
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": SERVING_USER,
            "runAsGroup": SERVING_USER,
            "fsGroup": SERVING_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "model", "configMap": {"name": names.configmap}},
            {"name": "admin", "secret": {"secretName": names.secret, "defaultMode": 0o440}},
            {"name": "cache", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            *[v.model_dump(by_alias=True, exclude_none=True) for v in serving.volumes],
        ],
    }
    if serving.node_selector:
        pod_spec["nodeSelector"] = dict(serving.node_selector)
    if serving.tolerations:
        pod_spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in serving.tolerations]
    template_meta: JSONObject = {"labels": labels(name)}
    if template_model is not None:
        template_meta["annotations"] = {ANNOTATION_MODEL: json.dumps(key_identity(template_model), sort_keys=True)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(body, names.deployment),
        "spec": {
            "replicas": deployment.spec.replicas,
            "selector": {"matchLabels": selector(name)},
            # A serving change replaces pods one at a time with a new pod ready first: no capacity dip.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "revisionHistoryLimit": 5,
            "template": {"metadata": template_meta, "spec": pod_spec},
        },
    }


def _env(user: Sequence[Any]) -> list[JSONObject]:
    own: list[JSONObject] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "OVERSEER_CACHE_DIR", "value": CACHE_DIR},
        {"name": "HOME", "value": TMP_DIR},
        {"name": "BENTOML_HOME", "value": f"{TMP_DIR}/bentoml"},
        {"name": "YOLO_CONFIG_DIR", "value": f"{TMP_DIR}/ultralytics"},
    ]
    given = [e.model_dump(by_alias=True, exclude_none=True) for e in user]
    overridden = {e["name"] for e in given}
    # One entry per name (server-side apply keys env by name): the user's value wins.
    return [e for e in own if e["name"] not in overridden] + given


def is_subset(desired: Any, live: Any) -> bool:
    """Every field we set has our value in the live object (the API server adds defaults; other
    managers may add fields): the drift test that decides whether to apply again."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(k in live and is_subset(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(live) >= len(desired) and all(map(is_subset, desired, live))
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live
    if isinstance(desired, int | str) and isinstance(live, int | str):
        return str(desired) == str(live)  # quantities and int-or-string ports
    equal: bool = desired == live
    return equal


# --- spec constraints the rendering needs ------------------------------------------------------------


def serving_problems(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What the API's types cannot say about spec.serving: reserved names, dangling mounts."""
    serving = spec.get("serving") if isinstance(spec.get("serving"), Mapping) else {}
    assert isinstance(serving, Mapping)
    problems: list[tuple[str, str]] = []
    volumes = [v for v in serving.get("volumes") or [] if isinstance(v, Mapping)]
    names: list[str] = []
    for index, volume in enumerate(volumes):
        name = volume.get("name")
        where = f"spec.serving.volumes[{index}].name"
        if name in RESERVED_VOLUMES:
            problems.append((where, f"{name!r} is the operator's own volume; choose another name"))
        elif name in names:
            problems.append((where, f"duplicate volume name {name!r}"))
        if isinstance(name, str):
            names.append(name)
    reserved_paths = list(RESERVED_VOLUMES.values())
    for index, mount in enumerate(m for m in serving.get("volumeMounts") or [] if isinstance(m, Mapping)):
        name, path = mount.get("name"), mount.get("mountPath")
        where = f"spec.serving.volumeMounts[{index}]"
        if isinstance(name, str) and name not in names:
            shown = f" (volumes: {', '.join(names)})" if names else ""
            problems.append((f"{where}.name", f"no volume {name!r} in spec.serving.volumes{shown}"))
        if isinstance(path, str):
            clash = next((p for p in reserved_paths if _overlaps(path, p)), None)
            if not path.startswith("/"):
                problems.append((f"{where}.mountPath", f"expected an absolute path, found {path!r}"))
            elif clash is not None:
                problems.append((f"{where}.mountPath", f"{path!r} overlaps the operator's own mount {clash}"))
    for index, env in enumerate(e for e in serving.get("env") or [] if isinstance(e, Mapping)):
        if env.get("name") in RESERVED_ENV:
            problems.append(
                (f"spec.serving.env[{index}].name", f"{env.get('name')} is set by the operator (the pod's address)")
            )
    return problems


def _overlaps(path: str, reserved: str) -> bool:
    """The same path, or a parent that would hide ours (a mount inside ours, like /tmp/x, is fine)."""
    a, b = path.rstrip("/"), reserved.rstrip("/")
    return a == b or b.startswith(a + "/")


__all__ = [
    "ANNOTATION_MODEL",
    "ANNOTATION_RETRY",
    "LABEL_DEPLOYMENT",
    "MANAGED_SELECTOR",
    "ROLLOUT_KEY",
    "Names",
    "is_subset",
    "key_identity",
    "labels",
    "model_document",
    "owner_reference",
    "render_configmap",
    "render_deployment",
    "render_secret",
    "render_secret_metadata",
    "render_service",
    "rollout_record",
    "selector",
    "service_url",
    "serving_problems",
]
