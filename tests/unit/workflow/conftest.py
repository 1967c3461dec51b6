"""Fixtures of the workflow tests: the CLI run in-process, an environment with no cluster configured."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def no_cluster_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No KUBECONFIG, an empty HOME, not in a pod: what a CI runner without cluster access has."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return home
