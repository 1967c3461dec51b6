"""overseer.dev/v1alpha1: ModelSchema and ModelDeployment as pydantic models.

The single source of truth for the API: the CRDs in crds/ are generated from these classes
(`python -m overseer.crdgen`), and the operator, the webhooks and the CLI parse objects with them.
Field descriptions become `kubectl explain` text; `json_schema_extra` carries the Kubernetes
extensions (CEL rules, list types) into the CRD.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from overseer.api.model_document import DIGEST_PATTERN, JSONObject, ModelSpec

# The light core's layers point one way: text <- schema <- api. The mode list is the checker's.
from overseer.schema.limits import MAX_VERSIONS
from overseer.schema.modes import COMPATIBILITY_MODES, CompatibilityMode

GROUP = "overseer.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

MAX_SCHEMA_VERSIONS = MAX_VERSIONS

# A JSON Schema or a free-form config section: kept as-is by the API server.
_FREE_FORM: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}


class _Model(BaseModel):
    # extra="forbid": a typo in a manifest is an error, not a silently ignored field.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ObjectMeta(BaseModel):
    """The subset of Kubernetes object metadata the CLI and the operator read."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(min_length=1, max_length=253, description="Object name.")
    namespace: str | None = Field(default=None, description="Object namespace.")
    labels: dict[str, str] = Field(default_factory=dict, description="Object labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Object annotations.")
    generation: int | None = Field(default=None, description="Spec generation, set by the API server.")
    resource_version: str | None = Field(default=None, alias="resourceVersion", description="Resource version.")
    uid: str | None = Field(default=None, description="Object UID.")


class Condition(_Model):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str = Field(min_length=1, max_length=316, description="Condition type: Ready, Progressing or Degraded.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        default="",
        max_length=1024,
        description="CamelCase reason for the last transition, for machines.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable detail of the last transition.")
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        alias="observedGeneration",
        description="The .metadata.generation the condition was set from.",
    )
    last_transition_time: datetime | None = Field(
        default=None, alias="lastTransitionTime", description="When the status last changed."
    )


# --- ModelSchema ------------------------------------------------------------------------------------


class SchemaVersion(_Model):
    """One registered version of a model-config contract: three JSON Schemas. Immutable once registered."""

    version: int = Field(
        ge=1,
        description="Version number: unique, strictly increasing; never reused or changed once registered.",
    )
    description: str = Field(default="", max_length=4096, description="What changed in this version and why.")
    deprecated: bool = Field(
        default=False,
        description="Deprecated versions stay valid, but new deployments that reference them get a warning.",
    )
    labels: JSONObject = Field(
        default_factory=dict,
        description="JSON Schema (draft 2020-12 unless $schema says otherwise) that a model's labels must satisfy, "
        "for example owner and stage.",
        json_schema_extra=_FREE_FORM,
    )
    metadata: JSONObject = Field(
        default_factory=dict,
        description="JSON Schema that a model's metadata must satisfy, for example f1 and dataset_version.",
        json_schema_extra=_FREE_FORM,
    )
    custom_objects: JSONObject = Field(
        default_factory=dict,
        alias="customObjects",
        description="JSON Schema of the serving parameters (customObjects), "
        "for example resize_resolution, conf and multi_label. "
        "Defaults declared here are applied to deployments at admission.",
        json_schema_extra=_FREE_FORM,
    )


