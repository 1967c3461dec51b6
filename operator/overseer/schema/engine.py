"""The jsonschema validator classes the schema core runs, made safe for untrusted schemas.

python-jsonschema is the validation engine (draft 2020-12 and draft-07). Three things differ from
its stock classes:

- Regular expressions (`pattern`, `patternProperties`, and so `additionalProperties` and
  `unevaluatedProperties`, and `format: regex`) run on RE2 (overseer.schema.regex): linear time.
- Every keyword evaluation counts against a budget (limits.MAX_VALIDATION_STEPS); a check that runs
  out stops with WorkLimitExceeded instead of running for minutes (nested `oneOf`s multiply work).
- References resolve only within the registry resolve_section built (the section and the bundled
  metaschemas): jsonschema's default registry would fetch unknown http(s) URIs.

Format checks are those of jsonschema's `format-nongpl` extra; strings longer than
limits.MAX_FORMAT_LENGTH are not valid values of any format (some checkers are super-linear).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from overseer.schema import regex
from overseer.schema.limits import MAX_FORMAT_LENGTH
from overseer.schema.resolved import DRAFT_07, ResolvedSection


class WorkLimitExceeded(Exception):
    """A check ran out of its step budget."""


_budget: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("overseer_schema_budget", default=None)


@contextlib.contextmanager
def budget(steps: int) -> Iterator[None]:
    """Count keyword evaluations in this context; WorkLimitExceeded past `steps`."""
    token = _budget.set([steps])
    try:
        yield
    finally:
        _budget.reset(token)


def _counted(keyword: Callable[..., Any]) -> Callable[..., Any]:
    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        remaining = _budget.get()
        if remaining is not None:
            remaining[0] -= 1
            if remaining[0] < 0:
                raise WorkLimitExceeded
        return keyword(validator, value, instance, schema)

    return run


# --- keywords that use regular expressions, on RE2 ---------------------------------------------------


def _pattern(validator: Any, pattern: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not regex.search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if regex.search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [key for key in instance if key not in properties and not any(regex.search(p, key) for p in patterns)]


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    extras = _additional(instance, schema)
    if validator.is_type(extra, "object"):
        for key in extras:
            yield from validator.descend(instance[key], extra, path=key)
    elif not extra and extras:
        yield ValidationError(f"Additional properties are not allowed ({', '.join(map(repr, extras))} unexpected)")


def _is_valid(errors: Iterator[Any]) -> bool:
    return next(errors, None) is None


def _evaluated_keys(validator: Any, instance: Mapping[str, Any], schema: Any) -> set[str]:
    """Keys evaluated by `schema` (for unevaluatedProperties); jsonschema's walk, on RE2."""
    if validator.is_type(schema, "boolean"):
        return set()
    keys: set[str] = set()
    for keyword in ("$ref", "$dynamicRef"):
        ref = schema.get(keyword)
        if ref is not None:
            resolved = validator._resolver.lookup(ref)
            inner = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
            keys |= _evaluated_keys(inner, instance, resolved.contents)
    properties = schema.get("properties")
    if validator.is_type(properties, "object"):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        subschema = schema.get(keyword)
        if subschema is not None:
            keys |= {k for k, v in instance.items() if _is_valid(validator.descend(v, subschema))}
    for pattern in schema.get("patternProperties", {}):
        keys |= {k for k in instance if regex.search(pattern, k)}
    for name, subschema in schema.get("dependentSchemas", {}).items():
        if name in instance:
            keys |= _evaluated_keys(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if _is_valid(validator.descend(instance, subschema)):
                keys |= _evaluated_keys(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys |= _evaluated_keys(validator, instance, schema["if"])
            if "then" in schema:
                keys |= _evaluated_keys(validator, instance, schema["then"])
        elif "else" in schema:
            keys |= _evaluated_keys(validator, instance, schema["else"])
    return keys


def _unevaluated_properties(validator: Any, unevaluated: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    rejected = [
        key
        for key in instance
        if key not in evaluated
        and not _is_valid(validator.descend(instance[key], unevaluated, path=key, schema_path=key))
    ]
    if rejected:
        yield ValidationError(f"Unevaluated properties are not allowed ({', '.join(map(repr, rejected))} unexpected)")


# --- formats ------------------------------------------------------------------------------------------


def _format_checker(stock: FormatChecker) -> FormatChecker:
    checker = FormatChecker(formats=())
    for name, (check, raises) in stock.checkers.items():
        checker.checkers[name] = (_bounded_format(check), raises)
    checker.checkers["regex"] = (regex.is_regex, ())
    return checker


def _bounded_format(check: Callable[[object], bool]) -> Callable[[object], bool]:
    def bounded(instance: object) -> bool:
        if isinstance(instance, str) and len(instance) > MAX_FORMAT_LENGTH:
            return False
        return check(instance)

    return bounded


def _safe_class(base: Any, overrides: Mapping[str, Any]) -> Any:
    keywords = {**base.VALIDATORS, **overrides}
    return validators.extend(base, {name: _counted(fn) for name, fn in keywords.items()})  # type: ignore[no-untyped-call]


_REGEX_KEYWORDS = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}
SafeDraft202012 = _safe_class(
    Draft202012Validator, {**_REGEX_KEYWORDS, "unevaluatedProperties": _unevaluated_properties}
)
SafeDraft7 = _safe_class(Draft7Validator, _REGEX_KEYWORDS)
FORMATS_2020_12 = _format_checker(Draft202012Validator.FORMAT_CHECKER)
FORMATS_07 = _format_checker(Draft7Validator.FORMAT_CHECKER)
ASSERTED_FORMATS = tuple(sorted(FORMATS_2020_12.checkers))


def validator_class(section: ResolvedSection) -> Any:
    return SafeDraft7 if section.dialect == DRAFT_07 else SafeDraft202012


def format_checker(dialect: str) -> FormatChecker:
    return FORMATS_07 if dialect == DRAFT_07 else FORMATS_2020_12


def stock_class(dialect: str) -> Any:
    return Draft7Validator if dialect == DRAFT_07 else Draft202012Validator


def build_validator(section: ResolvedSection, schema: Any) -> Validator:
    """A validator for the section; references resolve within the section's registry only."""
    cls = validator_class(section)
    validator: Validator = cls(schema, registry=section.registry, format_checker=format_checker(section.dialect))
    return validator
