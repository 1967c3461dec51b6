"""`--update FILE`: rewrite the model section of a ModelDeployment in an existing manifest, in place.

What a CI bot does when a new model is trained, so the diff a reviewer sees is the model and
nothing else. Only the document holding the ModelDeployment is re-emitted (ruamel.yaml's round
trip keeps its comments, key order, quoting and flow style); every other document of the file is
kept byte for byte. Inside `spec.model`, keys that stay keep their comments and quoting; lists
that do not change are left alone. The result is re-read the way kubectl reads it and compared
with what was meant, so a layout ruamel.yaml cannot reproduce is refused instead of written wrong.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from overseer.api.v1alpha1 import API_VERSION
from overseer.manifests import ReadError, parse_documents, read_source

# A document marker: `---` or `...` at the start of a line, then a space, a tab or the line end.
_MARKER = re.compile(r"^(?:---|\.\.\.)(?=[ \t\r\n]|$)")
_KEY_ONLY = re.compile(r"^( *)[^\s#-][^#]*:\s*(#.*)?$")
_SEQUENCE_ITEM = re.compile(r"^( *)- +\S")
DIFF_LIMIT = 1000


class UpdateError(Exception):
    """The file cannot be updated; one line saying why (exit 2). The file is left untouched."""


@dataclass(frozen=True)
class Target:
    """Which object to update: the ModelDeployment `name`, in `namespace` when given."""

    name: str
    namespace: str | None = None

    def matches(self, body: Any) -> bool:
        if not isinstance(body, Mapping) or body.get("kind") != "ModelDeployment":
            return False
        if body.get("apiVersion") != API_VERSION:
            return False
        metadata = body.get("metadata")
        if not isinstance(metadata, Mapping) or metadata.get("name") != self.name:
            return False
        # An object without a namespace goes wherever `kubectl -n` puts it: it matches any.
        return self.namespace is None or metadata.get("namespace") in (None, self.namespace)


@dataclass(frozen=True)
class Updated:
    text: str
    body: dict[str, Any]
    """The updated object, read back the way kubectl reads it."""
    previous_model: dict[str, Any]
    previous_ref: dict[str, Any]


def read_manifest(path: str) -> str:
    try:
        return read_source(path)
    except ReadError as error:
        raise UpdateError(str(error)) from error


def update_text(text: str, source: str, target: Target, model: Mapping[str, Any], ref: Mapping[str, Any]) -> Updated:
    """`text` with the target's `spec.model` (and `spec.schemaRef`, if it changes) replaced."""
    if "\r\n" in text:  # a Windows checkout: edit with \n, give the file its line ends back
        updated = update_text(text.replace("\r\n", "\n"), source, target, model, ref)
        return replace(updated, text=updated.text.replace("\n", "\r\n"))
    spans = _document_spans(text)
    found: list[tuple[int, int, Any]] = []
    others: list[str] = []
    for start, end in spans:
        documents, syntax = parse_documents(text[start:end], source)
        if syntax:
            raise UpdateError(f"{source}: {syntax[0].message}")
        for document in documents:
            if target.matches(document.body):
                found.append((start, end, document.body))
            elif _is_deployment(document.body):
                others.append(_identity(document.body))
    if not found:
        where = f" in namespace {target.namespace!r}" if target.namespace else ""
        listing = f" (found: {', '.join(others)})" if others else " (it holds no ModelDeployment)"
        raise UpdateError(f"{source}: no ModelDeployment {target.name!r}{where}{listing}")
    if len(found) > 1:
        listing = ", ".join(_identity(body) for _, _, body in found)
        count = len(found)
        raise UpdateError(f"{source}: {count} ModelDeployments match {target.name!r} ({listing}); pass -n NAMESPACE")
    start, end, body = found[0]
    spec = body.get("spec")
    if not isinstance(spec, Mapping):
        raise UpdateError(f"{source}: {_identity(body)}: spec is not a mapping; fix the manifest first")
    previous_model = dict(spec["model"]) if isinstance(spec.get("model"), Mapping) else {}
    previous_ref = dict(spec["schemaRef"]) if isinstance(spec.get("schemaRef"), Mapping) else {}

    expected = _with_model(body, model, ref)
    for edited in _edited_documents(text[start:end], model, ref, source):
        new_documents, syntax = parse_documents(edited, source)
        if not syntax and [d.body for d in new_documents] == [expected]:
            return Updated(text[:start] + edited + text[end:], expected, previous_model, previous_ref)
    # ruamel.yaml read the document differently from kubectl's rules: never write a guess.
    raise UpdateError(f"{source}: cannot rewrite {_identity(body)} in place safely; edit spec.model by hand")


