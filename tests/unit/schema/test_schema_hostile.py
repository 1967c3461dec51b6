"""Hostile schemas through the three entry points: `overseer validate`, `overseer schema diff` and the
SDK. Whatever a ModelSchema says, checking it never crashes, never hangs and never opens a connection
or a file: each case asserts the exit code and the message a user sees. Timing is measured in
benchmarks/bench_schema_worst.py; here a generous deadline only proves that a check ends.
"""

from __future__ import annotations

import copy
import json
import select
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from overseer.schema import check_compatibility, check_history, validate_model_config
from overseer.schema.limits import (
    MAX_COMPARE_STEPS,
    MAX_CONFIG_DEPTH,
    MAX_CONFIG_VALUES,
    MAX_SCHEMA_DEPTH,
    MAX_SCHEMA_VALUES,
    MAX_VALIDATION_STEPS,
)
from overseer.sdk import ModelConfigError, check_model_config
from schema_testing import CliResult

Run = Callable[..., CliResult]
DIGEST = "sha256:" + "ab" * 32
OBJECT = {"type": "object"}
DEADLINE_S = 10.0  # far above the benchmark's figures; only proves that the check ends


def schema_body(*custom_objects: Any, mode: str = "BACKWARD") -> dict[str, Any]:
    versions = [{"version": n + 1, "customObjects": c} for n, c in enumerate(custom_objects)]
    return {
        "apiVersion": "overseer.dev/v1alpha1",
        "kind": "ModelSchema",
        "metadata": {"name": "hostile", "namespace": "ml"},
        "spec": {"compatibility": mode, "versions": versions},
    }


def deployment_body(custom: Any, version: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "overseer.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "cat", "namespace": "ml"},
        "spec": {
            "schemaRef": {"name": "hostile", "version": version},
            "model": {
                "name": "cat",
                "version": "1",
                "uri": "file:///models/cat.pt",
                "digest": DIGEST,
                "customObjects": custom,
            },
        },
    }


def write(tmp_path: Path, name: str, *bodies: Any) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(bodies, sort_keys=False), encoding="utf-8")
    return str(path)


# --- recursive references, of every shape --------------------------------------------------------------

