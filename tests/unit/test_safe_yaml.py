"""The one reader of YAML and JSON text (`overseer.safe_yaml`): what `overseer validate`, the SDK and the
serving pod all rely on. The serving side is tested in tests/unit/serving/test_serving_document.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from overseer.cli import main
from overseer.safe_yaml import YamlSyntaxError, load_one, parse_stream


def test_scalars_are_read_as_kubectl_reads_them() -> None:
    body = load_one("a: 1e-3\nb: 2.5E+2\nc: -1e5\nd: 2024-01-03\ne: 0.5\nf: '1e5'\ng: 1_000\n")
    assert body == {"a": 0.001, "b": 250.0, "c": -100000.0, "d": "2024-01-03", "e": 0.5, "f": "1e5", "g": 1000}
    assert load_one("{a: 1}") == {"a": 1}  # YAML flow style that is not JSON is still YAML


def test_json_is_read_with_json_rules() -> None:
    assert load_one('{"conf": 1e-05, "emoji": "\\ud83d\\ude00", "tab":\t1}') == {
        "conf": 1e-05,
        "emoji": "\U0001f600",
        "tab": 1,
    }
    documents, error = parse_stream('{"kind": "A"}\n\n{"kind":\n "B"}\n')  # concatenated, as kubectl prints
    assert error is None
    assert [(d.line, d.body["kind"]) for d in documents] == [(1, "A"), (3, "B")]


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("a: 1\nb:\n  c: 1\n  c: 2\n", "invalid YAML: line 4, column 3: duplicate key 'c' (first at line 3)", 4),
        ('{"a": 1,\n "a": 2}', "invalid JSON: line 2, column 2: duplicate key 'a' (first at line 1)", 2),
        ('{"a": 1,', "invalid JSON: line 1, column 9: Expecting property name enclosed in double quotes", 1),
        ("[cat, dog", "invalid YAML: line 2, column 1: did not find expected ',' or ']'", 2),
        ('a: "\\ud800"\n', "invalid YAML: line 1, column 7: found invalid Unicode character escape code", 1),
        # text (an SDK caller's str, never decoded bytes) holding a surrogate code point crashed the C reader
        ("a: \ud800\n", "invalid YAML: the text holds a lone surrogate, which is not a character", 1),
        ("[" * 100_000, "JSON nested too deeply", 1),
        ("", "empty: no document", 1),
        ("a: 1\n---\nb: 2\n", "expected one document, found 2", 3),
    ],
)
def test_what_is_refused_says_where(text: str, message: str, line: int) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        load_one(text)
    assert caught.value.message == message
    assert caught.value.line == line


def test_overseer_validate_reads_json_manifests_with_json_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An escaped emoji (a surrogate pair in JSON) and an exponent number in a .json manifest: read as
    YAML, the first was refused (`found invalid Unicode character escape code`) and the second a string."""
    manifest = tmp_path / "schema.json"
    manifest.write_text(
        '{"apiVersion": "overseer.dev/v1alpha1", "kind": "ModelSchema", "metadata": {"name": "s"},'
        ' "spec": {"versions": [{"version": 1, "description": "cat \\ud83d\\ude00",'
        ' "customObjects": {"type": "object", "properties": {"conf": {"type": "number", "default": 1e-3}}}}]}}'
    )
    assert main(["validate", str(manifest)]) == 0, capsys.readouterr()
