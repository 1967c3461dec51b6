"""Process-group helpers shared by the stack runner and the node agent.

Every process we start leads its own process group (its children - BentoML workers, say - join
it), so one killpg stops a whole tree. A pid is recorded with its start time so a recycled pid is
never signalled by mistake.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import threading
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def start_time(pid: int) -> int | None:
    """Process start time in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after the closing parenthesis are fixed.
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19])


def is_same_process(pid: int, started: int | None) -> bool:
    current = start_time(pid)
    if current is None:
        return False
    try:
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False  # a zombie is already dead
    except (OSError, IndexError):
        return False
    return started is None or current == started


def record(path: Path, pid: int) -> None:
    path.write_text(json.dumps({"pid": pid, "start": start_time(pid)}))


def read_record(path: Path) -> tuple[int, int | None] | None:
    try:
        data = json.loads(path.read_text())
        return int(data["pid"]), data.get("start")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def die_with_parent(parent_pid: int) -> None:
    """In the child before exec: new session, and SIGKILL when the parent (the agent) dies."""
    os.setsid()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def signal_group(pid: int, started: int | None, sig: signal.Signals) -> None:
    """Signal the process group led by pid; fall back to the lone process only if it is still ours."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        if is_same_process(pid, started):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state is fields[0], pgrp fields[2]
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # killpg(0) succeeds while zombies remain in the group; look for a live member.
    return bool(group_members(pgid))


def _reap(pid: int) -> None:
    """Collect the exit status when pid is our own child, so no zombie lingers."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_group(
    pid: int, started: int | None, grace: float, *, reap: bool = True, cut_short: threading.Event | None = None
) -> None:
    """SIGTERM the group, wait up to `grace` seconds (or until `cut_short` is set), then SIGKILL.

    reap=False leaves the exit status to the caller's Popen (the node agent reports it).
    """
    try:
        _stop_group(pid, started, grace, cut_short)
    finally:
        if reap:
            _reap(pid)


def _stop_group(pid: int, started: int | None, grace: float, cut_short: threading.Event | None) -> None:
    if not is_same_process(pid, started):
        # The leader is gone (or the pid was reused): only a group it left behind may be ours.
        if started is not None and is_same_process(pid, None):
            return  # pid reused by an unrelated process: never signal it
        if not group_alive(pid):
            return
    signal_group(pid, started, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not (cut_short and cut_short.is_set()):
        if not group_alive(pid):
            return
        time.sleep(0.05)
    signal_group(pid, started, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and group_alive(pid):
        time.sleep(0.05)