NODE_WITH_SIBLINGS = {
    "type": "object",
    "properties": {"tree": {"$ref": "#/$defs/node", "description": "root"}},
    "$defs": {
        "node": {
            "type": "object",
            "properties": {"v": {"type": "integer", "default": 1}, "kid": {"$ref": "#/$defs/node", "description": "x"}},
        }
    },
}
ROOT_CHILD = {"type": "object", "properties": {"child": {"$ref": "#", "description": "x"}, "n": {"type": "integer"}}}
ANCHOR_LOOP = {
    "type": "object",
    "properties": {"a": {"$ref": "#node"}},
    "$defs": {
        "n": {"$anchor": "node", "type": "object", "properties": {"next": {"$ref": "#node"}, "n": {"type": "integer"}}}
    },
}
MUTUAL = {
    "type": "object",
    "properties": {"a": {"$ref": "#/$defs/a"}},
    "$defs": {
        "a": {"type": "object", "properties": {"b": {"$ref": "#/$defs/b"}, "n": {"type": "integer"}}},
        "b": {"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}},
    },
}
ARRAY_LOOP = {
    "type": "object",
    "properties": {"list": {"$ref": "#/$defs/l"}},
    "$defs": {"l": {"type": "array", "items": {"anyOf": [{"type": "integer"}, {"$ref": "#/$defs/l"}]}}},
}
ID_SCOPED = {
    "$id": "https://example.test/root",
    "type": "object",
    "properties": {"p": {"$ref": "item"}},
    "$defs": {
        "item": {"$id": "item", "type": "object", "properties": {"again": {"$ref": "item"}, "n": {"type": "integer"}}}
    },
}


def recursive_union(members: int) -> dict[str, Any]:
    """A type that may be one of several types, each referring back to the union."""
    defs: dict[str, Any] = {
        f"t{i}": {
            "type": "object",
            "required": [f"k{i}"],
            "properties": {f"k{i}": {"type": "integer"}, "next": {"$ref": "#/$defs/u"}},
        }
        for i in range(members)
    }
    defs["u"] = {"oneOf": [{"$ref": f"#/$defs/t{i}"} for i in range(members)]}
    return {"type": "object", "properties": {"root": {"$ref": "#/$defs/u"}}, "$defs": defs}


def circular_graph(schemas: int = 12, properties: int = 5) -> dict[str, Any]:
    defs = {
        f"s{i}": {
            "type": "object",
            "properties": {f"p{j}": {"$ref": f"#/$defs/s{(i + j + 1) % schemas}"} for j in range(properties)},
        }
        for i in range(schemas)
    }
    return {"type": "object", "properties": {"root": {"$ref": "#/$defs/s0"}}, "$defs": defs}


@pytest.mark.parametrize(
    ("schema", "config", "expected"),
    [
        (NODE_WITH_SIBLINGS, {"tree": {"kid": {"kid": {"v": "x"}}}}, "customObjects.tree.kid.kid.v: expected integer"),
        (ROOT_CHILD, {"child": {"child": {"n": "x"}}}, "customObjects.child.child.n: expected integer"),
        (ANCHOR_LOOP, {"a": {"next": {"n": "x"}}}, "customObjects.a.next.n: expected integer"),
        (MUTUAL, {"a": {"b": {"a": {"n": "x"}}}}, "customObjects.a.b.a.n: expected integer"),
        (ARRAY_LOOP, {"list": [1, [2, ["x"]]]}, "customObjects.list[1][1][0]: expected integer or array of"),
        (ID_SCOPED, {"p": {"again": {"n": "x"}}}, "customObjects.p.again.n: expected integer"),
        (recursive_union(12), {"root": {"k0": 1, "next": {"k1": "x"}}}, "customObjects.root: expected"),
    ],
    ids=["siblings", "root-child", "anchor", "mutual", "array", "id-scoped", "union-12"],
)
def test_recursive_references_through_the_sdk_validate_and_diff(
    schema: dict[str, Any], config: dict[str, Any], expected: str, run_cli: Run, tmp_path: Path
) -> None:
    body = schema_body(schema)
    with pytest.raises(ModelConfigError) as raised:
        check_model_config(body, custom_objects=config)
    assert expected in str(raised.value)

    path = write(tmp_path, "all.yaml", body, deployment_body(config))
    result = run_cli("validate", path)
    assert result.code == 1, result.err
    assert f"spec.model.{expected}" in result.out
    assert "internal error" not in result.err

    changed = copy.deepcopy(schema)
    changed.setdefault("$defs", {})["unused"] = {"type": "string"}
    old, new = (
        write(tmp_path, "old.yaml", schema_body(schema)),
        write(tmp_path, "new.yaml", schema_body(schema, changed)),
    )
    diff = run_cli("schema", "diff", old, new)
    assert diff.code == 0, diff.out + diff.err
    assert "hostile version 2 is BACKWARD compatible with version 1" in diff.out


def test_recursive_union_of_twelve_members_is_compared_under_every_mode() -> None:
    old = recursive_union(12)
    new = copy.deepcopy(old)
    new["$defs"]["t3"]["properties"]["k3"] = {"type": "string"}
    started = time.monotonic()
    assert check_compatibility({"customObjects": old}, {"customObjects": new}, "NONE").compatible
    full = check_compatibility({"customObjects": old}, {"customObjects": new}, "FULL")
    assert time.monotonic() - started < DEADLINE_S
    # Every alternative may hold a t3 somewhere down its `next` chain: each one breaks, both ways.
    assert {(c.code, c.direction) for c in full.changes} == {
        ("BRANCH_REMOVED", "BACKWARD"),
        ("BRANCH_ADDED", "FORWARD"),
    }
    assert len(full.changes) == 24


def test_circular_graph_reports_each_change_once_at_its_shortest_path() -> None:
    old = circular_graph()
    new = copy.deepcopy(old)
    new["$defs"]["s5"]["additionalProperties"] = False
    report = check_compatibility({"customObjects": old}, {"customObjects": new}, "FULL")
    assert [(c.code, c.path) for c in report.changes] == [("ADDITIONAL_PROPERTIES_NARROWED", "customObjects.root.p4.*")]


def test_comparison_past_its_budget_is_one_clear_change_not_a_hang() -> None:
    old = recursive_union(200)  # 40,000 pairs of alternatives to try
    new = copy.deepcopy(old)
    new["$defs"]["t199"]["properties"]["k199"] = {"type": "string"}
    started = time.monotonic()
    report = check_compatibility({"customObjects": old}, {"customObjects": new}, "FULL")
    assert time.monotonic() - started < DEADLINE_S
    assert [(c.code, c.path) for c in report.changes] == [("TOO_COMPLEX_TO_COMPARE", "customObjects")]
    assert f"more than {MAX_COMPARE_STEPS:,} steps" in report.changes[0].message


# --- loops that never descend, remote references, dialects -------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"$ref": "#"}, "the references loop back to top level without descending"),
        (
            {
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/b"}},
                "$defs": {"b": {"allOf": [{"$ref": "#/$defs/b"}]}},
            },
            'at ["$defs"].b.allOf[0]: the references loop back',
        ),
        (
            {"type": "object", "properties": {"a": {"$dynamicRef": "http://127.0.0.1:9/x"}}},
            "$ref 'http://127.0.0.1:9/x' is not in this section",
        ),
        ({"$schema": "http://127.0.0.1:9/meta", "type": "object"}, "at $schema: unsupported 'http://127.0.0.1:9/meta'"),
        (
            {"type": "object", "properties": {"a": {"$ref": "file:///etc/passwd"}}},
            "$ref 'file:///etc/passwd' is not in this section",
        ),
        (
            {"type": "object", "properties": {"owner": {"type": "string", "pattern": "(?<=a)b"}}},
            "'(?<=a)b' is not a valid regular expression: lookahead and lookbehind",
        ),
        (
            {"type": "object", "properties": {"owner": {"type": "string", "pattern": "(a)\\1"}}},
            "backreferences (\\1) are not supported",
        ),
    ],
    ids=["self", "allof-loop", "dynamic-remote", "remote-dialect", "file-ref", "lookbehind", "backreference"],
)
def test_unusable_schemas_are_refused_with_the_reason(
    schema: dict[str, Any], expected: str, run_cli: Run, tmp_path: Path
) -> None:
    with pytest.raises(ModelConfigError) as raised:
        check_model_config(schema_body(schema), custom_objects={})
    assert "schema.customObjects: not a valid JSON Schema: " in str(raised.value)
    assert expected in str(raised.value)

    path = write(tmp_path, "s.yaml", schema_body(schema))
    result = run_cli("validate", path)
    assert result.code == 1
    assert result.lines[0].startswith(f"{path}: ModelSchema/ml/hostile: spec.versions[0].customObjects: ")
    assert expected in result.lines[0]

    old = write(tmp_path, "old.yaml", schema_body(OBJECT))
    new = write(tmp_path, "new.yaml", schema_body(OBJECT, schema))
    diff = run_cli("schema", "diff", old, new)
    assert diff.code == 1
    assert diff.lines[0].startswith("SCHEMA_INVALID customObjects: not a valid JSON Schema: ")
    assert expected in diff.lines[0]


