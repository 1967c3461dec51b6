"""Bounded work and bounded stack, whatever the input: the deepest inputs the bounds allow, checked in
a worker thread under Python's default recursion limit, and the inputs found to hang, crash or grow
without end beyond the issue's list (unknown keys, lone surrogates, recursive defaults, IRIs,
thousands of problems, a schema changed after it was checked). Each asserts what a user sees.
Timing belongs to benchmarks/bench_schema_worst.py; a generous deadline here only proves an end.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from overseer.schema import check_compatibility, check_history, validate_model_config
from overseer.schema.limits import (
    MAX_CONFIG_DEPTH,
    MAX_CONFIG_VALUES,
    MAX_EVALUATION_DEPTH,
    MAX_HISTORY_VALUES,
    MAX_PROBLEMS,
)
from overseer.sdk import ModelConfigError, check_model_config
from schema_testing import CliResult

Run = Callable[..., CliResult]
DEADLINE_S = 10.0
CALLER_FRAMES = 300
"""Frames a caller may already use (an asyncio loop, a thread pool, Kopf, a test runner)."""


def schema_body(*custom_objects: Any, mode: str = "BACKWARD") -> dict[str, Any]:
    versions = [{"version": n + 1, "customObjects": c} for n, c in enumerate(custom_objects)]
    return {
        "apiVersion": "overseer.dev/v1alpha1",
        "kind": "ModelSchema",
        "metadata": {"name": "bounded", "namespace": "ml"},
        "spec": {"compatibility": mode, "versions": versions},
    }


# --- stack: the deepest inputs, in a worker thread, under the default recursion limit ------------------


def deep_schema(levels: int, wrappers: int) -> dict[str, Any]:
    """`levels` nested objects; on the way to each, `wrappers` allOf around a $ref, and an
    unevaluatedProperties whose annotations are collected through all of them."""
    defs: dict[str, Any] = {}
    for level in range(levels):
        inner: Any = {"$ref": f"#/$defs/o{level + 1}"}
        for _ in range(wrappers):
            inner = {"allOf": [inner]}
        defs[f"o{level}"] = {
            "type": "object",
            "properties": {"a": inner, "n": {"type": "integer"}},
            "unevaluatedProperties": False,
        }
    defs[f"o{levels}"] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    return {"type": "object", "properties": {"a": {"$ref": "#/$defs/o0"}}, "$defs": defs}


def deep_config(levels: int, leaf: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"n": leaf}
    for _ in range(levels):
        config = {"a": config}
    return config


def in_worker_thread(check: Callable[[], Any]) -> Any:
    """Run `check` in a new thread (default stack size) under the default recursion limit of 1,000
    frames, with CALLER_FRAMES already on the stack; re-raise whatever it raised."""
    outcome: dict[str, Any] = {}

    def burrow(frames: int) -> Any:
        return check() if frames == 0 else burrow(frames - 1)

    def run() -> None:
        try:
            outcome["value"] = burrow(CALLER_FRAMES)
        except BaseException as error:
            outcome["error"] = error

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000)
    try:
        worker = threading.Thread(target=run)
        worker.start()
        worker.join(DEADLINE_S)
        assert not worker.is_alive(), "the check did not end"
        assert sys.getrecursionlimit() == 1_000, "a check changed the process-wide recursion limit"
    finally:
        sys.setrecursionlimit(limit)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_the_deepest_config_is_checked_in_a_worker_thread_under_the_default_recursion_limit() -> None:
    levels = MAX_CONFIG_DEPTH - 2  # the section itself and the leaf are levels too
    schema = deep_schema(levels, wrappers=4)  # about six nested subschemas a level: close to the bound
    ok = in_worker_thread(lambda: validate_model_config({"customObjects": schema}, {}, {}, deep_config(levels, 1)))
    assert ok.problems == ()
    bad = in_worker_thread(lambda: validate_model_config({"customObjects": schema}, {}, {}, deep_config(levels, "x")))
    assert [str(p) for p in bad.problems] == [f"customObjects{'.a' * levels}.n: expected integer, found string 'x'"]

    deeper = deep_schema(levels, wrappers=6)  # past MAX_EVALUATION_DEPTH: a problem, not a RecursionError
    result = in_worker_thread(lambda: validate_model_config({"customObjects": deeper}, {}, {}, deep_config(levels, 1)))
    assert [str(p) for p in result.problems] == [
        f"customObjects: checking this config against the schema nested more than {MAX_EVALUATION_DEPTH} "
        "subschemas one inside another: the schema is too deep (see docs/schema.md, Bounds)"
    ]


def test_the_deepest_comparisons_run_in_a_worker_thread_under_the_default_recursion_limit() -> None:
    levels = MAX_CONFIG_DEPTH - 2
    old = deep_schema(levels, wrappers=6)
    new = json.loads(json.dumps(old))
    new["$defs"][f"o{levels}"]["properties"]["n"] = {"type": "string"}
    report = in_worker_thread(lambda: check_compatibility({"customObjects": old}, {"customObjects": new}, "FULL"))
    assert [(c.code, c.path) for c in report.changes] == [("TYPE_CHANGED", f"customObjects{'.a' * (levels + 1)}.n")]
    # A chain of 150 distinct unions, each probed through the next: a recursive probe needed about
    # eight frames a level (1,200 here); the probe is a work list now.
    chain: dict[str, Any] = {
        f"u{i}": {
            "anyOf": [{"type": "integer"}, {"type": "object", "properties": {"next": {"$ref": f"#/$defs/u{i + 1}"}}}]
        }
        for i in range(150)
    }
    chain["u150"] = {"type": "integer"}
    before = {"type": "object", "properties": {"root": {"$ref": "#/$defs/u0"}}, "$defs": chain}
    after = json.loads(json.dumps(before))
    after["$defs"]["u150"] = {"type": "string"}
    report = in_worker_thread(lambda: check_compatibility({"customObjects": before}, {"customObjects": after}, "FULL"))
    assert {c.code for c in report.changes} == {"BRANCH_REMOVED", "BRANCH_ADDED"}


# --- hints, text and formats that used to hang or crash ------------------------------------------------


def test_many_or_long_unknown_keys_get_their_messages_in_bounded_time(run_cli: Run, tmp_path: Path) -> None:
    # Each key used to be compared with every property for a "did you mean": 300 near-miss keys took
    # 45 s and two 3,000-character keys 69 s (2-core machine, loaded).
    props = {f"parameter_{i}": {"type": "integer"} for i in range(300)}
    schema = {"type": "object", "properties": props, "additionalProperties": False}
    config: dict[str, Any] = {f"paramter_{i}": 1 for i in range(300)}
    config.update({"x" * 3_000 + str(i): 1 for i in range(2)})
    started = time.monotonic()
    result = validate_model_config({"customObjects": schema}, {}, {}, config)
    assert time.monotonic() - started < DEADLINE_S
    messages = [str(p) for p in result.problems]
    assert len(messages) == MAX_PROBLEMS + 1
    assert "customObjects.paramter_0: not allowed; did you mean 'parameter_0'?" in messages
    assert messages[-1] == f"customObjects: {302 - MAX_PROBLEMS} more problems not listed"

    path = tmp_path / "all.yaml"  # YAML: a JSON key longer than 1,024 characters is not YAML
    path.write_text(yaml.safe_dump_all([schema_body(schema), deployment(config)]), encoding="utf-8")
    cli = run_cli("validate", str(path))
    assert cli.code == 1
    assert "spec.model.customObjects.paramter_0: not allowed; did you mean 'parameter_0'?" in cli.out


def deployment(custom: Any) -> dict[str, Any]:
    return {
        "apiVersion": "overseer.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "cat", "namespace": "ml"},
        "spec": {
            "schemaRef": {"name": "bounded", "version": 1},
            "model": {
                "name": "cat",
                "version": "1",
                "uri": "file:///models/cat.pt",
                "digest": "sha256:" + "ab" * 32,
                "customObjects": custom,
            },
        },
    }


def test_lone_surrogates_in_a_config_are_reported_not_a_crash(run_cli: Run, tmp_path: Path) -> None:
    # JSON allows "\ud800" (so do the SDK and the CLI's JSON files); RE2's Python wrapper raised
    # UnicodeEncodeError on it.
    schema = {
        "type": "object",
        "properties": {"owner": {"type": "string", "pattern": "^[a-z]+$"}, "home": {"type": "string", "format": "iri"}},
        "patternProperties": {"^x-": {"type": "integer"}},
        "additionalProperties": False,
    }
    config = json.loads('{"owner": "ab\\ud800", "home": "http://x/\\ud800", "\\udc00": 1}')
    result = validate_model_config({"customObjects": schema}, {}, {}, config)
    assert [str(p) for p in result.problems] == [
        "customObjects.home: expected a valid iri, found 'http://x/\\ud800'",
        "customObjects.owner: expected a string matching '^[a-z]+$', found 'ab\\ud800'",
        'customObjects["\\udc00"]: not allowed (allowed: home, owner)',
    ]
    with pytest.raises(ModelConfigError) as raised:
        check_model_config(schema_body(schema), custom_objects=config)
    assert "customObjects.owner: expected a string matching '^[a-z]+$', found 'ab\\ud800'" in str(raised.value)
    path = tmp_path / "all.json"
    listed = {"apiVersion": "v1", "kind": "List", "items": [schema_body(schema), deployment(config)]}
    path.write_text(json.dumps(listed), encoding="utf-8")
    cli = run_cli("validate", str(path))
    assert cli.code == 1
    assert "internal error" not in cli.err
    assert "spec.model.customObjects.owner: expected a string matching '^[a-z]+$', found 'ab\\ud800'" in cli.out


def test_iri_values_at_the_length_bound_are_checked_in_linear_time() -> None:
    # jsonschema's IRI checker took 0.5 to 2 s for one 2,000-character value.
    schema = {"type": "object", "properties": {"homes": {"type": "array", "items": {"format": "iri"}}}}
    good = ["https://例え.jp/" + "é" * 2_000 for _ in range(20)]
    started = time.monotonic()
    assert validate_model_config({"customObjects": schema}, {}, {}, {"homes": good}).ok
    bad = validate_model_config({"customObjects": schema}, {}, {}, {"homes": ["https://x/a b", "no scheme"]})
    assert time.monotonic() - started < DEADLINE_S
    assert [p.path for p in bad.problems] == ["customObjects.homes[0]", "customObjects.homes[1]"]


def test_a_missing_property_with_a_recursive_schema_is_described() -> None:
    # Describing an array of arrays of ... never ended: the check answered "cannot be checked".
    schema = {
        "type": "object",
        "required": ["grid"],
        "properties": {"grid": {"$ref": "#/$defs/rows"}},
        "$defs": {"rows": {"type": "array", "items": {"$ref": "#/$defs/rows"}}},
    }
    result = validate_model_config({"customObjects": schema}, {}, {}, {})
    assert [str(p) for p in result.problems] == [
        "customObjects.grid: required property missing (expected array of array of array of array of a value)"
    ]


# --- defaults ------------------------------------------------------------------------------------------


def test_an_object_default_of_a_recursive_schema_is_filled_in_once() -> None:
    # The default filler expanded {"child": {}} inside itself until RecursionError reached the user.
    schema = {
        "type": "object",
        "properties": {"child": {"$ref": "#", "default": {}}, "depth": {"type": "integer", "default": 0}},
    }
    result = validate_model_config({"customObjects": schema}, {}, {}, {})
    assert result.ok
    assert result.defaulted["customObjects"] == {"child": {"child": {}, "depth": 0}, "depth": 0}
    assert result.patch == [{"op": "add", "path": "/customObjects", "value": result.defaulted["customObjects"]}]


def test_defaults_that_would_grow_past_the_config_bound_are_refused() -> None:
    # Each level's two properties default to an object of the next level: 2**13 objects.
    defs = {
        f"l{i}": {
            "type": "object",
            "properties": {
                "left": {"$ref": f"#/$defs/l{i + 1}", "default": {}},
                "right": {"$ref": f"#/$defs/l{i + 1}", "default": {}},
            },
        }
        for i in range(13)
    }
    defs["l13"] = {"type": "object"}
    schema = {"type": "object", "properties": {"tree": {"$ref": "#/$defs/l0", "default": {}}}, "$defs": defs}
    with pytest.raises(ModelConfigError) as raised:
        check_model_config(schema_body(schema), custom_objects={})
    assert f"customObjects: filling in the schema's defaults would add more than {MAX_CONFIG_VALUES:,} values" in str(
        raised.value
    )


# --- many problems, a schema changed after it was checked ------------------------------------------------


def test_thousands_of_wrong_values_list_the_first_problems_and_count_the_rest() -> None:
    schema = {"type": "object", "properties": {"scores": {"type": "array", "items": {"type": "number"}}}}
    result = validate_model_config({"customObjects": schema}, {}, {}, {"scores": ["x"] * 3_000})
    assert len(result.problems) == MAX_PROBLEMS + 1
    assert str(result.problems[0]) == "customObjects.scores[0]: expected number, found string 'x'"
    assert str(result.problems[-1]) == f"customObjects: {3_000 - MAX_PROBLEMS:,} more problems not listed"


def test_a_schema_changed_in_place_after_a_check_is_checked_anew() -> None:
    # Compiled sections used to be cached by object identity too: the old content answered again.
    schema: dict[str, Any] = {"type": "object", "properties": {"conf": {"type": "number"}}}
    assert validate_model_config({"customObjects": schema}, {}, {}, {"conf": "x"}).problems
    schema["properties"]["conf"] = {"type": "string"}
    assert validate_model_config({"customObjects": schema}, {}, {}, {"conf": "x"}).ok


# --- compatibility ----------------------------------------------------------------------------------------


def test_a_conjunction_of_a_thousand_array_schemas_is_compared() -> None:
    # Merging conjunct after conjunct nested a thousand levels deep: the walk gave up (too complex).
    old = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}}}
    new = {"type": "object", "properties": {"a": {"allOf": [{"items": {"minimum": i}} for i in range(1_000)]}}}
    report = check_compatibility({"customObjects": old}, {"customObjects": new}, "BACKWARD")
    assert [str(c) for c in report.changes] == ["MINIMUM_INCREASED customObjects.a[]: minimum raised from none to 999"]


def closed_history(count: int) -> list[dict[str, Any]]:
    """Each version adds an optional property to a closed model: BACKWARD compatible, all the way."""
    return [
        {
            "version": n,
            "customObjects": {
                "type": "object",
                "additionalProperties": False,
                "properties": {f"p{i}": {"type": "integer", "minimum": 0} for i in range(n)},
            },
        }
        for n in range(1, count + 1)
    ]


def test_a_consistent_history_is_compared_once_per_version_under_a_transitive_mode() -> None:
    result = check_history(closed_history(100), "BACKWARD_TRANSITIVE")
    assert result.problems == []
    # Each version against the previous one: the rest follows from the transitivity of inclusion.
    assert [(r.old_version, r.new_version) for r in result.reports] == [(n, n + 1) for n in range(1, 100)]
    # A new version on top of registered ones is compared with every one of them.
    versions = closed_history(10)
    updated = check_history(versions, "BACKWARD_TRANSITIVE", registered=versions[:-1])
    assert [(r.old_version, r.new_version) for r in updated.reports] == [(n, 10) for n in range(9, 0, -1)]


def test_a_history_past_its_size_bound_is_refused_with_one_problem() -> None:
    props = {f"p{i}": {"type": "integer"} for i in range(MAX_HISTORY_VALUES // 200)}
    versions = [{"version": n, "customObjects": {"type": "object", "properties": props}} for n in range(1, 101)]
    result = check_history(versions, "BACKWARD")
    assert [(p.version, p.code) for p in result.problems] == [(100, "HISTORY_TOO_LARGE")]
    assert f"the versions hold more than {MAX_HISTORY_VALUES:,} JSON values together" in result.problems[0].message
