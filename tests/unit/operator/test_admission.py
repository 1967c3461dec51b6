"""Admission decisions (overseer.operator.admission), pure: what a user of `kubectl apply` is told."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from operator_testing import DIGEST_A, DIGEST_B, NAMESPACE, deployment, schema, with_version
from overseer.operator import admission
from overseer.operator.admission import (
    Review,
    default_deployment,
    format_problems,
    review_deployment,
    review_schema,
    review_schema_delete,
    schema_usage,
)


def review(body: dict[str, Any], schema_body: dict[str, Any] | None = None, **kwargs: Any) -> Review:
    return review_deployment("CREATE", body, None, schema_body if schema_body is not None else schema(), **kwargs)


def test_the_example_is_admitted_without_warnings() -> None:
    result = review(deployment())
    assert result.allowed, result.message
    assert result.warnings == ()


def test_case2_a_renamed_parameter_is_refused_with_the_rename_hint() -> None:
    body = deployment()
    custom = body["spec"]["model"]["customObjects"]
    custom["confidence"] = custom.pop("conf")
    result = review(body)
    assert not result.allowed
    assert result.code == 422
    assert "spec.model.customObjects.conf: required property missing" in result.message
    assert "'confidence' is set instead" in result.message
    assert "spec.model.customObjects.confidence: not allowed; did you mean 'conf' (required)?" in result.message


def test_case1_a_new_required_parameter_missing_is_refused() -> None:
    v3 = with_version(schema(), 3)
    v3["spec"]["versions"][-1]["customObjects"]["required"] = ["conf", "min_box_area"]
    v3["spec"]["versions"][-1]["customObjects"]["properties"]["min_box_area"] = {"type": "integer", "minimum": 0}
    body = deployment()
    body["spec"]["schemaRef"]["version"] = 3
    result = review(body, v3)
    assert not result.allowed
    assert result.message == (
        "spec.model.customObjects.min_box_area: required property missing (expected integer >= 0)"
    )


def test_a_missing_schema_is_named_with_its_namespace_and_a_hint() -> None:
    body = deployment()
    body["spec"]["schemaRef"]["name"] = "object-detecter"
    result = review_deployment(
        "CREATE", body, None, None, namespace=NAMESPACE, schemas_in_namespace=["object-detector", "segmenter"]
    )
    assert not result.allowed
    assert result.message == (
        "spec.schemaRef.name: ModelSchema 'object-detecter' not found in namespace 'ml-serving'; "
        "did you mean 'object-detector'?"
    )
    empty = review_deployment("CREATE", body, None, None, namespace=NAMESPACE)
    assert "it has no ModelSchemas: apply the schema first" in empty.message


def test_a_missing_version_lists_the_versions() -> None:
    body = deployment()
    body["spec"]["schemaRef"]["version"] = 7
    result = review(body)
    assert not result.allowed
    assert "spec.schemaRef.version: ModelSchema 'object-detector' has no version 7 (versions: 1, 2)" in result.message


def test_every_problem_is_reported_at_once_one_per_line() -> None:
    body = deployment()
    body["spec"]["model"]["digest"] = "sha256:nothex"
    body["spec"]["model"]["labels"]["stage"] = "prod"
    body["spec"]["replicas"] = 0
    result = review(body)
    assert not result.allowed
    lines = result.message.splitlines()
    assert lines[0] == "3 problems:"
    assert any(line.startswith("- spec.model.digest: expected sha256:<64 lowercase hex digits>") for line in lines)
    assert any(line.startswith("- spec.model.labels.stage: expected one of") for line in lines)
    assert any(line.startswith("- spec.replicas: expected a value >= 1") for line in lines)


def test_warnings_deprecated_and_older_than_latest() -> None:
    old_version = schema()
    old_version["spec"]["versions"][0]["deprecated"] = True
    body = deployment()
    body["spec"]["schemaRef"]["version"] = 1
    del body["spec"]["model"]["customObjects"]["classes"]  # version 1 has no classes
    result = review(body, old_version)
    assert result.allowed, result.message
    assert result.warnings == (
        "spec.schemaRef.version: ModelSchema 'object-detector' version 1 is deprecated",
        "spec.schemaRef.version: ModelSchema 'object-detector' has a newer version 2 (this deployment uses version 1)",
    )


def test_an_update_that_leaves_the_spec_alone_is_not_judged() -> None:
    broken = deployment()
    broken["spec"]["model"]["customObjects"] = {"nonsense": True}
    relabelled = copy.deepcopy(broken)
    relabelled["metadata"]["annotations"] = {"kopf.zalando.org/touch": "x"}
    assert review_deployment("UPDATE", relabelled, broken, schema()).allowed
    assert not review_deployment("UPDATE", relabelled, deployment(), schema()).allowed


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"version": "20240202"}, "spec.model.digest: unchanged while spec.model.version changed"),
        ({"uri": "https://models.example/cat.pt"}, "spec.model.digest: unchanged while spec.model.uri changed"),
        ({"digest": DIGEST_B}, "spec.model.digest: changed while spec.model.version and spec.model.uri did not"),
        ({"digest": DIGEST_B, "version": "20240202"}, None),
    ],
)
def test_digest_warnings(change: dict[str, str], expected: str | None) -> None:
    old = deployment()
    old["spec"]["model"]["digest"] = DIGEST_A
    new = copy.deepcopy(old)
    new["spec"]["model"].update(change)
    result = review_deployment("UPDATE", new, old, schema())
    assert result.allowed, result.message
    found = [w for w in result.warnings if w.startswith("spec.model.digest")]
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1
        assert found[0].startswith(expected)


def test_promotion_minimum_refuses_a_weak_model() -> None:
    body = deployment()
    body["spec"]["model"]["metadata"]["f1"] = 0.5
    result = review(body)
    assert not result.allowed
    assert result.message == "spec.model.metadata.f1: 0.5 is below promotion.minimum 0.8: the rollout would be refused"


def served(body: dict[str, Any]) -> dict[str, Any]:
    """`body` as stored once its model is served everywhere."""
    out = copy.deepcopy(body)
    model = out["spec"]["model"]
    out["status"] = {"model": {k: model[k] for k in ("name", "version", "digest")}}
    return out


def test_promotion_not_worse_than_current_compares_with_the_served_model() -> None:
    old = served(deployment())  # f1 0.87
    new = copy.deepcopy(old)
    new["spec"]["model"].update(version="20240202", digest=DIGEST_B)
    new["spec"]["model"]["metadata"]["f1"] = 0.85
    result = review_deployment("UPDATE", new, old, schema())
    assert not result.allowed
    assert result.message == (
        "spec.model.metadata.f1: 0.85 is below 0.87, the f1 of the model served now (cat_recognition 20240103): "
        "promotion.notWorseThanCurrent refuses it"
    )
    new["spec"]["model"]["metadata"]["f1"] = 0.9
    assert review_deployment("UPDATE", new, old, schema()).allowed


def test_promotion_not_worse_than_current_reads_the_history_after_a_rollback() -> None:
    old = served(deployment())
    old["spec"]["model"].update(version="20240202", digest=DIGEST_B)  # asked for, never served
    old["spec"]["model"]["metadata"]["f1"] = 0.95
    old["status"]["history"] = [
        {"name": "cat_recognition", "version": "20240103", "digest": old["status"]["model"]["digest"],
         "metadata": {"f1": 0.87}},
    ]  # fmt: skip
    new = copy.deepcopy(old)
    new["spec"]["model"].update(version="20240303", digest=DIGEST_A)
    new["spec"]["model"]["metadata"]["f1"] = 0.9  # below the asked-for 0.95, above the served 0.87
    assert review_deployment("UPDATE", new, old, schema()).allowed
    assert admission.served_metric(old, "f1") == ("cat_recognition 20240103", 0.87)


def test_serving_volumes_and_env_cannot_clash_with_the_operators_own() -> None:
    body = deployment()
    body["spec"]["serving"].update(
        volumes=[{"name": "model", "emptyDir": {}}, {"name": "weights", "persistentVolumeClaim": {"claimName": "w"}}],
        volumeMounts=[
            {"name": "weights", "mountPath": "/etc/overseer"},
            {"name": "missing", "mountPath": "/data"},
            {"name": "weights", "mountPath": "/tmp/models"},  # inside an emptyDir of ours: fine
        ],
        env=[{"name": "POD_IP", "value": "0.0.0.0"}],
    )
    result = review(body)
    assert not result.allowed
    assert dict(result.problems) == {
        "spec.serving.volumes[0].name": "'model' is the operator's own volume; choose another name",
        "spec.serving.volumeMounts[0].mountPath": (
            "'/etc/overseer' overlaps the operator's own mount /etc/overseer/model"
        ),
        "spec.serving.volumeMounts[1].name": "no volume 'missing' in spec.serving.volumes (volumes: model, weights)",
        "spec.serving.env[0].name": "POD_IP is set by the operator (the pod's address)",
    }


@pytest.mark.parametrize("spec", ["not an object", {"schemaRef": "x", "model": []}, {}])
def test_malformed_objects_are_refused_never_crash(spec: Any) -> None:
    body = deployment()
    body["spec"] = spec
    result = review(body)
    assert not result.allowed
    assert "Traceback" not in result.message


# --- the mutating webhook --------------------------------------------------------------------------


def test_defaults_are_filled_in_by_a_json_patch_on_the_model() -> None:
    body = deployment()
    ops = default_deployment(body, schema())
    paths = sorted(op["path"] for op in ops)
    assert paths == [
        "/spec/model/customObjects/iou",
        "/spec/model/customObjects/max_det",
        "/spec/model/customObjects/multi_label",
    ]
    patched = jsonpatch.apply_patch(body, ops)
    assert patched["spec"]["model"]["customObjects"] == {
        "resize_resolution": 640, "conf": 0.25, "classes": ["cat"], "iou": 0.45, "max_det": 300, "multi_label": False,
    }  # fmt: skip
    assert review(patched).allowed


def test_an_absent_section_is_added_whole() -> None:
    body = deployment()
    del body["spec"]["model"]["customObjects"]
    ops = default_deployment(body, schema())
    assert [op["path"] for op in ops] == ["/spec/model/customObjects"]
    patched = jsonpatch.apply_patch(body, ops)
    assert patched["spec"]["model"]["customObjects"]["resize_resolution"] == 640


def test_no_patch_when_the_reference_does_not_resolve() -> None:
    body = deployment()
    body["spec"]["schemaRef"]["version"] = 9
    assert default_deployment(body, schema()) == []
    assert default_deployment(body, None) == []
    body["spec"]["model"] = "nonsense"
    assert default_deployment(body, schema()) == []


# --- ModelSchema --------------------------------------------------------------------------------------


def test_a_schema_section_that_is_no_json_schema_is_refused() -> None:
    body = schema()
    body["spec"]["versions"][1]["customObjects"]["properties"]["conf"]["type"] = "float"
    result = review_schema("CREATE", body, None, {})
    assert not result.allowed
    assert "spec.versions[1].customObjects: not a valid JSON Schema" in result.message
    assert "'float' is not a JSON type" in result.message


def test_an_incompatible_new_version_lists_the_breaking_changes() -> None:
    old = schema()
    new = with_version(old, 3)
    props = new["spec"]["versions"][-1]["customObjects"]["properties"]
    props["confidence"] = props.pop("conf")
    new["spec"]["versions"][-1]["customObjects"]["required"] = ["confidence"]
    result = review_schema("UPDATE", new, old, {})
    assert not result.allowed
    assert "spec.versions[2].customObjects.conf: PROPERTY_RENAMED" in result.message
    assert "(version 3 is not BACKWARD compatible with version 2)" in result.message


def test_a_registered_version_cannot_change() -> None:
    old = schema()
    new = copy.deepcopy(old)
    new["spec"]["versions"][0]["customObjects"]["properties"]["conf"]["maximum"] = 0.9
    result = review_schema("UPDATE", new, old, {1: ["cat-recognition"]})
    assert not result.allowed
    assert (
        "spec.versions[0].customObjects: VERSION_MODIFIED: registered version 1 is immutable; "
        "add the change as version 3 instead"
    ) in result.message


def test_a_registered_version_cannot_be_removed_and_its_users_are_named() -> None:
    old = schema()
    new = copy.deepcopy(old)
    del new["spec"]["versions"][1]
    result = review_schema("UPDATE", new, old, {2: ["cat-recognition", "dog-recognition"]})
    assert not result.allowed
    assert result.message == (
        "spec.versions: VERSION_REMOVED: registered version 2 was removed; registered versions are immutable "
        "(retire it with deprecated: true instead); it is in use by ModelDeployments cat-recognition, dog-recognition"
    )


def test_deprecating_a_version_in_use_is_allowed_with_a_warning() -> None:
    old = schema()
    new = copy.deepcopy(old)
    new["spec"]["versions"][0]["deprecated"] = True
    new["spec"]["versions"][0]["description"] = "superseded by version 2"
    result = review_schema("UPDATE", new, old, {1: ["cat-recognition"]})
    assert result.allowed, result.message
    assert result.warnings == ("version 1 is now deprecated and still used by ModelDeployment cat-recognition",)


def test_deleting_a_schema_in_use_is_refused_unless_the_namespace_goes() -> None:
    usage = schema_usage("object-detector", [deployment(), _deleting(deployment(name="old")), _other_schema()])
    assert usage == {2: ["cat-recognition"]}
    refused = review_schema_delete(schema(), usage, namespace_terminating=False)
    assert not refused.allowed
    assert refused.code == 409
    assert refused.message == (
        "ModelSchema 'object-detector' is in use by ModelDeployment cat-recognition (version 2): "
        "delete them or point them at another schema first"
    )
    assert review_schema_delete(schema(), usage, namespace_terminating=True).allowed
    assert review_schema_delete(schema(), {}, namespace_terminating=False).allowed


def _deleting(body: dict[str, Any]) -> dict[str, Any]:
    body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return body


def _other_schema() -> dict[str, Any]:
    body = deployment(name="other")
    body["spec"]["schemaRef"]["name"] = "segmenter"
    return body


def test_format_problems_caps_the_list() -> None:
    problems = [(f"spec.x[{i}]", "bad") for i in range(25)]
    text = format_problems(problems)
    assert text.splitlines()[0] == "25 problems:"
    assert text.splitlines()[-1] == "- ... and 5 more"
    assert format_problems([("", "just this")]) == "just this"


def test_a_schema_as_indexed_in_memory_is_enough() -> None:
    """The webhook's index keeps only name, namespace and spec of each ModelSchema."""
    full = schema()
    indexed = {"metadata": {"name": full["metadata"]["name"], "namespace": NAMESPACE}, "spec": full["spec"]}
    result = review(deployment(), indexed)
    assert result.allowed, result.message


