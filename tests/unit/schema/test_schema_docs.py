"""docs/schema.md documents every compatibility code users can meet."""

from __future__ import annotations

import re

from overseer.schema.codes import CODES
from schema_testing import REPO


def test_every_code_is_in_the_rules_table() -> None:
    text = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([A-Z][A-Z_]+)`", text))
    assert sorted(set(CODES) - documented) == []
