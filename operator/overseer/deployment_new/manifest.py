"""Building a ModelDeployment for a saved model, and checking it the way `overseer validate` does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from overseer.api.v1alpha1 import API_VERSION
from overseer.checks import Problem, check_documents
from overseer.deployment_new.saved_model import SavedModel
from overseer.deployment_new.values import Config
from overseer.manifests import Document
from overseer.registry import ResolvedSchema


def model_section(saved: SavedModel, uri: str, config: Config) -> dict[str, Any]:
    """`spec.model`, in the order the API documents it."""
    return {
        "name": saved.name,
        "version": saved.version,
        "uri": uri,
        "digest": saved.digest,
        "labels": config.get("labels", {}),
        "metadata": config.get("metadata", {}),
        "customObjects": config.get("customObjects", {}),
    }


def schema_ref(schema: ResolvedSchema) -> dict[str, Any]:
    return {"name": schema.schema.metadata.name, "version": schema.version.version}


def build_manifest(
    name: str, namespace: str | None, ref: Mapping[str, Any], model: Mapping[str, Any]
) -> dict[str, Any]:
    """A minimal ModelDeployment: the API server and the operator default the rest (replicas 1, HotSwap)."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": metadata,
        "spec": {"schemaRef": dict(ref), "model": dict(model)},
    }


def check_manifest(body: Mapping[str, Any], schema: ResolvedSchema, source: str) -> list[Problem]:
    """The problems `overseer validate` would report for `body` checked against `schema`
    (the schema's own problems too: they explain a deployment that cannot be judged)."""
    subject = Document(source, 1, 1, body)
    known = Document(schema.reference, 1, 1, schema.body)
    return check_documents([subject], [known]).problems


def render(body: Mapping[str, Any], header: str) -> str:
    """YAML for a user to read and commit: the API's field order, a header saying where it came from."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    text = yaml.safe_dump(dict(body), sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)
    return comment + text
