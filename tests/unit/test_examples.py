"""examples/: each seed case gives the outcome its header and examples/README.md promise, offline
with `overseer validate` (the cluster tier applies the same files through the webhooks:
tests/cluster/chart/test_chart_install.py, and `make demo`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from overseer import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCHEMA = EXAMPLES / "object-detector.modelschema.yaml"
CASES = EXAMPLES / "seed-story"


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["validate", *args])
    return code, capsys.readouterr().out


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("case1-new-required-parameter.modelschema.yaml",
         ["spec.versions[2].customObjects.min_box_area: REQUIRED_PROPERTY_ADDED: new required property without a "
          "default"]),
        ("case2-rename-conf.modelschema.yaml",
         ["spec.versions[2].customObjects.conf: PROPERTY_RENAMED: 'conf' looks renamed to 'confidence'"]),
        ("case1-missing-parameter.modeldeployment.yaml",
         ["spec.model.customObjects.conf: required property missing (expected number between 0 and 1)"]),
        ("case2-renamed-parameter.modeldeployment.yaml",
         ["spec.model.customObjects.conf: required property missing (expected number between 0 and 1); "
          "'confidence' is set instead",
          "spec.model.customObjects.confidence: not allowed; did you mean 'conf' (required)?"]),
    ],
)  # fmt: skip
def test_the_refused_cases_are_refused_with_the_message_their_header_quotes(
    capsys: pytest.CaptureFixture[str], case: str, expected: list[str]
) -> None:
    schemas = [] if "modelschema" in case else ["--schemas", str(SCHEMA)]  # a schema case is the schema itself
    code, out = validate(capsys, str(CASES / case), *schemas)
    assert code == 1
    problems = [line.split(": ", 2)[2] for line in out.splitlines()]
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)
    # The file's header (what a user reads first) quotes the message.
    header = " ".join(line.lstrip("# ").strip() for line in (CASES / case).read_text().splitlines()
                      if line.startswith("#"))  # fmt: skip
    assert re.sub(r"\s+", " ", expected[0])[:60] in header


def test_case3_is_valid_and_changes_only_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(capsys, str(CASES / "case3-new-model.modeldeployment.yaml"), "--schemas", str(SCHEMA))
    assert (code, out) == (0, "")
    before = yaml.safe_load((EXAMPLES / "cat-recognition.modeldeployment.yaml").read_text())
    after = yaml.safe_load((CASES / "case3-new-model.modeldeployment.yaml").read_text())
    assert before["spec"]["model"]["version"] != after["spec"]["model"]["version"]
    assert before["spec"]["model"]["digest"] != after["spec"]["model"]["digest"]
    # A hot swap, not a restart: nothing outside spec.model differs, and the promotion gate passes.
    before["spec"].pop("model"), after["spec"].pop("model")
    assert before == after


def test_the_top_level_examples_are_valid_together(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(capsys, *sorted(str(p) for p in EXAMPLES.glob("*.yaml")))
    assert (code, out) == (0, "")
