"""Helpers shared by the workflow tests (imported by name: the folder is on sys.path)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
SCHEMA_FILE = EXAMPLES / "object-detector.modelschema.yaml"
DEPLOYMENT_FILE = EXAMPLES / "cat-recognition.modeldeployment.yaml"


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


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
