"""Bounds on the work of one check. Whatever a user writes into a ModelSchema or a ModelDeployment
runs inside the operator's admission webhook (5 s timeout, shared event loop): every check must end
quickly whatever it is given. docs/schema.md states these numbers; benchmarks/bench_schema_worst.py
measures the worst case they allow.
"""

from __future__ import annotations

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
"""Keyword evaluations for one config section (and for checking one section's defaults)."""
MAX_COMPARE_STEPS = 5_000
"""Work of one compatibility check (all version pairs of one call together): a pair of subschemas
compared costs one step, each property of an object compared one more."""
MAX_VERSIONS = 100
"""Versions in one ModelSchema (the API refuses more), so at most 4,950 version pairs under _TRANSITIVE."""


def size_problem(value: object, *, max_values: int, max_depth: int, max_chars: int | None = None) -> str | None:
    """Why `value` (parsed JSON) exceeds the bounds or is not JSON at all, or None. Iterative: a
    document nested 100,000 levels deep is measured without recursion."""
    count = chars = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > max_values:
            return f"more than {max_values:,} values"
        if depth > max_depth:
            return f"nested more than {max_depth} levels deep"
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"keys must be strings, found {type(key).__name__} {key!r:.40}"
                chars += len(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            chars += len(item)
        elif item is not None and not isinstance(item, bool | int | float):
            return f"values must be JSON, found {type(item).__name__}"
        if max_chars is not None and chars > max_chars:
            return f"more than {max_chars:,} characters of text"
    return None
