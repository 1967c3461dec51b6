"""Small read-only helpers over flat schemas (`Node.flat`: a mapping whose subschemas are Nodes, or
a boolean), shared by the default filler, the messages and the compatibility checker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from overseer.schema import regex
from overseer.schema.resolved import Node
from overseer.text import json_type

JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")

Schema = Mapping[str, Any] | bool


def flat_of(schema: Any) -> Any:
    """The flat view of a Node; other values as they are."""
    return schema.flat if isinstance(schema, Node) else schema


def types_of(schema: Any) -> frozenset[str] | None:
    """The declared JSON types, or None when any type is allowed. `integer` is kept distinct."""
    schema = flat_of(schema)
    if schema is False:
        return frozenset()
    if not isinstance(schema, dict):
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
    schema = flat_of(schema)
    props = schema.get("properties") if isinstance(schema, dict) else None
    return props if isinstance(props, dict) else {}


def required(schema: Any) -> frozenset[str]:
    schema = flat_of(schema)
    req = schema.get("required") if isinstance(schema, dict) else None
    return frozenset(str(r) for r in req) if isinstance(req, list) else frozenset()


def undeclared(schema: Any) -> Any:
    """The schema of properties neither declared nor matched by a pattern: additionalProperties, else
    unevaluatedProperties (the same set once allOf is merged and no union applies), else True."""
    schema = flat_of(schema)
    if not isinstance(schema, dict):
        return schema
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if keyword in schema:
            return schema[keyword]
    return True


def is_open(schema: Any) -> bool:
    """Open content model: undeclared properties may carry any value."""
    schema = flat_of(schema)
    if not isinstance(schema, dict):
        return schema is not False
    extra = flat_of(undeclared(schema))
    return not schema.get("patternProperties") and (extra is True or extra == {})


def schema_for_undeclared(schema: Any, name: str) -> Any:
    """The schema an undeclared property `name` is checked against (patternProperties first)."""
    schema = flat_of(schema)
    if not isinstance(schema, dict):
        return schema
    patterns = schema.get("patternProperties")
    if isinstance(patterns, dict):
        for pattern, sub in patterns.items():
            if regex.search(pattern, name):
                return sub
    return undeclared(schema)


def has_default(schema: Any) -> bool:
    schema = flat_of(schema)
    return isinstance(schema, dict) and "default" in schema


def json_pointer(parts: list[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)
