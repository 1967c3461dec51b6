"""The Dockerfile, checked without a Docker engine: what it copies exists and reaches the build
context, each target runs as a non-root user from a pinned base, and its entrypoints are the
commands the chart and the operator run (the local node agent runs those commands, so the images
must run the same ones)."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
CHART = REPO_ROOT / "charts" / "schema-overseer"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], dict[str, Stage]]:
    """Global ARGs and the stages by name: instructions with their continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", args.strip(), flags=re.IGNORECASE)
            assert match, f"every stage is named: FROM {args}"
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)), match.group(1))
            current = stages[match.group(2)] = Stage(match.group(2), base)
        elif current is None:
            if keyword == "ARG":
                name, _, default = args.partition("=")
                global_args[name.strip()] = default.strip()
        else:
            current.instructions.append((keyword, args.strip()))
    return global_args, stages


def effective(stages: dict[str, Stage], name: str, keyword: str) -> list[str]:
    """A keyword's values along the stage's ancestry (FROM <stage>), oldest first."""
    stage = stages[name]
    inherited = effective(stages, stage.base, keyword) if stage.base in stages else []
    return inherited + stage.all(keyword)


def ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics for the patterns used here: last match wins, `!` re-includes."""
    verdict = False
    for entry in patterns:
        negate = entry.startswith("!")
        pattern = entry.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes) or (
            pattern.startswith("**/") and any(fnmatch.fnmatch(part, pattern[3:]) for part in parts)
        ):
            verdict = not negate
    return verdict


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], dict[str, Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def chart_command() -> list[str]:
    template = (CHART / "templates" / "deployment.yaml").read_text(encoding="utf-8")
    match = re.search(r"^\s*command: (\[.*\])\s*$", template, flags=re.MULTILINE)
    assert match, "the chart's Deployment spells out the container command"
    command: list[str] = json.loads(match.group(1))
    return command


def serving_command() -> list[str]:
    """The command of the serving container the operator renders (render.py's "command" literal)."""
    tree = ast.parse((REPO_ROOT / "operator/overseer/operator/render.py").read_text(encoding="utf-8"))
    commands = [
        ast.literal_eval(value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        for key, value in zip(node.keys, node.values, strict=True)
        if isinstance(key, ast.Constant) and key.value == "command"
    ]
    assert len(commands) == 1, commands
    command: list[str] = commands[0]
    return command


def test_the_two_targets_exist_and_share_one_pinned_base(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    global_args, stages = dockerfile
    assert {"operator", "serving"} <= set(stages)
    base = global_args["PYTHON_IMAGE"]
    # A Python patch release on a named Debian release: never `latest`, never a moving minor tag.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?", base), base
    roots = {name: stage.base for name, stage in stages.items() if stage.base not in stages}
    assert set(roots.values()) == {base}, roots
    assert stages["operator"].base == stages["serving"].base == "runtime"


def test_copy_sources_exist_and_reach_the_build_context(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    patterns = [
        line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]  # fmt: skip
    copied = []
    for stage in stages.values():
        for args in stage.all("COPY"):
            if "--from=" in args:
                continue
            *sources, _destination = args.split()
            copied += sources
    assert copied, "the build copies the sources"
    for source in copied:
        path = REPO_ROOT / source
        assert path.exists(), f"COPY {source}: missing"
        files = [p for p in path.rglob("*.py")] if path.is_dir() else [path]
        for file in files[:50]:
            rel = file.relative_to(REPO_ROOT).as_posix()
            assert not ignored(rel, patterns), f"COPY {source}: {rel} is excluded by .dockerignore"
    # Nothing else reaches the builder: the venv, cluster state and weights stay out.
    for path in (".venv/bin/python", ".cluster/kubeconfig", "tests/unit/test_dockerfile.py", "model.pt",
                 "operator/overseer/__pycache__/cli.cpython-311.pyc"):  # fmt: skip
        assert ignored(path, patterns), path


def test_the_wheel_build_copies_what_pyproject_packages(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    package_roots = pyproject["tool"]["setuptools"]["packages"]["find"]["where"]
    copied = {source.rstrip("/") for args in stages["build"].all("COPY") for source in args.split()[:-1]}
    assert {*package_roots, "pyproject.toml", pyproject["project"]["readme"]} <= copied


def test_each_target_installs_only_its_extra(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for target in ("operator", "serving"):
        installs = " ".join(run for run in stages[target].all("RUN") if "pip install" in run)
        assert re.findall(r"\[(\w+)\]", installs) == [target], installs
        assert target in extras
    assert not any("torch" in dep for dep in extras["operator"]), "the operator image carries no torch"


def test_both_targets_run_as_a_numeric_non_root_user(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for target in ("operator", "serving"):
        user = effective(stages, target, "USER")[-1]
        uid, _, gid = user.partition(":")
        assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0), user
        if target == "operator":
            # runAsNonRoot needs a numeric USER; the chart names the same one.
            assert int(uid) == values["podSecurityContext"]["runAsUser"]


def entrypoint(stages: dict[str, Stage], target: str) -> list[str]:
    entry: list[str] = json.loads(effective(stages, target, "ENTRYPOINT")[-1])  # exec form only
    return entry


def test_the_operator_entrypoint_is_the_charts_command(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    assert entrypoint(stages, "operator") == chart_command() == ["python", "-m", "overseer.operator"]
    assert (REPO_ROOT / "operator/overseer/operator/__main__.py").is_file()


def test_the_serving_entrypoint_is_the_command_the_operator_renders(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
) -> None:
    _, stages = dockerfile
    command = entrypoint(stages, "serving")
    assert command == serving_command() == ["overseer", "serve"]
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["overseer"] == "overseer.cli:main"


def test_the_makefile_tags_the_images_the_chart_pulls() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for target, image in (("operator", values["image"]), ("serving", values["serving"]["image"])):
        variable = f"{target.upper()}_IMAGE"
        assert re.search(rf"^{variable} := .*{image['repository']}:\$\(VERSION\)$", makefile, flags=re.M), variable
        assert re.search(rf"docker build --target {target} -t \$\({variable}\) \.", makefile), target
        assert image["tag"] == "", "the tag defaults to appVersion (one version)"
