"""Bounds on the work of one check. Whatever a user writes into a ModelSchema or a ModelDeployment
runs inside the operator's admission webhook (5 s timeout, shared event loop): every check must end
quickly whatever it is given. docs/schema.md states these numbers; benchmarks/bench_schema_worst.py
measures the worst case they allow.
"""

from __future__ import annotations

from typing import Any

# Real sections hold tens of values (the example detector schema: 13 to 40 per section) and real
# configs tens to a few hundred; each bound below leaves a wide margin above that, and the
# benchmark shows what the worst input within all of them costs. docs/schema.md, Bounds, says why
# each number is what it is.

# --- one schema section (labels, metadata or customObjects of one version) ---------------------------
MAX_SCHEMA_VALUES = 5_000
"""JSON values (objects, arrays, scalars, keys excluded) in one section's schema document: over a
hundred times a real one, room for an enum of the 1,203 LVIS class names four times over."""
MAX_SCHEMA_DEPTH = 64
"""Nesting of objects and arrays in one section's schema document (one property level uses two)."""
MAX_INPLACE_DEPTH = 32
"""Longest chain of $ref / allOf / anyOf / oneOf / not / if ... applied to the same value."""
MAX_PATTERN_LENGTH = 4_096
"""Characters in one regular expression (pattern, patternProperties key)."""
MAX_HISTORY_VALUES = 30_000
"""JSON values in all the sections of all the versions of one ModelSchema together (what one
admission compiles cold): 100 versions of three 100-value sections, several times a long real history."""

# --- one config section (a model's labels, metadata or customObjects) ---------------------------------
MAX_CONFIG_VALUES = 5_000
"""Values in one config section: a list of every LVIS class name (1,203) fits four times."""
MAX_CONFIG_DEPTH = 32
MAX_CONFIG_CHARS = 256 * 1024
"""Characters in all strings and keys of one config section."""
MAX_PROBLEMS = 100
"""Problems listed for one config section; past it one more says how many were left out (a config
with thousands of wrong values would otherwise print thousands of lines, or a denial that size)."""
MAX_FORMAT_LENGTH = 2_048
"""A string longer than this is not a valid `format` value (date-time, uri, hostname, ...)."""

# --- work ----------------------------------------------------------------------------------------------
MAX_VALIDATION_STEPS = 15_000
"""Work of checking one config section (and of checking one section's defaults, and of filling them
in): a subschema applied to a value is one step, and so is a regular-expression search or every
eight values a keyword scans; a step is a few microseconds. A config at MAX_CONFIG_VALUES checked
against a plain schema takes one to two steps a value."""
MAX_EVALUATION_DEPTH = 200
"""Subschemas applied one inside another in one check (a level of a config usually takes one to three:
the property, a $ref, an allOf). One is about two Python frames: the check fits Python's default
recursion limit of 1,000 frames in any thread, with room for the caller's own."""
MAX_COMPARE_STEPS = 40_000
"""Work of one compatibility check (all version pairs of one call together): a pair of subschemas
compared costs 16 steps, each property of an object compared or pair of union alternatives looked up
one; a step is a couple of microseconds. 100 versions of a 40-property schema, each adding one,
need about 20,000 under BACKWARD_TRANSITIVE."""
MAX_VERSIONS = 100
"""Versions in one ModelSchema (the API refuses more), so at most 4,950 version pairs under _TRANSITIVE."""


def size_problem(value: object, *, max_values: int, max_depth: int, max_chars: int | None = None) -> str | None:
    """Why `value` (parsed JSON) exceeds the bounds or is not JSON at all, or None. Level by level, not
    recursive: a document nested 100,000 levels deep is measured without recursion. What passes is
    plain JSON: dicts (string keys), lists or tuples, strings, numbers, booleans and None."""
    count = chars = 0
    level: list[Any] = [value]
    depth = 1
    while level:
        if depth > max_depth:
            return f"nested more than {max_depth} levels deep"
        count += len(level)
        if count > max_values:
            return f"more than {max_values:,} values"
        below: list[Any] = []
        for item in level:
            kind = type(item)
            if kind is str:
                chars += len(item)
            elif kind is dict or (kind is not list and isinstance(item, dict)):
                for key in item:
                    if type(key) is not str:
                        return f"keys must be strings, found {type(key).__name__} {key!r:.40}"
                chars += sum(map(len, item))
                below.extend(item.values())
            elif kind is list or kind is tuple or isinstance(item, list | tuple):
                below.extend(item)
            elif isinstance(item, str):
                chars += len(item)
            elif item is not None and not isinstance(item, bool | int | float):
                return f"values must be JSON, found {type(item).__name__}"
        if max_chars is not None and chars > max_chars:
            return f"more than {max_chars:,} characters of text"
        level = below
        depth += 1
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
