"""The control plane never needs torch: the CLI, API models and validation import nothing heavy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# rfc3987_syntax/lark: jsonschema imports them when installed and they compile grammars for seconds
# at import; the core checks iri itself and leaves them out of its dependencies.
HEAVY = ("torch", "ultralytics", "bentoml", "cv2", "numpy", "rfc3987_syntax", "lark")


def test_validate_and_schema_diff_import_no_serving_stack() -> None:
    code = f"""
import sys
from overseer import cli
from overseer.api import v1alpha1
from overseer.schema import compatibility, validation
assert cli.main(["validate", {str(EXAMPLES)!r}]) == 0
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stdout, result.stdout
