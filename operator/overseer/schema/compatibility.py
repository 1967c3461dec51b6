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
(`if`/`then`/`else`, unknown keywords) count as breaking when they change at all.

The walk runs over the sections resolved once (overseer.schema.resolved): each pair of subschemas
(writer node, reader node) is compared once, its changes reported at the first path that reaches
it, so a recursive or heavily shared schema costs in proportion to its size, never to its paths; a
comparison past limits.MAX_COMPARE_STEPS steps stops with TOO_COMPLEX_TO_COMPARE. Nothing here
recurses with the schema: the reporting walk is breadth-first and probes are solved on a work list.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from overseer import text as hints
from overseer.schema.codes import message
from overseer.schema.jsonschema_walk import (
    accepts_types,
    expand_types,
    flat_of,
    has_default,
    is_open,
    properties,
    required,
    schema_for_undeclared,
    types_of,
    undeclared,
)
from overseer.schema.limits import MAX_COMPARE_STEPS, MAX_HISTORY_VALUES, MAX_SCHEMA_DEPTH, size_problem
from overseer.schema.modes import COMPATIBILITY_MODES
from overseer.schema.resolved import Node, ResolvedSection
from overseer.schema.validation import SECTIONS, CompiledSection, compile_section, sections_of

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
    relies_on_defaults: bool = False
    """Some required property is only there because a `default` fills it in: configs are
    compatible once filled in by the version that reads them, not as they are written."""

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


class _Budget:
    """Pairs of subschemas one check may still compare (shared by every pair of versions)."""

    def __init__(self, steps: int = MAX_COMPARE_STEPS) -> None:
        self.steps = steps
        self.limit = steps

    def spend(self, units: int = 1) -> None:
        self.steps -= units
        if self.steps < 0:
            raise _TooComplex


class _TooComplex(Exception):
    pass


def check_compatibility(old: Any, new: Any, mode: str, *, budget: _Budget | None = None) -> CompatibilityReport:
    """Compare one schema version (its three sections) with a later one under `mode`.

    `old`/`new` are mappings with labels/metadata/customObjects (a SchemaVersion or SchemaSnapshot
    works too). A `_TRANSITIVE` mode compares just this pair like its base mode; check_history
    walks a whole version list. Never raises on bad schemas; bounded by MAX_COMPARE_STEPS.
    """
    mode = normalize_mode(mode)
    return _compare_versions(_compiled(old), _compiled(new), mode, budget or _Budget())


_Compiled = tuple[int | None, dict[str, CompiledSection]]


def _compiled(version: Any) -> _Compiled:
    """A version's number and its three sections, compiled (once per version in check_history)."""
    sections = sections_of(version)
    return _version_number(version), {name: compile_section(sections[name]) for name, _ in SECTIONS}


def _compare_versions(old: _Compiled, new: _Compiled, mode: str, budget: _Budget) -> CompatibilityReport:
    changes: list[BreakingChange] = []
    notices: list[BreakingChange] = []
    relies_on_defaults = False
    for section, _ in SECTIONS:
        compiled_new = new[1][section]
        if compiled_new.problem is not None or compiled_new.resolved is None:
            problem = compiled_new.problem or "unusable schema"
            changes.append(BreakingChange("SCHEMA_INVALID", section, message("SCHEMA_INVALID", problem=problem)))
            continue
        compiled_old = old[1][section]
        if compiled_old.resolved is None or compiled_old.problem is not None:
            continue  # nothing reliable to compare with; the old version's own check reports it
        if compiled_old.key is not None and compiled_old.key == compiled_new.key:
            continue  # the usual case for two of the three sections: nothing to walk
        if budget.steps < 0:
            changes.append(_too_complex(section, budget))  # spent on earlier pairs of this check
            continue
        walks: list[_Walk] = []
        try:
            for direction in directions(mode) or (_BACKWARD,):
                if direction == _BACKWARD:
                    walk = _Walk(direction, compiled_old.resolved, compiled_new.resolved, budget)
                else:
                    walk = _Walk(direction, compiled_new.resolved, compiled_old.resolved, budget)
                walks.append(walk)
                walk.compare_root(section)
        except (_TooComplex, RecursionError):
            budget.steps = min(budget.steps, -1)
            if directions(mode):
                changes.append(_too_complex(section, budget))
            continue
        notices.extend(n for w in walks for n in w.notices)
        relies_on_defaults |= any(w.relied_on_defaults for w in walks)
        if not directions(mode):
            continue  # NONE: the walk only collected notices for `schema diff`
        renames = {old_path: pair for w in walks for old_path, pair in w.renames.items()}
        changes.extend(_fold_renames([c for w in walks for c in w.changes], renames))
    return CompatibilityReport(
        mode=mode,
        changes=_unique(changes),
        notices=_unique(notices),
        old_version=old[0],
        new_version=new[0],
        relies_on_defaults=relies_on_defaults,
    )


