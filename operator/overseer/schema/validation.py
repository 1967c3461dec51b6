"""Checks a model's labels, metadata and customObjects against one ModelSchema version.

Pure and cheap: each distinct schema section is compiled once and cached, so the admission
webhook and the serving pod can call this on every request; every check is bounded (limits.py).
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

from overseer import text as hints
from overseer.schema import engine
from overseer.schema.engine import Evaluation, Failure
from overseer.schema.jsonschema_walk import flat_of, json_pointer, properties, required
from overseer.schema.limits import (
    MAX_CONFIG_CHARS,
    MAX_CONFIG_DEPTH,
    MAX_CONFIG_VALUES,
    MAX_EVALUATION_DEPTH,
    MAX_PROBLEMS,
    MAX_SCHEMA_DEPTH,
    MAX_SCHEMA_VALUES,
    MAX_VALIDATION_STEPS,
    count_values,
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
    """One section's JSON Schema, checked once: either resolved and ready, or the reason it is unusable."""

    schema: Any
    problem: str | None
    resolved: ResolvedSection | None = None
    """The section resolved once: what the validator, the default filler, the messages and the
    compatibility walk use (None when the section is unusable)."""
    key: str | None = None
    """Canonical JSON of the schema (equal keys, equal sections); None when it is not JSON."""


_CACHE_SIZE = 512
_cache: OrderedDict[str, CompiledSection] = OrderedDict()
# Admission webhooks and serving threads call compile_section concurrently: an unguarded hit could
# be evicted by another thread between the lookup and move_to_end (KeyError).
_cache_lock = threading.Lock()


def compile_section(schema: Any) -> CompiledSection:
    """Check a section's JSON Schema and resolve it; cached by content (its JSON text)."""
    if not isinstance(schema, Mapping | bool):
        return CompiledSection(schema, f"not a valid JSON Schema: expected an object, found {hints.found(schema)}")
    # Measured before anything recursive touches it (json.dumps, the metaschema check).
    too_big = size_problem(schema, max_values=MAX_SCHEMA_VALUES, max_depth=MAX_SCHEMA_DEPTH)
    if too_big is not None:
        return CompiledSection(schema, f"not a usable JSON Schema: {too_big} (see docs/schema.md, Bounds)")
    try:
        key = json.dumps(schema, separators=(",", ":"))
    except (TypeError, ValueError):
        # Non-JSON values such as NaN-free floats that json refuses: not cacheable, and not valid.
        return CompiledSection(schema, "not a valid JSON Schema: keys must be strings and values JSON")
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    # Compile outside the lock: it is the slow part, and two threads compiling the same section
    # at once only waste a little work. It works on its own copy (read back from the key, faster
    # than copying in Python), so a caller changing its document later cannot change the cache.
    compiled = dataclasses.replace(_compile(json.loads(key)), key=key)
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
    except RecursionError:
        # Bounds above make this unreachable for what we know of; a schema must still never crash us.
        return CompiledSection(schema, "not a usable JSON Schema: nested too deeply to check")


def _compile_checked(schema: Any) -> CompiledSection:
    if isinstance(schema, Mapping):
        declared = schema.get("type")
        if declared is not None and "object" not in (declared if isinstance(declared, list) else [declared]):
            return CompiledSection(
                schema,
                f"must describe an object (type: object), found type {hints.show(declared)}",
            )
    try:
        section = resolve_section(schema)
    except SchemaProblem as error:
        return CompiledSection(schema, "not a valid JSON Schema: " + str(error))
    try:
        problem = _check_defaults(section)
    except engine.EvaluationTooDeep:
        problem = f"checking the defaults nested more than {MAX_EVALUATION_DEPTH} subschemas: the schema is too deep"
    except engine.WorkLimitExceeded:
        problem = f"checking the defaults took more than {MAX_VALIDATION_STEPS:,} steps: the schema is too complex"
    if problem:
        return CompiledSection(schema, problem, None)
    return CompiledSection(schema, None, section)


