"""Loopback address blocks (127.N.0.0/16) for a stack's pod IPs and ClusterIPs, never shared by two stacks.

Several stacks run on one machine (`make up` beside test sessions of parallel checkouts), and every
stack's `kubernetes` Service would otherwise sit on the same 127.N.0.1:443. A block is reserved by
an exclusive flock on a file named after it; the node agent inherits the open lock files and holds
them for its life, so a killed stack frees its blocks with its last process and nothing goes stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

LOCK_DIR = Path(tempfile.gettempdir()) / "schema-overseer-loopback"
# 127.0/16 and 127.1/16 are the host's own (127.0.0.1, 127.0.1.1, 127.0.0.53 ...); the rest is free.
CANDIDATES = range(16, 251)


@dataclass
class Reservation:
    blocks: list[int]
    fds: list[int]  # open, locked files: hand them to the process that must hold the blocks

    def release(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


def reserve(count: int, lock_dir: Path = LOCK_DIR, rng: random.Random | None = None) -> Reservation:
    """Lock `count` distinct blocks nobody else holds; raises RuntimeError when none are left."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        lock_dir.chmod(0o1777)  # shared by every user's stacks, like /tmp
    order = list(CANDIDATES)
    (rng or random.Random()).shuffle(order)
    taken = Reservation([], [])
    for block in order:
        if len(taken.blocks) == count:
            break
        fd = os.open(lock_dir / f"127.{block}.lock", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        taken.blocks.append(block)
        taken.fds.append(fd)
    if len(taken.blocks) < count:
        taken.release()
        raise RuntimeError(f"no free loopback block under 127.0.0.0/8 (all of {lock_dir} are locked)")
    return taken


def service_range(block: int) -> str:
    return f"127.{block}.0.0/16"


def kubernetes_service_ip(block: int) -> str:
    """kube-apiserver gives its own `kubernetes` Service the first address of the range."""
    return f"127.{block}.0.1"
