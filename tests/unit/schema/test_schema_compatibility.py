"""Compatibility verdicts and codes between schema versions, mode by mode (Confluent's rules)."""

from __future__ import annotations

from typing import Any

import pytest
from overseer.schema import check_compatibility, check_history
from overseer.schema.compatibility import check_registered_versions


def closed(props: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": props, "required": list(required), **extra}


def open_(props: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required), **extra}


def co(section: dict[str, Any]) -> dict[str, Any]:
    """A version whose customObjects section is `section` (labels/metadata unconstrained)."""
    return {"labels": {}, "metadata": {}, "customObjects": section}


NUM = {"type": "number"}
INT = {"type": "integer"}
STR = {"type": "string"}
CONF = {"type": "number", "minimum": 0, "maximum": 1}

# (id, mode, old version, new version, expected codes; empty = compatible)
PAIRS: list[tuple[str, str, dict[str, Any], dict[str, Any], list[str]]] = [
    # Annotations never break.
    (
        "description-backward",
        "BACKWARD",
        co(closed({"conf": CONF})),
        co(closed({"conf": {**CONF, "description": "x"}})),
        [],
    ),
    ("description-forward", "FORWARD", co(closed({"conf": CONF})), co(closed({"conf": {**CONF, "title": "Conf"}})), []),
    (
        "description-full",
        "FULL",
        co(closed({"conf": CONF}, description="a")),
        co(closed({"conf": CONF}, description="b")),
        [],
    ),
    # Types.
    ("integer-to-number-backward", "BACKWARD", co(closed({"n": INT})), co(closed({"n": NUM})), []),
    ("integer-to-number-forward", "FORWARD", co(closed({"n": INT})), co(closed({"n": NUM})), ["TYPE_WIDENED"]),
    ("integer-to-number-full", "FULL", co(closed({"n": INT})), co(closed({"n": NUM})), ["TYPE_WIDENED"]),
    ("number-to-integer-backward", "BACKWARD", co(closed({"n": NUM})), co(closed({"n": INT})), ["TYPE_NARROWED"]),
    ("number-to-integer-forward", "FORWARD", co(closed({"n": NUM})), co(closed({"n": INT})), []),
    ("string-to-number-backward", "BACKWARD", co(closed({"s": STR})), co(closed({"s": NUM})), ["TYPE_CHANGED"]),
    ("string-to-number-forward", "FORWARD", co(closed({"s": STR})), co(closed({"s": NUM})), ["TYPE_CHANGED"]),
    (
        "null-dropped",
        "BACKWARD",
        co(closed({"s": {"type": ["string", "null"]}})),
        co(closed({"s": STR})),
        ["TYPE_NARROWED"],
    ),
    ("null-added-backward", "BACKWARD", co(closed({"s": STR})), co(closed({"s": {"type": ["string", "null"]}})), []),
    # Properties and content models.
    (
        "removed-from-closed-backward",
        "BACKWARD",
        co(closed({"a": STR, "b": NUM})),
        co(closed({"a": STR})),
        ["PROPERTY_REMOVED"],
    ),
    ("removed-from-closed-forward", "FORWARD", co(closed({"a": STR, "b": NUM})), co(closed({"a": STR})), []),
    ("removed-from-open-backward", "BACKWARD", co(open_({"a": STR, "b": NUM})), co(open_({"a": STR})), []),
    (
        "removed-from-open-forward",
        "FORWARD",
        co(open_({"a": STR, "b": NUM})),
        co(open_({"a": STR})),
        ["PROPERTY_REMOVED_FROM_OPEN_MODEL"],
    ),
    (
        "added-to-open-backward",
        "BACKWARD",
        co(open_({"a": STR})),
        co(open_({"a": STR, "b": NUM})),
        ["PROPERTY_ADDED_TO_OPEN_MODEL"],
    ),
    ("added-to-open-forward", "FORWARD", co(open_({"a": STR})), co(open_({"a": STR, "b": NUM})), []),
    (
        "added-empty-schema-to-open",
        "BACKWARD",
        co(open_({"a": STR})),
        co(open_({"a": STR, "b": {"description": "x"}})),
        [],
    ),
    (
        "optional-with-default-to-closed-backward",
        "BACKWARD",
        co(closed({"a": STR})),
        co(closed({"a": STR, "max_det": {**INT, "default": 300}})),
        [],
    ),
    (
        "optional-with-default-to-closed-forward",
        "FORWARD",
        co(closed({"a": STR})),
        co(closed({"a": STR, "max_det": {**INT, "default": 300}})),
        ["PROPERTY_ADDED_TO_CLOSED_MODEL"],
    ),
    (
        "optional-with-default-to-closed-full",
        "FULL",
        co(closed({"a": STR})),
        co(closed({"a": STR, "max_det": {**INT, "default": 300}})),
        ["PROPERTY_ADDED_TO_CLOSED_MODEL"],
    ),
    (
        "required-added-no-default",
        "BACKWARD",
        co(closed({"a": STR})),
        co(closed({"a": STR, "nms": NUM}, ("nms",))),
        ["REQUIRED_PROPERTY_ADDED"],
    ),
    (
        "required-added-with-default",
        "BACKWARD",
        co(closed({"a": STR})),
        co(closed({"a": STR, "nms": {**NUM, "default": 0.5}}, ("nms",))),
        [],
    ),
    (
        "required-added-to-open",
        "BACKWARD",
        co(open_({"a": STR})),
        co(open_({"a": STR, "nms": NUM}, ("nms",))),
        ["PROPERTY_ADDED_TO_OPEN_MODEL", "REQUIRED_PROPERTY_ADDED"],
    ),
    (
        "made-required-backward",
        "BACKWARD",
        co(closed({"a": STR})),
        co(closed({"a": STR}, ("a",))),
        ["PROPERTY_MADE_REQUIRED"],
    ),
    ("made-required-forward", "FORWARD", co(closed({"a": STR})), co(closed({"a": STR}, ("a",))), []),
    (
        "made-required-with-default",
        "BACKWARD",
        co(closed({"a": STR})),
        co(closed({"a": {**STR, "default": "x"}}, ("a",))),
        [],
    ),
    ("made-optional-backward", "BACKWARD", co(closed({"a": STR}, ("a",))), co(closed({"a": STR})), []),
    (
        "made-optional-forward",
        "FORWARD",
        co(closed({"a": STR}, ("a",))),
        co(closed({"a": STR})),
        ["PROPERTY_MADE_OPTIONAL"],
    ),
    (
        "required-dropped-forward",
        "FORWARD",
        co(closed({"a": STR, "b": STR}, ("a", "b"))),
        co(closed({"a": STR}, ("a",))),
        ["REQUIRED_PROPERTY_REMOVED"],
    ),
    # Enums and consts.
    (
        "enum-narrowed-backward",
        "BACKWARD",
        co(closed({"r": {"enum": [224, 320, 640]}})),
        co(closed({"r": {"enum": [224, 640]}})),
        ["ENUM_NARROWED"],
    ),
    (
        "enum-narrowed-forward",
        "FORWARD",
        co(closed({"r": {"enum": [224, 320, 640]}})),
        co(closed({"r": {"enum": [224, 640]}})),
        [],
    ),
    (
        "enum-extended-backward",
        "BACKWARD",
        co(closed({"r": {"enum": [224]}})),
        co(closed({"r": {"enum": [224, 640]}})),
        [],
    ),
    (
        "enum-extended-forward",
        "FORWARD",
        co(closed({"r": {"enum": [224]}})),
        co(closed({"r": {"enum": [224, 640]}})),
        ["ENUM_EXTENDED"],
    ),
    (
        "enum-added-to-free-string",
        "BACKWARD",
        co(closed({"s": STR})),
        co(closed({"s": {**STR, "enum": ["a"]}})),
        ["ENUM_NARROWED"],
    ),
    (
        "const-changed-full",
        "FULL",
        co(closed({"v": {"const": 1}})),
        co(closed({"v": {"const": 2}})),
        ["ENUM_NARROWED", "ENUM_EXTENDED"],
    ),
    # Numeric bounds.
    (
        "minimum-increased",
        "BACKWARD",
        co(closed({"c": CONF})),
        co(closed({"c": {**CONF, "minimum": 0.1}})),
        ["MINIMUM_INCREASED"],
    ),
    (
        "minimum-decreased-backward",
        "BACKWARD",
        co(closed({"c": {**CONF, "minimum": 0.1}})),
        co(closed({"c": CONF})),
        [],
    ),
    (
        "minimum-decreased-forward",
        "FORWARD",
        co(closed({"c": {**CONF, "minimum": 0.1}})),
        co(closed({"c": CONF})),
        ["MINIMUM_DECREASED"],
    ),
    (
        "maximum-decreased",
        "BACKWARD",
        co(closed({"c": CONF})),
        co(closed({"c": {**CONF, "maximum": 0.9}})),
        ["MAXIMUM_DECREASED"],
    ),
    (
        "maximum-added",
        "BACKWARD",
        co(closed({"c": NUM})),
        co(closed({"c": {**NUM, "maximum": 1}})),
        ["MAXIMUM_DECREASED"],
    ),
    (
        "maximum-removed-forward",
        "FORWARD",
        co(closed({"c": {**NUM, "maximum": 1}})),
        co(closed({"c": NUM})),
        ["MAXIMUM_INCREASED"],
    ),
    (
        "minimum-made-exclusive",
        "BACKWARD",
        co(closed({"c": {**NUM, "minimum": 0}})),
        co(closed({"c": {**NUM, "exclusiveMinimum": 0}})),
        ["MINIMUM_INCREASED"],
    ),
    (
        "multiple-of-coarser",
        "BACKWARD",
        co(closed({"r": {**INT, "multipleOf": 32}})),
        co(closed({"r": {**INT, "multipleOf": 64}})),
        ["MULTIPLE_OF_CHANGED"],
    ),
    (
        "multiple-of-finer-backward",
        "BACKWARD",
        co(closed({"r": {**INT, "multipleOf": 64}})),
        co(closed({"r": {**INT, "multipleOf": 32}})),
        [],
    ),
    (
        "resolution-range-relaxed",
        "FULL",
        co(closed({"r": {**INT, "maximum": 640}})),
        co(closed({"r": {**INT, "maximum": 1280}})),
        ["MAXIMUM_INCREASED"],
    ),
    # Strings.
    (
        "min-length-increased",
        "BACKWARD",
        co(closed({"s": STR})),
        co(closed({"s": {**STR, "minLength": 3}})),
        ["MIN_LENGTH_INCREASED"],
    ),
    (
        "max-length-decreased",
        "BACKWARD",
        co(closed({"s": {**STR, "maxLength": 9}})),
        co(closed({"s": {**STR, "maxLength": 5}})),
        ["MAX_LENGTH_DECREASED"],
    ),
    (
        "max-length-increased-forward",
        "FORWARD",
        co(closed({"s": {**STR, "maxLength": 5}})),
        co(closed({"s": {**STR, "maxLength": 9}})),
        ["MAX_LENGTH_INCREASED"],
    ),
    (
        "pattern-added-backward",
        "BACKWARD",
        co(closed({"s": STR})),
        co(closed({"s": {**STR, "pattern": "^[a-z]+$"}})),
        ["PATTERN_ADDED"],
    ),
    ("pattern-added-forward", "FORWARD", co(closed({"s": STR})), co(closed({"s": {**STR, "pattern": "^[a-z]+$"}})), []),
    (
        "pattern-changed",
        "FORWARD",
        co(closed({"s": {**STR, "pattern": "^a"}})),
        co(closed({"s": {**STR, "pattern": "^b"}})),
        ["PATTERN_CHANGED"],
    ),
    (
        "pattern-removed-forward",
        "FORWARD",
        co(closed({"s": {**STR, "pattern": "^a"}})),
        co(closed({"s": STR})),
        ["PATTERN_REMOVED"],
    ),
    (
        "format-added",
        "BACKWARD",
        co(closed({"s": STR})),
        co(closed({"s": {**STR, "format": "date"}})),
        ["FORMAT_ADDED"],
    ),
    # Arrays.
    (
        "min-items-increased",
        "BACKWARD",
        co(closed({"l": {"type": "array"}})),
        co(closed({"l": {"type": "array", "minItems": 1}})),
        ["MIN_ITEMS_INCREASED"],
    ),
    (
        "max-items-decreased",
        "BACKWARD",
        co(closed({"l": {"type": "array", "maxItems": 9}})),
        co(closed({"l": {"type": "array", "maxItems": 3}})),
        ["MAX_ITEMS_DECREASED"],
    ),
    (
        "unique-items-added",
        "BACKWARD",
        co(closed({"l": {"type": "array"}})),
        co(closed({"l": {"type": "array", "uniqueItems": True}})),
        ["UNIQUE_ITEMS_ADDED"],
    ),
    (
        "items-narrowed",
        "BACKWARD",
        co(closed({"l": {"type": "array", "items": NUM}})),
        co(closed({"l": {"type": "array", "items": INT}})),
        ["TYPE_NARROWED"],
    ),
    (
        "items-widened-backward",
        "BACKWARD",
        co(closed({"l": {"type": "array", "items": INT}})),
        co(closed({"l": {"type": "array", "items": NUM}})),
        [],
    ),
    # additionalProperties.
    (
        "model-closed-backward",
        "BACKWARD",
        co(open_({"a": STR})),
        co(closed({"a": STR})),
        ["ADDITIONAL_PROPERTIES_NARROWED"],
    ),
    ("model-closed-forward", "FORWARD", co(open_({"a": STR})), co(closed({"a": STR})), []),
    (
        "model-opened-forward",
        "FORWARD",
        co(closed({"a": STR})),
        co(open_({"a": STR})),
        ["ADDITIONAL_PROPERTIES_EXTENDED"],
    ),
    (
        "additional-schema-narrowed",
        "BACKWARD",
        co(open_({})),
        co(open_({}, additionalProperties=STR)),
        ["TYPE_NARROWED"],
    ),
    # Unions.
    (
        "anyof-branch-removed-backward",
        "BACKWARD",
        co(closed({"v": {"anyOf": [STR, INT, {"type": "boolean"}]}})),
        co(closed({"v": {"anyOf": [STR, INT]}})),
        ["BRANCH_REMOVED"],
    ),
    (
        "anyof-branch-removed-forward",
        "FORWARD",
        co(closed({"v": {"anyOf": [STR, INT, {"type": "boolean"}]}})),
        co(closed({"v": {"anyOf": [STR, INT]}})),
        [],
    ),
    (
        "oneof-branch-added-forward",
        "FORWARD",
        co(closed({"v": {"oneOf": [STR, INT]}})),
        co(closed({"v": {"oneOf": [STR, INT, {"type": "boolean"}]}})),
        ["BRANCH_ADDED"],
    ),
    ("union-collapsed", "BACKWARD", co(closed({"v": {"anyOf": [STR, INT]}})), co(closed({"v": STR})), ["TYPE_CHANGED"]),
    # Nesting, references, combinators.
    (
        "nested-property-narrowed",
        "BACKWARD",
        co(closed({"nms": closed({"iou": NUM})})),
        co(closed({"nms": closed({"iou": INT})})),
        ["TYPE_NARROWED"],
    ),
    (
        "ref-target-changed",
        "BACKWARD",
        co({**closed({"c": {"$ref": "#/$defs/ratio"}}), "$defs": {"ratio": CONF}}),
        co({**closed({"c": {"$ref": "#/$defs/ratio"}}), "$defs": {"ratio": {**CONF, "maximum": 0.5}}}),
        ["MAXIMUM_DECREASED"],
    ),
    (
        "allof-extension-made-required",
        "BACKWARD",
        co({"allOf": [closed({"a": STR})]}),
        co({"allOf": [closed({"a": STR}), {"required": ["a"]}]}),
        ["PROPERTY_MADE_REQUIRED"],
    ),
    (
        "not-excludes-another-value",
        "BACKWARD",
        co(closed({"s": {**STR, "not": {"const": "a"}}})),
        co(closed({"s": {**STR, "not": {"const": "b"}}})),
        ["NEGATION_NARROWED"],
    ),
    (
        "not-excludes-less",
        "BACKWARD",
        co(closed({"s": {**STR, "not": {"enum": ["a", "b"]}}})),
        co(closed({"s": {**STR, "not": {"const": "b"}}})),
        [],
    ),
    (
        "not-excluding-less-breaks-forward",
        "FORWARD",
        co(closed({"s": {**STR, "not": {"enum": ["a", "b"]}}})),
        co(closed({"s": {**STR, "not": {"const": "b"}}})),
        ["NEGATION_EXTENDED"],
    ),
    (
        "not-of-another-type-is-harmless",
        "BACKWARD",
        co(closed({"s": STR})),
        co(closed({"s": {**STR, "not": {"type": "integer"}}})),
        [],
    ),
    (
        "false-property-removed-from-closed",
        "BACKWARD",
        co(closed({"a": STR, "legacy": False})),
        co(closed({"a": STR})),
        [],
    ),
    # Other sections are section-qualified.
    (
        "label-required",
        "BACKWARD",
        {"labels": open_({"owner": STR})},
        {"labels": open_({"owner": STR}, ("owner",))},
        ["PROPERTY_MADE_REQUIRED"],
    ),
    (
        "metadata-min-properties",
        "BACKWARD",
        {"metadata": open_({})},
        {"metadata": open_({}, minProperties=1)},
        ["MIN_PROPERTIES_INCREASED"],
    ),
    # NONE accepts anything.
    ("none-type-changed", "NONE", co(closed({"s": STR})), co(closed({"s": NUM})), []),
    ("none-property-removed", "NONE", co(closed({"a": STR, "b": STR}, ("b",))), co(closed({"a": STR})), []),
]


