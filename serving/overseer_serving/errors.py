"""One error base class carrying the HTTP status; `service.py` maps it to the JSON error answer."""

from __future__ import annotations

from typing import Any


class ServingError(Exception):
    """An error a client (or the operator) should see, with its HTTP status and a short reason.

    `reason` is a stable machine-readable word: it is the `reason` label of the swap-failure
    metric and the `error.reason` field of the JSON answer.
    """

    status: int = 500
    reason: str = "internal"

    def __init__(self, message: str, *, reason: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        if status is not None:
            self.status = status

    def to_json(self) -> dict[str, Any]:
        return {"error": {"status": self.status, "reason": self.reason, "message": self.message}}


class BadRequest(ServingError):
    status, reason = 400, "bad_request"


class Unauthorized(ServingError):
    status, reason = 401, "unauthorized"


class PayloadTooLarge(ServingError):
    status, reason = 413, "too_large"


class UnsupportedMediaType(ServingError):
    status, reason = 415, "unsupported_media_type"


class InvalidDocument(ServingError):
    """The model document is well-formed JSON/YAML but not an acceptable model document."""

    status, reason = 422, "invalid_document"


class InvalidConfig(ServingError):
    """The model's config violates its schema or asks for something this server cannot honour."""

    status, reason = 422, "invalid_config"


class DigestMismatch(ServingError):
    """The weights at the URI are not the ones the document pins: refused before any unpickling."""

    status, reason = 422, "digest_mismatch"


class FetchFailed(ServingError):
    """The weights could not be fetched (unreachable, missing, too big)."""

    status, reason = 502, "fetch_failed"


class LoadFailed(ServingError):
    """The verified weights did not load, warm up, or pass the smoke inference."""

    status, reason = 500, "load_failed"


class NotReady(ServingError):
    status, reason = 503, "not_ready"


class FollowFailed(ServingError):
    """Another worker of this pod did not take the new model (multi-worker pods only)."""

    status, reason = 500, "worker_failed"


def describe_os_error(error: OSError, doing: str | None = None, path: object = None) -> str:
    """`cannot write the state directory /x/y: Not a directory`: what, where, and the system's reason."""
    where = error.filename if error.filename is not None else path
    cause = error.strerror or str(error)
    if error.filename2 is not None:
        where = f"{where} -> {error.filename2}"
    text = f"{doing} {where}" if doing and where is not None else (doing or (str(where) if where is not None else ""))
    return f"{text}: {cause}" if text else cause