def test_references_resolve_as_the_standard_says() -> None:
    section = {
        "$id": "https://example.test/root",
        "type": "object",
        "properties": {
            "anchor": {"$ref": "#num"},
            "percent": {"$ref": "#/$defs/percent%25field"},
            "tilde": {"$ref": "#/$defs/a~1b~0c"},
            "scoped": {"$id": "sub/", "$ref": "#/$defs/s", "$defs": {"s": {"type": "boolean"}}},
            "data": {"enum": [{"$ref": "http://127.0.0.1:9/"}]},
        },
        "$defs": {
            "n": {"$anchor": "num", "type": "integer"},
            "percent%field": {"type": "integer"},
            "a/b~c": {"type": "integer"},
            "s": {"type": "string"},
        },
    }
    config = {"anchor": "x", "percent": "x", "tilde": "x", "scoped": "x", "data": {"$ref": "http://127.0.0.1:9/"}}
    result = validate_model_config({"customObjects": section}, {}, {}, config)
    assert [str(p) for p in result.problems] == [
        "customObjects.anchor: expected integer, found string 'x'",
        "customObjects.percent: expected integer, found string 'x'",
        "customObjects.scoped: expected boolean, found string 'x'",  # against sub/'s own $defs, not the root's
        "customObjects.tilde: expected integer, found string 'x'",
    ]


# --- bounded time: regular expressions, nested alternatives, sizes -------------------------------------------


