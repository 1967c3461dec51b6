"""The model document (start-up file and PUT /admin/model body): parse, then validate.

The validated result, `Desired`, is everything needed to fetch, load and serve a model: the
document, its schema-defaulted config, and the parsed inference parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from overseer import text
from overseer.api.errors import explain
from overseer.api.model_document import ModelDocument, ModelSpec
from overseer.safe_yaml import TextError, YamlSyntaxError, decode_text, load_one
from overseer.schema.validation import validate_model_config
from pydantic import ValidationError, field_validator

from overseer_serving.errors import BadRequest, InvalidConfig, InvalidDocument
from overseer_serving.fetch import SCHEMES as FETCHABLE_SCHEMES
from overseer_serving.params import InferenceParams, from_custom_objects


class PodModelSpec(ModelSpec):
    """The model section as this pod reads it: the URI schemes are the ones this pod can fetch.

    Admission (`overseer.api.model_document.URI_SCHEMES`, used by `overseer validate` and the
    webhooks) decides what the cluster accepts from users; a pod must not refuse what it can serve,
    nor accept what it cannot. Everything else is ModelSpec's own validation.
    """

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri: str) -> str:
        scheme, sep, _ = uri.partition("://")
        if sep and scheme in FETCHABLE_SCHEMES:
            return uri
        fetchable = ", ".join(s + "://" for s in FETCHABLE_SCHEMES)
        raise ValueError(f"unsupported URI {text.show(uri)}: expected one of {fetchable}")


class PodModelDocument(ModelDocument):
    model: PodModelSpec


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


def decode(raw: bytes, *, content_type: str | None = None, max_bytes: int | None = None) -> Any:
    """JSON or YAML bytes -> Python data, with the one reader `overseer validate` uses
    (`overseer.safe_yaml`): duplicate keys are refused naming the key and its lines, aliases may not
    explode, and a body the sender calls JSON must be JSON."""
    try:
        text = decode_text(raw, "model document", max_bytes=len(raw) if max_bytes is None else max_bytes)
    except TextError as error:
        raise BadRequest(str(error)) from None
    media = (content_type or "").split(";")[0].strip().lower()
    try:
        return load_one(text, json_only=media == "application/json")
    except YamlSyntaxError as error:
        raise BadRequest(f"model document: {error.message}") from None


def parse(data: Any) -> ModelDocument:
    if not isinstance(data, dict):
        raise InvalidDocument(
            f"model document must be an object with 'model' and 'schema', found {type(data).__name__}"
        )
    try:
        return PodModelDocument.model_validate(data)
    except ValidationError as error:
        # The CLI's and the admission webhooks' words for the same mistakes (did-you-mean included).
        problems = [f"{path or 'document'}: {message}" for path, message in explain(PodModelDocument, error)]
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


def load_document(raw: bytes, *, content_type: str | None = None, max_bytes: int | None = None) -> Desired:
    return validate(parse(decode(raw, content_type=content_type, max_bytes=max_bytes)))
