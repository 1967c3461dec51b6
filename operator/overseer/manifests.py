"""Reading Kubernetes manifests: files, folders and stdin, multi-document YAML (or JSON).

YAML is read the way kubectl reads it (sigs.k8s.io/yaml): timestamps stay strings and mapping
keys become strings. Duplicate keys are an error rather than a silent "last one wins": in a
config file, a second `conf:` overriding the first is exactly the kind of mistake to catch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from overseer.api.errors import parse_manifest
from overseer.api.v1alpha1 import ModelSchema, SchemaVersion

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# Far above any real manifest stream (etcd caps one object at 1.5 MiB; big charts render a few MiB),
# low enough that a stray dataset or binary is refused before it is parsed.
MAX_INPUT_BYTES = 32 * 1024 * 1024
STDIN = "-"
# Far more values than any manifest holds; guards against alias bombs (the API server has its own limit).
MAX_EXPANDED_NODES = 1_000_000


class ReadError(Exception):
    """An input that cannot be read at all (missing, unreadable, binary, too large): exit 2."""


@dataclass(frozen=True)
class Document:
    source: str
    """The path as given on the command line, or "<stdin>"."""
    index: int
    """1-based position of the document in its source."""
    line: int
    """1-based line where the document starts."""
    body: Any


@dataclass(frozen=True)
class SyntaxProblem:
    """A YAML syntax error: the rest of that source cannot be read (exit 1, like any invalid input)."""

    source: str
    index: int
    line: int
    message: str


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _ManifestLoader(_BaseLoader):  # type: ignore[valid-type,misc]
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
_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}


def collect_sources(paths: Sequence[str]) -> list[str]:
    """Expand folders (recursively, manifest suffixes only, sorted); keep files and "-" as given."""
    sources: list[str] = []
    for raw in paths:
        if raw == STDIN:
            sources.append(STDIN)
            continue
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                os.path.normpath(p)
                for p in path.rglob("*")
                if p.suffix.lower() in MANIFEST_SUFFIXES and p.is_file() and not _hidden(p.relative_to(path))
            )
            if not found:
                raise ReadError(f"{raw}: no {', '.join(MANIFEST_SUFFIXES)} files in this folder")
            sources.extend(found)
        elif path.exists():
            sources.append(os.path.normpath(raw))
        else:
            raise ReadError(f"{raw}: no such file or folder")
    return list(dict.fromkeys(sources))


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def read_source(source: str, stdin: IO[bytes] | None = None) -> str:
    """The text of one source; ReadError with a one-line reason when it is not a text manifest."""
    name = "<stdin>" if source == STDIN else source
    try:
        if source == STDIN:
            stream = stdin if stdin is not None else sys.stdin.buffer
            data = stream.read(MAX_INPUT_BYTES + 1)
        else:
            with open(source, "rb") as handle:
                data = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as error:
        raise ReadError(f"{name}: cannot read: {error.strerror or error}") from error
    if len(data) > MAX_INPUT_BYTES:
        raise ReadError(f"{name}: larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB; not a manifest file")
    if b"\x00" in data:
        raise ReadError(f"{name}: binary content (NUL bytes); expected YAML or JSON text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ReadError(f"{name}: not UTF-8 text (invalid byte at offset {error.start})") from error


def parse_documents(text: str, source: str) -> tuple[list[Document], list[SyntaxProblem]]:
    """All documents of a YAML stream; a syntax error ends the stream with one SyntaxProblem."""
    name = "<stdin>" if source == STDIN else source
    documents: list[Document] = []
    loader = _ManifestLoader(text)
    index = 0
    try:
        while loader.check_node():
            index += 1
            node = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else 1
            if node is not None and _expanded_size(node) > MAX_EXPANDED_NODES:
                raise ConstructorError(
                    None, None, f"aliases expand to more than {MAX_EXPANDED_NODES:,} values", node.start_mark
                )
            body = loader.construct_document(node) if node is not None else None
            documents.append(Document(name, index, line, body))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        return documents, [SyntaxProblem(name, index or 1, line, _yaml_error_text(error))]
    except RecursionError:
        return documents, [SyntaxProblem(name, index or 1, 1, "YAML nested too deeply")]
    finally:
        loader.dispose()
    return documents, []


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


def expand_lists(documents: Sequence[Document]) -> Iterator[Document]:
    """`kind: List` (what `kubectl get -o yaml` prints) stands for its items."""
    for document in documents:
        body = document.body
        if (
            isinstance(body, dict)
            and isinstance(body.get("kind"), str)
            and body["kind"].endswith("List")
            and isinstance(body.get("items"), list)
            and body.get("apiVersion") == "v1"
        ):
            for item in body["items"]:
                yield Document(document.source, document.index, document.line, item)
        else:
            yield document


# --- one ModelSchema from a file: `schema diff OLD NEW` and the SDK's `FILE#N` ----------------------


class SchemaFileError(ValueError):
    """A ModelSchema reference that cannot be used; the message says why in one line."""


def split_version(reference: str) -> tuple[str, int | None]:
    """`FILE#N` -> (FILE, N); `FILE` -> (FILE, None)."""
    if "#" not in reference:
        return reference, None
    path, _, number = reference.rpartition("#")
    if not number.isdigit():
        raise SchemaFileError(f"{reference}: expected FILE#N with N a version number")
    return path, int(number)


def read_model_schema(path: str) -> ModelSchema:
    """The one ModelSchema in a file (multi-document YAML and `kind: List` are read)."""
    if path == STDIN:
        raise SchemaFileError("-: expected a file holding a ModelSchema, not stdin")
    try:
        text = read_source(path)
    except ReadError as error:
        raise SchemaFileError(str(error)) from error
    documents, syntax = parse_documents(text, path)
    if syntax:
        raise SchemaFileError(f"{path}: {syntax[0].message}")
    bodies = [
        d.body for d in expand_lists(documents) if isinstance(d.body, Mapping) and d.body.get("kind") == "ModelSchema"
    ]
    if len(bodies) != 1:
        found = "no ModelSchema" if not bodies else f"{len(bodies)} ModelSchemas"
        raise SchemaFileError(f"{path}: expected exactly one ModelSchema, found {found}")
    return parse_model_schema(bodies[0], path)


def parse_model_schema(body: Mapping[str, Any], where: str) -> ModelSchema:
    schema, errors = parse_manifest(ModelSchema, body)
    if schema is None:
        details = "; ".join(f"{field}: {message}" for field, message in errors)
        raise SchemaFileError(f"{where}: invalid ModelSchema: {details}")
    return schema


def pick_version(schema: ModelSchema, number: int | None, where: str) -> SchemaVersion:
    """Version `number` of the schema, the highest when None."""
    if number is None:
        return schema.spec.latest
    version = schema.spec.version(number)
    if version is None:
        numbers = ", ".join(str(v.version) for v in schema.spec.versions)
        raise SchemaFileError(
            f"{where}: ModelSchema {schema.metadata.name!r} has no version {number} (versions: {numbers})"
        )
    return version