@pytest.mark.parametrize(("mode", "old", "new", "codes"), [p[1:] for p in PAIRS], ids=[p[0] for p in PAIRS])
def test_verdict_and_codes(mode: str, old: dict[str, Any], new: dict[str, Any], codes: list[str]) -> None:
    report = check_compatibility(old, new, mode)
    assert sorted(c.code for c in report.changes) == sorted(codes), [str(c) for c in report.changes]
    assert report.compatible is (not codes)


def test_there_are_at_least_forty_pairs_and_every_mode_family_is_covered() -> None:
    assert len(PAIRS) >= 40
    assert {p[1] for p in PAIRS} >= {"BACKWARD", "FORWARD", "FULL", "NONE"}


def test_paths_are_section_qualified() -> None:
    report = check_compatibility(
        co(closed({"nms": closed({"iou": NUM})})), co(closed({"nms": closed({"iou": INT})})), "BACKWARD"
    )
    assert [c.path for c in report.changes] == ["customObjects.nms.iou"]
    labels = check_compatibility({"labels": open_({})}, {"labels": open_({}, additionalProperties=STR)}, "BACKWARD")
    assert [c.path for c in labels.changes] == ["labels.*"]
    items = check_compatibility(
        co(closed({"classes": {"type": "array", "items": {"enum": ["cat", "dog"]}}})),
        co(closed({"classes": {"type": "array", "items": {"enum": ["cat"]}}})),
        "BACKWARD",
    )
    assert [(c.code, c.path) for c in items.changes] == [("ENUM_NARROWED", "customObjects.classes[]")]


