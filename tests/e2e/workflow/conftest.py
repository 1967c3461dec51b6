"""Fixtures of the workflow tests: a work folder per module, and examples/workflow/local_s3.py (the
example's S3-compatible store: moto's server with IAM authentication on) started as its README does."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from localcluster import procs
from support.polling import wait_for
from workflow_support import EXAMPLE


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workflow")


@pytest.fixture(scope="module")
def object_store(work: Path) -> Iterator[Path]:
    """The store on a free loopback port; its .env files (trainer.env, serving-credentials.env,
    store.env) land in `work`. It dies with this process (PR_SET_PDEATHSIG) even if pytest is killed."""
    log = work / "s3.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLE / "local_s3.py"), "--env-dir", str(work)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=functools.partial(procs.die_with_parent, os.getpid()),  # noqa: PLW1509
        )

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"local_s3.py exited with {process.returncode}: {log.read_text()}")
        return log.read_text().startswith("ready ")

    try:
        wait_for(ready, 60, "the S3 server to be ready")
        yield work
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: the group is its pid
            process.wait(timeout=20)
