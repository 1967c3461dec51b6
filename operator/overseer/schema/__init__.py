"""Schema core: config validation against a ModelSchema version and compatibility between versions.

Everything here is pure (no I/O, bounded work) so admission webhooks, the CLI, the SDK and the
serving pods can share it. Layers point one way: overseer.text <- overseer.schema <- overseer.api.
"""

from overseer.schema.compatibility import (
    MODES,
    BreakingChange,
    CompatibilityReport,
    HistoryReport,
    VersionProblem,
    check_compatibility,
    check_history,
    check_registered_versions,
)
from overseer.schema.validation import ConfigValidation, FieldProblem, validate_model_config

__all__ = [
    "MODES",
    "BreakingChange",
    "CompatibilityReport",
    "ConfigValidation",
    "FieldProblem",
    "HistoryReport",
    "VersionProblem",
    "check_compatibility",
    "check_history",
    "check_registered_versions",
    "validate_model_config",
]
