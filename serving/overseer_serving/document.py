"""The model document (start-up file and PUT /admin/model body): parse, then validate.

The validated result, `Desired`, is everything needed to fetch, load and serve a model: the
document, its schema-defaulted config, and the parsed inference parameters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml
from overseer.api.errors import explain
from overseer.api.model_document import ModelDocument
from overseer.schema.validation import validate_model_config
from pydantic import ValidationError

from overseer_serving.errors import BadRequest, InvalidConfig, InvalidDocument
from overseer_serving.params import InferenceParams, from_custom_objects


@dataclass(frozen=True)
class Desired:
    document: ModelDocument
    config: dict[str, dict[str, Any]]
    """labels, metadata, customObjects with the schema's defaults applied."""
    params: InferenceParams

    @property
    def name(self) -> str:
        return self.document.model.name

    @property
    def version(self) -> str:
        return self.document.model.version

    @property
    def digest(self) -> str:
        return self.document.model.digest

    def identity(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "digest": self.digest}

    def same_as(self, other: Desired) -> bool:
        """Same weights and same effective config: re-applying it changes nothing."""
        return self.identity() == other.identity() and self.config == other.config


def decode(raw: bytes, *, content_type: str | None = None) -> Any:
    """JSON or YAML bytes -> Python data (JSON is a subset of YAML; JSON is tried first)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("model document is not UTF-8 text") from None
    if not text.strip():
        raise BadRequest("model document is empty")
    media = (content_type or "").split(";")[0].strip().lower()
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        if media == "application/json" or text.lstrip().startswith(("{", "[")):
            raise BadRequest(f"model document is not valid JSON: {error}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BadRequest(f"model document is neither JSON nor YAML: {error}") from None


def parse(data: Any) -> ModelDocument:
    if not isinstance(data, dict):
        raise InvalidDocument(
            f"model document must be an object with 'model' and 'schema', found {type(data).__name__}"
        )
    try:
        return ModelDocument.model_validate(data)
    except ValidationError as error:
        # The CLI's and the admission webhooks' words for the same mistakes (did-you-mean included).
        problems = [f"{path or 'document'}: {message}" for path, message in explain(ModelDocument, error)]
        raise InvalidDocument("; ".join(problems)) from None


def validate(document: ModelDocument) -> Desired:
    """Check the config against the schema snapshot, then against what this server honours."""
    model = document.model
    result = validate_model_config(document.schema_, model.labels, model.metadata, model.custom_objects)
    if not result.ok:
        raise InvalidConfig(
            f"model {model.name}:{model.version} does not satisfy schema "
            f"{document.schema_.name} v{document.schema_.version}: " + "; ".join(str(p) for p in result.problems)
        )
    params = from_custom_objects(result.defaulted["customObjects"])
    return Desired(document=document, config=result.defaulted, params=params)


def load_document(raw: bytes, *, content_type: str | None = None) -> Desired:
    return validate(parse(decode(raw, content_type=content_type)))
