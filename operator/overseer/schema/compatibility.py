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
Each finding is named from old to new (ENUM_NARROWED under BACKWARD, ENUM_EXTENDED under FORWARD),
so codes always describe what the new version did.

The analysis is syntactic and conservative, like Confluent's: keywords it does not analyse
(`not`, `if`/`then`/`else`, `dependentSchemas`, ...) are breaking when they change at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from overseer.schema import hints
from overseer.schema.jsonschema_walk import (
    UnresolvableRef,
    accepts_types,
    has_default,
    is_open,
    properties,
    required,
    resolve,
    schema_for_undeclared,
    types_of,
)
from overseer.schema.validation import SECTIONS, compile_section

MODES = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)

_BACKWARD, _FORWARD = "BACKWARD", "FORWARD"


@dataclass(frozen=True)
class BreakingChange:
    code: str
    """Stable UPPER_SNAKE code, e.g. PROPERTY_RENAMED (see docs/schema.md for the table)."""
    path: str
    """Section-qualified field path: `customObjects.conf`, `labels.*`, `customObjects.classes[]`."""
    message: str
    direction: str = ""
    """BACKWARD or FORWARD: which guarantee the change breaks."""

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
    base = normalize_mode(mode).removesuffix("_TRANSITIVE")
    return {
        "NONE": (),
        "BACKWARD": (_BACKWARD,),
        "FORWARD": (_FORWARD,),
        "FULL": (_BACKWARD, _FORWARD),
    }[base]


def _sections(version: Any) -> dict[str, Any]:
    """The three JSON Schema sections of a version given as a mapping or an API object."""
    out: dict[str, Any] = {}
    for wire, attr in SECTIONS:
        if isinstance(version, Mapping):
            out[wire] = version.get(wire, version.get(attr, {}))
        else:
            out[wire] = getattr(version, attr, {})
    return out


def _version_number(version: Any) -> int | None:
    number = (
        version.get("version")
        if isinstance(version, Mapping)
        else getattr(version, "version", None)
    )
    return number if isinstance(number, int) else None


def check_compatibility(
    old: Mapping[str, Any], new: Mapping[str, Any], mode: str
) -> CompatibilityReport:
    """Compare one schema version (three sections) with its successor under `mode`.

    `_TRANSITIVE` modes compare just this pair like their base mode; use check_against_history
    to compare a new version with every earlier one.
    """
    mode = normalize_mode(mode)
    old_sections, new_sections = _sections(old), _sections(new)
    changes: list[BreakingChange] = []
    notices: list[BreakingChange] = []
    for section, _ in SECTIONS:
        problem = compile_section(new_sections[section]).problem
        if problem is not None:
            changes.append(BreakingChange("SCHEMA_INVALID", section, problem, _BACKWARD))
            continue
        if compile_section(old_sections[section]).problem is not None:
            continue  # nothing reliable to compare with; the old version's own check reports it
        walks = []
        for direction in directions(mode):
            writer, reader = (
                (old_sections, new_sections)
                if direction == _BACKWARD
                else (new_sections, old_sections)
            )
            walk = _Walk(direction, writer[section], reader[section])
            walk.compare_root(section)
            walks.append(walk)
        if not walks:  # NONE: still collect notices for `schema diff`
            walk = _Walk(_BACKWARD, old_sections[section], new_sections[section])
            walk.compare_root(section)
            notices.extend(walk.notices)
            continue
        found = [c for w in walks for c in w.changes]
        renames = {key: value for w in walks for key, value in w.renames.items()}
        changes.extend(_fold_renames(found, renames))
        notices.extend(n for w in walks for n in w.notices)
    return CompatibilityReport(
        mode=mode,
        changes=_unique(changes),
        notices=_unique(notices),
        old_version=_version_number(old),
        new_version=_version_number(new),
    )


def check_against_history(earlier: Sequence[Any], new: Any, mode: str) -> list[CompatibilityReport]:
    """`new` against the last of `earlier` (or all of them for a _TRANSITIVE mode), newest first."""
    mode = normalize_mode(mode)
    if mode == "NONE" or not earlier:
        return []
    targets = list(reversed(earlier)) if mode.endswith("_TRANSITIVE") else [earlier[-1]]
    return [check_compatibility(old, new, mode) for old in targets]


