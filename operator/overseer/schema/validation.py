"""Checks a model's labels, metadata and customObjects against one ModelSchema version.

Pure and cheap: validators are compiled once per distinct schema section and cached, so the
admission webhook and the serving pod can call this on every request.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import referencing.exceptions
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from overseer import text as hints
from overseer.schema import engine, regex
from overseer.schema.jsonschema_walk import flat_of, json_pointer, properties
from overseer.schema.limits import (
    MAX_CONFIG_CHARS,
    MAX_CONFIG_DEPTH,
    MAX_CONFIG_VALUES,
    MAX_SCHEMA_DEPTH,
    MAX_SCHEMA_VALUES,
    MAX_VALIDATION_STEPS,
    size_problem,
)
from overseer.schema.resolved import Node, ResolvedSection, SchemaProblem, resolve_section

# (wire name, attribute of a SchemaSnapshot / SchemaVersion): the order problems are reported in.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("labels", "labels"),
    ("metadata", "metadata"),
    ("customObjects", "custom_objects"),
)


@dataclass(frozen=True)
class FieldProblem:
    path: str
    """Section-qualified, dotted: "customObjects.conf", "labels.owner", "metadata"; indices as [0]."""
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class ConfigValidation:
    problems: tuple[FieldProblem, ...]
    defaulted: dict[str, dict[str, Any]]
    """{"labels": ..., "metadata": ..., "customObjects": ...} with the schema's defaults filled in."""
    patch: list[dict[str, Any]]
    """RFC 6902 `add` operations that fill the defaults in, relative to the model object."""

    @property
    def ok(self) -> bool:
        return not self.problems


# --- compiled sections --------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledSection:
    """One section's JSON Schema, checked once: either a ready validator or the reason it is unusable."""

    schema: Any
    validator: Validator | None
    problem: str | None
    resolved: ResolvedSection | None = None
    """The section resolved once: what the default filler, the messages and the compatibility walk use."""
    key: str | None = None
    """Canonical JSON of the schema (equal keys, equal sections); None when it is not JSON."""


_CACHE_SIZE = 512
_cache: OrderedDict[str, CompiledSection] = OrderedDict()
# Admission webhooks and serving threads call compile_section concurrently: an unguarded hit could
# be evicted by another thread between the lookup and move_to_end (KeyError).
_cache_lock = threading.Lock()


# The same section object checked again (a version compared with each earlier one): no re-measuring.
_by_identity: dict[int, tuple[Any, CompiledSection]] = {}


def compile_section(schema: Any) -> CompiledSection:
    """Check a section's JSON Schema and build its validator; cached by content."""
    known = _by_identity.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    compiled = _compile_by_content(schema)
    with _cache_lock:
        if len(_by_identity) >= 2 * _CACHE_SIZE:
            _by_identity.clear()
        _by_identity[id(schema)] = (schema, compiled)  # holds the object, so its id stays its own
    return compiled


def _compile_by_content(schema: Any) -> CompiledSection:
    if not isinstance(schema, Mapping | bool):
        return CompiledSection(
            schema, None, f"not a valid JSON Schema: expected an object, found {hints.found(schema)}"
        )
    # Measured before anything recursive touches it (json.dumps, the metaschema check).
    too_big = size_problem(schema, max_values=MAX_SCHEMA_VALUES, max_depth=MAX_SCHEMA_DEPTH)
    if too_big is not None:
        return CompiledSection(schema, None, f"not a usable JSON Schema: {too_big} (see docs/schema.md, Bounds)")
    try:
        key = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        # Non-JSON values such as NaN-free floats that json refuses: not cacheable, and not valid.
        return CompiledSection(schema, None, "not a valid JSON Schema: keys must be strings and values JSON")
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    # Compile outside the lock: it is the slow part, and two threads compiling the same section
    # at once only waste a little work.
    compiled = dataclasses.replace(_compile(schema), key=key)
    with _cache_lock:
        _cache[key] = compiled
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


def schema_problem(schema: Any) -> str | None:
    """Why a section schema is unusable, or None. For callers that check schemas, not configs."""
    return compile_section(schema).problem


def _compile(schema: Any) -> CompiledSection:
    try:
        return _compile_checked(schema)
    except (RecursionError, engine.WorkLimitExceeded, referencing.exceptions.Unresolvable) as error:
        # Bounds above make these unreachable for what we know of; a schema must still never crash us.
        return CompiledSection(schema, None, f"not a usable JSON Schema: {_failure(error)}")


