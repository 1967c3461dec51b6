"""The SDK the ML development team calls before saving or pushing a model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from overseer.sdk import ModelConfigError, SchemaLoadError, check_model_config, load_schema
from schema_testing import EXAMPLES, REPO

SCHEMA_FILE = EXAMPLES / "object-detector.modelschema.yaml"
LABELS = {"owner": "vision-team", "stage": "staging"}


def test_valid_config_comes_back_with_defaults() -> None:
    checked = check_model_config(SCHEMA_FILE, labels=LABELS, metadata={"f1": 0.9}, custom_objects={"conf": 0.3})
    assert (checked.schema.name, checked.schema.version) == ("object-detector", 2)
    assert checked.custom_objects == {
        "conf": 0.3,
        "resize_resolution": 640,
        "iou": 0.45,
        "multi_label": False,
        "max_det": 300,
        "classes": [],
    }


def test_one_error_lists_every_problem() -> None:
    with pytest.raises(ModelConfigError) as caught:
        check_model_config(
            f"{SCHEMA_FILE}#1",
            labels={"owner": "vision-team"},
            metadata={"f1": 1.7},
            custom_objects={"confidence": 0.3, "max_det": 10},
        )
    assert str(caught.value) == textwrap.dedent(
        """\
        model config does not match object-detector version 1 (5 problems):
          labels.stage: required property missing (expected one of 'dev', 'staging', 'production')
          metadata.f1: expected a value <= 1, found 1.7
          customObjects.conf: required property missing (expected number between 0 and 1); 'confidence' is set instead
          customObjects.confidence: not allowed; did you mean 'conf' (required)?
          customObjects.max_det: not allowed (allowed: conf, iou, multi_label, resize_resolution)"""
    )
    assert caught.value.problems[0].path == "labels.stage"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("/nonexistent/schema.yaml", "/nonexistent/schema.yaml: cannot read"),
        (f"{SCHEMA_FILE}#5", "has no version 5 (versions: 1, 2)"),
        (
            str(EXAMPLES / "cat-recognition.modeldeployment.yaml"),
            "expected exactly one ModelSchema, found no ModelSchema",
        ),
        (
            {"kind": "ModelSchema", "metadata": {"name": "x"}, "spec": {"versions": []}},
            "invalid ModelSchema: spec.versions: expected at least 1 item(s)",
        ),
    ],
    ids=["missing", "no-version", "not-a-schema", "empty-versions"],
)
def test_unusable_schema_sources(source: Any, expected: str) -> None:
    with pytest.raises(SchemaLoadError, match=None) as caught:
        load_schema(source)
    assert expected in str(caught.value)


def test_a_kubectl_list_file_is_read_like_schema_diff_reads_it(tmp_path: Path, run_cli: Any) -> None:
    # `kubectl get msch object-detector -o yaml` inside a List (what `kubectl get msch -o yaml` prints)
    body = yaml.safe_load(SCHEMA_FILE.read_text(encoding="utf-8"))
    listed = tmp_path / "list.yaml"
    listed.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [body]}), encoding="utf-8")
    assert load_schema(f"{listed}#1").version == 1
    assert run_cli("schema", "diff", f"{listed}#1", str(listed)).code == 0


@pytest.mark.parametrize("reference", [f"{SCHEMA_FILE}#7", f"{SCHEMA_FILE}#x", "/nonexistent.yaml", "-"])
def test_the_sdk_and_schema_diff_explain_a_bad_reference_alike(reference: str, run_cli: Any) -> None:
    with pytest.raises(SchemaLoadError) as caught:
        load_schema(reference)
    result = run_cli("schema", "diff", reference, str(SCHEMA_FILE))
    assert result.code == 2
    assert result.err.strip() == f"overseer: {caught.value}"


def test_schema_from_a_mapping_or_a_snapshot() -> None:
    snapshot = load_schema({"name": "s", "version": 4, "customObjects": {"type": "object", "required": ["conf"]}})
    with pytest.raises(ModelConfigError, match=r"customObjects.conf: required property missing"):
        check_model_config(snapshot, custom_objects={})


def test_create_model_saves_the_checked_config_with_bentoml(tmp_path: Path) -> None:
    # A subprocess with its own BENTOML_HOME: BentoML reads its store location once per process.
    script = textwrap.dedent(
        f"""
        import json, bentoml
        from overseer.sdk import ModelConfigError, create_model
        schema = {str(SCHEMA_FILE)!r}
        try:
            with create_model("cat", schema=schema, labels={{"owner": "x"}}, custom_objects={{"conf": 3}}):
                raise SystemExit("the body must not run for an invalid config")
        except ModelConfigError as error:
            refused = str(error)
        stored_after_refusal = len(bentoml.models.list())
        with create_model("cat", schema=schema, labels={LABELS!r}, metadata={{"f1": 0.9}},
                          custom_objects={{"conf": 0.3}}) as model:
            with open(model.path_of("model.pt"), "w") as weights:
                weights.write("weights")
        saved = bentoml.models.get("cat:latest")
        print(json.dumps({{"refused": refused, "stored_after_refusal": stored_after_refusal,
                          "labels": saved.info.labels, "metadata": saved.info.metadata,
                          "custom_objects": saved.custom_objects}}))
        """
    )
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert "customObjects.conf: expected a value <= 1, found 3" in outcome["refused"]
    assert outcome["stored_after_refusal"] == 0
    assert outcome["labels"] == LABELS
    assert outcome["metadata"] == {"f1": 0.9}
    assert outcome["custom_objects"]["conf"] == 0.3
    assert outcome["custom_objects"]["resize_resolution"] == 640  # saved with the schema's defaults
