"""`overseer deployment new --update FILE`: only the model section changes; comments, layout, other
keys and other documents stay byte for byte; the right object is picked; a refused update leaves the
file untouched."""

from __future__ import annotations

import difflib
import hashlib
import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from overseer.deployment_new import update
from workflow_testing import SCHEMA_FILE, CliResult

Run = Callable[..., CliResult]

GITOPS = textwrap.dedent(
    """\
    # GitOps: the cat detector of the vision team.
    # Bumped by the training pipeline; reviewed by the serving team.
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: ml-serving}   # flow style kept
    ---
    # The deployment itself.
    apiVersion: overseer.dev/v1alpha1
    kind: ModelDeployment
    metadata:
      name: cat-recognition
      namespace: ml-serving
      labels:
        team: vision          # who to page
    spec:
      schemaRef:
        name: object-detector
        version: 1
      model:
        name: cat_recognition   # as saved by the training job
        version: "20240103"
        uri: file:///models/cat_recognition/20240103/model.pt
        digest: sha256:3f2a6c1d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29
        labels: {owner: vision-team, stage: production}
        metadata:
          f1: 0.87
          dataset_version: '2024.01'
        customObjects:
          # tuned on the validation set
          conf: 0.25
          resize_resolution: 640
      replicas:   3        # peak traffic
      serving:
        resources:
          requests: {cpu: "1", memory: 2Gi}
        tolerations:
            - key: nvidia.com/gpu
              operator: Exists
      rollout:
        strategy: HotSwap
        maxUnavailable: 1
    ---
    apiVersion: v1
    kind: Service
    metadata:
      name: cat-public
    spec:
      ports:
      - port: 80
    """
)


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    path.write_bytes(b"weights of 20240110")
    return path


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "deploy" / "cat.yaml"
    path.parent.mkdir()
    path.write_text(GITOPS, encoding="utf-8")
    return path


def digest_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def bump(run_cli: Run, weights: Path, manifest: Path, *extra: str, name: str = "cat-recognition") -> CliResult:
    return run_cli(
        "deployment", "new", name, "--schema", f"{SCHEMA_FILE}#1", "--uri", "https://models.example.com/cat/20240110/model.pt",
        "--weights", str(weights), "--model-name", "cat_recognition", "--model-version", "20240110",
        "--label", "owner=vision-team", "--label", "stage=production",
        "--metadata", "f1=0.9", "--metadata", "dataset_version=2024.02",
        "--custom-object", "conf=0.3", "--custom-object", "resize_resolution=640",
        "--update", str(manifest), *extra,
    )  # fmt: skip


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def test_only_the_model_lines_change(run_cli: Run, weights: Path, manifest: Path) -> None:
    result = bump(run_cli, weights, manifest)
    assert result.code == 0, result.err
    assert result.out == ""
    assert result.err_lines == [
        f"overseer: updated {manifest}: ModelDeployment 'cat-recognition': model cat_recognition 20240103 -> "
        "cat_recognition 20240110"
    ]
    after = manifest.read_text()
    removed, added = changed_lines(GITOPS, after)
    assert removed == [
        '    version: "20240103"',
        "    uri: file:///models/cat_recognition/20240103/model.pt",
        "    digest: sha256:3f2a6c1d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29",
        "      f1: 0.87",
        "      dataset_version: '2024.01'",
        "      conf: 0.25",
    ]
    assert added == [
        '    version: "20240110"',  # the double quotes stay
        "    uri: https://models.example.com/cat/20240110/model.pt",
        f"    digest: {digest_of(weights)}",
        "      f1: 0.9",
        "      dataset_version: '2024.02'",  # the single quotes stay
        "      conf: 0.3",
    ]
    # Comments, the odd spacing of `replicas:   3`, the 4-space sequence, the other documents: as they were.
    assert "  replicas:   3        # peak traffic\n" in after
    assert "    name: cat_recognition   # as saved by the training job\n" in after
    assert "      # tuned on the validation set\n" in after
    assert after.startswith("# GitOps: the cat detector of the vision team.\n")
    assert after.endswith(GITOPS[GITOPS.index("---\napiVersion: v1\nkind: Service") :])