def _check_defaults(section: ResolvedSection) -> str | None:
    """A default that violates its own schema would make every defaulted config invalid. One budget
    and one memo for all the defaults of the section."""
    evaluation = Evaluation(section, MAX_VALIDATION_STEPS)
    for node in list(section.nodes.values()):
        for name, child in properties(node.schema).items():
            sub = section.node_for(child)
            if sub is None:
                continue
            # The default the filler applies (the flat view's); a plain subschema is its own flat view.
            if sub.ref is None and not sub.dynamic_refs and "allOf" not in child:
                if "default" not in child:
                    continue
                default = child["default"]
            else:
                flat = sub.flat
                if not isinstance(flat, Mapping) or "default" not in flat:
                    continue
                default = flat["default"]
            failures = evaluation.failures(sub, default)
            if failures:
                path = hints.field_path("", [*_property_path(node.pointer), name])
                return f"default of {path} is invalid: {_explain_one(failures[0])}"
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


def _explain_one(failure: Failure) -> str:
    messages = list(_messages(failure))
    return messages[0][1] if messages else f"not allowed by {failure.keyword}"


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
        if compiled.resolved is None:
            problems.append(FieldProblem(f"schema.{section}", compiled.problem or "unusable schema"))
            defaulted[section] = dict(value)
            continue
        ops: list[dict[str, Any]] = []
        try:
            filled = _Filler().fill(compiled.resolved.root, value, [section], ops)
        except _FillLimit:
            problems.append(
                FieldProblem(
                    section,
                    f"filling in the schema's defaults would add more than {MAX_CONFIG_VALUES:,} values or take "
                    f"more than {MAX_VALIDATION_STEPS:,} steps: the schema's defaults are too large "
                    "(see docs/schema.md, Bounds)",
                )
            )
            defaulted[section] = dict(value)
            continue
        if ops and not value:
            # The section may be absent from the model object: add it whole rather than per key.
            ops = [{"op": "add", "path": json_pointer([section]), "value": copy.deepcopy(filled)}]
        patch.extend(ops)
        defaulted[section] = filled
        try:
            found = list(_problems(section, compiled.resolved, filled, value))
        except engine.EvaluationTooDeep:
            found = [
                FieldProblem(
                    section,
                    f"checking this config against the schema nested more than {MAX_EVALUATION_DEPTH} subschemas "
                    "one inside another: the schema is too deep (see docs/schema.md, Bounds)",
                )
            ]
        except engine.WorkLimitExceeded:
            found = [
                FieldProblem(
                    section,
                    f"checking this config against the schema took more than {MAX_VALIDATION_STEPS:,} steps: "
                    "the schema is too complex (nested alternatives multiply the work; see docs/schema.md, Bounds)",
                )
            ]
        except RecursionError:  # unreachable under the depth bound; never a crash all the same
            found = [FieldProblem(section, "cannot be checked: nested too deeply to check")]
        found.sort(key=lambda p: p.path)
        if len(found) > MAX_PROBLEMS:
            more = len(found) - MAX_PROBLEMS
            found[MAX_PROBLEMS:] = [FieldProblem(section, f"{more:,} more problems not listed")]
        problems.extend(found)
    return ConfigValidation(problems=tuple(problems), defaulted=defaulted, patch=patch)


class _FillLimit(Exception):
    """Filling in the defaults would add too much or take too long."""


