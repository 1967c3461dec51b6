"""The chart's files, without helm: values.yaml and values.schema.json describe the same keys,
every key is commented, the schema refuses typos (and more than one replica, saying why), and the
chart's CRDs are crds/ byte for byte. Rendering and installing are the cluster tier's
(tests/cluster/chart/)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "charts" / "schema-overseer"
VALUES_TEXT = (CHART / "values.yaml").read_text(encoding="utf-8")
VALUES: dict[str, Any] = yaml.safe_load(VALUES_TEXT)
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))


def chart_keys(schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Dotted keys of the closed objects of the schema (free-form maps such as resources are values)."""
    for key, sub in schema.get("properties", {}).items():
        yield prefix + key, sub
        if sub.get("additionalProperties") is False:
            yield from chart_keys(sub, f"{prefix}{key}.")


def errors(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)]


def test_values_yaml_is_valid_against_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert errors(VALUES) == []


def test_every_closed_object_refuses_unknown_keys() -> None:
    for key, sub in [("", SCHEMA), *chart_keys(SCHEMA)]:
        if sub.get("properties"):
            assert sub.get("additionalProperties") is False, f"{key or 'the root'} accepts unknown keys"


def test_values_yaml_and_the_schema_name_the_same_keys() -> None:
    def present(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
        for key, value in values.items():
            yield prefix + key
            schema_node = dict(chart_keys(SCHEMA)).get(prefix + key, {})
            if isinstance(value, dict) and schema_node.get("additionalProperties") is False:
                yield from present(value, f"{prefix}{key}.")

    # Keys documented but left unset in values.yaml (the template tells "unset" from a value).
    commented_out = {"podDisruptionBudget.minAvailable", "podDisruptionBudget.maxUnavailable",
                     "webhook.certManager.issuerRef.name", "webhook.certManager.issuerRef.kind",
                     "webhook.certManager.issuerRef.group"}  # fmt: skip
    assert set(present(VALUES)) == {key for key, _ in chart_keys(SCHEMA)} - commented_out


def key_lines(node: yaml.Node, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(dotted key, 0-based line) of every mapping key in values.yaml."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield prefix + key.value, key.start_mark.line
            yield from key_lines(value, f"{prefix}{key.value}.")


def test_every_key_in_values_yaml_has_a_comment_above_it() -> None:
    lines = VALUES_TEXT.splitlines()
    where = dict(key_lines(yaml.compose(VALUES_TEXT)))
    uncommented = []
    for key, _ in chart_keys(SCHEMA):
        if key in where:
            line = where[key]
        else:  # documented but unset: `# key: value` under its comment
            name = key.rsplit(".", 1)[-1]
            found = [n for n, text in enumerate(lines) if re.match(rf"^\s*# {name}: ", text)]
            if not found:
                continue
            line = found[0]
        if not lines[line - 1].lstrip().startswith("#"):
            uncommented.append(f"values.yaml:{line + 1}: {key}")
    assert uncommented == []


def test_more_than_one_replica_is_refused_with_the_reason() -> None:
    values = copy.deepcopy(VALUES)
    values["replicaCount"] = 2
    found = errors(values)
    assert found and "Kopf has no leader election" in json.dumps(SCHEMA["properties"]["replicaCount"])
    assert "replicaCount" in found[0]
    values["replicaCount"] = 0
    assert errors(values) == []  # stopping the operator is allowed


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda v: v.update(replicas=1), "Additional properties are not allowed ('replicas' was unexpected)"),
        (lambda v: v["image"].update(tags="1.0"), "image: Additional properties"),
        (lambda v: v["webhook"]["certManager"].update(issuer={"name": "x"}), "webhook/certManager: Additional"),
        (lambda v: v.update(logFormat="yaml"), "logFormat: 'yaml' is not one of"),
        (lambda v: v["podDisruptionBudget"].update(minAvailable=1, maxUnavailable=1), "podDisruptionBudget"),
        (lambda v: v.update(watchNamespaces=["ML_Serving"]), "watchNamespaces/0"),
        (lambda v: v["image"].update(digest="sha256:abc"), "image/digest"),
    ],
)
def test_typos_and_bad_values_are_refused(change: Any, where: str) -> None:
    values = copy.deepcopy(VALUES)
    change(values)
    assert any(where in error for error in errors(values)), errors(values)


def test_the_charts_crds_are_crds_byte_for_byte() -> None:
    ours = sorted(p.name for p in (REPO_ROOT / "crds").glob("*.yaml"))
    copies = sorted(p.name for p in (CHART / "files" / "crds").glob("*.yaml"))
    assert ours == copies and ours
    for name in ours:
        assert (CHART / "files" / "crds" / name).read_bytes() == (REPO_ROOT / "crds" / name).read_bytes(), (
            f"{name}: run `make crds`"
        )


def test_notes_end_with_a_command() -> None:
    notes = (CHART / "templates" / "NOTES.txt").read_text().rstrip().splitlines()
    assert notes[-1].strip().startswith("kubectl ")
