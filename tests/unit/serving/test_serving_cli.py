"""`overseer serve` and `python -m overseer_serving`: one command, owned by the serving package.

The layering: `overseer.cli` reaches the serving package through one lazy import (in `_serve`) and
the serving package imports nothing of `overseer.cli` (nor of `checks`/`sdk` above the light core).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from overseer import cli
from overseer_serving import command

REPO = Path(__file__).resolve().parents[3]
SERVING = REPO / "serving" / "overseer_serving"
FLAGS = ["--model-file", "m.json", "--token-file", "t", "--host", "10.0.0.1", "--port", "3001"]


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """(module, at module level?) for every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, id(node) in top))
    return found


def test_the_serving_package_imports_only_the_light_core_of_overseer() -> None:
    above_the_core = ("overseer.cli", "overseer.checks", "overseer.sdk", "overseer.operator")
    offenders = [
        f"{path.name}: {module}"
        for path in sorted(SERVING.glob("*.py"))
        for module, _ in imports_of(path)
        if module.startswith(above_the_core)
    ]
    assert offenders == []


def test_overseer_cli_reaches_the_serving_package_by_one_lazy_import() -> None:
    serving_imports = [(m, top) for m, top in imports_of(REPO / "operator" / "overseer" / "cli.py") if "serving" in m]
    assert serving_imports == [("overseer_serving.command", False)]
    code = "import sys, overseer.cli; print(sorted(m for m in sys.modules if m.startswith('overseer_serving')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_both_entry_points_hand_the_same_flags_to_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(command, "serve", lambda *args: calls.append(args) or 0)
    assert command.main(FLAGS) == 0  # what `python -m overseer_serving` runs
    assert cli.main(["serve", *FLAGS]) == 0
    assert cli.main(["serve", "--port=3001", "--host", "10.0.0.1", "--token-file=t", "--model-file", "m.json"]) == 0
    assert calls == [("m.json", "t", "10.0.0.1", 3001)] * 3


def test_overseer_serve_hands_every_argument_to_the_serving_package(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    fake = types.SimpleNamespace(main=lambda argv: seen.append(list(argv)) or 7)
    monkeypatch.setitem(sys.modules, "overseer_serving.command", fake)
    assert cli.main(["serve", "--help", "--anything", "x"]) == 7
    assert seen == [["--help", "--anything", "x"]]


def test_serve_without_the_serving_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "overseer_serving.command", None)  # import now raises ImportError
    assert cli.main(["serve", "--port", "3000"]) == 2
    hint = "overseer serve needs the serving extra: pip install 'schema-overseer[serving]'"
    assert capsys.readouterr().err.strip() == hint


def test_serve_without_the_serving_dependencies_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "botocore" else real(name, *a))
    assert command.main(["--model-file", "model.json"]) == 2
    assert capsys.readouterr().err.strip() == (
        "overseer serve: error: serving needs the 'serving' extra (missing: botocore); "
        "install it with: pip install 'schema-overseer[serving]'"
    )


def both(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of `python -m overseer_serving ARGV` and of `overseer serve ARGV`."""
    answers = []
    for run in (lambda: command.main(argv), lambda: cli.main(["serve", *argv])):
        code = run()
        out, err = capsys.readouterr()
        answers.append((code, out, err))
    return answers


def test_help_and_usage_errors_are_the_same_through_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    via_module, via_cli = both(["--help"], capsys)
    assert via_module == via_cli
    assert via_cli[0] == 0
    for flag in ("--model-file", "--token-file", "--host", "--port"):
        assert flag in via_cli[1]
    via_module, via_cli = both(["--model-fil", "m.json", "--bogus"], capsys)
    assert via_module == via_cli
    assert via_cli[0] == 2
    assert via_cli[2].splitlines()[-1] == "overseer serve: error: unrecognized arguments: --bogus"
    via_module, via_cli = both(["--port", "eighty"], capsys)
    assert via_module == via_cli
    assert via_cli[2].splitlines()[-1] == "overseer serve: error: argument --port: invalid int value: 'eighty'"


def test_other_commands_still_refuse_unknown_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", "--bogus", "x.yaml"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "overseer: unrecognized arguments: --bogus"
