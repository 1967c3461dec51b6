"""Worst cases the schema core's bounds allow (overseer/schema/limits.py), timed cold: each run checks
a schema it has never seen (the caches are bypassed by a unique marker), as an admission webhook
meets a hostile ModelSchema. The webhook's timeout is 5 s; the aim is 50 ms.

    .venv/bin/python benchmarks/bench_schema_worst.py
"""

from __future__ import annotations

import copy
import itertools
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

from overseer.schema import check_compatibility, check_history, validate_model_config
from overseer.schema.limits import MAX_CONFIG_VALUES, MAX_SCHEMA_VALUES

_unique = itertools.count()


def fresh(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema under a new `$comment`: a cache miss, so the run includes compiling it."""
    return {**schema, "$comment": f"run {next(_unique)}"}


def timed(run: Callable[[], Any], runs: int = 5) -> tuple[float, Any]:
    samples, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = run()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), result


def nested_alternatives(levels: int) -> dict[str, Any]:
    defs: dict[str, Any] = {
        f"n{i}": {"anyOf": [{"$ref": f"#/$defs/n{i + 1}"}, {"$ref": f"#/$defs/n{i + 1}"}]} for i in range(levels)
    }
    defs[f"n{levels}"] = {"type": "string"}
    return {"type": "object", "properties": {"x": {"$ref": "#/$defs/n0"}}, "$defs": defs}


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


def widest_schema() -> dict[str, Any]:
    """About MAX_SCHEMA_VALUES values: properties with bounds, a pattern and a default each."""
    count = MAX_SCHEMA_VALUES // 8
    props = {
        f"p{i}": {"type": "string", "pattern": "^[a-z]+[0-9]*$", "maxLength": 64, "default": "a"} for i in range(count)
    }
    return {"type": "object", "properties": props}


def report(name: str, ms: float, outcome: str) -> None:
    print(f"{name:62} {ms:9.1f} ms   {outcome}")


def main() -> int:
    print("worst cases under the bounds (median of 5 cold runs, this machine)")
    evil = "a" * 32 + "!"
    redos = {"type": "object", "properties": {"owner": {"type": "string", "pattern": "^(a+)+$"}}}
    ms, result = timed(lambda: validate_model_config({"customObjects": fresh(redos)}, {}, {}, {"owner": evil}))
    report("pattern ^(a+)+$ against 32 a + '!' (RE2)", ms, f"{len(result.problems)} problem")
    start = time.perf_counter()
    re.search("^(a+)+$", "a" * 22 + "!")
    python_ms = (time.perf_counter() - start) * 1e3
    report("  the same with Python's re, only 22 a + '!' (backtracking)", python_ms, "for comparison")

    ms, result = timed(
        lambda: validate_model_config({"customObjects": fresh(nested_alternatives(15))}, {}, {}, {"x": 1})
    )
    report("15 nested anyOf pairs (2^15 paths), stopped by the work bound", ms, result.problems[0].message[:40])

    wide = widest_schema()
    config = {f"p{i}": "abc1" for i in range(min(MAX_CONFIG_VALUES - 1, len(wide["properties"])))}
    ms, result = timed(lambda: validate_model_config({"customObjects": fresh(wide)}, {}, {}, config), runs=3)
    report(f"{MAX_SCHEMA_VALUES:,}-value schema, {len(config):,}-value config (compile + check)", ms, f"ok={result.ok}")

    union = recursive_union(12)
    changed = copy.deepcopy(union)
    changed["$defs"]["t3"]["properties"]["k3"] = {"type": "string"}
    ms, result = timed(
        lambda: check_compatibility({"customObjects": fresh(union)}, {"customObjects": fresh(changed)}, "FULL")
    )
    report("recursive oneOf of 12 members, FULL", ms, f"{len(result.changes)} changes")
    ms, result = timed(
        lambda: check_compatibility({"customObjects": fresh(union)}, {"customObjects": fresh(changed)}, "NONE")
    )
    report("  the same under NONE (notices only)", ms, f"{len(result.changes)} changes")

    big = recursive_union(200)
    big_changed = copy.deepcopy(big)
    big_changed["$defs"]["t199"]["properties"]["k199"] = {"type": "string"}
    ms, result = timed(
        lambda: check_compatibility({"customObjects": fresh(big)}, {"customObjects": fresh(big_changed)}, "FULL"),
        runs=3,
    )
    report("recursive oneOf of 200 members, FULL (work bound)", ms, result.changes[0].code)

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
    ms, result = timed(
        lambda: check_compatibility({"customObjects": fresh(graph)}, {"customObjects": fresh(closed)}, "FULL")
    )
    report("circular graph of 12 schemas x 5 properties, FULL", ms, f"{len(result.changes)} change")

    def history() -> Any:
        marker = next(_unique)
        versions = [
            {
                "version": n,
                "customObjects": {
                    "$comment": f"{marker}",
                    "type": "object",
                    "properties": {f"p{i}": {"type": "integer"} for i in range(n)},
                },
            }
            for n in range(1, 101)
        ]
        return check_history(versions, "FULL_TRANSITIVE")

    ms, result = timed(history, runs=3)
    report("100 versions, FULL_TRANSITIVE (4,950 pairs; work bound)", ms, f"{len(result.problems)} problems")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