class _Filler:
    """Fills in the schema's defaults: missing properties that have a default, inside objects that
    are present too. Combinators are not entered: which branch applies is ambiguous before
    validation. Bounded: the values it adds (limits.MAX_CONFIG_VALUES) and its work (the same steps
    as validation), so a schema whose defaults refer back to themselves (a property defaulting to
    `{}` whose schema is the object itself) ends instead of expanding forever."""

    def __init__(self) -> None:
        self.steps = MAX_VALIDATION_STEPS * 8  # cheap operations: a step scans eight values
        self.added = 0
        self._plans: dict[int, tuple[list[tuple[str, Node, Any]], dict[str, Node]]] = {}

    def _spend(self, operations: int) -> None:
        self.steps -= operations
        if self.steps < 0:
            raise _FillLimit

    def _plan(self, node: Node) -> tuple[list[tuple[str, Node, Any]], dict[str, Node]]:
        """(properties with a default, properties whose schema has properties) of a node, once."""
        known = self._plans.get(id(node))
        if known is None:
            props = properties(node)
            self._spend(len(props))
            defaulted: list[tuple[str, Node, Any]] = []
            nested: dict[str, Node] = {}
            for name, child in props.items():
                sub = flat_of(child)
                if isinstance(sub, Mapping):
                    if "default" in sub:
                        defaulted.append((name, child, sub["default"]))
                    if properties(sub):
                        nested[name] = child
            known = self._plans[id(node)] = (defaulted, nested)
        return known

    def fill(
        self,
        node: Node,
        instance: Mapping[str, Any],
        where: list[str],
        ops: list[dict[str, Any]],
        expanding: frozenset[int] = frozenset(),
    ) -> dict[str, Any]:
        """A copy of `instance` with the defaults filled in; `ops` gets the patch operations.
        `expanding`: nodes whose default is being filled in further up (not expanded again)."""
        defaulted, nested = self._plan(node)
        out = dict(instance)
        self._spend(len(out) + len(defaulted))
        for name, child, default in defaulted:
            if name in out:
                continue
            value = copy.deepcopy(default)
            self.added += count_values(value)
            if self.added > MAX_CONFIG_VALUES:
                raise _FillLimit
            if isinstance(value, dict) and id(child) not in expanding and len(where) < MAX_CONFIG_DEPTH:
                # A defaulted object gets its own properties' defaults too, as if the user had
                # written it: omitting `c` and writing `c: {}` must give the same config. The
                # patch adds the filled object whole, so the inner operations are not needed.
                value = self.fill(child, value, [*where, name], [], expanding | {id(child)})
            out[name] = value
            ops.append({"op": "add", "path": json_pointer([*where, name]), "value": copy.deepcopy(value)})
        present = [n for n in nested if n in instance] if len(nested) <= len(instance) else list(instance)
        for name in present:
            schema = nested.get(name)
            if schema is not None and isinstance(out[name], dict):
                out[name] = self.fill(schema, out[name], [*where, name], ops, expanding)
        return out


def _problems(
    section: str,
    resolved: ResolvedSection,
    instance: Mapping[str, Any],
    given: Mapping[str, Any],
) -> Iterator[FieldProblem]:
    """Problems of `instance` (defaults filled in); `given` is what the user wrote, for hints."""
    seen: set[tuple[str, str]] = set()
    similar = _Similar()
    failures = Evaluation(resolved, MAX_VALIDATION_STEPS).failures(resolved.root, instance)
    # A value of the wrong type also fails its enum/bounds; the type error alone says it best.
    mistyped = {f.path for f in failures if f.keyword == "type"}
    for failure in failures:
        if failure.keyword != "type" and failure.path in mistyped:
            continue
        for parts, message in _messages(failure, given, similar):
            path = hints.field_path(section, parts)
            if (path, message) not in seen:
                seen.add((path, message))
                yield FieldProblem(path, message)


_HINT_COMPARISONS = 500
"""Name comparisons for "did you mean" hints in one check (each costs up to tens of microseconds):
enough for a handful of misspelt keys against a schema of a hundred properties; a config with
hundreds of unknown keys gets plain messages past this."""


class _Similar:
    """hints.most_similar within a budget of comparisons per check."""

    def __init__(self) -> None:
        self.left = _HINT_COMPARISONS

    def __call__(self, name: str, candidates: list[str]) -> str | None:
        if len(candidates) > self.left:
            return None  # too many to compare within what is left: a plain message
        self.left -= len(candidates)
        return hints.most_similar(name, candidates)


def _messages(failure: Failure, given: Any = None, similar: _Similar | None = None) -> Iterator[tuple[list[Any], str]]:
    """(instance path parts, message) pairs for one failure, in user words."""
    keyword, instance = failure.keyword, failure.instance
    if keyword in ("required", "dependentRequired", "additionalProperties", "unevaluatedProperties"):
        if isinstance(instance, Mapping):
            yield from _object_messages(failure, instance, given, similar or _Similar())
        return
    if keyword == "unevaluatedItems" and isinstance(instance, list | tuple):
        for index in failure.keys:
            message = f"{hints.show(instance[index])} is not allowed here (no subschema allows this item)"
            yield [*failure.path, index], message
        return
    yield list(failure.path), _value_message(failure)


