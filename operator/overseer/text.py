"""Human wording shared by every layer: similar-name matching for "did you mean" hints, one-line
renderings of values and schemas, field paths. The bottom of the light core: imports nothing of ours."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any


def json_type(value: Any) -> str:
    """The JSON type name of a Python value, as JSON Schema users know them (1.0 is a number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


_TOKEN_RE = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def _tokens(name: str) -> tuple[str, ...]:
    # "maxDet", "max_det" and "max-det" all become ("max", "det").
    return tuple(t.lower() for t in _TOKEN_RE.findall(name))


def _osa_within(a: str, b: str, limit: int) -> bool:
    """Is the edit distance of `a` and `b`, counting a swap of two neighbours as one edit (typos like
    'iuo' for 'iou'), at most `limit`? Only the band of cells within `limit` of the diagonal can stay
    within it, so the cost is len(a) * (2 * limit + 1), not len(a) * len(b)."""
    if abs(len(a) - len(b)) > limit:
        return False
    far = limit + 1
    before: list[int] = []
    above = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [far] * (len(b) + 1)
        row[0] = i if i <= limit else far
        for j in range(max(1, i - limit), min(len(b), i + limit) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            best = min(above[j] + 1, row[j - 1] + 1, above[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                best = min(best, before[j - 2] + 1)
            row[j] = min(best, far)
        before, above = above, row
    return above[len(b)] <= limit


_MAX_NAME = 64
"""Names longer than this are never taken for typos of each other (and comparing them costs more)."""


def similarity(a: str, b: str) -> float:
    """A score in [0, 1]; 0 means "not plausibly the same field". Tuned for config keys:

    abbreviations (conf/confidence, max_det/max_detections), case and separator changes
    (maxDet/max_det), small typos (iuo/iou) and added/removed words (resolution/resize_resolution).
    """
    if a == b:
        return 1.0
    if len(a) > _MAX_NAME or len(b) > _MAX_NAME:
        return 0.0
    ta, tb = _tokens(a), _tokens(b)
    na, nb = "".join(ta), "".join(tb)
    if not na or not nb:
        return 0.0
    if na == nb:
        return 0.95
    short, long_ = sorted((na, nb), key=len)
    if len(short) >= 3 and long_.startswith(short):
        return 0.9
    if len(short) >= 3 and _osa_within(na, nb, 1 if len(short) <= 4 else 2):
        return 0.85
    # Word-wise abbreviation: every word of one is a prefix of the matching word of the other.
    if len(ta) == len(tb) and all(x.startswith(y) or y.startswith(x) for x, y in zip(ta, tb, strict=True)):
        return 0.85
    sa, sb = set(ta), set(tb)
    if (sa < sb or sb < sa) and len(sa & sb) >= 1 and len("".join(sa & sb)) >= 4:
        return 0.75
    if 2 * len(short) < 0.8 * (len(short) + len(long_)):
        return 0.0  # ratio() cannot reach 0.8 with lengths this far apart
    matcher = difflib.SequenceMatcher(None, na, nb)
    if matcher.quick_ratio() < 0.8:
        return 0.0  # an upper bound of ratio(), much cheaper to compute
    ratio = matcher.ratio()
    # A plain likeness ranks below every rule above (it said 'parameter_100' for 'paramter_0').
    return 0.7 if ratio >= 0.8 else 0.0


def most_similar(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most plausibly meant by `name`, or None when nothing is close."""
    best: tuple[float, str] | None = None
    for candidate in sorted(candidates):
        score = similarity(name, candidate)
        if score > 0 and (best is None or score > best[0]):
            best = (score, candidate)
    return best[1] if best else None


# --- rendering -------------------------------------------------------------------------------

_MAX_SHOWN = 60


_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def one_line(text: str) -> str:
    """`text` with line breaks and other unprintable characters escaped (\\n, \\x85, \\u2028, ...).

    Output is one line per problem (`FILE: Kind/namespace/name: field.path: message`); this keeps
    a value, a name or a file name from the user from splitting a line or hiding in it.
    """
    return "".join(char if char.isprintable() else _ESCAPES.get(char) or _escape(char) for char in text)


def quote(text: str) -> str:
    """'text' in single quotes with the quote, backslashes and unprintable characters escaped."""
    return "'" + "".join(_ESCAPES.get(char) or (char if char.isprintable() else _escape(char)) for char in text) + "'"


def show(value: Any) -> str:
    """A short, JSON-flavoured rendering of a value for messages ('abc', 0.5, true, [1, 2]), always one line."""
    if isinstance(value, str):
        text = quote(value)
    else:
        try:
            text = one_line(json.dumps(value, ensure_ascii=False, default=str))
        except (TypeError, ValueError):  # pragma: no cover - exotic objects only
            text = one_line(repr(value))
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return text


def found(value: Any) -> str:
    """'string 'abc'', 'number 0.5', 'an object', ... : what was found, with its type."""
    kind = json_type(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return f"an array of {len(value)} item{'s' if len(value) != 1 else ''}"
    if value is None:
        return "null"
    return f"{kind} {show(value)}"


_DESCRIBE_DEPTH = 3


def describe(schema: Any, _depth: int = 0) -> str:
    """A short description of what a schema accepts: 'number between 0 and 1', 'one of 'a', 'b''.

    `schema` is a JSON Schema, or a resolved schema node (anything with a `flat` mapping). Nested
    alternatives and item schemas are described three levels deep: a recursive schema (an array of
    arrays of ...) would never end.
    """
    if _depth > _DESCRIBE_DEPTH:
        return "a value"
    schema = getattr(schema, "flat", schema)
    if schema is True or schema == {}:
        return "any value"
    if schema is False:
        return "no value at all"
    if not isinstance(schema, Mapping):
        return "a value"
    if "const" in schema:
        return f"exactly {show(schema['const'])}"
    if "enum" in schema and isinstance(schema["enum"], list):
        if len(schema["enum"]) == 1:
            return f"exactly {show(schema['enum'][0])}"
        return "one of " + ", ".join(show(v) for v in schema["enum"])
    types = schema.get("type")
    if isinstance(types, list):
        text = " or ".join(str(t) for t in types)
    elif isinstance(types, str):
        text = types
    elif "$ref" in schema:
        text = "a value matching " + str(schema["$ref"])
    elif any(k in schema for k in ("anyOf", "oneOf")):
        branches = schema.get("anyOf") or schema.get("oneOf") or []
        # Distinct descriptions only: alternatives that read the same are one for the user (also
        # inside nested unions: "object or null" and "null" make "object or null").
        described = [describe(b, _depth + 1) for b in branches] if isinstance(branches, list) else []
        text = " or ".join(dict.fromkeys(part for d in described for part in d.split(" or "))) or "a value"
    else:
        text = "a value"
    items = getattr(schema.get("items"), "flat", schema.get("items"))
    if isinstance(types, str) and types == "array" and isinstance(items, Mapping):
        text += " of " + describe(items, _depth + 1)
    numeric, other = _bounds(schema)
    return " ".join([text, *numeric]) + "".join(", " + part for part in other)


def _plural(count: Any, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _bounds(schema: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(numeric bounds, other constraints) in words."""
    numeric: list[str] = []
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if lo is not None and hi is not None:
        numeric.append(f"between {show(lo)} and {show(hi)}")
    elif lo is not None:
        numeric.append(f">= {show(lo)}")
    elif hi is not None:
        numeric.append(f"<= {show(hi)}")
    for key, sign in (("exclusiveMinimum", ">"), ("exclusiveMaximum", "<")):
        if schema.get(key) is not None and not isinstance(schema[key], bool):
            numeric.append(f"{sign} {show(schema[key])}")
    other: list[str] = []
    if "pattern" in schema:
        other.append(f"matching {show(schema['pattern'])}")
    for key, words, noun in (
        ("minLength", "at least", "character"),
        ("maxLength", "at most", "character"),
        ("minItems", "at least", "item"),
        ("maxItems", "at most", "item"),
    ):
        if key in schema:
            other.append(f"{words} {_plural(schema[key], noun)}")
    return numeric, other


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def field_path(section: str, parts: Iterable[Any]) -> str:
    """`customObjects.classes[0].name`; keys that are not identifiers are bracket-quoted."""
    out = section
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(str(part)):
            out += ("." if out else "") + str(part)
        else:
            out += f"[{json.dumps(str(part))}]"
    return out
