"""The keywords of the schema core's validator (overseer.schema.engine): what each asserts, and
what it costs in steps.

Each keyword of a node is prepared once into a plan (`plan_of`: handler and prepared value, in
schema order; draft-07 ignores the siblings of `$ref`). A handler takes (evaluation, node, prepared
value, instance, path, out) and returns whether the instance passed; with `out` it appends its
Failures, without it may stop at the first. Regular expressions run on RE2 (overseer.schema.regex),
formats are overseer.schema.formats.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.exceptions import best_match

from overseer.schema import regex
from overseer.schema.formats import format_cost
from overseer.schema.jsonschema_walk import types_of
from overseer.schema.limits import count_values
from overseer.schema.resolved import DRAFT_07, Node

if TYPE_CHECKING:
    from overseer.schema.engine import Evaluation

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Failure:
    """One keyword that rejected a value."""

    keyword: str
    """The keyword: `type`, `required`, `anyOf`, ...; `false` for a schema that is `false`."""
    value: Any
    """The keyword's value in the schema."""
    instance: Any
    """The value that was checked."""
    path: tuple[str | int, ...]
    """Where that value is in the config section."""
    node: Node
    """The subschema holding the keyword."""
    matches: int = 0
    """`oneOf`: how many alternatives matched (0 or more than 1); `contains`: how many items did."""
    keys: tuple[Any, ...] = ()
    """`additionalProperties` / `unevaluatedProperties`: the properties refused; `unevaluatedItems`:
    the indexes."""


# --- values -------------------------------------------------------------------------------------------


