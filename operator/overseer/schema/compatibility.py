"""Compatibility between ModelSchema versions, after Confluent Schema Registry's JSON Schema rules.

Definitions (Confluent's, on the config data the schemas describe):

- BACKWARD: every config valid under the old version is valid under the new one, so consumers
  built for the new version can read configs written for the old one (existing models keep
  deploying when the schema moves on).
- FORWARD: every config valid under the new version is valid under the old one, so consumers
  built for the old version can read configs written for the new one.
- FULL: both. `_TRANSITIVE`: against every earlier version instead of only the previous one.
- NONE: no check.

One directional walk answers "does the reader schema accept everything the writer schema
accepts?": BACKWARD walks (writer=old, reader=new), FORWARD walks (writer=new, reader=old).
Findings are always named from old to new (ENUM_NARROWED under BACKWARD, ENUM_EXTENDED under
FORWARD), so a code says what the new version did; codes.py lists them all.

Like Confluent's, the analysis is syntactic and conservative: keywords it does not analyse
(`not`, `if`/`then`/`else`, `dependentSchemas`, ...) count as breaking when they change at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from overseer.api.v1alpha1 import COMPATIBILITY_MODES
from overseer.schema import hints
from overseer.schema.codes import message
from overseer.schema.jsonschema_walk import (
    UnresolvableRef,
    accepts_types,
    expand_types,
    has_default,
    is_open,
    properties,
    required,
    resolve,
    schema_for_undeclared,
    types_of,
)
from overseer.schema.validation import SECTIONS, compile_section, sections_of

MODES = COMPATIBILITY_MODES

_BACKWARD, _FORWARD = "BACKWARD", "FORWARD"


@dataclass(frozen=True)
class BreakingChange:
    code: str
    """Stable UPPER_SNAKE code, e.g. PROPERTY_RENAMED (codes.py, docs/schema.md)."""
    path: str
    """Section-qualified field path: `customObjects.conf`, `labels.*`, `customObjects.classes[]`."""
    message: str
    direction: str = ""
    """BACKWARD or FORWARD: the guarantee the change breaks (empty for version-level changes)."""

    def __str__(self) -> str:
        return f"{self.code} {self.path}: {self.message}"


@dataclass(frozen=True)
class CompatibilityReport:
    mode: str
    changes: list[BreakingChange]
    """Breaking changes under `mode`; empty when compatible."""
    notices: list[BreakingChange] = field(default_factory=list)
    """Compatible changes worth a look (a changed default silently changes configs that omit it)."""
    old_version: int | None = None
    new_version: int | None = None

    @property
    def compatible(self) -> bool:
        return not self.changes


def normalize_mode(mode: str) -> str:
    upper = mode.strip().upper()
    if upper not in MODES:
        raise ValueError(f"unknown compatibility mode {mode!r}: expected one of {', '.join(MODES)}")
    return upper


def directions(mode: str) -> tuple[str, ...]:
    """The directional checks a mode needs: () for NONE, both for FULL."""
    base = normalize_mode(mode).removesuffix("_TRANSITIVE")
    table = {"NONE": (), "BACKWARD": (_BACKWARD,), "FORWARD": (_FORWARD,)}
    return table.get(base, (_BACKWARD, _FORWARD))


def _version_number(version: Any) -> int | None:
    number = version.get("version") if isinstance(version, Mapping) else getattr(version, "version", None)
    return number if isinstance(number, int) else None


def check_compatibility(old: Any, new: Any, mode: str) -> CompatibilityReport:
    """Compare one schema version (its three sections) with a later one under `mode`.

    `old`/`new` are mappings with labels/metadata/customObjects (a SchemaVersion or SchemaSnapshot
    works too). A `_TRANSITIVE` mode compares just this pair like its base mode; see
    check_against_history for the transitive walk over earlier versions.
    """
    mode = normalize_mode(mode)
    old_sections, new_sections = sections_of(old), sections_of(new)
    changes: list[BreakingChange] = []
    notices: list[BreakingChange] = []
    for section, _ in SECTIONS:
        problem = compile_section(new_sections[section]).problem
        if problem is not None:
            changes.append(BreakingChange("SCHEMA_INVALID", section, message("SCHEMA_INVALID", problem=problem)))
            continue
        if compile_section(old_sections[section]).problem is not None:
            continue  # nothing reliable to compare with; the old version's own check reports it
        walks: list[_Walk] = []
        for direction in directions(mode) or (_BACKWARD,):
            if direction == _BACKWARD:
                walk = _Walk(direction, old_sections[section], new_sections[section])
            else:
                walk = _Walk(direction, new_sections[section], old_sections[section])
            walk.compare_root(section)
            walks.append(walk)
        notices.extend(n for w in walks for n in w.notices)
        if not directions(mode):
            continue  # NONE: the walk only collected notices for `schema diff`
        renames = {old_path: pair for w in walks for old_path, pair in w.renames.items()}
        changes.extend(_fold_renames([c for w in walks for c in w.changes], renames))
    return CompatibilityReport(
        mode=mode,
        changes=_unique(changes),
        notices=_unique(notices),
        old_version=_version_number(old),
        new_version=_version_number(new),
    )


def check_against_history(earlier: Sequence[Any], new: Any, mode: str) -> list[CompatibilityReport]:
    """`new` against the latest of `earlier` (all of them for a _TRANSITIVE mode), newest first."""
    mode = normalize_mode(mode)
    if mode == "NONE" or not earlier:
        return []
    targets = list(reversed(earlier)) if mode.endswith("_TRANSITIVE") else [earlier[-1]]
    return [check_compatibility(old, new, mode) for old in targets]


def check_version_history(versions: Sequence[Any], mode: str) -> list[CompatibilityReport]:
    """Every version against the earlier ones as `mode` requires, oldest pair first.

    Versions are taken in the given order (the caller checks that they increase)."""
    reports: list[CompatibilityReport] = []
    for index in range(1, len(versions)):
        reports.extend(check_against_history(versions[:index], versions[index], mode))
    return reports


def check_registered_versions(old_versions: Sequence[Any], new_versions: Sequence[Any]) -> list[BreakingChange]:
    """Registered versions are immutable: none removed, none of their three sections changed.

    Description and `deprecated` may change: deprecating a version is how it is retired.
    """
    by_number = {_version_number(v): v for v in new_versions}
    changes: list[BreakingChange] = []
    for old in old_versions:
        number = _version_number(old)
        new = by_number.get(number)
        if new is None:
            changes.append(BreakingChange("VERSION_REMOVED", f"version {number}", message("VERSION_REMOVED")))
            continue
        old_sections, new_sections = sections_of(old), sections_of(new)
        for section, _ in SECTIONS:
            if _canonical(old_sections[section]) != _canonical(new_sections[section]):
                path = f"version {number}.{section}"
                changes.append(BreakingChange("VERSION_MODIFIED", path, message("VERSION_MODIFIED")))
    return changes


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _unique(changes: list[BreakingChange]) -> list[BreakingChange]:
    seen: set[tuple[str, str, str]] = set()
    out: list[BreakingChange] = []
    for change in changes:
        key = (change.code, change.path, change.message)
        if key not in seen:
            seen.add(key)
            out.append(change)
    return out


# --- rename folding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rename:
    new_path: str
    old_name: str
    new_name: str


def _fold_renames(changes: list[BreakingChange], renames: dict[str, _Rename]) -> list[BreakingChange]:
    """Replace the removal of a property and the addition of a look-alike next to it by one
    PROPERTY_RENAMED change (per direction), when either of the two breaks something."""
    out = list(changes)
    for old_path, rename in renames.items():
        involved = [c for c in out if c.path in (old_path, rename.new_path)]
        if not involved:
            continue
        folded: list[BreakingChange] = []
        for direction in dict.fromkeys(c.direction for c in involved):
            codes = ", ".join(dict.fromkeys(c.code for c in involved if c.direction == direction))
            if direction == _BACKWARD:
                effect = f"configs written for the old version set {rename.old_name!r} and lack {rename.new_name!r}"
            else:
                effect = (
                    f"consumers of the old version read {rename.old_name!r}, "
                    "which configs of the new version no longer set"
                )
            text = message("PROPERTY_RENAMED", old=rename.old_name, new=rename.new_name, effect=effect, codes=codes)
            folded.append(BreakingChange("PROPERTY_RENAMED", old_path, text, direction))
        position = out.index(involved[0])
        out = [c for c in out if c not in involved]
        out[position:position] = folded
    return out


# --- the directional walk --------------------------------------------------------------------------

_UNION = ("anyOf", "oneOf")
# Keywords with no effect on which configs validate.
_ANNOTATIONS = frozenset(
    [
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$comment",
        "$id",
        "$schema",
        "$defs",
        "definitions",
        "$anchor",
        "contentMediaType",
        "contentEncoding",
    ]
)
# Keywords the walk understands; any other keyword that differs is reported as KEYWORD_CHANGED.
_UNDERSTOOD = _ANNOTATIONS | frozenset(
    [
        "$ref",
        "type",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "uniqueItems",
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "minProperties",
        "maxProperties",
        "anyOf",
        "oneOf",
        "allOf",
    ]
)
_SIZE_CODES = {
    # keyword: (code when the new version tightens it, code when it loosens it)
    "minLength": ("MIN_LENGTH_INCREASED", "MIN_LENGTH_DECREASED"),
    "maxLength": ("MAX_LENGTH_DECREASED", "MAX_LENGTH_INCREASED"),
    "minItems": ("MIN_ITEMS_INCREASED", "MIN_ITEMS_DECREASED"),
    "maxItems": ("MAX_ITEMS_DECREASED", "MAX_ITEMS_INCREASED"),
    "minProperties": ("MIN_PROPERTIES_INCREASED", "MIN_PROPERTIES_DECREASED"),
    "maxProperties": ("MAX_PROPERTIES_DECREASED", "MAX_PROPERTIES_INCREASED"),
}


class _Walk:
    """Collects what the reader schema rejects among the values the writer schema accepts."""

    def __init__(self, direction: str, writer_root: Any, reader_root: Any) -> None:
        self.direction = direction
        self.writer_root = writer_root
        self.reader_root = reader_root
        self.changes: list[BreakingChange] = []
        self.notices: list[BreakingChange] = []
        self.renames: dict[str, _Rename] = {}
        self._stack: set[tuple[int, int]] = set()

    @property
    def backward(self) -> bool:
        return self.direction == _BACKWARD

    def old_new(self, writer_side: Any, reader_side: Any) -> tuple[Any, Any]:
        """(old, new) from a (writer, reader) pair."""
        return (writer_side, reader_side) if self.backward else (reader_side, writer_side)

    def emit(self, path: str, backward_code: str, forward_code: str, **fields: Any) -> None:
        code = backward_code if self.backward else forward_code
        self.changes.append(BreakingChange(code, path, message(code, **fields), self.direction))

    def _probe(self, writer: Any, reader: Any, path: str) -> list[BreakingChange]:
        """Changes a sub-comparison would emit, without emitting them."""
        saved_changes, saved_notices = self.changes, self.notices
        self.changes, self.notices = [], []
        try:
            self.compare(writer, reader, path)
            return self.changes
        finally:
            self.changes, self.notices = saved_changes, saved_notices

    # Entry --------------------------------------------------------------------------------------

    def compare_root(self, section: str) -> None:
        # A section always holds an object: an untyped section schema is an object schema.
        self.compare(_as_object(self.writer_root), _as_object(self.reader_root), section)

    def compare(self, writer: Any, reader: Any, path: str) -> None:
        try:
            writer = _flatten(resolve(writer, self.writer_root), self.writer_root)
            reader = _flatten(resolve(reader, self.reader_root), self.reader_root)
        except UnresolvableRef:
            return  # reported by the schema check itself
        key = (id(writer), id(reader))
        if key in self._stack:
            return  # recursive schema: this pair is already being compared further up
        self._stack.add(key)
        try:
            self._compare(_as_schema(writer), _as_schema(reader), path)
        finally:
            self._stack.discard(key)

    def _compare(self, writer: Mapping[str, Any] | bool, reader: Mapping[str, Any] | bool, path: str) -> None:
        if reader is True or writer is False:
            return
        if writer is True:
            writer = _ANY
        if reader is False:
            old, new = self.old_new(_types_text(types_of(writer)), "nothing")
            self.emit(path, "TYPE_NARROWED", "TYPE_WIDENED", old=old, new=new)
            return
        if _union(writer) or _union(reader):
            self._compare_unions(writer, reader, path)
            return
        self._notice_default(writer, reader, path)
        if not self._compare_types(writer, reader, path):
            return
        self._compare_enum(writer, reader, path)
        w_types = types_of(writer)
        if w_types is None or w_types & {"number", "integer"}:
            self._compare_numbers(writer, reader, path)
        if w_types is None or "string" in w_types:
            self._compare_strings(writer, reader, path)
        if w_types is None or "array" in w_types:
            self._compare_arrays(writer, reader, path)
        if w_types is None or "object" in w_types:
            self._compare_objects(writer, reader, path)
        for keyword in sorted((set(writer) | set(reader)) - _UNDERSTOOD):
            if _canonical(writer.get(keyword)) != _canonical(reader.get(keyword)):
                self.emit(path, "KEYWORD_CHANGED", "KEYWORD_CHANGED", keyword=keyword)

    # Notices ------------------------------------------------------------------------------------

    def _notice_default(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> None:
        if "default" not in writer or "default" not in reader:
            return
        if _canonical(writer["default"]) == _canonical(reader["default"]):
            return
        old, new = self.old_new(writer["default"], reader["default"])
        text = message("DEFAULT_CHANGED", old=hints.show(old), new=hints.show(new))
        self.notices.append(BreakingChange("DEFAULT_CHANGED", path, text, self.direction))

    # Types and values ---------------------------------------------------------------------------

    def _compare_types(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> bool:
        """False when nothing the writer allows is left, so deeper comparison would be noise."""
        w_types, r_types = types_of(writer), types_of(reader)
        rejected = accepts_types(r_types, w_types)
        if not rejected:
            return True
        old, new = self.old_new(_types_text(w_types), _types_text(r_types))
        # Some writer values still pass (a number reader... an integer reader still takes whole numbers).
        overlap = (
            w_types is None
            or bool(set(w_types) - rejected)
            or ("number" in w_types and r_types is not None and "integer" in r_types)
        )
        narrower = r_types is not None and (w_types is None or r_types <= expand_types(w_types))
        if overlap and narrower:
            self.emit(path, "TYPE_NARROWED", "TYPE_WIDENED", old=old, new=new)
        else:
            self.emit(path, "TYPE_CHANGED", "TYPE_CHANGED", old=old, new=new)
        return overlap

    def _compare_enum(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> None:
        r_values, w_values = _enum(reader), _enum(writer)
        if r_values is None:
            return
        if w_values is None:
            others = f"any value other than {_values_text(r_values)}"
            self.emit(path, "ENUM_NARROWED", "ENUM_EXTENDED", values=others)
            return
        allowed = {_canonical(v) for v in r_values}
        missing = [v for v in w_values if _canonical(v) not in allowed]
        if missing:
            self.emit(path, "ENUM_NARROWED", "ENUM_EXTENDED", values=_values_text(missing))

    def _compare_numbers(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> None:
        for side, codes in (
            ("minimum", ("MINIMUM_INCREASED", "MINIMUM_DECREASED")),
            ("maximum", ("MAXIMUM_DECREASED", "MAXIMUM_INCREASED")),
        ):
            w_bound, r_bound = _bound(writer, side), _bound(reader, side)
            if _tighter(r_bound, w_bound, lower=side == "minimum"):
                old, new = self.old_new(_bound_text(w_bound), _bound_text(r_bound))
                self.emit(path, *codes, old=old, new=new)
        r_step, w_step = reader.get("multipleOf"), writer.get("multipleOf")
        if _is_number(r_step) and not (_is_number(w_step) and _divides(float(r_step), float(w_step))):
            old, new = self.old_new(_plain(w_step), _plain(r_step))
            self.emit(path, "MULTIPLE_OF_CHANGED", "MULTIPLE_OF_CHANGED", old=old, new=new)

    def _compare_strings(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> None:
        self._compare_sizes(writer, reader, path, ("minLength", "maxLength"))
        for keyword, added, removed, changed in (
            ("pattern", "PATTERN_ADDED", "PATTERN_REMOVED", "PATTERN_CHANGED"),
            ("format", "FORMAT_ADDED", "FORMAT_REMOVED", "FORMAT_CHANGED"),
        ):
            r_value, w_value = reader.get(keyword), writer.get(keyword)
            if r_value is None or r_value == w_value:
                continue
            old, new = self.old_new(_plain(w_value), _plain(r_value))
            if w_value is None:
                self.emit(path, added, removed, old=old, new=new)
            else:
                self.emit(path, changed, changed, old=old, new=new)

    def _compare_sizes(
        self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str, keywords: tuple[str, str]
    ) -> None:
        for keyword, lower in zip(keywords, (True, False), strict=True):
            w_value, r_value = writer.get(keyword), reader.get(keyword)
            w_bound = (float(w_value), False) if _is_number(w_value) else None
            r_bound = (float(r_value), False) if _is_number(r_value) else None
            if _tighter(r_bound, w_bound, lower=lower):
                old, new = self.old_new(_plain(w_value), _plain(r_value))
                self.emit(path, *_SIZE_CODES[keyword], old=old, new=new)

    # Arrays -------------------------------------------------------------------------------------

    def _compare_arrays(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> None:
        self._compare_sizes(writer, reader, path, ("minItems", "maxItems"))
        if reader.get("uniqueItems") is True and writer.get("uniqueItems") is not True:
            self.emit(path, "UNIQUE_ITEMS_ADDED", "UNIQUE_ITEMS_REMOVED")
        w_prefix, r_prefix = _list(writer.get("prefixItems")), _list(reader.get("prefixItems"))
        w_items, r_items = writer.get("items", True), reader.get("items", True)
        for index in range(max(len(w_prefix), len(r_prefix))):
            w_item = w_prefix[index] if index < len(w_prefix) else w_items
            r_item = r_prefix[index] if index < len(r_prefix) else r_items
            self.compare(w_item, r_item, f"{path}[{index}]")
        self.compare(w_items, r_items, f"{path}[]")

    # Objects ------------------------------------------------------------------------------------

    def _compare_objects(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> None:
        w_props, r_props = properties(writer), properties(reader)
        w_required, r_required = required(writer), required(reader)
        for name in w_props:
            child = hints.field_path(path, [name])
            if name in r_props:
                self.compare(w_props[name], r_props[name], child)
            else:
                self._writer_only(writer, reader, name, child)
        reader_only = [n for n in r_props if n not in w_props]
        for name in reader_only:
            self._reader_only(writer, r_props[name], name, hints.field_path(path, [name]))
        for name in sorted(r_required - w_required, key=_order(r_props)):
            if has_default(self._resolved(r_props.get(name), self.reader_root)):
                continue  # the default fills the gap (Confluent: ..._WITH_DEFAULT_ADDED is compatible)
            child = hints.field_path(path, [name])
            if name in w_props:
                self.emit(child, "PROPERTY_MADE_REQUIRED", "PROPERTY_MADE_OPTIONAL")
            else:
                self.emit(child, "REQUIRED_PROPERTY_ADDED", "REQUIRED_PROPERTY_REMOVED")
        self._record_renames(path, [n for n in w_props if n not in r_props], reader_only)
        self._compare_additional(writer, reader, path)
        self._compare_sizes(writer, reader, path, ("minProperties", "maxProperties"))

    def _writer_only(self, writer: Mapping[str, Any], reader: Mapping[str, Any], name: str, path: str) -> None:
        """A property only the writer declares: the reader checks it as an undeclared one."""
        if is_open(reader):
            return
        undeclared = schema_for_undeclared(reader, name)
        declared = properties(writer)[name]
        if undeclared is False:
            if self._resolved(declared, self.writer_root) is not False:
                self.emit(path, "PROPERTY_REMOVED", "PROPERTY_ADDED_TO_CLOSED_MODEL")
        else:
            self.compare(declared, undeclared, path)

    def _reader_only(self, writer: Mapping[str, Any], declared: Any, name: str, path: str) -> None:
        """A property only the reader declares: writer data may hold it as an undeclared one."""
        undeclared = schema_for_undeclared(writer, name)
        if undeclared is False:
            return  # closed writer: its data never holds this property
        if is_open(writer):
            resolved = self._resolved(declared, self.reader_root)
            if resolved is not True and not _only_annotations(resolved):
                self.emit(path, "PROPERTY_ADDED_TO_OPEN_MODEL", "PROPERTY_REMOVED_FROM_OPEN_MODEL")
            return
        self.compare(undeclared, declared, path)

    def _compare_additional(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> None:
        w_extra = writer.get("additionalProperties", True)
        r_extra = reader.get("additionalProperties", True)
        if w_extra is False:
            return
        if r_extra is False:
            self.emit(f"{path}.*", "ADDITIONAL_PROPERTIES_NARROWED", "ADDITIONAL_PROPERTIES_EXTENDED")
            return
        self.compare(w_extra, r_extra, f"{path}.*")

    def _record_renames(self, path: str, writer_only: list[str], reader_only: list[str]) -> None:
        old_only, new_only = self.old_new(writer_only, reader_only)
        taken: set[str] = set()
        for old_name in old_only:
            match = hints.most_similar(old_name, [n for n in new_only if n not in taken])
            if match is not None:
                taken.add(match)
                new_path = hints.field_path(path, [match])
                self.renames[hints.field_path(path, [old_name])] = _Rename(new_path, old_name, match)

    # Unions -------------------------------------------------------------------------------------

    def _compare_unions(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> None:
        """Every writer alternative must be accepted by some reader alternative."""
        w_branches, r_branches = _branches(writer), _branches(reader)
        keyword = next((k for k in _UNION if k in writer or k in reader), "anyOf")
        for index, w_branch in enumerate(w_branches):
            attempts = [self._probe(w_branch, r_branch, path) for r_branch in r_branches]
            if any(not found for found in attempts):
                continue
            if len(r_branches) == 1 or len(w_branches) == 1:
                # The concrete reason beats a generic "alternative removed".
                best: list[BreakingChange] = min(attempts, key=len)
                self.changes.extend(best)
            else:
                self.emit(
                    f"{path}.{keyword}[{index}]",
                    "BRANCH_REMOVED",
                    "BRANCH_ADDED",
                    keyword=keyword,
                    branch=hints.describe(w_branch),
                )

    def _resolved(self, schema: Any, root: Any) -> Any:
        try:
            return resolve(schema, root)
        except UnresolvableRef:
            return schema


# --- helpers -------------------------------------------------------------------------------------

_ANY: Mapping[str, Any] = {}


def _as_schema(schema: Any) -> Mapping[str, Any] | bool:
    if isinstance(schema, bool | Mapping):
        return schema
    return True  # garbage is reported by the schema check; here it constrains nothing


def _as_object(schema: Any) -> Any:
    if isinstance(schema, Mapping) and "type" not in schema:
        return {**schema, "type": "object"}
    return schema


def _union(schema: Mapping[str, Any]) -> bool:
    return any(isinstance(schema.get(k), list) for k in _UNION)


def _branches(schema: Mapping[str, Any]) -> list[Any]:
    """Union alternatives with the schema's sibling keywords folded into each."""
    for keyword in _UNION:
        branches = schema.get(keyword)
        if isinstance(branches, list):
            siblings = {k: v for k, v in schema.items() if k != keyword}
            return [{**siblings, **b} if isinstance(b, Mapping) else b for b in branches]
    return [schema]


