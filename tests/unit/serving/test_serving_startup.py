"""Start-up error boundaries of `overseer serve`, in-process: every problem found before BentoML starts
is ONE line naming the path (or setting) and the cause, and exit 1 - never a traceback.

The cases use what fails for every user, root included (tests may run as root): a path under a
regular file, a file where a directory is expected, a directory where a file is expected, a FIFO,
a symlink loop, a name too long. Permissions and a full disk, which need another user or a
filesystem of their own, are in tests/e2e/serving/test_serving_startup_errors.py.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from overseer_serving import command
from overseer_serving.digest import sha256_file

PREFIX = "overseer serve: error: "


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No inherited OVERSEER_ settings; the serving logger restored afterwards (serve configures it)."""
    for name in [n for n in os.environ if n.startswith("OVERSEER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OVERSEER_LOG_FORMAT", "text")
    monkeypatch.setenv("BENTOML_HOME", "recorded")  # so that the value serve() sets is undone after the test
    monkeypatch.delenv("BENTOML_HOME")
    logger = logging.getLogger("overseer_serving")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved  # type: ignore[assignment]


class Setup:
    """A valid start-up (document, weights, token, state and cache dirs) that each test breaks once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.weights = root / "weights.pt"
        self.weights.write_bytes(b"not loaded by these tests: start-up fails before any worker runs")
        self.token = root / "token"
        self.token.write_text("t0ken\n")
        self.state = root / "state"
        self.cache = root / "cache"
        self.model_file = root / "model.json"
        self.write_document()

    def document(self, **model: Any) -> dict[str, Any]:
        return {
            "model": {
                "name": "cat_recognition",
                "version": "1",
                "uri": f"file://{self.weights}",
                "digest": sha256_file(self.weights),
                "customObjects": {"conf": 0.25},
                **model,
            },
            "schema": {"name": "object-detector", "version": 1},
        }

    def write_document(self, **model: Any) -> None:
        self.model_file.write_text(json.dumps(self.document(**model)))

    def run(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], **env: Path | str) -> str:
        settings = {"OVERSEER_STATE_DIR": self.state, "OVERSEER_CACHE_DIR": self.cache, **env}
        for name, value in settings.items():
            if value == "":
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, str(value))
        code = command.main(["--model-file", str(self.model_file), "--token-file", str(self.token), "--port", "1"])
        err = capsys.readouterr().err
        assert code == 1, err
        assert "Traceback" not in err
        lines = [line for line in err.splitlines() if line.startswith(PREFIX)]
        assert len(lines) == 1, err
        return lines[0].removeprefix(PREFIX)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "regular-file"
    path.write_text("not a directory")
    return path


Run = tuple[pytest.MonkeyPatch, pytest.CaptureFixture[str]]


@pytest.fixture
def ctx(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    return monkeypatch, capsys


def test_state_directory_under_a_regular_file(setup: Setup, a_file: Path, ctx: Run) -> None:
    assert setup.run(*ctx, OVERSEER_STATE_DIR=a_file / "state") == (
        f"cannot write the state directory {a_file}/state: Not a directory (OVERSEER_STATE_DIR)"
    )


def test_state_directory_that_is_a_file(setup: Setup, a_file: Path, ctx: Run) -> None:
    assert setup.run(*ctx, OVERSEER_STATE_DIR=a_file) == (
        f"cannot use {a_file} as the state directory: it is not a directory (OVERSEER_STATE_DIR)"
    )


def test_weights_cache_that_is_a_file(setup: Setup, a_file: Path, ctx: Run) -> None:
    assert setup.run(*ctx, OVERSEER_CACHE_DIR=a_file) == (
        f"cannot use {a_file} as the weights cache directory: it is not a directory (OVERSEER_CACHE_DIR)"
    )


def test_weights_cache_under_a_regular_file(setup: Setup, a_file: Path, ctx: Run) -> None:
    assert setup.run(*ctx, OVERSEER_CACHE_DIR=a_file / "cache") == (
        f"cannot write the weights cache directory {a_file}/cache: Not a directory (OVERSEER_CACHE_DIR)"
    )


def test_default_weights_cache_inside_a_state_directory_that_holds_a_file_named_weights(
    setup: Setup, ctx: Run
) -> None:
    (setup.state / "weights").parent.mkdir(parents=True)
    (setup.state / "weights").write_text("in the way")
    assert setup.run(*ctx, OVERSEER_CACHE_DIR="") == (
        f"cannot use {setup.state}/weights as the weights cache directory: it is not a directory (OVERSEER_STATE_DIR)"
    )


def test_no_private_state_directory_can_be_made(
    setup: Setup, a_file: Path, ctx: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(a_file))  # what gettempdir() answers from now on
    message = setup.run(*ctx, OVERSEER_STATE_DIR="")
    assert message.startswith(f"cannot create a private state directory {a_file}/overseer-serve-")
    assert message.endswith(": Not a directory; set OVERSEER_STATE_DIR (or TMPDIR) to a writable directory")


@pytest.mark.parametrize("case", ["directory", "missing", "symlink loop", "name too long", "under a file"])
def test_model_file_that_cannot_be_read(setup: Setup, ctx: Run, case: str) -> None:
    path = setup.root / "model.json"
    path.unlink()
    cause = {
        "directory": "Is a directory",
        "missing": "No such file or directory",
        "symlink loop": "Too many levels of symbolic links",
        "name too long": "File name too long",
        "under a file": "Not a directory",
    }[case]
    if case == "directory":
        path.mkdir()
    elif case == "symlink loop":
        path.symlink_to(path.name)
    elif case == "name too long":
        path = setup.root / ("m" * 300)
    elif case == "under a file":
        path.write_text("{}")
        path = path / "model.json"
    setup.model_file = path
    assert setup.run(*ctx) == f"cannot read model document {path}: {cause}"


def test_model_document_with_a_duplicate_key(setup: Setup, ctx: Run) -> None:
    text = json.dumps(setup.document(), indent=1).replace('"conf": 0.25', '"conf": 0.25,\n  "conf": 0.9')
    setup.model_file.write_text(text)
    message = setup.run(*ctx)
    assert message.startswith(f"{setup.model_file}: model document: invalid JSON: line ")
    assert "duplicate key 'conf' (first at line " in message


def test_model_document_over_the_limit_is_not_read_whole(setup: Setup, ctx: Run) -> None:
    with setup.model_file.open("a") as f:
        f.write(" " * (2 * 1024 * 1024))
    assert setup.run(*ctx) == f"{setup.model_file}: model document: larger than 1 MiB"


@pytest.mark.parametrize(("case", "cause"), [("missing", "cannot be read: No such file or directory"),
                                             ("directory", "cannot be read: Is a directory"), ("empty", "is empty")])
def test_token_file_that_cannot_be_used(setup: Setup, ctx: Run, case: str, cause: str) -> None:
    setup.token.unlink()
    if case == "directory":
        setup.token.mkdir()
    elif case == "empty":
        setup.token.write_text("  \n")
    assert setup.run(*ctx) == (
        f"the admin token file {setup.token} {cause} (--token-file, OVERSEER_ADMIN_TOKEN_FILE)"
    )


@pytest.mark.parametrize("case", ["directory", "fifo", "device"])
def test_weights_that_are_not_a_regular_file(setup: Setup, ctx: Run, case: str) -> None:
    places = {"directory": setup.root / "weights-dir", "fifo": setup.root / "weights.fifo", "device": Path("/dev/zero")}
    weights = places[case]
    if case == "directory":
        weights.mkdir()
    elif case == "fifo":
        os.mkfifo(weights)  # opening it for reading would wait for a writer forever
    setup.write_document(uri=f"file://{weights}")
    assert setup.run(*ctx) == f"{setup.model_file}: cannot read file://{weights}: not a regular file"


def test_weights_under_a_regular_file(setup: Setup, a_file: Path, ctx: Run) -> None:
    setup.write_document(uri=f"file://{a_file}/weights.pt")
    assert setup.run(*ctx) == f"{setup.model_file}: cannot read file://{a_file}/weights.pt: Not a directory"


def test_each_server_gets_its_own_bentoml_home_unless_one_is_set(setup: Setup, ctx: Run) -> None:
    # BentoML empties <home>/prometheus_multiproc_dir whenever a server starts: a shared ~/bentoml
    # would let one server erase another's metrics.
    setup.model_file.unlink()
    setup.run(*ctx)
    assert os.environ["BENTOML_HOME"] == f"{setup.state}/bentoml"
    assert (setup.state / "bentoml").is_dir()