def test_a_schema_created_with_incompatible_versions_is_refused() -> None:
    body = with_version(schema(), 3)
    props = body["spec"]["versions"][-1]["customObjects"]["properties"]
    props["confidence"] = props.pop("conf")
    body["spec"]["versions"][-1]["customObjects"]["required"] = ["confidence"]
    result = review_schema("CREATE", body, None, {})
    assert not result.allowed
    assert "spec.versions[2].customObjects.conf: PROPERTY_RENAMED" in result.message


def test_a_stricter_mode_applies_to_the_versions_added_after_it() -> None:
    """As in a schema registry: registered versions were judged when they were added."""
    loose = with_version(schema(), 3)
    loose["spec"]["compatibility"] = "NONE"
    props = loose["spec"]["versions"][-1]["customObjects"]["properties"]
    props["confidence"] = props.pop("conf")
    loose["spec"]["versions"][-1]["customObjects"]["required"] = ["confidence"]
    assert review_schema("CREATE", loose, None, {}).allowed
    strict = copy.deepcopy(loose)
    strict["spec"]["compatibility"] = "BACKWARD"
    assert review_schema("UPDATE", strict, loose, {}).allowed
    renamed_back = with_version(strict, 4)
    props = renamed_back["spec"]["versions"][-1]["customObjects"]["properties"]
    props["conf"] = props.pop("confidence")
    renamed_back["spec"]["versions"][-1]["customObjects"]["required"] = ["conf"]
    result = review_schema("UPDATE", renamed_back, strict, {})
    assert not result.allowed
    assert "(version 4 is not BACKWARD compatible with version 3)" in result.message
