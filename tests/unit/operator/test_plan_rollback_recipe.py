"""The manual-rollback one-liner of docs/rollout.md, run (jq) against a history the planner wrote:
the JSON patch it makes puts the previous model back exactly, config and schema version included."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from overseer.api.model_document import ModelDocument
from overseer.api.v1alpha1 import ModelDeploymentSpec
from overseer.operator.rollout_state import Swapped, release_of
from rollout_testing import T0, V1, complete, outcome, pods_on, release, step

DOC = Path(__file__).parents[3] / "docs" / "rollout.md"


def recipe_filter() -> str:
    """The jq program of the documented one-liner (between `jq -c '` and `')"`)."""
    match = re.search(r"jq -c '(.*?)'\)\"", DOC.read_text(), re.DOTALL)
    assert match, "the rollback one-liner is missing from docs/rollout.md"
    return match.group(1)


def apply_json_patch(document: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 `replace` (all the recipe uses): the path must exist."""
    for op in ops:
        assert op["op"] == "replace"
        *parents, last = op["path"].lstrip("/").split("/")
        target = document
        for part in parents:
            target = target[part]
        assert last in target, f"replace of a missing path {op['path']}"
        target[last] = op["value"]
    return document


def test_the_documented_rollback_puts_the_previous_model_back_exactly() -> None:
    jq = shutil.which("jq")
    assert jq, "jq is needed to check the documented recipe (Debian package jq)"
    # V1 served everywhere (schema v1), then a model with other labels and parameters (schema v2).
    newer_doc = release("20240215", digit="5", conf=0.6, schema_version=2).document
    newer_doc["model"]["labels"] = {"owner": "ml-team", "stage": "prod"}
    newer = release_of(ModelDocument.model_validate(newer_doc))
    first = step(V1, pods_on(V1, "pod-a"), None, now=T0)
    assert first.status is not None
    history = list(first.status.history)
    rolling = step(newer, pods_on(V1, "pod-a"), complete(V1, "pod-a"), history=history)
    swapped = outcome("pod-a", newer, Swapped(served=newer.key, changed=True))
    done = step(newer, pods_on(newer, "pod-a"), rolling.state, outcomes=[swapped], history=history)
    assert done.status is not None and [h["version"] for h in done.status.history] == ["20240215", "20240101"]
    mdep = {
        "apiVersion": "overseer.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "cats", "namespace": "default"},
        "spec": {"schemaRef": {"name": "object-detector", "version": 2}, "model": newer_doc["model"], "replicas": 1},
        # As the API server hands it back: JSON, datetimes as strings.
        "status": {"history": json.loads(json.dumps(list(done.status.history), default=str))},
    }
    run = subprocess.run(
        [jq, "-c", recipe_filter()], input=json.dumps(mdep), capture_output=True, text=True, timeout=30, check=False
    )
    assert run.returncode == 0, run.stderr
    patched = apply_json_patch(mdep, json.loads(run.stdout))
    assert patched["spec"]["model"] == V1.document["model"]  # no label or parameter of the newer one left
    assert patched["spec"]["schemaRef"] == {"name": "object-detector", "version": 1}
    ModelDeploymentSpec.model_validate(patched["spec"])  # nothing spec.model does not take
