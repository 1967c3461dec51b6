"""The compatibility modes (Confluent Schema Registry's names): one list for the CRD enum, the CLI's
--mode choices and the checker."""

from __future__ import annotations

from typing import Literal, get_args

CompatibilityMode = Literal[
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
]
COMPATIBILITY_MODES: tuple[str, ...] = get_args(CompatibilityMode)
