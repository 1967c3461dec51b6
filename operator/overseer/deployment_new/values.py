"""Config values of a model from the command line: `--label k=v`, `--metadata k=v`,
`--custom-object k=v` and `--config FILE`, and the JSON-only rule of a manifest.

A value is read as YAML the way kubectl reads it (`0.25` a number, `false` a boolean, `[cat, dog]` a
list, dates stay strings), except where the schema declares the field a string: then the text is
taken as written, so `dataset_version=2024.01` stays the string "2024.01" instead of the number
2024.01 (Helm's `--set` trap).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any

from overseer.manifests import ReadError, parse_documents, read_source
from overseer.schema import hints

# (manifest key, option) of the three config sections.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("labels", "--label"),
    ("metadata", "--metadata"),
    ("customObjects", "--custom-object"),
)
# `custom_objects` is BentoML's spelling; a config file written by a training script may use it.
_CONFIG_KEYS = {"labels": "labels", "metadata": "metadata", "customObjects": "customObjects",
                "custom_objects": "customObjects"}  # fmt: skip
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "array": (list,),
    "object": (dict,),
}


class ValuesError(ValueError):
    """A config value that cannot be used; the message names the option or file and the key."""


Config = dict[str, dict[str, Any]]


def empty_config() -> Config:
    return {section: {} for section, _ in SECTIONS}


def parse_assignment(text: str, option: str, section_schema: Mapping[str, Any]) -> tuple[str, Any]:
    """`KEY=VALUE` -> (KEY, value), the value typed as YAML unless the schema says string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValuesError(f"{option} {hints.show(text)}: expected KEY=VALUE")
    if raw == "":
        return key, ""
    documents, syntax = parse_documents(raw, f"{option} {key}")
    if syntax or len(documents) != 1:
        detail = syntax[0].message if syntax else "expected one value"
        raise ValuesError(f"{option} {key}: {detail}; quote it, or write it in a --config file")
    value = documents[0].body
    if not isinstance(value, str) and _declared_string(section_schema, key, value):
        return key, raw
    return key, value


def _declared_string(section_schema: Mapping[str, Any], key: str, value: Any) -> bool:
    properties = section_schema.get("properties") if isinstance(section_schema, Mapping) else None
    declared = properties.get(key) if isinstance(properties, Mapping) else None
    types = declared.get("type") if isinstance(declared, Mapping) else None
    names = [types] if isinstance(types, str) else list(types) if isinstance(types, list) else []
    if "string" not in names:
        return False
    return not any(_is_json_type(value, name) for name in names)


def _is_json_type(value: Any, name: str) -> bool:
    expected = _JSON_TYPES.get(name, ())
    if isinstance(value, bool) and name != "boolean":
        return False
    return isinstance(value, expected)


def read_config_file(path: str) -> Config:
    """A YAML/JSON mapping with `labels`, `metadata` and `customObjects` (or `custom_objects`) sections."""
    try:
        text = read_source(path)
    except ReadError as error:
        raise ValuesError(f"--config {error}") from error
    documents, syntax = parse_documents(text, path)
    if syntax:
        raise ValuesError(f"--config {path}: {syntax[0].message}")
    bodies = [d.body for d in documents if d.body is not None]
    if len(bodies) != 1 or not isinstance(bodies[0], Mapping):
        raise ValuesError(f"--config {path}: expected one mapping with labels, metadata and customObjects")
    config = empty_config()
    seen: dict[str, str] = {}
    for key, value in bodies[0].items():
        section = _CONFIG_KEYS.get(key)
        if section is None:
            hint = hints.most_similar(key, list(_CONFIG_KEYS))
            suggestion = f"; did you mean {hint!r}?" if hint else " (allowed: labels, metadata, customObjects)"
            raise ValuesError(f"--config {path}: unknown key {hints.show(key)}{suggestion}")
        if section in seen:
            raise ValuesError(f"--config {path}: both {seen[section]!r} and {key!r} given; keep one")
        seen[section] = key
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise ValuesError(f"--config {path}: {key}: expected a mapping, found {hints.found(value)}")
        config[section] = dict(value)
    return config


def apply_assignments(
    config: Config, assignments: Mapping[str, Sequence[str]], schemas: Mapping[str, Mapping[str, Any]]
) -> Config:
    """`config` with the `--label`/`--metadata`/`--custom-object` values set on top (later wins)."""
    result = {section: dict(values) for section, values in config.items()}
    for section, option in SECTIONS:
        for text in assignments.get(section, ()):
            key, value = parse_assignment(text, option, schemas.get(section, {}))
            result.setdefault(section, {})[key] = value
    return result


def merge(base: Config, override: Config) -> Config:
    """Per section, the keys of `override` replace those of `base`."""
    return {section: {**base.get(section, {}), **override.get(section, {})} for section, _ in SECTIONS}


def to_json_value(value: Any, path: str) -> Any:
    """`value` as plain JSON data (what a manifest can carry), or ValuesError naming the path.

    A saved model's metadata and custom objects are Python objects: tuples become lists, numpy
    scalars their Python value, dates ISO strings; anything else (an array, a tokenizer) cannot be
    written into a manifest.
    """
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValuesError(f"{path}: {value} is not a JSON number")
        return value
    if isinstance(value, Mapping):
        converted: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValuesError(f"{path}: key {key!r} is not a string")
            converted[key] = to_json_value(item, f"{path}.{key}")
        return converted
    if isinstance(value, list | tuple):
        return [to_json_value(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalars (np.float32(0.87) from a metrics computation)
    if callable(item) and getattr(value, "shape", None) == ():
        return to_json_value(item(), path)
    raise ValuesError(
        f"{path}: a {type(value).__module__}.{type(value).__qualname__} is not a JSON value; "
        "a ModelDeployment carries only numbers, strings, booleans, lists and mappings"
    )