class ModelSchemaSpec(_Model):
    """The versioned contract between the team that trains a model and the team that serves it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    # listType=map already makes version numbers unique; sorted + unique = strictly increasing.
                    "rule": "self.versions.map(v, v.version).isSorted()",
                    "message": "versions must be listed in strictly increasing order of version",
                    "fieldPath": ".versions",
                }
            ]
        }
    )

    compatibility: CompatibilityMode = Field(
        default="BACKWARD",
        description="How a new version must relate to earlier ones (Confluent Schema Registry semantics): "
        "BACKWARD = configs valid under the previous version stay valid; FORWARD = configs of the new version "
        "are valid under the previous one; FULL = both; *_TRANSITIVE = against every earlier version; NONE = no check.",
    )
    versions: list[SchemaVersion] = Field(
        min_length=1,
        max_length=MAX_SCHEMA_VERSIONS,
        description="Registered versions, oldest first. Append new versions; never edit or remove registered ones.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["version"],
        },
    )

    def version(self, number: int) -> SchemaVersion | None:
        return next((v for v in self.versions if v.version == number), None)

    @property
    def latest(self) -> SchemaVersion:
        return max(self.versions, key=lambda v: v.version)


class VersionUsage(_Model):
    """Which ModelDeployments reference one version of a ModelSchema."""

    version: int = Field(ge=1, description="Schema version.")
    deployments: list[str] = Field(default_factory=list, description="Names of the ModelDeployments using it.")


class ModelSchemaStatus(_Model):
    """Observed state of a ModelSchema, written by the operator."""

    observed_generation: int | None = Field(
        default=None, alias="observedGeneration", description="The generation last processed."
    )
    latest_version: int | None = Field(default=None, alias="latestVersion", description="Highest registered version.")
    used_by: list[VersionUsage] = Field(
        default_factory=list,
        alias="usedBy",
        description="The versions in use and the ModelDeployments (same namespace) that use them.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready is True when every version is a valid JSON Schema and compatible per spec.compatibility.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class ModelSchema(_Model):
    """Declares what a model's labels, metadata and serving parameters look like, versioned."""

    api_version: Literal["overseer.dev/v1alpha1"] = Field(default="overseer.dev/v1alpha1", alias="apiVersion")
    kind: Literal["ModelSchema"] = "ModelSchema"
    metadata: ObjectMeta
    spec: ModelSchemaSpec
    status: ModelSchemaStatus | None = None


# --- ModelDeployment ------------------------------------------------------------------------------


class SchemaRef(_Model):
    """Which ModelSchema version the model's config is checked against (same namespace)."""

    name: str = Field(min_length=1, max_length=253, description="Name of a ModelSchema in the same namespace.")
    version: int = Field(
        ge=1,
        description="Version of that ModelSchema; pinned explicitly so what is in git is what is checked.",
    )


class ResourceRequirements(_Model):
    """Compute resources of each serving container (as in a Pod spec)."""

    limits: dict[str, int | str] = Field(
        default_factory=dict,
        description="Maximum resources, for example cpu: '2', memory: 4Gi, nvidia.com/gpu: 1.",
        json_schema_extra={"additionalProperties": {"x-kubernetes-int-or-string": True}},
    )
    requests: dict[str, int | str] = Field(
        default_factory=dict,
        description="Guaranteed resources, for example cpu: 500m, memory: 2Gi.",
        json_schema_extra={"additionalProperties": {"x-kubernetes-int-or-string": True}},
    )


class EnvVar(_Model):
    """An environment variable of the serving container."""

    name: str = Field(min_length=1, description="Variable name.")
    value: str | None = Field(default=None, description="Literal value.")
    value_from: JSONObject | None = Field(
        default=None,
        alias="valueFrom",
        description="Source of the value, as in a Pod spec "
        "(secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef).",
        json_schema_extra=_FREE_FORM,
    )


class Toleration(_Model):
    """A Pod toleration, for example to run on GPU nodes."""

    key: str | None = Field(default=None, description="Taint key the toleration applies to; empty matches all keys.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Exists or Equal (default Equal).")
    value: str | None = Field(default=None, description="Taint value to match with operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None,
        alias="tolerationSeconds",
        description="How long a NoExecute taint is tolerated.",
    )


