"""Fetch weights into a content-addressed cache, verifying the sha256 digest on the way in.

Bytes are hashed while they are copied, and a file only gets its final name
(`<cache>/<hex>.pt`) once its digest matches: nothing that did not match is ever handed to a
loader, and a later change to the source file cannot change what was verified.

`timeout_s` is a deadline for the whole copy, not per read: a server that drips bytes cannot hold
the pod's swap lock for longer than that (plus at most one read, which times out after
`timeout_s` too). The source is closed on every exit, so an over-limit or late download does not
keep its connection open. `s3://` objects are read the same way: botocore signs the request
(`s3.py`), the same HTTP streaming below fetches it.

Errors: the source's fault (unreachable, missing, refused, too big, late, not a regular file) is
`FetchFailed` (502); the local cache's (cannot be created or written) is `FetchFailed` with 500,
naming the directory; different bytes are `DigestMismatch`.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Generator
from contextlib import closing, suppress
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlsplit

from overseer_serving.digest import CHUNK, sha256_file, verify
from overseer_serving.errors import DigestMismatch, FetchFailed, InvalidConfig

if TYPE_CHECKING:
    import httpx

SCHEMES = ("file", "http", "https", "s3")  # what this pod fetches (document.PodModelSpec accepts them)


def cached_path(cache_dir: Path, digest: str) -> Path:
    return cache_dir / f"{digest.removeprefix('sha256:')}.pt"


def fetch(
    uri: str,
    digest: str,
    cache_dir: Path,
    *,
    timeout_s: float,
    max_bytes: int,
    s3_addressing_style: str = "auto",
) -> Path:
    """Return a local file whose content has `digest`, fetching `uri` if it is not cached."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _cache_error(cache_dir, error) from None
    final = cached_path(cache_dir, digest)
    if _cached_and_valid(final, digest):
        return final
    chunks = _source(uri, timeout_s, max_bytes, s3_addressing_style)
    deadline = time.monotonic() + timeout_s
    try:
        fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=".fetch-", suffix=".part")
    except OSError as error:
        chunks.close()
        raise _cache_error(cache_dir, error) from None
    tmp = Path(tmp_name)
    try:
        with closing(chunks), os.fdopen(fd, "wb") as out:
            actual = _copy_hashing(chunks, out, max_bytes=max_bytes, uri=uri, deadline=deadline, timeout_s=timeout_s)
        verify(actual, digest, source=uri)
        os.replace(tmp, final)
    except OSError as error:  # the copy's writes, the close that flushes them, the rename
        raise _cache_error(cache_dir, error) from None
    finally:
        with suppress(OSError):
            tmp.unlink()
    return final


def _cached_and_valid(final: Path, digest: str) -> bool:
    """Re-hash a cache hit: the cache is a plain directory, so check rather than trust it."""
    try:
        if not final.exists():
            return False
        verify(sha256_file(final), digest, source=str(final))
    except DigestMismatch:
        with suppress(OSError):
            final.unlink()
        return False
    except OSError as error:
        raise _cache_error(final.parent, error) from None
    return True


def _source(uri: str, timeout_s: float, max_bytes: int, s3_addressing_style: str) -> Generator[bytes]:
    scheme = urlsplit(uri).scheme
    if scheme == "file":
        return _file_chunks(uri)
    if scheme in ("http", "https"):
        return _http_chunks(uri, timeout_s, max_bytes=max_bytes)
    if scheme == "s3":
        from overseer_serving import s3

        return s3.object_chunks(uri, timeout_s, max_bytes=max_bytes, addressing_style=s3_addressing_style)
    raise InvalidConfig(f"model.uri: {scheme}:// is not supported by this serving image (file://, http(s)://, s3://)")


def _cache_error(cache_dir: Path, error: OSError) -> FetchFailed:
    where = error.filename if error.filename is not None else cache_dir
    return FetchFailed(
        f"cannot write the weights cache {where}: {error.strerror or error} (OVERSEER_CACHE_DIR)", status=500
    )


def _copy_hashing(
    chunks: Generator[bytes], out: BinaryIO, *, max_bytes: int, uri: str, deadline: float, timeout_s: float
) -> str:
    h = hashlib.sha256()
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise FetchFailed(f"weights at {uri} exceed the {max_bytes}-byte limit")
        if time.monotonic() > deadline:
            raise FetchFailed(f"weights at {uri} did not arrive within {timeout_s:g} s ({size} bytes so far)")
        h.update(chunk)
        out.write(chunk)
    if size == 0:
        raise FetchFailed(f"weights at {uri} are empty")
    return "sha256:" + h.hexdigest()


def _file_chunks(uri: str) -> Generator[bytes]:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise InvalidConfig(f"model.uri: file:// URIs must be local (file:///path), got host {parts.netloc!r}")
    path = Path(unquote(parts.path))
    with _open_regular_file(path, uri) as f:
        while True:
            try:
                chunk = f.read(CHUNK)
            except OSError as error:
                raise FetchFailed(f"cannot read {uri}: {error.strerror or error}") from None
            if not chunk:
                return
            yield chunk


def _open_regular_file(path: Path, uri: str) -> BinaryIO:
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below like any non-file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise FetchFailed(f"cannot read {uri}: {error.strerror or error}") from None
    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    os.close(fd)
    raise FetchFailed(f"cannot read {uri}: not a regular file")


def _http_chunks(uri: str, timeout_s: float, *, max_bytes: int) -> Generator[bytes]:
    import httpx

    try:
        with httpx.stream("GET", uri, timeout=timeout_s, follow_redirects=True) as response:
            if response.status_code != 200:
                raise FetchFailed(f"GET {uri} answered HTTP {response.status_code}")
            yield from stream_body(response, uri, max_bytes)
    except httpx.HTTPError as error:
        raise FetchFailed(f"cannot fetch {uri}: {type(error).__name__}: {error}") from None


def stream_body(response: httpx.Response, uri: str, max_bytes: int) -> Generator[bytes]:
    """The body of an httpx response, refused up front when it declares more than `max_bytes`.

    Whatever each network read returns, not CHUNK-sized pieces: the copy loop must see every read
    to enforce its deadline (iter_bytes(CHUNK) would wait for a full chunk).
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchFailed(f"weights at {uri} exceed the {max_bytes}-byte limit (Content-Length {declared})")
    yield from response.iter_bytes()
