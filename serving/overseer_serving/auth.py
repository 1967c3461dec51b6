"""Bearer-token check for /admin/model."""

from __future__ import annotations

import hmac
from pathlib import Path

from overseer_serving.errors import Unauthorized


def read_token(path: Path | None) -> str | None:
    """The admin token, re-read each call so a rotated Secret takes effect; None if unusable."""
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return token or None


def check_bearer(authorization: str | None, token: str | None) -> None:
    """Raise Unauthorized unless `authorization` is `Bearer <token>` (constant-time compare)."""
    if token is None:
        # Fail closed: no configured token means nobody may swap models.
        raise Unauthorized("admin API disabled: no admin token is configured")
    if not authorization:
        raise Unauthorized("missing bearer token")
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized("expected 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise Unauthorized("wrong bearer token")