class Volume(BaseModel):
    """A Pod volume (any source: persistentVolumeClaim, configMap, secret, csi, ...), as in a Pod spec."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})

    name: str = Field(min_length=1, max_length=63, description="Volume name, referenced by volumeMounts.")


class VolumeMount(BaseModel):
    """Where a volume appears in the serving container, as in a Pod spec (readOnly, subPath, ...)."""

    model_config = ConfigDict(
        extra="allow", populate_by_name=True, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )

    name: str = Field(min_length=1, max_length=63, description="Name of a volume in spec.serving.volumes.")
    mount_path: str = Field(
        min_length=1, alias="mountPath", description="Absolute path in the container, for example /models."
    )


class ServingSpec(_Model):
    """How serving pods run. Changing anything here restarts the pods (a rolling update)."""

    image: str | None = Field(
        default=None,
        min_length=1,
        description="Serving image; empty uses the operator's default serving image.",
    )
    port: int = Field(default=3000, ge=1, le=65535, description="HTTP port of the serving process.")
    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements,
        description="Compute resources of each serving container.",
    )
    env: list[EnvVar] = Field(default_factory=list, description="Extra environment variables of the serving container.")
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        alias="nodeSelector",
        description="Node labels the serving pods must run on.",
    )
    tolerations: list[Toleration] = Field(default_factory=list, description="Tolerations of the serving pods.")
    volumes: list[Volume] = Field(
        default_factory=list,
        description="Extra volumes of the serving pods, for example a PersistentVolumeClaim holding model files "
        "for file:// URIs. The names model, admin, cache and tmp are the operator's own.",
    )
    volume_mounts: list[VolumeMount] = Field(
        default_factory=list,
        alias="volumeMounts",
        description="Mounts of spec.serving.volumes in the serving container, for example "
        "{name: models, mountPath: /models, readOnly: true}.",
    )


class RolloutSpec(_Model):
    """How a new model reaches the running pods."""

    strategy: Literal["HotSwap", "Rolling"] = Field(
        default="HotSwap",
        description="HotSwap loads the new model into running pods in place (no restart); "
        "Rolling replaces the pods with a Deployment rolling update.",
    )
    max_unavailable: int = Field(
        default=1,
        ge=1,
        alias="maxUnavailable",
        description="How many pods swap (and stop serving) at the same time.",
    )
    auto_rollback: bool = Field(
        default=True,
        alias="autoRollback",
        description="Swap already-updated pods back to the previous model when a pod fails to load the new one.",
    )


class PromotionSpec(_Model):
    """Optional quality gate: a model is rolled out only when its metric passes."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.minimum) || (has(self.notWorseThanCurrent) && self.notWorseThanCurrent)",
                    "message": "a promotion gate needs minimum, notWorseThanCurrent: true, or both",
                }
            ]
        }
    )

    metric: str = Field(min_length=1, description="Key in spec.model.metadata holding the metric, for example f1.")
    minimum: float | None = Field(default=None, description="Lowest acceptable metric value.")
    not_worse_than_current: bool = Field(
        default=False,
        alias="notWorseThanCurrent",
        description="Refuse a model whose metric is below that of the model serving now.",
    )


class ModelDeploymentSpec(_Model):
    """A model with concrete config values, served by a set of pods."""

    schema_ref: SchemaRef = Field(
        alias="schemaRef", description="The ModelSchema version the model's config must satisfy."
    )
    model: ModelSpec = Field(description="The model to serve and its config; changing it triggers a hot swap.")
    replicas: int = Field(default=1, ge=1, le=1000, description="Number of serving pods.")
    serving: ServingSpec = Field(
        default_factory=ServingSpec,
        description="Serving pod settings; changes here restart the pods.",
    )
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, description="How model changes reach the pods.")
    promotion: PromotionSpec | None = Field(default=None, description="Optional quality gate checked before a rollout.")


class ServedModel(_Model):
    """Identity of a model, as reported by the serving pods."""

    name: str = Field(description="Model name.")
    version: str = Field(description="Model version.")
    digest: str = Field(pattern=DIGEST_PATTERN, description="sha256 digest of the weights.")