def _too_complex(section: str, budget: _Budget) -> BreakingChange:
    text = message("TOO_COMPLEX_TO_COMPARE", limit=f"{budget.limit:,}")
    return BreakingChange("TOO_COMPLEX_TO_COMPARE", section, text)


@dataclass(frozen=True)
class VersionProblem:
    """One reason a ModelSchema's version list is refused, for a webhook or CLI to print."""

    version: int | None
    """The version it is about (None for a version number that could not be read)."""
    path: str
    """Section-qualified field path inside that version (`customObjects.conf`), or "" for the version."""
    code: str
    message: str
    against: int | None = None
    """The earlier version it was compared with; None for registration problems (removed, modified)."""
    direction: str = ""

    def __str__(self) -> str:
        where = f"version {self.version}" + (f".{self.path}" if self.path else "")
        pair = f" (compared with version {self.against})" if self.against is not None else ""
        return f"{self.code} {where}: {self.message}{pair}"


@dataclass(frozen=True)
class HistoryReport:
    mode: str
    problems: list[VersionProblem]
    """Registration problems first, then breaking changes, oldest new version first."""
    reports: list[CompatibilityReport]
    """Every pair of versions compared (with notices), oldest new version first."""
    registered: list[BreakingChange] = field(default_factory=list)
    """VERSION_REMOVED / VERSION_MODIFIED, as BreakingChanges (path `version N[.section]`)."""

    @property
    def ok(self) -> bool:
        return not self.problems


def check_history(versions: Sequence[Any], mode: str, *, registered: Sequence[Any] = ()) -> HistoryReport:
    """Check a ModelSchema's list of versions the way admission must; the one walk over a version
    history (`overseer validate`, `overseer schema diff` and the admission webhook all call it).

    - `registered`: the versions as they were stored (the old object on an UPDATE; empty on CREATE).
      None may be removed and none of their three sections changed, whatever the mode
      (VERSION_REMOVED, VERSION_MODIFIED); a description or `deprecated` may change.
    - Every version of `versions` that is not registered is checked against the versions before it
      (in version order) as `mode` requires: the previous one, or every earlier one under a
      _TRANSITIVE mode. Under NONE nothing breaks, but the previous version is still compared for
      notices (a changed default).
    - Under a _TRANSITIVE mode a version is compared with the previous one first. When that passes
      without a default filling in a required property, and the previous version is itself known
      to accept every earlier version's configs as written (checked in this call, not merely
      registered), the earlier pairs are not compared: such compatibility is inclusion of the sets
      of valid configs, inclusion is transitive, and the checker only says "compatible" when it has
      shown it. Defaults break the chain (a config is filled in by the version that reads it, not
      by the versions in between), so then every earlier version is compared. A consistent history
      of N versions costs N - 1 comparisons instead of N (N - 1) / 2.

    Versions are mappings with `version` and the three sections (a SchemaVersion works too).
    Pure, never raises on bad schemas, and bounded: all pairs together share MAX_COMPARE_STEPS.
    """
    mode = normalize_mode(mode)
    registered_changes = check_registered_versions(registered, versions) if registered else []
    too_large = size_problem(
        [sections_of(v) for v in versions], max_values=MAX_HISTORY_VALUES, max_depth=MAX_SCHEMA_DEPTH + 3
    )
    if too_large is not None and too_large.startswith("more than"):
        # Everything else is each section's own problem (reported as SCHEMA_INVALID on compile).
        text = message("HISTORY_TOO_LARGE", limit=f"{MAX_HISTORY_VALUES:,}")
        change = BreakingChange("HISTORY_TOO_LARGE", "", text)
        latest = max((n for n in map(_version_number, versions) if n is not None), default=None)
        problems = [*_registration_problems(registered_changes), _problem(latest, change)]
        return HistoryReport(mode, problems, [], registered_changes)
    known = {_version_number(v) for v in registered}
    ordered = sorted((v for v in versions if _version_number(v) is not None), key=lambda v: _version_number(v) or 0)
    budget = _Budget()
    reports: list[CompatibilityReport] = []
    compiled: dict[int, _Compiled] = {}

    def version_at(index: int) -> _Compiled:
        if index not in compiled:
            compiled[index] = _compiled(ordered[index])
        return compiled[index]

    transitive = mode.endswith("_TRANSITIVE")
    proven: set[int] = set()
    """Indexes of versions shown compatible with every version before them (in this call)."""
    if ordered:
        proven.add(0)
    for index, version in enumerate(ordered):
        if index == 0 or _version_number(version) in known:
            continue
        targets = range(index - 1, -1, -1) if transitive else [index - 1]
        compatible = True
        for position, old in enumerate(targets):
            if budget.steps < 0:  # spent: one answer for the rest of this version, not one per pair
                change = _too_complex("", budget)
                numbers = _version_number(ordered[old]), _version_number(version)
                reports.append(CompatibilityReport(mode, [change], [], *numbers))
                compatible = False
                break
            report = _compare_versions(version_at(old), version_at(index), mode, budget)
            reports.append(report)
            compatible = compatible and report.compatible and not report.relies_on_defaults
            if position == 0 and compatible and index - 1 in proven:
                break  # compatible with every earlier version through the previous one
        if compatible and transitive:
            proven.add(index)
    problems = _registration_problems(registered_changes)
    problems.extend(
        VersionProblem(r.new_version, c.path, c.code, c.message, r.old_version, c.direction)
        for r in reports
        for c in r.changes
    )
    return HistoryReport(mode, problems, reports, registered_changes)


