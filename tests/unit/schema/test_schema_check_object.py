"""check_object: the admission-style entry point the operator's webhooks can call."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from overseer.checks import check_object
from schema_testing import EXAMPLES

SCHEMA: dict[str, Any] = yaml.safe_load((EXAMPLES / "object-detector.modelschema.yaml").read_text(encoding="utf-8"))
DEPLOYMENT: dict[str, Any] = yaml.safe_load(
    (EXAMPLES / "cat-recognition.modeldeployment.yaml").read_text(encoding="utf-8")
)


def test_valid_objects_have_no_problems() -> None:
    assert check_object(SCHEMA) == []
    assert check_object(DEPLOYMENT, [SCHEMA]) == []


def test_deployment_problems_name_the_field_and_ignore_the_known_schemas_own_state() -> None:
    deployment = copy.deepcopy(DEPLOYMENT)
    deployment["spec"]["model"]["customObjects"]["conf"] = 7
    broken_schema = copy.deepcopy(SCHEMA)
    broken_schema["metadata"]["name"] = "unrelated"
    broken_schema["spec"]["versions"][0]["labels"] = {"type": "strin"}
    problems = check_object(deployment, [SCHEMA, broken_schema])
    assert [(p.path, p.message) for p in problems] == [
        ("spec.model.customObjects.conf", "expected a value <= 1, found 7")
    ]


def test_deployment_without_its_schema() -> None:
    problems = check_object(DEPLOYMENT)
    assert [p.path for p in problems] == ["spec.schemaRef.name"]
