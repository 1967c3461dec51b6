"""Bearer-token check for /admin/model."""

from __future__ import annotations

import hmac
from pathlib import Path

from overseer_serving.errors import Unauthorized


def read_token(path: Path | None) -> str:
    """The admin token, re-read each call so a rotated Secret takes effect.

    Fails closed with the reason: no token file configured, a file that cannot be read (named,
    with the operating system's reason), or an empty one.
    """
    if path is None:
        raise Unauthorized("admin API disabled: no admin token file is configured (OVERSEER_ADMIN_TOKEN_FILE)")
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise Unauthorized(
            f"admin API disabled: the admin token file {path} cannot be read: {error.strerror or error}"
        ) from None
    except UnicodeDecodeError:
        raise Unauthorized(f"admin API disabled: the admin token file {path} is not UTF-8 text") from None
    if not token:
        raise Unauthorized(f"admin API disabled: the admin token file {path} is empty")
    return token


def check_bearer(authorization: str | None, token: str) -> None:
    """Raise Unauthorized unless `authorization` is `Bearer <token>` (constant-time compare)."""
    if not authorization:
        raise Unauthorized("missing bearer token")
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized("expected 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise Unauthorized("wrong bearer token")
