"""Keep the worker processes tied to `overseer serve`, their BentoML (circus) arbiter.

circus starts each worker in its own session (setsid), so a SIGKILL sent to the arbiter's
process group would not reach the workers, and an orphaned worker would keep the port and the
model. Workers therefore ask the kernel to kill them when their parent dies (Linux
PR_SET_PDEATHSIG), and a start-up failure in a worker stops the arbiter rather than the worker
alone (which circus would respawn forever).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(supervisor_pid: int | None) -> None:
    if supervisor_pid is None:
        return
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != supervisor_pid:  # the parent died before prctl took effect
        os._exit(1)


def stop_supervisor(supervisor_pid: int | None) -> None:
    """Ask `overseer serve` to stop all workers and exit (it then reports the fatal message)."""
    if supervisor_pid is not None and supervisor_pid == os.getppid():
        os.kill(supervisor_pid, signal.SIGTERM)
    else:
        os._exit(1)
