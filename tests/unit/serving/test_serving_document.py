"""Parsing and validating the model document: what the start-up file and PUT body may be."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from overseer_serving.document import load_document
from overseer_serving.errors import BadRequest, InvalidConfig, InvalidDocument

DIGEST = "sha256:" + "a" * 64


def document(**custom_objects: Any) -> dict[str, Any]:
    return {
        "model": {
            "name": "cat_recognition",
            "version": "20240103",
            "uri": "file:///models/cat.pt",
            "digest": DIGEST,
            "labels": {"owner": "ml-team", "stage": "prod"},
            "metadata": {"f1": 0.81},
            "customObjects": custom_objects,
        },
        "schema": {
            "name": "object-detector",
            "version": 2,
            "labels": {"type": "object", "required": ["owner"], "properties": {"owner": {"type": "string"}}},
            "metadata": {"type": "object", "properties": {"f1": {"type": "number", "minimum": 0, "maximum": 1}}},
            "customObjects": {
                "type": "object",
                "properties": {
                    "resize_resolution": {"type": "integer", "default": 640},
                    "conf": {"type": "number", "minimum": 0, "maximum": 1},
                    "multi_label": {"type": "boolean", "default": False},
                },
                "required": ["conf"],
            },
        },
    }


def test_json_document_validates_and_applies_schema_defaults() -> None:
    desired = load_document(json.dumps(document(conf=0.4)).encode())
    assert desired.identity() == {"name": "cat_recognition", "version": "20240103", "digest": DIGEST}
    assert desired.config["customObjects"] == {"conf": 0.4, "resize_resolution": 640, "multi_label": False}
    assert desired.params.conf == 0.4
    assert desired.params.predict_kwargs(None)["imgsz"] == 640


def test_yaml_document_is_accepted() -> None:
    desired = load_document(yaml.safe_dump(document(conf=0.5, resize_resolution=320)).encode())
    assert desired.params.resize_resolution == 320


def test_truncated_json_is_a_bad_request() -> None:
    raw = json.dumps(document(conf=0.4)).encode()[:-20]
    with pytest.raises(BadRequest, match="not valid JSON"):
        load_document(raw, content_type="application/json")


def test_missing_schema_section_names_the_field() -> None:
    doc = document(conf=0.4)
    del doc["schema"]
    with pytest.raises(InvalidDocument, match="schema: required field missing"):
        load_document(json.dumps(doc).encode())


def test_schema_violation_names_the_path() -> None:
    with pytest.raises(InvalidConfig, match=r"customObjects\.conf") as caught:
        load_document(json.dumps(document(conf=3)).encode())
    assert "object-detector v2" in caught.value.message


def test_missing_required_parameter_is_refused() -> None:
    with pytest.raises(InvalidConfig, match="conf"):
        load_document(json.dumps(document()).encode())


def test_bad_digest_format_is_refused() -> None:
    doc = document(conf=0.4)
    doc["model"]["digest"] = "md5:abc"
    with pytest.raises(InvalidDocument, match=r"model\.digest"):
        load_document(json.dumps(doc).encode())


def test_a_parameter_this_server_does_not_implement_is_refused() -> None:
    # The schema allows it (no additionalProperties: false), but serving it would silently ignore it.
    with pytest.raises(InvalidConfig, match=r"customObjects\.confidence: this server does not implement"):
        load_document(json.dumps(document(conf=0.4, confidence=0.5)).encode())


def test_empty_and_non_object_documents() -> None:
    with pytest.raises(BadRequest, match="empty"):
        load_document(b"  \n")
    with pytest.raises(InvalidDocument, match="must be an object"):
        load_document(b"[1, 2]")


def test_same_as_compares_weights_and_effective_config() -> None:
    a = load_document(json.dumps(document(conf=0.4)).encode())
    b = load_document(json.dumps(document(conf=0.4, resize_resolution=640)).encode())  # = the default
    c = load_document(json.dumps(document(conf=0.5)).encode())
    assert a.same_as(b)
    assert not a.same_as(c)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # the same words as `overseer validate` and the admission webhooks (overseer.api.errors.explain)
        ({"uri": "ftp://host/w.pt"}, "model.uri: unsupported URI 'ftp://host/w.pt': expected one of file://"),
        ({"digest": "sha256:ABC"}, "model.digest: expected sha256:<64 lowercase hex digits>, found 'sha256:ABC'"),
        ({"customObject": {}}, "model.customObject: unknown field; did you mean 'customObjects'?"),
        ({"version": 20240103}, "model.version: expected string, found integer 20240103 (quote it in YAML)"),
    ],
)
def test_document_errors_speak_the_cli_words(change: dict[str, Any], message: str) -> None:
    doc = document(conf=0.4)
    doc["model"].update(change)
    with pytest.raises(InvalidDocument) as caught:
        load_document(json.dumps(doc).encode())
    assert caught.value.message.startswith(message), caught.value.message
    for pydantic_words in ("Value error,", "String should match pattern", "Extra inputs are not permitted"):
        assert pydantic_words not in caught.value.message


def test_a_misspelt_section_gets_a_suggestion() -> None:
    doc = document(conf=0.4)
    doc["schemas"] = doc.pop("schema")
    with pytest.raises(InvalidDocument, match=r"schemas: unknown field; did you mean 'schema'\?"):
        load_document(json.dumps(doc).encode())
