"""Loopback blocks are never handed to two stacks at once, and come back when their holder dies."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from localcluster import loopback


def test_two_reservations_never_share_a_block(tmp_path: Path) -> None:
    first = loopback.reserve(2, tmp_path, random.Random(1))
    second = loopback.reserve(2, tmp_path, random.Random(1))  # same shuffle: must skip the held ones
    try:
        assert len(set(first.blocks + second.blocks)) == 4
        assert all(b in loopback.CANDIDATES for b in first.blocks + second.blocks)
    finally:
        first.release()
        second.release()


def test_a_block_held_by_a_dead_process_is_free_again(tmp_path: Path) -> None:
    holder = loopback.reserve(1, tmp_path, random.Random(7))
    (block,) = holder.blocks
    # A child inherits the lock (as the node agent does) and the parent lets go of its copy.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=holder.fds)
    holder.release()
    try:
        again = loopback.reserve(len(loopback.CANDIDATES) - 1, tmp_path)
        assert block not in again.blocks  # still held by the child
        again.release()
    finally:
        child.kill()
        child.wait()
    everything = loopback.reserve(len(loopback.CANDIDATES), tmp_path)
    assert block in everything.blocks
    everything.release()


def test_running_out_of_blocks_says_so(tmp_path: Path) -> None:
    everything = loopback.reserve(len(loopback.CANDIDATES), tmp_path)
    try:
        with pytest.raises(RuntimeError, match="no free loopback block"):
            loopback.reserve(1, tmp_path)
    finally:
        everything.release()


def test_the_kubernetes_service_takes_the_first_address_of_the_range() -> None:
    assert loopback.service_range(96) == "127.96.0.0/16"
    assert loopback.kubernetes_service_ip(96) == "127.96.0.1"