def test_catastrophic_pattern_is_checked_in_linear_time(run_cli: Run, tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"owner": {"type": "string", "pattern": "^(a+)+$"}}}
    evil = "a" * 32 + "!"
    started = time.monotonic()
    with pytest.raises(ModelConfigError) as raised:
        check_model_config(schema_body(schema), custom_objects={"owner": evil})
    assert f"customObjects.owner: expected a string matching '^(a+)+$', found '{evil}'" in str(raised.value)
    path = write(tmp_path, "all.yaml", schema_body(schema), deployment_body({"owner": evil}))
    assert run_cli("validate", path).code == 1
    properties = {
        "type": "object",
        "patternProperties": {"^(a+)+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    result = validate_model_config({"customObjects": properties}, {}, {}, {evil: 1})
    assert [str(p) for p in result.problems] == [
        f'customObjects["{evil}"]: not allowed: the schema declares no such property'
    ]
    assert time.monotonic() - started < DEADLINE_S


def test_ecma_dialect_is_translated_for_re2() -> None:
    cases = {
        r"^\p{Letter}+$": ("été", "1"),
        r"^\u00e9$": ("é", "e"),
        r"^\s$": ("\u00a0", "x"),  # ECMA \s includes no-break space; RE2's does not
        r"^.$": ("x", "\n"),
        r"^[^]$": ("\n", ""),
        r"^\cJ$": ("\n", "J"),
    }
    for pattern, (good, bad) in cases.items():
        schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}}
        assert validate_model_config({"customObjects": schema}, {}, {}, {"s": good}).ok, pattern
        assert not validate_model_config({"customObjects": schema}, {}, {}, {"s": bad}).ok, pattern


def nested_alternatives(levels: int) -> dict[str, Any]:
    """2**levels paths through the schema, but only `levels` distinct subschemas."""
    defs: dict[str, Any] = {
        f"n{i}": {"anyOf": [{"$ref": f"#/$defs/n{i + 1}"}, {"$ref": f"#/$defs/n{i + 1}"}]} for i in range(levels)
    }
    defs[f"n{levels}"] = {"type": "string"}
    return {"type": "object", "properties": {"x": {"$ref": "#/$defs/n0"}}, "$defs": defs}


def test_nested_alternatives_cost_their_size_not_their_paths(run_cli: Run, tmp_path: Path) -> None:
    # Each (subschema, value) pair is checked once: 2**15 paths (the most the in-place bound
    # allows), 31 subschemas, an answer rather than the work bound.
    schema = nested_alternatives(15)
    with pytest.raises(ModelConfigError) as raised:
        check_model_config(schema_body(schema), custom_objects={"x": 1})
    assert "customObjects.x: expected a value, found integer 1" in str(raised.value)
    assert check_model_config(schema_body(schema), custom_objects={"x": "a"}).custom_objects == {"x": "a"}
    path = write(tmp_path, "all.yaml", schema_body(schema), deployment_body({"x": 1}))
    result = run_cli("validate", path)
    assert result.code == 1
    assert "spec.model.customObjects.x: expected a value, found integer 1" in result.out


def test_wide_alternatives_over_many_items_stop_at_the_work_bound(run_cli: Run, tmp_path: Path) -> None:
    # 500 alternatives, each failing, for each of 2,000 items: a million distinct checks.
    branches = [{"type": "object", "required": [f"k{i}"]} for i in range(500)]
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"anyOf": branches}}}}
    config = {"items": [{"x": i} for i in range(2_000)]}
    started = time.monotonic()
    with pytest.raises(ModelConfigError) as raised:
        check_model_config(schema_body(schema), custom_objects=config)
    assert (
        f"customObjects: checking this config against the schema took more than {MAX_VALIDATION_STEPS:,} steps"
        in str(raised.value)
    )
    path = write(tmp_path, "all.yaml", schema_body(schema), deployment_body(config))
    result = run_cli("validate", path)
    assert result.code == 1
    assert "spec.model.customObjects: checking this config against the schema took more than" in result.out
    assert time.monotonic() - started < DEADLINE_S


