"""`overseer validate`: exit codes and the lines a CI job shows, for good and bad input."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from overseer import manifests
from schema_testing import EXAMPLES, CliResult

Run = Callable[..., CliResult]
DIGEST = "sha256:" + "ab" * 32

SCHEMA = textwrap.dedent(
    """\
    apiVersion: overseer.dev/v1alpha1
    kind: ModelSchema
    metadata: {name: object-detector, namespace: ml}
    spec:
      compatibility: BACKWARD
      versions:
        - version: 1
          labels:
            type: object
            required: [owner]
            properties: {owner: {type: string}, dataset_date: {type: string}}
          customObjects:
            type: object
            additionalProperties: false
            required: [conf]
            properties:
              conf: {type: number, minimum: 0, maximum: 1}
              resize_resolution: {type: integer, minimum: 32, maximum: 1280, multipleOf: 32, default: 640}
    """
)


def deployment(custom: str = "{conf: 0.25}", *, name: str = "cat", version: str = "1", extra: str = "") -> str:
    return (
        textwrap.dedent(
            f"""\
        apiVersion: overseer.dev/v1alpha1
        kind: ModelDeployment
        metadata: {{name: {name}, namespace: ml}}
        spec:
          schemaRef: {{name: object-detector, version: {version}}}
          model:
            name: cat_recognition
            version: "20240103"
            uri: file:///models/cat.pt
            digest: {DIGEST}
            labels: {{owner: vision}}
            customObjects: {custom}
        """
        )
        + extra
    )


def write(tmp_path: Path, name: str, *documents: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("---\n".join(documents), encoding="utf-8")
    return str(path)


def no_traceback(result: CliResult) -> None:
    assert "Traceback" not in result.out + result.err


def test_examples_pass(run_cli: Run) -> None:
    # The example manifests at the top of examples/ and the workflow's GitOps manifest (the other
    # folders hold seed cases meant to fail, CI jobs, a chart).
    files = [*sorted(EXAMPLES.glob("*.yaml")), EXAMPLES / "workflow" / "gitops" / "deploy" / "cat-detector.yaml"]
    result = run_cli("validate", *map(str, files))
    assert result.code == 0, result.out
    assert result.out == ""
    assert "checked 1 ModelSchema and 2 ModelDeployments in 3 files: 0 errors" in result.err


def test_valid_inputs_exit_0(run_cli: Run, tmp_path: Path) -> None:
    path = write(tmp_path, "all.yaml", SCHEMA, deployment())
    result = run_cli("validate", path)
    assert (result.code, result.out) == (0, "")


def test_problem_lines_name_file_object_and_field(run_cli: Run, tmp_path: Path) -> None:
    path = write(tmp_path, "all.yaml", SCHEMA, deployment("{confidence: 0.25, resize_resolution: 650}"))
    result = run_cli("validate", path)
    assert result.code == 1
    assert result.lines == [
        f"{path}: ModelDeployment/ml/cat: spec.model.customObjects.conf: required property missing "
        "(expected number between 0 and 1); 'confidence' is set instead",
        f"{path}: ModelDeployment/ml/cat: spec.model.customObjects.confidence: not allowed; "
        "did you mean 'conf' (required)?",
        f"{path}: ModelDeployment/ml/cat: spec.model.customObjects.resize_resolution: expected a multiple of 32, "
        "found 650",
    ]
    assert "3 errors" in result.err


def test_newlines_in_values_and_names_keep_one_line_per_problem(run_cli: Run, tmp_path: Path) -> None:
    doc = deployment('{conf: "0.5\\nfake.yaml: ModelDeployment/ml/x: ok"}', name='"cat\\u2028two"')
    path = write(tmp_path, "all.yaml", SCHEMA, doc)
    result = run_cli("validate", path)
    assert result.code == 1
    assert result.out.count("\n") == 1
    assert result.lines == [
        f"{path}: ModelDeployment/ml/cat\\u2028two: spec.model.customObjects.conf: expected number, "
        "found string '0.5\\nfake.yaml: ModelDeployment/ml/x: ok'"
    ]


def test_json_output_has_the_same_problems(run_cli: Run, tmp_path: Path) -> None:
    path = write(tmp_path, "all.yaml", SCHEMA, deployment("{conf: 2}"))
    result = run_cli("validate", path, "-o", "json")
    assert result.code == 1
    assert json.loads(result.out) == [
        {
            "file": path,
            "document": 2,
            "line": SCHEMA.count("\n") + 2,  # after the schema and the `---` line
            "kind": "ModelDeployment",
            "namespace": "ml",
            "name": "cat",
            "path": "spec.model.customObjects.conf",
            "message": "expected a value <= 1, found 2",
            "severity": "error",
        }
    ]


def test_an_object_without_namespace_is_shown_as_written(run_cli: Run, tmp_path: Path) -> None:
    # It matches the schema in namespace `ml`, yet it is not "in default": print what the file says.
    doc = deployment("{conf: 2}").replace("metadata: {name: cat, namespace: ml}", "metadata: {name: cat}")
    path = write(tmp_path, "all.yaml", SCHEMA, doc)
    result = run_cli("validate", path)
    assert result.lines == [
        f"{path}: ModelDeployment/-/cat: spec.model.customObjects.conf: expected a value <= 1, found 2"
    ]
    problem = json.loads(run_cli("validate", path, "-o", "json").out)[0]
    assert (problem["namespace"], problem["name"]) == (None, "cat")


def test_stdin_and_schemas_flag(run_cli: Run, tmp_path: Path) -> None:
    schema_file = write(tmp_path, "schemas/detector.yaml", SCHEMA)
    result = run_cli("validate", "-", "--schemas", str(tmp_path / "schemas"), stdin=deployment().encode())
    assert result.code == 0, result.out
    bad = run_cli("validate", "-", "--schemas", schema_file, stdin=deployment("{conf: -1}").encode())
    assert bad.code == 1
    assert bad.lines == [
        "<stdin>: ModelDeployment/ml/cat: spec.model.customObjects.conf: expected a value >= 0, found -1"
    ]


def test_schemas_flag_takes_several_paths_and_repeats(run_cli: Run, tmp_path: Path) -> None:
    schemas = write(tmp_path, "schemas/detector.yaml", SCHEMA)
    other = write(tmp_path, "schemas/other.yaml", SCHEMA.replace("name: object-detector", "name: other"))
    good = write(tmp_path, "deploy/cat.yaml", deployment())
    bad = write(tmp_path, "deploy/dog.yaml", deployment("{conf: 7}", name="dog"))

    # design.md's form: PATH... --schemas PATH...
    several = run_cli("validate", good, "--schemas", schemas, other)
    assert several.code == 0, several.err
    assert "checked 2 ModelSchemas and 1 ModelDeployment in 3 files" in several.err

    repeated = run_cli("validate", good, "--schemas", schemas, f"--schemas={other}")
    assert repeated.code == 0, repeated.err

    # Objects other than ModelSchemas in --schemas inputs are not checked: dog is ignored there...
    ignored = run_cli("validate", good, "--schemas", schemas, bad)
    assert ignored.code == 0, ignored.err
    # ...and checked as a PATH, which may also follow the --schemas list after `--`.
    checked = run_cli("validate", "--schemas", schemas, "--", good, bad)
    assert checked.code == 1
    assert checked.lines == [
        f"{bad}: ModelDeployment/ml/dog: spec.model.customObjects.conf: expected a value <= 1, found 7"
    ]

    # `--schemas` took every PATH: say how to write it, in one line, exit 2.
    swallowed = run_cli("validate", "--schemas", schemas, good)
    assert swallowed.code == 2
    assert swallowed.err.strip() == (
        "overseer validate: no PATH to check; put PATHs before --schemas, or end the --schemas list "
        "with --: overseer validate --schemas schemas/ -- deploy/"
    )


def test_other_kinds_are_skipped_and_kind_list_is_expanded(run_cli: Run, tmp_path: Path) -> None:
    other = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
    listed = "apiVersion: v1\nkind: List\nitems:\n" + textwrap.indent(
        "- " + textwrap.indent(deployment("{conf: 5}"), "  ").lstrip(), "  "
    )
    path = write(tmp_path, "helm.yaml", other, SCHEMA, listed)
    result = run_cli("validate", path)
    assert result.code == 1
    assert result.lines == [
        f"{path}: ModelDeployment/ml/cat: spec.model.customObjects.conf: expected a value <= 1, found 5"
    ]
    assert "1 other object skipped" in result.err


def test_yaml_values_are_read_like_kubectl(run_cli: Run, tmp_path: Path) -> None:
    # A date stays a string (labels.dataset_date is a string), as kubectl would send it.
    dated = deployment().replace("labels: {owner: vision}", "labels: {owner: vision, dataset_date: 2024-01-03}")
    assert run_cli("validate", write(tmp_path, "a.yaml", SCHEMA, dated)).code == 0
    unquoted = deployment().replace('version: "20240103"', "version: 20240103")
    result = run_cli("validate", write(tmp_path, "b.yaml", SCHEMA, unquoted))
    assert result.code == 1
    assert result.lines[0].endswith("spec.model.version: expected string, found integer 20240103 (quote it in YAML)")


# --- ModelSchema checks -----------------------------------------------------------------------------


def test_schema_versions_must_be_unique_and_increasing(run_cli: Run, tmp_path: Path) -> None:
    body = textwrap.dedent(
        """\
        apiVersion: overseer.dev/v1alpha1
        kind: ModelSchema
        metadata: {name: s}
        spec:
          compatibility: NONE
          versions:
            - {version: 2}
            - {version: 1}
            - {version: 2}
        """
    )
    path = write(tmp_path, "s.yaml", body)
    result = run_cli("validate", path)
    assert result.code == 1
    assert result.lines == [
        f"{path}: ModelSchema/-/s: spec.versions[1].version: versions must increase: 1 comes after 2",
        f"{path}: ModelSchema/-/s: spec.versions[2].version: duplicate version 2 (also spec.versions[0])",
    ]


def test_schema_with_invalid_json_schema_section(run_cli: Run, tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", SCHEMA.replace("type: number, minimum", "type: numbr, minimum"))
    result = run_cli("validate", path)
    assert result.code == 1
    assert result.lines == [
        f"{path}: ModelSchema/ml/object-detector: spec.versions[0].customObjects: not a valid JSON Schema: "
        "at properties.conf.type: 'numbr' is not a JSON type (expected one of array, boolean, integer, null, "
        "number, object, string)"
    ]


def test_schema_typo_in_a_field_name_gets_a_hint(run_cli: Run, tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", SCHEMA.replace("compatibility: BACKWARD", "compatibilty: BACKWARD"))
    result = run_cli("validate", path)
    assert result.lines == [
        f"{path}: ModelSchema/ml/object-detector: spec.compatibilty: unknown field; did you mean 'compatibility'?"
    ]


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "apiVersion: v1\nkind: [",
            "document 1 (line 3): invalid YAML: line 3, column 1: did not find expected node content",
        ),
        (
            "apiVersion: overseer.dev/v1alpha1\nkind: ModelDeploy\nmetadata: {name: x}\n",
            "ModelDeploy/-/x: kind: unknown kind 'ModelDeploy' in overseer.dev; did you mean 'ModelDeployment'?",
        ),
        (
            "kind: ModelSchema\nmetadata: {name: y}\n",
            "ModelSchema/-/y: apiVersion: missing (expected overseer.dev/v1alpha1)",
        ),
        (
            "apiVersion: overseer.dev/v1\nkind: ModelSchema\nmetadata: {name: y}\n",
            "ModelSchema/-/y: apiVersion: unsupported version 'v1'; expected overseer.dev/v1alpha1",
        ),
        (
            "apiVersion: v1\nkind: ModelSchema\nmetadata: {name: y}\n",
            "ModelSchema/-/y: apiVersion: 'v1' does not serve ModelSchema; expected overseer.dev/v1alpha1",
        ),
        (
            "- just\n- a list\n",
            "document 1 (line 1): expected a Kubernetes object (a mapping), found an array of 2 items",
        ),
        ("owner: vision\n", "document 1 (line 1): not a Kubernetes object: apiVersion and kind are missing"),
        (
            "apiVersion: overseer.dev/v1alpha1\nkind: ModelSchema\nmetadata: {}\nspec: {versions: [{version: 1}]}\n",
            "document 1 (line 1): metadata.name: required field missing",
        ),
        ("a: 1\na: 2\n", "document 1 (line 2): invalid YAML: line 2, column 1: duplicate key 'a' (first at line 1)"),
    ],
    ids=[
        "invalid-yaml",
        "unknown-kind",
        "missing-apiversion",
        "wrong-version",
        "wrong-group",
        "list",
        "no-kind",
        "no-name",
        "duplicate-key",
    ],
)
def test_bad_documents_exit_1_with_a_readable_line(run_cli: Run, tmp_path: Path, content: str, expected: str) -> None:
    path = write(tmp_path, "bad.yaml", content)
    result = run_cli("validate", path)
    assert result.code == 1
    assert result.lines == [f"{path}: {expected}"]
    no_traceback(result)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            deployment(version="7"),
            "spec.schemaRef.version: ModelSchema 'object-detector' has no version 7 (versions: 1)",
        ),
        (
            deployment().replace("name: object-detector", "name: object-detectr"),
            "spec.schemaRef.name: ModelSchema 'object-detectr' not found among the inputs (did you mean "
            "'object-detector'?); pass its file or use --schemas PATH",
        ),
        (
            deployment().replace(DIGEST, "sha256:abc"),
            "spec.model.digest: expected sha256:<64 lowercase hex digits>, found 'sha256:abc'",
        ),
        (
            deployment().replace("labels: {owner: vision}", "labels: [vision]"),
            "spec.model.labels: expected object, found an array of 1 item",
        ),
        (deployment("42"), "spec.model.customObjects: expected object, found integer 42"),
        (
            deployment().replace("file:///models", "ftp://models"),
            "spec.model.uri: unsupported URI 'ftp://models/cat.pt': expected one of file://, http://, https://, s3://",
        ),
        (deployment(extra="  replicas: 0\n"), "spec.replicas: expected a value >= 1, found 0"),
        (
            deployment(extra="  rollout: {strategy: Blue}\n"),
            "spec.rollout.strategy: expected 'HotSwap' or 'Rolling', found 'Blue'",
        ),
        (
            deployment(extra="  promotion: {metric: f1, minimum: 0.8}\n"),
            "spec.promotion.metric: 'f1' is not in spec.model.metadata",
        ),
    ],
    ids=[
        "missing-version",
        "missing-schema",
        "digest",
        "labels-list",
        "custom-int",
        "uri",
        "replicas",
        "strategy",
        "promotion-metric",
    ],
)
def test_bad_deployments(run_cli: Run, tmp_path: Path, doc: str, expected: str) -> None:
    path = write(tmp_path, "d.yaml", SCHEMA, doc)
    result = run_cli("validate", path)
    assert result.code == 1
    assert result.lines == [f"{path}: ModelDeployment/ml/cat: {expected}"]


def test_duplicate_names(run_cli: Run, tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", SCHEMA, deployment())
    second = write(tmp_path, "b.yaml", deployment())
    result = run_cli("validate", first, second)
    assert result.code == 1
    first_line = SCHEMA.count("\n") + 2
    assert result.lines == [
        f"{second}: ModelDeployment/ml/cat: metadata.name: "
        f"duplicate ModelDeployment (first defined in {first}:{first_line})"
    ]


def test_same_file_twice_is_not_a_duplicate(run_cli: Run, tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", SCHEMA, deployment())
    assert run_cli("validate", path, "--schemas", path).code == 0


def test_long_values_give_short_lines(run_cli: Run, tmp_path: Path) -> None:
    long = "x" * (200 * 1024)
    path = write(tmp_path, "long.yaml", SCHEMA, deployment(f"{{conf: '{long}'}}"))
    result = run_cli("validate", path)
    assert result.code == 1
    assert len(result.lines) == 1
    assert "spec.model.customObjects.conf: expected number, found string 'xxx" in result.lines[0]
    assert len(result.lines[0]) - len(path) < 160


def test_five_megabyte_config_is_refused_by_its_size(run_cli: Run, tmp_path: Path) -> None:
    huge = "x" * (5 * 1024 * 1024)
    path = write(tmp_path, "huge.yaml", SCHEMA, deployment(f"{{conf: '{huge}'}}"))
    result = run_cli("validate", path)
    assert result.code == 1
    assert result.lines == [
        f"{path}: ModelDeployment/ml/cat: spec.model.customObjects: too large to check: "
        "more than 262,144 characters of text (see docs/schema.md, Bounds)"
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x7fELF\x02\x01\x01\x00\x00\x00" * 50, "binary content (NUL bytes); expected YAML or JSON text"),
        (b"kind: \xff\xfe caf\xe9\n", "not UTF-8 text (invalid byte at offset 6)"),
    ],
    ids=["binary", "latin-1"],
)
def test_unreadable_files_exit_2(run_cli: Run, tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "junk.yaml"
    path.write_bytes(content)
    result = run_cli("validate", str(path))
    assert result.code == 2
    assert f"overseer: {path}: {expected}" in result.err.splitlines()
    no_traceback(result)


def test_oversized_input_exit_2(run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifests, "MAX_INPUT_BYTES", 1024 * 1024)
    path = write(tmp_path, "big.yaml", "a: " + "b" * (2 * 1024 * 1024))
    result = run_cli("validate", path)
    assert result.code == 2
    assert f"overseer: {path}: larger than 1 MiB; not a manifest file" in result.err.splitlines()


def test_usage_and_read_errors_exit_2(run_cli: Run, tmp_path: Path) -> None:
    missing = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert missing.code == 2
    assert f"overseer: {tmp_path / 'nope.yaml'}: no such file or folder" in missing.err.splitlines()
    (tmp_path / "empty").mkdir()
    empty = run_cli("validate", str(tmp_path / "empty"))
    assert empty.code == 2
    assert "no .yaml, .yml, .json files in this folder" in empty.err
    no_args = run_cli("validate")
    assert no_args.code == 2
    assert no_args.err.strip() == "overseer validate: no PATH given: files, folders, or - for stdin"
    bad_output = run_cli("validate", "-o", "xml", str(EXAMPLES))
    assert bad_output.code == 2
    for result in (missing, empty, no_args, bad_output):
        no_traceback(result)


def test_a_read_error_does_not_hide_other_problems(run_cli: Run, tmp_path: Path) -> None:
    path = write(tmp_path, "d.yaml", SCHEMA, deployment("{conf: 9}"))
    result = run_cli("validate", path, str(tmp_path / "missing.yaml"))
    assert result.code == 2
    assert result.lines == [
        f"{path}: ModelDeployment/ml/cat: spec.model.customObjects.conf: expected a value <= 1, found 9"
    ]


def test_folders_are_searched_recursively_skipping_hidden_ones(run_cli: Run, tmp_path: Path) -> None:
    write(tmp_path, "schemas/detector.yml", SCHEMA)
    write(tmp_path, "apps/cat/deploy.yaml", deployment())
    write(tmp_path, ".git/junk.yaml", "not: [valid")
    write(tmp_path, "apps/README.md", "# not a manifest")
    result = run_cli("validate", str(tmp_path))
    assert result.code == 0, result.out
    assert "in 2 files" in result.err


def test_empty_documents_and_no_overseer_objects(run_cli: Run, tmp_path: Path) -> None:
    path = write(
        tmp_path, "empty.yaml", "", "# only a comment\n", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    )
    result = run_cli("validate", path)
    assert result.code == 0
    assert "no ModelSchema or ModelDeployment found" in result.err


def test_deprecated_version_is_a_warning(run_cli: Run, tmp_path: Path) -> None:
    path = write(
        tmp_path, "d.yaml", SCHEMA.replace("- version: 1", "- version: 1\n      deprecated: true"), deployment()
    )
    result = run_cli("validate", path)
    assert result.code == 0
    assert result.lines == [
        f"{path}: ModelDeployment/ml/cat: spec.schemaRef.version: warning: ModelSchema 'object-detector' version 1 "
        "is deprecated"
    ]


def test_unexpected_failure_is_one_line(run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("overseer.cli.check_documents", explode)
    result = run_cli("validate", str(EXAMPLES))
    assert result.code == 2
    assert result.err.strip().splitlines()[-1] == "overseer: internal error: RuntimeError: boom"
    no_traceback(result)


def test_yaml_alias_bomb_is_refused_quickly(run_cli: Run, tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = "\n".join(lines) + "\nlabels: *a8\n"
    path = write(tmp_path, "bomb.yaml", bomb)
    result = run_cli("validate", path)
    assert result.code == 1
    assert result.lines == [
        f"{path}: document 1 (line 1): invalid YAML: line 1, column 1: aliases expand to more than 1,000,000 values"
    ]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://models/cat/v2.pt", None),
        ("s3://models", "expected s3://BUCKET/KEY"),
        ("s3:///cat.pt", "expected s3://BUCKET/KEY"),
        ("gs://models/cat.pt", "gs:// is not supported; the serving pods fetch file://, http://, https://, s3://"),
        ("ftp://models/cat.pt", "expected one of file://, http://, https://, s3://"),
    ],
)
def test_model_uri_schemes_are_the_ones_the_pods_fetch(uri: str, message: str | None) -> None:
    from overseer.api.model_document import ModelSpec

    model = {"name": "cat", "version": "1", "uri": uri, "digest": "sha256:" + "a" * 64}
    if message is None:
        assert ModelSpec.model_validate(model).uri == uri
    else:
        with pytest.raises(ValueError, match=re.escape(message)):
            ModelSpec.model_validate(model)