def check_version_history(versions: Sequence[Any], mode: str) -> list[CompatibilityReport]:
    """Every version against its predecessors as `mode` requires, oldest pair first.

    Versions are taken in the given order (the caller checks they increase)."""
    reports: list[CompatibilityReport] = []
    for index in range(1, len(versions)):
        reports.extend(check_against_history(versions[:index], versions[index], mode))
    return reports


def check_registered_versions(
    old_versions: Sequence[Any], new_versions: Sequence[Any]
) -> list[BreakingChange]:
    """Registered versions are immutable: none removed, none of their three sections changed.

    (Description and `deprecated` may change: deprecating a version is the normal way to retire it.)
    """
    by_number = {_version_number(v): v for v in new_versions}
    changes: list[BreakingChange] = []
    for old in old_versions:
        number = _version_number(old)
        new = by_number.get(number)
        if new is None:
            changes.append(
                BreakingChange(
                    "VERSION_REMOVED",
                    f"version {number}",
                    "a registered version was removed; deployments that reference it would stop validating "
                    "(mark it deprecated instead)",
                )
            )
            continue
        for section, _ in SECTIONS:
            if _canonical(_sections(old)[section]) != _canonical(_sections(new)[section]):
                changes.append(
                    BreakingChange(
                        "VERSION_MODIFIED",
                        f"version {number}.{section}",
                        "a registered version is immutable; add a new version instead",
                    )
                )
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


def _fold_renames(changes: list[BreakingChange], renames: dict[str, str]) -> list[BreakingChange]:
    """Replace the removal of `old_path` and the addition of its look-alike `new_path` by one
    PROPERTY_RENAMED change, when either of the two breaks something."""
    out = list(changes)
    for old_path, new_path in renames.items():
        involved = [c for c in out if c.path in (old_path, new_path)]
        if not involved:
            continue
        old_name, new_name = _leaf(old_path), _leaf(new_path)
        folded = []
        for direction in dict.fromkeys(c.direction for c in involved):
            codes = ", ".join(dict.fromkeys(c.code for c in involved if c.direction == direction))
            if direction == _BACKWARD:
                effect = (
                    f"configs written for the old version set {old_name!r} and lack {new_name!r}"
                )
            else:
                effect = f"consumers of the old version read {old_name!r}, which configs of the new version no longer set"
            folded.append(
                BreakingChange(
                    "PROPERTY_RENAMED",
                    old_path,
                    f"{old_name!r} looks renamed to {new_name!r}: {effect} ({codes}); keep {old_name!r}, "
                    f"or add {new_name!r} as optional with a default next to it",
                    direction,
                )
            )
        position = out.index(involved[0])
        out = [c for c in out if c not in involved]
        out[position:position] = folded
    return out


def _leaf(path: str) -> str:
    tail = path.rsplit(".", 1)[-1]
    if tail.endswith('"]') and '["' in tail:
        return json.loads(tail[tail.rindex('["') + 1 : -1])  # type: ignore[no-any-return]
    return tail


# --- the directional walk --------------------------------------------------------------------------

_UNION = ("anyOf", "oneOf")
# Keywords with no effect on which configs validate.
_ANNOTATIONS = frozenset(
    {
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
    }
)
# Keywords the walk understands; any other keyword that differs is reported as KEYWORD_CHANGED.
_UNDERSTOOD = _ANNOTATIONS | frozenset(
    {
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
    }
)


def _pick(direction: str, backward: tuple[str, str], forward: tuple[str, str]) -> tuple[str, str]:
    return backward if direction == _BACKWARD else forward


