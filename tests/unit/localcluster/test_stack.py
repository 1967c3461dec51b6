"""The stack runner never deletes a folder it did not make."""

from __future__ import annotations

from pathlib import Path

import pytest
from localcluster.stack import StackError, start_stack


def test_up_refuses_a_non_empty_folder_that_is_not_a_stack(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StackError, match=r"holds no state\.json"):
        start_stack(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