def write_in_place(path: str, text: str) -> None:
    """Replace the file's content atomically, keeping its permissions (a symlink's target is written)."""
    real = Path(path).resolve()
    mode = real.stat().st_mode & 0o7777
    descriptor, temporary = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, real)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- documents ---------------------------------------------------------------------------------------


def _document_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each document's content, marker lines excluded: splitting at markers is
    exact, since YAML forbids `---` and `...` at the start of a line inside a document."""
    spans: list[tuple[int, int]] = []
    start = position = 0
    for line in text.splitlines(keepends=True):
        if _MARKER.match(line):
            spans.append((start, position))
            start = position + len(line)
        position += len(line)
    spans.append((start, position))
    return [(s, e) for s, e in spans if s < e]


def _is_deployment(body: Any) -> bool:
    return isinstance(body, Mapping) and body.get("kind") == "ModelDeployment"


def _identity(body: Any) -> str:
    metadata = body.get("metadata") if isinstance(body, Mapping) else None
    metadata = metadata if isinstance(metadata, Mapping) else {}
    return f"{metadata.get('namespace') or '-'}/{metadata.get('name')}"


def _with_model(body: Mapping[str, Any], model: Mapping[str, Any], ref: Mapping[str, Any]) -> dict[str, Any]:
    updated = dict(body)
    spec = dict(body["spec"])
    spec["model"] = dict(model)
    spec["schemaRef"] = dict(ref)
    updated["spec"] = spec
    return updated


def _edited_documents(text: str, model: Mapping[str, Any], ref: Mapping[str, Any], source: str) -> Iterator[str]:
    """The document with the new model: first as the original lines with only the changed ones
    replaced, then as ruamel.yaml's whole round trip (if the first does not read back right)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    # Keep the blank lines around the document as they are; ruamel.yaml would normalise them.
    core = text.strip("\n")
    leading = text[: len(text) - len(text.lstrip("\n"))]
    trailing = text[len(leading) + len(core) :]
    yaml = YAML()  # round trip
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long digest or URI onto a second line
    mapping, sequence, offset = _guess_indent(core)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)

    def dump(data: Any) -> str:
        out = io.StringIO()
        yaml.dump(data, out)
        return out.getvalue().strip("\n")

    try:
        unchanged = dump(yaml.load(core))
        data = yaml.load(core)
    except YAMLError as error:
        raise UpdateError(f"{source}: {str(error).splitlines()[0]}") from error
    spec = data["spec"]
    for key, value in (("schemaRef", ref), ("model", model)):
        if isinstance(spec.get(key), Mapping):
            _sync_mapping(spec[key], value)
        else:
            spec[key] = _fresh(dict(value))
    changed = dump(data)
    spliced = _splice(core, unchanged, changed)
    if spliced is not None:
        yield leading + spliced + trailing
    yield leading + changed + trailing


def _splice(original: str, unchanged: str, changed: str) -> str | None:
    """`original` with the lines that differ between ruamel.yaml's dumps `unchanged` and `changed`
    replaced: the lines ruamel.yaml would merely reformat (spacing, folding, indentation it cannot
    reproduce) stay as the user wrote them. None when the change cannot be placed in `original`."""
    o, a, b = (t.splitlines(keepends=True) for t in (original, unchanged, changed))
    if o and not o[-1].endswith("\n"):
        o[-1] += "\n"
    a = [line if line.endswith("\n") else line + "\n" for line in a]
    b = [line if line.endswith("\n") else line + "\n" for line in b]
    # Line of `unchanged` -> the same line of `original`: equal lines, and lines reformatted one for
    # one (`replicas:   2` dumped as `replicas: 2`).
    align: dict[int, int] = {}
    for tag, i1, i2, j1, j2 in _opcodes(a, o):
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            align.update((i1 + k, j1 + k) for k in range(i2 - i1))
    edits = _opcodes(a, b)

    def to_changed(boundary: int) -> int:
        for tag, i1, i2, j1, j2 in edits:
            if tag == "equal" and i1 <= boundary <= i2:
                return j1 + boundary - i1
            if boundary == i1:
                return j1
            if boundary == i2:
                return j2
        raise AssertionError(boundary)

    # Widen each changed range of `unchanged` to lines present in `original` on both sides, then merge.
    ranges: list[list[int]] = []
    for tag, i1, i2, _, _ in edits:
        if tag == "equal":
            continue
        start, end = i1, i2
        while start > 0 and start - 1 not in align:
            start -= 1
        while end < len(a) and end not in align:
            end += 1
        if ranges and start <= ranges[-1][1]:
            ranges[-1][1] = max(ranges[-1][1], end)
        else:
            ranges.append([start, end])
    out: list[str] = []
    position = 0
    for start, end in ranges:
        o_start = align[start - 1] + 1 if start > 0 else 0
        o_end = align[end] if end < len(a) else len(o)
        if o_start < position or o_end < o_start:
            return None
        out.extend(o[position:o_start])
        out.extend(b[to_changed(start) : to_changed(end)])
        position = o_end
    out.extend(o[position:])
    return "".join(out).rstrip("\n")


