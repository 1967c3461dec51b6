"""The one reader of YAML and JSON text: manifests (`overseer validate`, `schema diff`, the SDK) and the
serving pod's model document (start-up file and PUT /admin/model body) all go through it.

What it guarantees, whoever wrote the text:
- scalars are read the way kubectl reads them (sigs.k8s.io/yaml): timestamps stay strings, `1e-3` is a
  number, mapping keys become strings;
- a duplicate key is an error naming the key and both lines, never a silent "last one wins" - in a
  config, a second `conf:` overriding the first is exactly the mistake to catch (JSON too);
- aliases may not expand past MAX_EXPANDED_NODES values ("billion laughs"), nesting may not blow the
  stack, and bytes are checked (size, NUL, UTF-8) before anything is parsed.
Text whose first character is `{` or `[` is read as JSON first (JSON's own number and escape rules),
and as YAML only if it is not valid JSON. It depends on nothing but PyYAML and the standard library.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

# Far more values than any manifest or model document holds; guards against alias bombs (the API
# server has its own limit).
MAX_EXPANDED_NODES = 1_000_000


class TextError(ValueError):
    """Bytes that are not text to parse at all (too large, binary, not UTF-8); one-line message."""


class YamlSyntaxError(ValueError):
    """Text that does not parse; `line` is 1-based, the message names it (and the key, for duplicates)."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class ParsedDocument:
    line: int
    """1-based line where the document starts."""
    body: Any


# --- bytes -> text ------------------------------------------------------------------------------------


