"""The model document: what a serving pod starts from and what `PUT /admin/model` takes.

The operator renders it into the ConfigMap mounted at OVERSEER_MODEL_FILE; the serving process
parses it with `ModelDocument.model_validate`. It is a stable contract (see docs/design.md):
fields may be added, never renamed.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from overseer import text

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
# The schemes every serving pod can fetch (overseer_serving.fetch). Anything else is refused here, at
# validation and admission, rather than by every pod at load time.
URI_SCHEMES = ("file", "http", "https", "s3")
_DIGEST_RE = re.compile(DIGEST_PATTERN)

JSONObject = dict[str, Any]


class _Strict(BaseModel):
    # populate_by_name lets Python code use snake_case while the wire format stays camelCase.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelSpec(_Strict):
    """One trained model with its concrete config values."""

    name: str = Field(min_length=1, max_length=253, description="Model name, as saved by the development team.")
    version: str = Field(
        min_length=1, max_length=128, description="Model version (a string: dates and semver both occur)."
    )
    uri: str = Field(
        min_length=1,
        description="Where the weights are: file://, http(s):// or s3://BUCKET/KEY (credentials and endpoint "
        "from the serving pods' AWS_* environment).",
        # Lets the API server refuse other schemes too (the validator below is the authority).
        json_schema_extra={"pattern": "^(file|https?|s3)://.+"},
    )
    digest: str = Field(
        pattern=DIGEST_PATTERN,
        description="sha256:<64 lowercase hex> of the weights file; the serving pod refuses weights that differ.",
    )
    labels: JSONObject = Field(
        default_factory=dict,
        description="Model labels (for example owner, stage), checked against the schema's labels section.",
    )
    metadata: JSONObject = Field(
        default_factory=dict,
        description="Model metadata (for example f1, dataset_version), checked against the schema's metadata section.",
    )
    custom_objects: JSONObject = Field(
        default_factory=dict,
        alias="customObjects",
        description="Serving parameters (for example resize_resolution, conf, multi_label), "
        "checked against the schema's customObjects section.",
    )

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri: str) -> str:
        scheme, sep, _ = uri.partition("://")
        working = ", ".join(s + "://" for s in URI_SCHEMES)
        if sep and scheme == "s3":
            bucket, slash, key = uri[len("s3://") :].partition("/")
            if not bucket or not slash or not key:
                raise ValueError(f"invalid URI {text.show(uri)}: expected s3://BUCKET/KEY")
            return uri
        if sep and scheme in URI_SCHEMES:
            return uri
        if sep and scheme.lower() in ("gs", "gcs", "az", "abfs", "abfss"):
            raise ValueError(
                f"unsupported URI {text.show(uri)}: {scheme}:// is not supported; the serving pods fetch {working} "
                "(serve the object over https://, for example a signed URL)"
            )
        raise ValueError(f"unsupported URI {text.show(uri)}: expected one of {working}")


class SchemaSnapshot(_Strict):
    """The three JSON Schema sections of the ModelSchema version a model is checked against."""

    name: str = Field(min_length=1, description="ModelSchema name.")
    version: int = Field(ge=1, description="ModelSchema version number.")
    labels: JSONObject = Field(default_factory=dict, description="JSON Schema of the labels.")
    metadata: JSONObject = Field(default_factory=dict, description="JSON Schema of the metadata.")
    custom_objects: JSONObject = Field(
        default_factory=dict, alias="customObjects", description="JSON Schema of the serving parameters."
    )


class ModelDocument(_Strict):
    """`{"model": {...}, "schema": {...}}`: the start-up file and the PUT /admin/model body."""

    model: ModelSpec
    schema_: SchemaSnapshot = Field(alias="schema")

    def to_wire(self) -> JSONObject:
        return self.model_dump(by_alias=True, mode="json")


def is_valid_digest(digest: str) -> bool:
    return bool(_DIGEST_RE.match(digest))


def sha256_file(path: Path) -> str:
    """The digest a ModelDeployment pins for a weights file: what `overseer deployment new` writes
    and what a serving pod verifies are one function."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return "sha256:" + h.hexdigest()