def test_messages_say_what_changed() -> None:
    report = check_compatibility(co(closed({"c": CONF})), co(closed({"c": {**CONF, "minimum": 0.1}})), "BACKWARD")
    assert report.changes[0].message == "minimum raised from 0 to 0.1"
    enum = check_compatibility(co(closed({"r": {"enum": [224, 640]}})), co(closed({"r": {"enum": [640]}})), "BACKWARD")
    assert enum.changes[0].message == "allowed values narrowed: 224 no longer accepted"


def test_rename_is_reported_once_with_both_names() -> None:
    old = co(closed({"conf": CONF, "iou": CONF}, ("conf",)))
    new = co(closed({"confidence": CONF, "iou": CONF}, ("confidence",)))
    report = check_compatibility(old, new, "BACKWARD")
    assert [(c.code, c.path) for c in report.changes] == [("PROPERTY_RENAMED", "customObjects.conf")]
    message = report.changes[0].message
    assert "'conf' looks renamed to 'confidence'" in message
    assert "PROPERTY_REMOVED" in message and "REQUIRED_PROPERTY_ADDED" in message
    assert check_compatibility(old, new, "NONE").compatible


def test_full_reports_each_broken_direction() -> None:
    old = co(closed({"conf": CONF}, ("conf",)))
    new = co(closed({"confidence": CONF}, ("confidence",)))
    report = check_compatibility(old, new, "FULL")
    assert [(c.code, c.direction) for c in report.changes] == [
        ("PROPERTY_RENAMED", "BACKWARD"),
        ("PROPERTY_RENAMED", "FORWARD"),
    ]