class _Walk:
    """Collects what the reader schema rejects among the values the writer schema accepts."""

    def __init__(self, direction: str, writer_root: Any, reader_root: Any) -> None:
        self.direction = direction
        self.writer_root = writer_root
        self.reader_root = reader_root
        self.changes: list[BreakingChange] = []
        self.notices: list[BreakingChange] = []
        # old field path -> new field path for removed/added look-alike pairs.
        self.renames: dict[str, str] = {}
        self._stack: set[tuple[int, int]] = set()

    # Emitting -----------------------------------------------------------------------------------

    def emit(self, path: str, backward: tuple[str, str], forward: tuple[str, str]) -> None:
        code, message = _pick(self.direction, backward, forward)
        self.changes.append(BreakingChange(code, path, message, self.direction))

    def _probe(self, writer: Any, reader: Any, path: str) -> list[BreakingChange]:
        """Changes a sub-comparison would emit, without emitting them."""
        saved, self.changes = self.changes, []
        saved_notices = list(self.notices)
        try:
            self.compare(writer, reader, path)
            return self.changes
        finally:
            self.changes = saved
            self.notices = saved_notices

    # Entry --------------------------------------------------------------------------------------

    def compare_root(self, section: str) -> None:
        # A section always holds an object: an untyped section schema is an object schema.
        writer, reader = self.writer_root, self.reader_root
        if isinstance(writer, Mapping) and "type" not in writer:
            writer = {**writer, "type": "object"}
        if isinstance(reader, Mapping) and "type" not in reader:
            reader = {**reader, "type": "object"}
        self.compare(writer, reader, section)

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

    def _compare(
        self, writer: Mapping[str, Any] | bool, reader: Mapping[str, Any] | bool, path: str
    ) -> None:
        if reader is True or writer is False:
            return
        if reader is False:
            self.emit(
                path,
                ("TYPE_NARROWED", "no value is allowed any more (schema false)"),
                ("TYPE_WIDENED", "the old version allowed no value here (schema false)"),
            )
            return
        assert isinstance(writer, Mapping) and isinstance(reader, Mapping)
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
                self.emit(
                    path,
                    (
                        "KEYWORD_CHANGED",
                        f"{keyword!r} changed; it is not analysed, so the change counts as breaking",
                    ),
                    (
                        "KEYWORD_CHANGED",
                        f"{keyword!r} changed; it is not analysed, so the change counts as breaking",
                    ),
                )

    # Notices ------------------------------------------------------------------------------------

    def _notice_default(
        self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str
    ) -> None:
        if (
            "default" in writer
            and "default" in reader
            and _canonical(writer["default"]) != _canonical(reader["default"])
        ):
            old, new = (writer, reader) if self.direction == _BACKWARD else (reader, writer)
            self.notices.append(
                BreakingChange(
                    "DEFAULT_CHANGED",
                    path,
                    f"default changed from {hints.show(old['default'])} to {hints.show(new['default'])}: "
                    "configs that omit it change behaviour",
                    self.direction,
                )
            )

    # Types and values ---------------------------------------------------------------------------

    def _compare_types(
        self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str
    ) -> bool:
        """False when nothing the writer allows is left, so deeper comparison is noise."""
        w_types, r_types = types_of(writer), types_of(reader)
        rejected = accepts_types(r_types, w_types)
        if not rejected:
            return True
        old, new = (w_types, r_types) if self.direction == _BACKWARD else (r_types, w_types)
        text_old, text_new = _types_text(old), _types_text(new)
        left = w_types is None or bool(set(w_types) - rejected)
        if left:
            self.emit(
                path,
                ("TYPE_NARROWED", f"type narrowed from {text_old} to {text_new}"),
                (
                    "TYPE_WIDENED",
                    f"type widened from {text_old} to {text_new}: consumers of the old version reject the new types",
                ),
            )
        else:
            self.emit(
                path,
                ("TYPE_CHANGED", f"type changed from {text_old} to {text_new}"),
                ("TYPE_CHANGED", f"type changed from {text_old} to {text_new}"),
            )
        return left

    def _compare_enum(
        self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str
    ) -> None:
        r_values, w_values = _enum(reader), _enum(writer)
        if r_values is None:
            return
        if w_values is None:
            self.emit(
                path,
                (
                    "ENUM_NARROWED",
                    f"values restricted to {_values_text(r_values)} (any value was allowed)",
                ),
                (
                    "ENUM_EXTENDED",
                    f"the restriction to {_values_text(r_values)} was lifted: consumers of the old version reject other values",
                ),
            )
            return
        allowed = {_canonical(v) for v in r_values}
        missing = [v for v in w_values if _canonical(v) not in allowed]
        if missing:
            self.emit(
                path,
                ("ENUM_NARROWED", f"allowed values removed: {_values_text(missing)}"),
                (
                    "ENUM_EXTENDED",
                    f"allowed values added: {_values_text(missing)}; consumers of the old version reject them",
                ),
            )

    def _compare_numbers(
        self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str
    ) -> None:
        for side in ("minimum", "maximum"):
            w_bound, r_bound = _bound(writer, side), _bound(reader, side)
            if not _tighter(r_bound, w_bound, lower=side == "minimum"):
                continue
            old, new = (w_bound, r_bound) if self.direction == _BACKWARD else (r_bound, w_bound)
            change = f"{side} {_bound_text(old)} -> {_bound_text(new)}"
            if side == "minimum":
                self.emit(
                    path,
                    ("MINIMUM_INCREASED", change),
                    (
                        "MINIMUM_DECREASED",
                        change + ": consumers of the old version reject the smaller values",
                    ),
                )
            else:
                self.emit(
                    path,
                    ("MAXIMUM_DECREASED", change),
                    (
                        "MAXIMUM_INCREASED",
                        change + ": consumers of the old version reject the larger values",
                    ),
                )
        r_step, w_step = reader.get("multipleOf"), writer.get("multipleOf")
        if _is_number(r_step) and not (_is_number(w_step) and _divides(r_step, w_step)):
            old_step, new_step = (
                (w_step, r_step) if self.direction == _BACKWARD else (r_step, w_step)
            )
            text = f"multipleOf {hints.show(old_step) if old_step is not None else 'none'} -> {hints.show(new_step) if new_step is not None else 'none'}"
            self.emit(path, ("MULTIPLE_OF_CHANGED", text), ("MULTIPLE_OF_CHANGED", text))

    def _compare_strings(
        self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str
    ) -> None:
        self._compare_size(writer, reader, path, "minLength", "maxLength", "LENGTH")
        r_pattern, w_pattern = reader.get("pattern"), writer.get("pattern")
        if r_pattern is not None and r_pattern != w_pattern:
            if w_pattern is None:
                self.emit(
                    path,
                    ("PATTERN_ADDED", f"pattern {hints.show(r_pattern)} added"),
                    (
                        "PATTERN_REMOVED",
                        f"pattern {hints.show(r_pattern)} removed: consumers of the old version reject values that do not match it",
                    ),
                )
            else:
                old, new = (
                    (w_pattern, r_pattern)
                    if self.direction == _BACKWARD
                    else (r_pattern, w_pattern)
                )
                text = f"pattern changed from {hints.show(old)} to {hints.show(new)}"
                self.emit(path, ("PATTERN_CHANGED", text), ("PATTERN_CHANGED", text))
        r_format, w_format = reader.get("format"), writer.get("format")
        if r_format is not None and r_format != w_format:
            if w_format is None:
                self.emit(
                    path,
                    ("FORMAT_ADDED", f"format {hints.show(r_format)} added"),
                    (
                        "FORMAT_REMOVED",
                        f"format {hints.show(r_format)} removed: consumers of the old version reject other strings",
                    ),
                )
            else:
                old, new = (
                    (w_format, r_format) if self.direction == _BACKWARD else (r_format, w_format)
                )
                text = f"format changed from {hints.show(old)} to {hints.show(new)}"
                self.emit(path, ("FORMAT_CHANGED", text), ("FORMAT_CHANGED", text))

    def _compare_size(
        self,
        writer: Mapping[str, Any],
        reader: Mapping[str, Any],
        path: str,
        low: str,
        high: str,
        noun: str,
    ) -> None:
        for keyword, lower in ((low, True), (high, False)):
            w_bound = (writer[keyword], False) if _is_number(writer.get(keyword)) else None
            r_bound = (reader[keyword], False) if _is_number(reader.get(keyword)) else None
            if not _tighter(r_bound, w_bound, lower=lower):
                continue
            old, new = (w_bound, r_bound) if self.direction == _BACKWARD else (r_bound, w_bound)
            text = f"{keyword} {_bound_text(old)} -> {_bound_text(new)}"
            prefix = "MIN" if lower else "MAX"
            tightened, loosened = (
                ("INCREASED", "DECREASED") if lower else ("DECREASED", "INCREASED")
            )
            self.emit(
                path,
                (f"{prefix}_{noun}_{tightened}", text),
                (
                    f"{prefix}_{noun}_{loosened}",
                    text + ": consumers of the old version reject the new sizes",
                ),
            )

    # Arrays -------------------------------------------------------------------------------------

    def _compare_arrays(
        self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str
    ) -> None:
        self._compare_size(writer, reader, path, "minItems", "maxItems", "ITEMS")
        if reader.get("uniqueItems") is True and writer.get("uniqueItems") is not True:
            self.emit(
                path,
                ("UNIQUE_ITEMS_ADDED", "items must now be unique"),
                (
                    "UNIQUE_ITEMS_REMOVED",
                    "items need not be unique any more: consumers of the old version reject duplicates",
                ),
            )
        w_prefix = writer.get("prefixItems") if isinstance(writer.get("prefixItems"), list) else []
        r_prefix = reader.get("prefixItems") if isinstance(reader.get("prefixItems"), list) else []
        w_items, r_items = writer.get("items", True), reader.get("items", True)
        for index in range(max(len(w_prefix), len(r_prefix))):
            w_item = w_prefix[index] if index < len(w_prefix) else w_items
            r_item = r_prefix[index] if index < len(r_prefix) else r_items
            self.compare(w_item, r_item, f"{path}[{index}]")
        self.compare(w_items, r_items, f"{path}[]")

    # Objects ------------------------------------------------------------------------------------

    def _compare_objects(
        self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str
    ) -> None:
        w_props, r_props = properties(writer), properties(reader)
        w_required, r_required = required(writer), required(reader)
        writer_only = [n for n in w_props if n not in r_props]
        reader_only = [n for n in r_props if n not in w_props]
        for name in w_props:
            child = hints.field_path(path, [name])
            if name in r_props:
                self.compare(w_props[name], r_props[name], child)
            else:
                self._writer_only(writer, reader, name, child)
        for name in reader_only:
            self._reader_only(writer, r_props[name], name, hints.field_path(path, [name]))
        for name in sorted(r_required - w_required, key=_order(r_props)):
            if has_default(self._resolved(r_props.get(name), self.reader_root)):
                continue  # the default fills the gap (Confluent: REQUIRED_..._WITH_DEFAULT is compatible)
            child = hints.field_path(path, [name])
            if name in w_props:
                self.emit(
                    child,
                    (
                        "PROPERTY_MADE_REQUIRED",
                        "now required, without a default: configs that omit it fail",
                    ),
                    (
                        "PROPERTY_MADE_OPTIONAL",
                        "no longer required: consumers of the old version fail when it is omitted",
                    ),
                )
            else:
                self.emit(
                    child,
                    (
                        "REQUIRED_PROPERTY_ADDED",
                        "new required property without a default: configs written for the old version lack it",
                    ),
                    (
                        "REQUIRED_PROPERTY_REMOVED",
                        "required by the old version but gone from the new one: consumers of the old version fail without it",
                    ),
                )
        self._record_renames(path, writer_only, reader_only)
        self._compare_additional(writer, reader, path)
        self._compare_size(writer, reader, path, "minProperties", "maxProperties", "PROPERTIES")

    def _writer_only(
        self, writer: Mapping[str, Any], reader: Mapping[str, Any], name: str, path: str
    ) -> None:
        """A property only the writer declares: the reader checks it as an undeclared one."""
        if is_open(reader):
            return
        undeclared = schema_for_undeclared(reader, name)
        declared = properties(writer)[name]
        if undeclared is False:
            if self._resolved(declared, self.writer_root) is False:
                return  # the writer never allowed a value: nothing to reject
            self.emit(
                path,
                (
                    "PROPERTY_REMOVED",
                    "removed from a closed model (additionalProperties: false): configs that set it fail",
                ),
                (
                    "PROPERTY_ADDED_TO_CLOSED_MODEL",
                    "added, but the old version is closed (additionalProperties: false): consumers of the old version reject configs that set it",
                ),
            )
        else:
            self.compare(declared, undeclared, path)

    def _reader_only(self, writer: Mapping[str, Any], declared: Any, name: str, path: str) -> None:
        """A property only the reader declares: writer data may hold it as an undeclared one."""
        undeclared = schema_for_undeclared(writer, name)
        if undeclared is False:
            return  # closed writer: its data never holds this property
        if is_open(writer):
            resolved = self._resolved(declared, self.reader_root)
            if resolved is True or resolved == {} or _only_annotations(resolved):
                return  # Confluent: a property with an empty schema may be added to an open model
            self.emit(
                path,
                (
                    "PROPERTY_ADDED_TO_OPEN_MODEL",
                    "added to an open model (additionalProperties not false): configs for the old version may already carry it with any value",
                ),
                (
                    "PROPERTY_REMOVED_FROM_OPEN_MODEL",
                    "removed while the model stays open: configs may carry it with any value, which consumers of the old version reject",
                ),
            )
            return
        self.compare(undeclared, declared, path)

    def _compare_additional(
        self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str
    ) -> None:
        w_extra = writer.get("additionalProperties", True)
        r_extra = reader.get("additionalProperties", True)
        if w_extra is False:
            return
        if r_extra is False:
            self.emit(
                f"{path}.*",
                (
                    "ADDITIONAL_PROPERTIES_NARROWED",
                    "model closed (additionalProperties: false): configs with undeclared properties fail",
                ),
                (
                    "ADDITIONAL_PROPERTIES_EXTENDED",
                    "model opened (additionalProperties no longer false): consumers of the old version reject undeclared properties",
                ),
            )
            return
        self.compare(w_extra, r_extra, f"{path}.*")

    def _record_renames(self, path: str, writer_only: list[str], reader_only: list[str]) -> None:
        old_only, new_only = (
            (writer_only, reader_only)
            if self.direction == _BACKWARD
            else (reader_only, writer_only)
        )
        taken: set[str] = set()
        for old_name in old_only:
            match = hints.most_similar(old_name, [n for n in new_only if n not in taken])
            if match is not None:
                taken.add(match)
                self.renames[hints.field_path(path, [old_name])] = hints.field_path(path, [match])

    # Unions -------------------------------------------------------------------------------------

    def _compare_unions(
        self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str
    ) -> None:
        w_branches, r_branches = _branches(writer), _branches(reader)
        for index, w_branch in enumerate(w_branches):
            attempts = [self._probe(w_branch, r_branch, path) for r_branch in r_branches]
            if any(not found for found in attempts):
                continue
            if len(r_branches) == 1:
                self.changes.extend(attempts[0])  # the real reason beats a generic "branch" code
            elif len(w_branches) == 1:
                self.changes.extend(min(attempts, key=len))
            else:
                keyword = "anyOf" if "anyOf" in writer else "oneOf"
                branch = hints.describe(w_branch)
                self.emit(
                    f"{path}.{keyword}[{index}]",
                    ("BRANCH_REMOVED", f"alternative {branch} is no longer accepted"),
                    (
                        "BRANCH_ADDED",
                        f"new alternative {branch} is not accepted by the old version",
                    ),
                )

    def _resolved(self, schema: Any, root: Any) -> Any:
        try:
            return resolve(schema, root)
        except UnresolvableRef:
            return schema


