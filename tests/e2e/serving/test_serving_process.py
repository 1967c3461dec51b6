"""`overseer serve` as a process: fail-fast start-up, exact host binding, clean shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from overseer_serving.digest import sha256_file
from serving_harness import OVERSEER, ModelFile, alive, running, serve_env, start_server
from support.polling import wait_for


def run_to_exit(tmp_path: Path, document: dict[str, Any] | None, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [OVERSEER, "serve", "--port", "1", "--host", "127.0.0.1", *args]
    if document is not None:
        import json

        model_file = tmp_path / "model.json"
        model_file.write_text(json.dumps(document))
        cmd += ["--model-file", str(model_file)]
    return subprocess.run(cmd, env=serve_env(tmp_path), capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("schema violation", r"does not satisfy schema object-detector v1: customObjects.conf"),
        ("digest mismatch", "digest mismatch"),
        ("schema section missing", "schema: required field missing"),
        ("unknown parameter", "customObjects.confidence: this server does not implement"),
        ("wrong parameter type", "customObjects.agnostic_nms: expected a boolean, found string 'yes'"),
    ],
)
def test_invalid_start_up_document_exits_1_with_one_message(
    tmp_path: Path, models: dict[str, ModelFile], case: str, message: str
) -> None:
    doc = models["a"].document()
    if case == "schema violation":
        doc["model"]["customObjects"] = {"conf": "high"}
    elif case == "digest mismatch":
        doc["model"]["digest"] = models["b"].digest
    elif case == "schema section missing":
        del doc["schema"]
    elif case == "wrong parameter type":  # the schema leaves it open; the server must not coerce it
        doc["model"]["customObjects"] = {"conf": 0.3, "agnostic_nms": "yes"}
    else:
        doc["model"]["customObjects"] = {"conf": 0.3, "confidence": 0.3}
    result = run_to_exit(tmp_path, doc)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "error" in line.lower()] == [result.stderr.strip()]


def test_usage_errors(tmp_path: Path) -> None:
    no_file = run_to_exit(tmp_path, None)
    assert no_file.returncode == 2 and "--model-file" in no_file.stderr
    missing = run_to_exit(tmp_path, None, "--model-file", str(tmp_path / "absent.json"))
    assert missing.returncode == 1 and "cannot read model document" in missing.stderr
    for name in ("localhost", "pod.example"):  # a name could resolve to, and bind, anything
        by_name = run_to_exit(tmp_path, None, "--model-file", str(tmp_path / "absent.json"), "--host", name)
        assert by_name.returncode == 2, by_name.stderr
        assert by_name.stderr.strip() == (
            "overseer serve: error: invalid settings: --host (OVERSEER_HOST): must be an IP address literal "
            f"(for example 127.0.0.1, the pod IP, or 0.0.0.0 for all addresses), not '{name}'"
        )


def test_weights_that_do_not_load_stop_the_server_with_the_reason(tmp_path: Path, models: dict[str, ModelFile]) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all" * 1000)
    doc = models["a"].document(uri=f"file://{corrupt}", digest=sha256_file(corrupt))
    server = start_server(tmp_path / "srv", doc, wait=False)
    try:
        code = server.proc.wait(120)
    finally:
        server.kill_leftovers()
    assert code == 1
    lines = [line for line in server.log.splitlines() if line.startswith("overseer serve: error:")]
    assert len(lines) == 1, server.log[-2000:]
    assert "failed to start" in lines[0] and "did not load" in lines[0]


def test_binds_the_exact_host_and_sigterm_stops_the_whole_tree(tmp_path: Path, models: dict[str, ModelFile]) -> None:
    host = "127.0.0.7"
    server = start_server(tmp_path, models["a"].document(), host=host)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, "must not listen on other addresses"
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        assert server.worker_pids and all(alive(p) for p in server.worker_pids)
        code = server.stop()  # SIGTERM to the process group, as the node agent does
    finally:
        server.kill_leftovers()
    assert code == 0
    assert not [p for p in server.worker_pids if alive(p)]
    assert '"msg": "starting"' in server.log and '"model_version": "20240101"' in server.log


def test_workers_die_with_a_killed_supervisor(tmp_path: Path, models: dict[str, ModelFile]) -> None:
    with running(tmp_path, models["a"].document()) as server:
        workers = set(server.worker_pids)
        os.kill(server.proc.pid, signal.SIGKILL)  # no chance to stop its children
        server.proc.wait(10)
        wait_for(lambda: not [p for p in workers if alive(p)], 20, "workers to die with their parent")
