"""The CI jobs of examples/ci/ do what they say: their own commands, run as the CI system would run
them, in a GitOps repository laid out as they assume (schemas/, deploy/, charts/serving/ from the
examples), pass a good merge request and fail a bad one with the project's message."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from localcluster.stack import Stack
from support.cluster import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"
SEED = EXAMPLES / "seed-story"


def github_steps() -> list[str]:
    workflow = yaml.safe_load((EXAMPLES / "ci" / "github-actions.yml").read_text())
    (job,) = workflow["jobs"].values()
    steps = [step["run"] for step in job["steps"] if "run" in step and not step["run"].startswith("pip install")]
    return [step.replace("${{ github.base_ref }}", "main") for step in steps]


def gitlab_steps() -> list[str]:
    config = yaml.safe_load((EXAMPLES / "ci" / "gitlab-ci.yml").read_text())
    return list(config["model-contracts"]["script"])


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=ci", "-c", "user.email=ci@example.invalid", *args],
                   check=True, capture_output=True, timeout=60)  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A GitOps repository whose main branch holds the examples; the merge request edits the work tree."""
    repo = tmp_path / "gitops"
    (repo / "schemas").mkdir(parents=True)
    (repo / "deploy").mkdir()
    shutil.copy(EXAMPLES / "object-detector.modelschema.yaml", repo / "schemas" / "object-detector.yaml")
    shutil.copy(EXAMPLES / "cat-recognition.modeldeployment.yaml", repo / "deploy" / "cat-recognition.yaml")
    shutil.copytree(EXAMPLES / "gitops-chart", repo / "charts" / "serving")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "main")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    return repo


Run = Callable[[Path, list[str], dict[str, str]], tuple[int, str]]


@pytest.fixture
def run_job(local_cluster: Stack) -> Run:
    """Run the steps in order in `repo` as a CI system does: stop at the first failing one."""
    path = os.pathsep.join([str(local_cluster.bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])

    def run(repo: Path, steps: list[str], extra_env: dict[str, str]) -> tuple[int, str]:
        env = {**os.environ, "PATH": path, **extra_env}
        env.pop("KUBECONFIG", None)
        output = ""
        for step in steps:
            result = subprocess.run(["bash", "-eo", "pipefail", "-c", step], cwd=repo, env=env, capture_output=True,
                                    text=True, timeout=180, check=False)  # fmt: skip
            output += result.stdout + result.stderr
            if result.returncode != 0:
                return result.returncode, output
        return 0, output

    return run


JOBS: dict[str, tuple[Callable[[], list[str]], dict[str, str]]] = {
    "github-actions": (github_steps, {}),
    "gitlab-ci": (gitlab_steps, {"CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}),
}


def edit(repo: Path, name: str, source: Path) -> None:
    text = source.read_text()
    (repo / name).write_text(text)


@pytest.mark.parametrize("job", sorted(JOBS))
def test_a_good_merge_request_passes(repo: Path, run_job: Run, job: str) -> None:
    steps, env = JOBS[job]
    edit(repo, "deploy/cat-recognition.yaml", SEED / "case3-new-model.modeldeployment.yaml")  # a new model
    code, output = run_job(repo, steps(), env)
    assert code == 0, output
    assert "checked 1 ModelSchema and 1 ModelDeployment in 2 files: 0 errors" in output


@pytest.mark.parametrize(
    ("job", "change", "message"),
    [
        ("github-actions", ("deploy/cat-recognition.yaml", "case2-renamed-parameter.modeldeployment.yaml"),
         "spec.model.customObjects.confidence: not allowed; did you mean 'conf' (required)?"),
        ("gitlab-ci", ("deploy/cat-recognition.yaml", "case1-missing-parameter.modeldeployment.yaml"),
         "spec.model.customObjects.conf: required property missing"),
        ("github-actions", ("schemas/object-detector.yaml", "case2-rename-conf.modelschema.yaml"),
         "PROPERTY_RENAMED: 'conf' looks renamed to 'confidence'"),
        ("gitlab-ci", ("schemas/object-detector.yaml", "case1-new-required-parameter.modelschema.yaml"),
         "REQUIRED_PROPERTY_ADDED"),
    ],
)  # fmt: skip
def test_a_bad_merge_request_fails_with_the_reason(
    repo: Path, run_job: Run, job: str, change: tuple[str, str], message: str
) -> None:
    steps, env = JOBS[job]
    edit(repo, change[0], SEED / change[1])
    code, output = run_job(repo, steps(), env)
    assert code == 1, output
    assert message in output


def test_a_bad_value_in_the_serving_chart_fails_the_render_step(repo: Path, run_job: Run) -> None:
    values: dict[str, Any] = yaml.safe_load((repo / "charts/serving/values.yaml").read_text())
    values["model"]["customObjects"]["conf"] = 1.5
    (repo / "charts/serving/values.yaml").write_text(yaml.safe_dump(values))
    steps, env = JOBS["github-actions"]
    code, output = run_job(repo, steps(), env)
    assert code == 1
    assert "<stdin>: ModelDeployment/ml-serving/serving: spec.model.customObjects.conf:" in output
