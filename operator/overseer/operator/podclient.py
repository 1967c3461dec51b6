"""The async client of a serving pod's admin API (`GET` / `PUT /admin/model`, docs/serving.md).

Every call has a deadline and returns a typed result (rollout_state: `PodAnswer` /
`PodUnavailable` for a GET, `Swapped` / `SwapRefused` / `SwapUndelivered` / `SwapLost` for a PUT);
nothing raises to the caller except cancellation. The distinctions are the ones the planner acts on:

- refused (the pod answered an error: digest_mismatch, fetch_failed, load_failed, ...): the pod
  keeps its old model, and the rollout stops;
- undelivered (connection refused, connect timeout, 401, 503): the PUT never reached the swap;
  nothing changed, it is safe to try again later;
- lost (the deadline passed, or the connection dropped, after the request was sent): the swap may
  still run on the pod - a serving pod finishes a swap whose client went away.

What a pod answers is not trusted: answers are read up to a size limit, parsed defensively, and
their text is clipped before it can reach a status or an Event. No proxy from the environment is
used, redirects are not followed (the bearer token goes to the pod and nowhere else), and the token
never appears in a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from overseer.operator.rollout_state import (
    ModelKey,
    PodAdminState,
    PodAnswer,
    PodUnavailable,
    Release,
    SwapLost,
    SwapOutcome,
    Swapped,
    SwapRefused,
    SwapResult,
    SwapUndelivered,
    config_fingerprint,
)

ADMIN_PATH = "/admin/model"
GET_DEADLINE_S = 5.0
# A swap fetches the weights (the pod's own fetch deadline is 60 s), loads, warms up and smoke-tests,
# and with several workers waits for them (120 s): the PUT deadline is above the pod's own bounds.
PUT_DEADLINE_S = 300.0
CONNECT_DEADLINE_S = 3.0
MAX_ANSWER_BYTES = 1 << 20
MESSAGE_LIMIT = 1024
_FIELD_LIMIT = 512  # model name/version/digest strings kept from an answer


@dataclass(frozen=True)
class PodAddress:
    """Where a pod's admin API listens: status.podIP and the serving port."""

    ip: str
    port: int

    @property
    def base_url(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"http://{host}:{self.port}"


class PodClient:
    """Admin calls to serving pods over one aiohttp session (connection reuse across pods)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        get_deadline_s: float = GET_DEADLINE_S,
        put_deadline_s: float = PUT_DEADLINE_S,
        connect_deadline_s: float = CONNECT_DEADLINE_S,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.session = session
        self.get_deadline_s = get_deadline_s
        self.put_deadline_s = put_deadline_s
        self.connect_deadline_s = connect_deadline_s
        self.max_answer_bytes = max_answer_bytes

    # -- GET ----------------------------------------------------------------------------------------

    async def get_model(
        self, address: PodAddress, token: str, *, deadline_s: float | None = None
    ) -> PodAnswer | PodUnavailable:
        """What the pod serves now, or why that is not known."""
        deadline = deadline_s if deadline_s is not None else self.get_deadline_s
        try:
            status, body = await self._call("GET", address, token, None, deadline)
        except _Undelivered as e:
            return PodUnavailable("unauthorized" if e.kind == "unauthorized" else "unreachable", e.message)
        except _Lost as e:
            return PodUnavailable("timeout" if e.kind == "timeout" else "unreachable", e.message)
        if body is None:
            return PodUnavailable("bad_answer", f"HTTP {status}: the answer is over {self.max_answer_bytes} bytes")
        if status == 401:
            return PodUnavailable("unauthorized", _error_text(body, "the pod refused the admin token"))
        if status in (429, 503):
            return PodUnavailable("not_ready", _error_text(body, f"HTTP {status}"))
        if status != 200:
            return PodUnavailable("bad_answer", f"HTTP {status}: {_error_text(body, 'no error message')}")
        return parse_model_answer(body)

    # -- PUT ----------------------------------------------------------------------------------------

    async def put_model(
        self, address: PodAddress, token: str, document: Mapping[str, Any], *, deadline_s: float | None = None
    ) -> SwapResult:
        """PUT the model document; `Swapped.served` is left None (see `swap` for the confirmed form)."""
        deadline = deadline_s if deadline_s is not None else self.put_deadline_s
        started = time.monotonic()
        try:
            status, body = await self._call("PUT", address, token, document, deadline)
        except _Undelivered as e:
            return SwapUndelivered(e.kind, e.message)
        except _Lost as e:
            return SwapLost(e.kind, e.message)
        if body is None:
            return SwapRefused("bad_answer", f"the answer is over {self.max_answer_bytes} bytes", status)
        if status == 401:
            return SwapUndelivered("unauthorized", _error_text(body, "the pod refused the admin token"))
        if status in (429, 503):
            return SwapUndelivered("not_ready", _error_text(body, f"HTTP {status}"))
        if status == 200:
            answer = _json_object(body)
            if answer is None or not isinstance(answer.get("changed"), bool):
                return SwapRefused("bad_answer", "the answer to the PUT is not the pod's admin API", status)
            seconds = answer.get("swap_seconds")
            took = float(seconds) if isinstance(seconds, int | float) else time.monotonic() - started
            return Swapped(served=None, changed=answer["changed"], seconds=took)
        error = _error_object(body)
        if error is None:
            return SwapRefused("bad_answer", f"HTTP {status}: {_error_text(body, 'no error message')}", status)
        reason, message = error
        return SwapRefused(reason, message, status)

    async def swap(
        self, address: PodAddress, token: str, release: Release, *, pod: str, deadline_s: float | None = None
    ) -> SwapOutcome:
        """PUT `release`, then GET to confirm what the pod serves: the outcome the planner takes."""
        result = await self.put_model(address, token, release.document, deadline_s=deadline_s)
        if isinstance(result, Swapped):
            seen = await self.get_model(address, token)
            served = seen.served if isinstance(seen, PodAnswer) and seen.state == "serving" else None
            result = Swapped(served=served, changed=result.changed, seconds=result.seconds)
        return SwapOutcome(pod=pod, key=release.key, result=result)

    # -- transport ----------------------------------------------------------------------------------

    async def _call(
        self, method: str, address: PodAddress, token: str, document: Mapping[str, Any] | None, deadline_s: float
    ) -> tuple[int, bytes | None]:
        """One request within `deadline_s`: (status, body; None when over the size limit), or
        _Undelivered / _Lost. The deadline covers connecting, sending, the pod's work and reading
        the answer."""
        headers = {"Authorization": f"Bearer {token.strip()}", "Accept": "application/json"}
        data = None
        if document is not None:
            data = json.dumps(document).encode("utf-8")
            headers["Content-Type"] = "application/json"
        timeout = aiohttp.ClientTimeout(total=deadline_s, connect=min(self.connect_deadline_s, deadline_s))
        url = address.base_url + ADMIN_PATH
        try:
            async with asyncio.timeout(deadline_s + 1.0):  # a hard bound, whatever aiohttp does
                async with self.session.request(
                    method, url, data=data, headers=headers, timeout=timeout, allow_redirects=False
                ) as response:
                    return response.status, await _read_limited(response, self.max_answer_bytes)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.InvalidURL) as e:
            raise _Undelivered("unreachable", f"cannot connect to {url}: {_describe(e)}") from None
        except ValueError as e:  # a token that is not a valid header value, a bad address
            raise _Undelivered("unauthorized", f"cannot send the request: {_describe(e)}") from None
        except TimeoutError:
            raise _Lost("timeout", f"no answer from {url} within {deadline_s:g} s") from None
        except aiohttp.ClientResponseError as e:
            raise _Lost("connection_lost", f"malformed answer from {url}: {_describe(e)}") from None
        except (aiohttp.ClientError, OSError) as e:
            raise _Lost("connection_lost", f"connection to {url} lost: {_describe(e)}") from None


@contextlib.asynccontextmanager
async def pod_client(**kwargs: Any) -> AsyncIterator[PodClient]:
    """A PodClient with its own session: no proxies from the environment, no cookies."""
    connector = aiohttp.TCPConnector(limit=64, enable_cleanup_closed=True)
    async with aiohttp.ClientSession(
        connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        yield PodClient(session, **kwargs)


# --- answers ----------------------------------------------------------------------------------------


def parse_model_answer(body: bytes) -> PodAnswer | PodUnavailable:
    """A `GET /admin/model` answer -> what every worker of the pod serves."""
    answer = _json_object(body)
    if answer is None:
        return PodUnavailable("bad_answer", "the answer is not a JSON object")
    model = answer.get("model")
    identity = _identity(model)
    if model is not None and identity is None:
        return PodUnavailable("bad_answer", "model: expected {name, version, digest} strings")
    served = None
    if identity is not None:
        config = answer.get("config")
        if not isinstance(config, dict):
            return PodUnavailable("bad_answer", "config: expected the served labels, metadata and customObjects")
        try:
            fingerprint = config_fingerprint(config)
        except (ValueError, RecursionError):
            return PodUnavailable("bad_answer", "config: not a JSON object of bounded depth")
        served = ModelKey(name=identity[0], version=identity[1], digest=identity[2], config=fingerprint)
    schema = answer.get("schema")
    schema_version = schema.get("version") if isinstance(schema, dict) else None
    generation = answer.get("generation")
    workers = answer.get("workers")
    state, error = _pod_state(answer.get("state"), identity, workers)
    return PodAnswer(
        served=served,
        state=state,
        schema_version=schema_version if isinstance(schema_version, int) else None,
        generation=generation if isinstance(generation, int) else None,
        error=_clip(error) if error else None,
    )


def _pod_state(answering: Any, identity: tuple[str, str, str] | None, workers: Any) -> tuple[PodAdminState, str | None]:
    """The pod's state from every worker's report (a pod with N workers answers from one of them)."""
    statuses = [w for w in workers if isinstance(w, dict)] if isinstance(workers, list) else []
    errors = [str(w["error"]) for w in statuses if w.get("error")]
    error = errors[0] if errors else None
    if answering == "failed" or any(w.get("state") == "failed" for w in statuses):
        return "failed", error
    if identity is None:
        return "loading", error
    others = [_identity(w.get("model")) for w in statuses]
    if (
        answering != "serving"
        or any(w.get("state") != "serving" for w in statuses)
        or any(i != identity for i in others)
    ):
        return "mixed", error
    return "serving", error


def _identity(model: Any) -> tuple[str, str, str] | None:
    if not isinstance(model, dict):
        return None
    values = (model.get("name"), model.get("version"), model.get("digest"))
    if not all(isinstance(v, str) and 0 < len(v) <= _FIELD_LIMIT for v in values):
        return None
    return values  # type: ignore[return-value]


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _error_object(body: bytes) -> tuple[str, str] | None:
    """The serving error shape {"error": {"status", "reason", "message"}} -> (reason, message)."""
    answer = _json_object(body)
    error = answer.get("error") if answer else None
    if not isinstance(error, dict) or not isinstance(error.get("reason"), str):
        return None
    reason = "".join(ch for ch in error["reason"] if ch.isalnum() or ch == "_")[:64] or "unknown"
    message = error.get("message")
    return reason, _clip(message if isinstance(message, str) else "")


def _error_text(body: bytes, default: str) -> str:
    error = _error_object(body)
    if error is not None:
        return error[1] or error[0]
    text = body[:MESSAGE_LIMIT].decode("utf-8", errors="replace").strip()
    return _clip(text) if text else default


def _clip(text: str) -> str:
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def _describe(error: BaseException) -> str:
    return _clip(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, decompressed, or None as soon as it passes `limit` bytes (not read further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class _Undelivered(Exception):
    def __init__(self, kind: Literal["unreachable", "unauthorized"], message: str) -> None:
        super().__init__(message)
        self.kind: Literal["unreachable", "unauthorized"] = kind
        self.message = message


class _Lost(Exception):
    def __init__(self, kind: Literal["timeout", "connection_lost"], message: str) -> None:
        super().__init__(message)
        self.kind: Literal["timeout", "connection_lost"] = kind
        self.message = message
