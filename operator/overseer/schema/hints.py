"""Kept for code written against the old location: the wording helpers live in overseer.text."""

from overseer.text import (
    describe,
    field_path,
    found,
    json_type,
    most_similar,
    one_line,
    quote,
    show,
    similarity,
)

__all__ = ["describe", "field_path", "found", "json_type", "most_similar", "one_line", "quote", "show", "similarity"]
