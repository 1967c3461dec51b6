"""validate_model_config: what a user reads when a model's config does not match its schema."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import pytest
from overseer.api.model_document import SchemaSnapshot
from overseer.api.v1alpha1 import SchemaVersion
from overseer.schema import FieldProblem, check_compatibility, hints, validate_model_config
from overseer.schema.jsonschema_walk import types_of

LABELS = {"owner": "vision-team", "stage": "production"}
METADATA = {"f1": 0.87, "dataset_version": "2024.01"}


def messages(result: Any) -> list[str]:
    return [str(p) for p in result.problems]


def test_valid_config_passes_and_defaults_are_filled_in(detector_v1: dict[str, Any]) -> None:
    result = validate_model_config(detector_v1, LABELS, METADATA, {"conf": 0.25})
    assert result.ok
    assert result.problems == ()
    assert result.defaulted["customObjects"] == {
        "conf": 0.25,
        "resize_resolution": 640,
        "iou": 0.45,
        "multi_label": False,
    }
    assert result.patch == [
        {"op": "add", "path": "/customObjects/resize_resolution", "value": 640},
        {"op": "add", "path": "/customObjects/iou", "value": 0.45},
        {"op": "add", "path": "/customObjects/multi_label", "value": False},
    ]


def test_given_values_win_over_defaults(detector_v1: dict[str, Any]) -> None:
    result = validate_model_config(detector_v1, LABELS, METADATA, {"conf": 0.25, "resize_resolution": 224})
    assert result.defaulted["customObjects"]["resize_resolution"] == 224
    assert {"op": "add", "path": "/customObjects/resize_resolution", "value": 640} not in result.patch


def test_empty_section_gets_one_whole_section_patch() -> None:
    schema = {"labels": {"type": "object", "properties": {"stage": {"type": "string", "default": "dev"}}}}
    result = validate_model_config(schema, {}, {}, {})
    assert result.patch == [{"op": "add", "path": "/labels", "value": {"stage": "dev"}}]


def test_nested_defaults_and_pointer_escaping() -> None:
    schema = {
        "customObjects": {
            "type": "object",
            "properties": {
                "nms": {"type": "object", "properties": {"iou/threshold": {"type": "number", "default": 0.5}}},
            },
        }
    }
    result = validate_model_config(schema, {}, {}, {"nms": {}})
    assert result.defaulted["customObjects"] == {"nms": {"iou/threshold": 0.5}}
    assert result.patch == [{"op": "add", "path": "/customObjects/nms/iou~1threshold", "value": 0.5}]


def test_a_defaulted_object_gets_its_nested_defaults() -> None:
    schema = {
        "customObjects": {
            "type": "object",
            "properties": {
                "c": {"type": "object", "default": {}, "properties": {"d": {"type": "integer", "default": 3}}},
                "e": {"type": "object", "default": {"f": 1}, "properties": {"f": {}, "g": {"default": "x"}}},
            },
        }
    }
    omitted = validate_model_config(schema, {}, {}, {"keep": True})
    written = validate_model_config(schema, {}, {}, {"keep": True, "c": {}, "e": {"f": 1}})
    assert (
        omitted.defaulted["customObjects"]
        == written.defaulted["customObjects"]
        == {
            "keep": True,
            "c": {"d": 3},
            "e": {"f": 1, "g": "x"},
        }
    )
    assert omitted.patch == [
        {"op": "add", "path": "/customObjects/c", "value": {"d": 3}},
        {"op": "add", "path": "/customObjects/e", "value": {"f": 1, "g": "x"}},
    ]
    assert schema["customObjects"]["properties"]["c"]["default"] == {}  # the schema's default is not mutated


def test_inputs_are_not_mutated(detector_v1: dict[str, Any]) -> None:
    custom = {"conf": 0.25}
    validate_model_config(detector_v1, LABELS, METADATA, custom)
    assert custom == {"conf": 0.25}


def test_missing_required_names_field_and_expected_type(detector_v1: dict[str, Any]) -> None:
    result = validate_model_config(detector_v1, {"owner": "x"}, METADATA, {"conf": 0.5})
    assert messages(result) == [
        "labels.stage: required property missing (expected one of 'dev', 'staging', 'production')"
    ]


def test_unknown_field_next_to_missing_required_gets_a_rename_hint(detector_v1: dict[str, Any]) -> None:
    result = validate_model_config(detector_v1, LABELS, METADATA, {"confidence": 0.25})
    assert messages(result) == [
        "customObjects.conf: required property missing (expected number between 0 and 1); 'confidence' is set instead",
        "customObjects.confidence: not allowed; did you mean 'conf' (required)?",
    ]


def test_unknown_field_close_to_an_optional_one(detector_v1: dict[str, Any]) -> None:
    result = validate_model_config(detector_v1, LABELS, METADATA, {"conf": 0.3, "iuo": 0.5})
    assert messages(result) == ["customObjects.iuo: not allowed; did you mean 'iou'?"]


def test_unknown_field_without_lookalike_lists_what_is_allowed(detector_v1: dict[str, Any]) -> None:
    result = validate_model_config(detector_v1, LABELS, METADATA, {"conf": 0.3, "batch": 8})
    assert messages(result) == ["customObjects.batch: not allowed (allowed: conf, iou, multi_label, resize_resolution)"]


@pytest.mark.parametrize(
    ("custom", "expected"),
    [
        ({"conf": "high"}, "customObjects.conf: expected number, found string 'high'"),
        ({"conf": 1.5}, "customObjects.conf: expected a value <= 1, found 1.5"),
        ({"conf": -0.1}, "customObjects.conf: expected a value >= 0, found -0.1"),
        (
            {"conf": 0.3, "resize_resolution": 650},
            "customObjects.resize_resolution: expected a multiple of 32, found 650",
        ),
        (
            {"conf": 0.3, "resize_resolution": 2048},
            "customObjects.resize_resolution: expected a value <= 1280, found 2048",
        ),
        ({"conf": 0.3, "multi_label": "yes"}, "customObjects.multi_label: expected boolean, found string 'yes'"),
        (
            {"conf": 0.3, "resize_resolution": 64.5},
            "customObjects.resize_resolution: expected integer, found number 64.5",
        ),
    ],
)
def test_wrong_values_say_what_was_expected_and_found(
    detector_v1: dict[str, Any], custom: dict[str, Any], expected: str
) -> None:
    assert messages(validate_model_config(detector_v1, LABELS, METADATA, custom)) == [expected]


def test_wrong_type_is_reported_once_not_also_as_enum(detector_v1: dict[str, Any]) -> None:
    result = validate_model_config(detector_v1, {"owner": "x", "stage": 3}, METADATA, {"conf": 0.3})
    assert messages(result) == ["labels.stage: expected string, found integer 3"]


def test_list_indices_and_odd_keys_in_paths() -> None:
    schema = {
        "customObjects": {
            "type": "object",
            "properties": {"classes": {"type": "array", "items": {"type": "string", "minLength": 2}}},
        },
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    }
    result = validate_model_config(schema, {"app.kubernetes.io/name": 5}, {}, {"classes": ["cat", "d"]})
    assert messages(result) == [
        'labels["app.kubernetes.io/name"]: expected string, found integer 5',
        "customObjects.classes[1]: expected at least 2 characters, found 1 character ('d')",
    ]


def test_every_problem_of_every_section_at_once(detector_v1: dict[str, Any]) -> None:
    result = validate_model_config(detector_v1, {}, {"f1": 2}, {"conf": "x", "extra": 1})
    assert [p.path for p in result.problems] == [
        "labels.owner",
        "labels.stage",
        "metadata.f1",
        "customObjects.conf",
        "customObjects.extra",
    ]


@pytest.mark.parametrize(
    ("section", "value", "expected"),
    [
        ("labels", ["owner"], "labels: expected an object, found an array of 1 item"),
        ("metadata", "f1=0.8", "metadata: expected an object, found string 'f1=0.8'"),
        ("customObjects", None, "customObjects: expected an object, found null"),
    ],
)
def test_non_object_sections(detector_v1: dict[str, Any], section: str, value: Any, expected: str) -> None:
    values: dict[str, Any] = {"labels": LABELS, "metadata": METADATA, "customObjects": {"conf": 0.2}, section: value}
    result = validate_model_config(detector_v1, values["labels"], values["metadata"], values["customObjects"])
    assert messages(result) == [expected]


@pytest.mark.parametrize(
    ("section_schema", "expected"),
    [
        (
            {"type": "object", "properties": {"conf": {"type": "numbr"}}},
            "schema.customObjects: not a valid JSON Schema: at properties.conf.type: 'numbr' is not a JSON type "
            "(expected one of array, boolean, integer, null, number, object, string)",
        ),
        (
            {"type": "object", "properties": {"owner": {"type": "string", "pattern": "([a-z"}}},
            "schema.customObjects: not a valid JSON Schema: at properties.owner.pattern: '([a-z' is not a valid "
            "regular expression: missing ]: [a-z",
        ),
        ({"type": "string"}, "schema.customObjects: must describe an object (type: object), found type 'string'"),
        ("object", "schema.customObjects: not a valid JSON Schema: expected an object, found string 'object'"),
        (
            {"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}},
            "schema.customObjects: not a valid JSON Schema: at properties.a: $ref 'https://example.com/s.json' "
            "is not in this section: only references inside the section are resolved (#/$defs/..., #anchor, "
            "or a $id declared in it); nothing is ever fetched or opened",
        ),
        (
            {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
            "schema.customObjects: not a valid JSON Schema: at properties.a: $ref '#/$defs/missing' points to nothing",
        ),
        (
            {"type": "object", "properties": {"iou": {"type": "number", "maximum": 1, "default": 2}}},
            "schema.customObjects: default of iou is invalid: expected a value <= 1, found 2",
        ),
    ],
)
def test_invalid_schema_section_is_a_problem_not_an_exception(section_schema: Any, expected: str) -> None:
    result = validate_model_config({"customObjects": section_schema}, {}, {}, {"conf": 0.3})
    assert messages(result) == [expected]


def test_schema_snapshot_and_local_refs_work() -> None:
    snapshot = SchemaSnapshot(
        name="object-detector",
        version=1,
        customObjects={
            "$defs": {"ratio": {"type": "number", "minimum": 0, "maximum": 1}},
            "type": "object",
            "required": ["conf"],
            "properties": {"conf": {"$ref": "#/$defs/ratio"}, "iou": {"$ref": "#/$defs/ratio", "default": 0.45}},
        },
    )
    result = validate_model_config(snapshot, {}, {}, {"conf": 3})
    assert messages(result) == ["customObjects.conf: expected a value <= 1, found 3"]
    assert result.defaulted["customObjects"]["iou"] == 0.45
    missing = validate_model_config(snapshot, {}, {}, {})
    assert messages(missing) == ["customObjects.conf: required property missing (expected number between 0 and 1)"]


def test_format_is_checked() -> None:
    schema = {"metadata": {"type": "object", "properties": {"trained_on": {"type": "string", "format": "date"}}}}
    result = validate_model_config(schema, {}, {"trained_on": "last tuesday"}, {})
    assert messages(result) == ["metadata.trained_on: expected a valid date, found 'last tuesday'"]


def test_field_problem_renders_path_and_message() -> None:
    assert str(FieldProblem("customObjects.conf", "required property missing")) == (
        "customObjects.conf: required property missing"
    )


def test_an_empty_schema_accepts_anything() -> None:
    result = validate_model_config({}, {"a": 1}, {"b": [1]}, {"c": {"d": None}})
    assert result.ok
    assert result.patch == []


@pytest.mark.parametrize("form", ["wire mapping", "python mapping", "SchemaSnapshot", "SchemaVersion"])
def test_every_form_of_a_schema_version_reads_the_same_sections(detector_v1: dict[str, Any], form: str) -> None:
    wire = {"version": 1, **detector_v1}
    version: Any = {
        "wire mapping": wire,
        "python mapping": {
            **{k: v for k, v in wire.items() if k != "customObjects"},
            "custom_objects": wire["customObjects"],
        },
        "SchemaSnapshot": SchemaSnapshot.model_validate({"name": "s", **wire}),
        "SchemaVersion": SchemaVersion.model_validate(wire),
    }[form]
    result = validate_model_config(version, LABELS, METADATA, {"conf": 1.5})
    assert messages(result) == ["customObjects.conf: expected a value <= 1, found 1.5"]
    assert check_compatibility(wire, version, "FULL").compatible


def test_one_json_type_naming_for_messages_and_compatibility() -> None:
    assert hints.found(0.5) == "number 0.5"
    assert hints.found((1, 2)) == "an array of 2 items"
    assert types_of({"enum": [(1, 2), "a"]}) == {"array", "string"}
    assert types_of({"const": 2.0}) == {"integer"}  # JSON Schema: 2.0 is an integer


def test_the_validator_cache_is_safe_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Admission webhooks and serving threads share the cache; a hit evicted by another thread
    between the lookup and the LRU bump must not raise."""
    from overseer.schema import validation

    class SlowCache(OrderedDict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
            found = super().get(key, default)
            time.sleep(0.0005)  # widen the window another thread could evict `key` in
            return found

    monkeypatch.setattr(validation, "_cache", SlowCache())
    monkeypatch.setattr(validation, "_CACHE_SIZE", 2)
    schemas = [{"type": "object", "properties": {f"p{n}": {"type": "integer"}}} for n in range(4)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for round_ in range(25):
                schema = schemas[(offset + round_) % len(schemas)]
                assert validation.compile_section(schema).resolved is not None
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(validation._cache) <= 2


NULLABLE_NMS = {
    "customObjects": {
        "type": "object",
        "properties": {"nms": {"anyOf": [{"$ref": "#/$defs/nms"}, {"type": "null"}]}},
        "$defs": {
            "nms": {
                "type": "object",
                "properties": {"iou": {"type": "number", "maximum": 1}},
                "additionalProperties": False,
            }
        },
    }
}
HEADS = {
    "customObjects": {
        "type": "object",
        "properties": {
            "head": {
                "oneOf": [
                    {"type": "object", "properties": {"kind": {"const": "yolo"}, "anchors": {"type": "integer"}}},
                    {"type": "object", "properties": {"kind": {"const": "detr"}, "queries": {"type": "integer"}}},
                ]
            }
        },
    }
}


@pytest.mark.parametrize(
    ("schema", "custom", "expected"),
    [
        # An optional nested model (pydantic writes anyOf [$ref, null]): the field inside is named.
        (NULLABLE_NMS, {"nms": {"iou": "high"}}, "customObjects.nms.iou: expected number, found string 'high'"),
        (NULLABLE_NMS, {"nms": {"iuo": 0.5}}, "customObjects.nms.iuo: not allowed; did you mean 'iou'?"),
        (NULLABLE_NMS, {"nms": 3}, "customObjects.nms: expected object or null, found integer 3"),
        # Alternatives told apart by a constant: the matching one speaks, or all the constants do.
        (
            HEADS,
            {"head": {"kind": "detr", "queries": "many"}},
            "customObjects.head.queries: expected integer, found string 'many'",
        ),
        (
            HEADS,
            {"head": {"kind": "rtdetr"}},
            "customObjects.head.kind: expected one of 'yolo', 'detr', found 'rtdetr'",
        ),
    ],
)
def test_a_wrong_field_inside_an_alternative_is_named(
    schema: dict[str, Any], custom: dict[str, Any], expected: str
) -> None:
    assert messages(validate_model_config(schema, {}, {}, custom)) == [expected]