def nested(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = {"type": "object", "properties": {"a": leaf}}
    return leaf


def test_huge_and_deep_documents_are_refused_by_their_size(run_cli: Run, tmp_path: Path) -> None:
    deep_schema = nested(100_000, {"type": "integer"})
    with pytest.raises(ModelConfigError, match=f"nested more than {MAX_SCHEMA_DEPTH} levels deep"):
        check_model_config(schema_body(deep_schema), custom_objects={})
    wide = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(MAX_SCHEMA_VALUES // 2)}}
    with pytest.raises(ModelConfigError, match=f"more than {MAX_SCHEMA_VALUES:,} values"):
        check_model_config(schema_body(wide), custom_objects={})
    deep_config: Any = 1
    for _ in range(100_000):
        deep_config = {"a": deep_config}
    with pytest.raises(
        ModelConfigError, match=f"customObjects: too large to check: nested more than {MAX_CONFIG_DEPTH}"
    ):
        check_model_config(schema_body(OBJECT), custom_objects=deep_config)
    with pytest.raises(ModelConfigError, match=f"customObjects: too large to check: more than {MAX_CONFIG_VALUES:,}"):
        check_model_config(schema_body(OBJECT), custom_objects={"classes": [f"c{i}" for i in range(MAX_CONFIG_VALUES)]})

    path = write(tmp_path, "deep.yaml", schema_body(nested(40, {"type": "integer"})))
    result = run_cli("validate", path)
    assert result.code == 1
    assert "spec.versions[0].customObjects: not a usable JSON Schema: nested more than 64 levels deep" in result.out


def test_many_versions_under_full_transitive_end_with_an_answer() -> None:
    versions = [
        {
            "version": n,
            "customObjects": {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(n)}},
        }
        for n in range(1, 101)
    ]
    started = time.monotonic()
    result = check_history(versions, "FULL_TRANSITIVE")
    assert time.monotonic() - started < DEADLINE_S
    # Every version gets an answer: its comparisons, or one TOO_COMPLEX_TO_COMPARE once the work bound is spent.
    assert {r.new_version for r in result.reports} == set(range(2, 101))
    # Each added property of an open model breaks BACKWARD; nothing else does.
    assert {p.code for p in result.problems} <= {"PROPERTY_ADDED_TO_OPEN_MODEL", "TOO_COMPLEX_TO_COMPARE"}


# --- nothing is ever fetched or opened ------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.setblocking(False)
    try:
        yield server, f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def test_no_reference_reaches_a_listener_or_opens_a_file(
    listener: tuple[socket.socket, str], run_cli: Run, tmp_path: Path
) -> None:
    server, base = listener
    target = tmp_path / "target.json"
    target.write_text(json.dumps({"type": "integer"}), encoding="utf-8")
    hostile = [
        {"type": "object", "properties": {"a": {"$ref": f"{base}/s.json"}}},
        {"type": "object", "properties": {"a": {"$dynamicRef": f"{base}/s.json#meta"}}},
        {"$schema": f"{base}/meta", "type": "object"},
        {"$id": f"{base}/root.json", "type": "object", "properties": {"a": {"$ref": "other.json"}}},
        {"type": "object", "properties": {"a": {"$ref": target.as_uri()}}},
        {"$id": tmp_path.as_uri() + "/", "type": "object", "properties": {"a": {"$ref": "target.json"}}},
        {"type": "object", "properties": {"a": {"$ref": "target.json"}}},
    ]
    opened: list[str] = []

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and args and str(args[0]).endswith("target.json"):
            opened.append(str(args[0]))
        if event.startswith("socket.") or event == "urllib.Request":
            opened.append(f"{event} {args!r}")

    sys.addaudithook(audit)  # hooks cannot be removed; it only records
    body = schema_body(OBJECT, *hostile, mode="NONE")
    for index, section in enumerate(hostile):
        result = validate_model_config({"customObjects": section}, {}, {}, {"a": "x"})
        assert result.problems[0].path == "schema.customObjects", index
        check_compatibility({"customObjects": OBJECT}, {"customObjects": section}, "FULL")
    check_history(body["spec"]["versions"], "FULL_TRANSITIVE")
    path = write(tmp_path, "s.yaml", body, deployment_body({"a": "x"}, version=2))
    assert run_cli("validate", path).code == 1
    with pytest.raises(ModelConfigError):
        check_model_config(body, custom_objects={"a": "x"})
    readable, _, _ = select.select([server], [], [], 0.2)
    assert readable == [], "a check connected to the listener"
    assert [entry for entry in opened if "target.json" in entry or "connect" in entry] == []