def test_the_result_reads_as_meant(run_cli: Run, weights: Path, manifest: Path) -> None:
    bump(run_cli, weights, manifest)
    namespace, deployment, service = yaml.safe_load_all(manifest.read_text())
    assert namespace == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml-serving"}}
    assert service["kind"] == "Service"
    assert deployment["metadata"]["labels"] == {"team": "vision"}
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["model"] == {
        "name": "cat_recognition",
        "version": "20240110",
        "uri": "https://models.example.com/cat/20240110/model.pt",
        "digest": digest_of(weights),
        "labels": {"owner": "vision-team", "stage": "production"},
        "metadata": {"f1": 0.9, "dataset_version": "2024.02"},
        "customObjects": {"conf": 0.3, "resize_resolution": 640},
    }


def test_a_new_schema_version_moves_schema_ref_too(run_cli: Run, weights: Path, manifest: Path) -> None:
    result = bump(run_cli, weights, manifest, "--schema", f"{SCHEMA_FILE}#2")
    assert result.code == 0, result.err
    assert result.err_lines[-1].endswith(", schemaRef object-detector#1 -> object-detector#2")
    removed, added = changed_lines(GITOPS, manifest.read_text())
    assert (removed[0], added[0]) == ("    version: 1", "    version: 2")


def test_keys_the_new_model_lacks_go_and_new_ones_are_appended(run_cli: Run, weights: Path, manifest: Path) -> None:
    result = run_cli(
        "deployment", "new", "cat-recognition", "--schema", f"{SCHEMA_FILE}#2", "--uri", "https://models.example.com/model.pt",
        "--weights", str(weights), "--model-version", "20240110", "--model-name", "cat_recognition",
        "--label", "owner=vision-team", "--label", "stage=staging", "--metadata", "f1=0.9",
        "--custom-object", "conf=0.3", "--custom-object", "classes=[cat]", "--update", str(manifest),
    )  # fmt: skip
    assert result.code == 0, result.err
    model = yaml.safe_load_all(manifest.read_text())
    spec = list(model)[1]["spec"]
    assert spec["model"]["labels"] == {"owner": "vision-team", "stage": "staging"}
    assert spec["model"]["metadata"] == {"f1": 0.9}
    assert spec["model"]["customObjects"] == {"conf": 0.3, "classes": ["cat"]}
    text = manifest.read_text()
    assert "    labels: {owner: vision-team, stage: staging}\n" in text  # a flow mapping stays one
    assert "      # tuned on the validation set\n      conf: 0.3\n" in text


def test_the_object_is_picked_by_name_and_namespace(run_cli: Run, weights: Path, manifest: Path) -> None:
    other = GITOPS.split("---\n")[2].replace("name: cat-recognition", "name: dog-recognition")
    twin = GITOPS.split("---\n")[2].replace("namespace: ml-serving", "namespace: ml-staging")
    text = GITOPS + "---\n" + other + "---\n" + twin
    manifest.write_text(text)
    result = bump(run_cli, weights, manifest, name="dog-recognition")
    assert result.code == 0, result.err
    documents = list(yaml.safe_load_all(manifest.read_text()))
    changed = [d["metadata"]["name"] + "/" + d["metadata"]["namespace"] for d in documents
               if d["kind"] == "ModelDeployment" and d["spec"]["model"]["version"] == "20240110"]  # fmt: skip
    assert changed == ["dog-recognition/ml-serving"]

    manifest.write_text(text)
    result = bump(run_cli, weights, manifest)  # cat-recognition is in two namespaces
    assert result.code == 2
    assert result.err_lines == [
        f"overseer: {manifest}: 2 ModelDeployments match 'cat-recognition' (ml-serving/cat-recognition, "
        "ml-staging/cat-recognition); pass -n NAMESPACE"
    ]
    assert manifest.read_text() == text
    result = bump(run_cli, weights, manifest, "-n", "ml-serving")
    assert result.code == 0, result.err
    documents = list(yaml.safe_load_all(manifest.read_text()))
    assert [d["spec"]["model"]["version"] for d in documents if d["kind"] == "ModelDeployment"] == [
        "20240110",
        "20240103",
        "20240103",
    ]


def test_a_missing_object_is_exit_2_and_lists_what_is_there(run_cli: Run, weights: Path, manifest: Path) -> None:
    result = bump(run_cli, weights, manifest, name="cat-recognitoin")
    assert result.code == 2
    assert result.err_lines == [
        f"overseer: {manifest}: no ModelDeployment 'cat-recognitoin' (found: ml-serving/cat-recognition)"
    ]
    assert manifest.read_text() == GITOPS
    result = bump(run_cli, weights, manifest, "-n", "other")
    assert result.code == 2
    assert "no ModelDeployment 'cat-recognition' in namespace 'other'" in result.err


