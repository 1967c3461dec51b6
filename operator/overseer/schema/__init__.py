"""Schema core: config validation against a ModelSchema version and compatibility between versions.

Everything here is pure (no I/O) so admission webhooks, the CLI, the SDK and the serving pods can
share it.
"""

from overseer.schema.compatibility import (
    MODES,
    BreakingChange,
    CompatibilityReport,
    check_against_history,
    check_compatibility,
    check_registered_versions,
    check_version_history,
)
from overseer.schema.validation import ConfigValidation, FieldProblem, validate_model_config

__all__ = [
    "MODES",
    "BreakingChange",
    "CompatibilityReport",
    "ConfigValidation",
    "FieldProblem",
    "check_against_history",
    "check_compatibility",
    "check_registered_versions",
    "check_version_history",
    "validate_model_config",
]