def test_unrelated_removal_and_addition_are_not_a_rename() -> None:
    report = check_compatibility(co(closed({"conf": CONF})), co(closed({"max_det": {**INT, "default": 1}})), "BACKWARD")
    assert [c.code for c in report.changes] == ["PROPERTY_REMOVED"]


def test_changed_default_is_a_notice_not_a_break() -> None:
    old = co(closed({"iou": {**CONF, "default": 0.45}}))
    new = co(closed({"iou": {**CONF, "default": 0.5}}))
    report = check_compatibility(old, new, "FULL")
    assert report.compatible
    assert [(n.code, n.path) for n in report.notices] == [("DEFAULT_CHANGED", "customObjects.iou")]
    assert "0.45 to 0.5" in report.notices[0].message


def test_invalid_new_section_is_a_breaking_change_not_an_exception() -> None:
    report = check_compatibility(
        co(closed({"a": STR})), co({"type": "object", "properties": {"a": {"type": "strin"}}}), "NONE"
    )
    assert [(c.code, c.path) for c in report.changes] == [("SCHEMA_INVALID", "customObjects")]


def test_unknown_mode_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown compatibility mode 'SIDEWAYS'"):
        check_compatibility({}, {}, "SIDEWAYS")


def test_garbage_schemas_do_not_crash_the_walk() -> None:
    old = co(closed({"a": {"properties": "nonsense", "items": 3, "anyOf": "x"}}))
    new = co(closed({"a": {"properties": ["x"], "enum": "y"}}))
    report = check_compatibility(old, new, "FULL")  # the new one is invalid: reported, not raised
    assert [c.code for c in report.changes] == ["SCHEMA_INVALID"]