def _flatten(schema: Any, root: Any) -> Any:
    """Merge `allOf` conjuncts into one schema: an approximation that covers the usual
    "base + extension" pattern (properties and required united, other keywords overlaid)."""
    if not isinstance(schema, Mapping) or not isinstance(schema.get("allOf"), list):
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for conjunct in schema["allOf"]:
        part = _flatten(resolve(conjunct, root), root)
        if part is False:
            return False
        if not isinstance(part, Mapping):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, Mapping):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
            else:
                merged.setdefault(key, value)
    return merged


def _only_annotations(schema: Any) -> bool:
    return isinstance(schema, Mapping) and set(schema) <= _ANNOTATIONS


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _enum(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    values = schema.get("enum")
    return list(values) if isinstance(values, list) else None


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bound(schema: Mapping[str, Any], side: str) -> tuple[float, bool] | None:
    """(value, exclusive) of the effective lower or upper bound; draft-4 boolean flags included."""
    plain = schema.get(side)
    exclusive = schema.get("exclusiveMinimum" if side == "minimum" else "exclusiveMaximum")
    candidates: list[tuple[float, bool]] = []
    if _is_number(plain):
        candidates.append((float(plain), exclusive is True))
    if _is_number(exclusive):
        candidates.append((float(exclusive), True))
    if not candidates:
        return None
    if side == "minimum":
        return max(candidates)
    return min(candidates, key=lambda b: (b[0], not b[1]))


def _tighter(reader: tuple[float, bool] | None, writer: tuple[float, bool] | None, *, lower: bool) -> bool:
    if reader is None:
        return False
    if writer is None:
        return True
    if reader[0] != writer[0]:
        return reader[0] > writer[0] if lower else reader[0] < writer[0]
    return reader[1] and not writer[1]


def _bound_text(bound: tuple[float, bool] | None) -> str:
    if bound is None:
        return "none"
    value = int(bound[0]) if bound[0].is_integer() else bound[0]
    return f"{value}{' (exclusive)' if bound[1] else ''}"


def _plain(value: Any) -> str:
    return "none" if value is None else hints.show(value)


def _divides(step: float, other: float) -> bool:
    ratio = other / step
    return abs(ratio - round(ratio)) < 1e-9


def _types_text(types: frozenset[str] | None) -> str:
    if types is None:
        return "any type"
    return " or ".join(sorted(types)) if types else "nothing"


def _values_text(values: list[Any]) -> str:
    return ", ".join(hints.show(v) for v in values)


def _order(props: Mapping[str, Any]) -> Any:
    names = list(props)
    return lambda name: (names.index(name) if name in names else len(names), name)
