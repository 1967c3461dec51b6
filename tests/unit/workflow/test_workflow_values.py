"""Config values from the command line and from saved models: typed as a user means them."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from overseer.deployment_new import values

SECTION = {
    "type": "object",
    "properties": {
        "dataset_version": {"type": "string"},
        "maybe": {"type": ["string", "null"]},
        "either": {"type": ["number", "string"]},
        "f1": {"type": "number"},
    },
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("conf=0.25", ("conf", 0.25)),
        ("multi_label=false", ("multi_label", False)),
        ("classes=[cat, dog]", ("classes", ["cat", "dog"])),
        ("owner=vision-team", ("owner", "vision-team")),
        ("date=2024-01-03", ("date", "2024-01-03")),  # kubectl's rule: dates stay strings
        ("note=", ("note", "")),
        ("expr=a=b", ("expr", "a=b")),  # only the first = splits
        ("nothing=~", ("nothing", None)),
    ],
)
def test_values_are_typed_as_yaml(text: str, expected: tuple[str, Any]) -> None:
    assert values.parse_assignment(text, "--custom-object", {}) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dataset_version=2024.01", "2024.01"),  # a number to YAML, a string to the schema: the text wins
        ("dataset_version=007", "007"),
        ("dataset_version=true", "true"),
        ("maybe=12", "12"),
        ("maybe=~", None),  # null is allowed as such
        ("either=12", 12),  # a number is allowed as such
        ("f1=0.9", 0.9),
    ],
)
def test_a_field_declared_string_keeps_the_text(text: str, expected: Any) -> None:
    assert values.parse_assignment(text, "--metadata", SECTION)[1] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("conf", "--custom-object 'conf': expected KEY=VALUE"),
        ("=0.2", "--custom-object '=0.2': expected KEY=VALUE"),
        ("classes=[cat", "--custom-object classes: invalid YAML"),
    ],
)
def test_bad_assignments_name_the_option(text: str, message: str) -> None:
    with pytest.raises(values.ValuesError, match=message.replace("[", r"\[")):
        values.parse_assignment(text, "--custom-object", {})


def test_assignments_override_in_order() -> None:
    base: values.Config = {"labels": {"owner": "a", "stage": "dev"}, "metadata": {"f1": 0.5}, "customObjects": {}}
    result = values.apply_assignments(
        base,
        {"labels": ["stage=production", "stage=staging"], "customObjects": ["conf=0.3"]},
        {"metadata": SECTION},
    )
    assert result == {
        "labels": {"owner": "a", "stage": "staging"},
        "metadata": {"f1": 0.5},
        "customObjects": {"conf": 0.3},
    }
    assert base["labels"]["stage"] == "dev"  # not modified in place


def test_config_file_sections_and_bentoml_spelling(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("labels: {owner: a}\ncustom_objects: {conf: 0.2}\nmetadata:\n")
    assert values.read_config_file(str(path)) == {
        "labels": {"owner": "a"},
        "metadata": {},
        "customObjects": {"conf": 0.2},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label: {owner: a}\n", "unknown key 'label'; did you mean 'labels'?"),
        ("customObjects: {}\ncustom_objects: {}\n", "both 'customObjects' and 'custom_objects' given"),
        ("labels: [a]\n", "labels: expected a mapping, found an array of 1 item"),
        ("- a\n", "expected one mapping"),
        ("labels: {a: 1}\n---\nmetadata: {}\n", "expected one mapping"),
        ("labels: {a: 1, a: 2}\n", "duplicate key 'a'"),
    ],
)
def test_bad_config_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(values.ValuesError, match=message.replace("[", r"\[")):
        values.read_config_file(str(path))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(values.ValuesError, match=r"nope\.yaml: cannot read: No such file"):
        values.read_config_file(str(tmp_path / "nope.yaml"))


class FakeNumpyScalar:
    """What numpy's float32(0.87) looks like to a duck: shape () and item()."""

    shape = ()

    def item(self) -> float:
        return 0.87


def test_saved_values_become_json() -> None:
    value = {
        "f1": FakeNumpyScalar(),
        "sizes": (640, 480),
        "trained": datetime.date(2024, 1, 3),
        "nested": {"ok": [True, None, "x"]},
    }
    assert values.to_json_value(value, "metadata") == {
        "f1": 0.87,
        "sizes": [640, 480],
        "trained": "2024-01-03",
        "nested": {"ok": [True, None, "x"]},
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"tokenizer": object()}, "customObjects.tokenizer: a builtins.object is not a JSON value"),
        ({"f": float("nan")}, "customObjects.f: nan is not a JSON number"),
        ({1: "x"}, "customObjects: key 1 is not a string"),
        ({"a": [1, {"b": {1, 2}}]}, r"customObjects.a\[1\].b: a builtins.set is not a JSON value"),
    ],
)
def test_values_a_manifest_cannot_carry_are_named(value: Any, message: str) -> None:
    with pytest.raises(values.ValuesError, match=message):
        values.to_json_value(value, "customObjects")