def test_recursive_references_terminate() -> None:
    tree = {
        "$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}, "w": NUM}}},
        **closed({"root": {"$ref": "#/$defs/node"}}),
    }
    narrowed = {
        "$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}, "w": INT}}},
        **closed({"root": {"$ref": "#/$defs/node"}}),
    }
    report = check_compatibility(co(tree), co(narrowed), "BACKWARD")
    assert ("TYPE_NARROWED", "customObjects.root.w") in [(c.code, c.path) for c in report.changes]


# --- transitive modes and version histories ----------------------------------------------------------

V1 = co(closed({"conf": CONF}))
V2 = co(closed({"conf": CONF, "nms": {**NUM, "default": 0.5}}, ("nms",)))  # required, but defaulted
V3 = co(closed({"conf": CONF, "nms": NUM}, ("nms",)))  # the default is dropped


def test_backward_compares_with_the_previous_version_only() -> None:
    reports = check_history([{"version": 1, **V1}, {"version": 2, **V2}, {"version": 3, **V3}], "BACKWARD").reports
    assert [(r.old_version, r.new_version, r.compatible) for r in reports] == [(1, 2, True), (2, 3, True)]


def test_backward_transitive_catches_what_pairwise_checks_miss() -> None:
    reports = check_history(
        [{"version": 1, **V1}, {"version": 2, **V2}, {"version": 3, **V3}], "BACKWARD_TRANSITIVE"
    ).reports
    failing = [(r.old_version, r.new_version, [c.code for c in r.changes]) for r in reports if not r.compatible]
    assert failing == [(1, 3, ["REQUIRED_PROPERTY_ADDED"])]