def _guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) as ruamel.yaml's indent() takes them, read from
    the first nested mapping and the first block sequence; kubectl's style (2, 2, 0) otherwise."""
    mapping: int | None = None
    sequence: tuple[int, int] | None = None
    parent: int | None = None  # indentation of the previous "key:" line
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        item = _SEQUENCE_ITEM.match(line)
        if parent is not None and indent >= parent:
            if item and sequence is None:
                content = item.end() - 1  # column of the item's content
                sequence = (content - parent, indent - parent)
            elif not item and indent > parent and mapping is None:
                mapping = indent - parent
        parent = indent if _KEY_ONLY.match(line) else None
        if mapping is not None and sequence is not None:
            break
    map_indent = mapping or 2
    seq_indent, offset = sequence or (map_indent, 0)
    return map_indent, max(seq_indent, offset + 2), offset


def _opcodes(x: list[str], y: list[str]) -> list[tuple[str, int, int, int, int]]:
    """difflib's opcodes from `x` to `y` in linear time but for a bounded middle: the common head
    and tail are cut off first, and a middle longer than DIFF_LIMIT lines is one `replace` (difflib
    is quadratic on repeated lines, which long lists in a manifest are)."""
    head = 0
    while head < min(len(x), len(y)) and x[head] == y[head]:
        head += 1
    tail = 0
    while tail < min(len(x), len(y)) - head and x[len(x) - 1 - tail] == y[len(y) - 1 - tail]:
        tail += 1
    x_end, y_end = len(x) - tail, len(y) - tail
    ops: list[tuple[str, int, int, int, int]] = [("equal", 0, head, 0, head)] if head else []
    if head < x_end or head < y_end:
        if max(x_end, y_end) - head <= DIFF_LIMIT:
            matcher = difflib.SequenceMatcher(None, x[head:x_end], y[head:y_end], autojunk=False)
            ops.extend(
                (tag, i1 + head, i2 + head, j1 + head, j2 + head) for tag, i1, i2, j1, j2 in matcher.get_opcodes()
            )
        else:
            ops.append(("replace", head, x_end, head, y_end))
    if tail:
        ops.append(("equal", x_end, len(x), y_end, len(y)))
    return ops


def _sync_mapping(target: Any, source: Mapping[str, Any]) -> None:
    """Make `target` (a ruamel mapping) equal `source`, keeping surviving keys in place with their
    comments; new keys go at the end."""
    for key in [k for k in target if k not in source]:
        del target[key]
    for key, value in source.items():
        if key in target:
            target[key] = _merge(target[key], value)
        else:
            target[_fresh(key)] = _fresh(value)


def _merge(old: Any, new: Any) -> Any:
    from ruamel.yaml.comments import CommentedSeq
    from ruamel.yaml.scalarstring import ScalarString

    if isinstance(old, Mapping) and isinstance(new, Mapping):
        _sync_mapping(old, new)
        return old
    if isinstance(old, Sequence) and not isinstance(old, str) and isinstance(new, list):
        if _plain(old) == new:
            return old
        fresh = CommentedSeq(_fresh(item) for item in new)
        if isinstance(old, CommentedSeq) and old.fa.flow_style():
            fresh.fa.set_flow_style()
        return fresh
    if type(_plain(old)) is type(new) and _plain(old) == new:
        return old  # same value: keep its quoting
    if isinstance(old, ScalarString) and isinstance(new, str):
        return type(old)(new)  # "20240103" stays double-quoted when it becomes "20240110"
    return _fresh(new)


def _fresh(value: Any) -> Any:
    """A new value for ruamel.yaml to emit, with every string that kubectl would read as something
    else quoted: ruamel.yaml speaks YAML 1.2 and writes `yes` or `on` plain, which kubectl's YAML 1.1
    rules turn into booleans."""
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    if isinstance(value, str):
        return DoubleQuotedScalarString(value) if _needs_quotes(value) else value
    if isinstance(value, Mapping):
        return CommentedMap((_fresh(k), _fresh(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_fresh(item) for item in value]
    return value


def _needs_quotes(text: str) -> bool:
    import yaml

    resolver: Any = yaml.resolver.Resolver()  # PyYAML's YAML 1.1 rules, as kubectl reads them
    tag = resolver.resolve(yaml.ScalarNode, text, (True, False))
    return bool(tag != "tag:yaml.org,2002:str")


def _plain(value: Any) -> Any:
    """A ruamel value as plain data, for comparisons."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value
