"""Helpers shared by the schema-core tests (imported by name: the folder is on sys.path)."""

from __future__ import annotations

from pathlib import Path

from support.cli import CliResult  # the tests import it from here too

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"

__all__ = ["EXAMPLES", "REPO", "CliResult"]
