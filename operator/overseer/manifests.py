"""Reading Kubernetes manifests: files, folders and stdin, multi-document YAML (or JSON).

Text is parsed by `overseer.safe_yaml`, the one reader the serving pod uses too: YAML read the way
kubectl reads it, duplicate keys refused with their lines, alias bombs and oversized input refused.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from overseer.api.errors import parse_manifest
from overseer.api.v1alpha1 import ModelSchema, SchemaVersion
from overseer.safe_yaml import TextError, decode_text, describe_size, parse_stream

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# Far above any real manifest stream (etcd caps one object at 1.5 MiB; big charts render a few MiB),
# low enough that a stray dataset or binary is refused before it is parsed.
MAX_INPUT_BYTES = 32 * 1024 * 1024
STDIN = "-"


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


def read_source(source: str, stdin: IO[bytes] | None = None, *, max_bytes: int | None = None) -> str:
    """The text of one source; ReadError with a one-line reason when it is not a text manifest.

    `max_bytes` defaults to MAX_INPUT_BYTES; the serving pod passes its model document limit.
    """
    name = "<stdin>" if source == STDIN else source
    limit = MAX_INPUT_BYTES if max_bytes is None else max_bytes
    try:
        if source == STDIN:
            stream = stdin if stdin is not None else sys.stdin.buffer
            data = stream.read(limit + 1)
        else:
            with open(source, "rb") as handle:
                data = handle.read(limit + 1)
    except OSError as error:
        raise ReadError(f"{name}: cannot read: {error.strerror or error}") from error
    if len(data) > limit:
        raise ReadError(f"{name}: larger than {describe_size(limit)}; not a manifest file")
    try:
        return decode_text(data, name, max_bytes=limit)
    except TextError as error:
        raise ReadError(str(error)) from error


def parse_documents(text: str, source: str) -> tuple[list[Document], list[SyntaxProblem]]:
    """All documents of a YAML stream; a syntax error ends the stream with one SyntaxProblem."""
    name = "<stdin>" if source == STDIN else source
    parsed, error = parse_stream(text)
    documents = [Document(name, index, d.line, d.body) for index, d in enumerate(parsed, start=1)]
    if error is None:
        return documents, []
    return documents, [SyntaxProblem(name, len(parsed) + 1, error.line, error.message)]


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
