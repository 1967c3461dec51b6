"""`format` checks of the schema core: jsonschema's `format-nongpl` checkers, made safe for
untrusted values.

- A string longer than limits.MAX_FORMAT_LENGTH is not a valid value of any format (no real date,
  host name or URI is that long, and it bounds what any checker reads).
- `regex` is a pattern RE2 can run (overseer.schema.regex), the engine `pattern` uses.
- `iri` and `iri-reference` are checked in linear time. jsonschema's checker for them
  (rfc3987-syntax, a general parser) takes 20 ms for a 64-character value and 0.5 to 2 s for a
  2,000-character one: a handful of such values in a config would hold an admission webhook past its
  timeout. Here an IRI is mapped to a URI as RFC 3987 section 3.1 says (its non-ASCII characters
  percent-encoded as UTF-8, which is where `ucschar`s may appear, and `iprivate` ones only in the
  query) and the URI is checked by the same rfc3986-validator that checks `uri`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker
from rfc3986_validator import validate_rfc3986

from overseer.schema import regex
from overseer.schema.limits import MAX_FORMAT_LENGTH
from overseer.schema.resolved import DRAFT_07

# RFC 3987: the non-ASCII characters an IRI may hold (ucschar), and those only its query may hold
# (iprivate). A single character class each, so a search is linear in the value.
_UCSCHAR = (
    (0xA0, 0xD7FF),
    (0xF900, 0xFDCF),
    (0xFDF0, 0xFFEF),
    *((plane << 16, (plane << 16) | 0xFFFD) for plane in range(1, 14)),
    (0xE1000, 0xEFFFD),
)
_IPRIVATE = ((0xE000, 0xF8FF), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD))


def _char_class(*ranges: tuple[int, int]) -> str:
    return "".join(f"{re.escape(chr(low))}-{re.escape(chr(high))}" for low, high in ranges)


_NOT_IRI = re.compile(f"[^\\x00-\\x7f{_char_class(*_UCSCHAR)}]")
_NOT_IRI_QUERY = re.compile(f"[^\\x00-\\x7f{_char_class(*_UCSCHAR, *_IPRIVATE)}]")
_ASCII = "".join(map(chr, range(0x80)))


def iri_as_uri(value: str) -> str | None:
    """The URI an IRI maps to (its non-ASCII characters percent-encoded as UTF-8), or None when it
    holds a character no IRI may hold where it is."""
    if value.isascii():
        return value
    rest, _, fragment = value.partition("#")
    path, _, query = rest.partition("?")
    if _NOT_IRI.search(path) or _NOT_IRI_QUERY.search(query) or _NOT_IRI.search(fragment):
        return None
    try:
        return quote(value, safe=_ASCII)
    except UnicodeEncodeError:  # a lone surrogate: not a character at all
        return None


def is_iri(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    uri = iri_as_uri(instance)
    return uri is not None and bool(validate_rfc3986(uri, rule="URI"))


def is_iri_reference(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    uri = iri_as_uri(instance)
    return uri is not None and bool(validate_rfc3986(uri, rule="URI_reference"))


def _format_checker(stock: FormatChecker) -> FormatChecker:
    checker = FormatChecker(formats=())
    for name, (check, raises) in stock.checkers.items():
        checker.checkers[name] = (_bounded(check), raises)
    checker.checkers["regex"] = (_bounded(regex.is_regex), ())
    checker.checkers["iri"] = (_bounded(is_iri), ())
    checker.checkers["iri-reference"] = (_bounded(is_iri_reference), ())
    for name in ("uri", "uri-reference", "iri", "iri-reference"):
        check, raises = checker.checkers[name]
        checker.checkers[name] = (_no_line_feed(check), raises)
    return checker


def _no_line_feed(check: Callable[[object], bool]) -> Callable[[object], bool]:
    """rfc3986-validator matches with Python's `$`, which also matches before a final line feed:
    no URI holds one."""

    def checked(instance: object) -> bool:
        return not (isinstance(instance, str) and "\n" in instance) and check(instance)

    return checked


def _bounded(check: Callable[[object], bool]) -> Callable[[object], bool]:
    def bounded(instance: object) -> bool:
        if isinstance(instance, str) and len(instance) > MAX_FORMAT_LENGTH:
            return False
        return check(instance)

    return bounded


FORMATS_2020_12 = _format_checker(Draft202012Validator.FORMAT_CHECKER)
FORMATS_07 = _format_checker(Draft7Validator.FORMAT_CHECKER)
ASSERTED_FORMATS = tuple(sorted(FORMATS_2020_12.checkers))


def format_checker(dialect: str) -> FormatChecker:
    return FORMATS_07 if dialect == DRAFT_07 else FORMATS_2020_12


def format_cost(name: str, value: str) -> int:
    """Steps a format check of `value` costs (a step is a few microseconds): compiling a pattern
    for `regex` takes about half a microsecond a character, an IRI about a third once encoded, the
    other checkers read a value about once."""
    if name == "regex":
        return len(value) >> 2
    if name in ("iri", "iri-reference"):
        return len(value) >> 3
    return len(value) >> 5
