"""SDK for the ML development team: check a model's config against its ModelSchema before saving.

    from overseer.sdk import check_model_config, create_model

    config = check_model_config("schemas/object-detector.yaml#2",
                                labels={"owner": "vision-team", "stage": "staging"},
                                metadata={"f1": 0.87}, custom_objects={"conf": 0.25})

    with create_model("cat_recognition", schema="schemas/object-detector.yaml#2",
                      labels=..., metadata=..., custom_objects=...) as model:
        yolo.save(model.path_of("model.pt"))

Both raise ModelConfigError listing every problem at once, so a training job fails before it
spends time saving and uploading a model that production would refuse.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overseer.api.model_document import SchemaSnapshot
from overseer.manifests import SchemaFileError, parse_model_schema, pick_version, read_model_schema, split_version
from overseer.registry import ClusterAccessError, is_cluster_reference, read_cluster_schema
from overseer.schema.validation import FieldProblem, validate_model_config

SchemaSource = SchemaSnapshot | Mapping[str, Any] | str | Path


class SchemaLoadError(ValueError):
    """The schema file or object cannot be used (missing, invalid, no such version, cluster unreadable:
    then `__cause__` is the registry's ClusterAccessError, whose `reason` says which)."""


class ModelConfigError(ValueError):
    """The model's config does not satisfy the schema; `problems` lists every mismatch."""

    def __init__(self, schema: SchemaSnapshot, problems: tuple[FieldProblem, ...]) -> None:
        self.schema = schema
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        count = f"{len(problems)} problem{'' if len(problems) == 1 else 's'}"
        super().__init__(f"model config does not match {schema.name} version {schema.version} ({count}):\n{lines}")


@dataclass(frozen=True)
class CheckedConfig:
    """A config that satisfies the schema, with the schema's defaults filled in."""

    schema: SchemaSnapshot = field(repr=False)
    labels: dict[str, Any]
    metadata: dict[str, Any]
    custom_objects: dict[str, Any]


def load_schema(source: SchemaSource, version: int | None = None, *, context: str | None = None) -> SchemaSnapshot:
    """A ModelSchema version as a SchemaSnapshot.

    `source` is a SchemaSnapshot, a ModelSchema manifest (mapping), a YAML file holding one, or
    `cluster:NAMESPACE/NAME` for a ModelSchema read from the cluster (kubeconfig's current context,
    `context`, or the in-cluster config; needs the operator extra);
    `file.yaml#2`, `cluster:ns/name#2` or `version=2` picks a version, the highest by default.
    """
    if isinstance(source, SchemaSnapshot):
        return source
    try:
        if isinstance(source, Mapping):
            if source.get("kind") != "ModelSchema":
                try:
                    return SchemaSnapshot.model_validate(source)
                except ValueError as error:
                    raise SchemaLoadError(f"not a ModelSchema manifest nor a schema snapshot: {error}") from error
            where = "<mapping>"
            schema = parse_model_schema(source, where)
        else:
            where, number = split_version(str(source))
            version = number if number is not None else version
            if is_cluster_reference(source):
                schema, _ = read_cluster_schema(where, context=context)
            else:
                schema = read_model_schema(where)
        chosen = pick_version(schema, version, where)
    except (SchemaFileError, ClusterAccessError) as error:
        raise SchemaLoadError(str(error)) from error
    return SchemaSnapshot(
        name=schema.metadata.name,
        version=chosen.version,
        labels=chosen.labels,
        metadata=chosen.metadata,
        customObjects=chosen.custom_objects,
    )


def check_model_config(
    schema: SchemaSource,
    *,
    labels: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    custom_objects: Mapping[str, Any] | None = None,
) -> CheckedConfig:
    """Validate a model's config; raise ModelConfigError listing every problem."""
    snapshot = load_schema(schema)
    result = validate_model_config(snapshot, labels or {}, metadata or {}, custom_objects or {})
    if not result.ok:
        raise ModelConfigError(snapshot, result.problems)
    return CheckedConfig(
        schema=snapshot,
        labels=result.defaulted["labels"],
        metadata=result.defaulted["metadata"],
        custom_objects=result.defaulted["customObjects"],
    )


@contextmanager
def create_model(
    name: str,
    *,
    schema: SchemaSource,
    labels: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    custom_objects: Mapping[str, Any] | None = None,
    **create_options: Any,
) -> Iterator[Any]:
    """Check the config, then `bentoml.models.create` with the checked (defaulted) values.

    The model is saved with the schema's defaults filled in, so what is stored is complete.
    `create_options` go to bentoml.models.create unchanged. Needs BentoML (the serving extra).
    """
    checked = check_model_config(schema, labels=labels, metadata=metadata, custom_objects=custom_objects)
    try:
        import bentoml
    except ImportError as error:
        raise ImportError("create_model needs BentoML: pip install 'schema-overseer[serving]'") from error
    with bentoml.models.create(
        name,
        labels=checked.labels,
        metadata=checked.metadata,
        custom_objects=checked.custom_objects,
        **create_options,
    ) as model:
        yield model


__all__ = [
    "CheckedConfig",
    "ModelConfigError",
    "SchemaLoadError",
    "check_model_config",
    "create_model",
    "load_schema",
]
