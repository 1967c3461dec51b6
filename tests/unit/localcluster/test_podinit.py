"""podinit.py for real: a private mount namespace with volumes at their mountPaths, nothing on the host.

Runs the launcher as the node agent does (root here; without root it takes the user-namespace path,
checked below too when `setpriv` is available).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PODINIT = Path(__file__).resolve().parents[3] / "hack" / "localcluster" / "podinit.py"


def run(plan: dict, script: str, user: int | None = None) -> tuple[dict | None, subprocess.CompletedProcess[str]]:
    """Launch `sh -c script` through podinit; returns (podinit's failure report or None, the result)."""
    read, write = os.pipe()
    argv = [sys.executable, "-I", "-S", str(PODINIT), json.dumps({**plan, "argv": ["sh", "-c", script]}), str(write)]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    proc = subprocess.Popen(argv, pass_fds=(write,), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    os.close(write)
    with os.fdopen(read, "rb") as status:
        report = status.read()
    out, _ = proc.communicate(timeout=30)
    result = subprocess.CompletedProcess(argv, proc.returncode, out, "")
    return (json.loads(report) if report else None), result


@pytest.fixture
def volumes(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_text('{"version": 1}')
    (tmp_path / "cache").mkdir()
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def plan_for(volumes: Path, cwd: str | None = None) -> dict:
    return {"cwd": cwd, "scratch": str(volumes), "staging": str(volumes / "rootfs"), "hostname": "web-0", "mounts": [
        # A missing top-level folder, a missing folder under /etc, a path through the /var/run symlink.
        {"source": str(volumes / "cache"), "target": "/overseer-test-models", "readOnly": False},
        {"source": str(volumes / "model"), "target": "/etc/overseer-test/model", "readOnly": True},
        {"source": str(volumes / "model"), "target": "/var/run/secrets/overseer-test.io/sa", "readOnly": True},
        {"source": str(volumes / "model" / "model.json"), "target": "/etc/overseer-test/model.json",
         "readOnly": True},
    ]}


def host_mount_points() -> str:
    return Path("/proc/self/mountinfo").read_text()


def test_volumes_appear_at_their_mount_paths_read_only_where_asked_and_nowhere_on_the_host(volumes: Path) -> None:
    before = host_mount_points()
    report, result = run(plan_for(volumes, cwd="/overseer-test-models"), f"""
        set -e
        cat /etc/overseer-test/model/model.json; echo
        cat /etc/overseer-test/model.json; echo
        cat /var/run/secrets/overseer-test.io/sa/model.json; echo
        echo written > /overseer-test-models/out.txt
        pwd
        if echo x > /etc/overseer-test/model/model.json 2>/dev/null; then echo WROTE-READ-ONLY; fi
        test -x {sys.executable} && test -f {__file__} && echo host-tree-visible
        ls /etc/passwd
        echo "hostname=$(hostname)"
    """)
    assert report is None, report
    assert result.returncode == 0, result.stdout
    lines = result.stdout.split()
    assert result.stdout.count('{"version": 1}') == 3
    assert "/overseer-test-models" in lines  # workingDir inside a mounted volume
    assert "WROTE-READ-ONLY" not in result.stdout
    assert "host-tree-visible" in result.stdout and "/etc/passwd" in lines
    assert "hostname=web-0" in lines  # its own UTS namespace
    assert socket.gethostname() != "web-0"
    assert (volumes / "cache" / "out.txt").read_text() == "written\n"  # the write reached the volume
    # Nothing on the host: no folders made, no mounts left in its namespace.
    for path in ("/overseer-test-models", "/etc/overseer-test", "/run/secrets/overseer-test.io"):
        assert not os.path.lexists(path), path
    assert host_mount_points() == before


def test_a_volume_over_tmp_hides_neither_later_sources_nor_the_pods_own_folder(volumes: Path) -> None:
    # Charts with readOnlyRootFilesystem mount an emptyDir at /tmp; the agent's folders live under /tmp.
    (volumes / "cache" / "in-the-empty-dir").write_text("")
    plan = {"cwd": None, "scratch": str(volumes), "staging": str(volumes / "rootfs"), "mounts": [
        {"source": str(volumes / "cache"), "target": "/tmp", "readOnly": False},
        {"source": str(volumes / "model"), "target": "/etc/overseer-test/model", "readOnly": True},
    ]}
    report, result = run(plan, "ls /tmp; cat /etc/overseer-test/model/model.json; echo; ls")
    assert report is None, report
    listed = result.stdout.split()
    assert listed[0] == "in-the-empty-dir"  # /tmp is the volume now
    assert '{"version": 1}' in result.stdout  # the second source, under the host's /tmp, still mounted
    assert {"cache", "model", "rootfs"} <= set(listed)  # started in the pod's own folder


def test_host_folders_a_pod_needs_stay_visible_under_a_volume(
    volumes: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # /tmp as an emptyDir (read-only root filesystem charts): the volume's files and new files are the
    # pod's own, the host's /tmp entries (test files, the venv of a checkout under /tmp) stay visible.
    (volumes / "cache" / "own.txt").write_text("mine")
    shared = tmp_path_factory.mktemp("shared") / "model.txt"
    shared.write_text("from the host")
    outside = volumes / "project"
    (outside / "src").mkdir(parents=True)
    (outside / "src" / "code.py").write_text("print()")
    plan = {"cwd": None, "scratch": str(volumes), "staging": str(volumes / "rootfs"), "hostname": None,
            "keep": ["/tmp", str(outside / "src")], "mounts": [
                {"source": str(volumes / "cache"), "target": "/tmp", "readOnly": False},
                {"source": str(volumes / "model"), "target": str(outside), "readOnly": True},  # above src
            ]}
    report, result = run(plan, f"cat /tmp/own.txt; echo; cat {shared}; echo; echo new > /tmp/new.txt; "
                               f"cat {outside}/model.json; echo; cat {outside}/src/code.py")
    assert report is None, report
    assert result.stdout.splitlines() == ["mine", "from the host", '{"version": 1}', "print()"]
    assert (volumes / "cache" / "new.txt").read_text() == "new\n"  # new files land in the volume
    assert not Path("/tmp/new.txt").exists()


def test_a_restarted_container_still_sees_the_hosts_entries_under_a_volume(
    volumes: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The emptyDir outlives a restart; the first start left mount points in it for the host's entries.
    # The second start binds them again (podinit listed them in the pod's folder), while an empty
    # entry of the volume's own that has a host entry's name stays the volume's.
    shared = tmp_path_factory.mktemp("restart") / "model.txt"
    shared.write_text("from the host")
    host_twin = Path(tempfile.mkdtemp(prefix="overseer-podinit-", dir="/tmp"))
    (host_twin / "host-file").write_text("")
    (volumes / "cache" / host_twin.name).mkdir()  # the volume's own empty folder, same name
    plan = {"cwd": None, "scratch": str(volumes), "staging": str(volumes / "rootfs"), "hostname": None,
            "keep": ["/tmp"], "mounts": [{"source": str(volumes / "cache"), "target": "/tmp", "readOnly": False}]}
    try:
        for start in (1, 2):
            report, result = run(plan, f"cat {shared}; echo; ls -a {host_twin}")
            assert report is None, report
            assert result.stdout.splitlines() == ["from the host", ".", ".."], f"start {start}: {result.stdout}"
    finally:
        shutil.rmtree(host_twin)
    assert shared.relative_to("/tmp").parts[0] in os.listdir(volumes / "cache")  # the mount point left


def test_a_failure_is_reported_with_its_reason_and_the_command_never_runs(volumes: Path) -> None:
    plan = plan_for(volumes)
    plan["mounts"].append({"source": str(volumes / "model" / "model.json"), "target": "/etc/overseer-test/model",
                           "readOnly": True})  # a file onto a folder
    report, result = run(plan, "echo RAN")
    assert report == {"reason": "CreateContainerError",
                      "message": "mountPath /etc/overseer-test/model: exists and is not a file"}
    assert "RAN" not in result.stdout

    read, write = os.pipe()
    plan = {"cwd": None, "scratch": "/", "staging": "", "mounts": [], "argv": ["no-such-command-anywhere"]}
    proc = subprocess.run([sys.executable, "-I", "-S", str(PODINIT), json.dumps(plan), str(write)],
                          pass_fds=(write,), capture_output=True, check=False)
    os.close(write)
    with os.fdopen(read, "rb") as status:
        report = json.loads(status.read())
    assert report == {"reason": "RunContainerError",
                      "message": "cannot start 'no-such-command-anywhere': No such file or directory"}
    assert proc.returncode == 127


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to switch to another user")
def test_without_root_a_user_namespace_gives_the_same_view(volumes: Path) -> None:
    for path in [volumes, *volumes.rglob("*")]:
        path.chmod(0o777)
    for path in [volumes, *volumes.parents]:
        if path == Path("/"):
            break
        path.chmod(path.stat().st_mode | 0o011)  # traversable by nobody
    report, result = run(plan_for(volumes), """
        id -u; cat /etc/overseer-test/model/model.json; echo
        if echo x > /etc/overseer-test/model/model.json 2>/dev/null; then echo WROTE-READ-ONLY; fi
    """, user=65534)
    assert report is None, report
    assert result.stdout.split()[0] == "65534"
    assert '{"version": 1}' in result.stdout
    assert "WROTE-READ-ONLY" not in result.stdout
