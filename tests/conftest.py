"""Tier markers come from the folder a test lives in: tests/unit, tests/cluster, tests/e2e."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["support.cluster", "support.cli"]

_TESTS_DIR = Path(__file__).parent
_TIERS = ("unit", "cluster", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).relative_to(_TESTS_DIR).parts[0]
        if tier in _TIERS:
            item.add_marker(getattr(pytest.mark, tier))