def _object_messages(
    failure: Failure, instance: Mapping[str, Any], given: Any, similar: _Similar
) -> Iterator[tuple[list[Any], str]]:
    """Missing and undeclared properties, each at its own path, with rename hints."""
    parts, keyword, value, node = list(failure.path), failure.keyword, failure.value, failure.node
    if keyword == "required":
        props = properties(node)
        undeclared = [k for k in instance if k not in props]
        for name in value:
            if name in instance:
                continue
            expected = hints.describe(props.get(name, True))
            message = f"required property missing (expected {expected})"
            alias = similar(name, undeclared)
            if alias is not None:
                message += f"; {alias!r} is set instead"
            yield [*parts, name], message
    elif keyword == "dependentRequired":
        props = properties(node)
        for name, needed in value.items():
            for other in needed:
                if other not in instance:
                    expected = hints.describe(props.get(other, True))
                    yield [*parts, other], f"required property missing when {name!r} is set (expected {expected})"
    else:
        yield from _undeclared(failure, parts, instance, _at(given, parts), similar)


def _value_message(failure: Failure) -> str:
    """What one keyword expected of a value, and what it found."""
    keyword, value, instance = failure.keyword, failure.value, failure.instance
    if keyword == "type":
        return f"expected {' or '.join(value) if isinstance(value, list) else value}, found {hints.found(instance)}"
    if keyword == "enum":
        return f"expected one of {', '.join(hints.show(v) for v in value)}, found {hints.show(instance)}"
    if keyword == "const":
        return f"expected exactly {hints.show(value)}, found {hints.show(instance)}"
    if keyword in _BOUNDS:
        return f"expected {_BOUNDS[keyword]} {hints.show(value)}, found {hints.show(instance)}"
    if keyword in _SIZES:
        noun, size_of = _SIZES[keyword]
        return f"expected {noun.format(value)}, found {size_of(instance)}"
    if keyword in _STRING_WORDS:
        return f"expected {_STRING_WORDS[keyword]} {hints.show(value)}, found {hints.show(instance)}"
    if keyword == "format":
        return f"expected a valid {value}, found {hints.show(instance)}"
    if keyword == "uniqueItems":
        return "expected unique items, found duplicates"
    if keyword in ("items", "additionalItems"):
        return f"expected at most {_count(value, 'item')}, found {_len_text(instance, 'item')}"
    if keyword in ("contains", "maxContains"):
        bound = "at least" if keyword == "contains" else "at most"
        matching = hints.describe(failure.node.children.get("contains"))
        return f"expected {bound} {_count(value, 'item')} matching {matching}, found {failure.matches}"
    if keyword in ("anyOf", "oneOf"):
        if keyword == "oneOf" and failure.matches > 1:
            return f"{hints.show(instance)} matches more than one of the alternatives, expected exactly one"
        return f"expected {hints.describe(failure.node)}, found {hints.found(instance)}"
    if keyword == "metaschema":
        return f"expected a valid JSON Schema here: {hints.one_line(str(value))}"
    return f"{hints.show(instance)} is not allowed here"  # not, false


_STRING_WORDS = {"pattern": "a string matching", "multipleOf": "a multiple of"}
_BOUNDS = {
    "minimum": "a value >=",
    "maximum": "a value <=",
    "exclusiveMinimum": "a value >",
    "exclusiveMaximum": "a value <",
}


def _len_text(value: Any, unit: str) -> str:
    return _count(len(value) if hasattr(value, "__len__") else 0, unit)


def _count(size: Any, unit: str) -> str:
    size = int(size) if isinstance(size, float) and size.is_integer() else size
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
    failure: Failure, parts: list[Any], instance: Mapping[str, Any], given: Any, similar: _Similar
) -> Iterator[tuple[list[Any], str]]:
    node = failure.node
    if failure.keyword == "additionalProperties":
        # additionalProperties sees the properties of its own schema object only (not those of an
        # allOf next to it): listing others as allowed would be wrong.
        raw = node.schema if isinstance(node.schema, Mapping) else {}
        declared = raw.get("properties")
        props: Mapping[str, Any] = declared if isinstance(declared, Mapping) else {}
        demanded = raw.get("required")
        needed = demanded if isinstance(demanded, list) else []
    else:
        props, needed = properties(node), sorted(required(node))
    missing_required = [r for r in needed if r not in instance]
    # A property filled in from its default was not set by the user: it may be what they meant.
    user_keys = given if isinstance(given, Mapping) else instance
    unset_optional = [p for p in props if p not in user_keys and p not in missing_required]
    for key in failure.keys:
        hint = similar(key, missing_required)
        if hint is not None:
            yield [*parts, key], f"not allowed; did you mean {hint!r} (required)?"
            continue
        hint = similar(key, unset_optional)
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
