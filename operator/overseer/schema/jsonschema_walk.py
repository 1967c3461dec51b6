"""Small read-only helpers over JSON Schema documents (dicts or booleans), shared by the validator
and the compatibility checker. Only local references (`#/...`) are followed: a ModelSchema section
is self-contained, and the CLI must never reach the network."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")

Schema = Mapping[str, Any] | bool


class UnresolvableRef(ValueError):
    """A `$ref` that does not point inside the same section."""


def resolve(schema: Any, root: Any, *, depth: int = 0) -> Any:
    """Follow a chain of local `$ref`s. Sibling keywords of a `$ref` (2019-09+) are kept."""
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
        if depth > 32:
            raise UnresolvableRef(f"$ref chain too deep at {schema['$ref']!r}")
        target = _pointer(root, schema["$ref"])
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **siblings} if siblings and isinstance(target, Mapping) else target
        depth += 1
    return schema


def _pointer(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        raise UnresolvableRef(f"only local references (#/...) are supported, found {ref!r}")
    node = root
    for raw in ref[1:].split("/")[1:] if ref != "#" else []:
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise UnresolvableRef(f"$ref {ref!r} points to nothing")
    return node


def types_of(schema: Any) -> frozenset[str] | None:
    """The declared JSON types, or None when any type is allowed. `integer` is kept distinct."""
    if schema is False:
        return frozenset()
    if not isinstance(schema, Mapping):
        return None
    declared = schema.get("type")
    if isinstance(declared, str):
        return frozenset({declared})
    if isinstance(declared, list):
        return frozenset(str(t) for t in declared)
    if "const" in schema:
        return frozenset({_value_type(schema["const"])})
    if isinstance(schema.get("enum"), list):
        return frozenset(_value_type(v) for v in schema["enum"])
    return None


def json_type(value: Any) -> str:
    """The JSON type name of a Python value, as JSON Schema users know them (1.0 is a number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _value_type(value: Any) -> str:
    # JSON Schema's `integer` accepts 1.0, so an enum of whole floats admits integer-typed values.
    return "integer" if isinstance(value, float) and value.is_integer() else json_type(value)


def accepts_types(reader: frozenset[str] | None, writer: frozenset[str] | None) -> frozenset[str]:
    """The writer's types the reader rejects (a number reader accepts integers)."""
    if reader is None:
        return frozenset()
    if writer is None:
        return frozenset(JSON_TYPES) - expand_types(reader)
    return frozenset(t for t in writer if t not in expand_types(reader))


def expand_types(types: frozenset[str]) -> frozenset[str]:
    return types | {"integer"} if "number" in types else types


def properties(schema: Any) -> Mapping[str, Any]:
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    return props if isinstance(props, Mapping) else {}


def required(schema: Any) -> frozenset[str]:
    req = schema.get("required") if isinstance(schema, Mapping) else None
    return frozenset(str(r) for r in req) if isinstance(req, list) else frozenset()


def is_open(schema: Any) -> bool:
    """Open content model: undeclared properties may carry any value."""
    if not isinstance(schema, Mapping):
        return schema is not False
    extra = schema.get("additionalProperties", True)
    return not schema.get("patternProperties") and (extra is True or extra == {})


def schema_for_undeclared(schema: Any, name: str) -> Any:
    """The schema an undeclared property `name` is checked against (patternProperties first)."""
    if not isinstance(schema, Mapping):
        return schema
    patterns = schema.get("patternProperties")
    if isinstance(patterns, Mapping):
        for pattern, sub in patterns.items():
            try:
                if re.search(pattern, name):
                    return sub
            except re.error:
                continue
    return schema.get("additionalProperties", True)


def has_default(schema: Any) -> bool:
    return isinstance(schema, Mapping) and "default" in schema


def json_pointer(parts: list[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)
