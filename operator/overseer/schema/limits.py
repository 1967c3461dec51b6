"""Bounds on the work of one check. Whatever a user writes into a ModelSchema or a ModelDeployment
runs inside the operator's admission webhook (5 s timeout, shared event loop): every check must end
quickly whatever it is given. docs/schema.md states these numbers; benchmarks/bench_schema_worst.py
measures the worst case they allow.
"""

from __future__ import annotations

from typing import Any

# --- one schema section (labels, metadata or customObjects of one version) ---------------------------
MAX_SCHEMA_VALUES = 20_000
"""JSON values (objects, arrays, scalars, keys excluded) in one section's schema document."""
MAX_SCHEMA_DEPTH = 64
"""Nesting of objects and arrays in one section's schema document (one property level uses two)."""
MAX_INPLACE_DEPTH = 32
"""Longest chain of $ref / allOf / anyOf / oneOf / not / if ... applied to the same value."""
MAX_PATTERN_LENGTH = 4_096
"""Characters in one regular expression (pattern, patternProperties key)."""

# --- one config section (a model's labels, metadata or customObjects) ---------------------------------
MAX_CONFIG_VALUES = 10_000
MAX_CONFIG_DEPTH = 32
MAX_CONFIG_CHARS = 256 * 1024
"""Characters in all strings and keys of one config section."""
MAX_FORMAT_LENGTH = 2_048
"""A string longer than this is not a valid `format` value (date-time, uri, hostname, ...)."""

# --- work ----------------------------------------------------------------------------------------------
MAX_VALIDATION_STEPS = 5_000
"""Work of checking one config section (and of checking one section's defaults): a subschema applied
to a value is one step, and so is a regular-expression search or every eight values a keyword scans."""
MAX_EVALUATION_DEPTH = 200
"""Subschemas applied one inside another in one check (a level of a config usually takes one to three:
the property, a $ref, an allOf). One is about two Python frames: the check fits Python's default
recursion limit of 1,000 frames in any thread, with room for the caller's own."""
MAX_COMPARE_STEPS = 5_000
"""Work of one compatibility check (all version pairs of one call together): a pair of subschemas
compared costs one step, each property of an object compared one more."""
MAX_VERSIONS = 100
"""Versions in one ModelSchema (the API refuses more), so at most 4,950 version pairs under _TRANSITIVE."""


def size_problem(value: object, *, max_values: int, max_depth: int, max_chars: int | None = None) -> str | None:
    """Why `value` (parsed JSON) exceeds the bounds or is not JSON at all, or None. Iterative: a
    document nested 100,000 levels deep is measured without recursion. What passes is plain JSON:
    dicts (string keys), lists or tuples, strings, numbers, booleans and None."""
    count = chars = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > max_values:
            return f"more than {max_values:,} values"
        if depth > max_depth:
            return f"nested more than {max_depth} levels deep"
        kind = type(item)
        if kind is str or isinstance(item, str):
            chars += len(item)
        elif kind is dict or isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"keys must be strings, found {type(key).__name__} {key!r:.40}"
                chars += len(key)
                stack.append((child, depth + 1))
        elif kind is list or kind is tuple or isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)
        elif item is not None and not isinstance(item, bool | int | float):
            return f"values must be JSON, found {type(item).__name__}"
        if max_chars is not None and chars > max_chars:
            return f"more than {max_chars:,} characters of text"
    return None


def count_values(value: Any) -> int:
    """JSON values in `value` (iterative)."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return count
