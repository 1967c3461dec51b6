"""The CRDs in crds/ on a real kube-apiserver: the OpenAPI and CEL rules refuse what they claim to,
with a message naming the field, and the examples/ pass.

The unit tier checks the generated YAML; only an API server proves that the CEL compiles within its
cost budget and that `kubectl apply` users see the field the rule is about.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from support.cluster import REPO_ROOT, Kubectl

CRDS = ("modelschemas.overseer.dev", "modeldeployments.overseer.dev")
EXAMPLES = REPO_ROOT / "examples"


@pytest.fixture(scope="module")
def crds(kubectl_admin: Kubectl) -> None:
    kubectl_admin.run("apply", "-f", str(REPO_ROOT / "crds"))
    for name in CRDS:
        kubectl_admin.run("wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")


def example(name: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    body["metadata"].pop("namespace", None)  # the test's fresh namespace, not ml-serving
    return body


def schema() -> dict[str, Any]:
    return example("object-detector.modelschema.yaml")


def deployment() -> dict[str, Any]:
    return example("cat-recognition.modeldeployment.yaml")


def refused(kubectl: Kubectl, body: dict[str, Any]) -> str:
    """Apply `body`; it must be refused. Returns the API server's message."""
    result = kubectl.run("apply", "-f", "-", stdin=yaml.safe_dump(body), check=False)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    return result.stderr


def test_the_examples_are_accepted(crds: None, kubectl: Kubectl) -> None:
    for body in (schema(), deployment()):
        kubectl.apply(yaml.safe_dump(body))
    stored = kubectl.json("get", "modelschema", "object-detector")
    assert [v["version"] for v in stored["spec"]["versions"]] == [1, 2]
    stored = kubectl.json("get", "modeldeployment", "cat-recognition")
    assert stored["spec"]["replicas"] == 2


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit of the body at a dotted path (integers index lists)."""

    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return change


def _unsorted(body: dict[str, Any]) -> None:
    body["spec"]["versions"].reverse()


@pytest.mark.parametrize(
    ("make", "change", "field", "reason"),
    [
        pytest.param(
            schema, _unsorted, "spec.versions", "versions must be listed in strictly increasing order", id="unsorted"
        ),
        pytest.param(
            schema, _set("spec.versions.1.version", 1), "spec.versions[1]", "Duplicate value", id="duplicate-version"
        ),
        pytest.param(
            schema, _set("spec.compatibility", "SOMETIMES"), "spec.compatibility", "Unsupported value", id="mode"
        ),
        pytest.param(
            deployment,
            _set("spec.model.digest", "sha256:ABC123"),
            "spec.model.digest",
            "^sha256:[0-9a-f]{64}$",
            id="digest",
        ),
        pytest.param(
            deployment,
            _set("spec.model.uri", "ftp://models/cat.pt"),
            "spec.model.uri",
            "should match",
            id="uri-scheme",
        ),
        pytest.param(
            deployment, _set("spec.replicas", 0), "spec.replicas", "greater than or equal to 1", id="replicas-0"
        ),
        pytest.param(
            deployment,
            _set("spec.promotion", {"metric": "f1"}),
            "spec.promotion",
            "a promotion gate needs minimum, notWorseThanCurrent: true, or both",
            id="gate-without-threshold",
        ),
        pytest.param(
            deployment,
            _set("spec.promotion", {"metric": "f1", "notWorseThanCurrent": False}),
            "spec.promotion",
            "a promotion gate needs minimum, notWorseThanCurrent: true, or both",
            id="gate-not-worse-false",
        ),
    ],
)
def test_the_api_server_refuses_with_the_field(
    crds: None,
    kubectl: Kubectl,
    make: Callable[[], dict[str, Any]],
    change: Callable[[dict[str, Any]], None],
    field: str,
    reason: str,
) -> None:
    body = make()
    change(body)
    message = refused(kubectl, body)
    # `... is invalid: <field>: Invalid value: ...`, or one `* <field>: ...` line per error when several.
    assert re.search(rf"(is invalid: |^\* ){re.escape(field)}: ", message, re.MULTILINE), message
    assert reason in message, message