class ReplicaStatus(_Model):
    """What one serving pod runs."""

    pod: str = Field(description="Pod name.")
    version: str | None = Field(default=None, description="Model version the pod serves.")
    digest: str | None = Field(default=None, description="Digest of the weights the pod serves.")
    state: Literal["Pending", "Loading", "Serving", "Failed", "Unknown"] = Field(
        default="Unknown", description="Pending, Loading, Serving, Failed or Unknown."
    )


class HistoryEntry(_Model):
    """A model that was served everywhere, kept for rollback."""

    name: str = Field(description="Model name.")
    version: str = Field(description="Model version.")
    digest: str = Field(pattern=DIGEST_PATTERN, description="sha256 digest of the weights.")
    uri: str | None = Field(default=None, description="Where the weights were.")
    schema_version: int | None = Field(
        default=None,
        alias="schemaVersion",
        description="ModelSchema version it was checked against.",
    )
    served_at: datetime | None = Field(default=None, alias="servedAt", description="When it became served everywhere.")
    metadata: JSONObject | None = Field(
        default=None,
        description="The model's metadata (its metrics): the promotion gate notWorseThanCurrent compares with it.",
        json_schema_extra=_FREE_FORM,
    )


class RolloutRecord(_Model):
    """The most recent rollout."""

    from_version: str | None = Field(default=None, alias="fromVersion", description="Model version before the rollout.")
    to_version: str | None = Field(default=None, alias="toVersion", description="Model version the rollout aimed at.")
    strategy: Literal["HotSwap", "Rolling"] | None = Field(default=None, description="Strategy used.")
    result: Literal["InProgress", "Succeeded", "Failed", "RolledBack"] = Field(
        default="InProgress", description="InProgress, Succeeded, Failed or RolledBack."
    )
    started_at: datetime | None = Field(default=None, alias="startedAt", description="When the rollout started.")
    finished_at: datetime | None = Field(default=None, alias="finishedAt", description="When it finished.")
    message: str = Field(default="", description="Detail, for example which pod failed and why.")


class ModelDeploymentStatus(_Model):
    """Observed state of a ModelDeployment, written by the operator."""

    observed_generation: int | None = Field(
        default=None, alias="observedGeneration", description="The generation last processed."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (every pod serves spec.model), Progressing (a rollout runs), "
        "Degraded (a rollout failed or pods are missing).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    model: ServedModel | None = Field(default=None, description="The model served by every pod now.")
    url: str | None = Field(
        default=None, description="In-cluster URL of the serving Service, for example http://name.namespace.svc:3000."
    )
    ready_replicas: int = Field(
        default=0, ge=0, alias="readyReplicas", description="Pods serving spec.model and ready."
    )
    replicas: list[ReplicaStatus] = Field(default_factory=list, description="What each pod serves.")
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=20,
        description="Models served before, newest first, for rollback.",
    )
    last_rollout: RolloutRecord | None = Field(
        default=None, alias="lastRollout", description="The most recent rollout."
    )


class ModelDeployment(_Model):
    """Serves a model whose config is checked against a ModelSchema version; model changes are hot-swapped."""

    api_version: Literal["overseer.dev/v1alpha1"] = Field(default="overseer.dev/v1alpha1", alias="apiVersion")
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    metadata: ObjectMeta
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None


KINDS: dict[str, type[ModelSchema] | type[ModelDeployment]] = {
    "ModelSchema": ModelSchema,
    "ModelDeployment": ModelDeployment,
}

__all__ = [
    "API_VERSION",
    "COMPATIBILITY_MODES",
    "GROUP",
    "KINDS",
    "VERSION",
    "CompatibilityMode",
    "Condition",
    "EnvVar",
    "HistoryEntry",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ModelSchema",
    "ModelSchemaSpec",
    "ModelSchemaStatus",
    "ModelSpec",
    "ObjectMeta",
    "PromotionSpec",
    "ReplicaStatus",
    "ResourceRequirements",
    "RolloutRecord",
    "RolloutSpec",
    "SchemaRef",
    "SchemaVersion",
    "ServedModel",
    "ServingSpec",
    "Toleration",
    "VersionUsage",
    "Volume",
    "VolumeMount",
]