def _compile_checked(schema: Any) -> CompiledSection:
    if isinstance(schema, Mapping):
        declared = schema.get("type")
        if declared is not None and "object" not in (declared if isinstance(declared, list) else [declared]):
            return CompiledSection(
                schema,
                None,
                f"must describe an object (type: object), found type {hints.show(declared)}",
            )
    try:
        section = resolve_section(schema)
    except SchemaProblem as error:
        return CompiledSection(schema, None, "not a valid JSON Schema: " + str(error))
    validator = engine.build_validator(section, section.root.schema)
    try:
        with engine.budget(MAX_VALIDATION_STEPS):
            problem = _check_defaults(validator, section)
    except engine.WorkLimitExceeded:
        problem = f"checking the defaults took more than {MAX_VALIDATION_STEPS:,} steps: the schema is too complex"
    if problem:
        return CompiledSection(schema, None, problem, section)
    return CompiledSection(schema, validator, None, section)


def _failure(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply to check"
    if isinstance(error, engine.WorkLimitExceeded):
        return f"too complex: more than {MAX_VALIDATION_STEPS:,} steps"
    return f"unresolvable reference ({error})"


def _check_defaults(validator: Validator, section: ResolvedSection) -> str | None:
    """A default that violates its own schema would make every defaulted config invalid."""
    for node in list(section.nodes.values()):
        for name, child in properties(node.schema).items():
            sub = section.node_for(child)
            flat = sub.flat if sub is not None else child
            if not isinstance(flat, Mapping) or "default" not in flat or not isinstance(child, Mapping):
                continue
            error = next(iter(validator.descend(flat["default"], child)), None)  # type: ignore[attr-defined]
            if error is not None:
                path = hints.field_path("", [*_property_path(node.pointer), name])
                return f"default of {path} is invalid: {_explain_one(error, section)}"
    return None


def _property_path(pointer: tuple[str | int, ...]) -> list[str | int]:
    """`properties.a.properties.b` -> `a.b` for messages about defaults; other keywords kept."""
    out: list[str | int] = []
    parts = list(pointer)
    while parts:
        part = parts.pop(0)
        if part == "properties" and parts:
            out.append(parts.pop(0))
        else:
            out.append(part)
    return out


def _explain_one(error: ValidationError, section: ResolvedSection) -> str:
    messages = list(_messages(error, section))
    return messages[0][1] if messages else error.message


# --- validation ---------------------------------------------------------------------------------


def sections_of(version: Any) -> dict[str, Any]:
    """The three JSON Schema sections of a schema version, by wire name.

    `version` is a mapping (wire or Python names: customObjects or custom_objects) or an object
    with the attributes (SchemaSnapshot, SchemaVersion). A missing section allows anything.
    """
    if isinstance(version, Mapping):
        return {wire: version.get(wire, version.get(attr, {})) for wire, attr in SECTIONS}
    return {wire: getattr(version, attr, {}) for wire, attr in SECTIONS}


class SectionsLike(Protocol):
    """A SchemaSnapshot or SchemaVersion (the API models), without importing them."""

    labels: Any
    metadata: Any
    custom_objects: Any


def validate_model_config(
    schema: SectionsLike | Mapping[str, Any],
    labels: Mapping[str, Any],
    metadata: Mapping[str, Any],
    custom_objects: Mapping[str, Any],
) -> ConfigValidation:
    """Validate the three config sections, filling in schema defaults first.

    Never raises on bad input and never takes unbounded time: unusable schemas, non-object or
    oversized sections, and checks that exceed the work bound become problems.
    """
    sections = sections_of(schema)
    values: dict[str, Any] = {
        "labels": labels,
        "metadata": metadata,
        "customObjects": custom_objects,
    }
    problems: list[FieldProblem] = []
    defaulted: dict[str, dict[str, Any]] = {}
    patch: list[dict[str, Any]] = []
    for section, _ in SECTIONS:
        value = values[section]
        compiled = compile_section(sections[section])
        if not isinstance(value, Mapping):
            problems.append(FieldProblem(section, f"expected an object, found {hints.found(value)}"))
            defaulted[section] = {}
            continue
        too_big = size_problem(
            value, max_values=MAX_CONFIG_VALUES, max_depth=MAX_CONFIG_DEPTH, max_chars=MAX_CONFIG_CHARS
        )
        if too_big is not None:
            problems.append(FieldProblem(section, f"too large to check: {too_big} (see docs/schema.md, Bounds)"))
            defaulted[section] = dict(value)
            continue
        if compiled.validator is None or compiled.resolved is None:
            problems.append(FieldProblem(f"schema.{section}", compiled.problem or "unusable schema"))
            defaulted[section] = dict(value)
            continue
        ops: list[dict[str, Any]] = []
        filled = _apply_defaults(compiled.resolved.root, value, [section], ops)
        if ops and not value:
            # The section may be absent from the model object: add it whole rather than per key.
            ops = [{"op": "add", "path": json_pointer([section]), "value": copy.deepcopy(filled)}]
        patch.extend(ops)
        defaulted[section] = filled
        try:
            with engine.budget(MAX_VALIDATION_STEPS):
                found = list(_problems(section, compiled.validator, compiled.resolved, filled, value))
        except engine.WorkLimitExceeded:
            found = [
                FieldProblem(
                    section,
                    f"checking this config against the schema took more than {MAX_VALIDATION_STEPS:,} steps: "
                    "the schema is too complex (nested alternatives multiply the work; see docs/schema.md, Bounds)",
                )
            ]
        except (RecursionError, referencing.exceptions.Unresolvable) as error:
            found = [FieldProblem(section, f"cannot be checked: {_failure(error)}")]
        problems.extend(sorted(found, key=lambda p: p.path))
    return ConfigValidation(problems=tuple(problems), defaulted=defaulted, patch=patch)


def _apply_defaults(
    node: Node, instance: Mapping[str, Any], where: list[str], ops: list[dict[str, Any]]
) -> dict[str, Any]:
    """A copy of `instance` with missing properties that have a default filled in, recursively
    inside objects that are present. Combinators are not entered: which branch applies is
    ambiguous before validation. Terminates on recursive schemas: it descends with the value."""
    out = dict(instance)
    for name, child in properties(node).items():
        sub = flat_of(child)
        if not isinstance(sub, Mapping):
            continue
        if name not in out:
            if "default" in sub:
                value = copy.deepcopy(sub["default"])
                if isinstance(value, Mapping):
                    # A defaulted object gets its own properties' defaults too, as if the user had
                    # written it: omitting `c` and writing `c: {}` must give the same config. The
                    # patch adds the filled object whole, so the inner operations are not needed.
                    value = _apply_defaults(child, value, [*where, name], [])
                out[name] = value
                ops.append({"op": "add", "path": json_pointer([*where, name]), "value": copy.deepcopy(value)})
        elif isinstance(out[name], Mapping) and properties(sub):
            out[name] = _apply_defaults(child, out[name], [*where, name], ops)
    return out


def _problems(
    section: str,
    validator: Validator,
    resolved: ResolvedSection,
    instance: Mapping[str, Any],
    given: Mapping[str, Any],
) -> Iterator[FieldProblem]:
    """Problems of `instance` (defaults filled in); `given` is what the user wrote, for hints."""
    seen: set[tuple[str, str]] = set()
    # A value of the wrong type also fails its enum/bounds; the type error alone says it best.
    errors = list(validator.iter_errors(instance))
    mistyped = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    for error in errors:
        if error.validator != "type" and tuple(error.absolute_path) in mistyped:
            continue
        for parts, message in _messages(error, resolved, given):
            path = hints.field_path(section, parts)
            if (path, message) not in seen:
                seen.add((path, message))
                yield FieldProblem(path, message)


def _messages(error: ValidationError, section: ResolvedSection, given: Any = None) -> Iterator[tuple[list[Any], str]]:
    """(instance path parts, message) pairs for one jsonschema error, in user words."""
    parts = list(error.absolute_path)
    keyword = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    if keyword == "required" and isinstance(instance, Mapping):
        node = section.node_for(error.schema)
        props = properties(node if node is not None else error.schema)
        undeclared = [k for k in instance if k not in props]
        for name in value:
            if name in instance:
                continue
            expected = hints.describe(props.get(name, True))
            message = f"required property missing (expected {expected})"
            alias = hints.most_similar(name, undeclared)
            if alias is not None:
                message += f"; {alias!r} is set instead"
            yield [*parts, name], message
    elif keyword == "additionalProperties" and isinstance(instance, Mapping):
        yield from _undeclared(error, parts, instance, _at(given, parts))
    elif keyword == "type":
        yield (
            parts,
            f"expected {' or '.join(value) if isinstance(value, list) else value}, found {hints.found(instance)}",
        )
    elif keyword == "enum":
        yield (
            parts,
            f"expected one of {', '.join(hints.show(v) for v in value)}, found {hints.show(instance)}",
        )
    elif keyword == "const":
        yield parts, f"expected exactly {hints.show(value)}, found {hints.show(instance)}"
    elif keyword in _BOUNDS:
        yield (
            parts,
            f"expected {_BOUNDS[keyword]} {hints.show(value)}, found {hints.show(instance)}",
        )
    elif keyword in _SIZES:
        noun, size_of = _SIZES[keyword]
        yield parts, f"expected {noun.format(value)}, found {size_of(instance)}"
    elif keyword == "pattern":
        yield parts, f"expected a string matching {hints.show(value)}, found {hints.show(instance)}"
    elif keyword == "format":
        yield parts, f"expected a valid {value}, found {hints.show(instance)}"
    elif keyword == "multipleOf":
        yield parts, f"expected a multiple of {hints.show(value)}, found {hints.show(instance)}"
    elif keyword == "uniqueItems":
        yield parts, "expected unique items, found duplicates"
    elif keyword in ("anyOf", "oneOf"):
        if keyword == "oneOf" and not error.context:
            yield (
                parts,
                f"{hints.show(instance)} matches more than one of the alternatives, expected exactly one",
            )
        else:
            yield parts, f"expected {hints.describe(error.schema)}, found {hints.found(instance)}"
    elif keyword in (None, "not", "false"):
        yield parts, f"{hints.show(instance)} is not allowed here"
    else:
        yield parts, error.message


_BOUNDS = {
    "minimum": "a value >=",
    "maximum": "a value <=",
    "exclusiveMinimum": "a value >",
    "exclusiveMaximum": "a value <",
}


def _len_text(value: Any, unit: str) -> str:
    size = len(value) if hasattr(value, "__len__") else 0
    return f"{size} {unit}{'' if size == 1 else 's'}"


_SIZES: dict[str, tuple[str, Any]] = {
    "minLength": (
        "at least {} characters",
        lambda v: f"{_len_text(v, 'character')} ({hints.show(v)})",
    ),
    "maxLength": (
        "at most {} characters",
        lambda v: f"{_len_text(v, 'character')} ({hints.show(v)})",
    ),
    "minItems": ("at least {} items", lambda v: _len_text(v, "item")),
    "maxItems": ("at most {} items", lambda v: _len_text(v, "item")),
    "minProperties": ("at least {} properties", lambda v: _len_text(v, "property")),
    "maxProperties": ("at most {} properties", lambda v: _len_text(v, "property")),
}


def _undeclared(
    error: ValidationError, parts: list[Any], instance: Mapping[str, Any], given: Any
) -> Iterator[tuple[list[Any], str]]:
    schema = error.schema
    props = properties(schema)
    patterns = schema.get("patternProperties", {}) if isinstance(schema, Mapping) else {}
    missing_required = [
        r for r in (schema.get("required", []) if isinstance(schema, Mapping) else []) if r not in instance
    ]
    # A property filled in from its default was not set by the user: it may be what they meant.
    user_keys = given if isinstance(given, Mapping) else instance
    unset_optional = [p for p in props if p not in user_keys and p not in missing_required]
    for key in instance:
        if key in props or any(_matches(p, key) for p in patterns):
            continue
        if _raw_undeclared(schema, key) is not False:
            continue
        hint = hints.most_similar(key, missing_required)
        if hint is not None:
            yield [*parts, key], f"not allowed; did you mean {hint!r} (required)?"
            continue
        hint = hints.most_similar(key, unset_optional)
        if hint is not None:
            yield [*parts, key], f"not allowed; did you mean {hint!r}?"
        elif props and len(props) <= 12:
            yield [*parts, key], f"not allowed (allowed: {', '.join(sorted(props))})"
        else:
            yield [*parts, key], "not allowed: the schema declares no such property"


def _at(value: Any, parts: list[Any]) -> Any:
    """The part of `value` at an instance path, or None."""
    for part in parts:
        if (isinstance(value, Mapping) and part in value) or (
            isinstance(value, list) and isinstance(part, int) and part < len(value)
        ):
            value = value[part]
        else:
            return None
    return value


def _matches(pattern: str, key: str) -> bool:
    return regex.search(pattern, key)


def _raw_undeclared(schema: Any, name: str) -> Any:
    """The raw schema jsonschema checked an undeclared property `name` with."""
    if not isinstance(schema, Mapping):
        return schema
    patterns = schema.get("patternProperties")
    if isinstance(patterns, Mapping):
        for pattern, sub in patterns.items():
            if regex.search(pattern, name):
                return sub
    return schema.get("additionalProperties", True)


__all__ = [
    "SECTIONS",
    "CompiledSection",
    "ConfigValidation",
    "FieldProblem",
    "compile_section",
    "schema_problem",
    "sections_of",
    "validate_model_config",
]
