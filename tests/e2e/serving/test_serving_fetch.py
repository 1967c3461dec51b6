"""Fetching weights over HTTP from misbehaving loopback servers: the fetch timeout is a deadline for
the whole download (the swap lock is held meanwhile), and an abandoned download closes its
connection."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from overseer_serving.errors import FetchFailed
from overseer_serving.fetch import fetch
from support.polling import wait_for

LENGTH = 1_000_000
DIGEST = "sha256:" + hashlib.sha256(b"x" * LENGTH).hexdigest()


@contextmanager
def drip_server(*, byte_every_s: float, give_up_after_s: float) -> Iterator[tuple[str, threading.Event]]:
    """Answers 200 with Content-Length 1 MB, then sends one byte every `byte_every_s` until it has
    sent everything, its client hangs up (the event is set), or `give_up_after_s` passes."""
    listener = socket.create_server(("127.0.0.1", 0))
    hung_up = threading.Event()
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {LENGTH}\r\n\r\n".encode())
            ends = time.monotonic() + give_up_after_s
            try:
                while not stop.wait(byte_every_s) and time.monotonic() < ends:
                    conn.sendall(b"x")
            except OSError:  # the client closed the connection
                hung_up.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/w.pt", hung_up
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def test_a_slow_drip_cannot_outlast_the_fetch_deadline(tmp_path: Path) -> None:
    # Each byte arrives well within the per-read timeout; only a deadline for the whole copy stops it.
    with drip_server(byte_every_s=0.05, give_up_after_s=8) as (url, _):
        started = time.monotonic()
        with pytest.raises(FetchFailed, match=r"did not arrive within 1 s \(\d+ bytes so far\)"):
            fetch(url, DIGEST, tmp_path / "cache", timeout_s=1.0, max_bytes=10 * LENGTH)
        elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"fetch took {elapsed:.1f} s with a 1 s timeout"
    assert list((tmp_path / "cache").iterdir()) == []  # no partial file left behind


def test_a_download_over_the_size_limit_hangs_up(tmp_path: Path) -> None:
    with drip_server(byte_every_s=0.01, give_up_after_s=8) as (url, hung_up):
        with pytest.raises(FetchFailed, match="exceed the 20-byte limit") as caught:
            fetch(url, DIGEST, tmp_path / "cache", timeout_s=30, max_bytes=20)
        # The error (and its traceback) is still alive here: the connection must be closed anyway.
        wait_for(hung_up.is_set, 5, "the server to see the client hang up")
        assert caught.value.status == 502
