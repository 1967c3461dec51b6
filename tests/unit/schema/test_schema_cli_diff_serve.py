"""`overseer schema diff` at the CLI boundary (`overseer serve`: tests/unit/serving/test_serving_cli.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from schema_testing import EXAMPLES, CliResult

Run = Callable[..., CliResult]
SCHEMA_FILE = EXAMPLES / "object-detector.modelschema.yaml"


def edited(tmp_path: Path, change: Callable[[dict[str, Any]], None], name: str = "new.yaml") -> str:
    body = yaml.safe_load(SCHEMA_FILE.read_text(encoding="utf-8"))
    change(body)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return str(path)


def add_version(body: dict[str, Any], **custom_properties: Any) -> None:
    latest = body["spec"]["versions"][-1]
    new = {**latest, "version": latest["version"] + 1}
    new["customObjects"] = {
        **latest["customObjects"],
        "properties": {**latest["customObjects"]["properties"], **custom_properties},
    }
    body["spec"]["versions"].append(new)


def test_versions_of_one_file(run_cli: Run) -> None:
    result = run_cli("schema", "diff", f"{SCHEMA_FILE}#1", f"{SCHEMA_FILE}#2")
    assert result.code == 0
    assert result.lines == ["object-detector version 2 is BACKWARD compatible with version 1"]


def test_same_versions_under_full_show_the_forward_break(run_cli: Run) -> None:
    result = run_cli("schema", "diff", f"{SCHEMA_FILE}#1", f"{SCHEMA_FILE}#2", "--mode", "full")
    assert result.code == 1
    assert result.lines == [
        "PROPERTY_ADDED_TO_CLOSED_MODEL customObjects.max_det: added, but the old version is closed "
        "(additionalProperties: false): consumers of the old version reject configs that set it",
        "PROPERTY_ADDED_TO_CLOSED_MODEL customObjects.classes: added, but the old version is closed "
        "(additionalProperties: false): consumers of the old version reject configs that set it",
        "object-detector version 2 is not FULL compatible with version 1: 2 breaking changes",
    ]


def test_whole_files_default_to_the_highest_versions(run_cli: Run, tmp_path: Path) -> None:
    new = edited(tmp_path, lambda b: add_version(b, resize_resolution={"type": "integer", "enum": [320, 640]}))
    result = run_cli("schema", "diff", str(SCHEMA_FILE), new)
    assert result.code == 1
    assert result.lines == [
        "ENUM_NARROWED customObjects.resize_resolution: allowed values narrowed: any value other than 320, 640 "
        "no longer accepted",
        "object-detector version 3 is not BACKWARD compatible with version 2: 1 breaking change",
    ]


def test_editing_a_registered_version_is_reported(run_cli: Run, tmp_path: Path) -> None:
    def loosen_v1(body: dict[str, Any]) -> None:
        body["spec"]["versions"][0]["customObjects"]["properties"]["conf"]["maximum"] = 2

    result = run_cli("schema", "diff", str(SCHEMA_FILE), edited(tmp_path, loosen_v1))
    assert result.code == 1
    assert result.lines[0] == (
        "VERSION_MODIFIED version 1.customObjects: a registered version is immutable; add a new version instead"
    )


def test_changed_default_is_a_note(run_cli: Run, tmp_path: Path) -> None:
    new = edited(tmp_path, lambda b: add_version(b, iou={"type": "number", "minimum": 0, "maximum": 1, "default": 0.5}))
    result = run_cli("schema", "diff", str(SCHEMA_FILE), new)
    assert result.code == 0
    assert result.lines == [
        "note: DEFAULT_CHANGED customObjects.iou: default changed from 0.45 to 0.5: configs that omit it change "
        "behaviour",
        "object-detector version 3 is BACKWARD compatible with version 2",
    ]


def test_json_output(run_cli: Run, tmp_path: Path) -> None:
    new = edited(tmp_path, lambda b: add_version(b, conf={"type": "number", "minimum": 0.1, "maximum": 1}))
    result = run_cli("schema", "diff", str(SCHEMA_FILE), new, "-o", "json")
    assert result.code == 1
    assert json.loads(result.out) == {
        "mode": "BACKWARD",
        "compatible": False,
        "old": {"file": str(SCHEMA_FILE), "name": "object-detector", "version": 2},
        "new": {"file": new, "name": "object-detector", "version": 3},
        "checked": [{"old_version": 2, "new_version": 3}],
        "changes": [
            {
                "code": "MINIMUM_INCREASED",
                "path": "customObjects.conf",
                "message": "minimum raised from 0 to 0.1",
                "direction": "BACKWARD",
                "old_version": 2,
                "new_version": 3,
            }
        ],
        "notices": [],
    }


def test_every_added_version_is_checked_not_just_the_highest(run_cli: Run, tmp_path: Path) -> None:
    """A merge request adding v3 (conf: number -> string) and v4 (back to number) is two breaks."""

    def two_versions(body: dict[str, Any]) -> None:
        add_version(body, conf={"type": "string"})
        add_version(body, conf={"type": "number", "minimum": 0, "maximum": 1})

    new = edited(tmp_path, two_versions)
    result = run_cli("schema", "diff", str(SCHEMA_FILE), new)
    assert result.code == 1
    assert result.lines == [
        "TYPE_CHANGED customObjects.conf: type changed from number to string (version 3 vs 2)",
        "TYPE_CHANGED customObjects.conf: type changed from string to number (version 4 vs 3)",
        "object-detector versions 3 and 4 are not BACKWARD compatible with the version before each: 2 breaking changes",
    ]
    validated = run_cli("validate", new)  # the same verdict as validate
    assert [line.split(": ", 3)[2:] for line in validated.lines] == [
        [
            "spec.versions[2].customObjects.conf",
            "TYPE_CHANGED: type changed from number to string (version 3 is not BACKWARD compatible with version 2)",
        ],
        [
            "spec.versions[3].customObjects.conf",
            "TYPE_CHANGED: type changed from string to number (version 4 is not BACKWARD compatible with version 3)",
        ],
    ]


def test_transitive_modes_check_added_versions_against_every_earlier_one(run_cli: Run, tmp_path: Path) -> None:
    # v3 repeats v2, which added two properties to a closed model: fine against v2, not against v1.
    new = edited(tmp_path, lambda b: b["spec"]["versions"].append({**b["spec"]["versions"][1], "version": 3}))
    assert run_cli("schema", "diff", str(SCHEMA_FILE), new, "--mode", "FORWARD").code == 0
    result = run_cli("schema", "diff", str(SCHEMA_FILE), new, "--mode", "FORWARD_TRANSITIVE")
    assert result.code == 1
    assert [line.split(":")[0] for line in result.lines[:-1]] == [
        "PROPERTY_ADDED_TO_CLOSED_MODEL customObjects.max_det",
        "PROPERTY_ADDED_TO_CLOSED_MODEL customObjects.classes",
    ]
    assert all(line.endswith("(version 3 vs 1)") for line in result.lines[:-1])
    assert result.lines[-1] == (
        "object-detector version 3 is not FORWARD_TRANSITIVE compatible with every earlier version: 2 breaking changes"
    )


def test_whole_files_without_a_new_version(run_cli: Run) -> None:
    result = run_cli("schema", "diff", str(SCHEMA_FILE), str(SCHEMA_FILE))
    assert result.code == 0
    assert result.lines == ["object-detector: no version after version 2 to check; registered versions unchanged"]


def test_new_older_than_old_is_refused(run_cli: Run) -> None:
    result = run_cli("schema", "diff", f"{SCHEMA_FILE}#2", f"{SCHEMA_FILE}#1")
    assert result.code == 2
    assert result.out == ""
    assert result.err.strip() == (
        f"overseer: NEW {SCHEMA_FILE}#1 is version 1, older than OLD {SCHEMA_FILE}#2 (version 2); "
        "usage: overseer schema diff OLD NEW"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([f"{SCHEMA_FILE}#9", str(SCHEMA_FILE)], "ModelSchema 'object-detector' has no version 9 (versions: 1, 2)"),
        ([f"{SCHEMA_FILE}#two", str(SCHEMA_FILE)], "expected FILE#N with N a version number"),
        (
            [str(EXAMPLES / "cat-recognition.modeldeployment.yaml"), str(SCHEMA_FILE)],
            "expected exactly one ModelSchema, found no ModelSchema",
        ),
        (["/nonexistent.yaml", str(SCHEMA_FILE)], "/nonexistent.yaml: cannot read: No such file or directory"),
        ([str(SCHEMA_FILE), str(SCHEMA_FILE), "--mode", "SIDEWAYS"], "argument --mode: invalid choice: 'SIDEWAYS'"),
        ([str(EXAMPLES), str(SCHEMA_FILE)], f"overseer: {EXAMPLES}: cannot read: Is a directory"),
    ],
    ids=["missing-version", "bad-selector", "not-a-schema", "missing-file", "bad-mode", "folder"],
)
def test_usage_errors_exit_2(run_cli: Run, args: list[str], expected: str) -> None:
    result = run_cli("schema", "diff", *args)
    assert result.code == 2
    assert expected in result.err
    assert "Traceback" not in result.err


def test_invalid_schema_file_exit_2_with_its_first_problem(run_cli: Run, tmp_path: Path) -> None:
    bad = edited(tmp_path, lambda b: b["spec"].update(compatibility="SOMETIMES"))
    result = run_cli("schema", "diff", str(SCHEMA_FILE), bad)
    assert result.code == 2
    assert f"overseer: {bad}: invalid ModelSchema: spec.compatibility: expected 'NONE', 'BACKWARD'" in result.err


def test_help_and_unknown_commands(run_cli: Run) -> None:
    assert run_cli("--help").code == 0
    unknown = run_cli("deploy")
    assert unknown.code == 2
    assert "invalid choice: 'deploy'" in unknown.err
