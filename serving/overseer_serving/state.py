"""The pod's shared desired-state directory: how a swap reaches every BentoML worker process.

    <state_dir>/desired.json         {"generation": N, "document": {...}}: the model all workers serve
    <state_dir>/workers/<index>.json one status per worker: generation, state, model, error
    <state_dir>/swap.lock            flock: one PUT /admin/model at a time across workers
    <state_dir>/fatal                a start-up failure, for `overseer serve` to report and exit 1

Files are replaced atomically (write, fsync-free rename): readers see the old or the new content.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any


class StateStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.desired_file = root / "desired.json"
        self.workers_dir = root / "workers"
        self.lock_file = root / "swap.lock"
        self.fatal_file = root / "fatal"

    def prepare(self) -> None:
        self.workers_dir.mkdir(parents=True, exist_ok=True)

    # desired model -------------------------------------------------------------------------

    def read_desired(self) -> tuple[int, dict[str, Any]] | None:
        try:
            record = json.loads(self.desired_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return int(record["generation"]), record["document"]

    def desired_generation(self) -> int:
        record = self.read_desired()
        return 0 if record is None else record[0]

    def write_desired(self, document: dict[str, Any]) -> int:
        """Publish a new desired model; call with `swap_lock` held (or before workers start)."""
        generation = self.desired_generation() + 1
        _write_json(self.desired_file, {"generation": generation, "document": document})
        return generation

    @contextmanager
    def swap_lock(self) -> Iterator[None]:
        with self.lock_file.open("a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # worker statuses -----------------------------------------------------------------------

    def write_status(self, worker: int, status: dict[str, Any]) -> None:
        _write_json(self.workers_dir / f"{worker}.json", status)

    def statuses(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.workers_dir.glob("*.json")):
            with suppress(FileNotFoundError, json.JSONDecodeError):
                out.append(json.loads(path.read_text(encoding="utf-8")))
        return sorted(out, key=lambda s: int(s.get("worker", 0)))

    # start-up failure ----------------------------------------------------------------------

    def write_fatal(self, message: str) -> None:
        self.fatal_file.write_text(message, encoding="utf-8")

    def read_fatal(self) -> str | None:
        try:
            return self.fatal_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None


def _write_json(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