def decode_text(data: bytes, name: str, *, max_bytes: int) -> str:
    """UTF-8 text (a BOM is dropped) of at most `max_bytes`; TextError naming `name` otherwise."""
    if len(data) > max_bytes:
        raise TextError(f"{name}: larger than {describe_size(max_bytes)}")
    if b"\x00" in data:
        raise TextError(f"{name}: binary content (NUL bytes); expected YAML or JSON text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise TextError(f"{name}: not UTF-8 text (invalid byte at offset {error.start})") from None


def describe_size(limit: int) -> str:
    mib = 1024 * 1024
    return f"{limit // mib} MiB" if limit % mib == 0 else f"{limit:,} bytes"


# --- the YAML loader -----------------------------------------------------------------------------------

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """Safe loader with kubectl's scalar rules and duplicate-key detection."""

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    key = _key_text(key)
                if key in seen:
                    raise ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first at line {seen[key].start_mark.line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node
        mapping = super().construct_mapping(node, deep=deep)
        return {k if isinstance(k, str) else _key_text(k): v for k, v in mapping.items()}


def _key_text(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return "null" if key is None else str(key)


# kubectl keeps timestamps as strings; PyYAML would turn `2024-01-03` into a date object.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
# YAML 1.1 (PyYAML) reads `1e-3`, `1E5` and `2.5e1` as strings; kubectl's YAML (go-yaml) and JSON read
# them as numbers. A `conf: 1e-3` that `kubectl apply` stores as a number must not be a string here.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


# --- text -> documents ---------------------------------------------------------------------------------


def parse_stream(text: str) -> tuple[list[ParsedDocument], YamlSyntaxError | None]:
    """All documents of a YAML stream (or of JSON text); a syntax error ends the stream and is returned
    beside the documents read before it."""
    if not _looks_like_json(text):
        return _yaml_documents(text)
    try:
        return _json_documents(text), None
    except _NotJson as not_json:
        # `{a: 1}` is YAML flow style: valid YAML is accepted. If it is not, the error that speaks to
        # what the author meant: JSON's for `{"model": ...` cut short, YAML's for `[cat, dog`.
        documents, error = _yaml_documents(text)
        if error is None:
            return documents, None
        return [], not_json.error if _strict_json_start(text) else error
    except YamlSyntaxError as error:
        return [], error


def load_one(text: str, *, json_only: bool = False) -> Any:
    """The one document of `text` (JSON or YAML); YamlSyntaxError when there is not exactly one.

    `json_only`: the sender said it is JSON (Content-Type), so it is not read as YAML.
    """
    if not text.strip():
        raise YamlSyntaxError("empty: no document")
    if json_only:
        try:
            documents = _json_documents(text)
        except _NotJson as not_json:
            raise not_json.error from None
    else:
        documents, error = parse_stream(text)
        if error is not None:
            raise error
    if len(documents) != 1:
        raise YamlSyntaxError(f"expected one document, found {len(documents)}", documents[-1].line)
    return documents[0].body


def _yaml_documents(text: str) -> tuple[list[ParsedDocument], YamlSyntaxError | None]:
    documents: list[ParsedDocument] = []
    try:
        loader = _Loader(text)
    except UnicodeEncodeError:  # str input (not decoded bytes) holding a lone surrogate code point
        return documents, YamlSyntaxError("invalid YAML: the text holds a lone surrogate, which is not a character")
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else 1
            if node is not None and _expanded_size(node) > MAX_EXPANDED_NODES:
                raise ConstructorError(
                    None, None, f"aliases expand to more than {MAX_EXPANDED_NODES:,} values", node.start_mark
                )
            body = loader.construct_document(node) if node is not None else None
            documents.append(ParsedDocument(line, body))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        return documents, YamlSyntaxError(_yaml_error_text(error), mark.line + 1 if mark is not None else 1)
    except RecursionError:
        return documents, YamlSyntaxError("YAML nested too deeply")
    finally:
        loader.dispose()
    return documents, None


def _expanded_size(root: Node) -> int:
    """How many values the document holds once aliases are expanded, without expanding them:
    a "billion laughs" document is a few hundred bytes that every later walk would multiply."""
    sizes: dict[int, int] = {}

    def size(node: Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a recursive alias counts once
        if isinstance(node, MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, SequenceNode):
            total = 1 + sum(size(item) for item in node.value)
        else:
            total = 1
        sizes[id(node)] = total
        return total

    return size(root)


def _yaml_error_text(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"invalid YAML: {where}{problem}"


# --- JSON ------------------------------------------------------------------------------------------------


class _NotJson(Exception):
    """Not valid JSON; carries the JSON error, for when the text is not YAML either."""

    def __init__(self, error: YamlSyntaxError) -> None:
        self.error = error


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _looks_like_json(text: str) -> bool:
    return text.lstrip()[:1] in ("{", "[")


def _strict_json_start(text: str) -> bool:
    """`{"`, `[1`, `[{`...: written as JSON, not as YAML flow style (`{a: 1}`, `[cat]`)."""
    after = text.lstrip()[1:].lstrip()[:1]
    return after == "" or after in '"{[]}-0123456789tfn'


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


_JSON = json.JSONDecoder(object_pairs_hook=_refuse_duplicates)
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _json_documents(text: str) -> list[ParsedDocument]:
    """Concatenated JSON values (what `kubectl get -o json` of several objects prints)."""
    documents: list[ParsedDocument] = []
    position = _skip_whitespace(text, 0)
    while position < len(text):
        try:
            body, end = _JSON.raw_decode(text, position)
        except json.JSONDecodeError as error:
            message = f"invalid JSON: line {error.lineno}, column {error.colno}: {error.msg}"
            raise _NotJson(YamlSyntaxError(message, error.lineno)) from None
        except _DuplicateKey as duplicate:
            raise _duplicate_error(text, duplicate.key) from None
        except RecursionError:
            raise YamlSyntaxError("JSON nested too deeply") from None
        documents.append(ParsedDocument(text.count("\n", 0, position) + 1, body))
        position = _skip_whitespace(text, end)
    return documents


def _skip_whitespace(text: str, position: int) -> int:
    match = _WHITESPACE.match(text, position)
    return match.end() if match else position


def _duplicate_error(text: str, key: str) -> YamlSyntaxError:
    """JSON's decoder knows no positions; the YAML reader finds the same duplicate with its lines."""
    _, error = _yaml_documents(text)
    if error is not None and "duplicate key" in error.message:
        return YamlSyntaxError(error.message.replace("invalid YAML:", "invalid JSON:", 1), error.line)
    return YamlSyntaxError(f"invalid JSON: duplicate key {key!r}")
