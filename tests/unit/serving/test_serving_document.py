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
    with pytest.raises(BadRequest, match=r"^model document: invalid JSON: line 1, column \d+: Unterminated string"):
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


# --- the one safe reader (overseer.safe_yaml), as `overseer validate` reads manifests -----------------

YAML_WITH_DUPLICATE = """\
model:
  name: cat_recognition
  version: "20240103"
  uri: file:///models/cat.pt
  digest: sha256:{hex}
  customObjects:
    conf: 0.25
    conf: 0.9
schema: {{name: object-detector, version: 2}}
""".format(hex="a" * 64)


def test_a_duplicate_key_in_yaml_is_refused_naming_the_key_and_both_lines() -> None:
    with pytest.raises(BadRequest) as caught:
        load_document(YAML_WITH_DUPLICATE.encode())
    assert caught.value.status == 400
    assert caught.value.message == (
        "model document: invalid YAML: line 8, column 5: duplicate key 'conf' (first at line 7)"
    )


def test_a_duplicate_key_in_json_is_refused_too() -> None:
    text = json.dumps(document(conf=0.25), indent=1).replace('"conf": 0.25', '"conf": 0.25,\n "conf": 0.9')
    with pytest.raises(BadRequest) as caught:
        load_document(text.encode(), content_type="application/json")
    assert caught.value.message.startswith("model document: invalid JSON: line ")
    assert "duplicate key 'conf' (first at line " in caught.value.message


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = "\n".join(lines) + "\nmodel: *a8\n"
    with pytest.raises(BadRequest, match="aliases expand to more than 1,000,000 values"):
        load_document(bomb.encode())


def test_exponent_numbers_are_numbers_in_yaml_as_in_json_and_kubectl() -> None:
    text = yaml.safe_dump(document(conf=0.5)).replace("conf: 0.5", "conf: 5e-1")
    assert load_document(text.encode()).params.conf == 0.5
    assert load_document(json.dumps(document(conf=1e-05)).encode()).params.conf == 1e-05


def test_json_declared_bodies_must_be_json_and_documents_must_be_one() -> None:
    with pytest.raises(BadRequest, match="model document: invalid JSON: line 1, column 1: Expecting value"):
        load_document(yaml.safe_dump(document(conf=0.5)).encode(), content_type="application/json; charset=utf-8")
    two = yaml.safe_dump(document(conf=0.5)) + "---\n" + yaml.safe_dump(document(conf=0.6))
    with pytest.raises(BadRequest, match=r"model document: expected one document, found 2"):
        load_document(two.encode())


def test_size_nul_bytes_and_encoding_are_checked_before_parsing() -> None:
    raw = json.dumps(document(conf=0.4)).encode()
    with pytest.raises(BadRequest, match="model document: larger than 100 bytes"):
        load_document(raw, max_bytes=100)
    with pytest.raises(BadRequest, match="binary content"):
        load_document(raw + b"\x00")
    with pytest.raises(BadRequest, match="not UTF-8 text"):
        load_document(b"\xff" + raw)


def test_the_pod_accepts_the_schemes_it_can_fetch_whatever_admission_accepts_yet() -> None:
    doc = document(conf=0.4)
    doc["model"]["uri"] = "s3://models/cat v2.pt"
    assert load_document(json.dumps(doc).encode()).document.model.uri == "s3://models/cat v2.pt"
    doc["model"]["uri"] = "gs://models/cat.pt"
    with pytest.raises(InvalidDocument) as caught:
        load_document(json.dumps(doc).encode())
    assert caught.value.message == (
        "model.uri: unsupported URI 'gs://models/cat.pt': expected one of file://, http://, https://, s3://"
    )