def test_an_invalid_update_is_exit_1_and_the_file_untouched(run_cli: Run, weights: Path, manifest: Path) -> None:
    before = manifest.stat()
    result = bump(run_cli, weights, manifest, "--custom-object", "conf=1.5")
    assert result.code == 1
    assert result.err_lines == [
        f"{manifest}: ModelDeployment/ml-serving/cat-recognition: spec.model.customObjects.conf: "
        "expected a value <= 1, found 1.5",
        "overseer: the ModelDeployment is invalid (1 error); nothing written",
    ]
    assert manifest.read_text() == GITOPS
    assert manifest.stat().st_mtime_ns == before.st_mtime_ns


def test_the_rest_of_the_object_is_checked_too(run_cli: Run, weights: Path, manifest: Path) -> None:
    # The promotion gate of the manifest refuses the new model's f1: better in CI than at rollout.
    gated = GITOPS.replace("  rollout:\n", "  promotion: {metric: f1, minimum: 0.95}\n  rollout:\n")
    manifest.write_text(gated)
    result = bump(run_cli, weights, manifest)
    assert result.code == 1
    assert "spec.model.metadata.f1: 0.9 is below promotion.minimum 0.95: the rollout would be refused" in result.err
    assert manifest.read_text() == gated


def test_the_same_model_again_changes_nothing(run_cli: Run, weights: Path, manifest: Path) -> None:
    assert bump(run_cli, weights, manifest).code == 0
    first = manifest.read_text()
    result = bump(run_cli, weights, manifest)
    assert result.code == 0
    assert result.err_lines == [
        f"overseer: {manifest}: ModelDeployment 'cat-recognition' already serves cat_recognition 20240110; unchanged"
    ]
    assert manifest.read_text() == first


def test_permissions_symlinks_and_no_final_newline(run_cli: Run, weights: Path, manifest: Path, tmp_path: Path) -> None:
    manifest.write_text(GITOPS.rstrip("\n"))
    manifest.chmod(0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(manifest)
    assert bump(run_cli, weights, link).code == 0
    assert link.is_symlink()
    assert manifest.stat().st_mode & 0o777 == 0o640
    text = manifest.read_text()
    assert not text.endswith("\n")
    assert text.endswith("  ports:\n  - port: 80")
    assert [p.name for p in manifest.parent.iterdir()] == ["cat.yaml"]  # no temporary file left behind


def test_windows_line_ends_stay(run_cli: Run, weights: Path, manifest: Path) -> None:
    manifest.write_bytes(GITOPS.replace("\n", "\r\n").encode())
    assert bump(run_cli, weights, manifest).code == 0
    data = manifest.read_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"")
    removed, added = changed_lines(GITOPS, data.decode().replace("\r\n", "\n"))
    assert len(removed) == len(added) == 6


def test_strings_kubectl_would_misread_are_quoted(weights: Path) -> None:
    text = "apiVersion: overseer.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: x}\nspec:\n  model: {}\n"
    model = {
        "name": "x",
        "version": "1.10",
        "labels": {"stage": "on", "flag": "yes", "n": "0x1F", "date": "2024-01-03"},
    }
    updated = update.update_text(text, "f.yaml", update.Target("x"), model, {"name": "s", "version": 1})
    body = yaml.safe_load(updated.text)  # PyYAML reads YAML 1.1 like kubectl: yes/on are booleans
    assert body["spec"]["model"] == model
    assert body["spec"]["schemaRef"] == {"name": "s", "version": 1}


