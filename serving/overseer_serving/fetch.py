"""Fetch weights into a content-addressed cache, verifying the sha256 digest on the way in.

Bytes are hashed while they are copied, and a file only gets its final name
(`<cache>/<hex>.pt`) once its digest matches: nothing that did not match is ever handed to a
loader, and a later change to the source file cannot change what was verified.

`timeout_s` is a deadline for the whole copy, not per read: a server that drips bytes cannot hold
the pod's swap lock for longer than that (plus at most one read, which times out after
`timeout_s` too). The source is closed on every exit, so an over-limit or late download does not
keep its connection open.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Generator
from contextlib import closing, suppress
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from overseer_serving.digest import CHUNK, sha256_file, verify
from overseer_serving.errors import DigestMismatch, FetchFailed, InvalidConfig


def cached_path(cache_dir: Path, digest: str) -> Path:
    return cache_dir / f"{digest.removeprefix('sha256:')}.pt"


def fetch(uri: str, digest: str, cache_dir: Path, *, timeout_s: float, max_bytes: int) -> Path:
    """Return a local file whose content has `digest`, fetching `uri` if it is not cached."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cached_path(cache_dir, digest)
    if final.exists():
        # Re-hash: the cache is a plain directory, so check rather than trust it.
        try:
            verify(sha256_file(final), digest, source=str(final))
        except DigestMismatch:
            final.unlink(missing_ok=True)
        else:
            return final
    scheme = urlsplit(uri).scheme
    if scheme == "file":
        chunks = _file_chunks(uri)
    elif scheme in ("http", "https"):
        chunks = _http_chunks(uri, timeout_s)
    else:
        raise InvalidConfig(f"model.uri: {scheme}:// is not supported by this serving image (file://, http(s)://)")
    deadline = time.monotonic() + timeout_s
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=".fetch-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with closing(chunks), os.fdopen(fd, "wb") as out:
            actual = _copy_hashing(chunks, out, max_bytes=max_bytes, uri=uri, deadline=deadline, timeout_s=timeout_s)
        verify(actual, digest, source=uri)
        os.replace(tmp, final)
    finally:
        with suppress(FileNotFoundError):
            tmp.unlink()
    return final


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
    try:
        f = path.open("rb")
    except OSError as error:
        raise FetchFailed(f"cannot read {uri}: {error.strerror or error}") from None
    with f:
        while chunk := f.read(CHUNK):
            yield chunk


def _http_chunks(uri: str, timeout_s: float) -> Generator[bytes]:
    import httpx

    try:
        with httpx.stream("GET", uri, timeout=timeout_s, follow_redirects=True) as response:
            if response.status_code != 200:
                raise FetchFailed(f"GET {uri} answered HTTP {response.status_code}")
            # Whatever each network read returns, not CHUNK-sized pieces: the copy loop must see
            # every read to enforce its deadline (iter_bytes(CHUNK) would wait for a full chunk).
            yield from response.iter_bytes()
    except httpx.HTTPError as error:
        raise FetchFailed(f"cannot fetch {uri}: {type(error).__name__}: {error}") from None
