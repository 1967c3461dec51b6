"""Digest verification, the verified weights cache, and the admin token check."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from overseer_serving.auth import AdminToken, check_token, presented_token
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
    with pytest.raises(InvalidConfig, match=r"ftp:// is not supported by this serving image \(file://, http\(s\)://, s3://\)"):
        fetch("ftp://host/w.pt", digest_of(b""), cache, timeout_s=5, max_bytes=100)


def test_bearer_token_check(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    token = AdminToken(token_file).current()
    assert token == "s3cret"
    check_token(presented_token("Bearer s3cret"), token)
    check_token(presented_token("bearer  s3cret "), token)
    for header, message in [
        (None, "missing bearer token: send 'Authorization: Bearer <token>'"),
        ("Basic s3cret", "expected 'Authorization: Bearer <token>'"),
        ("Bearer ", "expected 'Authorization: Bearer <token>'"),
    ]:
        with pytest.raises(Unauthorized) as caught:
            presented_token(header)
        assert caught.value.message == message
    with pytest.raises(Unauthorized) as wrong:
        check_token("nope", token)
    assert wrong.value.message == "invalid bearer token"


@pytest.mark.parametrize("case", ["not configured", "missing", "directory", "empty", "binary", "huge"])
def test_no_usable_token_refuses_everyone_alike_and_tells_only_the_log(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    path: Path | None = tmp_path / "token"
    expected = {
        "not configured": "no admin token file is configured (OVERSEER_ADMIN_TOKEN_FILE, --token-file)",
        "missing": f"the admin token file {path} cannot be read: No such file or directory",
        "directory": f"the admin token file {path} cannot be read: Is a directory",
        "empty": f"the admin token file {path} is empty",
        "binary": f"the admin token file {path} is not UTF-8 text",
        "huge": f"the admin token file {path} is larger than 4096 bytes",
    }[case]
    if case == "not configured":
        path = None
    elif case == "directory":  # fails for every user, root included
        (tmp_path / "token").mkdir()
    elif case == "empty":
        (tmp_path / "token").write_text("\n")
    elif case == "binary":
        (tmp_path / "token").write_bytes(b"\xff\xfe")
    elif case == "huge":
        (tmp_path / "token").write_text("t" * 5000)
    token = AdminToken(path)
    assert token.problem() == expected  # what `overseer serve` exits 1 with at start-up
    with caplog.at_level("WARNING", logger="overseer_serving"):
        assert token.current() is None
        assert token.current() is None
    assert [r.getMessage() for r in caplog.records] == [f"admin API refuses every caller: {expected}"]  # once
    for presented in ("s3cret", "", expected):
        with pytest.raises(Unauthorized) as caught:
            check_token(presented, token.current())
        assert caught.value.message == "invalid bearer token"  # nothing about the file


def test_a_rotated_token_takes_effect_and_the_file_is_read_only_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kubernetes updates a Secret volume by writing a new directory and swapping the `..data` symlink.
    data = tmp_path / "..2026_01_01"
    data.mkdir()
    (data / "token").write_text("first")
    (tmp_path / "..data").symlink_to(data.name)
    (tmp_path / "token").symlink_to("..data/token")
    token = AdminToken(tmp_path / "token")
    opened: list[Path] = []
    real_open = Path.open

    def counting_open(self: Path, *args: object, **kwargs: object) -> object:
        if self == tmp_path / "token":
            opened.append(self)
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", counting_open)
    assert [token.current() for _ in range(5)] == ["first"] * 5
    assert len(opened) == 1
    rotated = tmp_path / "..2026_02_01"
    rotated.mkdir()
    (rotated / "token").write_text("second")
    (tmp_path / "..data_tmp").symlink_to(rotated.name)
    (tmp_path / "..data_tmp").replace(tmp_path / "..data")
    assert token.current() == "second"
    assert len(opened) == 2
