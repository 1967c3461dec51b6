"""The CRDs in crds/: generated from the API models, structural, self-explaining, not drifting."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from overseer import crdgen
from overseer.schema.compatibility import MODES
from schema_testing import EXAMPLES, REPO, CliResult

CRDS = REPO / "crds"
FILES = {"ModelSchema": "overseer.dev_modelschemas.yaml", "ModelDeployment": "overseer.dev_modeldeployments.yaml"}


def load(kind: str) -> dict[str, Any]:
    return yaml.safe_load((CRDS / FILES[kind]).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def schema_of(kind: str) -> dict[str, Any]:
    return load(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from nodes(node["additionalProperties"], f"{path}.*")


def test_committed_crds_match_the_api_models(capsys: pytest.CaptureFixture[str]) -> None:
    code = crdgen.main(["--out", str(CRDS), "--check"])
    assert code == 0, capsys.readouterr().err + " (run `make crds`)"


def test_check_fails_on_drift_and_names_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(CRDS, tmp_path / "crds")
    edited = tmp_path / "crds" / FILES["ModelDeployment"]
    edited.write_text(edited.read_text(encoding="utf-8").replace("shortNames:\n    - mdep", "shortNames:\n    - md"))
    assert crdgen.main(["--out", str(tmp_path / "crds"), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"out of date: {edited}" in err
    assert "python -m overseer.crdgen --out" in err
    assert crdgen.main(["--out", str(tmp_path / "crds")]) == 0
    assert crdgen.main(["--out", str(tmp_path / "crds"), "--check"]) == 0


@pytest.mark.parametrize("kind", FILES)
def test_structural_every_node_typed_no_json_schema_only_keywords(kind: str) -> None:
    for path, node in nodes(schema_of(kind)):
        typed = (
            "type" in node or node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
        )
        assert typed, f"{kind}{path} has no type"
        for keyword in ("$ref", "anyOf", "oneOf", "allOf", "title", "const", "$defs"):
            assert keyword not in node, f"{kind}{path} uses {keyword}"
        assert node.get("additionalProperties") is not False, f"{kind}{path}: additionalProperties false"


@pytest.mark.parametrize("kind", FILES)
def test_every_field_has_a_description_for_kubectl_explain(kind: str) -> None:
    fields = [(p, n) for p, n in nodes(schema_of(kind)) if p not in ("", ".metadata") and not p.endswith(("[]", ".*"))]
    undocumented = [p for p, n in fields if "description" not in n]
    assert undocumented == []


def test_names_subresources_and_columns() -> None:
    schema, deployment = load("ModelSchema")["spec"], load("ModelDeployment")["spec"]
    assert schema["names"]["shortNames"] == ["msch"]
    assert deployment["names"]["shortNames"] == ["mdep"]
    assert schema["names"]["categories"] == deployment["names"]["categories"] == ["overseer", "ml"]
    assert schema["scope"] == deployment["scope"] == "Namespaced"
    for spec in (schema, deployment):
        assert spec["group"] == "overseer.dev"
        assert spec["versions"][0]["name"] == "v1alpha1"
        assert spec["versions"][0]["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in schema["versions"][0]["additionalPrinterColumns"]}
    assert columns["Latest"] == ".spec.versions[-1:].version"
    assert columns["Compatibility"] == ".spec.compatibility"
    columns = {c["name"]: c["jsonPath"] for c in deployment["versions"][0]["additionalPrinterColumns"]}
    assert columns["Serving"] == ".status.model.version"
    assert columns["Ready"] == ".status.readyReplicas"
    assert columns["Status"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_cheap_invariants_are_left_to_the_api_server() -> None:
    spec = schema_of("ModelSchema")["properties"]["spec"]
    assert [r["rule"] for r in spec["x-kubernetes-validations"]] == ["self.versions.map(v, v.version).isSorted()"]
    versions = spec["properties"]["versions"]
    assert (versions["x-kubernetes-list-type"], versions["x-kubernetes-list-map-keys"]) == ("map", ["version"])
    assert versions["maxItems"] == 100  # bounds the CEL cost estimate
    model = schema_of("ModelDeployment")["properties"]["spec"]["properties"]["model"]
    assert model["properties"]["digest"]["pattern"] == "^sha256:[0-9a-f]{64}$"
    assert model["properties"]["customObjects"]["x-kubernetes-preserve-unknown-fields"] is True
    replicas = schema_of("ModelDeployment")["properties"]["spec"]["properties"]["replicas"]
    assert replicas["minimum"] == 1


@pytest.mark.parametrize(
    ("kind", "example"),
    [("ModelSchema", "object-detector.modelschema.yaml"), ("ModelDeployment", "cat-recognition.modeldeployment.yaml")],
)
def test_examples_satisfy_the_crd_schema(kind: str, example: str) -> None:
    body = yaml.safe_load((EXAMPLES / example).read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(schema_of(kind)).validate(body)
    broken = (
        {**body, "spec": {**body["spec"], "replicas": 0}}
        if kind == "ModelDeployment"
        else {**body, "spec": {**body["spec"], "compatibility": "SOMETIMES"}}
    )
    assert not jsonschema.Draft4Validator(schema_of(kind)).is_valid(broken)


def test_one_list_of_compatibility_modes_everywhere(run_cli: Callable[..., CliResult]) -> None:
    enum = schema_of("ModelSchema")["properties"]["spec"]["properties"]["compatibility"]["enum"]
    assert tuple(enum) == MODES
    result = run_cli("schema", "diff", "old.yaml", "new.yaml", "--mode", "sideways")
    assert f"(choose from {', '.join(repr(m) for m in MODES)})" in result.err
