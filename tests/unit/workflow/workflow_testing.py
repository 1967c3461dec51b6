"""Helpers shared by the workflow tests (imported by name: the folder is on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from support.cli import CliResult  # the tests import it from here too

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
SCHEMA_FILE = EXAMPLES / "object-detector.modelschema.yaml"
DEPLOYMENT_FILE = EXAMPLES / "cat-recognition.modeldeployment.yaml"

__all__ = ["DEPLOYMENT_FILE", "EXAMPLES", "REPO", "SCHEMA_FILE", "CliResult", "kubeconfig"]


def kubeconfig(path: Path, server: str, *, context: str = "ci", namespace: str | None = None, **user: Any) -> Path:
    """A kubeconfig with one context (token or client certificate in `user`); JSON is valid YAML."""
    context_body: dict[str, Any] = {"cluster": "c", "user": "u"}
    if namespace is not None:
        context_body["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": context,
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": user or {"token": "t"}}],
        "contexts": [{"name": context, "context": context_body}],
    }
    path.write_text(json.dumps(config), encoding="utf-8")
    return path
