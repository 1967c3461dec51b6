"""Regular expressions of schemas (`pattern`, `patternProperties`, `format: regex`) in bounded time.

JSON Schema says patterns are ECMA-262. Python's `re` and ECMA engines backtrack: `^(a+)+$` against
32 `a` and a `!` runs for minutes. Patterns here are run by RE2 (google-re2), whose matching time is
linear in the text, after a translation of the ECMA-262 syntax RE2 spells differently. What RE2 cannot
do at all (lookaround, backreferences) makes the pattern a schema problem, never a slow match.
docs/schema.md lists the dialect; benchmarks/bench_schema_worst.py measures the engines side by side.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

from overseer.schema.limits import MAX_PATTERN_LENGTH


class PatternError(ValueError):
    """A pattern that RE2 cannot run (or that is too long); the message says why in user words."""


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern to stderr
_OPTIONS.max_mem = 8 << 20  # a compiled program's memory: refuses {1000}{1000}-style size bombs

# ECMA-262 \s: JavaScript WhiteSpace and LineTerminator (RE2's \s is ASCII only).
_ECMA_SPACE = r"\t\n\x{0b}\f\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\x{feff}"
_ECMA_DOT = r"[^\n\r\x{2028}\x{2029}]"
# Unicode property names ECMA-262 accepts in \p{...} that RE2 spells in short form.
_GENERAL_CATEGORIES = {
    "Letter": "L",
    "Cased_Letter": "L",  # RE2 has no LC; L is the closest superset
    "Uppercase_Letter": "Lu",
    "Lowercase_Letter": "Ll",
    "Titlecase_Letter": "Lt",
    "Modifier_Letter": "Lm",
    "Other_Letter": "Lo",
    "Mark": "M",
    "Combining_Mark": "M",
    "Nonspacing_Mark": "Mn",
    "Spacing_Mark": "Mc",
    "Enclosing_Mark": "Me",
    "Number": "N",
    "Decimal_Number": "Nd",
    "digit": "Nd",
    "Letter_Number": "Nl",
    "Other_Number": "No",
    "Punctuation": "P",
    "punct": "P",
    "Connector_Punctuation": "Pc",
    "Dash_Punctuation": "Pd",
    "Open_Punctuation": "Ps",
    "Close_Punctuation": "Pe",
    "Initial_Punctuation": "Pi",
    "Final_Punctuation": "Pf",
    "Other_Punctuation": "Po",
    "Symbol": "S",
    "Math_Symbol": "Sm",
    "Currency_Symbol": "Sc",
    "Modifier_Symbol": "Sk",
    "Other_Symbol": "So",
    "Separator": "Z",
    "Space_Separator": "Zs",
    "Line_Separator": "Zl",
    "Paragraph_Separator": "Zp",
    "Other": "C",
    "Control": "Cc",
    "cntrl": "Cc",
    "Format": "Cf",
    "Surrogate": "Cs",
    "Private_Use": "Co",
    "Unassigned": "Cn",
}
_PROPERTY_PREFIXES = ("General_Category=", "gc=", "Script=", "sc=", "Script_Extensions=", "scx=")


def translate(pattern: str) -> str:
    """The RE2 spelling of an ECMA-262 pattern. Raises PatternError for syntax RE2 lacks."""
    out: list[str] = []
    in_class = False
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            if i + 1 >= n:
                raise PatternError("ends with a lone backslash")
            escape, i = _escape(pattern, i + 1, in_class)
            out.append(escape)
            continue
        if in_class:
            if char == "]":
                in_class = False
            elif char == "[":
                out.append("\\[")  # a literal [ inside a class (RE2 would read [: as POSIX class)
                i += 1
                continue
            out.append(char)
            i += 1
            continue
        if char == "[":
            if pattern.startswith("[^]", i):  # ECMA: any character at all
                out.append(r"[\x{0}-\x{10ffff}]")
                i += 3
                continue
            if pattern.startswith("[]", i):  # ECMA: never matches
                out.append(r"[^\x{0}-\x{10ffff}]")
                i += 2
                continue
            in_class = True
            out.append(char)
            if pattern.startswith("[^", i):
                out.append("^")
                i += 1
            i += 1
            if i < n and pattern[i] == "]":  # RE2 takes a leading ] as a literal; ECMA closes the class
                raise PatternError("empty character class")
            continue
        if char == "(" and pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
            raise PatternError("lookahead and lookbehind ((?=, (?!, (?<=, (?<!) are not supported")
        if char == ".":
            out.append(_ECMA_DOT)
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """Translate the escape whose letter is at pattern[i]; return it and the index after it."""
    letter = pattern[i]
    if letter == "u":
        if pattern.startswith("{", i + 1):
            end = pattern.find("}", i + 2)
            digits = pattern[i + 2 : end] if end > 0 else ""
            if digits and all(c in "0123456789abcdefABCDEF" for c in digits):
                return f"\\x{{{digits}}}", end + 1
        digits = pattern[i + 1 : i + 5]
        if len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
            return f"\\x{{{digits}}}", i + 5
        raise PatternError(r"\u must be followed by 4 hex digits or {hex}")
    if letter == "c":
        control = pattern[i + 1 : i + 2]
        if control.isascii() and control.isalpha():
            return f"\\x{{{ord(control) % 32:02x}}}", i + 2
        raise PatternError(r"\c must be followed by a letter")
    if letter in "pP":
        if not pattern.startswith("{", i + 1):
            raise PatternError(rf"\{letter} must be followed by {{name}}")
        end = pattern.find("}", i + 2)
        if end < 0:
            raise PatternError(rf"\{letter}{{ is not closed")
        name = pattern[i + 2 : end]
        for prefix in _PROPERTY_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                break
        return f"\\{letter}{{{_GENERAL_CATEGORIES.get(name, name)}}}", end + 1
    if letter == "s":
        return (_ECMA_SPACE if in_class else f"[{_ECMA_SPACE}]"), i + 1
    if letter == "S":
        if in_class:
            raise PatternError(r"\S inside a character class is not supported")
        return f"[^{_ECMA_SPACE}]", i + 1
    if letter.isdigit() and letter != "0":
        raise PatternError(rf"backreferences (\{letter}) are not supported")
    if letter == "k" and pattern.startswith("<", i + 1):
        raise PatternError(r"named backreferences (\k<name>) are not supported")
    if letter == "0":
        return r"\x{0}", i + 1
    if letter in "dDwWbBfnrtv":
        return ("\\x{0b}" if letter == "v" else "\\" + letter), i + 1
    if letter == "x":
        digits = pattern[i + 1 : i + 3]
        if len(digits) == 2 and all(c in "0123456789abcdefABCDEF" for c in digits):
            return f"\\x{{{digits}}}", i + 3
        raise PatternError(r"\x must be followed by 2 hex digits")
    if letter.isascii() and letter.isalnum():
        # ECMA (with the u flag JSON Schema implies) has no other letter escapes: \a, \e, \z, \Z, \A
        # are Python or Perl spellings and would silently mean something else.
        raise PatternError(rf"\{letter} is not an ECMA-262 escape")
    return "\\" + letter, i + 1  # an escaped punctuation character: itself


class Program:
    """A compiled pattern: `search(text)` says whether it matches somewhere in `text`.

    google-re2's Python wrapper builds match objects and maps byte offsets back to characters on
    every search (about 20 us for a short text); a schema check only needs yes or no, which RE2's
    own Match answers in a few microseconds. Text is encoded as UTF-8 with lone surrogates passed
    through (JSON allows "\\ud800"; the wrapper raised UnicodeEncodeError on them), which RE2 reads
    as bytes that match no character class.
    """

    __slots__ = ("_compiled", "_match", "_unanchored")

    def __init__(self, compiled: Any) -> None:
        self._compiled = compiled
        low = getattr(compiled, "_regexp", None)
        anchors = getattr(re2, "_Anchor", None)
        # The low-level call is private to google-re2: fall back to the public search if it moves.
        self._match = getattr(low, "Match", None) if anchors is not None else None
        self._unanchored = getattr(anchors, "UNANCHORED", None)

    def search(self, text: str) -> bool:
        data = text.encode("utf-8", "surrogatepass")
        if self._match is not None:
            return bool(self._match(self._unanchored, data, 0, len(data))[0][0] >= 0)
        return self._compiled.search(data) is not None


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Program:
    """The compiled RE2 program of an ECMA-262 pattern (cached). Raises PatternError."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"longer than {MAX_PATTERN_LENGTH} characters")
    translated = translate(pattern)
    try:
        return Program(re2.compile(translated, _OPTIONS))
    except re2.error as error:
        reason = error.args[0] if error.args else error
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        raise PatternError(text) from None


def pattern_problem(pattern: Any) -> str | None:
    """Why a schema pattern cannot be used, or None."""
    if not isinstance(pattern, str):
        return "a pattern must be a string"
    try:
        compile_pattern(pattern)
    except PatternError as error:
        return str(error)
    return None


def search(pattern: str, text: str) -> bool:
    """Does `pattern` match somewhere in `text` (JSON Schema patterns are not anchored)?

    A pattern that cannot be compiled matches nothing: the schema check has already refused it.
    """
    try:
        return compile_pattern(pattern).search(text)
    except PatternError:
        return False


def is_regex(value: object) -> bool:
    """`format: regex`: a string this engine can run."""
    return not isinstance(value, str) or pattern_problem(value) is None