def test_forward_transitive_and_full_transitive_walk_every_earlier_version() -> None:
    registered = [{"version": 1, **V1}, {"version": 2, **V2}]
    versions = [*registered, {"version": 3, **V3}]

    def pairs(mode: str) -> list[tuple[int | None, int | None]]:
        return [(r.new_version, r.old_version) for r in check_history(versions, mode, registered=registered).reports]

    assert pairs("FORWARD_TRANSITIVE") == [(3, 2), (3, 1)]
    assert pairs("FULL_TRANSITIVE") == [(3, 2), (3, 1)]
    assert pairs("FULL") == [(3, 2)]
    none = check_history(versions, "NONE", registered=registered)
    assert none.ok and [r.changes for r in none.reports] == [[]]  # compared for notices only


def test_history_reports_problems_per_version_with_field_paths() -> None:
    registered = [{"version": 1, **V1}, {"version": 2, **V2}]
    versions = [{"version": 1, **V1}, {"version": 2, **V3}, {"version": 3, **V3}]
    result = check_history(versions, "BACKWARD_TRANSITIVE", registered=registered)
    assert [(p.version, p.path, p.code, p.against) for p in result.problems] == [
        (2, "customObjects", "VERSION_MODIFIED", None),
        (3, "customObjects.nms", "REQUIRED_PROPERTY_ADDED", 1),
    ]
    assert str(result.problems[1]).startswith("REQUIRED_PROPERTY_ADDED version 3.customObjects.nms: new required")


def test_registered_versions_are_immutable() -> None:
    old = [{"version": 1, **V1}, {"version": 2, **V2}]
    edited = [{"version": 1, **V1, "description": "reworded", "deprecated": True}, {"version": 2, **V3}]
    changes = check_registered_versions(old, edited)
    assert [(c.code, c.path) for c in changes] == [("VERSION_MODIFIED", "version 2.customObjects")]
    removed = check_registered_versions(old, [{"version": 2, **V2}])
    assert [(c.code, c.path) for c in removed] == [("VERSION_REMOVED", "version 1")]
