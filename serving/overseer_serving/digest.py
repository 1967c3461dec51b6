"""sha256 digests of weights files, compared in constant time."""

from __future__ import annotations

import hmac

from overseer.api.model_document import is_valid_digest, sha256_file

from overseer_serving.errors import DigestMismatch

CHUNK = 1024 * 1024  # the fetch copies in chunks of this size
__all__ = ["CHUNK", "same_digest", "sha256_file", "verify"]


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def verify(actual: str, expected: str, *, source: str) -> None:
    if not is_valid_digest(expected):
        raise DigestMismatch(f"expected digest {expected!r} is not sha256:<64 lowercase hex>")
    if not same_digest(actual, expected):
        raise DigestMismatch(f"digest mismatch for {source}: document pins {expected}, weights are {actual}")
