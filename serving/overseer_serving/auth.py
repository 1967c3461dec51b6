"""Bearer-token check for /admin/model.

The order is the point: the caller's header is checked first (no I/O), then the token file is read
(off the event loop, by the handler), then the two are compared in constant time. Whatever is wrong
on the server's side - no token file configured, unreadable, empty - the caller gets the same
`invalid bearer token` as for a wrong token: an anonymous caller learns nothing about the token file.
The reason goes to the log, once per change.
"""

from __future__ import annotations

import hmac
import os
import threading
from pathlib import Path

from overseer_serving import logs
from overseer_serving.errors import Unauthorized

log = logs.get("auth")

MAX_TOKEN_BYTES = 4096  # a Secret's token is a few dozen bytes; a huge file is a mistake, not a token
INVALID = "invalid bearer token"


def presented_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; Unauthorized for anything else."""
    if not authorization:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized("expected 'Authorization: Bearer <token>'")
    return presented.strip()


def check_token(presented: str, token: str | None) -> None:
    """Unauthorized unless `token` is known and equals `presented` (constant-time compare)."""
    if token is None or not hmac.compare_digest(presented.encode(), token.encode()):
        raise Unauthorized(INVALID)


class AdminToken:
    """The admin token file, re-read when it changes so a rotated Secret takes effect on the next call.

    `current()` stats the file and reads it only when its identity (inode, size, mtime) changed -
    Kubernetes replaces a Secret volume's files by swapping a symlink, which changes all three. It
    does blocking I/O: call it from a worker thread, never on the event loop.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int, int] | None = None
        self._token: str | None = None
        self._token_problem: str | None = None  # of the file as last read
        self._logged: str | None = None

    def current(self) -> str | None:
        """The token, or None when there is none to check against (the reason is logged)."""
        with self._lock:
            token, problem = self._load()
            if problem != self._logged:
                self._logged = problem
                if problem is not None:
                    log.warning("admin API refuses every caller: %s", problem, extra={"path": str(self.path)})
                else:
                    log.info("admin token loaded", extra={"path": str(self.path)})
            return token

    def problem(self) -> str | None:
        """Why there is no usable token (None when there is one): for start-up, which exits on it."""
        with self._lock:
            return self._load()[1]

    def _load(self) -> tuple[str | None, str | None]:
        if self.path is None:
            return None, "no admin token file is configured (OVERSEER_ADMIN_TOKEN_FILE, --token-file)"
        try:
            stat = os.stat(self.path)
            identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if identity == self._seen:
                return self._token, self._token_problem
            with self.path.open("rb") as f:
                data = f.read(MAX_TOKEN_BYTES + 1)
        except OSError as error:
            self._seen = None
            return None, f"the admin token file {self.path} cannot be read: {error.strerror or error}"
        self._seen = identity
        self._token, self._token_problem = _parse(data, self.path)
        return self._token, self._token_problem


def _parse(data: bytes, path: Path) -> tuple[str | None, str | None]:
    if len(data) > MAX_TOKEN_BYTES:
        return None, f"the admin token file {path} is larger than {MAX_TOKEN_BYTES} bytes"
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None, f"the admin token file {path} is not UTF-8 text"
    if not token:
        return None, f"the admin token file {path} is empty"
    return token, None
