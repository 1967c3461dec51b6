"""Shared by the workflow tests: where the example lives, and reading the .env files it writes."""

from __future__ import annotations

from pathlib import Path

from support.cluster import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "workflow"


def read_env(path: Path) -> dict[str, str]:
    """A KEY=VALUE file as local_s3.py and train.py write them."""
    return dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if line)