# --- helpers -------------------------------------------------------------------------------------


def _as_schema(schema: Any) -> Mapping[str, Any] | bool:
    if isinstance(schema, bool | Mapping):
        return schema
    return True  # garbage is reported by the schema check; here it constrains nothing


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
    """Merge `allOf` conjuncts into one schema (an approximation that covers the usual
    "base + extension" pattern: properties and required are united, other keywords overlaid)."""
    if not isinstance(schema, Mapping) or not isinstance(schema.get("allOf"), list):
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        part = _flatten(resolve(part, root), root)
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


def _enum(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    values = schema.get("enum")
    return list(values) if isinstance(values, list) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bound(schema: Mapping[str, Any], side: str) -> tuple[float, bool] | None:
    """(value, exclusive) of the effective lower or upper bound; draft-4 boolean flags included."""
    plain = schema.get(side)
    exclusive_key = "exclusiveMinimum" if side == "minimum" else "exclusiveMaximum"
    exclusive = schema.get(exclusive_key)
    candidates: list[tuple[float, bool]] = []
    if _is_number(plain):
        candidates.append((plain, exclusive is True))
    if _is_number(exclusive):
        candidates.append((exclusive, True))
    if not candidates:
        return None
    if side == "minimum":
        return max(candidates, key=lambda b: (b[0], b[1]))
    return min(candidates, key=lambda b: (b[0], not b[1]))


def _tighter(
    reader: tuple[float, bool] | None, writer: tuple[float, bool] | None, *, lower: bool
) -> bool:
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
    return f"{hints.show(bound[0])}{' (exclusive)' if bound[1] else ''}"


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
