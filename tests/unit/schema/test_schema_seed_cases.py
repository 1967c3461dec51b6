"""The two seed cases of the product, end to end through the CLI a GitOps CI job runs.

Case 1: a new model needs a new parameter nobody declared: its deployment is rejected.
Case 2: resolution 224 -> 640 is allowed where the schema permits it; `conf` renamed `confidence`
is rejected under BACKWARD with a rename message, and accepted under NONE.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from overseer.schema import check_compatibility, validate_model_config
from schema_testing import EXAMPLES, CliResult

Run = Callable[..., CliResult]
SCHEMA_FILE = EXAMPLES / "object-detector.modelschema.yaml"
DEPLOYMENT_FILE = EXAMPLES / "cat-recognition.modeldeployment.yaml"


def load(path: Path) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def dump(tmp_path: Path, name: str, body: dict) -> str:  # type: ignore[type-arg]
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return str(path)


# --- Case 1 ------------------------------------------------------------------------------------------


def test_case1_deployment_with_an_undeclared_parameter_is_rejected(run_cli: Run, tmp_path: Path) -> None:
    deployment = load(DEPLOYMENT_FILE)
    # The new model only works with agnostic NMS; the dev team set it, nobody told the schema.
    deployment["spec"]["model"]["customObjects"]["agnostic_nms"] = True
    path = dump(tmp_path, "deploy.yaml", deployment)
    result = run_cli("validate", path, "--schemas", str(SCHEMA_FILE))
    assert result.code == 1
    assert result.lines == [
        f"{path}: ModelDeployment/ml-serving/cat-recognition: spec.model.customObjects.agnostic_nms: not allowed "
        "(allowed: classes, conf, iou, max_det, multi_label, resize_resolution)"
    ]


def test_case1_declaring_it_as_required_without_default_breaks_existing_models(run_cli: Run, tmp_path: Path) -> None:
    schema = load(SCHEMA_FILE)
    v3 = {**schema["spec"]["versions"][-1], "version": 3, "description": "agnostic NMS"}
    v3["customObjects"] = {
        **v3["customObjects"],
        "required": ["conf", "agnostic_nms"],
        "properties": {**v3["customObjects"]["properties"], "agnostic_nms": {"type": "boolean"}},
    }
    schema["spec"]["versions"].append(v3)
    path = dump(tmp_path, "schema.yaml", schema)
    result = run_cli("validate", path)
    assert result.code == 1
    assert result.lines == [
        f"{path}: ModelSchema/ml-serving/object-detector: spec.versions[2].customObjects.agnostic_nms: "
        "REQUIRED_PROPERTY_ADDED: new required property without a default: configs written for the old version "
        "lack it (version 3 is not BACKWARD compatible with version 2)"
    ]


def test_case1_declared_with_a_default_it_passes_and_existing_configs_get_the_default() -> None:
    schema = load(SCHEMA_FILE)
    v2 = schema["spec"]["versions"][-1]
    v3 = {
        **v2,
        "version": 3,
        "customObjects": {
            **v2["customObjects"],
            "required": ["conf", "agnostic_nms"],
            "properties": {
                **v2["customObjects"]["properties"],
                "agnostic_nms": {"type": "boolean", "default": False},
            },
        },
    }
    assert check_compatibility(v2, v3, "BACKWARD").compatible
    old_config = load(DEPLOYMENT_FILE)["spec"]["model"]
    result = validate_model_config(v3, old_config["labels"], old_config["metadata"], old_config["customObjects"])
    assert result.ok
    assert {"op": "add", "path": "/customObjects/agnostic_nms", "value": False} in result.patch


# --- Case 2 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [224, 640])
def test_case2_resolution_change_allowed_where_the_schema_permits_it(
    run_cli: Run, tmp_path: Path, resolution: int
) -> None:
    deployment = load(DEPLOYMENT_FILE)
    deployment["spec"]["model"]["customObjects"]["resize_resolution"] = resolution
    path = dump(tmp_path, "deploy.yaml", deployment)
    result = run_cli("validate", path, "--schemas", str(SCHEMA_FILE))
    assert result.code == 0, result.out


def test_case2_resolution_beyond_what_the_schema_permits_is_rejected(run_cli: Run, tmp_path: Path) -> None:
    schema = load(SCHEMA_FILE)
    for version in schema["spec"]["versions"]:
        version["customObjects"]["properties"]["resize_resolution"].update(maximum=320, default=320)
    schema["spec"]["compatibility"] = "NONE"
    schema_path = dump(tmp_path, "schema.yaml", schema)
    deployment = load(DEPLOYMENT_FILE)  # resize_resolution: 640
    path = dump(tmp_path, "deploy.yaml", deployment)
    result = run_cli("validate", path, "--schemas", schema_path)
    assert result.code == 1
    assert result.lines == [
        f"{path}: ModelDeployment/ml-serving/cat-recognition: spec.model.customObjects.resize_resolution: "
        "expected a value <= 320, found 640"
    ]


def _renamed_schema(tmp_path: Path, mode: str) -> str:
    schema = load(SCHEMA_FILE)
    schema["spec"]["compatibility"] = mode
    v2 = schema["spec"]["versions"][-1]
    v3 = {**v2, "version": 3, "description": "conf renamed confidence"}
    properties = dict(v2["customObjects"]["properties"])
    properties["confidence"] = properties.pop("conf")
    v3["customObjects"] = {**v2["customObjects"], "required": ["confidence"], "properties": properties}
    schema["spec"]["versions"].append(v3)
    return dump(tmp_path, f"schema-{mode.lower()}.yaml", schema)


def test_case2_rename_rejected_under_backward_with_a_rename_message(run_cli: Run, tmp_path: Path) -> None:
    path = _renamed_schema(tmp_path, "BACKWARD")
    result = run_cli("validate", path)
    assert result.code == 1
    assert result.lines == [
        f"{path}: ModelSchema/ml-serving/object-detector: spec.versions[2].customObjects.conf: PROPERTY_RENAMED: "
        "'conf' looks renamed to 'confidence': configs written for the old version set 'conf' and lack 'confidence' "
        "(PROPERTY_REMOVED, REQUIRED_PROPERTY_ADDED); keep 'conf', or add 'confidence' as optional with a default "
        "next to it (version 3 is not BACKWARD compatible with version 2)"
    ]
    diff = run_cli("schema", "diff", f"{SCHEMA_FILE}#2", f"{path}#3")
    assert diff.code == 1
    assert diff.lines[0].startswith("PROPERTY_RENAMED customObjects.conf: 'conf' looks renamed to 'confidence'")
    assert diff.lines[-1] == "object-detector version 3 is not BACKWARD compatible with version 2: 1 breaking change"


def test_case2_rename_accepted_under_none(run_cli: Run, tmp_path: Path) -> None:
    path = _renamed_schema(tmp_path, "NONE")
    assert run_cli("validate", path).code == 0
    diff = run_cli("schema", "diff", f"{SCHEMA_FILE}#2", f"{path}#3")
    assert diff.code == 0
    assert diff.lines == ["object-detector version 3 vs version 2: mode NONE, compatibility not checked"]


def test_case2_prod_deployment_on_the_renamed_version_gets_a_hint(run_cli: Run, tmp_path: Path) -> None:
    schema_path = _renamed_schema(tmp_path, "NONE")
    deployment = load(DEPLOYMENT_FILE)
    deployment["spec"]["schemaRef"]["version"] = 3  # prod moves to v3 but keeps writing `conf`
    path = dump(tmp_path, "deploy.yaml", deployment)
    result = run_cli("validate", path, "--schemas", schema_path)
    assert result.code == 1
    assert result.lines == [
        f"{path}: ModelDeployment/ml-serving/cat-recognition: spec.model.customObjects.conf: not allowed; "
        "did you mean 'confidence' (required)?",
        f"{path}: ModelDeployment/ml-serving/cat-recognition: spec.model.customObjects.confidence: required "
        "property missing (expected number between 0 and 1); 'conf' is set instead",
    ]
