"""Start-up OS errors of the real process, via `overseer serve` AND `python -m overseer_serving`: exit 1
with ONE line on stderr naming the path (or setting) and the cause - never a traceback.

Tests may run as root, for whom permissions do not apply: a path under a regular file, a file where
a directory belongs and a FIFO fail for everyone; "permission denied" is provoked by dropping the
capabilities that let root ignore permissions (setpriv); a read-only filesystem and a full disk by a
read-only bind mount and a 1 MiB tmpfs in a private mount namespace (unshare, root only).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from overseer_devtools.localserver import OVERSEER, clean_environment
from overseer_serving.digest import sha256_file

ENTRY_POINTS = {
    "overseer serve": [OVERSEER, "serve"],
    "python -m overseer_serving": [sys.executable, "-m", "overseer_serving"],
}
PREFIX = "overseer serve: error: "
ROOT = os.geteuid() == 0


class Pod:
    """The files of one start-up (weights need not be a model: every case fails before loading)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.weights = root / "weights.pt"
        self.weights.write_bytes(os.urandom(3 * 1024 * 1024))
        self.token = root / "token"
        self.token.write_text("t0ken\n")
        self.model_file = root / "model.yaml"
        self.env = {"OVERSEER_STATE_DIR": str(root / "state"), "OVERSEER_CACHE_DIR": str(root / "cache")}
        self.write(f"uri: file://{self.weights}")

    def write(self, *model_lines: str, conf: str = "conf: 0.25") -> None:
        lines = ["name: cat_recognition", 'version: "1"', f"digest: {sha256_file(self.weights)}", *model_lines]
        lines += ["customObjects:", f"  {conf}"]
        body = "\n".join(f"  {line}" for line in "\n".join(lines).splitlines())
        self.model_file.write_text(f"model:\n{body}\nschema: {{name: object-detector, version: 1}}\n")

    def start(self, entry: str, *, wrap: tuple[str, ...] = (), **env: str) -> str:
        """Run to exit; assert exit 1, one line, no traceback; return the message after the prefix."""
        command = [*wrap, *ENTRY_POINTS[entry], "--model-file", str(self.model_file), "--token-file", str(self.token)]
        result = subprocess.run(
            [*command, "--port", str(_free_port())],
            env=clean_environment(**{**self.env, **env}),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(PREFIX), result.stderr
        return lines[0].removeprefix(PREFIX)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pod(tmp_path: Path) -> Pod:
    return Pod(tmp_path)


@pytest.fixture(params=list(ENTRY_POINTS))
def entry(request: pytest.FixtureRequest) -> Any:
    return request.param


def test_a_duplicate_conf_is_refused_at_start_up(pod: Pod, entry: str) -> None:
    pod.write(f"uri: file://{pod.weights}", conf="conf: 0.25\n  conf: 0.9")
    assert pod.start(entry) == (
        f"{pod.model_file}: model document: invalid YAML: line 8, column 5: duplicate key 'conf' (first at line 7)"
    )


def test_state_directory_under_a_regular_file(pod: Pod, entry: str) -> None:
    (pod.root / "file").write_text("x")
    assert pod.start(entry, OVERSEER_STATE_DIR=str(pod.root / "file" / "state")) == (
        f"cannot write the state directory {pod.root}/file/state: Not a directory (OVERSEER_STATE_DIR)"
    )


def test_weights_cache_that_is_a_file(pod: Pod, entry: str) -> None:
    (pod.root / "cache").write_text("x")
    assert pod.start(entry) == (
        f"cannot use {pod.root}/cache as the weights cache directory: it is not a directory (OVERSEER_CACHE_DIR)"
    )


def test_model_file_that_is_a_directory(pod: Pod, entry: str) -> None:
    pod.model_file.unlink()
    pod.model_file.mkdir()
    assert pod.start(entry) == f"cannot read model document {pod.model_file}: Is a directory"


def test_token_file_missing(pod: Pod, entry: str) -> None:
    pod.token.unlink()
    assert pod.start(entry) == (
        f"the admin token file {pod.token} cannot be read: No such file or directory "
        "(--token-file, OVERSEER_ADMIN_TOKEN_FILE)"
    )


def test_weights_that_are_a_fifo_do_not_hang_start_up(pod: Pod, entry: str) -> None:
    fifo = pod.root / "weights.fifo"
    os.mkfifo(fifo)
    pod.write(f"uri: file://{fifo}")
    assert pod.start(entry) == f"{pod.model_file}: cannot read file://{fifo}: not a regular file"


def test_bentoml_home_under_a_regular_file(pod: Pod, entry: str) -> None:
    (pod.root / "file").write_text("x")
    assert pod.start(entry, BENTOML_HOME=str(pod.root / "file" / "bentoml")) == (
        f"cannot write the BentoML home directory {pod.root}/file/bentoml: Not a directory (BENTOML_HOME)"
    )


def test_the_port_is_taken(pod: Pod, entry: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pod.env["OVERSEER_PORT"] = str(port)
        command = [*ENTRY_POINTS[entry], "--model-file", str(pod.model_file), "--token-file", str(pod.token)]
        result = subprocess.run(
            command, env=clean_environment(**pod.env), capture_output=True, text=True, timeout=180, check=False
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(PREFIX)]
    assert errors == [f"{PREFIX}cannot listen on 127.0.0.1:{port}: Address already in use (--host, --port)"]


# --- permissions, a read-only filesystem, a full disk ----------------------------------------------------

NO_DAC = ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--")


def test_a_state_directory_without_write_permission(pod: Pod, entry: str) -> None:
    state = pod.root / "state"
    state.mkdir(mode=0o500)
    wrap = NO_DAC if ROOT else ()  # root ignores permissions unless it drops CAP_DAC_OVERRIDE
    if ROOT and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make root obey permissions")
    try:
        assert pod.start(entry, wrap=wrap) == (
            f"cannot write the state directory {state}: Permission denied (OVERSEER_STATE_DIR)"
        )
    finally:
        state.chmod(0o700)


def in_mount_namespace(script: str) -> tuple[str, ...]:
    """Run the command in a private mount namespace after `script` (sh; $D is the mount point)."""
    return ("unshare", "--mount", "--propagation", "private", "sh", "-c", f'{script} && exec "$@"', "sh")


needs_mount_namespace = pytest.mark.skipif(
    not ROOT or shutil.which("unshare") is None, reason="mounting a filesystem needs root and unshare"
)


@needs_mount_namespace
def test_a_read_only_weights_cache(pod: Pod, entry: str) -> None:
    cache = pod.root / "cache"
    cache.mkdir()
    wrap = in_mount_namespace(f"mount --bind {cache} {cache} && mount -o remount,bind,ro {cache}")
    assert pod.start(entry, wrap=wrap) == (
        f"cannot write the weights cache directory {cache}: Read-only file system (OVERSEER_CACHE_DIR)"
    )


@needs_mount_namespace
def test_a_full_weights_cache(pod: Pod, entry: str) -> None:
    cache = pod.root / "cache"
    cache.mkdir()
    wrap = in_mount_namespace(f"mount -t tmpfs -o size=1m tmpfs {cache}")  # the weights are 3 MiB
    assert pod.start(entry, wrap=wrap) == (
        f"{pod.model_file}: cannot write the weights cache {cache}: No space left on device (OVERSEER_CACHE_DIR)"
    )


def test_the_documents_used_here_are_valid(pod: Pod) -> None:
    """The cases above fail for their own reason: the same pod, unbroken, passes every start-up check
    (it then fails only where these tests stop it: the weights are not a model)."""
    from overseer_serving.document import load_document

    desired = load_document(pod.model_file.read_bytes())
    assert desired.params.conf == 0.25
    assert json.loads(json.dumps(desired.document.to_wire()))["model"]["uri"] == f"file://{pod.weights}"


def test_an_address_this_host_does_not_have(pod: Pod, entry: str) -> None:
    pod.env["OVERSEER_HOST"] = "192.0.2.1"  # TEST-NET-1: never a local address; binding fails at once
    command = [*ENTRY_POINTS[entry], "--model-file", str(pod.model_file), "--token-file", str(pod.token)]
    result = subprocess.run(
        [*command, "--port", "3000"], env=clean_environment(**pod.env), capture_output=True, text=True, timeout=180,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(PREFIX)]
    assert errors == [f"{PREFIX}cannot listen on 192.0.2.1:3000: Cannot assign requested address (--host, --port)"]
