"""The catalogue of compatibility codes: what each means and which guarantee it breaks.

Codes are a stable interface (CI jobs and admission messages show them; users grep for them):
add new ones, never rename. docs/schema.md has the same table; a unit test keeps them in sync.
"""

from __future__ import annotations

from typing import Literal

Breaks = Literal["BACKWARD", "FORWARD", "BOTH", "NEVER"]

# code -> (which guarantee it breaks, message template). Templates take the keyword arguments
# that the compatibility walk passes: old, new, values, keyword, branch, problem.
CODES: dict[str, tuple[Breaks, str]] = {
    "TYPE_NARROWED": ("BACKWARD", "type narrowed from {old} to {new}"),
    "TYPE_WIDENED": (
        "FORWARD",
        "type widened from {old} to {new}; consumers of the old version reject the added types",
    ),
    "TYPE_CHANGED": ("BOTH", "type changed from {old} to {new}"),
    "ENUM_NARROWED": ("BACKWARD", "allowed values narrowed: {values} no longer accepted"),
    "ENUM_EXTENDED": (
        "FORWARD",
        "allowed values extended with {values}; consumers of the old version reject them",
    ),
    "MINIMUM_INCREASED": ("BACKWARD", "minimum raised from {old} to {new}"),
    "MINIMUM_DECREASED": (
        "FORWARD",
        "minimum lowered from {old} to {new}; consumers of the old version reject smaller values",
    ),
    "MAXIMUM_DECREASED": ("BACKWARD", "maximum lowered from {old} to {new}"),
    "MAXIMUM_INCREASED": (
        "FORWARD",
        "maximum raised from {old} to {new}; consumers of the old version reject larger values",
    ),
    "MULTIPLE_OF_CHANGED": ("BOTH", "multipleOf changed from {old} to {new}"),
    "MIN_LENGTH_INCREASED": ("BACKWARD", "minLength raised from {old} to {new}"),
    "MIN_LENGTH_DECREASED": (
        "FORWARD",
        "minLength lowered from {old} to {new}; consumers of the old version reject shorter strings",
    ),
    "MAX_LENGTH_DECREASED": ("BACKWARD", "maxLength lowered from {old} to {new}"),
    "MAX_LENGTH_INCREASED": (
        "FORWARD",
        "maxLength raised from {old} to {new}; consumers of the old version reject longer strings",
    ),
    "PATTERN_ADDED": ("BACKWARD", "pattern {new} added"),
    "PATTERN_REMOVED": (
        "FORWARD",
        "pattern {old} removed; consumers of the old version reject values that do not match it",
    ),
    "PATTERN_CHANGED": ("BOTH", "pattern changed from {old} to {new}"),
    "FORMAT_ADDED": ("BACKWARD", "format {new} added"),
    "FORMAT_REMOVED": (
        "FORWARD",
        "format {old} removed; consumers of the old version reject other strings",
    ),
    "FORMAT_CHANGED": ("BOTH", "format changed from {old} to {new}"),
    "MIN_ITEMS_INCREASED": ("BACKWARD", "minItems raised from {old} to {new}"),
    "MIN_ITEMS_DECREASED": (
        "FORWARD",
        "minItems lowered from {old} to {new}; consumers of the old version reject shorter arrays",
    ),
    "MAX_ITEMS_DECREASED": ("BACKWARD", "maxItems lowered from {old} to {new}"),
    "MAX_ITEMS_INCREASED": (
        "FORWARD",
        "maxItems raised from {old} to {new}; consumers of the old version reject longer arrays",
    ),
    "UNIQUE_ITEMS_ADDED": ("BACKWARD", "items must now be unique"),
    "UNIQUE_ITEMS_REMOVED": (
        "FORWARD",
        "items need not be unique any more; consumers of the old version reject duplicates",
    ),
    "MIN_PROPERTIES_INCREASED": ("BACKWARD", "minProperties raised from {old} to {new}"),
    "MIN_PROPERTIES_DECREASED": (
        "FORWARD",
        "minProperties lowered from {old} to {new}; consumers of the old version reject smaller objects",
    ),
    "MAX_PROPERTIES_DECREASED": ("BACKWARD", "maxProperties lowered from {old} to {new}"),
    "MAX_PROPERTIES_INCREASED": (
        "FORWARD",
        "maxProperties raised from {old} to {new}; consumers of the old version reject larger objects",
    ),
    "PROPERTY_REMOVED": (
        "BACKWARD",
        "removed from a closed model (additionalProperties: false): configs that set it fail",
    ),
    "PROPERTY_ADDED_TO_CLOSED_MODEL": (
        "FORWARD",
        "added, but the old version is closed (additionalProperties: false): "
        "consumers of the old version reject configs that set it",
    ),
    "PROPERTY_ADDED_TO_OPEN_MODEL": (
        "BACKWARD",
        "added to an open model (additionalProperties not false): configs for the old version "
        "may already carry it with any value; close the model first",
    ),
    "PROPERTY_REMOVED_FROM_OPEN_MODEL": (
        "FORWARD",
        "removed while the model stays open: configs may carry it with any value, "
        "which consumers of the old version reject",
    ),
    "REQUIRED_PROPERTY_ADDED": (
        "BACKWARD",
        "new required property without a default: configs written for the old version lack it",
    ),
    "REQUIRED_PROPERTY_REMOVED": (
        "FORWARD",
        "required by the old version but gone from the new one: consumers of the old version fail without it",
    ),
    "PROPERTY_MADE_REQUIRED": (
        "BACKWARD",
        "now required, without a default: configs that omit it fail",
    ),
    "PROPERTY_MADE_OPTIONAL": (
        "FORWARD",
        "no longer required: consumers of the old version fail when it is omitted",
    ),
    "PROPERTY_RENAMED": (
        "BOTH",
        "{old!r} looks renamed to {new!r}: {effect} ({codes}); keep {old!r}, "
        "or add {new!r} as optional with a default next to it",
    ),
    "ADDITIONAL_PROPERTIES_NARROWED": (
        "BACKWARD",
        "model closed (additionalProperties: false): configs with undeclared properties fail",
    ),
    "ADDITIONAL_PROPERTIES_EXTENDED": (
        "FORWARD",
        "model opened (additionalProperties no longer false): "
        "consumers of the old version reject undeclared properties",
    ),
    "BRANCH_REMOVED": ("BACKWARD", "{keyword} alternative {branch} is no longer accepted"),
    "BRANCH_ADDED": (
        "FORWARD",
        "new {keyword} alternative {branch} is not accepted by the old version",
    ),
    "CONTAINS_NARROWED": (
        "BACKWARD",
        "'contains' now demands items (or counts of them) that configs of the old version may lack",
    ),
    "CONTAINS_EXTENDED": (
        "FORWARD",
        "'contains' relaxed: consumers of the old version reject arrays without the items it demanded",
    ),
    "DEPENDENCY_ADDED": (
        "BACKWARD",
        "when {key!r} is set, more is now demanded (dependentRequired / dependentSchemas)",
    ),
    "DEPENDENCY_REMOVED": (
        "FORWARD",
        "when {key!r} is set, less is demanded now; consumers of the old version reject what it demanded",
    ),
    "NEGATION_NARROWED": ("BACKWARD", "'not' now excludes {branch}, which configs of the old version may hold"),
    "NEGATION_EXTENDED": (
        "FORWARD",
        "'not' no longer excludes {branch}; consumers of the old version reject such values",
    ),
    "KEYWORD_CHANGED": (
        "BOTH",
        "{keyword!r} changed; it is not analysed, so any change to it counts as breaking",
    ),
    "SCHEMA_INVALID": ("BOTH", "{problem}"),
    "TOO_COMPLEX_TO_COMPARE": (
        "BOTH",
        "comparing the versions needs more than {limit} steps (see docs/schema.md, Bounds): "
        "split the schema into smaller sections, or use compatibility NONE",
    ),
    "HISTORY_TOO_LARGE": (
        "BOTH",
        "the versions hold more than {limit} JSON values together (see docs/schema.md, Bounds): "
        "make the sections smaller, or start a new ModelSchema for the next versions",
    ),
    # Registered versions are immutable, whatever the mode (`schema diff` of two files, admission).
    "VERSION_REMOVED": (
        "BOTH",
        "a registered version was removed; deployments that reference it stop validating (mark it deprecated instead)",
    ),
    "VERSION_MODIFIED": ("BOTH", "a registered version is immutable; add a new version instead"),
    # A notice, not a break: configs that omit the field silently change behaviour.
    "DEFAULT_CHANGED": (
        "NEVER",
        "default changed from {old} to {new}: configs that omit it change behaviour",
    ),
}


def message(code: str, **fields: object) -> str:
    return CODES[code][1].format(**fields)