def _registration_problems(changes: list[BreakingChange]) -> list[VersionProblem]:
    return [VersionProblem(_registered_number(c.path), _registered_section(c.path), c.code, c.message) for c in changes]


def _problem(version: int | None, change: BreakingChange) -> VersionProblem:
    return VersionProblem(version, change.path, change.code, change.message)


def _registered_number(path: str) -> int | None:
    number = path.removeprefix("version ").partition(".")[0]
    return int(number) if number.isdigit() else None


def _registered_section(path: str) -> str:
    return path.partition(".")[2]


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
    try:
        return json.dumps(_raw(value), sort_keys=True, default=str)
    except (RecursionError, ValueError, TypeError):
        return f"<unserialisable {id(value)}>"  # only equal to itself


def _raw(value: Any) -> Any:
    """JSON for a value of a flat schema (Nodes become the schema they stand for)."""
    if isinstance(value, Node):
        return value.raw()
    if isinstance(value, list | tuple):
        return [_raw(v) for v in value]
    if isinstance(value, dict):
        return {k: _raw(v) for k, v in value.items()}
    return value


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
        "$dynamicAnchor",
        "$vocabulary",
        "contentMediaType",
        "contentEncoding",
        "contentSchema",
    ]
)
# Keywords the walk understands; any other keyword that differs is reported as KEYWORD_CHANGED.
_UNDERSTOOD = _ANNOTATIONS | frozenset(
    [
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
        "unevaluatedItems",
        "minItems",
        "maxItems",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "properties",
        "required",
        "additionalProperties",
        "unevaluatedProperties",
        "patternProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
        "dependentRequired",
        "dependentSchemas",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
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


_Key = tuple[int, int]
_PAIR_STEPS = 16
"""Steps a comparison of one pair of subschemas costs (a property compared costs one)."""


class _Walk:
    """Collects what the reader schema rejects among the values the writer schema accepts.

    The reporting walk is breadth-first: each (writer node, reader node) pair is compared once and
    its changes reported at the first (shortest) path that reaches it (`_done`, `_queue`).

    Probes ask whether a pair breaks, for unions, `not`, `contains` and dependencies. A probe is a
    fixpoint over the pairs it reaches, solved with a work list rather than recursion (so its depth
    never depends on the schema): every pair starts assumed compatible, the usual co-inductive
    reading of recursive types; a pair is evaluated with what is known of its sub-pairs, and is
    evaluated again whenever one of them turns out to break. The answers only ever move from
    compatible to broken, so the solution is reached after each pair has been evaluated at most
    once per sub-pair that breaks, and when the list is empty every answer is final (memoised in
    `_final` for the rest of the walk)."""

    def __init__(self, direction: str, writer: ResolvedSection, reader: ResolvedSection, budget: _Budget) -> None:
        self.direction = direction
        self.writer = writer
        self.reader = reader
        self.budget = budget
        self.changes: list[BreakingChange] = []
        self.notices: list[BreakingChange] = []
        self.renames: dict[str, _Rename] = {}
        self.relied_on_defaults = False
        """A default filled in a required property somewhere (see CompatibilityReport)."""
        self._done: set[_Key] = set()
        self._queue: deque[tuple[Node, Node, str]] = deque()
        self._probing = 0
        self._siblings: dict[tuple[int, str], Node] = {}
        self._final: dict[_Key, bool] = {}
        """Probe answers that are settled: True when the pair breaks."""
        # The probe being solved: assumed answers, who depends on whom, what each pair emitted.
        self._assumed: dict[_Key, bool] = {}
        self._pairs: dict[_Key, tuple[Node, Node, str]] = {}
        self._parents: dict[_Key, set[_Key]] = {}
        self._children: dict[_Key, list[_Key]] = {}
        self._emitted: dict[_Key, list[BreakingChange]] = {}
        self._current: _Key | None = None
        self._pending: list[_Key] = []
        self._queued: set[_Key] = set()

    @property
    def backward(self) -> bool:
        return self.direction == _BACKWARD

    def old_new(self, writer_side: Any, reader_side: Any) -> tuple[Any, Any]:
        """(old, new) from a (writer, reader) pair."""
        return (writer_side, reader_side) if self.backward else (reader_side, writer_side)

    def emit(self, path: str, backward_code: str, forward_code: str, **fields: Any) -> None:
        code = backward_code if self.backward else forward_code
        self.changes.append(BreakingChange(code, path, message(code, **fields), self.direction))

    # Probes -------------------------------------------------------------------------------------

    def _probe(self, writer: Node, reader: Node, path: str) -> tuple[bool, list[BreakingChange]]:
        """Whether the reader rejects some value of the writer, and (for a probe solved here) the
        changes found on the way, without emitting them."""
        if _same(writer, reader):
            return False, []
        key = (id(writer.flat), id(reader.flat))
        known = self._final.get(key)
        if known is not None:
            return known, []
        if self._probing:
            return self._depend(key, writer, reader, path), []
        self._solve(key, writer, reader, path)
        broken = self._final[key]
        return broken, self._gather(key) if broken else []

    def _breaks(self, writer: Node, reader: Node) -> bool:
        return self._probe(writer, reader, "")[0]

    def _depend(self, key: _Key, writer: Node, reader: Node, path: str) -> bool:
        """Inside a probe: the current answer for a sub-pair (queued if new), noting who asked."""
        assert self._current is not None
        parents = self._parents.setdefault(key, set())
        if self._current not in parents:
            parents.add(self._current)
            self._children.setdefault(self._current, []).append(key)
        assumed = self._assumed.get(key)
        if assumed is None:
            self._assumed[key] = False
            self._pairs[key] = (writer, reader, path)
            self._queued.add(key)
            self._pending.append(key)
            return False
        return assumed

    def _solve(self, key: _Key, writer: Node, reader: Node, path: str) -> None:
        """Settle the probe of one pair and of every pair it reaches. Depth-first with an explicit
        stack: a pair that found new sub-pairs goes back under them, so it is evaluated again once
        they are known (usually just once more), rather than once per sub-pair that breaks."""
        self._assumed, self._parents, self._children, self._emitted = {key: False}, {}, {}, {}
        self._pairs = {key: (writer, reader, path)}
        self._pending = [key]
        self._queued = queued = {key}
        saved = self.changes, self.notices, self.renames
        self._probing += 1
        try:
            while self._pending:
                current = self._pending.pop()
                queued.discard(current)
                if self._assumed[current]:
                    continue  # broken stays broken
                self.budget.spend(_PAIR_STEPS)
                self._current = current
                self.changes, self.notices, self.renames = [], [], {}
                mark = len(self._pending)
                w, r, at = self._pairs[current]
                broken = self._compare(w, r, at) or bool(self.changes)
                self._emitted[current] = self.changes
                if broken:
                    self._assumed[current] = True
                    for parent in self._parents.get(current, ()):
                        if parent not in queued:
                            queued.add(parent)
                            self._pending.append(parent)
                elif len(self._pending) > mark:
                    found = self._pending[mark:]
                    del self._pending[mark:]
                    queued.add(current)
                    self._pending.append(current)
                    self._pending.extend(found)
        finally:
            self._probing -= 1
            self._current = None
            self.changes, self.notices, self.renames = saved
        self._final.update(self._assumed)

    def _gather(self, key: _Key) -> list[BreakingChange]:
        """What a solved probe found: the changes of the pair and of the sub-pairs that break."""
        found: list[BreakingChange] = []
        seen = {key}
        order = [key]
        while order:
            current = order.pop(0)
            found.extend(self._emitted.get(current, ()))
            for child in self._children.get(current, ()):
                if child not in seen and self._final.get(child):
                    seen.add(child)
                    order.append(child)
        return found

    # Entry --------------------------------------------------------------------------------------

    def compare_root(self, section: str) -> None:
        # A section always holds an object: an untyped section schema is an object schema.
        self.compare(self._as_object(self.writer), self._as_object(self.reader), section)
        while self._queue:
            writer, reader, path = self._queue.popleft()
            self.budget.spend(_PAIR_STEPS)
            self._compare(writer, reader, path)

    def _as_object(self, section: ResolvedSection) -> Node:
        flat = section.root.flat
        if isinstance(flat, dict) and "type" not in flat:
            return section.from_flat({**flat, "type": "object"}, ())
        return section.root

    def compare(self, writer: Node, reader: Node, path: str) -> bool:
        """Compare a pair of subschemas. The reporting walk queues the pair (a change in a shared or
        recursive subschema is reported at its shortest path) and returns nothing useful; inside a
        probe it returns what is known so far of whether the pair breaks."""
        if _same(writer, reader):
            return False  # the same schema on both sides: nothing to find below
        # Keyed by the flat views: nodes that only refer to the same schema share one.
        key = (id(writer.flat), id(reader.flat))
        if not self._probing:
            if key not in self._done:
                self._done.add(key)
                self._queue.append((writer, reader, path))
            return False
        known = self._final.get(key)
        if known is not None:
            return known
        return self._depend(key, writer, reader, path)

    def _compare(self, writer_node: Node, reader_node: Node, path: str) -> bool:
        """Returns True when a sub-comparison found a break it did not emit here (reported elsewhere)."""
        writer, reader = writer_node.flat, reader_node.flat
        if reader is True or writer is False or reader == {}:
            return False
        if writer is True:
            writer = _ANY
        if reader is False:
            old, new = self.old_new(_types_text(types_of(writer)), "nothing")
            self.emit(path, "TYPE_NARROWED", "TYPE_WIDENED", old=old, new=new)
            return True
        if _union(writer) or _union(reader):
            return self._compare_unions(writer_node, reader_node, path)
        self._notice_default(writer, reader, path)
        if not self._compare_types(writer, reader, path):
            return True
        self._compare_enum(writer, reader, path)
        hidden = False
        w_types = types_of(writer)
        if w_types is None or w_types & {"number", "integer"}:
            self._compare_numbers(writer, reader, path)
        if w_types is None or "string" in w_types:
            self._compare_strings(writer, reader, path)
        if w_types is None or "array" in w_types:
            hidden |= self._compare_arrays(writer, reader, path)
        if w_types is None or "object" in w_types:
            hidden |= self._compare_objects(writer_node, writer, reader, path)
        hidden |= self._compare_negations(writer, reader, path)
        for keyword in sorted((set(writer) | set(reader)) - _UNDERSTOOD):
            if _canonical(writer.get(keyword)) != _canonical(reader.get(keyword)):
                self.emit(path, "KEYWORD_CHANGED", "KEYWORD_CHANGED", keyword=keyword)
        return hidden

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
        allowed = {_canonical_value(v) for v in r_values}
        missing = [v for v in w_values if _canonical_value(v) not in allowed]
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

    def _compare_arrays(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> bool:
        """Positions (prefixItems; draft-07's list `items`), the rest (`items`, draft-07's
        `additionalItems`, else `unevaluatedItems`), sizes, uniqueness and `contains`."""
        self._compare_sizes(writer, reader, path, ("minItems", "maxItems"))
        if reader.get("uniqueItems") is True and writer.get("uniqueItems") is not True:
            self.emit(path, "UNIQUE_ITEMS_ADDED", "UNIQUE_ITEMS_REMOVED")
        w_prefix, r_prefix = _list(writer.get("prefixItems")), _list(reader.get("prefixItems"))
        w_rest, r_rest = self._rest_items(self.writer, writer), self._rest_items(self.reader, reader)
        w_max = writer.get("maxItems")
        hidden = False
        for index in range(max(len(w_prefix), len(r_prefix))):
            if _is_number(w_max) and index >= w_max:
                break  # the writer never has an item here
            w_item = w_prefix[index] if index < len(w_prefix) else w_rest
            r_item = r_prefix[index] if index < len(r_prefix) else r_rest
            hidden |= self.compare(w_item, r_item, f"{path}[{index}]")
        if not (_is_number(w_max) and w_max <= len(w_prefix)):
            hidden |= self.compare(w_rest, r_rest, f"{path}[]")
        hidden |= self._compare_contains(writer, reader, path)
        return hidden

    def _rest_items(self, section: ResolvedSection, flat: Mapping[str, Any]) -> Node:
        for keyword in ("items", "unevaluatedItems"):
            if isinstance(flat.get(keyword), Node):
                return flat[keyword]  # type: ignore[no-any-return]
        return section.constant(True)

    def _compare_contains(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> bool:
        """The reader's `contains` (at least minContains, at most maxContains matching items) holds
        for every writer array when the writer's own `contains` implies it."""
        r_contains = reader.get("contains")
        if not isinstance(r_contains, Node):
            return False
        r_min = reader.get("minContains", 1)
        r_max = reader.get("maxContains")
        w_contains = writer.get("contains")
        w_min = writer.get("minContains", 1) if isinstance(w_contains, Node) else 0
        w_max = writer.get("maxContains") if isinstance(w_contains, Node) else writer.get("maxItems")
        fine = isinstance(w_contains, Node) and not self._breaks(w_contains, r_contains) and w_min >= r_min
        if r_min == 0:
            fine = True
        if fine and _is_number(r_max):
            # Items matching the reader's schema are counted: bounded when they all match the writer's.
            covered = isinstance(w_contains, Node) and not self._breaks(r_contains, w_contains)
            fine = _is_number(w_max) and w_max <= r_max and (covered or w_max == writer.get("maxItems"))
        if not fine:
            self.emit(path, "CONTAINS_NARROWED", "CONTAINS_EXTENDED")
        return False

    # Objects ------------------------------------------------------------------------------------

    def _compare_objects(
        self, writer_node: Node, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str
    ) -> bool:
        w_props, r_props = properties(writer), properties(reader)
        w_required, r_required = required(writer), required(reader)
        self.budget.spend(len(w_props) + len(r_props))  # the work here grows with the properties
        hidden = False
        for name in w_props:
            if name in r_props and _same(w_props[name], r_props[name]):
                continue  # the usual case between two versions: nothing to find
            child = hints.field_path(path, [name])
            if name in r_props:
                hidden |= self.compare(w_props[name], r_props[name], child)
            else:
                hidden |= self._writer_only(writer, reader, name, child)
        reader_only = [n for n in r_props if n not in w_props]
        for name in reader_only:
            hidden |= self._reader_only(writer, r_props[name], name, hints.field_path(path, [name]))
        for name in sorted(r_required - w_required, key=_order(r_props)):
            if has_default(r_props.get(name)):
                self.relied_on_defaults = True
                continue  # the default fills the gap (Confluent: ..._WITH_DEFAULT_ADDED is compatible)
            child = hints.field_path(path, [name])
            if name in w_props:
                self.emit(child, "PROPERTY_MADE_REQUIRED", "PROPERTY_MADE_OPTIONAL")
            else:
                self.emit(child, "REQUIRED_PROPERTY_ADDED", "REQUIRED_PROPERTY_REMOVED")
        if not self._probing:  # a probe only asks whether the pair breaks
            self._record_renames(path, [n for n in w_props if n not in r_props], reader_only)
        hidden |= self._compare_additional(writer, reader, path)
        self._compare_sizes(writer, reader, path, ("minProperties", "maxProperties"))
        hidden |= self._compare_property_names(writer, reader, path)
        self._compare_dependencies(writer_node, writer, reader, path)
        return hidden

    def _writer_only(self, writer: Mapping[str, Any], reader: Mapping[str, Any], name: str, path: str) -> bool:
        """A property only the writer declares: the reader checks it as an undeclared one."""
        if is_open(reader):
            return False
        extra = schema_for_undeclared(reader, name)
        declared = properties(writer)[name]
        if flat_of(extra) is False:
            if flat_of(declared) is not False:
                self.emit(path, "PROPERTY_REMOVED", "PROPERTY_ADDED_TO_CLOSED_MODEL")
            return False
        return self.compare(declared, self._node(self.reader, extra), path)

    def _reader_only(self, writer: Mapping[str, Any], declared: Node, name: str, path: str) -> bool:
        """A property only the reader declares: writer data may hold it as an undeclared one."""
        extra = schema_for_undeclared(writer, name)
        if flat_of(extra) is False:
            return False  # closed writer: its data never holds this property
        if is_open(writer):
            resolved = declared.flat
            if resolved is not True and resolved != {} and not _only_annotations(resolved):
                self.emit(path, "PROPERTY_ADDED_TO_OPEN_MODEL", "PROPERTY_REMOVED_FROM_OPEN_MODEL")
            return False
        return self.compare(self._node(self.writer, extra), declared, path)

    def _compare_additional(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> bool:
        w_extra, r_extra = flat_of(undeclared(writer)), flat_of(undeclared(reader))
        if w_extra is False:
            return False
        if r_extra is False:
            self.emit(f"{path}.*", "ADDITIONAL_PROPERTIES_NARROWED", "ADDITIONAL_PROPERTIES_EXTENDED")
            return False
        return self.compare(
            self._node(self.writer, undeclared(writer)), self._node(self.reader, undeclared(reader)), f"{path}.*"
        )

    def _compare_property_names(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> bool:
        r_names = reader.get("propertyNames")
        if not isinstance(r_names, Node):
            return False
        w_names = writer.get("propertyNames")
        if not isinstance(w_names, Node):
            w_names = self.writer.constant({"type": "string"})  # property names are strings
        return self.compare(w_names, r_names, f"{path}.(names)")

    def _compare_dependencies(
        self, writer_node: Node, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str
    ) -> None:
        """`dependentRequired` / `dependentSchemas` (draft-07 `dependencies`): what the reader demands
        when a property is present must already hold for every writer value that has it."""
        w_required, r_required = _mapping(writer.get("dependentRequired")), _mapping(reader.get("dependentRequired"))
        always = required(writer)
        for name, needed in r_required.items():
            demanded = set(needed) if isinstance(needed, list) else set()
            granted = always | set(w_required.get(name, []) if isinstance(w_required.get(name), list) else [])
            missing = demanded - granted
            lacking = [n for n in missing if not has_default(properties(reader).get(n))]
            self.relied_on_defaults |= len(lacking) < len(missing)
            if lacking and self._may_hold(writer, name):
                self.emit(hints.field_path(path, [name]), "DEPENDENCY_ADDED", "DEPENDENCY_REMOVED", key=name)
        w_schemas, r_schemas = _mapping(writer.get("dependentSchemas")), _mapping(reader.get("dependentSchemas"))
        for name, r_schema in r_schemas.items():
            if not isinstance(r_schema, Node) or not self._may_hold(writer, name):
                continue
            w_schema = w_schemas.get(name)
            source = self.writer.merge([writer_node, w_schema]) if isinstance(w_schema, Node) else writer_node
            if self._breaks(source, r_schema):
                self.emit(hints.field_path(path, [name]), "DEPENDENCY_ADDED", "DEPENDENCY_REMOVED", key=name)

    def _may_hold(self, writer: Mapping[str, Any], name: str) -> bool:
        """Can a writer value have property `name` at all?"""
        if name in properties(writer):
            return flat_of(properties(writer)[name]) is not False
        return flat_of(schema_for_undeclared(writer, name)) is not False

    def _compare_negations(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> bool:
        """The reader's `not N` rejects values matching N: harmless when the writer already
        excludes them, that is when some `not M` of the writer covers N (N's values all match M)."""
        for excluded in _list(reader.get("not")):
            covered = any(not self._breaks(excluded, m) for m in _list(writer.get("not")))
            if not covered and not self._disjoint(writer, excluded):
                self.emit(path, "NEGATION_NARROWED", "NEGATION_EXTENDED", branch=hints.describe(excluded))
        return False

    def _disjoint(self, writer: Mapping[str, Any], excluded: Node) -> bool:
        """A cheap sufficient test that no writer value matches `excluded`: no common type or value."""
        w_types, x_types = types_of(writer), types_of(excluded)
        if w_types is not None and x_types is not None and not (expand_types(w_types) & expand_types(x_types)):
            return True
        w_values, x_flat = _enum(writer), excluded.flat
        if w_values is not None and isinstance(x_flat, dict) and _enum(x_flat) is not None:
            excluded_values = {_canonical_value(v) for v in _enum(x_flat) or []}
            return all(_canonical_value(v) not in excluded_values for v in w_values)
        return False

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

    def _compare_unions(self, writer_node: Node, reader_node: Node, path: str) -> bool:
        """Every writer alternative must be accepted by some reader alternative."""
        writer, reader = writer_node.flat, reader_node.flat
        assert isinstance(writer, dict) and isinstance(reader, dict)
        w_branches = self._branches(self.writer, writer_node)
        r_branches = self._branches(self.reader, reader_node)
        keyword = next((k for k in _UNION if k in writer or k in reader), "anyOf")
        self.budget.spend(len(w_branches) * len(r_branches))  # a look-up per pair of alternatives
        hidden = False
        for index, w_branch in enumerate(w_branches):
            attempts: list[list[BreakingChange]] = []
            if self._probing:
                # Every pair at once: a sub-pair not known yet counts as accepting, and stopping at
                # it would find the next alternatives one re-evaluation at a time.
                if not all([self._probe(w_branch, r_branch, path)[0] for r_branch in r_branches]):
                    continue
                attempts = [[] for _ in r_branches]
            for r_branch in r_branches if not self._probing else ():
                broken, found = self._probe(w_branch, r_branch, path)
                if not broken:
                    break
                attempts.append(found)
            else:
                attempts = attempts or [[]]
            if len(attempts) < len(r_branches):
                continue  # some reader alternative accepts everything this one does
            best = min(attempts, key=len)
            if (len(r_branches) == 1 or len(w_branches) == 1) and best:
                # The concrete reason beats a generic "alternative removed".
                self.changes.extend(best)
            elif len(r_branches) == 1 or len(w_branches) == 1:
                hidden = True  # broken deeper, in a pair already reported elsewhere
                if not self._probing:
                    self.emit(path, "BRANCH_REMOVED", "BRANCH_ADDED", keyword=keyword, branch=hints.describe(w_branch))
            else:
                self.emit(
                    f"{path}.{keyword}[{index}]",
                    "BRANCH_REMOVED",
                    "BRANCH_ADDED",
                    keyword=keyword,
                    branch=hints.describe(w_branch),
                )
        return hidden

    def _branches(self, section: ResolvedSection, node: Node) -> list[Node]:
        """Union alternatives with the schema's sibling keywords folded into each (one node per
        alternative, cached, so a recursive union meets the same nodes again)."""
        flat = node.flat
        if not isinstance(flat, dict):
            return [node]
        for keyword in _UNION:
            branches = flat.get(keyword)
            if isinstance(branches, list):
                rest = {k: v for k, v in flat.items() if k != keyword}
                if not rest or _only_annotations(rest):
                    return list(branches)  # nothing to fold in: the alternatives themselves
                key = (id(flat), keyword)
                siblings = self._siblings.get(key)
                if siblings is None:
                    siblings = self._siblings[key] = section.from_flat(rest, node.pointer)
                return [section.merge([siblings, b]) for b in branches]
        return [node]

    def _node(self, section: ResolvedSection, schema: Any) -> Node:
        return schema if isinstance(schema, Node) else section.constant(schema)


# --- helpers -------------------------------------------------------------------------------------


def _same(writer: Node, reader: Node) -> bool:
    """The same schema on both sides (the usual case for most of two versions)."""
    if writer is reader:
        return True
    fingerprint = writer.fingerprint
    return fingerprint is not None and fingerprint == reader.fingerprint


_ANY: Mapping[str, Any] = {}


def _union(schema: Mapping[str, Any]) -> bool:
    return any(isinstance(schema.get(k), list) for k in _UNION)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _canonical_value(value: Any) -> str:
    """Canonical JSON of a data value (1 and 1.0 are the same JSON Schema value)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _canonical(value)


def _only_annotations(schema: Any) -> bool:
    return isinstance(schema, dict) and set(schema) <= _ANNOTATIONS


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


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
