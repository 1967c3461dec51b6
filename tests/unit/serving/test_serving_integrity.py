"""Digest verification, the verified weights cache, and the admin token check."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from overseer_serving.auth import check_bearer, read_token
from overseer_serving.digest import sha256_file, verify
from overseer_serving.errors import DigestMismatch, FetchFailed, InvalidConfig, Unauthorized
from overseer_serving.fetch import cached_path, fetch


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_sha256_file_and_verify(tmp_path: Path) -> None:
    f = tmp_path / "w.pt"
    f.write_bytes(b"weights")
    assert sha256_file(f) == digest_of(b"weights")
    verify(sha256_file(f), digest_of(b"weights"), source="w.pt")
    with pytest.raises(DigestMismatch, match="document pins"):
        verify(sha256_file(f), digest_of(b"other"), source="w.pt")


def test_fetch_file_uri_into_cache(tmp_path: Path) -> None:
    src = tmp_path / "src.pt"
    src.write_bytes(b"x" * 5000)
    cache = tmp_path / "cache"
    got = fetch(f"file://{src}", digest_of(b"x" * 5000), cache, timeout_s=5, max_bytes=10_000)
    assert got == cached_path(cache, digest_of(b"x" * 5000))
    assert got.read_bytes() == b"x" * 5000
    src.unlink()  # a cached, verified copy is enough from now on
    assert fetch(f"file://{src}", digest_of(b"x" * 5000), cache, timeout_s=5, max_bytes=10_000) == got


def test_mismatch_leaves_nothing_loadable_in_the_cache(tmp_path: Path) -> None:
    src = tmp_path / "src.pt"
    src.write_bytes(b"tampered")
    cache = tmp_path / "cache"
    with pytest.raises(DigestMismatch):
        fetch(f"file://{src}", digest_of(b"original"), cache, timeout_s=5, max_bytes=10_000)
    assert list(cache.iterdir()) == []


def test_tampered_cache_entry_is_refetched(tmp_path: Path) -> None:
    src = tmp_path / "src.pt"
    src.write_bytes(b"good")
    cache = tmp_path / "cache"
    got = fetch(f"file://{src}", digest_of(b"good"), cache, timeout_s=5, max_bytes=100)
    got.write_bytes(b"evil")
    assert fetch(f"file://{src}", digest_of(b"good"), cache, timeout_s=5, max_bytes=100).read_bytes() == b"good"


def test_fetch_failures(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(FetchFailed, match="cannot read"):
        fetch(f"file://{tmp_path}/missing.pt", digest_of(b""), cache, timeout_s=5, max_bytes=100)
    big = tmp_path / "big.pt"
    big.write_bytes(b"y" * 200)
    with pytest.raises(FetchFailed, match="limit"):
        fetch(f"file://{big}", digest_of(b"y" * 200), cache, timeout_s=5, max_bytes=100)
    with pytest.raises(InvalidConfig, match="s3:// is not supported"):
        fetch("s3://bucket/w.pt", digest_of(b""), cache, timeout_s=5, max_bytes=100)


def test_bearer_token_check(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    token = read_token(token_file)
    assert token == "s3cret"
    check_bearer("Bearer s3cret", token)
    for header, message in [
        (None, "missing"),
        ("Bearer nope", "wrong"),
        ("Basic s3cret", "expected"),
        ("Bearer ", "expected"),
    ]:
        with pytest.raises(Unauthorized, match=message):
            check_bearer(header, token)


def test_no_usable_token_fails_closed_and_says_why(tmp_path: Path) -> None:
    with pytest.raises(Unauthorized, match=r"no admin token file is configured \(OVERSEER_ADMIN_TOKEN_FILE\)"):
        read_token(None)
    with pytest.raises(Unauthorized, match=rf"token file {tmp_path}/absent cannot be read: No such file or directory"):
        read_token(tmp_path / "absent")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(Unauthorized, match=r"token file .*/empty is empty"):
        read_token(tmp_path / "empty")


def test_unreadable_token_file_is_reported_as_unreadable(tmp_path: Path) -> None:
    # A directory where the file should be: reading fails for every user, root included.
    (tmp_path / "token").mkdir()
    with pytest.raises(Unauthorized) as caught:
        read_token(tmp_path / "token")
    assert caught.value.status == 401
    assert caught.value.message == (
        f"admin API disabled: the admin token file {tmp_path}/token cannot be read: Is a directory"
    )
