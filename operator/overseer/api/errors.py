"""Pydantic validation errors in user words: `spec.model.digest: expected sha256:<64 hex digits>, ...`.

Shared by the CLI and the admission webhooks so both say the same thing about the same mistake.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from overseer import text as hints
from overseer.api.model_document import DIGEST_PATTERN

M = TypeVar("M", bound=BaseModel)


def parse_manifest(model: type[M], body: Mapping[str, Any]) -> tuple[M | None, list[tuple[str, str]]]:
    """Validate a manifest as the API server would: wire (camelCase) names only, no extras.

    Returns the object, or None and (field path, message) pairs.
    """
    try:
        return model.model_validate(body, by_alias=True, by_name=False), []
    except ValidationError as error:
        return None, list(explain(model, error))


def explain(model: type[BaseModel], error: ValidationError) -> Iterator[tuple[str, str]]:
    """(field path, message) for each error, most specific wording first."""
    for item in error.errors(include_url=False):
        loc = [part for part in item["loc"] if not _is_union_tag(part)]
        path = hints.field_path("", loc)
        yield path, _message(model, item, loc)


def _is_union_tag(part: Any) -> bool:
    # pydantic inserts the union member it tried into loc ("function-after[...]", "int", "str").
    return isinstance(part, str) and (part.startswith(("function-", "lax-", "json-")) or part in {"int", "str"})


_TYPE_NAMES = {
    "string_type": "string",
    "int_type": "integer",
    "int_parsing": "integer",
    "int_from_float": "integer",
    "float_type": "number",
    "float_parsing": "number",
    "bool_type": "boolean",
    "bool_parsing": "boolean",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    "list_type": "array",
    "datetime_type": "date-time string",
    "datetime_parsing": "date-time string",
    "datetime_from_date_parsing": "date-time string",
}


def _message(model: type[BaseModel], item: Mapping[str, Any], loc: list[Any]) -> str:
    kind = item["type"]
    value = item.get("input")
    ctx = item.get("ctx") or {}
    if kind == "missing":
        return "required field missing"
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        hint = hints.most_similar(str(loc[-1]), allowed) if allowed else None
        if hint is not None:
            return f"unknown field; did you mean {hint!r}?"
        return f"unknown field (allowed: {', '.join(sorted(allowed))})" if allowed else "unknown field"
    if kind in _TYPE_NAMES:
        text = f"expected {_TYPE_NAMES[kind]}, found {hints.found(value)}"
        if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
            text += " (quote it in YAML)"
        return text
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == DIGEST_PATTERN:
            return f"expected sha256:<64 lowercase hex digits>, found {hints.show(value)}"
        return f"expected a string matching {hints.show(ctx.get('pattern'))}, found {hints.show(value)}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, found {hints.show(value)}"
    bounds = {
        "greater_than_equal": ("a value >=", "ge"),
        "greater_than": ("a value >", "gt"),
        "less_than_equal": ("a value <=", "le"),
        "less_than": ("a value <", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"expected {words} {ctx.get(key)}, found {hints.show(value)}"
    if kind in ("string_too_short", "too_short"):
        return f"expected at least {ctx.get('min_length')} {'character' if kind.startswith('string') else 'item'}(s)"
    if kind in ("string_too_long", "too_long"):
        return f"expected at most {ctx.get('max_length')} {'characters' if kind.startswith('string') else 'items'}"
    if kind == "value_error":
        return str(ctx.get("error", item["msg"]))
    return f"{item['msg']}, found {hints.show(value)}"


def _fields_at(model: type[BaseModel], loc: list[Any]) -> list[str]:
    """Wire names of the fields of the model found at `loc` (for "did you mean" hints)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next(
                (f for name, f in current.model_fields.items() if part in (name, f.alias)),
                None,
            )
            if field is None:
                return []
            current = field.annotation
        elif typing.get_origin(current) in (list, dict):
            current = typing.get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation
