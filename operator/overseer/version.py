"""The one version of schema-overseer: pyproject.toml's, read from the installed distribution.

`overseer --version`, the operator's start-up log line and metric, the chart's appVersion and the
images' default tags all show it (tests/unit/test_versions.py keeps them equal).
"""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "schema-overseer"


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0"


__all__ = ["DISTRIBUTION", "version"]
