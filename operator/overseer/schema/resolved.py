"""One schema section, resolved once into a graph of subschemas that every walk shares.

`resolve_section` reads a section's JSON Schema once: it finds every subschema by keyword (never
inside `enum`/`const` data), resolves every `$ref`/`$dynamicRef` the way the standard says (base URIs
from `$id`, `#anchor`s, percent- and `~`-decoded JSON pointers) through the `referencing` library with
a registry that holds this section and the bundled metaschemas only, so nothing is ever fetched or
opened, and refuses what cannot be checked in bounded time (cycles of references that never descend
into the value, over-long chains, patterns RE2 cannot run).

Each subschema becomes one `Node`, so a recursive schema is a cycle of nodes rather than an endless
tree: the default filler, the compatibility walk and the hints use node identity to stop and to
memoise. `Node.flat` is the node's schema with `$ref` targets and `allOf` conjuncts merged in (their
conjunction: types and enums intersected, bounds tightened, properties merged), or False when the
conjuncts contradict each other; subschemas in it are Nodes again.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema_specifications import REGISTRY as METASCHEMAS

from overseer import text
from overseer.schema.limits import MAX_INPLACE_DEPTH
from overseer.schema.regex import pattern_problem, search

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
DRAFT_07 = "http://json-schema.org/draft-07/schema"
# `$schema` values accepted (with or without a trailing "#"): their metaschemas ship with jsonschema,
# so checking against them reads nothing. Any other `$schema` is a schema problem.
SUPPORTED_DIALECTS = {
    DRAFT_2020_12: referencing.jsonschema.DRAFT202012,
    DRAFT_07: referencing.jsonschema.DRAFT7,
}

# Keywords whose value is one subschema, a list of them, or a name -> subschema map.
_ONE = (
    "additionalProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "items",
    "additionalItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
)
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
# Keywords applied to the same value (not to a part of it): a cycle through them never ends.
_IN_PLACE = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "dependencies")
_IN_PLACE_SET = frozenset(_IN_PLACE)


class SchemaProblem(ValueError):
    """The section cannot be used; the message names where (`at properties.x: ...`)."""


def dialect_of(schema: Any) -> str | None:
    """The supported dialect a section declares (2020-12 without `$schema`), or None."""
    declared = schema.get("$schema", DRAFT_2020_12) if isinstance(schema, Mapping) else DRAFT_2020_12
    if not isinstance(declared, str):
        return None
    declared = declared.removesuffix("#")
    return declared if declared in SUPPORTED_DIALECTS else None


@dataclass(eq=False, slots=True)
class Node:
    """One subschema. Identity matters: one Node per subschema of the section."""

    schema: Any
    """The raw subschema (a mapping or a boolean); None for merged nodes."""
    pointer: tuple[str | int, ...]
    """Where it is in the section, for messages."""
    graph: ResolvedSection = field(repr=False)
    ref: Node | None = field(default=None, repr=False)
    dynamic_refs: tuple[Node, ...] = field(default=(), repr=False)
    children: dict[str, Any] = field(default_factory=dict, repr=False)
    """keyword -> Node, list of Nodes, or name -> Node (as the keyword's value is shaped)."""
    parts: tuple[Node, ...] = field(default=(), repr=False)
    """For merged nodes: the conjuncts."""
    external: bool = False
    """A bundled metaschema: opaque to the walks."""
    base: str = ""
    """The base URI references in this subschema resolve against (from the enclosing `$id`s)."""
    _flat: Any = field(default=None, repr=False)
    plan: Any = field(default=None, repr=False)
    """The validator's compiled keyword list (overseer.schema.engine), built on first use."""
    _fingerprint: Any = field(default=False, repr=False)

    @property
    def where(self) -> str:
        return text.field_path("", self.pointer) or "top level"

    @property
    def flat(self) -> Mapping[str, Any] | bool:
        if self._flat is None:
            self._flat = _flatten(self)
        return self._flat  # type: ignore[no-any-return]

    @property
    def fingerprint(self) -> str | None:
        """Canonical JSON of the subschema (with its dialect) when nothing in it or below it refers
        elsewhere, else None: two nodes with the same fingerprint accept exactly the same values,
        whichever sections they are in (the compatibility walk skips such pairs)."""
        if self._fingerprint is False:
            self._fingerprint = _fingerprint(self)
        return self._fingerprint  # type: ignore[no-any-return]

    def raw(self) -> Any:
        """The JSON this node stands for (merged nodes: an allOf of their parts), for equality tests."""
        if self.parts:
            return {"allOf": [p.raw() for p in self.parts]}
        return self.schema


TRUE_SCHEMA: Any = True


@dataclass(eq=False)
class ResolvedSection:
    root: Node = field(init=False)
    dialect: str = DRAFT_2020_12
    registry: referencing.Registry[Any] = field(default_factory=lambda: METASCHEMAS)
    nodes: dict[int, Node] = field(default_factory=dict)
    """id(raw subschema) -> its Node; also how an error's schema from jsonschema finds its node."""
    dynamic_anchors: dict[tuple[str, str], Node] = field(default_factory=dict)
    """(base URI of a schema resource, name) -> the node declaring `$dynamicAnchor: name` in it."""
    dynamic: bool = False
    """Some `$dynamicRef` may resolve by the dynamic scope: a subschema's result depends on the
    path that reached it, so the validator does not memoise."""
    _merged: dict[tuple[int, ...], Node] = field(default_factory=dict)
    _constants: dict[bool | str, Node] = field(default_factory=dict)

    def node_for(self, schema: Any) -> Node | None:
        return self.nodes.get(id(schema))

    def constant(self, schema: Any) -> Node:
        """A node for a schema that is not in the section (True, False, {"type": "string"})."""
        key = schema if isinstance(schema, bool) else json.dumps(schema, sort_keys=True)
        node = self._constants.get(key)
        if node is None:
            node = self._constants[key] = Node(schema, (), self)
        return node

    def merge(self, nodes: list[Node]) -> Node:
        """The node that accepts what all of `nodes` accept (cached: same parts, same node). A merged
        node's parts are taken in, so merging conjunct after conjunct (an allOf of a thousand schemas
        with `items`) stays one level deep, not a thousand."""
        spliced = [part for n in nodes for part in (n.parts if n.parts and n.schema is None else (n,))]
        unique = list({id(n): n for n in spliced}.values())
        if len(unique) == 1:
            return unique[0]
        if not unique:
            return self.constant(True)
        key = tuple(id(n) for n in unique)
        node = self._merged.get(key)
        if node is None:
            node = self._merged[key] = Node(None, unique[0].pointer, self, parts=tuple(unique))
        return node

    def from_flat(self, flat: Mapping[str, Any], pointer: tuple[str | int, ...]) -> Node:
        """A node whose flat schema is `flat` (kept alive by the section, so its identity is stable)."""
        node = Node(None, pointer, self, parts=())
        node._flat = flat
        self._merged[(id(node),)] = node
        return node


def resolve_section(schema: Any) -> ResolvedSection:
    """Resolve one section; raises SchemaProblem when it cannot be used. The section must already
    be within the size bounds and plain JSON (dicts, lists, scalars: validation.compile_section
    measures it first)."""
    dialect = dialect_of(schema)
    if dialect is None:
        found = text.show(schema.get("$schema")) if isinstance(schema, Mapping) else "?"
        raise SchemaProblem(
            f"at $schema: unsupported {found}: expected {DRAFT_2020_12} (the default) or {DRAFT_07}#; "
            "other metaschemas are never fetched"
        )
    section = ResolvedSection(dialect=dialect)
    builder = _Builder(section, SUPPORTED_DIALECTS[dialect])
    section.root = builder.build(schema)
    builder.link()
    _check_in_place(section)
    return section


class _Builder:
    """Reads a section in one pass: checks each keyword's shape and makes one Node per subschema;
    then resolves the references."""

    def __init__(self, section: ResolvedSection, specification: Any) -> None:
        self.section = section
        self.specification = specification
        self.pending: list[Node] = []
        """Nodes with a $ref or $dynamicRef still to resolve."""
        self.resolvers: dict[str, Any] = {}
        self.registry: Any = None

    def build(self, schema: Any) -> Node:
        """The root node of the section, and one node per subschema under it. Iterative: depth is
        bounded by the size check before. The section is the compiler's own copy (never the
        caller's document), so nodes may point into it."""
        dialect = self.section.dialect
        resource = self.specification.create_resource(schema)
        root_uri = resource.id() or ""
        needs_crawl = False
        root = Node(schema, (), self.section, base=root_uri)
        stack: list[tuple[Any, Node]] = [(schema, root)] if isinstance(schema, dict) else []
        while stack:
            raw, node = stack.pop()
            where = node.pointer
            check_keywords(raw, where, dialect)
            if where and "$schema" in raw and dialect_of(raw) != dialect:
                found = text.show(raw["$schema"])
                place = text.field_path("", (*where, "$schema"))
                raise SchemaProblem(f"at {place}: a section uses one dialect; {found} differs from the top")
            self.section.nodes[id(raw)] = node
            if "$anchor" in raw or "$dynamicAnchor" in raw or ("$id" in raw and where):
                needs_crawl = True
            anchor = raw.get("$dynamicAnchor")
            if isinstance(anchor, str):
                self.section.dynamic_anchors.setdefault((node.base, anchor), node)
            if "$ref" in raw or "$dynamicRef" in raw:
                self.pending.append(node)
            for keyword, at, sub in _subschemas(raw, dialect):
                sub_where = (*where, *at)
                base = node.base
                if isinstance(sub, dict) and "$id" in sub:
                    # The draft's own rules (draft-07 ignores $id next to $ref) decide the base.
                    sub_id = self.specification.id_of(sub)
                    if sub_id is not None:
                        base = urljoin(base, sub_id)
                child = Node(sub, sub_where, self.section, base=base)
                if isinstance(sub, dict):
                    stack.append((sub, child))
                _attach(node, (keyword, *at[1:]), child)
        registry = METASCHEMAS.combine(referencing.Registry().with_resource("", resource))
        registry = registry.with_resource(root_uri, resource)
        # Anchors and embedded $ids are found by crawling the copy; plain pointers need no crawl.
        self.registry = registry.crawl() if needs_crawl else registry
        self.section.registry = self.registry
        return root

    def resolver(self, base: str) -> Any:
        found = self.resolvers.get(base)
        if found is None:
            found = self.resolvers[base] = self.registry.resolver(base_uri=base)
        return found

    def link(self) -> None:
        """Resolve every $ref and $dynamicRef to its node (building nodes for targets outside the
        keyword structure, such as a pointer into an unknown keyword)."""
        while self.pending:
            node = self.pending.pop()
            raw = node.schema
            for keyword in ("$ref", "$dynamicRef"):
                ref = raw.get(keyword)
                if ref is None:
                    continue
                if not isinstance(ref, str):
                    raise SchemaProblem(f"at {_where(node, keyword)}: expected a string, found {text.found(ref)}")
                target = self._target(node, keyword, ref, self.resolver(node.base))
                if keyword == "$ref":
                    node.ref = target
                else:
                    node.dynamic_refs = (target, *self._dynamic_anchors(ref))
                    name = ref.rpartition("#")[2]
                    if isinstance(target.schema, Mapping) and target.schema.get("$dynamicAnchor") == name:
                        self.section.dynamic = True

    def _target(self, node: Node, keyword: str, ref: str, resolver: Any) -> Node:
        try:
            resolved = resolver.lookup(ref)
        except referencing.exceptions.Unresolvable as error:
            raise SchemaProblem(f"at {_where(node, keyword)}: {_unresolvable(ref, error)}") from None
        known = self.section.nodes.get(id(resolved.contents))
        if known is not None:
            return known
        if str(resolved.resolver._base_uri).removesuffix("#") in SUPPORTED_DIALECTS or _is_metaschema(
            resolved.resolver._base_uri
        ):
            external = Node(resolved.contents, (), self.section, external=True)
            return external
        if not isinstance(resolved.contents, Mapping | bool):
            raise SchemaProblem(f"at {_where(node, keyword)}: {text.show(ref)} points to a value that is not a schema")
        # Inside the copy, but not where a keyword puts a subschema (an unknown keyword, say): its
        # subschemas are left as they are (read-only), and references in it are not followed.
        target = Node(resolved.contents, node.pointer, self.section, base=str(resolved.resolver._base_uri))
        if isinstance(resolved.contents, Mapping):
            self.section.nodes[id(resolved.contents)] = target
            self._adopt(target)
        return target

    def _adopt(self, top: Node) -> None:
        """Nodes for a subschema found only through a reference (its subschemas included)."""
        stack = [top]
        while stack:
            node = stack.pop()
            raw = node.schema
            if "$ref" in raw or "$dynamicRef" in raw:
                self.pending.append(node)
            for keyword, at, sub in _subschemas(raw, self.section.dialect):
                known = self.section.nodes.get(id(sub)) if isinstance(sub, dict) else None
                child = known or Node(sub, (*node.pointer, *at), self.section, base=node.base)
                if known is None and isinstance(sub, dict):
                    self.section.nodes[id(sub)] = child
                    stack.append(child)
                _attach(node, (keyword, *at[1:]), child)

    def _dynamic_anchors(self, ref: str) -> list[Node]:
        name = ref.rpartition("#")[2]
        return [n for n in self.section.nodes.values() if n.schema.get("$dynamicAnchor") == name]


JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
_COUNTS = (
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "maxProperties",
    "minProperties",
    "maxContains",
    "minContains",
)
_NUMBERS = ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum")
_STRINGS = ("$ref", "$dynamicRef", "$id", "$schema", "$comment", "title", "description", "format", "$dynamicAnchor")
_BOOLEANS = ("uniqueItems", "deprecated", "readOnly", "writeOnly")


def check_keywords(raw: Mapping[str, Any], where: tuple[str | int, ...], dialect: str) -> None:  # noqa: PLR0915
    """The shape of each keyword's value, as the metaschema says, in one linear pass (validating
    against the 2020-12 metaschema itself costs ~1 ms per subschema in python-jsonschema)."""

    def fail(keyword: str, expected: str, key: Any = None) -> None:
        at = text.field_path("", (*where, keyword) if key is None else (*where, keyword, key))
        value = raw[keyword] if key is None else key
        raise SchemaProblem(f"at {at}: expected {expected}, found {text.found(value)}")

    for keyword, value in raw.items():
        if keyword == "type":
            names = value if isinstance(value, list) else [value]
            for name in names:
                if name not in JSON_TYPES:
                    at = text.field_path("", (*where, "type"))
                    raise SchemaProblem(
                        f"at {at}: {text.show(name)} is not a JSON type (expected one of {', '.join(JSON_TYPES)})"
                    )
            if isinstance(value, list) and len(set(value)) != len(value):
                fail(keyword, "unique type names")
        elif keyword in _NUMBERS or keyword == "multipleOf":
            if not _number(value) or (keyword == "multipleOf" and value <= 0):
                fail(keyword, "a number" + (" > 0" if keyword == "multipleOf" else ""))
        elif keyword in _COUNTS:
            if not (_number(value) and float(value).is_integer() and value >= 0):
                fail(keyword, "a non-negative integer")
        elif keyword in _STRINGS:
            if not isinstance(value, str):
                fail(keyword, "a string")
        elif keyword in _BOOLEANS:
            if not isinstance(value, bool):
                fail(keyword, "true or false")
        elif keyword == "pattern":
            problem = pattern_problem(value)
            if problem is not None:
                at = text.field_path("", (*where, "pattern"))
                raise SchemaProblem(f"at {at}: {text.show(value)} is not a valid regular expression: {problem}")
        elif keyword in ("enum", "examples"):
            if not isinstance(value, list):
                fail(keyword, "an array")
        elif keyword == "required":
            if (
                not isinstance(value, list)
                or not all(isinstance(v, str) for v in value)
                or len(set(value)) != len(value)
            ):
                fail(keyword, "an array of unique property names")
        elif keyword in ("allOf", "anyOf", "oneOf", "prefixItems"):
            if not isinstance(value, list) or not value or not all(_is_schema(v) for v in value):
                fail(keyword, "a non-empty array of schemas")
        elif keyword == "items" and dialect == DRAFT_07 and isinstance(value, list):
            if not all(_is_schema(v) for v in value):
                fail(keyword, "a schema or an array of schemas")
        elif keyword in _ONE:
            if not _is_schema(value):
                fail(keyword, "a schema (an object or a boolean)")
        elif keyword in _MAP:
            if not isinstance(value, dict) or not all(_is_schema(v) for v in value.values()):
                fail(keyword, "an object whose values are schemas")
            if keyword == "patternProperties":
                for pattern in value:
                    problem = pattern_problem(pattern)
                    if problem is not None:
                        at = text.field_path("", (*where, keyword, pattern))
                        raise SchemaProblem(
                            f"at {at}: {text.show(pattern)} is not a valid regular expression: {problem}"
                        )
        elif keyword == "dependentRequired" or (keyword == "dependencies" and dialect == DRAFT_07):
            if not isinstance(value, dict):
                fail(keyword, "an object")
            for name, needed in value.items():
                names_ok = isinstance(needed, list) and all(isinstance(n, str) for n in needed)
                if not names_ok and not (keyword == "dependencies" and _is_schema(needed)):
                    fail(
                        keyword, "arrays of property names" + (" or schemas" if keyword == "dependencies" else ""), name
                    )
        elif keyword == "$anchor" and not (isinstance(value, str) and _ANCHOR.fullmatch(value)):
            fail(keyword, "an anchor name (a letter or _, then letters, digits, -, _, .)")


_ANCHOR = re.compile(r"[A-Za-z_][-A-Za-z0-9._]*")


def _is_metaschema(uri: Any) -> bool:
    return isinstance(uri, str) and uri.startswith(("https://json-schema.org/", "http://json-schema.org/"))


def _unresolvable(ref: str, error: Exception) -> str:
    if isinstance(error, referencing.exceptions.PointerToNowhere):
        return f"$ref {text.show(ref)} points to nothing"
    if isinstance(error, referencing.exceptions.NoSuchAnchor | referencing.exceptions.InvalidAnchor):
        return f"$ref {text.show(ref)}: no such anchor in this section"
    return (
        f"$ref {text.show(ref)} is not in this section: only references inside the section are resolved "
        "(#/$defs/..., #anchor, or a $id declared in it); nothing is ever fetched or opened"
    )


def _where(node: Node, keyword: str) -> str:
    return node.where


_ONE_SET = frozenset(_ONE)
_MANY_SET = frozenset(_MANY)
_MAP_SET = frozenset((*_MAP, "dependencies"))


def _subschemas(raw: Mapping[str, Any], dialect: str) -> Iterator[tuple[str, tuple[str | int, ...], Any]]:
    """(keyword, pointer suffix, subschema) for each subschema directly under `raw`, in document
    order (a schema object has a handful of keys; the keywords that hold subschemas are many)."""
    for keyword, value in raw.items():
        if keyword in _ONE_SET:
            if isinstance(value, dict | bool):
                yield keyword, (keyword,), value
            elif keyword == "items" and dialect == DRAFT_07 and isinstance(value, list):
                for index, sub in enumerate(value):
                    if isinstance(sub, dict | bool):
                        yield "items", ("items", index), sub
        elif keyword in _MANY_SET:
            if isinstance(value, list):
                for index, sub in enumerate(value):
                    if isinstance(sub, dict | bool):
                        yield keyword, (keyword, index), sub
        elif keyword in _MAP_SET and isinstance(value, dict):
            for name, sub in value.items():
                if isinstance(sub, dict | bool):  # not a draft-07 `dependencies` list of names
                    yield keyword, (keyword, name), sub


def _is_schema(value: Any) -> bool:
    return isinstance(value, dict | bool)


def _attach(parent: Node, slot: tuple[Any, ...], child: Node) -> None:
    keyword = slot[0]
    if len(slot) == 1:
        parent.children[keyword] = child
    elif isinstance(slot[1], int):
        parent.children.setdefault(keyword, {})[slot[1]] = child
    else:
        parent.children.setdefault(keyword, {})[slot[1]] = child


def _fingerprint(top: Node) -> str | None:
    if top.external or top.schema is None:
        return None  # a metaschema, or a merged view: no raw JSON of its own
    stack = [top]
    while stack:  # iterative: no recursion over the schema's depth
        node = stack.pop()
        if node.ref is not None or node.dynamic_refs:
            return None
        for value in node.children.values():
            stack.extend(value.values() if isinstance(value, dict) else (value,))
    return top.graph.dialect + _CANONICAL.encode(top.schema)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
"""One encoder for every fingerprint: json.dumps with options builds a new one per call."""


def _in_place_edges(node: Node) -> list[Node]:
    edges = [node.ref] if node.ref is not None else []
    edges.extend(node.dynamic_refs)
    for keyword, value in node.children.items():
        if keyword in _IN_PLACE_SET:
            if type(value) is dict:
                edges.extend(value.values())
            else:
                edges.append(value)
    return edges


def _check_in_place(section: ResolvedSection) -> None:
    """Refuse reference cycles that never descend into the value (`{"$ref": "#"}` at the root: an
    endless loop for any validator) and chains of in-place applicators longer than the bound."""
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    for start in list(section.nodes.values()):
        if id(start) in depth:
            continue
        stack: list[tuple[Node, Iterator[Node]]] = [(start, iter(_in_place_edges(start)))]
        on_path.add(id(start))
        while stack:
            node, edges = stack[-1]
            child = next(edges, None)
            if child is None:
                stack.pop()
                on_path.discard(id(node))
                depth[id(node)] = 1 + max((depth.get(id(c), 0) for c in _in_place_edges(node)), default=0)
                if depth[id(node)] > MAX_INPLACE_DEPTH:
                    raise SchemaProblem(
                        f"at {node.where}: more than {MAX_INPLACE_DEPTH} $ref/allOf/anyOf/oneOf/not/if levels "
                        "apply to the same value"
                    )
                continue
            if child.external or id(child) in depth:
                continue
            if id(child) in on_path:
                raise SchemaProblem(
                    f"at {node.where}: the references loop back to {child.where} without descending into "
                    "a property or an item: no value could ever be checked against it"
                )
            on_path.add(id(child))
            stack.append((child, iter(_in_place_edges(child))))


# --- flat views ---------------------------------------------------------------------------------------

_ANNOTATION_FIRST = ("title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly")
_MAX_KEYWORDS = {"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains"}
_MIN_KEYWORDS = {"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains"}
# Keywords the flat view drops: references and containers of definitions are already followed.
_DROPPED = {"$ref", "$dynamicRef", "allOf", "$defs", "definitions", "$schema", "$id", "$anchor", "$dynamicAnchor"}


def _own(node: Node) -> Mapping[str, Any] | bool:
    """The node's own keywords with subschemas replaced by nodes, draft-07 spelled as 2020-12."""
    raw = node.schema
    if isinstance(raw, bool):
        return raw
    if not isinstance(raw, Mapping):
        return True
    own: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _DROPPED:
            continue
        child = node.children.get(key)
        if isinstance(child, dict):
            if key in _MANY or (key == "items" and isinstance(value, list)):
                own[key] = [child[i] for i in sorted(child)]
            else:
                own[key] = {name: child[name] for name in value if name in child}
                if key == "dependencies":
                    own[key].update({k: v for k, v in value.items() if isinstance(v, list)})
        elif isinstance(child, Node):
            own[key] = child
        else:
            own[key] = value
    if node.graph.dialect == DRAFT_07:
        items = own.pop("items", None)
        additional = own.pop("additionalItems", None)
        if isinstance(items, list):
            own["prefixItems"] = items
            if additional is not None:
                own["items"] = additional
        elif items is not None:
            own["items"] = items
    if "dependencies" in own:
        dependencies = own.pop("dependencies")
        own["dependentRequired"] = {k: v for k, v in dependencies.items() if isinstance(v, list)}
        own["dependentSchemas"] = {k: v for k, v in dependencies.items() if isinstance(v, Node)}
    if "const" in own:
        own["enum"] = [own.pop("const")] if "enum" not in own else own["enum"]
    if isinstance(own.get("not"), Node):
        own["not"] = [own["not"]]
    return own


def _flatten(node: Node) -> Mapping[str, Any] | bool:
    if node.external:
        return {"$ref": "metaschema"}  # opaque: compared by identity of the reference only
    if node.parts:
        flats = [p.flat for p in node.parts]
    else:
        own = _own(node)
        flats = [own]
        if node.ref is not None and node.graph.dialect == DRAFT_07:
            flats = [node.ref.flat]  # draft-07: keywords next to $ref are ignored
        else:
            if node.ref is not None:
                flats.append(node.ref.flat)
            if node.dynamic_refs:
                flats.append(node.dynamic_refs[0].flat)
            conjuncts = node.children.get("allOf")
            if isinstance(conjuncts, dict):
                flats.extend(conjuncts[i].flat for i in sorted(conjuncts))
    residual = [f for f in flats if isinstance(f, Mapping) and "allOf" in f]
    for flat in residual:  # a flat from from_flat may carry conjuncts still to merge
        flats.extend(n.flat for n in flat["allOf"])
    return merge_flats(node.graph, flats, node.pointer)


def merge_flats(graph: ResolvedSection, flats: list[Any], pointer: tuple[str | int, ...]) -> Mapping[str, Any] | bool:
    """The conjunction of flat schemas; False when they contradict each other."""
    if any(f is False for f in flats):
        return False
    # Unchanged flats are passed on as they are: a node that only refers to another shares its flat.
    maps: list[Mapping[str, Any]] = [
        ({k: v for k, v in f.items() if k != "allOf"} if "allOf" in f else f) for f in flats if isinstance(f, Mapping)
    ]
    if not maps:
        return True
    if len(maps) == 1:
        return maps[0]
    maps = [m for m in maps if m] or maps[:1]  # {} constrains nothing
    if len(maps) == 1:
        return maps[0]
    merged: dict[str, Any] = {}
    for flat in maps:
        for key, value in flat.items():
            if key not in merged:
                merged[key] = value
                continue
            merged[key] = _merge_keyword(graph, key, merged[key], value)
    _merge_object_keywords(graph, maps, merged)
    return _contradiction(merged)


_UNION_LEFTOVER = "allOf"


def _merge_keyword(graph: ResolvedSection, key: str, first: Any, second: Any) -> Any:
    if key == "type":
        return _intersect_types(first, second)
    if key == "enum":
        allowed = {_canonical(v) for v in second} if isinstance(second, list) else set()
        return [v for v in first if _canonical(v) in allowed] if isinstance(first, list) else second
    if key in _MIN_KEYWORDS and _number(first) and _number(second):
        return max(first, second)
    if key in _MAX_KEYWORDS and _number(first) and _number(second):
        return min(first, second)
    if key == "required" and isinstance(first, list) and isinstance(second, list):
        return list(dict.fromkeys([*first, *second]))
    if key == "uniqueItems":
        return first is True or second is True
    if key == "multipleOf" and _number(first) and _number(second):
        if isinstance(first, int) and isinstance(second, int):
            return math.lcm(first, second)
        return max(first, second) if _divides(min(first, second), max(first, second)) else first
    if key in ("pattern", "format") and first != second:
        values = [
            *(first if isinstance(first, tuple) else (first,)),
            *(second if isinstance(second, tuple) else (second,)),
        ]
        return tuple(sorted(set(map(str, values))))
    if key == "not" and isinstance(first, list) and isinstance(second, list):
        return [*first, *second]
    if isinstance(first, Node) and isinstance(second, Node):
        return graph.merge([first, second])
    if key == "prefixItems" and isinstance(first, list) and isinstance(second, list):
        return [graph.merge([a, b]) for a, b in zip(first, second, strict=False)] + (
            first[len(second) :] if len(first) > len(second) else second[len(first) :]
        )
    if key in ("dependentSchemas",) and isinstance(first, dict) and isinstance(second, dict):
        return {
            k: graph.merge([v for v in (first.get(k), second.get(k)) if v is not None]) for k in {**first, **second}
        }
    if key == "dependentRequired" and isinstance(first, dict) and isinstance(second, dict):
        return {k: list(dict.fromkeys([*first.get(k, []), *second.get(k, [])])) for k in {**first, **second}}
    if key in ("anyOf", "oneOf") and first is not second:
        # Two unions: keep the first here, carry the other as a conjunct (see _branches).
        return first
    return first  # annotations and keywords not merged: the first one wins


def _merge_object_keywords(graph: ResolvedSection, maps: list[Mapping[str, Any]], merged: dict[str, Any]) -> None:
    """Properties of a conjunction: a name one conjunct declares is still checked by the others'
    patternProperties / additionalProperties (the allOf + additionalProperties: false trap)."""
    names: dict[str, None] = {}
    for flat in maps:
        props = flat.get("properties")
        if isinstance(props, Mapping):
            names.update(dict.fromkeys(props))
    if names:
        merged["properties"] = {
            name: graph.merge([n for n in (undeclared_or_declared(graph, f, name) for f in maps) if n is not None])
            for name in names
        }
    unions = [f[k] for f in maps for k in ("anyOf", "oneOf") if isinstance(f.get(k), list)]
    if len(unions) > 1:
        keyword = "anyOf" if "anyOf" in merged else "oneOf"
        leftovers = []
        for flat in maps[1:]:
            for other in ("anyOf", "oneOf"):
                if isinstance(flat.get(other), list) and flat[other] is not merged.get(keyword):
                    leftovers.append(graph.from_flat({other: flat[other]}, ()))
        if leftovers:
            merged[_UNION_LEFTOVER] = leftovers


def undeclared_or_declared(graph: ResolvedSection, flat: Mapping[str, Any], name: str) -> Node | None:
    """The node `flat` checks property `name` with, or None when it does not constrain it."""
    props = flat.get("properties")
    if isinstance(props, Mapping) and name in props:
        return props[name]  # type: ignore[no-any-return]
    patterns = flat.get("patternProperties")
    matched = []
    if isinstance(patterns, Mapping):
        matched = [node for pattern, node in patterns.items() if search(pattern, name)]
    if matched:
        return graph.merge(matched)
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        extra = flat.get(keyword)
        if isinstance(extra, Node):
            return extra
    return None


def _intersect_types(first: Any, second: Any) -> list[str]:
    a = {first} if isinstance(first, str) else set(first) if isinstance(first, list | tuple) else set()
    b = {second} if isinstance(second, str) else set(second) if isinstance(second, list | tuple) else set()
    both = a & b
    if ("integer" in a and "number" in b) or ("integer" in b and "number" in a):
        both.add("integer")
    return sorted(both)


def _contradiction(merged: dict[str, Any]) -> Mapping[str, Any] | bool:
    types = merged.get("type")
    if isinstance(types, list) and not types:
        return False
    enum = merged.get("enum")
    if isinstance(enum, list):
        if isinstance(types, list | str):
            allowed = {types} if isinstance(types, str) else set(types)
            enum = [v for v in enum if _value_fits(v, allowed)]
            merged["enum"] = enum
        if not enum:
            return False
    kinds = {types} if isinstance(types, str) else set(types) if isinstance(types, list) else None
    if kinds and kinds <= {"number", "integer"} and _empty_range(merged):
        return False
    for low, high, kind in (
        ("minLength", "maxLength", "string"),
        ("minItems", "maxItems", "array"),
        ("minProperties", "maxProperties", "object"),
    ):
        if kinds == {kind} and _number(merged.get(low)) and _number(merged.get(high)) and merged[low] > merged[high]:
            return False
    return merged


def _empty_range(merged: Mapping[str, Any]) -> bool:
    lows = [(merged[k], k == "exclusiveMinimum") for k in ("minimum", "exclusiveMinimum") if _number(merged.get(k))]
    highs = [(merged[k], k == "exclusiveMaximum") for k in ("maximum", "exclusiveMaximum") if _number(merged.get(k))]
    for low, low_open in lows:
        for high, high_open in highs:
            if low > high or (low == high and (low_open or high_open)):
                return True
    return False


def _value_fits(value: Any, types: set[str]) -> bool:
    kind = text.json_type(value)
    if kind == "number" and isinstance(value, float) and value.is_integer():
        kind = "integer"
    return kind in types or (kind == "integer" and "number" in types)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _divides(step: float, other: float) -> bool:
    ratio = other / step
    return abs(ratio - round(ratio)) < 1e-9


def _canonical(value: Any) -> str:
    return json.dumps(_normal(value), sort_keys=True, default=str)


def _normal(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _normal(v) for k, v in value.items()}
    return value
