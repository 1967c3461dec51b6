"""The worst cases the schema core's bounds allow (overseer/schema/limits.py), timed cold: each run checks
a schema it has never seen (the caches are bypassed by a unique marker), as an admission webhook meets a
hostile ModelSchema or ModelDeployment. The webhook's timeout is 5 s; the aim is 50 ms.

    .venv/bin/python benchmarks/bench_schema_worst.py

Each line: the case, the median CPU time and wall time of the runs, the wall time as a share of the 5 s
webhook timeout, and the outcome (an answer, or the bound that stopped the check). CPU time is what the
check costs; wall time also holds whatever else the machine runs (the load average is printed first).
"""

from __future__ import annotations

import copy
import itertools
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

from overseer.schema import check_compatibility, check_history, validate_model_config
from overseer.schema.limits import (
    MAX_CONFIG_CHARS,
    MAX_CONFIG_DEPTH,
    MAX_CONFIG_VALUES,
    MAX_FORMAT_LENGTH,
    MAX_HISTORY_VALUES,
    MAX_SCHEMA_VALUES,
)

WEBHOOK_TIMEOUT_MS = 5_000.0
_unique = itertools.count()


def fresh(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema under a new `$comment`: a cache miss, so the run includes compiling it."""
    return {**schema, "$comment": f"run {next(_unique)}"}


def timed(run: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """Median CPU and wall milliseconds of `runs` runs, and the last result."""
    cpu, wall, result = [], [], None
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = run()
        cpu.append((time.process_time() - started_cpu) * 1e3)
        wall.append((time.perf_counter() - started) * 1e3)
    return statistics.median(cpu), statistics.median(wall), result


def case(name: str, run: Callable[[], Any], outcome: Callable[[Any], str], runs: int = 5) -> float:
    cpu, wall, result = timed(run, runs)
    print(f"{name:66} {cpu:8.1f} {wall:8.1f}  {wall / WEBHOOK_TIMEOUT_MS:7.4f}   {outcome(result)}")
    return cpu


def first(result: Any) -> str:
    problems = getattr(result, "problems", None)
    if problems is not None:
        return "valid" if not problems else f"{len(problems)} problem(s): {str(problems[0])[:60]}"
    changes = result.changes
    return "compatible" if not changes else f"{len(changes)} change(s), first {changes[0].code}"


# --- validation -----------------------------------------------------------------------------------------


def nested_alternatives(levels: int) -> dict[str, Any]:
    defs: dict[str, Any] = {
        f"n{i}": {"anyOf": [{"$ref": f"#/$defs/n{i + 1}"}, {"$ref": f"#/$defs/n{i + 1}"}]} for i in range(levels)
    }
    defs[f"n{levels}"] = {"type": "string"}
    return {"type": "object", "properties": {"x": {"$ref": "#/$defs/n0"}}, "$defs": defs}


def wide_alternatives() -> tuple[dict[str, Any], dict[str, Any]]:
    """500 alternatives that each fail, over 2,000 items: a million distinct (subschema, value) checks."""
    branches = [{"type": "object", "required": [f"k{i}"]} for i in range(500)]
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"anyOf": branches}}}}
    return schema, {"items": [{"x": i} for i in range(2_000)]}


def widest() -> tuple[dict[str, Any], dict[str, Any]]:
    """About MAX_SCHEMA_VALUES values (properties with bounds, a pattern and a default each) and a
    config that sets each."""
    count = MAX_SCHEMA_VALUES // 8
    props = {
        f"p{i}": {"type": "string", "pattern": "^[a-z]+[0-9]*$", "maxLength": 64, "default": "a"} for i in range(count)
    }
    return {"type": "object", "properties": props}, {f"p{i}": "abc1" for i in range(count)}


def long_texts() -> tuple[dict[str, Any], dict[str, Any]]:
    """The config's text bound spent on one string, tried against 200 patterns that each fail."""
    patterns = [{"type": "string", "pattern": f"^a*{i}$"} for i in range(200)]
    schema = {"type": "object", "properties": {"s": {"anyOf": patterns}}}
    return schema, {"s": "a" * (MAX_CONFIG_CHARS - 16)}


def long_iris() -> tuple[dict[str, Any], dict[str, Any]]:
    """IRIs at the format length bound, as many as the config's text bound holds."""
    schema = {"type": "object", "properties": {"homes": {"type": "array", "items": {"format": "iri"}}}}
    value = "https://例え.jp/" + "é" * (MAX_FORMAT_LENGTH - 16)
    return schema, {"homes": [value] * (MAX_CONFIG_CHARS // MAX_FORMAT_LENGTH - 1)}


def unknown_keys() -> tuple[dict[str, Any], dict[str, Any]]:
    """A closed schema of 500 properties and 1,000 near-miss keys: each wants a "did you mean" (the
    name comparisons' budget is spent on the first)."""
    props = {f"parameter_{i}": {"type": "integer"} for i in range(500)}
    schema = {"type": "object", "properties": props, "additionalProperties": False}
    return schema, {f"paramter_{i}": 1 for i in range(1_000)}


def deepest() -> tuple[dict[str, Any], dict[str, Any]]:
    """A config nested to its depth bound through a schema of allOf chains and unevaluatedProperties."""
    levels = MAX_CONFIG_DEPTH - 2
    defs: dict[str, Any] = {}
    for level in range(levels):
        inner: Any = {"$ref": f"#/$defs/o{level + 1}"}
        for _ in range(4):
            inner = {"allOf": [inner]}
        defs[f"o{level}"] = {"type": "object", "properties": {"a": inner}, "unevaluatedProperties": False}
    defs[f"o{levels}"] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    config: dict[str, Any] = {"n": 1}
    for _ in range(levels):
        config = {"a": config}
    return {"type": "object", "properties": {"a": {"$ref": "#/$defs/o0"}}, "$defs": defs}, config


def validations() -> None:
    evil = "a" * 32 + "!"
    redos = {"type": "object", "properties": {"owner": {"type": "string", "pattern": "^(a+)+$"}}}
    case(
        "pattern ^(a+)+$ against 32 a + '!' (RE2)",
        lambda: validate_model_config({"customObjects": fresh(redos)}, {}, {}, {"owner": evil}),
        first,
    )
    backtrack = "a" * 22 + "!"
    case(
        "  Python's re, the same with only 22 a + '!' (backtracking)",
        lambda: re.search("^(a+)+$", backtrack),
        lambda _: "for comparison",
        1,
    )
    case(
        "15 nested anyOf pairs (2^15 paths, 31 subschemas)",
        lambda: validate_model_config({"customObjects": fresh(nested_alternatives(15))}, {}, {}, {"x": 1}),
        first,
    )
    for name, make, runs in (
        ("500 failing alternatives x 2,000 items (work bound)", wide_alternatives, 3),
        (f"{MAX_SCHEMA_VALUES:,}-value schema, config setting its 625 properties", widest, 3),
        (f"{MAX_CONFIG_CHARS // 1024} KiB string against 200 failing patterns", long_texts, 3),
        (f"{MAX_CONFIG_CHARS // MAX_FORMAT_LENGTH - 1} IRIs of {MAX_FORMAT_LENGTH:,} characters", long_iris, 3),
        ("1,000 unknown near-miss keys, closed schema of 500 properties", unknown_keys, 3),
        (f"config {MAX_CONFIG_DEPTH - 1} levels deep, 4 allOf + unevaluatedProperties a level", deepest, 5),
    ):
        schema, config = make()
        case(
            name, lambda s=schema, c=config: validate_model_config({"customObjects": fresh(s)}, {}, {}, c), first, runs
        )
    schema, config = wide_alternatives()
    warm = fresh(schema)
    validate_model_config({"customObjects": warm}, {}, {}, {})
    case(
        "  the 500 x 2,000 case again, schema already compiled (warm)",
        lambda: validate_model_config({"customObjects": warm}, {}, {}, config),
        first,
        3,
    )
    big = {"type": "object", "properties": {"classes": {"type": "array", "items": {"type": "string"}}}}
    classes = {"classes": [f"class_{i}" for i in range(MAX_CONFIG_VALUES - 2)]}
    case(
        f"a plain list of {MAX_CONFIG_VALUES - 2:,} class names (a legitimate maximum)",
        lambda: validate_model_config({"customObjects": fresh(big)}, {}, {}, classes),
        first,
    )


# --- compatibility ------------------------------------------------------------------------------------


def recursive_union(members: int) -> dict[str, Any]:
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


def compare(old: dict[str, Any], new: dict[str, Any], mode: str) -> Callable[[], Any]:
    return lambda: check_compatibility({"customObjects": fresh(old)}, {"customObjects": fresh(new)}, mode)


def history(count: int, props: Callable[[int], int], closed: bool) -> Callable[[], Any]:
    """`count` versions, version n declaring props(n) properties; closed: each version adds an optional
    property to a closed model (compatible); open: each adds one to an open model (breaks BACKWARD)."""

    def run() -> Any:
        marker = next(_unique)
        versions = [
            {
                "version": n,
                "customObjects": {
                    "$comment": f"{marker}",
                    "type": "object",
                    "properties": {f"p{i}": {"type": "integer", "minimum": 0} for i in range(props(n))},
                    **({"additionalProperties": False} if closed else {}),
                },
            }
            for n in range(1, count + 1)
        ]
        return check_history(versions, "BACKWARD_TRANSITIVE" if closed else "FULL_TRANSITIVE")

    return run


def history_outcome(result: Any) -> str:
    codes = sorted({p.code for p in result.problems})
    return f"{len(result.reports)} pairs compared, {len(result.problems)} problems {codes if codes else ''}"


def compatibilities() -> None:
    union = recursive_union(12)
    changed = copy.deepcopy(union)
    changed["$defs"]["t3"]["properties"]["k3"] = {"type": "string"}
    case("recursive oneOf of 12 members, FULL", compare(union, changed, "FULL"), first)
    case("  the same under NONE (notices only)", compare(union, changed, "NONE"), first)
    big = recursive_union(200)
    big_changed = copy.deepcopy(big)
    big_changed["$defs"]["t199"]["properties"]["k199"] = {"type": "string"}
    case("recursive oneOf of 200 members, FULL (work bound)", compare(big, big_changed, "FULL"), first, 3)
    graph = {
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/s0"}},
        "$defs": {
            f"s{i}": {
                "type": "object",
                "properties": {f"p{j}": {"$ref": f"#/$defs/s{(i + j + 1) % 12}"} for j in range(5)},
            }
            for i in range(12)
        },
    }
    closed = copy.deepcopy(graph)
    closed["$defs"]["s5"]["additionalProperties"] = False
    case("circular graph of 12 schemas x 5 properties, FULL", compare(graph, closed, "FULL"), first)
    case(
        "100 versions, each breaking FULL_TRANSITIVE (work bound)",
        history(100, lambda n: n, closed=False),
        history_outcome,
        3,
    )
    case(
        "100 compatible versions of 10-110 properties, BACKWARD_TRANSITIVE",
        history(100, lambda n: 10 + n, closed=True),
        history_outcome,
        3,
    )
    per_version = MAX_HISTORY_VALUES // 100 // 3 - 1  # each property is three values
    case(
        f"100 compatible versions at the {MAX_HISTORY_VALUES:,}-value history bound",
        history(100, lambda n: per_version - 100 + n, closed=True),
        history_outcome,
        3,
    )


def main() -> int:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} cores, load average {load}, Python {platform.python_version()}")
    print("worst cases under the bounds, median of cold runs (the schema never seen before)")
    print(f"{'case':66} {'cpu ms':>8} {'wall ms':>8}  {'of 5 s':>7}   outcome")
    validations()
    compatibilities()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
