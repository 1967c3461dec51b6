"""Admission through the real API server: `kubectl apply` of a bad ModelDeployment or ModelSchema is
refused with the project's message, good ones are admitted and defaulted, warnings are printed,
dry-runs change nothing, and a stopped operator blocks only overseer.dev objects.

The deployments here never get a serving process (their pods stay Pending): admission is the
subject; test_operator_reconcile.py runs real serving pods.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from operator_support import (
    Operator,
    applied,
    deployment_body,
    manifest,
    refused,
    schema_body,
)
from support.cluster import Kubectl
from support.polling import wait_for

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture
def contract(operator: Operator, kubectl: Kubectl) -> Kubectl:
    """The namespace holds the object-detector ModelSchema (versions 1 and 2)."""
    applied(kubectl, schema_body())
    return kubectl


@pytest.fixture(scope="module")
def shared(operator: Operator, kubectl_admin: Kubectl) -> Iterator[Kubectl]:
    """One namespace for the refusals (they leave nothing behind): the schema, and a deployment
    using its version 2."""
    name = f"t-refusals-{uuid.uuid4().hex[:6]}"
    kubectl_admin.run("create", "namespace", name)
    scoped = kubectl_admin.in_namespace(name)
    applied(scoped, schema_body())
    applied(scoped, deployment_body())
    try:
        yield scoped
    finally:
        kubectl_admin.run("delete", "namespace", name, "--wait=false", check=False)


def at(path: str, value: Any) -> Edit:
    """Set a dotted path (integers index lists)."""

    def edit(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return edit


def drop(path: str) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return edit


def rename_conf(body: dict[str, Any]) -> None:
    custom = body["spec"]["model"]["customObjects"]
    custom["confidence"] = custom.pop("conf")


def serving(**fields: Any) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        body["spec"]["serving"].update(fields)

    return edit


DEPLOYMENT_CASES = [
    pytest.param(
        rename_conf,
        [
            "spec.model.customObjects.conf: required property missing (expected number between 0 and 1); "
            "'confidence' is set instead",
            "spec.model.customObjects.confidence: not allowed; did you mean 'conf' (required)?",
        ],
        id="case2-conf-renamed-confidence",
    ),
    pytest.param(
        drop("spec.model.customObjects.conf"),
        ["spec.model.customObjects.conf: required property missing (expected number between 0 and 1)"],
        id="case1-required-parameter-missing",
    ),
    pytest.param(
        at("spec.schemaRef.name", "object-detecter"),
        [
            "spec.schemaRef.name: ModelSchema 'object-detecter' not found in namespace",
            "did you mean 'object-detector'?",
        ],
        id="schema-not-found",
    ),
    pytest.param(
        at("spec.schemaRef.version", 9),
        ["spec.schemaRef.version: ModelSchema 'object-detector' has no version 9 (versions: 1, 2)"],
        id="version-not-found",
    ),
    pytest.param(
        at("spec.model.labels.stage", "prod"),
        ["spec.model.labels.stage: expected one of 'dev', 'staging', 'production', found 'prod'"],
        id="label-enum",
    ),
    pytest.param(
        at("spec.model.labels.owner", "Vision Team"),
        ["spec.model.labels.owner: expected a string matching '^[a-z0-9][a-z0-9-]*$', found 'Vision Team'"],
        id="label-pattern",
    ),
    pytest.param(
        drop("spec.model.labels.owner"),
        ["spec.model.labels.owner: required property missing"],
        id="label-missing",
    ),
    pytest.param(
        at("spec.model.metadata.f1", 1.5),
        ["spec.model.metadata.f1: expected a value <= 1, found 1.5"],
        id="metadata-maximum",
    ),
    pytest.param(
        drop("spec.model.metadata.f1"),
        ["spec.model.metadata.f1: required property missing"],
        id="metadata-missing",
    ),
    pytest.param(
        at("spec.model.metadata.dataset_version", 2024),
        ["spec.model.metadata.dataset_version: expected string, found integer 2024"],
        id="metadata-type",
    ),
    pytest.param(
        at("spec.model.customObjects.resize_resolution", 600),
        ["spec.model.customObjects.resize_resolution: expected a multiple of 32, found 600"],
        id="multiple-of",
    ),
    pytest.param(
        at("spec.model.customObjects.conf", "high"),
        ["spec.model.customObjects.conf: expected number, found string 'high'"],
        id="parameter-type",
    ),
    pytest.param(
        at("spec.model.customObjects.classes", ["cat", "cat"]),
        ["spec.model.customObjects.classes: expected unique items, found duplicates"],
        id="unique-items",
    ),
    pytest.param(
        at("spec.model.customObjects.max_det", 0),
        ["spec.model.customObjects.max_det: expected a value >= 1, found 0"],
        id="parameter-minimum",
    ),
    pytest.param(
        at("spec.model.customObjects.multi_label", "yes"),
        ["spec.model.customObjects.multi_label: expected boolean, found string 'yes'"],
        id="parameter-boolean",
    ),
    pytest.param(
        at("spec.model.customObjects.anchor_free", True),
        [
            "spec.model.customObjects.anchor_free: not allowed (allowed: classes, conf, iou, max_det, multi_label, "
            "resize_resolution)"
        ],
        id="unknown-parameter",
    ),
    pytest.param(
        at("spec.model.metadata.f1", 0.5),
        ["spec.model.metadata.f1: 0.5 is below promotion.minimum 0.8: the rollout would be refused"],
        id="promotion-minimum",
    ),
    pytest.param(
        serving(volumes=[{"name": "model", "emptyDir": {}}]),
        ["spec.serving.volumes[0].name: 'model' is the operator's own volume; choose another name"],
        id="reserved-volume",
    ),
    pytest.param(
        serving(volumeMounts=[{"name": "models", "mountPath": "/models"}]),
        ["spec.serving.volumeMounts[0].name: no volume 'models' in spec.serving.volumes"],
        id="dangling-mount",
    ),
    pytest.param(
        serving(env=[{"name": "POD_IP", "value": "0.0.0.0"}]),
        ["spec.serving.env[0].name: POD_IP is set by the operator"],
        id="reserved-env",
    ),
]


@pytest.mark.parametrize(("edit", "messages"), DEPLOYMENT_CASES)
def test_an_invalid_deployment_is_refused_with_the_projects_message(
    shared: Kubectl, edit: Edit, messages: list[str]
) -> None:
    body = deployment_body("candidate")
    edit(body)
    output = refused(shared, body)
    assert 'admission webhook "validate-modeldeployment.overseer.dev" denied the request' in output
    for message in messages:
        assert message in output, output
    assert "Traceback" not in output
    assert shared.run("get", "modeldeployment", "candidate", check=False).returncode != 0


def new_version(body: dict[str, Any], **customize: Edit) -> dict[str, Any]:
    """`body` with version 3 appended (a copy of version 2)."""
    version = copy.deepcopy(body["spec"]["versions"][-1])
    version["version"] = 3
    version["description"] = "the next model's parameters"
    body["spec"]["versions"].append(version)
    return body


def v3(edit: Edit) -> Edit:
    def change(body: dict[str, Any]) -> None:
        new_version(body)
        edit(body["spec"]["versions"][2])

    return change


def in_v3_params(edit: Callable[[dict[str, Any]], None]) -> Edit:
    return v3(lambda version: edit(version["customObjects"]))


def rename_in_v3(params: dict[str, Any]) -> None:
    params["properties"]["confidence"] = params["properties"].pop("conf")
    params["required"] = ["confidence"]


def require_new_parameter(params: dict[str, Any]) -> None:
    params["properties"]["min_box_area"] = {"type": "integer", "minimum": 0}
    params["required"] = ["conf", "min_box_area"]


SCHEMA_UPDATES = [
    pytest.param(
        in_v3_params(rename_in_v3),
        [
            "spec.versions[2].customObjects.conf: PROPERTY_RENAMED",
            "(version 3 is not BACKWARD compatible with version 2)",
        ],
        id="case2-rename-in-a-new-version",
    ),
    pytest.param(
        in_v3_params(require_new_parameter),
        [
            "spec.versions[2].customObjects.min_box_area: REQUIRED_PROPERTY_ADDED: new required property without a "
            "default"
        ],
        id="case1-new-required-parameter-without-default",
    ),
    pytest.param(
        v3(lambda version: version["labels"]["properties"]["stage"].update(enum=["staging", "production"])),
        ["spec.versions[2].labels.stage: ENUM_NARROWED"],
        id="enum-narrowed",
    ),
    pytest.param(
        in_v3_params(lambda params: params["properties"]["max_det"].update(minimum=10)),
        ["spec.versions[2].customObjects.max_det: MINIMUM_INCREASED: minimum raised from 1 to 10"],
        id="minimum-raised",
    ),
    pytest.param(
        at("spec.versions.0.customObjects.properties.conf.maximum", 0.9),
        [
            "spec.versions[0].customObjects: VERSION_MODIFIED: registered version 1 is immutable; "
            "add the change as version 3 instead"
        ],
        id="registered-version-modified",
    ),
    pytest.param(
        lambda body: body["spec"]["versions"].pop(),
        [
            "spec.versions: VERSION_REMOVED: registered version 2 was removed",
            "it is in use by ModelDeployment cat-recognition",
        ],
        id="registered-version-removed-in-use",
    ),
]


@pytest.mark.parametrize(("edit", "messages"), SCHEMA_UPDATES)
def test_an_invalid_schema_change_is_refused_naming_the_breaking_change(
    shared: Kubectl, edit: Edit, messages: list[str]
) -> None:
    body = schema_body()  # version 2 is in use by the shared namespace's deployment
    edit(body)
    output = refused(shared, body)
    assert 'admission webhook "validate-modelschema.overseer.dev" denied the request' in output
    for message in messages:
        assert message in output, output
    stored = shared.json("get", "modelschema", "object-detector")
    assert [v["version"] for v in stored["spec"]["versions"]] == [1, 2]  # nothing half-applied


def bad_section(section: dict[str, Any]) -> Edit:
    return at("spec.versions.1.customObjects", section)


SCHEMA_CREATES = [
    pytest.param(
        bad_section({"type": "object", "properties": {"conf": {"type": "float"}}}),
        ["spec.versions[1].customObjects: not a valid JSON Schema", "'float' is not a JSON type"],
        id="not-a-json-type",
    ),
    pytest.param(
        bad_section({"type": "object", "properties": {"owner": {"type": "string", "pattern": "(["}}}),
        ["spec.versions[1].customObjects: not a valid JSON Schema", "is not a valid regular expression"],
        id="bad-regex",
    ),
    pytest.param(
        bad_section({"type": "array"}),
        ["spec.versions[1].customObjects: must describe an object (type: object), found type 'array'"],
        id="not-an-object",
    ),
    pytest.param(
        bad_section({"type": "object", "properties": {"iou": {"type": "number", "maximum": 1, "default": 2}}}),
        ["spec.versions[1].customObjects: default of iou is invalid"],
        id="invalid-default",
    ),
    pytest.param(
        bad_section({"type": "object", "properties": {"conf": {"$ref": "#/$defs/missing"}}}),
        ["spec.versions[1].customObjects: not a valid JSON Schema"],
        id="unresolvable-ref",
    ),
    pytest.param(
        bad_section(
            {"type": "object", "$defs": {"a": {"$ref": "#/$defs/a"}}, "properties": {"conf": {"$ref": "#/$defs/a"}}}
        ),
        ["spec.versions[1].customObjects: not a valid JSON Schema", "the references loop back"],
        id="hostile-recursive-ref",
    ),
    pytest.param(
        bad_section({"type": "object", "properties": {"conf": {"$ref": "http://169.254.169.254/latest/meta-data"}}}),
        ["only references inside the section are resolved", "nothing is ever fet"],
        id="hostile-remote-ref",
    ),
]


@pytest.mark.parametrize(("edit", "messages"), SCHEMA_CREATES)
def test_a_schema_that_is_not_valid_is_refused(shared: Kubectl, edit: Edit, messages: list[str]) -> None:
    body = schema_body()
    body["metadata"]["name"] = "candidate"
    edit(body)
    output = refused(shared, body)
    assert 'admission webhook "validate-modelschema.overseer.dev" denied the request' in output
    for message in messages:
        assert message in output, output


def test_a_denial_is_a_4xx_answer(shared: Kubectl) -> None:
    body = deployment_body("candidate")
    rename_conf(body)
    result = shared.run("create", "-v=6", "-f", "-", stdin=manifest(body), check=False)
    assert result.returncode != 0
    assert "422 Unprocessable Entity" in result.stderr, result.stderr


def test_a_pathological_pattern_cannot_hang_the_webhook(shared: Kubectl) -> None:
    """`^(a+)+$` takes minutes on a backtracking engine for 'aaa...a!'; patterns run on RE2 here."""
    schema = schema_body()
    schema["metadata"]["name"] = "catastrophic"
    schema["spec"]["versions"] = schema["spec"]["versions"][:1]
    schema["spec"]["versions"][0]["labels"]["properties"]["owner"]["pattern"] = "^(a+)+$"
    applied(shared, schema)
    body = deployment_body("candidate")
    body["spec"]["schemaRef"] = {"name": "catastrophic", "version": 1}
    del body["spec"]["model"]["customObjects"]["classes"]
    body["spec"]["model"]["labels"]["owner"] = "a" * 5000 + "!"
    output = refused(shared, body)
    assert "spec.model.labels.owner: expected a string matching '^(a+)+$'" in output, output
    shared.run("delete", "modelschema", "catastrophic")


def test_a_valid_deployment_is_admitted_and_defaulted(contract: Kubectl) -> None:
    output = applied(contract, deployment_body())
    assert "Warning" not in output
    stored = contract.json("get", "modeldeployment", "cat-recognition")
    assert stored["spec"]["model"]["customObjects"] == {
        "resize_resolution": 640, "conf": 0.25, "classes": ["cat"], "iou": 0.45, "max_det": 300, "multi_label": False,
    }  # fmt: skip


def test_warnings_are_printed_by_kubectl(contract: Kubectl) -> None:
    schema = schema_body()
    schema["spec"]["versions"][0]["deprecated"] = True
    applied(contract, schema)
    body = deployment_body()
    body["spec"]["schemaRef"]["version"] = 1
    del body["spec"]["model"]["customObjects"]["classes"]  # version 1 has no class filter
    output = applied(contract, body)
    assert "Warning: spec.schemaRef.version: ModelSchema 'object-detector' version 1 is deprecated" in output
    assert "Warning: spec.schemaRef.version: ModelSchema 'object-detector' has a newer version 2" in output

    body["spec"]["model"]["version"] = "20240202"  # new version, same digest: the pods would not notice
    output = applied(contract, body)
    assert "Warning: spec.model.digest: unchanged while spec.model.version changed" in output


def test_deprecating_a_version_in_use_warns_and_deleting_the_schema_is_refused(contract: Kubectl) -> None:
    applied(contract, deployment_body())
    schema = schema_body()
    schema["spec"]["versions"][1]["deprecated"] = True
    output = applied(contract, schema)
    assert "Warning: version 2 is now deprecated and still used by ModelDeployment cat-recognition" in output
    result = contract.run("delete", "modelschema", "object-detector", check=False)
    assert result.returncode != 0
    assert (
        "ModelSchema 'object-detector' is in use by ModelDeployment cat-recognition (version 2): "
        "delete them or point them at another schema first"
    ) in result.stderr
    contract.run("delete", "modeldeployment", "cat-recognition")
    contract.run("delete", "modelschema", "object-detector")


def test_server_side_dry_run_has_no_side_effects(contract: Kubectl) -> None:
    body = deployment_body()
    result = contract.run("apply", "--dry-run=server", "-o", "yaml", "-f", "-", stdin=manifest(body))
    answered = yaml.safe_load(result.stdout)
    assert answered["spec"]["model"]["customObjects"]["iou"] == 0.45  # defaulted, as a real create would be
    bad = copy.deepcopy(body)
    rename_conf(bad)
    assert "'confidence' is set instead" in refused(contract, bad, "--dry-run=server")
    assert contract.run("get", "modeldeployment", "cat-recognition", check=False).returncode != 0
    assert (
        contract.json("get", "configmaps,deployments,secrets,services", "-l", "overseer.dev/deployment")["items"] == []
    )


def test_deleting_a_namespace_with_both_kinds_completes(operator: Operator, kubectl_admin: Kubectl) -> None:
    namespace = "t-ns-delete"
    kubectl_admin.run("create", "namespace", namespace)
    scoped = kubectl_admin.in_namespace(namespace)
    applied(scoped, schema_body())
    applied(scoped, deployment_body())
    wait_for(lambda: scoped.run("get", "deployment", "cat-recognition", check=False).returncode == 0, 60,
             "the operator to create the Deployment")  # fmt: skip
    kubectl_admin.run("delete", "namespace", namespace, "--wait=false")
    wait_for(
        lambda: kubectl_admin.run("get", "namespace", namespace, check=False).returncode != 0,
        120,
        "the namespace to be gone",
    )


def test_with_the_operator_stopped_only_overseer_objects_are_refused(operator: Operator, contract: Kubectl) -> None:
    operator.stop()
    try:
        contract.run("create", "configmap", "unrelated", "--from-literal=a=b")  # not ours: applies
        contract.apply(manifest({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                 "stringData": {"k": "v"}}))  # fmt: skip
        output = refused(contract, deployment_body())
        assert 'failed calling webhook "default-modeldeployment.overseer.dev"' in output
        assert "connection refused" in output
    finally:
        operator.start()
    applied(contract, deployment_body())  # and back in business


def test_admission_decisions_are_counted(operator: Operator, contract: Kubectl) -> None:
    bad = deployment_body()
    rename_conf(bad)
    refused(contract, bad)
    applied(contract, deployment_body())
    text = operator.metrics()
    lines = [line for line in text.splitlines() if line.startswith("overseer_admission_requests_total{")]
    assert any('kind="ModelDeployment"' in line and 'result="denied"' in line and 'operation="CREATE"' in line
               for line in lines), lines  # fmt: skip
    assert any('webhook="default-modeldeployment"' in line and 'result="allowed"' in line for line in lines), lines
    assert "overseer_admission_duration_seconds_bucket{" in text
    assert "overseer_reconciles_total{" in text
