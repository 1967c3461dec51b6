"""Process-group handling: a whole tree stops, and a recycled pid is never signalled."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from localcluster import procs
from support.polling import wait_for

SLEEPER = "import time; time.sleep(60)"
TREE = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {SLEEPER!r}]); time.sleep(60)"


def test_stop_group_stops_the_leader_and_its_children(tmp_path: Path) -> None:
    leader = subprocess.Popen([sys.executable, "-c", TREE], start_new_session=True)
    try:
        wait_for(lambda: len(procs.group_members(leader.pid)) == 2, 10, "the child to start")
        procs.stop_group(leader.pid, procs.start_time(leader.pid), grace=5)
        assert procs.group_members(leader.pid) == []
        assert leader.poll() is not None  # reaped, not a zombie
    finally:
        procs.signal_group(leader.pid, None, procs.signal.SIGKILL)
        leader.wait()


def test_a_recorded_pid_now_used_by_another_process_is_left_alone(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # same group as pytest
    try:
        record = tmp_path / "process.json"
        record.write_text(f'{{"pid": {bystander.pid}, "start": 1}}')  # a start time it does not have
        pid, started = procs.read_record(record) or (0, None)
        procs.stop_group(pid, started, grace=1)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()