def kind(value: Any) -> str:
    """The JSON type of a value as JSON Schema tests it: 1.0 is an integer, true is not."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    if value is None:
        return "null"
    return "unknown"


def key_of(value: Any) -> Any:
    """A hashable form of a JSON value under JSON Schema equality (1 == 1.0, true != 1)."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, dict):
        return ("o", frozenset((k, key_of(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("a", tuple(key_of(v) for v in value))
    return value


# --- the keyword plan of a node -----------------------------------------------------------------------

_Handler = Callable[["Evaluation", Node, Any, Any, tuple[str | int, ...], "list[Failure] | None"], bool]


def _plan(node: Node) -> list[tuple[_Handler, Any]]:
    """(handler, prepared value) for each keyword of the node that asserts something, in schema order.
    Built once per node; draft-07 ignores the siblings of `$ref`."""
    raw = node.schema
    draft7 = node.graph.dialect == DRAFT_07
    handlers = _DRAFT7 if draft7 else _DRAFT2020
    items: Any = raw.items()
    if draft7 and "$ref" in raw:
        items = [("$ref", raw["$ref"])]
    plan: list[tuple[_Handler, Any]] = []
    for keyword, value in items:
        handler = handlers.get(keyword)
        if handler is None:
            continue
        prepared = _PREPARE[keyword](node, value) if keyword in _PREPARE else value
        if prepared is _SKIP:
            continue
        plan.append((handler, prepared))
    return plan


_SKIP = object()


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list, tuple),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _prepare_type(node: Node, value: Any) -> Any:
    names = {value} if isinstance(value, str) else set(value)
    if "number" in names:
        names.add("integer")
    # The exact Python types that pass, for a one-lookup test of plain JSON values (bool is not
    # int here: type(True) is bool); anything else goes through kind().
    exact = frozenset(t for name in names for t in _PYTHON_TYPES[name])
    return (frozenset(names), value, exact)


def _prepare_enum(node: Node, value: Any) -> Any:
    return (frozenset(key_of(v) for v in value), value)


def _prepare_const(node: Node, value: Any) -> Any:
    return (key_of(value), value)


def _prepare_number(node: Node, value: Any) -> Any:
    # Draft-4 style boolean exclusive flags are not keywords of these dialects: nothing to check.
    return value if isinstance(value, int | float) and not isinstance(value, bool) else _SKIP


def _child(keyword: str) -> Callable[[Node, Any], Any]:
    def prepare(node: Node, value: Any) -> Any:
        found = node.children.get(keyword)
        return found if isinstance(found, Node) else _SKIP

    return prepare


def _children(keyword: str) -> Callable[[Node, Any], Any]:
    def prepare(node: Node, value: Any) -> Any:
        found = node.children.get(keyword)
        if not isinstance(found, dict):
            return _SKIP
        return [found[i] for i in sorted(found)] if keyword in ("allOf", "anyOf", "oneOf", "prefixItems") else found

    return prepare


def _prepare_items(node: Node, value: Any) -> Any:
    found = node.children.get("items")
    if isinstance(found, dict):  # draft-07 list form
        return [found[i] for i in sorted(found)]
    return found if isinstance(found, Node) else _SKIP


def _prepare_additional_items(node: Node, value: Any) -> Any:
    items = node.schema.get("items")
    found = node.children.get("additionalItems")
    if not isinstance(items, list) or not isinstance(found, Node):
        return _SKIP  # draft-07: additionalItems only applies after a list of items
    return (len(items), found)


def _prepare_properties(node: Node, value: Any) -> Any:
    found = node.children.get("properties")
    return found if isinstance(found, dict) else _SKIP


def _prepare_additional(node: Node, value: Any) -> Any:
    found = node.children.get("additionalProperties")
    if not isinstance(found, Node) or found.schema is True:
        return _SKIP
    declared = node.schema.get("properties")
    patterns = node.schema.get("patternProperties")
    return (
        found,
        declared if isinstance(declared, Mapping) else {},
        [regex.compile_pattern(p) for p in patterns] if isinstance(patterns, Mapping) else [],
    )


def _prepare_pattern_properties(node: Node, value: Any) -> Any:
    found = node.children.get("patternProperties")
    if not isinstance(found, dict):
        return _SKIP
    return [(regex.compile_pattern(p), child) for p, child in found.items()]


def _prepare_pattern(node: Node, value: Any) -> Any:
    return (regex.compile_pattern(value), value)


def _prepare_dependencies(node: Node, value: Any) -> Any:
    schemas = node.children.get("dependencies", {})
    return [(name, schemas.get(name) if not isinstance(need, list) else list(need)) for name, need in value.items()]


def _prepare_contains(node: Node, value: Any) -> Any:
    found = node.children.get("contains")
    if not isinstance(found, Node):
        return _SKIP
    if node.graph.dialect == DRAFT_07:
        return (found, 1, None)
    low, high = node.schema.get("minContains", 1), node.schema.get("maxContains")
    return (found, low, high)


_PREPARE: dict[str, Callable[[Node, Any], Any]] = {
    "type": _prepare_type,
    "enum": _prepare_enum,
    "const": _prepare_const,
    "minimum": _prepare_number,
    "maximum": _prepare_number,
    "exclusiveMinimum": _prepare_number,
    "exclusiveMaximum": _prepare_number,
    "multipleOf": _prepare_number,
    "pattern": _prepare_pattern,
    "properties": _prepare_properties,
    "patternProperties": _prepare_pattern_properties,
    "additionalProperties": _prepare_additional,
    "propertyNames": _child("propertyNames"),
    "unevaluatedProperties": _child("unevaluatedProperties"),
    "unevaluatedItems": _child("unevaluatedItems"),
    "dependentSchemas": _children("dependentSchemas"),
    "dependencies": _prepare_dependencies,
    "allOf": _children("allOf"),
    "anyOf": _children("anyOf"),
    "oneOf": _children("oneOf"),
    "not": _child("not"),
    "if": _child("if"),
    "prefixItems": _children("prefixItems"),
    "items": _prepare_items,
    "additionalItems": _prepare_additional_items,
    "contains": _prepare_contains,
}


def _fail(out: list[Failure] | None, *failure: Any, **details: Any) -> bool:
    """False; with `out`, the failure is recorded (built only then: most checks only ask yes or no)."""
    if out is not None:
        out.append(Failure(*failure, **details))
    return False


# --- keywords -----------------------------------------------------------------------------------------
# Each takes (evaluation, node, prepared value, instance, path, out) and returns whether the instance
# passed; with `out` it appends its failures, without it may stop early.


def _type(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    allowed, raw, exact = value
    if type(instance) in exact or kind(instance) in allowed:
        return True
    return _fail(out, "type", raw, instance, path, node)


def _enum(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    keys, raw = value
    try:
        if ev.key(instance) in keys:
            return True
    except TypeError:  # pragma: no cover - unhashable values never come out of JSON
        pass
    return _fail(out, "enum", raw, instance, path, node)


def _const(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    expected, raw = value
    if ev.key(instance) == expected:
        return True
    return _fail(out, "const", raw, instance, path, node)


def _number(instance: Any) -> bool:
    return isinstance(instance, int | float) and not isinstance(instance, bool)


def _bound(keyword: str, holds: Callable[[Any, Any], bool]) -> _Handler:
    def check(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
        if not _number(instance) or holds(instance, value):
            return True
        return _fail(out, keyword, value, instance, path, node)

    return check


def _multiple_of(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    if not _number(instance):
        return True
    if isinstance(value, float):
        quotient = instance / value
        try:
            failed = int(quotient) != quotient
        except (OverflowError, ValueError):
            failed = (Fraction(instance) / Fraction(value)).denominator != 1
    else:
        failed = bool(instance % value)
    return not failed or _fail(out, "multipleOf", value, instance, path, node)


def _size_check(keyword: str, of: Any, holds: Callable[[int, Any], bool]) -> _Handler:
    def check(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
        if not isinstance(instance, of) or holds(len(instance), value):
            return True
        return _fail(out, keyword, value, instance, path, node)

    return check


def _pattern(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    if not isinstance(instance, str):
        return True
    program, raw = value
    ev.spend(len(instance) >> 10)  # RE2 is linear in the text: long texts cost more
    if program.search(instance):
        return True
    return _fail(out, "pattern", raw, instance, path, node)


def _format(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    if isinstance(instance, str):
        ev.spend(format_cost(value, instance))
    if ev.formats.conforms(instance, value):
        return True
    return _fail(out, "format", value, instance, path, node)


# Objects


def _properties(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    if not isinstance(instance, dict):
        return True
    ok = True
    if len(value) <= len(instance):
        ev.spend(len(value) >> 3)
        pairs = [(name, child) for name, child in value.items() if name in instance]
    else:
        ev.spend(len(instance) >> 3)
        pairs = [(name, value[name]) for name in instance if name in value]
    for name, child in pairs:
        if not ev.check(child, instance[name], (*path, name), out):
            ok = False
            if out is None:
                return False
    return ok


def _pattern_properties(
    ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None
) -> bool:
    if not isinstance(instance, dict):
        return True
    ok = True
    for program, child in value:
        ev.spend(len(instance))  # a search per name
        for name, item in instance.items():
            if program.search(name) and not ev.check(child, item, (*path, name), out):
                ok = False
                if out is None:
                    return False
    return ok


def _additional_properties(
    ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None
) -> bool:
    if not isinstance(instance, dict):
        return True
    child, declared, programs = value
    ev.spend((len(instance) >> 3) + len(instance) * len(programs))  # lookups, and a search per name and pattern
    extras = [name for name in instance if name not in declared and not any(p.search(name) for p in programs)]
    if not extras:
        return True
    if child.schema is False:
        return _fail(out, "additionalProperties", False, instance, path, node, keys=tuple(extras))
    ok = True
    for name in extras:
        if not ev.check(child, instance[name], (*path, name), out):
            ok = False
            if out is None:
                return False
    return ok


def _property_names(
    ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None
) -> bool:
    if not isinstance(instance, dict):
        return True
    ok = True
    for name in instance:
        if not ev.check(value, name, path, out):
            ok = False
            if out is None:
                return False
    return ok


def _required(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    if not isinstance(instance, dict):
        return True
    if len(value) > 8:
        ev.spend(len(value) >> 3)
    for name in value:
        if name not in instance:
            return _fail(out, "required", value, instance, path, node)
    return True


def _dependent_required(
    ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None
) -> bool:
    if not isinstance(instance, dict):
        return True
    ev.spend(len(value) >> 3)
    ok = True
    for name, needed in value.items():
        if name in instance and any(other not in instance for other in needed):
            ok = _fail(out, "dependentRequired", {name: needed}, instance, path, node)
            if out is None:
                return False
    return ok


def _dependent_schemas(
    ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None
) -> bool:
    if not isinstance(instance, dict):
        return True
    ok = True
    for name, child in value.items():
        if name in instance and not ev.check(child, instance, path, out):
            ok = False
            if out is None:
                return False
    return ok


def _dependencies(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    """draft-07: an array of property names, or a schema, per property."""
    if not isinstance(instance, dict):
        return True
    ev.spend(len(value) >> 3)
    ok = True
    for name, need in value:
        if name not in instance:
            continue
        if isinstance(need, list):
            passed = all(other in instance for other in need) or _fail(
                out, "dependentRequired", {name: need}, instance, path, node
            )
        else:
            passed = need is None or ev.check(need, instance, path, out)
        if not passed:
            ok = False
            if out is None:
                return False
    return ok


def _unevaluated_properties(
    ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None
) -> bool:
    if not isinstance(instance, dict):
        return True
    evaluated = ev.evaluated_keys(node, instance)
    rest = [name for name in instance if name not in evaluated]
    if not rest or value.schema is True:
        return True
    if value.schema is False:
        return _fail(out, "unevaluatedProperties", False, instance, path, node, keys=tuple(rest))
    ok = True
    for name in rest:
        if not ev.check(value, instance[name], (*path, name), out):
            ok = False
            if out is None:
                return False
    return ok


# Arrays


def _items_from(
    ev: Evaluation, node: Node, child: Node, start: int, keyword: str, instance: Any, path: Path, out: Any
) -> bool:
    if len(instance) <= start:
        return True
    if child.schema is False:
        return _fail(out, keyword, start, instance, path, node)
    ok = True
    for index in range(start, len(instance)):
        if not ev.check(child, instance[index], (*path, index), out):
            ok = False
            if out is None:
                return False
    return ok


def _prefix(ev: Evaluation, node: Node, children: list[Node], instance: Any, path: Path, out: Any) -> bool:
    ok = True
    for index, (child, item) in enumerate(zip(children, instance, strict=False)):
        if not ev.check(child, item, (*path, index), out):
            ok = False
            if out is None:
                return False
    return ok


def _prefix_items(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    return not isinstance(instance, list | tuple) or _prefix(ev, node, value, instance, path, out)


def _items(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    if not isinstance(instance, list | tuple):
        return True
    if isinstance(value, list):  # draft-07 list form
        return _prefix(ev, node, value, instance, path, out)
    prefix = node.schema.get("prefixItems") if node.graph.dialect != DRAFT_07 else None
    start = len(prefix) if isinstance(prefix, list) else 0
    return _items_from(ev, node, value, start, "items", instance, path, out)


def _additional_items(
    ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None
) -> bool:
    if not isinstance(instance, list | tuple):
        return True
    start, child = value
    return _items_from(ev, node, child, start, "additionalItems", instance, path, out)


def _unevaluated_items(
    ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None
) -> bool:
    if not isinstance(instance, list | tuple) or value.schema is True:
        return True
    evaluated = ev.evaluated_items(node, instance)
    rest = [index for index in range(len(instance)) if index not in evaluated]
    if not rest:
        return True
    if value.schema is False:
        return _fail(out, "unevaluatedItems", False, instance, path, node, keys=tuple(rest))
    ok = True
    for index in rest:
        if not ev.check(value, instance[index], (*path, index), out):
            ok = False
            if out is None:
                return False
    return ok


def _unique_items(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    if value is not True or not isinstance(instance, list | tuple):
        return True
    ev.spend(len(instance) >> 3)
    keys = [ev.key(item) for item in instance]
    if len(set(keys)) == len(keys):
        return True
    return _fail(out, "uniqueItems", True, instance, path, node)


def _contains(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    if not isinstance(instance, list | tuple):
        return True
    child, low, high = value
    matches = 0
    for item in instance:
        if ev.check(child, item, (), None):
            matches += 1
            if high is not None and matches > high:
                return _fail(out, "maxContains", high, instance, path, node, matches=matches)
    if matches >= low:
        return True
    return _fail(out, "contains", low, instance, path, node, matches=matches)


# Applicators


def _ref(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    target = node.ref
    return target is None or ev.check(target, instance, path, out)


def _dynamic_ref(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    if not node.dynamic_refs:
        return True
    return ev.check(ev.dynamic_target(node), instance, path, out)


def _all_of(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    ok = True
    for child in value:
        if not ev.check(child, instance, path, out):
            ok = False
            if out is None:
                return False
    return ok


def _any_of(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    for child in value:
        if ev.check(child, instance, (), None):
            return True
    return _no_alternative(ev, node, "anyOf", value, instance, path, out)


_CLOSEST_TRIED = 4
"""Alternatives of the value's type tried for a closer message (each costs a full check)."""


def _no_alternative(
    ev: Evaluation, node: Node, keyword: str, value: Any, instance: Any, path: Path, out: list[Failure] | None
) -> bool:
    """No alternative matched. When few of them are of the value's type (a nullable object: one),
    the closest one's own failures say more than "expected object or null, found an object": they
    name the field inside that is wrong."""
    if out is None:
        return False
    closest = _closest(ev, value, instance, path)
    if closest:
        out.extend(closest)
        return False
    return _fail(out, keyword, value, instance, path, node)


def _closest(ev: Evaluation, branches: list[Node], instance: Any, path: Path) -> list[Failure] | None:
    found_kind = kind(instance)
    fitting: list[Node] = []
    for branch in branches:
        if _fits(types_of(branch), found_kind):
            fitting.append(branch)
            if len(fitting) > _CLOSEST_TRIED:
                return None  # too many alike to say which was meant
    ev.spend(len(branches) >> 3)
    if not fitting:
        return None
    tried: list[tuple[tuple[int, int, int], list[Failure]]] = []
    for branch in fitting:
        failures = ev.trial_failures(branch, instance, path)
        if not failures:
            continue
        # A constant that does not match is a discriminator saying "not this alternative"; then the
        # deeper the failures, the closer the value came.
        mismatched = sum(1 for f in failures if _discriminates(f, path))
        tried.append(((mismatched, -max(len(f.path) for f in failures), len(failures)), failures))
    if not tried:
        return None
    score, best = min(tried, key=lambda t: t[0])
    if score[0]:
        return _discriminator(tried, path)  # no alternative's discriminator matched: name them all
    if all(f.path == path and f.keyword not in _NAMES_A_FIELD for f in best):
        return None  # about the value itself: the alternatives' own message lists them all
    return best


_NAMES_A_FIELD = frozenset(
    ("required", "dependentRequired", "additionalProperties", "unevaluatedProperties", "unevaluatedItems")
)
"""Keywords whose message names a field below the value (a property missing or not allowed)."""


def _discriminates(failure: Failure, path: Path) -> bool:
    return failure.keyword in ("const", "enum") and len(failure.path) == len(path) + 1


def _discriminator(tried: list[tuple[Any, list[Failure]]], path: Path) -> list[Failure] | None:
    """When every alternative refuses the same field by its constant (a `kind` telling the
    alternatives apart), one failure listing every value that field may take."""
    firsts = [next((f for f in failures if _discriminates(f, path)), None) for _, failures in tried]
    if any(f is None for f in firsts):
        return None
    first = firsts[0]
    assert first is not None
    if any(f is not None and f.path != first.path for f in firsts):
        return None
    values: list[Any] = []
    for failure in firsts:
        assert failure is not None
        values.extend(failure.value if failure.keyword == "enum" else [failure.value])
    return [Failure("enum", values, first.instance, first.path, first.node)]


def _fits(types: frozenset[str] | None, found: str) -> bool:
    return types is None or found in types or (found == "integer" and "number" in types)


def _one_of(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    matches = 0
    for child in value:
        if ev.check(child, instance, (), None):
            matches += 1
            if matches > 1:
                break
    if matches == 1:
        return True
    if matches == 0:
        return _no_alternative(ev, node, "oneOf", value, instance, path, out)
    return _fail(out, "oneOf", value, instance, path, node, matches=matches)


def _not(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    if not ev.check(value, instance, (), None):
        return True
    return _fail(out, "not", value, instance, path, node)


def _if(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    branch = node.children.get("then") if ev.check(value, instance, (), None) else node.children.get("else")
    return not isinstance(branch, Node) or ev.check(branch, instance, path, out)


_COMMON: dict[str, _Handler] = {
    "$ref": _ref,
    "type": _type,
    "enum": _enum,
    "const": _const,
    "minimum": _bound("minimum", lambda x, v: x >= v),
    "maximum": _bound("maximum", lambda x, v: x <= v),
    "exclusiveMinimum": _bound("exclusiveMinimum", lambda x, v: x > v),
    "exclusiveMaximum": _bound("exclusiveMaximum", lambda x, v: x < v),
    "multipleOf": _multiple_of,
    "minLength": _size_check("minLength", str, lambda n, v: n >= v),
    "maxLength": _size_check("maxLength", str, lambda n, v: n <= v),
    "pattern": _pattern,
    "format": _format,
    "minItems": _size_check("minItems", (list, tuple), lambda n, v: n >= v),
    "maxItems": _size_check("maxItems", (list, tuple), lambda n, v: n <= v),
    "uniqueItems": _unique_items,
    "contains": _contains,
    "items": _items,
    "minProperties": _size_check("minProperties", dict, lambda n, v: n >= v),
    "maxProperties": _size_check("maxProperties", dict, lambda n, v: n <= v),
    "required": _required,
    "properties": _properties,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "propertyNames": _property_names,
    "allOf": _all_of,
    "anyOf": _any_of,
    "oneOf": _one_of,
    "not": _not,
    "if": _if,
}
_DRAFT2020: dict[str, _Handler] = {
    **_COMMON,
    "$dynamicRef": _dynamic_ref,
    "prefixItems": _prefix_items,
    "dependentRequired": _dependent_required,
    "dependentSchemas": _dependent_schemas,
    "unevaluatedProperties": _unevaluated_properties,
    "unevaluatedItems": _unevaluated_items,
}
_DRAFT7: dict[str, _Handler] = {**_COMMON, "additionalItems": _additional_items, "dependencies": _dependencies}


# --- bundled metaschemas ------------------------------------------------------------------------------


def _external_plan(node: Node) -> list[tuple[_Handler, Any]]:
    """A `$ref` to a bundled metaschema (the value must itself be a JSON Schema): checked by
    python-jsonschema's stock validator, whose registry holds the bundled metaschemas only."""
    stock = Draft7Validator if node.graph.dialect == DRAFT_07 else Draft202012Validator
    return [(_metaschema, stock(node.schema, registry=node.graph.registry))]


def _metaschema(ev: Evaluation, node: Node, value: Any, instance: Any, path: Path, out: list[Failure] | None) -> bool:
    # python-jsonschema checks a value against a metaschema at about 200 us a value (measured): a
    # JSON Schema given as a config value costs its size times 64 steps.
    ev.spend(count_values(instance) * 64)
    error = best_match(value.iter_errors(instance))
    if error is None:
        return True
    where = (*path, *error.absolute_path)
    return _fail(out, "metaschema", error.message, error.instance, where, node)


def plan_of(node: Node) -> list[tuple[_Handler, Any]]:
    return _external_plan(node) if node.external else _plan(node)