def test_a_deployment_without_model_section_gets_one() -> None:
    text = "apiVersion: overseer.dev/v1alpha1\nkind: ModelDeployment\nmetadata:\n  name: x\nspec:\n  replicas: 2\n"
    model = {"name": "x", "version": "1", "customObjects": {"classes": ["a", "b"]}}
    updated = update.update_text(text, "f.yaml", update.Target("x"), model, {"name": "s", "version": 1})
    assert updated.text.startswith(text[: text.index("spec:")])
    assert yaml.safe_load(updated.text)["spec"] == {
        "replicas": 2,
        "schemaRef": {"name": "s", "version": 1},
        "model": model,
    }
    assert updated.previous_model == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: [\n", "invalid YAML"),
        ("apiVersion: overseer.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: x}\nspec: [1]\n",
         "x: spec is not a mapping"),
        ("apiVersion: v1\nkind: ConfigMap\n", "no ModelDeployment 'x' (it holds no ModelDeployment)"),
    ],
)  # fmt: skip
def test_unusable_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(update.UpdateError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        update.update_text(text, "f.yaml", update.Target("x"), {"name": "x"}, {"name": "s", "version": 1})


def test_a_binary_or_missing_file_is_exit_2(run_cli: Run, weights: Path, tmp_path: Path) -> None:
    binary = tmp_path / "weights.yaml"
    binary.write_bytes(b"\x00\x01")
    result = bump(run_cli, weights, binary)
    assert (result.code, result.err_lines) == (
        2,
        [f"overseer: {binary}: binary content (NUL bytes); expected YAML or JSON text"],
    )
    result = bump(run_cli, weights, tmp_path / "none.yaml")
    assert result.code == 2
    assert "none.yaml: cannot read: No such file or directory" in result.err


def test_document_spans_split_only_at_markers() -> None:
    text = "a: 1\n--- # first\nb: |\n  ---x\n...\n---\nc: 3"
    spans = update._document_spans(text)
    assert [text[s:e] for s, e in spans] == ["a: 1\n", "b: |\n  ---x\n", "c: 3"]


def test_indentation_is_read_from_the_document() -> None:
    assert update._guess_indent("a:\n  b:\n    - x\n") == (2, 4, 2)
    assert update._guess_indent("a:\n    b: 1\nl:\n- x\n") == (4, 2, 0)
    assert update._guess_indent("a: 1\n") == (2, 2, 0)


def test_hidden_file_mode_is_kept_through_os_replace(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a: 1\n")
    os.chmod(path, 0o600)
    update.write_in_place(str(path), "a: 2\n")
    assert (path.read_text(), path.stat().st_mode & 0o777) == ("a: 2\n", 0o600)


def rebuilt(ops: list[tuple[str, int, int, int, int]], x: list[str], y: list[str]) -> list[str]:
    """`x` edited by `ops` (checking that the opcodes cover both sides in order)."""
    out: list[str] = []
    i = j = 0
    for tag, i1, i2, j1, j2 in ops:
        assert (i1, j1) == (i, j), ops
        out.extend(x[i1:i2] if tag == "equal" else y[j1:j2])
        i, j = i2, j2
    assert (i, j) == (len(x), len(y)), ops
    return out


def test_long_repetitive_documents_are_diffed_without_difflibs_quadratic_search() -> None:
    # difflib is quadratic on repeated lines (a long list of equal numbers): the common head and
    # tail are cut first, and a changed middle longer than DIFF_LIMIT lines is one hunk.
    lines = ["- 1\n"] * 50_000
    changed = [*lines[:30_000], "- 2\n", *lines[30_000:]]
    ops = update._opcodes(lines, changed)
    assert rebuilt(ops, lines, changed) == changed
    assert len(ops) <= 3
    small = ["a\n", "b\n", "c\n"]
    assert update._opcodes(small, ["a\n", "x\n", "c\n"]) == [
        ("equal", 0, 1, 0, 1),
        ("replace", 1, 2, 1, 2),
        ("equal", 2, 3, 2, 3),
    ]
    big_x = [f"{i}\n" for i in range(3000)]
    big_y = [f"{i}\n" if i % 2 else "z\n" for i in range(3000)]
    assert update._opcodes(big_x, big_y) == [("replace", 0, 2999, 0, 2999), ("equal", 2999, 3000, 2999, 3000)]


def test_a_long_list_in_the_model_is_updated(weights: Path) -> None:
    items = "".join("      - 1\n" for _ in range(3000))
    text = (
        "apiVersion: overseer.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: x}\nspec:\n"
        "  schemaRef: {name: s, version: 1}\n"
        f"  model:\n    name: a\n    customObjects:\n      big:\n{items}  replicas:   2  # kept\n"
    )
    model = {"name": "b", "customObjects": {"big": [*[1] * 3000, 2]}}
    updated = update.update_text(text, "f.yaml", update.Target("x"), model, {"name": "s", "version": 1})
    assert yaml.safe_load(updated.text)["spec"]["model"] == model
    assert updated.text.endswith("      - 2\n  replicas:   2  # kept\n")
