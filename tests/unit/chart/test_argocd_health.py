"""The Argo CD health checks (examples/argocd/*.lua) under Lua 5.1 - the language of Argo CD's
gopher-lua - on the statuses the operator writes: what Argo CD would show for each. The cluster
tier runs the same Lua on live objects (tests/cluster/chart/test_chart_install.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from support.argocd import ARGOCD, REPO_ROOT, health, modeldeployment_health


def condition(type_: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def mdep(
    generation: int = 3, observed: int | None = 3, conditions: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "overseer.dev/v1alpha1", "kind": "ModelDeployment",
                           "metadata": {"name": "cat", "generation": generation}}  # fmt: skip
    if conditions is not None:
        obj["status"] = {"conditions": conditions}
        if observed is not None:
            obj["status"]["observedGeneration"] = observed
    return obj


SERVING = [condition("Ready", "True", "Serving", "2/2 pods serve cat_recognition 20240103"),
           condition("Progressing", "False", "Complete"), condition("Degraded", "False", "AsExpected")]  # fmt: skip


def degraded_for(generation: int, reason: str, message: str) -> dict[str, Any]:
    return {**condition("Degraded", "True", reason, message), "observedGeneration": generation}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (mdep(conditions=None), ("Progressing", "Waiting for the schema-overseer operator to report a status")),
        (mdep(conditions=SERVING), ("Healthy", "Serving: 2/2 pods serve cat_recognition 20240103")),
        (mdep(generation=4, observed=3, conditions=SERVING),
         ("Progressing", "Waiting for the operator to observe generation 4")),
        (mdep(conditions=[condition("Ready", "False", "ModelChangePending", "1/2 pods serve 20240110"),
                          condition("Progressing", "True", "HotSwap", "swapping pod cat-1"),
                          condition("Degraded", "False", "AsExpected")]),
         ("Progressing", "HotSwap: swapping pod cat-1")),
        (mdep(conditions=[condition("Ready", "False", "InvalidConfig", "spec.model.customObjects.conf: missing"),
                          condition("Progressing", "False", "InvalidConfig"),
                          condition("Degraded", "True", "InvalidConfig", "spec.model.customObjects.conf: missing")]),
         ("Degraded", "InvalidConfig: spec.model.customObjects.conf: missing")),
        (mdep(conditions=[condition("Ready", "False", "PodsNotReady", "0/2 pods ready"),
                          condition("Degraded", "False", "AsExpected")]),
         ("Progressing", "PodsNotReady: 0/2 pods ready")),
        (mdep(generation=4, observed=3, conditions=[*SERVING[:2], degraded_for(4, "InternalError", "retrying")]),
         ("Degraded", "InternalError: retrying")),
        (mdep(generation=4, observed=3, conditions=[*SERVING[:2], degraded_for(3, "LoadFailed", "x")]),
         ("Progressing", "Waiting for the operator to observe generation 4")),
    ],
    ids=["no-status", "serving", "stale-generation", "hot-swap", "invalid-config", "pods-starting",
         "internal-error-on-a-new-generation", "older-degraded-on-a-new-generation"],
)
def test_modeldeployment_health(obj: dict[str, Any], expected: tuple[str, str]) -> None:
    assert tuple(modeldeployment_health(obj).values()) == expected


def test_modelschema_health() -> None:
    script = (ARGOCD / "modelschema-health.lua").read_text()
    valid = {"status": {"conditions": [condition("Ready", "True", "Valid")]}}
    invalid = {"status": {"conditions": [condition("Ready", "False", "Invalid", "versions[0].labels: not a schema")]}}
    assert health(script, valid) == {"status": "Healthy", "message": "Valid"}
    assert health(script, invalid) == {"status": "Degraded", "message": "Invalid: versions[0].labels: not a schema"}
    assert health(script, {})["status"] == "Progressing"


def test_the_argocd_patch_and_the_chart_readme_carry_the_same_lua() -> None:
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())["data"]
    readme = (REPO_ROOT / "charts" / "schema-overseer" / "README.md").read_text()
    for kind, file in (("ModelDeployment", "modeldeployment-health.lua"), ("ModelSchema", "modelschema-health.lua")):
        lua = (ARGOCD / file).read_text()
        assert patch[f"resource.customizations.health.overseer.dev_{kind}"] == lua
        indented = "".join(f"    {line}" if line.strip() else line for line in lua.splitlines(True))
        assert indented in readme, f"charts/schema-overseer/README.md: the {kind} health check differs from {file}"
